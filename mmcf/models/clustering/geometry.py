"""The geometry of Eq. 3's logits: how keys and queries are compared.

``S_ik = K_i . Q_k`` with, per ``logits`` (see
:class:`~mmcf.models.clustering.RecurrentClustering`):

* ``'centered_cosine'``: ``tau cos(K_i - mean_i K, Q_k - mean_k Q)``;
* ``'cosine'``: ``tau cos(K_i, Q_k)``;
* ``'dot'``: ``Q_k K_i^T / sqrt(d)``.

:func:`logit_vectors` turns keys or queries into the vectors whose dot
products are these logits, :func:`key_vectors` does it for the (N, d) keys
in one chunked pass, and :func:`unit_vectors` is the unit length whose
gradient stays finite at zero. Both E/M paths read them: the plain formulas
(:meth:`~mmcf.models.clustering.RecurrentClustering.plain_logits`) and the
fused step (:mod:`.em_step`). Framework-free (torch only).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .chunks import acc_dtype, as_dtype, key_rows

#: the E-step logits of Eq. 3 (see :class:`~mmcf.models.clustering.RecurrentClustering`)
LOGITS = ('centered_cosine', 'cosine', 'dot')
#: the eps of every unit vector of the logits: ``t / sqrt(|t|^2 + eps^2)``
UNIT_EPS = 1e-4


def inverse_norm(t: torch.Tensor, eps: float = UNIT_EPS) -> torch.Tensor:
    """``1 / sqrt(|t|^2 + eps^2)`` along the last axis (keepdim): the
    finite-at-zero norm of :func:`unit_vectors`."""
    return torch.rsqrt(t.pow(2).sum(dim=-1, keepdim=True) + eps * eps)


def unit_vectors_backward(grad: torch.Tensor, unit: torch.Tensor, inv: torch.Tensor
                          ) -> torch.Tensor:
    """Gradient through ``f = t / n`` from the result ``f`` and ``1 / n``:
    ``df/dt^T g = (g - f (f . g)) / n`` (``n = sqrt(|t|^2 + eps^2)``)."""
    return (grad - unit * (unit * grad).sum(dim=-1, keepdim=True)) * inv


def unit_vectors(t: torch.Tensor, eps: float = UNIT_EPS) -> torch.Tensor:
    """``t / |t|`` along the last axis, ``t / sqrt(|t|^2 + eps^2)`` exactly.

    Unlike ``F.normalize`` its gradient is finite at ``t = 0``, which the
    centered cosine logits meet whenever a pixel's key equals the image's mean
    key (a map of one token, a flat region in bf16) or all centers' queries
    are equal (one center): ``F.normalize`` clamps the norm there and its
    backward gives 0 * inf = NaN, which poisons every weight in one step. A
    zero vector stays zero (its logits are 0: a uniform assignment).

    The result is contiguous, and backward keeps only it and ``1 / |t|``
    (:class:`_UnitVectors`, :func:`unit_vectors_backward`), so the input (for
    keys a (N, d) tensor per block) need not be kept.
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


def logit_vectors(t: torch.Tensor, logits: str, tau: Optional[torch.Tensor] = None,
                  dtype: Optional[torch.dtype] = None, parts: bool = False):
    """Keys (B, h, N, d) or queries (B, h, K, d) as the logits of Eq. 3
    compare them: centered over ``dim=-2`` (the pixels, resp. the centers)
    for ``'centered_cosine'``, then unit vectors for both cosines; as they are
    for ``'dot'``; times the temperature ``tau`` when given.

    ``dtype``: compute in it (the fused step: float32 for half inputs).
    ``parts=True`` (for a caller with its own backward, no autograd
    function): return ``(vectors, unit vectors, 1 / |.|)``, the last two
    None for ``'dot'``.
    """
    u = t if dtype is None else as_dtype(t, dtype)
    if logits == 'centered_cosine':
        u = u - u.mean(dim=-2, keepdim=True)
    unit = inv = None
    if logits != 'dot':
        if parts:
            inv = inverse_norm(u)
            u = unit = u * inv
        else:
            u = unit_vectors(u)
    if tau is not None:
        u = u * as_dtype(tau, u.dtype)
    return (u, unit, inv) if parts else u


def _key_vectors_forward(k: torch.Tensor, logits: str, rows: int
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit (centered) keys, contiguous, and ``1 / |.|`` (B, h, N, 1), made
    chunk by chunk: each chunk is read from ``k`` where it lies (a strided
    view of the key/value projection), centered and scaled while in cache,
    and written once into the result."""
    B, h, N, d = k.shape
    mean = k.mean(dim=-2, keepdim=True) if logits == 'centered_cosine' else None
    out = torch.empty((B, h, N, d), dtype=k.dtype, device=k.device)
    inv = torch.empty((B, h, N, 1), dtype=k.dtype, device=k.device)
    for s in range(0, N, rows):
        e = min(s + rows, N)
        part = k[:, :, s:e]
        if mean is not None:
            part = part - mean
        torch.rsqrt(part.pow(2).sum(dim=-1, keepdim=True).add_(UNIT_EPS * UNIT_EPS),
                    out=inv[:, :, s:e])
        torch.mul(part, inv[:, :, s:e], out=out[:, :, s:e])
    return out, inv


class _KeyVectors(torch.autograd.Function):
    """Autograd of :func:`key_vectors`: saves the unit keys and ``1 / |.|``
    (not the input), as :class:`_UnitVectors` does."""

    @staticmethod
    def forward(ctx, k, logits, rows):
        out, inv = _key_vectors_forward(k, logits, rows)
        ctx.save_for_backward(out, inv)
        ctx.logits = logits
        return out

    @staticmethod
    def backward(ctx, grad):
        out, inv = ctx.saved_tensors
        g = unit_vectors_backward(grad, out, inv)
        if ctx.logits == 'centered_cosine':
            g = g - g.mean(dim=-2, keepdim=True)
        return g, None, None


def key_vectors(k: torch.Tensor, logits: str, rows: Optional[int] = None) -> torch.Tensor:
    """The keys (B, h, N, d) as Eq. 3's logits compare them, contiguous:
    :func:`logit_vectors` without a temperature (``'centered_cosine'``: ``k
    - mean_N k`` as unit vectors, ``'cosine'``: unit vectors, ``'dot'``: as
    they are), in one pass over the map.

    ``logit_vectors(k, logits).contiguous()`` reads and writes the (N, d)
    map five times (the centering, the squares, the product, the layout
    copy), each into a new buffer; at 1024 px those are 25 MB per layer in
    stage 1. Here ``k`` (any strides: the key half of the layer's key/value
    projection, split into heads) is read once for the mean and once in
    chunks of ``rows`` pixels (default: 1 MB per chunk on the CPU), and
    the result is written once. Same values and gradients (tested against
    the formula in float64); backward keeps the result and ``1 / |.|``.
    """
    if logits not in LOGITS:
        raise ValueError(f'logits must be one of {LOGITS}, got {logits!r}')
    if logits == 'dot':
        return k.contiguous()
    rows = key_rows(k, rows)
    if torch.is_grad_enabled() and k.requires_grad:
        return _KeyVectors.apply(k, logits, rows)
    return _key_vectors_forward(k, logits, rows)[0]


def logit_vectors_backward(grad: torch.Tensor, q: torch.Tensor, unit: Optional[torch.Tensor],
                           inv: Optional[torch.Tensor], mode: str, tau: torch.Tensor,
                           need_q: bool, need_tau: bool
                           ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Gradients of :func:`logit_vectors` (``parts=True``) for the raw ``q`` and ``tau``,
    given the unit vectors and ``1 / |.|`` it returned: through the unit
    length (:func:`unit_vectors_backward`), then the centering's ``g -
    mean_K g``."""
    acc = acc_dtype(q.dtype)
    if mode == 'dot':
        unit = as_dtype(q, acc)
    d_tau = (grad * unit).sum_to_size(tau.shape).to(tau.dtype) if need_tau else None
    if not need_q:
        return None, d_tau
    g = grad * as_dtype(tau, acc)
    if mode != 'dot':
        g = unit_vectors_backward(g, unit, inv)
        if mode == 'centered_cosine':
            g = g - g.mean(dim=-2, keepdim=True)
    return as_dtype(g, q.dtype), d_tau
