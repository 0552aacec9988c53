"""Recurrent cross-attention clustering, Eq. 3 (one RCA layer of Eq. 4).

:class:`RecurrentClustering` is the paper's layer; the other center updates
of Table 6c subclass it (:mod:`.variants`) and are chosen by ``type`` in a
``clustering_cfg`` dict (:func:`~mmcf.models.clustering.registry.
build_clustering`). Its E-step and M-step run as plain formulas (the
reference) or fused (:mod:`.em_step`); both compare keys and queries
through :mod:`.geometry`. Framework-free (torch only).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from ..recording import ClusterRecords
from .em_step import fused_em_step
from .geometry import LOGITS, key_vectors, logit_vectors
from .registry import refuse_old_options, register_clustering

M_STEPS = ('mean', 'sum')
PROJ_INITS = ('kmeans', 'random')
#: the hooks of the E-step and M-step that the fused step computes itself
#: (:meth:`RecurrentClustering.fuses`)
EM_HOOKS = ('plain_logits', 'logit_mask', 'assign', 'plain_m_step')


@register_clustering
class RecurrentClustering(ClusterRecords, nn.Module):
    """Recurrent cross-attention clustering, Eq. 3 (one RCA layer of Eq. 4).

    For ``t = 1..T``::

        E-step:  M^(t)   = softmax_K(S(Q(C^(t)), K_I))            # (K, HW)
        M-step:  C^(t+1) = M^(t) V_I                              # (K, D)

    computed per head. ``K_I`` and ``V_I`` are projected from the features
    once; only ``Q`` is re-projected from the current centers at each
    iteration. The same three projections serve every iteration, so
    ``num_iters`` never changes the parameter count (Table 6b).

    **Logits** ``S`` (``logits``). Eq. 3 writes the dot product ``Q K^T``;
    §3.1 says clustering measures "the proximity between data points and
    cluster centroids" with "similarity metrics, such as cosine similarity":

    * ``'centered_cosine'`` (default): ``S_ki = tau_h cos(Q_k - Q_bar, K_i
      - K_bar)``, the cosine similarity of the projected center and pixel
      after removing, per image and head, the mean key over the pixels
      ``K_bar`` and the mean query over the centers ``Q_bar``: the proximity
      of a pixel to a centroid measured on what sets them apart from the
      rest of the image. ``tau_h = exp(logit_scale_h)`` is a learned per-head
      temperature (initialised to ``logit_scale``, capped at 100, as Swin
      V2's cosine attention).
    * ``'cosine'``: the same without the centering.
    * ``'dot'``: ``S_ki = Q_k K_i^T / sqrt(d)``, the scaled dot product as
      Eq. 3 writes it.

    With the dot product and a small initialisation the logits are ~0, the
    E-step is uniform over K and the K centers stay one vector; the cosine
    logits do not depend on the scale of the projections, and centering
    removes the component that all of an image's features share. The
    measurements behind the defaults are in docs/en/clustering.md.

    **M-step.** ``m_step='mean'`` (default): each center is the
    assignment-weighted *mean* of the values, ``C_k = sum_i M_ki V_i /
    sum_i M_ki``, the EM M-step that §3.2 says the layer follows (a center
    scale that does not grow with HW); ``'sum'`` is the literal ``C = M V``.
    ``residual=True`` (default) writes it in the residual form of Eq. 2,
    ``C^(t+1) = C^(t) + M^(t) V_I``, so the centers keep what Eq. 5 pooled
    from their grid cell; False is Eq. 3's ``C^(t+1) = M^(t) V_I``.

    **Heads** (Table 6d). ``num_heads=None`` (the decoder's layers): the
    width ``dim`` is split into ``dim / head_dim`` heads. With ``num_heads``
    given (the encoder: 3/6/12/24 for tiny) ``head_dim`` is the width of
    each head's query and key, so ``q`` and the key half of ``kv`` are
    ``num_heads * head_dim`` wide and the parameters grow with ``head_dim``;
    the values keep ``dim / num_heads`` per head, so the M-step returns
    centers of width ``dim`` without another projection.

    **Fused** (``fused=True``, default): each E-step and M-step runs as one
    chunked operation that writes no (N, K) map unless one is asked for and
    keeps none for backward (:func:`~mmcf.models.clustering.em_step.
    fused_em_step`); False runs the plain formulas, the reference. Same
    parameters, same results up to float rounding. The fused step computes
    the base class's E/M hooks (:data:`EM_HOOKS`) itself, so a subclass that
    overrides one runs the plain formulas (:meth:`fuses`).

    **Recording** (Fig. 3 and cluster health): with ``record`` set to
    ``'last'`` or ``'all'`` by the owner's recorder, every forward in eval
    mode keeps references to the maps and centers
    (:class:`~mmcf.models.recording.ClusterRecords`).

    Args:
        dim: feature and center width D.
        head_dim: width of one head's query and key (32 in the paper,
            Table 6d).
        num_iters: T (3 in the paper, Table 6b).
        m_step: 'mean' | 'sum'.
        logits: 'centered_cosine' | 'cosine' | 'dot'.
        logit_scale: initial temperature ``tau`` of the cosine logits.
        learn_logit_scale: learn ``tau`` per head (else it stays fixed).
        residual: residual M-step (Eq. 2 form).
        proj_init: 'random' (the owner's init: the backbone's truncated
            normal, a head's Xavier) | 'kmeans' (the E-step starts as cosine
            k-means, see :meth:`init_kmeans_`).
        qkv_bias: add a bias to the q/k/v projections.
        num_heads: number of heads (fixed, ``head_dim`` sets their width);
            None: ``dim // head_dim``.
        fused: the fused E/M step (see above).
        chunk_rows: pixels per chunk of the fused step (default: sized to
            the cache, :func:`~mmcf.models.clustering.chunks.chunk_rows`).
    """

    max_logit_scale = 100.0
    #: hooks of :data:`EM_HOOKS` that a subclass overrides with the same
    #: function as the base class's (a test must prove it), so that the
    #: fused step still computes it
    em_hooks_equal_to_base: Tuple[str, ...] = ()
    #: lower bound of the assignment mass that the mean M-step divides by
    mass_floor = 1e-6

    def __init__(self,
                 dim: int,
                 head_dim: int = 32,
                 num_iters: int = 3,
                 m_step: str = 'mean',
                 logits: str = 'centered_cosine',
                 logit_scale: float = 5.0,
                 learn_logit_scale: bool = True,
                 residual: bool = True,
                 proj_init: str = 'random',
                 qkv_bias: bool = True,
                 num_heads: Optional[int] = None,
                 fused: bool = True,
                 chunk_rows: Optional[int] = None,
                 **kwargs):
        super().__init__()
        refuse_old_options(type(self).__name__, kwargs)
        for name, value, allowed in (('proj_init', proj_init, PROJ_INITS),
                                     ('m_step', m_step, M_STEPS), ('logits', logits, LOGITS)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
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
        if not 0 < logit_scale <= self.max_logit_scale:
            raise ValueError(f'logit_scale must be in (0, {self.max_logit_scale}], '
                             f'got {logit_scale}')
        if chunk_rows is not None and (not isinstance(chunk_rows, int) or chunk_rows < 1):
            raise ValueError(f'chunk_rows must be an integer >= 1 or None, got {chunk_rows!r}')
        self.dim = dim
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.inner_dim = num_heads * head_dim  # width of queries and keys
        self.v_head_dim = dim // num_heads  # width of a head's values
        self.num_iters = num_iters
        self.m_step = m_step
        self.logits = logits
        self.residual = residual
        self.proj_init = proj_init
        self.scale = head_dim ** -0.5
        self.fused = fused
        self.chunk_rows = chunk_rows
        self.build_projections(qkv_bias)
        if logits != 'dot':
            init = torch.full((self.num_heads, 1, 1), math.log(logit_scale))
            if learn_logit_scale:
                self.logit_scale = nn.Parameter(init)
            else:
                self.register_buffer('logit_scale', init)
        self.reset_projections()
        self.clear_records()

    def build_projections(self, qkv_bias: bool) -> None:
        """``q`` for the centers, ``kv`` (keys and values at once) for the
        features."""
        self.q = nn.Linear(self.dim, self.inner_dim, bias=qkv_bias)
        self.kv = nn.Linear(self.dim, self.inner_dim + self.dim, bias=qkv_bias)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, heads={self.num_heads}, T={self.num_iters}, '
                f'm_step={self.m_step!r}, logits={self.logits!r}, '
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
        if self.proj_init == 'kmeans':
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
        clusters as k-means does. Training moves all three freely.
        """
        D, inner = self.dim, self.inner_dim
        nn.init.trunc_normal_(self.q.weight, std=std)
        self.kv.weight[:inner].copy_(self.q.weight)
        # V = s I with s = std sqrt(D): values of the size a random std init gives
        self.kv.weight[inner:].copy_(torch.eye(D, dtype=self.kv.weight.dtype) * (std * D ** 0.5))
        for lin in (self.q, self.kv):
            if lin.bias is not None:
                lin.bias.zero_()

    @classmethod
    def fuses(cls) -> bool:
        """Whether the fused step computes this class's E-step and M-step:
        only when every hook of :data:`EM_HOOKS` is the base class's (softmax
        over K of the logits, no mask, the EM M-step) or listed in
        ``em_hooks_equal_to_base``. A variant that overrides one (its own
        mask, normalisation or M-step) runs the plain formulas, with no flag
        to set or forget."""
        return all(getattr(cls, hook) is getattr(RecurrentClustering, hook)
                   or hook in cls.em_hooks_equal_to_base for hook in EM_HOOKS)

    def temperature(self) -> torch.Tensor:
        """The per-head factor on the logits, (h, 1, 1): ``tau_h`` for cosine
        logits, ``1 / sqrt(d)`` for dot-product logits."""
        if self.logits == 'dot':
            return torch.full((self.num_heads, 1, 1), self.scale)
        return self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()

    # ---------------------------------------------- the pieces of Eq. 3
    def keys_values(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``K_I`` (B, N, inner) and ``V_I`` (B, N, D), projected once."""
        return self.kv(x).split([self.inner_dim, self.dim], dim=-1)

    def queries(self, c: torch.Tensor, t: int) -> torch.Tensor:
        """``Q(C^(t))`` (B, K, inner) of EM iteration ``t``: one projection
        for all T iterations (the recurrence)."""
        return self.q(c)

    def logit_mask(self, hw: Optional[Tuple[int, int]], num_pixels: int, num_centers: int,
                   device: torch.device) -> Optional[torch.Tensor]:
        """(N, K) bool of the logits that exist (None: all of them)."""
        return None

    def plain_logits(self, k: torch.Tensor, q: torch.Tensor, tau: torch.Tensor,
                     prior: Optional[torch.Tensor], mask: Optional[torch.Tensor]
                     ) -> torch.Tensor:
        """The E-step's logits (B, h, N, K), pixel-major (K on the
        contiguous axis), in float32 (or float64) whatever the input
        precision, so large logits under bf16/fp16 autocast stay finite."""
        logits = k @ logit_vectors(q, self.logits, tau).transpose(-2, -1)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        if prior is not None:
            logits = logits + prior
        if mask is not None:
            logits = logits.masked_fill(~mask, float('-inf'))
        return logits

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        """E-step: the assignment ``M`` (B, h, N, K) of pixel-major logits,
        softmax over the K centers."""
        return logits.softmax(dim=-1)

    def plain_m_step(self, m_nk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """M-step: ``M^T V`` (B, h, K, dv), divided by the assignment mass for
        the mean M-step."""
        c_heads = m_nk.transpose(-2, -1) @ v
        if self.m_step == 'mean':
            c_heads = c_heads / m_nk.sum(dim=-2).unsqueeze(-1).clamp_min(self.mass_floor)
        return c_heads

    def update(self, c: torch.Tensor, clustered: torch.Tensor) -> torch.Tensor:
        """The new centers from the M-step's (B, K, D): Eq. 2's residual form
        or Eq. 3's replacement."""
        return c + clustered if self.residual else clustered

    # ------------------------------------------------------------ forward
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
        recording ``'all'``), else only the last one; none with
        ``return_maps=False`` (the caller does not read them: the fused step
        then writes none). ``hw``, the (H, W) of the map, is needed by
        variants that place centers on the image grid.

        ``prior`` (B, N, K), optional: a log prior added to every E-step's
        logits, ``M_ki = softmax_k(S_ki + log pi_ki)``: the E-step of a
        mixture whose mixing weights vary per pixel (the heads' mask prior,
        see :class:`~mmcf.models.decoder.ClusterTransformerDecoder`).

        Every step is one batched matmul over (batch, heads). K and V are
        projected and laid out once (K normalised once for cosine logits);
        the temperature is applied to the small Q. The maps are (B, h, K, N)
        views of pixel-major (B, h, N, K) buffers.
        """
        recording = self.recording
        keep_all = keep_all or (recording and self.record == 'all')
        want_last = return_maps or recording
        k, v = self.keys_values(x)  # once, Eq. 3
        fused = self.fused and self.fuses()
        k = self._split(k)  # (B, h, N, d), normalised once for cosine logits
        k = key_vectors(k, self.logits) if fused else logit_vectors(k, self.logits).contiguous()
        v = self._split(v)
        tau = self.temperature()
        if tau.dtype != k.dtype or tau.device != k.device:
            tau = tau.to(device=k.device, dtype=k.dtype)
        prior = self._check_prior(prior, x, centers)
        mask = self.logit_mask(hw, x.shape[1], centers.shape[1], x.device)
        bound = None
        if fused:
            # the fused step reads V where it lies; training keeps a compact
            # copy for backward instead of the whole key/value projection
            if torch.is_grad_enabled() and v.requires_grad:
                v = v.contiguous()
            # cosine logits lie in [-tau, tau]: the softmax needs no max pass
            # (on the CPU; on a GPU reading tau would cost a device sync)
            if self.logits != 'dot' and k.device.type == 'cpu':
                bound = float(tau.detach().max())
        else:
            v = v.contiguous()
        c, maps = centers, []
        for t in range(self.num_iters):
            q = self._split(self.queries(c, t))
            need = keep_all or (want_last and t == self.num_iters - 1)
            if fused:  # E-step and M-step in one chunked pass (em_step.py)
                c_heads, m_nk = fused_em_step(
                    k, q, v, prior, mean=self.m_step == 'mean', need_map=need,
                    rows=self.chunk_rows, eps=self.mass_floor, bound=bound,
                    logits=self.logits, tau=tau)
            else:
                m_nk = self.assign(self.plain_logits(k, q, tau, prior, mask)).to(v.dtype)
                c_heads = self.plain_m_step(m_nk, v)
            c = self.update(c, self._merge(c_heads))
            if need:
                maps.append(m_nk.transpose(-2, -1))
        if recording:
            self.keep_records(maps, c)
        return c, maps

    @staticmethod
    def _check_prior(prior: Optional[torch.Tensor], x: torch.Tensor, centers: torch.Tensor
                     ) -> Optional[torch.Tensor]:
        """The (B, N, K) prior as a float32 (B, 1, N, K), broadcast over heads."""
        if prior is None:
            return None
        want = (x.shape[0], x.shape[1], centers.shape[1])
        if tuple(prior.shape) != want:
            raise ValueError(f'prior must be (B, N, K) = {want}, got {tuple(prior.shape)}')
        return prior.float().unsqueeze(1)
