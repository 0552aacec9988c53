"""The two mechanisms of ClusterFormer, as small framework-free torch modules.

Every task imports them from here, so the equations live in one place:

* :class:`CenterInit` - Eq. 5, initial centers from the image grid.
* :class:`RecurrentClustering` - Eq. 3 (and the other center updates of
  Table 6c: cosine similarity, vanilla cross-attention, criss-cross
  attention, k-means), recurrent cross-attention clustering.
* :class:`FeatureDispatch` - Eq. 6, feature dispatching (and the other
  dispatch rows of Table 6e).

Tensors are token-major: features ``x`` are ``(B, N, D)`` with ``N = H * W``,
centers ``c`` are ``(B, K, D)``. Nothing here depends on mmengine or mmcv.
"""
from __future__ import annotations

import functools
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .em_step import fused_em_step, inverse_norm, unit_vectors_backward

CENTER_UPDATES = ('recurrent', 'vanilla', 'kmeans', 'cosine', 'criss_cross')
LOGIT_TYPES = ('cosine', 'centered_cosine', 'dot')
PROJ_INITS = ('kmeans', 'random')
M_STEPS = ('mean', 'sum')
DISPATCH_SIMS = ('cosine', 'assignment')
DISPATCH_MODES = ('eq6', 'fc', 'confidence', 'fc_sim')


def unit_vectors(t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``t / |t|`` along the last axis, ``t / sqrt(|t|^2 + eps^2)`` exactly.

    Unlike ``F.normalize`` its gradient is finite at ``t = 0``, which the
    centered cosine logits meet whenever a pixel's key equals the image's mean
    key (a map of one token, a flat region in bf16) or all centers' queries
    are equal (one center): ``F.normalize`` clamps the norm there and its
    backward gives 0 * inf = NaN, which poisons every weight in one step. A
    zero vector stays zero (its logits are 0: a uniform assignment).

    The result is contiguous, and backward keeps only it and ``1 / |t|``
    (:class:`_UnitVectors`): ``d(t / n)/dt^T g = (g - f (f . g)) / n`` with
    ``f`` the result, so the input (for keys a (N, d) tensor per block) need
    not be kept.
    """
    if torch.is_grad_enabled() and t.requires_grad:
        return _UnitVectors.apply(t, eps)
    return t * inverse_norm(t, eps)


class _UnitVectors(torch.autograd.Function):
    """Autograd of :func:`unit_vectors` that saves its output, not its input."""

    @staticmethod
    def forward(ctx, t, eps):
        inv = inverse_norm(t, eps)
        # contiguous, in the dtype ``t * inv`` has (autocast may run the
        # norm in float32 on a GPU)
        out = torch.empty(t.shape, dtype=torch.result_type(t, inv), device=t.device)
        torch.mul(t, inv, out=out)
        ctx.save_for_backward(out, inv)
        return out

    @staticmethod
    def backward(ctx, grad):
        f, inv = ctx.saved_tensors
        return unit_vectors_backward(grad, f, inv), None


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


class RecurrentClustering(nn.Module):
    """Recurrent cross-attention clustering, Eq. 3 (one RCA layer of Eq. 4).

    For ``t = 1..T``::

        E-step:  M^(t)   = softmax_K(S(Q(C^(t)), K_I))            # (K, HW)
        M-step:  C^(t+1) = M^(t) V_I                              # (K, D)

    computed per head (head width ``head_dim``, so ``D / head_dim`` heads).
    ``K_I`` and ``V_I`` are projected from the features once; only ``Q`` is
    re-projected from the current centers at each iteration. The same three
    projections serve every iteration, so ``num_iters`` never changes the
    parameter count (Table 6b).

    **Logits** ``S`` (``logits``). Eq. 3 writes the dot product ``Q K^T``;
    §3.1 says clustering measures "the proximity between data points and
    cluster centroids" with "similarity metrics, such as cosine similarity":

    * ``'centered_cosine'`` (default): ``S_ki = tau_h cos(Q_k - Q_bar, K_i
      - K_bar)``, the cosine similarity of the projected center and pixel
      after removing, per image and head, the mean key over the pixels
      ``K_bar`` and the mean query over the centers ``Q_bar``; i.e. the
      proximity of a pixel to a centroid measured on what sets them apart
      from the rest of the image. ``tau_h = exp(logit_scale_h)`` is a learned
      per-head temperature (initialised to ``logit_scale``, capped at 100, as
      Swin V2's cosine attention).
    * ``'cosine'``: the same without the centering.
    * ``'dot'``: ``S_ki = Q_k K_i^T / sqrt(d)``, the scaled dot product as
      Eq. 3 writes it (mmcf 0.1).

    ``residual`` (default True) writes the M-step in the residual form of
    Eq. 2, the starting point of §3.1: ``C^(t+1) = C^(t) + M^(t) V_I``, so
    the centers keep what Eq. 5 pooled from their grid cell; False is Eq. 3's
    ``C^(t+1) = M^(t) V_I``.

    Why these defaults (measured in docs/en/clustering.md, 5 seeds of the
    classification demo): with the dot product and the backbone's small
    initialisation (std 0.02) the logits are ~1e-3, the first E-step is
    uniform over K, the mean M-step gives K identical centers, every later
    logit is equal for every k and the gradient that could separate the
    centers is zero: all K centers of every block are one vector, at
    initialisation and after training, and the §3.3 head is global average
    pooling. Cosine logits do not depend on the scale of the projections, but
    an image's features share a large common component, so plain cosines
    differ little between centers and training still drifts towards the
    uniform E-step; centering removes that component. The residual M-step
    keeps the centers' grid identity and gave the best accuracy. Together
    (with Eq. 5 as ``P + FFN(P)``, :class:`CenterInit`, and tau 5) the
    E-step of the `test` arch has entropy / log K of 0.82-0.85 at
    initialisation and 0.65-0.77 after the demo in every stage and seed, the
    centers stay apart (spread 0.15-0.68), and top-1 rose from 88.2% to
    94.2% (mmcf 0.1's options: ``logits='dot', residual=False``).

    **Center update** (Table 6c, ``update``):

    * ``'recurrent'`` - Eq. 3, softmax over the K centers.
    * ``'cosine'`` - "cosine similarity" updating: the same E-step and
      M-step on the features and centers themselves, without the q/k/v
      projections (``S = tau cos(C_k, I_i)``, centered as ``logits`` says,
      ``V = I``); the only parameters are the temperatures. Needs
      ``num_heads * head_dim == dim``.
    * ``'vanilla'`` - Eq. 1, the vanilla cross-attention of [81]: softmax
      over HW and a residual update ``C <- C + W_O (A V)``. The T iterations
      are T stacked cross-attention layers as a Transformer decoder has them:
      each has its own query projection (``q`` for the first, ``q_iters``
      for the others; only the recurrent rows share one), keys and values are
      projected once, and the multi-head attention's output projection
      ``W_O`` (``out_proj``) maps the heads back. This is the reading of
      Table 6c's 35.48M (against 27.85M) that comes closest with our
      widths (docs/en/ablations.md).
    * ``'criss_cross'`` - criss-cross attention [35] (CCNet) as the center
      update: each center sits at its cell (r, c) of the Eq. 5 pooling grid
      and attends only to the pixels on its criss-cross path, the pixel rows
      of grid row r and the pixel columns of grid column c (the pooling
      bins), softmax over those pixels as CCNet normalises over its H + W - 1
      positions, residual update ``C <- C + A V``; the T iterations share the
      projections as CCNet's recurrent loops do. Needs the map size
      (``hw``) and centers on the grid, i.e. the encoder's blocks.
    * ``'kmeans'`` - k-means cross-attention [95]: the forward pass assigns
      every pixel to its arg-max center (a hard one-hot ``M``); the backward
      pass is straight-through to the E-step: it takes the gradient of the
      softmax over K of the same logits (``M = hard + soft - soft.detach()``),
      so ``q``, the key projection and everything before them train
      (without it the arg-max stops every gradient to them).

    **Heads** (Table 6d). ``num_heads=None`` (the decoder's layers): the
    width ``dim`` is split into ``dim / head_dim`` heads. With ``num_heads``
    given (the encoder: Swin's 3/6/12/24 for tiny) the number of heads is
    fixed and ``head_dim`` is the width of each head's query and key, so the
    projections ``q`` and the key half of ``kv`` are ``num_heads * head_dim``
    wide and the parameters grow with ``head_dim`` (Table 6d); the values
    keep ``dim / num_heads`` per head, so the M-step returns centers of width
    ``dim`` without another projection. ``num_heads * head_dim == dim`` is
    the split model.

    ``m_step='mean'`` (default) - each center is the assignment-weighted
    *mean* of the values, ``C_k = sum_i M_ki V_i / sum_i M_ki``: the EM M-step
    that §3.2 says the layer follows, and a center scale that does not grow
    with HW, so one model serves 224 px and 1024 px inputs. ``'sum'`` is the
    literal ``C = M V`` of Eq. 3.

    **Recording** (explainability, Fig. 3, and cluster health): set
    ``record`` to ``'last'`` or ``'all'``; then every forward in eval mode
    keeps a detached reference to the maps of the last (or every) iteration
    and to the centers, and ``assignments`` (EM iteration -> head-averaged
    soft maps (B, K, N)) and ``health`` (:func:`cluster_health` of the last
    iteration) are computed from them when read.

    Args:
        dim: feature and center width D.
        head_dim: width of one head's query and key (32 in the paper,
            Table 6d).
        num_iters: T (3 in the paper, Table 6b).
        update: 'recurrent' | 'cosine' | 'vanilla' | 'criss_cross' |
            'kmeans' (Table 6c).
        m_step: 'mean' | 'sum'.
        logits: 'centered_cosine' | 'cosine' | 'dot'.
        logit_scale: initial temperature ``tau`` of the cosine logits.
        learn_logit_scale: learn ``tau`` per head (else it stays fixed).
        residual: residual M-step (Eq. 2 form).
        proj_init: 'random' (the owner's init: the backbone's truncated
            normal, a head's Xavier) | 'kmeans' (the E-step starts as cosine
            k-means, see :meth:`init_kmeans_`; measured, not the default).
        qkv_bias: add a bias to the q/k/v projections.
        num_heads: number of heads (fixed, ``head_dim`` sets their width);
            None: ``dim // head_dim``.
        fused: run each E-step and M-step of the softmax-over-K updates
            ('recurrent', 'cosine') as one chunked operation that writes no
            (N, K) map unless one is asked for and keeps none for backward
            (:func:`~mmcf.models.em_step.fused_em_step`); False: the plain
            formulas below, the reference. Same parameters, same results
            up to float rounding. The other updates always run plainly.
        chunk_rows: pixels per chunk of the fused step (default: sized to
            the cache, :func:`~mmcf.models.em_step.chunk_rows`).
    """

    max_logit_scale = 100.0

    def __init__(self,
                 dim: int,
                 head_dim: int = 32,
                 num_iters: int = 3,
                 update: str = 'recurrent',
                 m_step: str = 'mean',
                 logits: str = 'centered_cosine',
                 logit_scale: float = 5.0,
                 learn_logit_scale: bool = True,
                 residual: bool = True,
                 proj_init: str = 'random',
                 qkv_bias: bool = True,
                 num_heads: Optional[int] = None,
                 fused: bool = True,
                 chunk_rows: Optional[int] = None):
        super().__init__()
        if proj_init not in PROJ_INITS:
            raise ValueError(f'proj_init must be one of {PROJ_INITS}, got {proj_init!r}')
        if update not in CENTER_UPDATES:
            raise ValueError(f'update must be one of {CENTER_UPDATES}, got {update!r}')
        if m_step not in M_STEPS:
            raise ValueError(f'm_step must be one of {M_STEPS}, got {m_step!r}')
        if logits not in LOGIT_TYPES:
            raise ValueError(f'logits must be one of {LOGIT_TYPES}, got {logits!r}')
        if not isinstance(num_iters, int) or num_iters < 1:
            raise ValueError(f'num_iters (T) must be an integer >= 1, got {num_iters!r}')
        if not isinstance(head_dim, int) or head_dim < 1:
            raise ValueError(f'head_dim must be an integer >= 1, got {head_dim!r}')
        if num_heads is None:
            if dim % head_dim:
                raise ValueError(f'dim {dim} is not a multiple of head_dim {head_dim}')
            num_heads = dim // head_dim
        elif not isinstance(num_heads, int) or num_heads < 1 or dim % num_heads:
            raise ValueError(f'num_heads must be an integer >= 1 that divides dim {dim}, '
                             f'got {num_heads!r}')
        if update == 'cosine' and num_heads * head_dim != dim:
            raise ValueError(f"update='cosine' has no projections: num_heads * head_dim "
                             f'({num_heads} * {head_dim}) must equal dim {dim}')
        if not 0 < logit_scale <= self.max_logit_scale:
            raise ValueError(f'logit_scale must be in (0, {self.max_logit_scale}], '
                             f'got {logit_scale}')
        self.dim = dim
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.inner_dim = num_heads * head_dim  # width of queries and keys
        self.v_head_dim = dim // num_heads  # width of a head's values
        self.num_iters = num_iters
        self.update = update
        self.m_step = m_step
        self.logits = logits
        self.residual = residual
        self.proj_init = proj_init
        self.scale = head_dim ** -0.5
        if chunk_rows is not None and (not isinstance(chunk_rows, int) or chunk_rows < 1):
            raise ValueError(f'chunk_rows must be an integer >= 1 or None, got {chunk_rows!r}')
        self.fused = fused
        self.chunk_rows = chunk_rows
        if update != 'cosine':
            self.q = nn.Linear(dim, self.inner_dim, bias=qkv_bias)
            self.kv = nn.Linear(dim, self.inner_dim + dim, bias=qkv_bias)
        if update == 'vanilla':
            # T stacked cross-attention layers: a query projection each, and
            # the output projection of multi-head attention
            self.q_iters = nn.ModuleList(nn.Linear(dim, self.inner_dim, bias=qkv_bias)
                                         for _ in range(num_iters - 1))
            self.out_proj = nn.Linear(dim, dim)
        if logits != 'dot':
            init = torch.full((self.num_heads, 1, 1), math.log(logit_scale))
            if learn_logit_scale:
                self.logit_scale = nn.Parameter(init)
            else:
                self.register_buffer('logit_scale', init)
        self.reset_projections()
        self.record = 'none'
        self.clear_records()

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, heads={self.num_heads}, T={self.num_iters}, '
                f'update={self.update!r}, m_step={self.m_step!r}, logits={self.logits!r}, '
                f'residual={self.residual}, proj_init={self.proj_init!r}')

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, L, width = t.shape
        return t.reshape(B, L, self.num_heads, width // self.num_heads).transpose(1, 2)

    def _merge(self, t: torch.Tensor) -> torch.Tensor:
        B, h, L, d = t.shape
        return t.transpose(1, 2).reshape(B, L, h * d)

    def reset_projections(self) -> None:
        """Apply ``proj_init``: ``'kmeans'`` runs :meth:`init_kmeans_`;
        ``'random'`` leaves the projections to their owner's init (the
        backbone's truncated normal, a head's Xavier). Owners call it after
        their own initialisation."""
        if self.proj_init == 'kmeans' and self.update != 'cosine':
            self.init_kmeans_()

    @torch.no_grad()
    def init_kmeans_(self, std: float = 0.02) -> None:
        """Initialise the projections so that the E-step starts as cosine
        k-means between the centers and the features.

        ``W_q`` is drawn (truncated normal, ``std``), ``W_k`` is a copy of it
        and ``W_v`` is the identity scaled by ``std * sqrt(D)`` (the size a
        random ``std`` init gives the values), biases zero. Then ``V_I`` is
        the features and each M-step center a weighted mean of them, and
        ``cos(Q(C_k), K_i) = cos(W C_k, W I_i)`` compares center and feature
        in one space at every iteration, so the T iterations sharpen the
        clusters as k-means does. With independent random ``W_q``, ``W_k``,
        ``W_v`` the E-step after the first compares a center to features
        through an unrelated random bilinear form, every iteration mixes the
        clusters further and the K centers contract to their common mean
        (docs/en/clustering.md). Training moves all three freely.
        """
        D, inner = self.dim, self.inner_dim
        nn.init.trunc_normal_(self.q.weight, std=std)
        self.kv.weight[:inner].copy_(self.q.weight)
        # V = s I with s = std sqrt(D): values of the size a random std init gives
        self.kv.weight[inner:].copy_(torch.eye(D, dtype=self.kv.weight.dtype) * (std * D ** 0.5))
        for lin in (self.q, self.kv):
            if lin.bias is not None:
                lin.bias.zero_()

    def temperature(self) -> torch.Tensor:
        """The per-head factor on the logits, (h, 1, 1): ``tau_h`` for cosine
        logits, ``1 / sqrt(d)`` for dot-product logits."""
        if self.logits == 'dot':
            return torch.full((self.num_heads, 1, 1), self.scale)
        return self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()

    def _logit_vectors(self, t: torch.Tensor) -> torch.Tensor:
        """Keys (B, h, N, d) or queries (B, h, K, d) as the logits compare
        them: centered over the pixels, resp. the centers (``dim=-2``), for
        ``'centered_cosine'``, then unit vectors for both cosines; as they
        are for ``'dot'``."""
        if self.logits == 'centered_cosine':
            t = t - t.mean(dim=-2, keepdim=True)
        return t if self.logits == 'dot' else unit_vectors(t)

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        """E-step: turn pixel-major ``(B, h, N, K)`` logits (K on the last,
        contiguous axis) into the assignment ``M`` in the same layout.
        ``'criss_cross'`` logits come masked (-inf off the path)."""
        if self.update in ('recurrent', 'cosine'):
            return logits.softmax(dim=-1)
        if self.update in ('vanilla', 'criss_cross'):
            return logits.softmax(dim=-2)
        # k-means: hard one-hot forward, straight-through softmax backward
        index = logits.argmax(dim=-1, keepdim=True)
        hard = torch.zeros_like(logits).scatter_(-1, index, 1.0)
        if not torch.is_grad_enabled() or not logits.requires_grad:
            return hard
        soft = logits.softmax(dim=-1)
        return hard + (soft - soft.detach())

    @staticmethod
    def criss_cross_mask(hw: Tuple[int, int], num_centers: int,
                         device: Optional[torch.device] = None) -> torch.Tensor:
        """(N, K) bool: pixel ``n`` lies on center ``k``'s criss-cross path,
        the pixel rows of its grid row or the pixel columns of its grid
        column (the adaptive-pooling bins of :class:`CenterInit`)."""
        H, W = hw
        rows, cols = center_grid(num_centers)
        in_row = pooling_bins(H, rows, device)  # (H, rows)
        in_col = pooling_bins(W, cols, device)  # (W, cols)
        # pixel (i, j) and center (r, c): in_row[i, r] or in_col[j, c]
        mask = in_row[:, None, :, None] | in_col[None, :, None, :]  # (H, W, rows, cols)
        return mask.reshape(H * W, rows * cols)

    def forward(self,
                x: torch.Tensor,
                centers: torch.Tensor,
                keep_all: bool = False,
                hw: Optional[Tuple[int, int]] = None,
                prior: Optional[torch.Tensor] = None,
                return_maps: bool = True
                ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Cluster ``x`` (B, N, D) starting from ``centers`` (B, K, D).

        Returns the final centers (B, K, D) and the list of assignment maps
        ``M`` (B, heads, K, N): all T of them with ``keep_all`` (or when
        recording ``'all'`` in eval mode), else only the last one. ``hw``,
        the (H, W) of the map, is needed by ``update='criss_cross'`` only.

        ``prior`` (B, N, K), optional: a log prior added to every E-step's
        logits, ``M_ki = softmax_k(S_ki + log pi_ki)``: the E-step of a
        mixture whose mixing weights ``pi_ki`` vary per pixel (the decoder
        heads pass their previous layer's mask probabilities, see
        :class:`~mmcf.models.decoder.ClusterTransformerDecoder`).

        ``return_maps=False`` tells the layer that the caller does not read
        the maps: the fused E/M step then writes none and the list is empty
        (unless ``keep_all`` or recording asks for them).

        Every step is one batched matmul over (batch, heads); nothing loops
        over centers or pixels. K and V are projected and laid out once (K
        normalised once for cosine logits); the temperature is applied to the
        small Q. The logits are laid out pixel-major, (B, h, N, K), so the
        softmax over K of Eq. 3 runs along the contiguous axis, and the
        M-step reads ``M`` as a transposed view (BLAS takes it as is). The
        mean M-step divides the (K, d) result by the assignment mass instead
        of normalising the (K, N) map. The returned maps are (B, h, K, N)
        views of the (B, h, N, K) buffers.
        """
        recording = self.record != 'none' and not self.training
        keep_all = keep_all or (recording and self.record == 'all')
        want_last = return_maps or recording
        if self.update == 'cosine':
            k, v = x, x  # no projections
        else:
            k, v = self.kv(x).split([self.inner_dim, self.dim], dim=-1)  # once, Eq. 3
        k = self._logit_vectors(self._split(k)).contiguous()  # (B, h, N, d)
        v = self._split(v)
        fused = self.fused and self.update in ('recurrent', 'cosine')
        if fused:  # [V, 1], laid out once: its M-step sum is the mass
            v = torch.cat([v, v.new_ones(v.shape[:-1] + (1, ))], dim=-1)
        else:
            v = v.contiguous()
        tau = self.temperature()
        if tau.dtype != k.dtype or tau.device != k.device:
            tau = tau.to(device=k.device, dtype=k.dtype)
        if prior is not None:
            want = (x.shape[0], x.shape[1], centers.shape[1])
            if tuple(prior.shape) != want:
                raise ValueError(f'prior must be (B, N, K) = {want}, got '
                                 f'{tuple(prior.shape)}')
            prior = prior.float().unsqueeze(1)  # (B, 1, N, K), broadcast over heads
        mask = None
        if self.update == 'criss_cross':
            if hw is None or hw[0] * hw[1] != x.shape[1]:
                raise ValueError(f"update='criss_cross' needs the (H, W) of the {x.shape[1]}-"
                                 f'token map (hw), got {hw!r}')
            mask = self.criss_cross_mask(hw, centers.shape[1], x.device)  # (N, K)
        c = centers
        maps: List[torch.Tensor] = []
        # cosine logits lie in [-tau, tau]: the fused softmax needs no max pass
        # (on the CPU; on a GPU reading tau would cost a device sync per layer)
        bound = float(tau.detach().max()) if (
            fused and self.logits != 'dot' and k.device.type == 'cpu') else None
        for t in range(self.num_iters):
            if self.update == 'cosine':
                q = c
            elif self.update == 'vanilla' and t:
                q = self.q_iters[t - 1](c)  # a query projection per layer
            else:
                q = self.q(c)  # only Q is recomputed
            if fused:
                # the same E-step and M-step in one chunked pass (em_step.py),
                # which also centers, normalises and scales the raw queries
                need = keep_all or (want_last and t == self.num_iters - 1)
                c_heads, m_nk = fused_em_step(
                    k, self._split(q), v, prior, mean=self.m_step == 'mean', need_map=need,
                    rows=self.chunk_rows, bound=bound, query=self.logits, tau=tau,
                    ones_column=True)
                update = self._merge(c_heads)
                c = c + update if self.residual else update
                if m_nk is not None:
                    maps.append(m_nk.transpose(-2, -1))
                continue
            q = self._logit_vectors(self._split(q)) * tau
            # The softmax runs in float32 (or float64) whatever the input
            # precision, so large logits under bf16/fp16 autocast stay finite.
            logits = k @ q.transpose(-2, -1)  # (B, h, N, K)
            if logits.dtype not in (torch.float32, torch.float64):
                logits = logits.float()
            if prior is not None:
                logits = logits + prior
            if mask is not None:
                logits = logits.masked_fill(~mask, float('-inf'))
            m_nk = self.assign(logits).to(v.dtype)
            m = m_nk.transpose(-2, -1)  # (B, h, K, N) view
            c_heads = m @ v  # (B, h, K, d)
            if self.update == 'vanilla':
                c = c + self.out_proj(self._merge(c_heads))  # Eq. 1
            elif self.update == 'criss_cross':
                c = c + self._merge(c_heads)
            else:
                if self.m_step == 'mean':
                    mass = m_nk.sum(dim=-2).unsqueeze(-1)  # (B, h, K, 1)
                    # k-means: the mass is a count (>= 1 unless the center is
                    # empty, whose update is 0 anyway); 1 rather than 1e-6
                    # keeps the straight-through gradient of an empty center
                    # from growing by 1e6 per block
                    c_heads = c_heads / mass.clamp_min(1.0 if self.update == 'kmeans' else 1e-6)
                update = self._merge(c_heads)
                c = c + update if self.residual else update  # Eq. 2 / Eq. 3 M-step
            if keep_all or not maps:
                maps.append(m)
            else:
                maps[0] = m
        if not (want_last or keep_all):
            maps = []
        if recording:
            # references only (no copy, no work): maps and health are made
            # from them when read, so recording costs nothing per forward
            first = self.num_iters - len(maps)  # without keep_all only T-1
            self._records = dict(first=first, maps=[mt.detach() for mt in maps],
                                 centers=c.detach())
            self._assignments = self._health = None
        return c, maps

    # ------------------------------------------------------------ recording
    def clear_records(self) -> None:
        """Forget the recorded forward."""
        self._records: Optional[dict] = None
        self._assignments: Optional[Dict[int, torch.Tensor]] = None
        self._health: Optional[Dict[str, float]] = None

    @property
    def assignments(self) -> Dict[int, torch.Tensor]:
        """The recorded head-averaged soft maps, EM iteration (0..T-1) ->
        (B, K, N); empty when nothing was recorded."""
        if self._records is None:
            return {}
        if self._assignments is None:
            first = self._records['first']
            self._assignments = {first + t: m.mean(dim=1)
                                 for t, m in enumerate(self._records['maps'])}
        return self._assignments

    @property
    def health(self) -> Optional[Dict[str, float]]:
        """:func:`cluster_health` of the recorded forward's last EM
        iteration, or None when nothing was recorded."""
        if self._records is None:
            return None
        if self._health is None:
            self._health = cluster_health(self._records['maps'][-1], self._records['centers'])
        return self._health


def cluster_health(assignment: torch.Tensor, centers: torch.Tensor) -> Dict[str, float]:
    """How much a clustering clusters: three numbers for one E-step.

    Args:
        assignment: the soft maps ``M`` (B, heads, K, N) of one E-step.
        centers: the centers (B, K, D) of the following M-step.

    Returns:
        ``entropy``: the mean over images, heads and pixels of the entropy of
        a pixel's assignment over the K centers divided by ``log K`` (1: the
        uniform E-step, every pixel shared equally; 0: hard assignments; 0
        for K = 1). Columns of ``M`` are normalised over K first, so the
        softmax-over-HW map of Eq. 1 is measured on the same footing.
        ``spread``: relative spread of the centers, ``sqrt(mean_k |c_k -
        c_bar|^2) / sqrt(mean_k |c_k|^2)`` per image, averaged: 0 when all K
        centers are one vector, 1 when their mean is zero.
        ``used``: how many centers win (arg-max of the head-averaged map) at
        least one pixel, averaged over images. ``num_centers``: K.
    """
    if assignment.dim() != 4 or centers.dim() != 3:
        raise ValueError(f'cluster_health expects maps (B, heads, K, N) and centers '
                         f'(B, K, D), got {tuple(assignment.shape)} and {tuple(centers.shape)}')
    m = assignment.double()
    K = m.shape[2]
    p = m / m.sum(dim=2, keepdim=True).clamp_min(1e-30)
    if K > 1:
        ent = -(p * p.clamp_min(1e-30).log()).sum(dim=2) / math.log(K)
        entropy = float(ent.mean())
    else:
        entropy = 0.0
    c = centers.double()
    dev = (c - c.mean(dim=1, keepdim=True)).pow(2).sum(-1).mean(-1)
    norm = c.pow(2).sum(-1).mean(-1)
    spread = float((dev / norm.clamp_min(1e-30)).sqrt().mean())
    winners = p.mean(dim=1).argmax(dim=1)  # (B, N)
    used = sum(int(torch.unique(w).numel()) for w in winners) / winners.shape[0]
    return dict(entropy=entropy, spread=spread, used=used, num_centers=K)


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
