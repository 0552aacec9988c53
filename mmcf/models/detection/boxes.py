"""Reference boxes of the detection head's box branch (§4.1.2 regresses
boxes from the final centers; the references are ours, see
:class:`~mmcf.models.detection.ClusterFormerDetHead`'s ``box_ref``)."""
from typing import Tuple

import torch
from torch import Tensor


def cluster_boxes(assign: Tensor, hw: Tuple[int, int], extent: Tensor) -> Tensor:
    """Boxes (B, K, 4), normalised (cx, cy, w, h), from the moments of
    each center's assignment map ``assign`` (B, heads, K, h*w) over the
    token grid ``hw``. ``extent`` (B, 2) is the padded input size over
    the image size (x, y): token coordinates are fractions of the padded
    input, boxes fractions of the image."""
    h, w = hw
    m = assign.float().mean(1)  # (B, K, N)
    m = m / m.sum(-1, keepdim=True).clamp_min(1e-6)
    ys = (torch.arange(h, device=m.device, dtype=m.dtype) + 0.5) / h
    xs = (torch.arange(w, device=m.device, dtype=m.dtype) + 0.5) / w
    gx = xs.repeat(h)[None, None] * extent[:, None, None, 0]
    gy = ys.repeat_interleave(w)[None, None] * extent[:, None, None, 1]
    mx, my = (m * gx).sum(-1), (m * gy).sum(-1)
    sx = ((m * (gx - mx[..., None])**2).sum(-1)).clamp_min(1e-8).sqrt()
    sy = ((m * (gy - my[..., None])**2).sum(-1)).clamp_min(1e-8).sqrt()
    box = torch.stack([mx, my, sx * 12**0.5, sy * 12**0.5], dim=-1)
    return box.clamp(1e-3, 1 - 1e-3)


def mask_boxes(mask_logits: Tensor, fallback: Tensor, extent: Tensor) -> Tensor:
    """Boxes (B, K, 4), normalised (cx, cy, w, h), around the pixels
    of each mask (B, K, h, w) with ``sigmoid > 0.5`` (cell edges of the
    mask grid); ``fallback`` boxes for empty masks."""
    B, K, h, w = mask_logits.shape
    fg = mask_logits > 0
    cols, rows = fg.any(dim=2), fg.any(dim=3)  # (B, K, w), (B, K, h)
    xs = torch.arange(w, device=fg.device)
    ys = torch.arange(h, device=fg.device)
    big = max(h, w) + 1
    x1 = torch.where(cols, xs, big).amin(-1).float() / w
    x2 = (torch.where(cols, xs, -1).amax(-1).float() + 1) / w
    y1 = torch.where(rows, ys, big).amin(-1).float() / h
    y2 = (torch.where(rows, ys, -1).amax(-1).float() + 1) / h
    ex, ey = extent[:, None, 0], extent[:, None, 1]
    box = torch.stack([(x1 + x2) / 2 * ex, (y1 + y2) / 2 * ey, (x2 - x1) * ex,
                       (y2 - y1) * ey], dim=-1).clamp(1e-3, 1 - 1e-3)
    empty = ~cols.any(-1)
    return torch.where(empty[..., None], fallback.to(box.dtype), box)
