"""Data-pipeline checks: image files (empty, oversized) and label-map sizes."""
import os
import os.path as osp
from typing import Optional

from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmseg.registry import TRANSFORMS
from PIL import Image


@ROOT_TRANSFORMS.register_module()
class CheckImageFile(BaseTransform):
    """Refuse an empty, unreadable or oversized image file before it is loaded.

    Put it first in a pipeline (before ``LoadImageFromFile``). It reads only
    the file's header (PIL opens lazily), so it costs a file open per sample.

    * A 0-byte file or one whose header no decoder recognises raises
      ``ValueError`` naming the file (OpenCV's error names none).
    * An image whose longer side exceeds ``max_side`` pixels raises
      ``ValueError`` naming the file and its size: without a resize, the
      data preprocessor pads every image of a batch to the largest one, so
      one 4000x3000 photo in a 64x64 data set makes a multi-GB batch.
      ``max_side=None`` turns the size check off.

    Registered in mmengine's root transform registry, so mmpretrain, mmdet
    and mmseg pipelines all find it. Samples without ``img_path`` (arrays
    given directly) pass through; a bare path (what mmdet's and mmseg's
    inferencers feed a pipeline) is checked and passed on.

    Args:
        max_side (int, optional): the largest allowed image side in pixels.
            Defaults to 4096.
    """

    def __init__(self, max_side: Optional[int] = 4096) -> None:
        if max_side is not None and (not isinstance(max_side, int) or max_side <= 0):
            raise ValueError(f'CheckImageFile: max_side must be a positive int or None, '
                             f'got {max_side!r}')
        self.max_side = max_side

    def transform(self, results):
        # mmdet's and mmseg's inferencers feed the pipeline a bare path or
        # array (their loader replaces LoadImageFromFile further on)
        path = results if isinstance(results, str) else \
            results.get('img_path', None) if isinstance(results, dict) else None
        if path is None or '://' in str(path):
            return results
        if not osp.isfile(path):
            raise FileNotFoundError(f'image file not found: {path}')
        if os.path.getsize(path) == 0:
            raise ValueError(f'image {path} is empty (0 bytes)')
        try:
            with Image.open(path) as im:
                width, height = im.size
        except Exception as e:  # noqa: BLE001  (PIL raises several types)
            raise ValueError(f'image {path} cannot be read as an image: '
                             f'{type(e).__name__}: {e}') from e
        if self.max_side is not None and max(width, height) > self.max_side:
            raise ValueError(
                f'image {path} is {width}x{height} (WxH), larger than max_side='
                f'{self.max_side} of CheckImageFile: resize it (or add a Resize to the '
                'pipeline, or raise max_side) -- a batch is padded to its largest image')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_side={self.max_side})'


@TRANSFORMS.register_module()
class CheckSegSize(BaseTransform):
    """Refuse a label map whose size differs from its image.

    Put it right after ``LoadAnnotations`` (in train and test pipelines): at
    that point the label map is still at its original size, so it must equal
    the original image size ``ori_shape``. mmseg's resizing transforms rescale
    image and label each to the target scale on its own, and its crops crop
    both with one box, so a wrong-size label can otherwise reach the loss (or
    the metric) with a plausible shape and train on misaligned pixels.

    Samples without a label (inference, e.g. ``MMSegInferencer``) pass
    through unchanged.

    Raises:
        ValueError: naming both sizes and both files.
    """

    def transform(self, results: dict) -> Optional[dict]:
        label = results.get('gt_seg_map', None)
        if label is None:
            return results
        img_hw = results.get('ori_shape') or results['img'].shape[:2]
        img_hw = tuple(int(v) for v in tuple(img_hw)[:2])
        if label.ndim != 2:
            # mmseg's LoadAnnotations squeezes the label: a 1-pixel high or
            # wide map comes out 1-D (LoadSegAnnotations keeps it 2-D)
            raise ValueError(
                f"label map {results.get('seg_map_path')} has shape {tuple(label.shape)} but "
                f"its image {results.get('img_path')} is {img_hw[0]}x{img_hw[1]} (HxW); a "
                'label map must be one HxW channel (mmseg\'s LoadAnnotations squeezes a '
                '1-pixel side away: use LoadSegAnnotations)')
        seg_hw = tuple(int(v) for v in label.shape[:2])
        if img_hw != seg_hw:
            raise ValueError(
                f"label map {results.get('seg_map_path')} is {seg_hw[0]}x{seg_hw[1]} (HxW) "
                f"but its image {results.get('img_path')} is {img_hw[0]}x{img_hw[1]}; "
                'image and label map must have the same size')
        return results
