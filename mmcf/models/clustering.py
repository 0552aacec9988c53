"""The two mechanisms of ClusterFormer, as small framework-free torch modules.

Every task imports them from here, so the equations live in one place:

* :class:`CenterInit` - Eq. 5, initial centers from the image grid.
* :class:`RecurrentClustering` - Eq. 3 (and Eq. 1 / k-means for the
  ablations of Table 6c), recurrent cross-attention clustering.
* :class:`FeatureDispatch` - Eq. 6, feature dispatching.

Tensors are token-major: features ``x`` are ``(B, N, D)`` with ``N = H * W``,
centers ``c`` are ``(B, K, D)``. Nothing here depends on mmengine or mmcv.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

CENTER_UPDATES = ('recurrent', 'vanilla', 'kmeans')
M_STEPS = ('mean', 'sum')
DISPATCH_SIMS = ('cosine', 'assignment')


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

    Args:
        dim: feature width D.
        num_centers: K.
        ffn_ratio: hidden width of the FFN relative to ``dim``.
    """

    def __init__(self, dim: int, num_centers: int, ffn_ratio: float = 0.25):
        super().__init__()
        self.num_centers = num_centers
        self.grid = center_grid(num_centers)
        self.ffn = Mlp(dim, max(1, int(round(dim * ffn_ratio))))

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        B, N, D = x.shape
        H, W = hw
        if N != H * W:
            raise ValueError(f'CenterInit: {N} tokens do not form a {H}x{W} map')
        grid = x.transpose(1, 2).reshape(B, D, H, W)
        pooled = F.adaptive_avg_pool2d(grid, self.grid)  # (B, D, rows, cols)
        return self.ffn(pooled.flatten(2).transpose(1, 2))  # (B, K, D)


class RecurrentClustering(nn.Module):
    """Recurrent cross-attention clustering, Eq. 3 (one RCA layer of Eq. 4).

    For ``t = 1..T``::

        E-step:  M^(t)   = softmax_K(Q(C^(t)) K_I^T / sqrt(d))   # (K, HW)
        M-step:  C^(t+1) = M^(t) V_I                              # (K, D)

    computed per head (head width ``head_dim``, so ``D / head_dim`` heads).
    ``K_I`` and ``V_I`` are projected from the features once; only ``Q`` is
    re-projected from the current centers at each iteration. The same three
    projections serve every iteration, so ``num_iters`` never changes the
    parameter count (Table 6b).

    Options where the paper is open or ablates (Table 6c):

    * ``update='recurrent'`` - Eq. 3, softmax over the K centers.
      ``'vanilla'`` - Eq. 1, ordinary cross-attention: softmax over HW and a
      residual update ``C <- C + A V``. ``'kmeans'`` - hard assignment, the
      arg-max over K of the same logits (k-means cross-attention); the
      gradient reaches the centers through ``V`` as in kMaX-DeepLab.
    * ``m_step='mean'`` (default) - each center is the assignment-weighted
      *mean* of the values, ``C_k = sum_i M_ki V_i / sum_i M_ki``: the EM
      M-step that §3.2 says the layer follows, and a center scale that does not
      grow with HW, so one model serves 224 px and 1024 px inputs.
      ``'sum'`` is the literal ``C = M V`` of Eq. 3.

    Args:
        dim: feature and center width D.
        head_dim: width of one head (32 in the paper, Table 6d).
        num_iters: T (3 in the paper, Table 6b).
        update: 'recurrent' | 'vanilla' | 'kmeans'.
        m_step: 'mean' | 'sum'.
        qkv_bias: add a bias to the q/k/v projections.
    """

    def __init__(self,
                 dim: int,
                 head_dim: int = 32,
                 num_iters: int = 3,
                 update: str = 'recurrent',
                 m_step: str = 'mean',
                 qkv_bias: bool = True):
        super().__init__()
        if update not in CENTER_UPDATES:
            raise ValueError(f'update must be one of {CENTER_UPDATES}, got {update!r}')
        if m_step not in M_STEPS:
            raise ValueError(f'm_step must be one of {M_STEPS}, got {m_step!r}')
        if num_iters < 1:
            raise ValueError(f'num_iters (T) must be >= 1, got {num_iters}')
        if head_dim < 1 or dim % head_dim:
            raise ValueError(f'dim {dim} is not a multiple of head_dim {head_dim}')
        self.dim = dim
        self.head_dim = head_dim
        self.num_heads = dim // head_dim
        self.num_iters = num_iters
        self.update = update
        self.m_step = m_step
        self.scale = head_dim ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, L, _ = t.shape
        return t.reshape(B, L, self.num_heads, self.head_dim).transpose(1, 2)

    def _merge(self, t: torch.Tensor) -> torch.Tensor:
        B, h, L, d = t.shape
        return t.transpose(1, 2).reshape(B, L, h * d)

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        """E-step: turn pixel-major ``(B, h, N, K)`` logits (K on the last,
        contiguous axis) into the assignment ``M`` in the same layout."""
        if self.update == 'recurrent':
            return logits.softmax(dim=-1)
        if self.update == 'vanilla':
            return logits.softmax(dim=-2)
        index = logits.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(logits).scatter_(-1, index, 1.0)

    def forward(self,
                x: torch.Tensor,
                centers: torch.Tensor,
                keep_all: bool = False
                ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Cluster ``x`` (B, N, D) starting from ``centers`` (B, K, D).

        Returns the final centers (B, K, D) and the list of assignment maps
        ``M`` (B, heads, K, N): all T of them with ``keep_all``, else only the
        last one.

        Every step is one batched matmul over (batch, heads); nothing loops
        over centers or pixels. K and V are projected and laid out once; the
        attention scale is applied to the small Q. The logits are laid out
        pixel-major, (B, h, N, K), so the softmax over K of Eq. 3 runs along
        the contiguous axis, and the M-step reads ``M`` as a transposed view
        (BLAS takes it as is). The mean M-step divides the (K, d) result by
        the assignment mass instead of normalising the (K, N) map. The
        returned maps are (B, h, K, N) views of the (B, h, N, K) buffers.
        """
        k, v = self.kv(x).chunk(2, dim=-1)  # computed once, Eq. 3
        k = self._split(k).contiguous()  # (B, h, N, d)
        v = self._split(v).contiguous()
        c = centers
        maps: List[torch.Tensor] = []
        for _ in range(self.num_iters):
            q = self._split(self.q(c)) * self.scale  # only Q is recomputed
            # The softmax runs in float32 (or float64) whatever the input
            # precision, so large logits under bf16/fp16 autocast stay finite.
            logits = k @ q.transpose(-2, -1)  # (B, h, N, K)
            if logits.dtype not in (torch.float32, torch.float64):
                logits = logits.float()
            m_nk = self.assign(logits).to(v.dtype)
            m = m_nk.transpose(-2, -1)  # (B, h, K, N) view
            c_heads = m @ v  # (B, h, K, d)
            if self.update == 'vanilla':
                c = c + self._merge(c_heads)  # Eq. 1
            else:
                if self.m_step == 'mean':
                    mass = m_nk.sum(dim=-2).unsqueeze(-1)  # (B, h, K, 1)
                    c_heads = c_heads / mass.clamp_min(1e-6)
                c = self._merge(c_heads)  # Eq. 3 M-step
            if keep_all or not maps:
                maps.append(m)
            else:
                maps[0] = m
        return c, maps


class FeatureDispatch(nn.Module):
    """Eq. 6: ``p_i' = p_i + MLP(1/K sum_k sim(C_k, p_i) C_k)``.

    This module returns the ``MLP(...)`` term; the block adds it to ``p_i``
    (with stochastic depth). The paper does not define ``sim``:

    * ``sim='cosine'`` (default) - cosine similarity between the feature and
      each center, the similarity §3.1 names for clustering.
    * ``sim='assignment'`` - the soft assignment of the last E-step
      (``M`` transposed, averaged over heads), i.e. dispatching each feature
      from the centers it was assigned to.

    Args:
        dim: feature width D.
        mlp_ratio: hidden width of the MLP relative to ``dim``.
        sim: 'cosine' | 'assignment'.
    """

    def __init__(self, dim: int, mlp_ratio: float = 0.25, sim: str = 'cosine'):
        super().__init__()
        if sim not in DISPATCH_SIMS:
            raise ValueError(f'sim must be one of {DISPATCH_SIMS}, got {sim!r}')
        self.sim = sim
        self.mlp = Mlp(dim, max(1, int(round(dim * mlp_ratio))))

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
        if self.sim == 'cosine':
            # sum_k cos(C_k, p_i) C_k = (p_i / |p_i|) (C_hat^T C): with the
            # (D, D) matrix C_hat^T C made first this costs N*D*D instead of
            # 2*N*K*D, chosen when smaller (D < 2K).
            c_hat = F.normalize(centers, dim=-1)
            inv_norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-12).reciprocal()
            if x.shape[-1] < 2 * K:
                agg = (x @ (c_hat.transpose(1, 2) @ centers)) * inv_norm
            else:
                agg = ((x @ c_hat.transpose(1, 2)) * inv_norm) @ centers
        else:
            agg = self.similarity(x, centers, assignment) @ centers
        return self.mlp(agg / K)
