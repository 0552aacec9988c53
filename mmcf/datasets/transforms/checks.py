"""A data-pipeline check for semantic segmentation labels."""
from typing import Optional

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


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
        seg_hw = tuple(int(v) for v in label.shape[:2])
        if img_hw != seg_hw:
            raise ValueError(
                f"label map {results.get('seg_map_path')} is {seg_hw[0]}x{seg_hw[1]} (HxW) "
                f"but its image {results.get('img_path')} is {img_hw[0]}x{img_hw[1]}; "
                'image and label map must have the same size')
        return results
