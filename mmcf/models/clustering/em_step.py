"""The E-step and M-step of Eq. 3 as one fused, chunked operation.

:class:`~mmcf.models.clustering.RecurrentClustering` runs one EM iteration
per call of :func:`fused_em_step`::

    M   = softmax_K(K_I Q^T + log pi)     # E-step, (N, K) per image and head
    C   = M^T V_I / sum_i M_i             # M-step, mean (or without the division: sum)

Written plainly (``RecurrentClustering(fused=False)``, the reference) this
writes the (N, K) float32 logits, reads them for the softmax, writes M,
reads M again for the mass and for the product with V, and autograd keeps M
of every iteration of every block for the backward pass. Here the pixels
are processed in chunks of ``rows`` whose (chunk, K) tiles stay in cache:
each chunk's logits become assignments, are added to the assignment mass and
multiplied into ``M^T V`` at once, and nothing of size (N, K) is written
unless the caller asks for the maps (``need_map``: explainability, a
dispatch that reads ``M``, a head's box reference). The backward pass
recomputes each chunk's assignments from the saved ``K_I``, ``Q`` and
``V_I`` (a custom :class:`torch.autograd.Function`), so training keeps no
(N, K) map per iteration: the memory of the clustering is that of its
inputs and outputs. With ``logits=`` the step centers, normalises and
scales the raw query projection itself, so backward keeps that (K, d)
tensor only. The values are read where they lie (a strided view of the
key/value projection needs no copy), and every product is exactly ``d``
or ``dv`` wide: the mass comes from its own one-column product, not from a
column of ones on the values, which made the M-step's product 33 columns
wide and 40% slower on the CPU than 32 (docs/en/analysis.md).

Gradients, with ``G = dL/dC`` (K, d), ``m_k`` the mass of center ``k`` and
``U = C`` the mean M-step::

    dL/dV_i  = sum_k M_ik G_k / m_k
    dL/dM_ik = (G_k . (V_i - U_k)) / m_k   (+ the caller's gradient of M)
    dL/dS_ik = M_ik (dL/dM_ik - sum_j M_ij dL/dM_ij)          # softmax
    dL/dK_i  = sum_k dL/dS_ik Q_k,   dL/dQ_k = sum_i dL/dS_ik K_i

The slow references in ``tests/models/test_em_step.py`` check values and
gradients against the plain formulas (fp32 and bf16, odd N, K > N, K = 1,
with and without the maps).

Precision follows the plain path: the logits' product runs in the inputs'
dtype, the softmax in float32, the M-step product (and with it the mass) in
the values' dtype with float32 accumulation across chunks. The chunk sizes
and dtypes come from :mod:`.chunks`, the vectors the logits compare from
:mod:`.geometry`, which the plain path reads too.
"""
from __future__ import annotations

import contextlib
import math
from typing import List, Optional, Tuple

import torch

from .chunks import acc_dtype, as_dtype, chunk_rows
from .geometry import LOGITS, logit_vectors, logit_vectors_backward

#: largest ``bound + log K`` for which ``exp`` of the raw logits can neither
#: overflow in a row sum nor underflow to zero in float32 (exp(88.7) is
#: float32's largest value, exp(-87.3) its smallest normal one)
MAX_EXP_BOUND = 80.0


def _use_bound(bound: Optional[float], num_centers: int, prior: Optional[torch.Tensor]
               ) -> bool:
    """Whether the softmax may skip its max pass: the logits are known to
    lie in [-bound, bound] (cosine logits times tau) and no prior is added."""
    return (bound is not None and prior is None
            and bound + math.log(max(num_centers, 1)) <= MAX_EXP_BOUND)


#: ``exp(x) = 2^(x log2 e)``: the bounded softmax runs ``exp2`` on logits made
#: with queries scaled by log2(e) (a (K, d) product instead of an (N, K) one);
#: ``exp2`` is the cheaper function on the CPU (measured in docs/en/analysis.md)
LOG2E = 1.4426950408889634


def _bounded_queries(qt: torch.Tensor) -> torch.Tensor:
    """The transposed queries of the bounded softmax: ``qt log2(e)``, so that
    ``exp2`` of their logits is ``exp`` of the logits."""
    return qt * LOG2E


def _assign_chunk(k: torch.Tensor, qt: torch.Tensor, prior: Optional[torch.Tensor],
                  s: int, e: int, bounded: bool = False) -> torch.Tensor:
    """Assignments (B, h, e - s, K) of pixels ``s:e``, float32 (float64 for
    float64 inputs). ``bounded``: the logits are bounded (:func:`_use_bound`)
    and ``qt`` comes from :func:`_bounded_queries`, so the softmax needs no
    shift and is ``exp2`` and one division."""
    logits = k[:, :, s:e] @ qt
    logits = as_dtype(logits, acc_dtype(logits.dtype))
    if bounded:
        m = logits.exp2_()
        return m.div_(m.sum(dim=-1, keepdim=True))
    if prior is not None:
        logits = logits + prior[:, :, s:e]
    return logits.softmax(dim=-1)


def _m_step_bounded(k: torch.Tensor, qt: torch.Tensor, v: torch.Tensor, s: int, e: int,
                    acc: torch.dtype, need_map: bool
                    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """E-step and M-step of pixels ``s:e`` for bounded logits without writing
    the normalised map: with ``E = exp(S)`` and ``r_i = 1 / sum_k E_ik``,
    ``M = r E``, so ``M^T V = E^T (r V)`` and the mass ``sum_i M_ik = (r^T
    E)_k``: two products on the (n, K) tile, no pass over it for the
    normalisation. Returns ``M^T V`` (B, h, K, dv), the mass (B, h, K, 1)
    and, with ``need_map``, M. ``qt`` comes from :func:`_bounded_queries`
    (``E`` is ``exp2`` of its logits)."""
    ex = as_dtype(k[:, :, s:e] @ qt, acc).exp2_()  # (B, h, n, K)
    r = ex.sum(dim=-1, keepdim=True).reciprocal_()  # (B, h, n, 1)
    ex_v = as_dtype(ex, v.dtype)
    prod = ex_v.transpose(-2, -1) @ as_dtype(v[:, :, s:e] * r, v.dtype)
    mass = (r.transpose(-2, -1) @ ex).transpose(-2, -1)  # (B, h, K, 1)
    return prod, mass, ex.mul_(r) if need_map else None


def _forward(k: torch.Tensor, q: torch.Tensor, v: torch.Tensor,
             prior: Optional[torch.Tensor], mean: bool, need_map: bool, rows: int,
             eps: float, bounded: bool = False
             ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """The fused step. ``v`` may be a strided view (the value half of the
    layer's key/value projection): each chunk reads it where it lies.
    Returns the M-step result (B, h, K, dv), the mass (B, h, K, 1) in the
    accumulation dtype and the map or None."""
    B, h, N, _ = k.shape
    K = q.shape[-2]
    acc = acc_dtype(v.dtype)
    qt = q.transpose(-2, -1)
    if bounded:
        qt = _bounded_queries(qt)
    total = mass = maps = None
    if need_map and N > rows:
        maps = torch.empty(B, h, N, K, device=v.device, dtype=v.dtype)
    for s in range(0, N, rows):
        e = min(s + rows, N)
        if bounded:
            prod, part, m = _m_step_bounded(k, qt, v, s, e, acc, need_map)
            m_v = as_dtype(m, v.dtype) if need_map else None
        else:
            m = _assign_chunk(k, qt, prior, s, e)
            m_v = as_dtype(m, v.dtype)
            prod = m_v.transpose(-2, -1) @ v[:, :, s:e]
            part = m.sum(dim=-2).unsqueeze(-1)
        if total is None:  # the first (or only) chunk
            total, mass = as_dtype(prod, acc), as_dtype(part, acc)
        else:
            total += prod
            mass += part
        if need_map:
            if maps is None:  # one chunk: the map itself
                maps = m_v
            else:
                maps[:, :, s:e] = m_v
    out = total / mass.clamp_min(eps) if mean else total
    return as_dtype(out, v.dtype), mass, maps


class _FusedEMStep(torch.autograd.Function):
    """Autograd of :func:`fused_em_step`: saves K, Q, V, the output and the
    mass, and recomputes the assignments chunk by chunk in backward."""

    @staticmethod
    def forward(ctx, k, q, v, prior, tau, mean, need_map, rows, eps, bounded, logits):
        q_eff = q if logits is None else as_dtype(
            logit_vectors(q, logits, tau, acc_dtype(q.dtype), parts=True)[0], k.dtype)
        out, mass, maps = _forward(k, q_eff, v, prior, mean, need_map, rows, eps, bounded)
        # with ``logits`` only the raw (K, d) projection is kept: the unit
        # vectors and the temperature's product are recomputed in backward
        ctx.save_for_backward(k, q, v, prior, tau, out, mass)
        ctx.mean, ctx.rows, ctx.eps, ctx.bounded = mean, rows, eps, bounded
        ctx.logits = logits
        if maps is None:
            maps = out.new_empty(0)
        ctx.mark_non_differentiable(mass)
        return out, mass, maps

    @staticmethod
    def backward(ctx, grad_out, grad_mass, grad_maps):
        k, q_raw, v, prior, tau, out, mass = ctx.saved_tensors
        logits = ctx.logits
        q, unit, inv = q_raw, None, None
        if logits is not None:  # recomputed once, for the products and for dQ
            q, unit, inv = logit_vectors(q_raw, logits, tau, acc_dtype(q_raw.dtype),
                                         parts=True)
            q = as_dtype(q, k.dtype)
        B, h, N, _ = k.shape
        rows, acc = ctx.rows, acc_dtype(v.dtype)
        g = as_dtype(grad_out, acc)
        if ctx.mean:
            safe = mass.clamp_min(ctx.eps)
            g_s = g / safe  # dL/d(sum_i M_ik V_i)
            # dL/dmass_k = -(G_k . U_k) / m_k, zero where the clamp holds
            g_mass = -(g_s * as_dtype(out, acc)).sum(-1) * (mass.squeeze(-1) > ctx.eps)
        else:
            g_s, g_mass = g, None
        # dL/dM_ik = V_i . g_s_k + g_mass_k
        g_s = as_dtype(g_s, v.dtype)
        g_mass_col = None if g_mass is None else g_mass.unsqueeze(-1)  # (B, h, K, 1)
        g_s_t = g_s.transpose(-2, -1)
        dv_ = g_s.shape[-1]
        if g_mass_col is not None:
            g_mass_row = as_dtype(g_mass_col, v.dtype).reshape(B * h, 1, -1)
        if grad_maps is not None and grad_maps.numel() == 0:
            grad_maps = None
        qt = q.transpose(-2, -1)  # the assignments' queries (the gradients take q)
        if ctx.bounded:
            qt = _bounded_queries(qt)
        need_k, need_q, need_v, need_p, need_tau = ctx.needs_input_grad[:5]
        need_q = need_q or (logits is not None and need_tau)
        # per-chunk gradients of the pixel-side inputs, joined at the end
        dk: List[torch.Tensor] = []
        dv: List[torch.Tensor] = []
        dprior: List[torch.Tensor] = []
        dq = None
        for s in range(0, N, rows):
            e = min(s + rows, N)
            m = _assign_chunk(k, qt, prior, s, e, ctx.bounded)  # (B, h, n, K)
            v_c = v[:, :, s:e]
            p = as_dtype(m, v.dtype) @ g_s  # (B, h, n, dv): dL/dV
            if need_v:
                dv.append(p)
            # dL/dM, and sum_k M_ik dL/dM_ik = V_i . (M g_s)_i + (M g_mass)_i
            row = (as_dtype(v_c, m.dtype) * as_dtype(p, m.dtype)).sum(dim=-1, keepdim=True)
            if g_mass_col is None:
                d_m = as_dtype(v_c @ g_s_t, m.dtype)
            else:
                n = e - s
                d_m = as_dtype(torch.baddbmm(g_mass_row.expand(B * h, n, -1),
                                        v_c.reshape(B * h, n, -1), g_s_t.reshape(B * h, dv_, -1)
                                        ).view(B, h, n, -1), m.dtype)
                row += m @ g_mass_col
            if grad_maps is not None:  # the caller's gradient of M
                g_m = as_dtype(grad_maps[:, :, s:e], m.dtype)
                d_m += g_m
                row += (m * g_m).sum(dim=-1, keepdim=True)
            d_logit = d_m.sub_(row).mul_(m)  # softmax backward
            if need_p:
                dprior.append(d_logit.sum(dim=1, keepdim=True)
                              if prior.shape[1] == 1 else d_logit)
            d_logit = as_dtype(d_logit, k.dtype)
            if need_k:
                dk.append(d_logit @ q)
            if need_q:
                part = d_logit.transpose(-2, -1) @ k[:, :, s:e]
                dq = as_dtype(part, acc) if dq is None else dq.add_(part)
        d_tau = None
        if dq is not None:
            if logits is None:
                dq = as_dtype(dq, q.dtype)
            else:
                dq, d_tau = logit_vectors_backward(
                    dq, q_raw, unit, inv, logits, tau, ctx.needs_input_grad[1], need_tau)

        def join(parts: List[torch.Tensor]) -> Optional[torch.Tensor]:
            if not parts:
                return None
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        return (join(dk), dq, join(dv), join(dprior), d_tau) + (None, ) * 6


def fused_em_step(k: torch.Tensor, q: torch.Tensor, v: torch.Tensor,
                  prior: Optional[torch.Tensor] = None, mean: bool = True,
                  need_map: bool = False, rows: Optional[int] = None, eps: float = 1e-6,
                  bound: Optional[float] = None, logits: Optional[str] = None,
                  tau: Optional[torch.Tensor] = None
                  ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """One E-step and M-step of Eq. 3, chunked over the pixels.

    Args:
        k: keys (B, h, N, d), as the logits compare them (normalised for
            cosine logits).
        q: queries (B, h, K, d), temperature included; with ``logits`` the
            raw query projection instead.
        v: values (B, h, N, dv); any strides (a view into the layer's
            key/value projection is read where it lies, chunk by chunk).
        prior: optional float32 log prior (B, 1 or h, N, K) added to the
            logits.
        mean: divide by the assignment mass (the EM mean M-step) or not
            (``'sum'``, the literal Eq. 3).
        need_map: also return the assignments (B, h, N, K) in ``v``'s
            dtype.
        rows: pixels per chunk (default :func:`chunk_rows`).
        eps: lower bound of the mass in the mean M-step.
        bound: a bound on ``|K_i . Q_k|`` known to the caller (cosine logits:
            the largest temperature), or None. With a bound (small enough,
            and no prior) the softmax skips its max pass: ``exp`` of the
            logits cannot overflow or vanish, and the normalisation is folded
            into the M-step product (:func:`_m_step_bounded`). Same values up
            to float rounding.
        logits: None, or how the logits see the raw queries ``q`` (Eq. 3 with
            the logits of :class:`~mmcf.models.clustering.RecurrentClustering`):
            ``'centered_cosine'`` ``tau * unit(q - mean_K q)``, ``'cosine'``
            ``tau * unit(q)``, ``'dot'`` ``tau * q``. Done inside the fused
            step, so backward keeps only the raw (K, d) projection instead
            of three (K, d) intermediates per iteration.
        tau: the temperature with ``logits``, broadcastable to (B, h, K, d)
            (the per-head (h, 1, 1)); it gets a gradient if it requires one.

    Returns:
        The M-step result (B, h, K, dv) in ``v``'s dtype and the map or
        None.
    """
    if k.dim() != 4 or q.dim() != 4 or v.dim() != 4:
        raise ValueError(f'fused_em_step expects (B, h, L, d) tensors, got k '
                         f'{tuple(k.shape)}, q {tuple(q.shape)}, v {tuple(v.shape)}')
    if logits is not None and (logits not in LOGITS or tau is None):
        raise ValueError(f'logits must be one of {LOGITS} and come with tau, got '
                         f'{logits!r} (tau {"given" if tau is not None else "None"})')
    B, h, N, _ = k.shape
    rows = chunk_rows(B * h, q.shape[-2], k.device, rows)
    # a jit trace (mmengine's FLOP counter) sees the plain products: no
    # autograd.Function (opaque to it) and no bounded softmax
    tracing = torch.jit.is_tracing()
    bounded = _use_bound(bound, q.shape[-2], prior) and not tracing
    if prior is not None and prior.dtype != torch.float64:
        prior = prior.float()
    device = k.device.type
    autocast = torch.is_autocast_enabled(device)
    if autocast:
        # what autocast would run the plain path's products in
        dtype = torch.get_autocast_dtype(device)
        k, q, v = k.to(dtype), q.to(dtype), v.to(dtype)
    # autocast is switched off inside (the dtypes are set above); entering
    # the context costs time, so only when it is on
    with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
        if torch.is_grad_enabled() and not tracing and any(
                t is not None and t.requires_grad for t in (k, q, v, prior, tau)):
            out, _, maps = _FusedEMStep.apply(k, q, v, prior, tau, mean, need_map, rows,
                                              eps, bounded, logits)
            return out, (maps if need_map else None)
        if logits is not None:
            q = as_dtype(logit_vectors(q, logits, tau, acc_dtype(q.dtype), parts=True)[0],
                    k.dtype)
        out, _, maps = _forward(k, q, v, prior, mean, need_map, rows, eps, bounded)
    return out, maps
