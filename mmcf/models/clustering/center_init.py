"""Eq. 5: the initial cluster centers of a block, pooled from the image grid.

Framework-free (torch only), as every module of :mod:`mmcf.models.clustering`.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn


def center_grid(num_centers: int) -> Tuple[int, int]:
    """The (rows, cols) pooling grid with ``rows * cols == num_centers``.

    The most square factorisation is used, e.g. 100 -> (10, 10),
    150 -> (10, 15), 7 -> (1, 7).
    """
    if num_centers < 1:
        raise ValueError(f'num_centers must be >= 1, got {num_centers}')
    rows = int(math.isqrt(num_centers))
    while num_centers % rows:
        rows -= 1
    return rows, num_centers // rows


def pooling_bins(length: int, bins: int, device: Optional[torch.device] = None
                 ) -> torch.Tensor:
    """(length, bins) bool: position ``i`` falls in adaptive-pooling bin
    ``b``, i.e. ``floor(b L / n) <= i < ceil((b + 1) L / n)`` (the windows
    ``adaptive_avg_pool`` averages; they overlap when ``L`` is not a multiple
    of ``n`` and repeat when ``L < n``)."""
    b = torch.arange(bins, device=device)
    start = (b * length) // bins
    end = -((-(b + 1) * length) // bins)
    i = torch.arange(length, device=device)[:, None]
    return (i >= start) & (i < end)


@functools.lru_cache(maxsize=256)
def _pooling_weights(length: int, bins: int, device: torch.device, dtype: torch.dtype
                     ) -> torch.Tensor:
    # cached, so never an inference tensor (a forward under inference_mode
    # would otherwise poison later training forwards) and never tracked
    with torch.inference_mode(False), torch.no_grad():
        inside = pooling_bins(length, bins).T.double()  # (bins, length)
        return (inside / inside.sum(dim=1, keepdim=True)).to(device=device, dtype=dtype)


def pooling_weights(length: int, bins: int, device: Optional[torch.device] = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(bins, length): row ``b`` averages the positions of adaptive-pooling
    bin ``b`` (:func:`pooling_bins`), so ``P @ x`` is ``adaptive_avg_pool1d``
    along that axis."""
    return _pooling_weights(length, bins, torch.device(device or 'cpu'), dtype)


class Mlp(nn.Module):
    """Two linear layers with a GELU between them (the paper's "FFN")."""

    def __init__(self, dim: int, hidden: int, out_dim: Optional[int] = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CenterInit(nn.Module):
    """Eq. 5: ``C^(0) = FFN(Adaptive_Pooling_K(I))``.

    The feature map is average-pooled adaptively to a ``rows x cols`` grid of
    ``K`` cells (see :func:`center_grid`); each cell becomes one center after
    a position-wise FFN. The paper leaves the FFN width open; ``ffn_ratio``
    sets its hidden width as a fraction of ``dim``.

    ``residual=True`` (default) adds the FFN to the pooled cell, ``C^(0) =
    P + FFN(P)`` with ``P = Adaptive_Pooling_K(I)``: the Transformer's
    position-wise FFN, which Eq. 5 names, always comes with its residual, and
    it keeps the centers "from image grids" (§3.2) as they are at
    initialisation, where a small-init FFN alone shrinks them to near zero
    (measured in docs/en/clustering.md). False is the literal Eq. 5.

    Args:
        dim: feature width D.
        num_centers: K.
        ffn_ratio: hidden width of the FFN relative to ``dim``.
        residual: ``P + FFN(P)`` instead of ``FFN(P)``.
    """

    def __init__(self, dim: int, num_centers: int, ffn_ratio: float = 0.25,
                 residual: bool = True):
        super().__init__()
        self.num_centers = num_centers
        self.residual = residual
        self.grid = center_grid(num_centers)
        self.ffn = Mlp(dim, max(1, int(round(dim * ffn_ratio))))

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        B, N, D = x.shape
        H, W = hw
        if N != H * W:
            raise ValueError(f'CenterInit: {N} tokens do not form a {H}x{W} map')
        rows, cols = self.grid
        # Adaptive average pooling is separable: average the columns of each
        # bin, then the rows, as two small products on the token-major map
        # (no NCHW copy; the same bins and values as adaptive_avg_pool2d)
        p_w = pooling_weights(W, cols, x.device, x.dtype)  # (cols, W)
        p_h = pooling_weights(H, rows, x.device, x.dtype)  # (rows, H)
        pooled = p_w @ x.reshape(B, H, W, D)  # (B, H, cols, D)
        pooled = (p_h @ pooled.reshape(B, H, cols * D)).reshape(B, rows * cols, D)
        return pooled + self.ffn(pooled) if self.residual else self.ffn(pooled)
