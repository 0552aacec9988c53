"""The fused E/M step (mmcf/models/clustering/em_step.py) against the plain formulas of
Eq. 3, in value and gradient."""
import importlib
import os.path as osp
import sys
import types

import pytest
import torch

_pkg = types.ModuleType('mmcf_framework_free')
_pkg.__path__ = [osp.join(osp.dirname(__file__), '..', '..', 'mmcf', 'models')]
sys.modules.setdefault('mmcf_framework_free', _pkg)
clustering = importlib.import_module('mmcf_framework_free.clustering')
em_step = importlib.import_module('mmcf_framework_free.clustering.em_step')
geometry = importlib.import_module('mmcf_framework_free.clustering.geometry')
chunks = importlib.import_module('mmcf_framework_free.clustering.chunks')
fused_em_step = em_step.fused_em_step
RecurrentClustering = clustering.RecurrentClustering


def reference_em(k, q, v, prior=None, mean=True):
    """Eq. 3's E-step and M-step written out per image, head and center:
    ``M_ik = exp(S_ik) / sum_j exp(S_ij)`` with ``S_ik = K_i . Q_k (+ log
    pi_ik)``, then ``C_k = sum_i M_ik V_i`` (divided by ``sum_i M_ik`` for the
    mean M-step). Returns C (B, h, K, dv) and M (B, h, N, K)."""
    B, h, N, _ = k.shape
    K = q.shape[2]
    outs, maps = [], []
    for b in range(B):
        for hd in range(h):
            rows = []
            for i in range(N):
                s = torch.stack([k[b, hd, i] @ q[b, hd, c] for c in range(K)])
                if prior is not None:
                    s = s + prior[b, min(hd, prior.shape[1] - 1), i]
                e = torch.exp(s - s.max())
                rows.append(e / e.sum())
            m = torch.stack(rows)  # (N, K)
            cs = []
            for c in range(K):
                upd = (m[:, c, None] * v[b, hd]).sum(0)
                if mean:
                    upd = upd / m[:, c].sum().clamp_min(1e-6)
                cs.append(upd)
            outs.append(torch.stack(cs))
            maps.append(m)
    dv = v.shape[-1]
    return (torch.stack(outs).reshape(B, h, K, dv), torch.stack(maps).reshape(B, h, N, K))


def _inputs(B, h, N, K, d, dv, dtype=torch.float64, prior=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(B, h, N, d, generator=g, dtype=dtype).requires_grad_()
    q = (2 * torch.randn(B, h, K, d, generator=g, dtype=dtype)).requires_grad_()
    v = torch.randn(B, h, N, dv, generator=g, dtype=dtype).requires_grad_()
    p = torch.randn(B, 1, N, K, generator=g, dtype=torch.float32).log_softmax(-1)
    p = p.to(dtype).requires_grad_() if prior else None
    return k, q, v, p


CASES = [  # (B, h, N, K, rows): odd N in uneven chunks, K > N, K = 1
    (2, 2, 37, 5, 8), (1, 3, 5, 9, 2), (2, 1, 11, 1, 4), (1, 2, 16, 4, 16), (1, 1, 9, 3, None)]


@pytest.mark.parametrize('B,h,N,K,rows', CASES)
@pytest.mark.parametrize('mean', [True, False])
@pytest.mark.parametrize('need_map', [False, True])
@pytest.mark.parametrize('prior,bounded', [(False, False), (True, False), (False, True)])
def test_fused_em_step_matches_reference_value_and_gradient(B, h, N, K, rows, mean,
                                                             need_map, prior, bounded):
    """``bounded``: the caller gives a bound on the logits, so the softmax
    runs as exp and one division, folded into the M-step."""
    k, q, v, p = _inputs(B, h, N, K, 4, 3, prior=prior)
    bound = float((k @ q.transpose(-2, -1)).abs().max()) if bounded else None
    assert em_step._use_bound(bound, K, p) == bounded
    out, maps = fused_em_step(k, q, v, p, mean=mean, need_map=need_map, rows=rows,
                              bound=bound)
    ref, ref_maps = reference_em(k, q, v, p, mean)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    assert (maps is None) == (not need_map)
    w = torch.randn_like(ref)
    loss, ref_loss = (out * w).sum(), (ref * w).sum()
    if need_map:  # a gradient through the maps as well
        torch.testing.assert_close(maps, ref_maps, rtol=1e-10, atol=1e-10)
        wm = torch.randn_like(ref_maps)
        loss, ref_loss = loss + (maps * wm).sum(), ref_loss + (ref_maps * wm).sum()
    inputs = [t for t in (k, q, v, p) if t is not None]
    grads = torch.autograd.grad(loss, inputs)
    ref_grads = torch.autograd.grad(ref_loss, inputs)
    for name, g, r in zip('kqvp', grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9, msg=f'd{name}')


def test_fused_em_step_gradcheck():
    k, q, v, p = _inputs(1, 2, 7, 3, 3, 2, prior=True)
    assert torch.autograd.gradcheck(
        lambda *a: fused_em_step(*a, mean=True, need_map=True, rows=3)[0].sum() +
        fused_em_step(*a, mean=True, need_map=True, rows=3)[1].square().sum(), (k, q, v, p))


def test_fused_em_step_bf16_close_to_reference():
    k, q, v, _ = _inputs(2, 3, 45, 7, 8, 8, dtype=torch.float32)
    kb, qb, vb = (t.detach().bfloat16().requires_grad_() for t in (k, q, v))
    out, _ = fused_em_step(kb, qb, vb, rows=16)
    assert out.dtype == torch.bfloat16
    ref, _ = reference_em(*(t.detach().double().requires_grad_() for t in (kb, qb, vb)))
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)
    w = torch.randn(ref.shape, dtype=torch.float64)
    grads = torch.autograd.grad((out.double() * w).sum(), (kb, qb, vb))
    kd, qd, vd = (t.detach().double().requires_grad_() for t in (kb, qb, vb))
    ref_grads = torch.autograd.grad((reference_em(kd, qd, vd)[0] * w).sum(), (kd, qd, vd))
    for g, r in zip(grads, ref_grads):
        assert g.dtype == torch.bfloat16
        err = (g.double() - r).abs().max() / r.abs().max()
        assert err < 3e-2, float(err)


def test_fused_em_step_under_autocast_runs_in_the_autocast_dtype():
    k, q, v, _ = _inputs(1, 2, 20, 4, 8, 8, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, maps = fused_em_step(k, q, v, need_map=True, rows=7)
    assert out.dtype == maps.dtype == torch.bfloat16
    ref, _ = reference_em(k.double(), q.double(), v.double())
    torch.testing.assert_close(out.double(), ref, rtol=3e-2, atol=3e-2)
    (out.float().sum()).backward()
    assert k.grad.dtype == torch.float32 and torch.isfinite(k.grad).all()


def test_fused_em_step_refuses_bad_shapes():
    with pytest.raises(ValueError, match='expects'):
        fused_em_step(torch.zeros(2, 3, 4), torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match='chunk rows'):
        chunks.chunk_rows(1, 4, torch.device('cpu'), rows=0)


def _pair(seed=0, **kw):
    torch.manual_seed(seed)
    build = clustering.build_clustering
    fused = build(dict(head_dim=4, num_iters=3, fused=True, chunk_rows=5, **kw), 16)
    plain = build(dict(head_dim=4, num_iters=3, fused=False, **kw), 16)
    plain.load_state_dict(fused.state_dict())
    return fused.double(), plain.double()


@pytest.mark.parametrize('kw', [dict(), dict(m_step='sum', residual=False),
                                dict(type='CosineClustering'), dict(logits='dot')])
@pytest.mark.parametrize('record', ['none', 'last', 'all'])
def test_clustering_fused_equals_plain(kw, record):
    fused, plain = _pair(**kw)
    assert list(fused.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 23, 16, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 6, 16, dtype=torch.float64)
    outs = []
    for mod in (fused, plain):
        mod.record = record
        mod.train(record == 'none')
        c, maps = mod(x, c0)
        grads = torch.autograd.grad(c.square().sum() + maps[-1].sum() * 0.5,
                                    [x] + list(mod.parameters()))
        outs.append((c, maps, grads, mod.assignments, mod.health))
    (c, maps, grads, assign, health), (rc, rmaps, rgrads, rassign, rhealth) = outs
    torch.testing.assert_close(c, rc, rtol=1e-10, atol=1e-10)
    assert len(maps) == len(rmaps) == (3 if record == 'all' else 1)
    for m, r in zip(maps, rmaps):
        torch.testing.assert_close(m, r, rtol=1e-10, atol=1e-10)
    for g, r in zip(grads, rgrads):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)
    assert assign.keys() == rassign.keys()
    for t in assign:
        torch.testing.assert_close(assign[t], rassign[t])
    if record != 'none':
        assert health == pytest.approx(rhealth)


def test_clustering_return_maps_false_writes_no_map_unless_recording():
    fused, _ = _pair()
    x, c0 = torch.randn(1, 30, 16, dtype=torch.float64), torch.randn(1, 4, 16, dtype=torch.float64)
    _, maps = fused(x, c0, return_maps=False)
    assert maps == []
    fused.record = 'last'
    fused.eval()
    _, maps = fused(x, c0, return_maps=False)
    assert len(maps) == 1 and maps[0].shape == (1, 4, 4, 30)
    assert fused.health is not None


def test_fused_clustering_keeps_no_pixel_by_center_map_for_backward():
    """The point of the custom autograd: nothing of size (N, K) per
    iteration is saved for backward; the plain path saves T of them."""
    N, K = 97, 11
    x = torch.randn(1, N, 16, requires_grad=True)
    c0 = torch.randn(1, K, 16)
    saved = {}
    for fused in (True, False):
        torch.manual_seed(0)
        mod = RecurrentClustering(16, head_dim=4, num_iters=3, fused=fused)
        shapes = []

        def pack(t, shapes=shapes):
            shapes.append(tuple(t.shape))
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            c, _ = mod(x, c0, return_maps=False)
        saved[fused] = [s for s in shapes if len(s) == 4 and s[-2:] in ((N, K), (K, N))]
        c.sum().backward()
    assert saved[True] == []
    assert len(saved[False]) >= 3


def test_bounded_softmax_only_where_exp_is_safe():
    """exp without a shift only for bounded logits with ``bound + log K`` at
    most 80 and no prior; the result is then the softmax's."""
    assert em_step._use_bound(5.0, 100, None)
    assert not em_step._use_bound(None, 100, None)
    assert not em_step._use_bound(76.0, 100, None)  # 76 + log 100 > 80
    assert not em_step._use_bound(5.0, 100, torch.zeros(1))
    k = torch.nn.functional.normalize(torch.randn(1, 2, 33, 8), dim=-1)
    q = 70.0 * torch.nn.functional.normalize(torch.randn(1, 2, 6, 8), dim=-1)
    v = torch.randn(1, 2, 33, 5)
    out, maps = fused_em_step(k, q, v, need_map=True, rows=10, bound=70.0)
    ref, ref_maps = reference_em(k.double(), q.double(), v.double())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(maps.double(), ref_maps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('query', ['centered_cosine', 'cosine', 'dot'])
@pytest.mark.parametrize('rows', [4, None])
def test_fused_em_step_normalises_raw_queries(query, rows):
    """With ``logits`` the step takes the raw projection and applies the
    logits' centering, unit length (|u| = sqrt(|u|^2 + 1e-8)) and per-head
    temperature itself; values and gradients (including the temperature's)
    equal the formula applied before the plain step."""
    k, q, v, _ = _inputs(2, 3, 13, 5, 4, 3)
    tau = torch.tensor([1.5, 4.0, 9.0], dtype=torch.float64).view(3, 1, 1)
    tau.requires_grad_(query != 'dot')

    def formula(q):
        u = q - q.mean(dim=-2, keepdim=True) if query == 'centered_cosine' else q
        if query != 'dot':
            u = u / torch.sqrt((u * u).sum(-1, keepdim=True) + 1e-8)
        return u * tau
    bound = float(tau.max()) + 1.0 if query != 'dot' else None
    out, _ = fused_em_step(k, q, v, rows=rows, logits=query, tau=tau, bound=bound)
    ref, _ = reference_em(k, formula(q), v)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    w = torch.randn_like(ref)
    inputs = [k, q, v] + ([tau] if tau.requires_grad else [])
    grads = torch.autograd.grad((out * w).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * w).sum(), inputs)
    for name, g, r in zip(['k', 'q', 'v', 'tau'], grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9, msg=f'd{name}')
    with pytest.raises(ValueError, match='logits must be one of'):
        fused_em_step(k, q, v, logits='euclid', tau=tau)


@pytest.mark.parametrize('logits', ['centered_cosine', 'cosine', 'dot'])
@pytest.mark.parametrize('rows', [3, 64, None])
def test_key_vectors_equal_the_formula_on_a_strided_view(logits, rows):
    """The one-pass keys equal ``logit_vectors(k).contiguous()`` (centered over
    the pixels, unit length with |u| = sqrt(|u|^2 + 1e-8)) in value and
    gradient, read from a strided view as the layer passes them (the key
    half of the key/value projection split into heads), in uneven chunks."""
    g = torch.Generator().manual_seed(3)
    B, N, h, d = 2, 11, 3, 4
    kv = torch.randn(B, N, h * d + 5, generator=g, dtype=torch.float64)
    kv[0, 4, :h * d] = kv[0, :, :h * d].mean(0)  # a key equal to the mean key
    kv.requires_grad_()

    def view(t):
        return t[..., :h * d].reshape(B, N, h, d).transpose(1, 2)

    def formula(k):
        u = k - k.mean(dim=-2, keepdim=True) if logits == 'centered_cosine' else k
        if logits != 'dot':
            u = u / torch.sqrt((u * u).sum(-1, keepdim=True) + 1e-8)
        return u
    out = geometry.key_vectors(view(kv), logits, rows=rows)
    ref = formula(view(kv))
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    grad, = torch.autograd.grad((out * w).sum(), kv)
    ref_grad, = torch.autograd.grad((ref * w).sum(), kv)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # the inference path (no autograd function)
        torch.testing.assert_close(geometry.key_vectors(view(kv), logits, rows=rows), ref.detach())
    assert torch.autograd.gradcheck(lambda t: geometry.key_vectors(view(t), logits, rows=rows),
                                    (kv, ))
    with pytest.raises(ValueError, match='logits must be one of'):
        geometry.key_vectors(view(kv), 'euclid')


def test_fused_em_step_reads_strided_values():
    """The values as the layer passes them, a strided view of the key/value
    projection: same result and gradient as contiguous values, both modes
    of the softmax (bounded and plain), chunked."""
    g = torch.Generator().manual_seed(4)
    B, N, h, d, K = 2, 13, 2, 3, 5
    kv = torch.randn(B, N, 2 * h * d, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.nn.functional.normalize(torch.randn(B, h, N, d, generator=g,
                                                  dtype=torch.float64), dim=-1)
    q = 2 * torch.randn(B, h, K, d, generator=g, dtype=torch.float64)
    v = kv[..., h * d:].reshape(B, N, h, d).transpose(1, 2)
    assert not v.is_contiguous()
    for bound in (None, 2.0 * float(q.norm(dim=-1).max())):
        out, maps = fused_em_step(k, q, v, need_map=True, rows=4, bound=bound)
        ref, ref_maps = reference_em(k, q, v)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(maps, ref_maps, rtol=1e-10, atol=1e-10)
        w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        grad, = torch.autograd.grad((out * w).sum(), kv)
        ref_grad, = torch.autograd.grad((ref * w).sum(), kv)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-9)
