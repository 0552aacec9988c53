"""Reading COCO panoptic PNGs, shared by the loader, the PQ metric and the
data checks (panopticapi, which mmdet uses for this, is not on PyPI)."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colour to segment id: R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def read_panoptic_ids(path: str, backend_args: Optional[dict] = None) -> np.ndarray:
    """The (H, W) segment id map of a COCO panoptic PNG, read through
    mmengine's file backends (as the loader and the PQ metric read it);
    ValueError naming the file if it does not decode."""
    import mmcv
    from mmengine.fileio import get
    png = mmcv.imfrombytes(get(path, backend_args=backend_args), flag='color',
                           channel_order='rgb')
    if png is None:
        raise ValueError(f'{path}: cannot be read as an image')
    return rgb2id(png)


def segment_id_mismatch(ids: np.ndarray, listed: Any) -> Tuple[List[int], List[int]]:
    """Compare a panoptic PNG's id map (0 = unlabeled) with the segment ids
    its ``segments_info`` lists: (listed but absent from the PNG, in the PNG
    but not listed), each sorted."""
    in_png = set(np.unique(ids).tolist()) - {0}
    listed = set(listed)
    return sorted(listed - in_png), sorted(in_png - listed)
