"""The other center updates of Table 6c, as small variants of Eq. 3.

Each is a :class:`~mmcf.models.clustering.RecurrentClustering` that
replaces one or two pieces of its EM iteration (the projections, the
E-step's normalisation, the M-step, the update) and is chosen by ``type`` in
a ``clustering_cfg``::

    clustering_cfg=dict(type='VanillaCrossAttention', num_iters=3)

Only the paper's layer and :class:`CosineClustering` keep Eq. 3's E/M hooks
(softmax over K, no mask, EM M-step), so only they run the fused E/M step;
the others override a hook and so run the plain formulas
(:meth:`~mmcf.models.clustering.RecurrentClustering.fuses`). ``m_step`` and ``residual`` do not apply to the
attention rows (:class:`VanillaCrossAttention`, :class:`CrissCrossClustering`),
whose update is always ``C <- C + A V``. Framework-free (torch only).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .center_init import center_grid, pooling_bins
from .rca import RecurrentClustering
from .registry import register_clustering


@register_clustering
class CosineClustering(RecurrentClustering):
    """Table 6c "cosine similarity": the E-step and M-step of Eq. 3 on the
    features and centers themselves, without the q/k/v projections
    (``S = tau cos(C_k, I_i)``, centered as ``logits`` says, ``V = I``); the
    only parameters are the temperatures. Needs ``num_heads * head_dim ==
    dim``."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, **kwargs)
        if self.inner_dim != dim:
            raise ValueError(f'{type(self).__name__} has no projections: num_heads * head_dim '
                             f'({self.num_heads} * {self.head_dim}) must equal dim {dim}')

    def build_projections(self, qkv_bias: bool) -> None:
        pass  # none

    def reset_projections(self) -> None:
        pass  # nothing to initialise

    def keys_values(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x, x

    def queries(self, c: torch.Tensor, t: int) -> torch.Tensor:
        return c


class _AttentionUpdate(RecurrentClustering):
    """Shared by the attention rows: the attention is normalised over the
    pixels (softmax over HW) and added to the centers, ``C <- C + A V``."""

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-2)

    def plain_m_step(self, m_nk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return m_nk.transpose(-2, -1) @ v

    def update(self, c: torch.Tensor, clustered: torch.Tensor) -> torch.Tensor:
        return c + clustered


@register_clustering
class VanillaCrossAttention(_AttentionUpdate):
    """Table 6c, Eq. 1: the vanilla cross-attention of [81], softmax over HW
    and a residual update ``C <- C + W_O (A V)``.

    The T iterations are T stacked cross-attention layers as a Transformer
    decoder has them: each has its own query projection (``q`` for the
    first, ``q_iters`` for the others; only the recurrent rows share one),
    keys and values are projected once, and the multi-head attention's output
    projection ``W_O`` (``out_proj``) maps the heads back. This is the
    reading of Table 6c's parameter count that comes closest with our widths
    (docs/en/ablations.md).
    """

    def build_projections(self, qkv_bias: bool) -> None:
        super().build_projections(qkv_bias)
        self.q_iters = nn.ModuleList(nn.Linear(self.dim, self.inner_dim, bias=qkv_bias)
                                     for _ in range(self.num_iters - 1))
        self.out_proj = nn.Linear(self.dim, self.dim)

    def queries(self, c: torch.Tensor, t: int) -> torch.Tensor:
        return self.q_iters[t - 1](c) if t else self.q(c)

    def update(self, c: torch.Tensor, clustered: torch.Tensor) -> torch.Tensor:
        return c + self.out_proj(clustered)


@register_clustering
class CrissCrossClustering(_AttentionUpdate):
    """Table 6c, criss-cross attention [35] (CCNet) as the center update.

    Each center sits at its cell (r, c) of the Eq. 5 pooling grid and
    attends only to the pixels on its criss-cross path, the pixel rows of
    grid row r and the pixel columns of grid column c (the pooling bins),
    softmax over those pixels as CCNet normalises over its H + W - 1
    positions, residual update ``C <- C + A V``; the T iterations share the
    projections as CCNet's recurrent loops do. Needs the map size (``hw``)
    and centers on the grid, i.e. the encoder's blocks.
    """

    def logit_mask(self, hw: Optional[Tuple[int, int]], num_pixels: int, num_centers: int,
                   device: torch.device) -> torch.Tensor:
        if hw is None or hw[0] * hw[1] != num_pixels:
            raise ValueError(f'{type(self).__name__} needs the (H, W) of the {num_pixels}-'
                             f'token map (hw), got {hw!r}')
        return self.criss_cross_mask(hw, num_centers, device)

    @staticmethod
    def criss_cross_mask(hw: Tuple[int, int], num_centers: int,
                         device: Optional[torch.device] = None) -> torch.Tensor:
        """(N, K) bool: pixel ``n`` lies on center ``k``'s criss-cross path,
        the pixel rows of its grid row or the pixel columns of its grid
        column (the adaptive-pooling bins of
        :class:`~mmcf.models.clustering.CenterInit`)."""
        H, W = hw
        rows, cols = center_grid(num_centers)
        in_row = pooling_bins(H, rows, device)  # (H, rows)
        in_col = pooling_bins(W, cols, device)  # (W, cols)
        # pixel (i, j) and center (r, c): in_row[i, r] or in_col[j, c]
        mask = in_row[:, None, :, None] | in_col[None, :, None, :]  # (H, W, rows, cols)
        return mask.reshape(H * W, rows * cols)


@register_clustering
class KMeansClustering(RecurrentClustering):
    """Table 6c, k-means cross-attention [95].

    The forward pass assigns every pixel to its arg-max center (a hard
    one-hot ``M``); the backward pass is straight-through to the E-step: it
    takes the gradient of the softmax over K of the same logits (``M = hard
    + soft - soft.detach()``), so ``q``, the key projection and everything
    before them train (without it the arg-max stops every gradient to them).
    The mean M-step divides by the count of each center's pixels, floored
    at 1 rather than 1e-6: it is >= 1 unless the center is empty (whose
    update is 0 anyway), and the floor keeps the straight-through gradient
    of an empty center from growing by 1e6 per block.
    """

    mass_floor = 1.0

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        index = logits.argmax(dim=-1, keepdim=True)
        hard = torch.zeros_like(logits).scatter_(-1, index, 1.0)
        if not torch.is_grad_enabled() or not logits.requires_grad:
            return hard
        soft = logits.softmax(dim=-1)
        return hard + (soft - soft.detach())
