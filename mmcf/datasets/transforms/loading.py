"""Annotation loaders: COCO panoptic without panopticapi, semantic label
maps without 8-bit wrapping."""
from __future__ import annotations

from typing import Optional

import mmcv
import numpy as np
from mmdet.datasets.transforms import LoadAnnotations, LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations as SegLoadAnnotations
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

from ..panoptic_io import read_panoptic_ids, rgb2id, segment_id_mismatch


@TRANSFORMS.register_module()
class LoadCocoPanopticAnnotations(LoadPanopticAnnotations):
    """mmdet's ``LoadPanopticAnnotations`` without panopticapi (not on PyPI;
    mmdet's transform needs it only for ``rgb2id``), and strict about the
    PNG agreeing with the JSON.

    Outputs are mmdet's: boxes and labels of the non-crowd things,
    ``gt_masks`` (their masks), ``gt_seg_map`` (every segment's label, 255
    elsewhere). With ``strict`` (default) a PNG segment id that the image's
    ``segments_info`` lacks, or a ``segments_info`` id absent from the PNG,
    raises ValueError naming the PNG and the id (mmdet would silently make
    the first void and the second an empty mask); ``strict=False`` keeps
    mmdet's behaviour. Id 0 is unlabeled.
    """

    def __init__(self, with_bbox: bool = True, with_label: bool = True,
                 with_mask: bool = True, with_seg: bool = True, box_type: str = 'hbox',
                 imdecode_backend: str = 'cv2', backend_args: dict = None,
                 strict: bool = True) -> None:
        # skip LoadPanopticAnnotations.__init__, which imports panopticapi
        LoadAnnotations.__init__(
            self, with_bbox=with_bbox, with_label=with_label, with_mask=with_mask,
            with_seg=with_seg, with_keypoints=False, box_type=box_type,
            imdecode_backend=imdecode_backend, backend_args=backend_args)
        self.rgb2id = rgb2id
        self.strict = strict

    def _load_masks_and_semantic_segs(self, results: dict) -> None:
        path = results.get('seg_map_path', None)
        if path is None:  # inference without ground truth
            return
        ids = read_panoptic_ids(path, self.backend_args)
        segments = results['segments_info']
        if self.strict:
            absent, unlisted = segment_id_mismatch(ids, (s['id'] for s in segments))
            if unlisted:
                raise ValueError(
                    f'{path}: segment id(s) {unlisted[:5]} are in the '
                    'PNG but not in the JSON segments_info of this image')
            if absent:
                raise ValueError(
                    f'{path}: segments_info id(s) {absent[:5]} have '
                    'no pixel in the PNG')
        h, w = ids.shape
        # uint8 holds labels 0..254 (255 is void); more classes need int32
        max_label = max((s['category'] for s in segments), default=0)
        seg = np.full((h, w), 255, dtype=np.uint8 if max_label < 255 else np.int32)
        masks = []
        for s in segments:
            mask = ids == s['id']
            seg[mask] = s['category']
            if s.get('is_thing'):
                masks.append(mask.astype(np.uint8))
        if self.with_mask:
            oh, ow = results['ori_shape']
            results['gt_masks'] = BitmapMasks(masks, oh, ow)
        if self.with_seg:
            results['gt_seg_map'] = seg

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', strict={self.strict})'


@SEG_TRANSFORMS.register_module()
class LoadSegAnnotations(SegLoadAnnotations):
    """mmseg's ``LoadAnnotations`` without the silent 8-bit cast.

    mmseg casts every label map to ``uint8``, so a 16-bit PNG's value 259
    trains as class 3, and it squeezes the map, so a 1-pixel high or wide
    map loses a dimension. This keeps the decoded values (``uint8`` maps stay
    ``uint8``; wider ones become ``int64``) and the 2-D shape, and applies
    ``reduce_zero_label`` and the dataset's ``label_map`` as mmseg does.

    A multi-channel map raises ``ValueError`` naming the file. Samples
    without ``seg_map_path`` (inference) pass through. With
    ``num_classes`` any value outside ``0..num_classes-1`` that is not
    ``ignore_index`` raises ``ValueError`` naming the file and the values
    (without it, the ClusterFormer decode head refuses them in the loss).

    Args:
        num_classes (int, optional): refuse values of no class here.
        ignore_index (int): the "no label" value. Defaults to 255.
        Others as mmseg's ``LoadAnnotations``.
    """

    def __init__(self, reduce_zero_label: Optional[bool] = None,
                 backend_args: Optional[dict] = None, imdecode_backend: str = 'pillow',
                 num_classes: Optional[int] = None, ignore_index: int = 255) -> None:
        super().__init__(reduce_zero_label=reduce_zero_label, backend_args=backend_args,
                         imdecode_backend=imdecode_backend)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path', None)
        if path is None:  # inference without ground truth (MMSegInferencer)
            return
        seg = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                               flag='unchanged', backend=self.imdecode_backend)
        if seg is None:
            raise ValueError(f'label map {path} cannot be decoded')
        if seg.ndim == 3 and seg.shape[2] == 1:
            seg = seg[..., 0]
        if seg.ndim != 2:
            raise ValueError(f'label map {path} has shape {seg.shape}; a label map has one '
                             'channel (mode L, P or I;16) holding class indices')
        wide = seg.dtype != np.uint8
        seg = seg.astype(np.int64) if wide else seg
        if self.reduce_zero_label is None:
            self.reduce_zero_label = results['reduce_zero_label']
        if self.reduce_zero_label != results['reduce_zero_label']:
            raise ValueError(f'LoadSegAnnotations has reduce_zero_label='
                             f'{self.reduce_zero_label} but the dataset '
                             f'{results["reduce_zero_label"]}')
        if self.reduce_zero_label:
            zero = seg == 0
            seg = seg.astype(np.int64) - 1
            seg[zero | (seg == self.ignore_index - 1)] = self.ignore_index
            seg = seg if wide else seg.astype(np.uint8)
        if results.get('label_map', None) is not None:
            old = seg.copy()
            for old_id, new_id in results['label_map'].items():
                seg[old == old_id] = new_id
        if self.num_classes is not None:
            values = np.unique(seg)
            bad = [int(v) for v in values
                   if v != self.ignore_index and not 0 <= v < self.num_classes]
            if bad:
                raise ValueError(
                    f'label map {path} holds value(s) {bad[:10]} outside '
                    f'0..{self.num_classes - 1} (num_classes={self.num_classes}, '
                    f'ignore_index={self.ignore_index})')
        results['gt_seg_map'] = seg
        results['seg_fields'].append('gt_seg_map')

    def __repr__(self) -> str:
        return (super().__repr__()[:-1]
                + f', num_classes={self.num_classes}, ignore_index={self.ignore_index})')
