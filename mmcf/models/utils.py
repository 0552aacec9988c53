"""Small helpers shared by mmcf's OpenMMLab modules."""
import contextlib
import functools
import logging
from typing import Iterator, List, Optional, Sequence, Union

import torch
from mmengine.logging import MMLogger


def loads_pretrained(init_cfg: Optional[Union[dict, List[dict]]]) -> bool:
    """Whether ``init_cfg`` (a dict or a list of them) loads a checkpoint,
    in which case a module skips its own random initialisation."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)


@contextlib.contextmanager
def quiet_init_report() -> Iterator[None]:
    """Silence mmengine's per-parameter initialisation report when it would
    go to the console.

    mmengine's ``BaseModule.init_weights`` of the outermost module writes one
    "The value is the same before and after calling `init_weights`" entry
    per parameter: to the log file inside a runner (kept), and as hundreds of
    INFO lines on the console when a model is built outside one (dropped).
    """
    logger = MMLogger.get_current_instance()
    if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        yield
        return
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(size_in: int, size_out: int, align_corners: bool,
                          device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # cached, so never an inference tensor (a forward under inference_mode
    # would otherwise poison later training forwards) and never tracked
    with torch.inference_mode(False), torch.no_grad():
        dst = torch.arange(size_out, dtype=torch.float64)
        if align_corners:
            src = dst * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
        else:  # pixel centres; sources left of the first centre take it
            src = ((dst + 0.5) * (size_in / size_out) - 0.5).clamp_min(0)
        lo = src.floor().long().clamp(max=size_in - 1)
        hi = (lo + 1).clamp(max=size_in - 1)
        frac = src - lo
        rows = torch.arange(size_out)
        weights = torch.zeros(size_out, size_in, dtype=torch.float64)
        weights.index_put_((rows, lo), 1 - frac, accumulate=True)
        weights.index_put_((rows, hi), frac, accumulate=True)
        return weights.to(device=device, dtype=dtype)


def interpolation_matrix(size_in: int, size_out: int, align_corners: bool = False,
                         device: Optional[torch.device] = None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(size_out, size_in): row ``i`` holds the weights with which bilinear
    interpolation (``F.interpolate(mode='bilinear')``, without antialiasing)
    mixes the input positions into output position ``i`` along one axis."""
    return _interpolation_matrix(size_in, size_out, align_corners,
                                 torch.device(device or 'cpu'), dtype)


def resize_bilinear(x: torch.Tensor, size: Sequence[int], align_corners: bool = False
                    ) -> torch.Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=...)`` of a
    (..., h, w) tensor as two small products, ``A_h x A_w^T``.

    Bilinear interpolation is separable and linear, so it is a matrix on
    each axis (:func:`interpolation_matrix`). As products its backward is
    two more products instead of the scatter-add of
    ``upsample_bilinear2d_backward``, several times faster on the CPU for
    the logits a decode head upsamples to its labels every step. Same values
    up to float rounding (tested against ``F.interpolate``).
    """
    h, w = x.shape[-2:]
    H, W = (int(s) for s in size)
    if (h, w) == (H, W):
        return x
    a_h = interpolation_matrix(h, H, align_corners, x.device, x.dtype)
    a_w = interpolation_matrix(w, W, align_corners, x.device, x.dtype)
    return a_h @ (x @ a_w.transpose(0, 1))
