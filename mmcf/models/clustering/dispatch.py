"""Eq. 6: feature dispatching, and the other dispatch rows of Table 6e.

Framework-free (torch only), as every module of :mod:`mmcf.models.clustering`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .center_init import Mlp

DISPATCH_SIMS = ('cosine', 'assignment')
DISPATCH_MODES = ('eq6', 'fc', 'confidence', 'fc_sim')


class FeatureDispatch(nn.Module):
    """Eq. 6: ``p_i' = p_i + MLP(1/K sum_k sim(C_k, p_i) C_k)``, and the other
    dispatch rows of Table 6e (``mode``).

    This module returns the term added to ``p_i``; the block adds it (with
    stochastic depth). The paper does not define ``sim``:

    * ``sim='cosine'`` (default) - cosine similarity between the feature and
      each center, the similarity §3.1 names for clustering.
    * ``sim='assignment'`` - the soft assignment of the last E-step
      (``M`` transposed, averaged over heads), i.e. dispatching each feature
      from the centers it was assigned to.

    ``mode`` (Table 6e; "none" is the block without this module):

    * ``'eq6'`` (default) - Eq. 6 as above.
    * ``'fc'`` - "vanilla FC layer": one linear layer on the centers' mean,
      ``p_i' = p_i + FC(1/K sum_k C_k)``: Eq. 6 with neither the similarity
      nor the MLP, every feature gets the same update.
    * ``'confidence'`` - "confidence-based" [68]: each feature takes only its
      most likely center, weighted by how confident that assignment is,
      ``p_i' = p_i + MLP(a_i C_k*)`` with ``k* = argmax_k M_ki`` and ``a_i =
      M_k*i`` of the last E-step (head-averaged; the arg-max passes no
      gradient, ``a_i`` and ``C_k*`` do). Needs the assignment.
    * ``'fc_sim'`` - "FC with similarity" [58], Context Cluster's
      dispatching: each feature belongs to its most similar center (cosine)
      and receives it through an FC layer scaled by the similarity squashed
      with a learned affine map, ``p_i' = p_i + FC(sigmoid(alpha s_i + beta)
      C_k*)``, ``s_i = max_k cos(C_k, p_i)``, ``alpha = 1, beta = 0`` at
      start (CoC's aggregation-then-dispatch, with our centers as its
      aggregated features).

    Args:
        dim: feature width D.
        mlp_ratio: hidden width of the MLP relative to ``dim``.
        sim: 'cosine' | 'assignment' (mode 'eq6').
        mode: 'eq6' | 'fc' | 'confidence' | 'fc_sim'.
    """

    def __init__(self, dim: int, mlp_ratio: float = 0.25, sim: str = 'cosine',
                 mode: str = 'eq6'):
        super().__init__()
        if sim not in DISPATCH_SIMS:
            raise ValueError(f'sim must be one of {DISPATCH_SIMS}, got {sim!r}')
        if mode not in DISPATCH_MODES:
            raise ValueError(f'dispatch mode must be one of {DISPATCH_MODES}, got {mode!r}')
        self.sim = sim
        self.mode = mode
        if mode in ('eq6', 'confidence'):
            self.mlp = Mlp(dim, max(1, int(round(dim * mlp_ratio))))
        else:
            self.fc = nn.Linear(dim, dim)
        if mode == 'fc_sim':
            self.sim_alpha = nn.Parameter(torch.ones(()))
            self.sim_beta = nn.Parameter(torch.zeros(()))

    @property
    def needs_assignment(self) -> bool:
        """Whether the module reads the clustering's assignment map."""
        return self.mode == 'confidence' or (self.mode == 'eq6' and self.sim == 'assignment')

    def similarity(self, x: torch.Tensor, centers: torch.Tensor,
                   assignment: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``sim(C_k, p_i)`` as a (B, N, K) tensor."""
        if self.sim == 'cosine':
            return F.normalize(x, dim=-1) @ F.normalize(centers, dim=-1).transpose(1, 2)
        if assignment is None:
            raise ValueError("sim='assignment' needs the clustering's assignment map")
        return assignment.mean(dim=1).transpose(1, 2)

    def forward(self, x: torch.Tensor, centers: torch.Tensor,
                assignment: Optional[torch.Tensor] = None) -> torch.Tensor:
        K = centers.shape[1]
        if self.mode == 'fc':
            return self.fc(centers.mean(dim=1, keepdim=True)).expand_as(x)
        if self.mode == 'confidence':
            if assignment is None:
                raise ValueError("dispatch mode 'confidence' needs the clustering's "
                                 'assignment map (with_clustering=True)')
            conf, index = assignment.mean(dim=1).max(dim=1)  # (B, N)
            picked = torch.gather(centers, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            return self.mlp(conf.unsqueeze(-1).to(x.dtype) * picked)
        if self.mode == 'fc_sim':
            s, index = self.similarity(x, centers).max(dim=-1)  # cosine, (B, N)
            picked = torch.gather(centers, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            gate = torch.sigmoid(self.sim_alpha * s + self.sim_beta).unsqueeze(-1)
            return self.fc(gate * picked)
        if self.sim == 'cosine':
            return self._eq6_cosine(x, centers)
        agg = self.similarity(x, centers, assignment) @ centers
        return self.mlp(agg / K)

    def _eq6_cosine(self, x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """Eq. 6 with cosine similarity, the MLP's first layer folded in.

        ``z_i = 1/K sum_k cos(C_k, p_i) C_k = (p_i / |p_i|) A`` with the
        (D, D) matrix ``A = C_hat^T C / K``, and the MLP's first layer is
        linear, so ``fc1(z_i) = (p_i (A W_1^T)) / |p_i| + b_1``: the pixels
        meet one (D, D/4) matrix instead of ``A`` and then ``W_1``
        (``N D D / 4`` multiply-adds instead of ``N D D + N D D / 4``), and
        no (N, D) aggregate is kept for backward. When ``D >= 2K`` the
        (N, K) similarities are cheaper than ``A``: ``(p_i C_hat^T /
        |p_i|) (C W_1^T / K)``. Same values as ``mlp(z)`` up to rounding
        (tested against the formula).
        """
        K, D = centers.shape[1], x.shape[-1]
        fc1 = self.mlp.fc1
        c_hat = F.normalize(centers, dim=-1)
        inv_norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-12).reciprocal()
        w1 = fc1.weight.transpose(0, 1)  # (D, hidden)
        if w1.dtype != x.dtype:  # autocast
            w1 = w1.to(x.dtype)
        if D < 2 * K:
            h = x @ ((c_hat.transpose(1, 2) @ centers) @ (w1 / K))  # (B, N, hidden)
        else:
            h = (x @ c_hat.transpose(1, 2)) @ ((centers @ w1) / K)
        bias = fc1.bias if fc1.bias.dtype == h.dtype else fc1.bias.to(h.dtype)
        if inv_norm.dtype != h.dtype:
            inv_norm = inv_norm.to(h.dtype)
        h = torch.addcmul(bias, h, inv_norm)
        return self.mlp.fc2(self.mlp.act(h))
