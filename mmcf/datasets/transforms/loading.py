"""COCO panoptic annotations without panopticapi."""
from __future__ import annotations

import numpy as np
from mmdet.datasets.transforms import LoadAnnotations, LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

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
