"""Eq. 3, 5 and 6 against slow references written from the formulas."""
import importlib
import math
import os.path as osp
import sys
import types

import pytest
import torch
import torch.nn.functional as F

# load the framework-free modules by path, as a bare package without
# mmcf/__init__.py: clustering.py and em_step.py must not need mmcv or mmengine
_pkg = types.ModuleType('mmcf_framework_free')
_pkg.__path__ = [osp.join(osp.dirname(__file__), '..', '..', 'mmcf', 'models')]
sys.modules.setdefault('mmcf_framework_free', _pkg)
clustering = importlib.import_module('mmcf_framework_free.clustering')
recording = importlib.import_module('mmcf_framework_free.recording')
CenterInit = clustering.CenterInit
FeatureDispatch = clustering.FeatureDispatch
RecurrentClustering = clustering.RecurrentClustering


def rca(dim, update='recurrent', **kwargs):
    """The clustering layer of a Table 6c row by its short name, built from a
    ``clustering_cfg`` as the backbone and the heads build theirs."""
    return clustering.build_clustering(dict(type=clustering.UPDATE_TYPES[update], **kwargs),
                                       dim)


def _linear(x, layer):
    return x @ layer.weight.T + layer.bias


def reference_rca(mod, x, c0, update='recurrent', m_step='mean', logits='dot',
                  residual=False, prior=None):
    """Eq. 3 (and Eq. 1 / k-means) element by element, one image at a time.

    ``logits='dot'``: Q_k . K_i / sqrt(d); ``'cosine'``: tau_h cos(Q_k, K_i)
    with tau_h = exp(logit_scale_h) and |v| = sqrt(|v|^2 + 1e-4^2) (finite
    gradients at 0); ``'centered_cosine'``: the same after
    subtracting the mean key over pixels and the mean query over centers (per
    head). ``residual``: C <- C + M V (Eq. 2 form). ``prior`` (B, N, K):
    added to every logit S_ki of every head and iteration."""
    D = x.shape[-1]
    h, d, T = mod.num_heads, mod.head_dim, mod.num_iters
    Wk, Wv = mod.kv.weight[:D], mod.kv.weight[D:]
    bk, bv = mod.kv.bias[:D], mod.kv.bias[D:]
    outs, last_maps = [], []
    for b in range(x.shape[0]):
        KI = x[b] @ Wk.T + bk  # (N, D), once
        VI = x[b] @ Wv.T + bv
        C = c0[b].clone()
        for t in range(T):
            # only Q is recomputed; vanilla: a query projection per iteration
            Q = _linear(C, mod.q if update != 'vanilla' or not t else mod.q_iters[t - 1])
            newC = torch.zeros_like(C)
            maps = []
            for head in range(h):
                s = slice(head * d, (head + 1) * d)
                if logits == 'dot':
                    S = Q[:, s] @ KI[:, s].T / math.sqrt(d)  # (K, N)
                else:
                    tau = math.exp(mod.logit_scale[head].item())
                    q_mean = sum(Q[k, s] for k in range(Q.shape[0])) / Q.shape[0]
                    k_mean = sum(KI[i, s] for i in range(KI.shape[0])) / KI.shape[0]
                    S = torch.zeros(Q.shape[0], KI.shape[0], dtype=x.dtype)
                    for k in range(Q.shape[0]):
                        for i in range(KI.shape[0]):
                            q, key = Q[k, s], KI[i, s]
                            if logits == 'centered_cosine':
                                q, key = q - q_mean, key - k_mean
                            # |v| as unit_vectors takes it: sqrt(|v|^2 + 1e-8)
                            nq = math.sqrt(float(q @ q) + 1e-8)
                            nk = math.sqrt(float(key @ key) + 1e-8)
                            S[k, i] = tau * (q @ key) / (nq * nk)
                if prior is not None:
                    S = S + prior[b].T
                if update == 'recurrent':
                    e = torch.exp(S - S.max(dim=0).values)
                    M = e / e.sum(dim=0, keepdim=True)  # softmax over K
                elif update == 'vanilla':
                    e = torch.exp(S - S.max(dim=1, keepdim=True).values)
                    M = e / e.sum(dim=1, keepdim=True)  # softmax over HW
                else:
                    M = torch.zeros_like(S)
                    for i in range(S.shape[1]):
                        M[S[:, i].argmax(), i] = 1.0
                maps.append(M)
                for k in range(C.shape[0]):
                    if update == 'vanilla':  # W_O applied below, over all heads
                        newC[k, s] = (M[k, :, None] * VI[:, s]).sum(0)
                    else:
                        upd = (M[k, :, None] * VI[:, s]).sum(0)
                        if m_step == 'mean':
                            upd = upd / M[k].sum().clamp_min(1e-6)
                        newC[k, s] = C[k, s] + upd if residual else upd
            C = C + _linear(newC, mod.out_proj) if update == 'vanilla' else newC
        outs.append(C)
        last_maps.append(torch.stack(maps))
    return torch.stack(outs), torch.stack(last_maps)


@pytest.mark.parametrize('update,m_step,logits,residual', [
    ('recurrent', 'mean', 'dot', False), ('recurrent', 'sum', 'dot', False),
    ('vanilla', 'mean', 'dot', False), ('kmeans', 'mean', 'dot', False),
    ('recurrent', 'mean', 'cosine', False), ('recurrent', 'mean', 'cosine', True),
    ('recurrent', 'sum', 'dot', True), ('kmeans', 'mean', 'cosine', False),
    ('recurrent', 'mean', 'centered_cosine', True),
    ('recurrent', 'mean', 'centered_cosine', False), ('vanilla', 'mean', 'centered_cosine', True)])
def test_rca_matches_reference(update, m_step, logits, residual):
    torch.manual_seed(0)
    mod = rca(16, update, head_dim=8, num_iters=3, m_step=m_step, logits=logits,
              residual=residual).double()
    if logits != 'dot':  # a different temperature per head
        mod.logit_scale.data = torch.tensor([[[1.0]], [[2.5]]], dtype=torch.float64)
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    c0 = torch.randn(2, 5, 16, dtype=torch.float64)
    out, maps = mod(x, c0)
    ref, ref_maps = reference_rca(mod, x, c0, update, m_step, logits, residual)
    assert out.shape == (2, 5, 16)
    assert maps[-1].shape == (2, 2, 5, 12)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(maps[-1], ref_maps)


@pytest.mark.parametrize('update', ['recurrent', 'vanilla'])
def test_rca_with_prior_matches_reference(update):
    """The heads' E-step prior: softmax_k(S_ki + log pi_ki) at every
    iteration; a prior that favours one center for some pixels moves them to
    it, and a prior constant over k changes nothing (softmax over K)."""
    torch.manual_seed(0)
    mod = rca(16, update, head_dim=8, num_iters=3).double()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    c0 = torch.randn(2, 5, 16, dtype=torch.float64)
    prior = torch.nn.functional.logsigmoid(torch.randn(2, 12, 5, dtype=torch.float64) * 3)
    out, maps = mod(x, c0, prior=prior)
    ref, ref_maps = reference_rca(mod, x, c0, update, 'mean', 'centered_cosine', True,
                                  prior=prior)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(maps[-1], ref_maps)
    plain, plain_maps = mod(x, c0)
    assert not torch.allclose(out, plain)
    if update == 'recurrent':
        same, _ = mod(x, c0, prior=torch.full_like(prior, -2.0))
        torch.testing.assert_close(same, plain)
        strong = torch.zeros_like(prior)
        strong[:, :6, 2] = 30.0  # pixels 0-5 belong to center 2
        _, m = mod(x, c0, prior=strong)
        assert (m[-1][:, :, 2, :6] > 0.99).all()
    with pytest.raises(ValueError, match=r'prior must be \(B, N, K\)'):
        mod(x, c0, prior=prior[:, :5])


def test_e_step_is_soft_assignment_over_k():
    torch.manual_seed(1)
    mod = RecurrentClustering(32, head_dim=32, num_iters=2)
    _, maps = mod(torch.randn(1, 20, 32), torch.randn(1, 7, 32), keep_all=True)
    assert len(maps) == 2
    for m in maps:
        assert (m >= 0).all() and (m <= 1).all()
        # each pixel sums to 1 over K
        torch.testing.assert_close(m.sum(dim=2), torch.ones(1, 1, 20))


def test_iterations_share_parameters():
    counts = {sum(p.numel() for p in RecurrentClustering(64, 32, num_iters=t).parameters())
              for t in (1, 2, 3, 4)}
    assert len(counts) == 1
    # and more iterations really change the result
    torch.manual_seed(2)
    a = RecurrentClustering(32, 16, num_iters=1)
    b = RecurrentClustering(32, 16, num_iters=3)
    b.load_state_dict(a.state_dict())
    x, c = torch.randn(1, 30, 32), torch.randn(1, 4, 32)
    assert not torch.allclose(a(x, c)[0], b(x, c)[0])


def test_kv_computed_once_q_per_iteration():
    mod = RecurrentClustering(32, 16, num_iters=3)
    calls = {'q': 0, 'kv': 0}
    mod.q.register_forward_hook(lambda *a: calls.__setitem__('q', calls['q'] + 1))
    mod.kv.register_forward_hook(lambda *a: calls.__setitem__('kv', calls['kv'] + 1))
    mod(torch.randn(1, 10, 32), torch.randn(1, 4, 32))
    assert calls == {'q': 3, 'kv': 1}


def test_mean_m_step_scale_does_not_grow_with_hw():
    torch.manual_seed(3)
    mod = RecurrentClustering(32, 32, num_iters=3)
    x = torch.randn(1, 64, 32)
    big = x.repeat(1, 16, 1)  # same points, 16x as many pixels
    c0 = torch.randn(1, 4, 32)
    torch.testing.assert_close(mod(x, c0)[0], mod(big, c0)[0], rtol=1e-4, atol=1e-5)


def test_large_logits_stay_finite_under_bf16_autocast():
    torch.manual_seed(4)
    mod = RecurrentClustering(32, 16, num_iters=3)
    x = torch.randn(2, 50, 32) * 1e3
    c0 = torch.randn(2, 6, 32) * 1e3
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, maps = mod(x, c0)
    assert torch.isfinite(out).all() and torch.isfinite(maps[-1]).all()


def test_bad_options():
    with pytest.raises(KeyError, match="'Criss' is not a clustering layer"):
        clustering.build_clustering(dict(type='Criss'), 32)
    # the Table 6c rows are classes now: the old keyword names the new one
    with pytest.raises(TypeError, match=r"clustering_cfg=dict\(type='VanillaCrossAttention'\)"):
        RecurrentClustering(32, 16, update='vanilla')
    with pytest.raises(TypeError, match=r"clustering_cfg: cluster_logits= was renamed; use "
                                        r"clustering_cfg=dict\(logits='dot'\)"):
        clustering.build_clustering(dict(cluster_logits='dot'), 32)
    with pytest.raises(TypeError, match=r"clustering_cfg=dict\(fused=False\)"):
        RecurrentClustering(32, 16, fused_em=False)
    with pytest.raises(ValueError, match='head_dim'):
        RecurrentClustering(30, 16)
    with pytest.raises(ValueError, match='num_iters'):
        RecurrentClustering(32, 16, num_iters=0)


def reference_center_init(mod, x, hw):
    """Eq. 5 with adaptive pooling written out: cell (r, c) averages rows
    floor(r*H/R)..ceil((r+1)*H/R) and the same for columns."""
    H, W = hw
    R, Cc = mod.grid
    B, _, D = x.shape
    grid = x.reshape(B, H, W, D)
    cells = []
    for r in range(R):
        for c in range(Cc):
            r0, r1 = (r * H) // R, -((-(r + 1) * H) // R)
            c0, c1 = (c * W) // Cc, -((-(c + 1) * W) // Cc)
            cells.append(grid[:, r0:r1, c0:c1].mean(dim=(1, 2)))
    pooled = torch.stack(cells, dim=1)
    out = mod.ffn.fc2(F.gelu(mod.ffn.fc1(pooled)))
    return pooled + out if mod.residual else out


@pytest.mark.parametrize('hw,k,residual', [((8, 6), 6, True), ((5, 7), 9, False),
                                           ((3, 3), 16, True)])
def test_center_init_matches_reference(hw, k, residual):
    torch.manual_seed(5)
    mod = CenterInit(16, k, ffn_ratio=0.5, residual=residual).double()
    x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
    out = mod(x, hw)
    assert out.shape == (2, k, 16)
    torch.testing.assert_close(out, reference_center_init(mod, x, hw))


def test_center_grid():
    assert clustering.center_grid(100) == (10, 10)
    assert clustering.center_grid(150) == (10, 15)
    assert clustering.center_grid(7) == (1, 7)
    with pytest.raises(ValueError):
        clustering.center_grid(0)


def reference_dispatch(mod, x, centers):
    """Eq. 6: MLP(1/K sum_k sim(C_k, p_i) C_k), one pixel at a time (cosine sim)."""
    B, N, D = x.shape
    K = centers.shape[1]
    out = torch.zeros_like(x)
    for b in range(B):
        for i in range(N):
            p = x[b, i]
            acc = torch.zeros(D, dtype=x.dtype)
            for k in range(K):
                ck = centers[b, k]
                sim = (p @ ck) / (p.norm() * ck.norm())
                acc = acc + sim * ck
            out[b, i] = mod.mlp.fc2(F.gelu(mod.mlp.fc1(acc / K)))
    return out


@pytest.mark.parametrize('num_centers', [4, 12])  # D >= 2K and D < 2K: both products
def test_dispatch_matches_reference(num_centers):
    """Eq. 6 with the MLP's first layer folded into the (D, D) product, in
    value and gradient against the formula."""
    torch.manual_seed(6)
    mod = FeatureDispatch(16, mlp_ratio=0.5).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, num_centers, 16, dtype=torch.float64, requires_grad=True)
    out, ref = mod(x, c), reference_dispatch(mod, x, c)
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(ref)
    inputs = [x, c] + list(mod.parameters())
    grads = torch.autograd.grad((out * w).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * w).sum(), inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_dispatch_from_assignment():
    torch.manual_seed(7)
    mod = FeatureDispatch(16, sim='assignment').double()
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    c = torch.randn(1, 4, 16, dtype=torch.float64)
    m = torch.rand(1, 2, 4, 9, dtype=torch.float64).softmax(dim=2)
    expected = mod.mlp(m.mean(1).transpose(1, 2) @ c / 4)
    torch.testing.assert_close(mod(x, c, m), expected)
    with pytest.raises(ValueError, match='assignment'):
        mod(x, c)


cluster_health = recording.cluster_health


def reference_health(M, C):
    """The three health figures pixel by pixel, center by center."""
    B, h, K, N = M.shape
    ent, spread, used = 0.0, 0.0, 0.0
    for b in range(B):
        for head in range(h):
            for i in range(N):
                p = M[b, head, :, i] / M[b, head, :, i].sum()
                ent += float(-(p * torch.log(p.clamp_min(1e-30))).sum()) / math.log(K)
        mean = C[b].mean(0)
        dev = sum(float(((C[b, k] - mean) ** 2).sum()) for k in range(K)) / K
        norm = sum(float((C[b, k] ** 2).sum()) for k in range(K)) / K
        spread += math.sqrt(dev / norm)
        avg = M[b].mean(0)
        used += len({int(avg[:, i].argmax()) for i in range(N)})
    return ent / (B * h * N), spread / B, used / B


def test_cluster_health_matches_reference():
    torch.manual_seed(8)
    M = torch.rand(2, 3, 5, 11, dtype=torch.float64).softmax(dim=2)
    C = torch.randn(2, 5, 8, dtype=torch.float64)
    got = cluster_health(M, C)
    ent, spread, used = reference_health(M, C)
    assert got['num_centers'] == 5
    assert got['entropy'] == pytest.approx(ent, rel=1e-9)
    assert got['spread'] == pytest.approx(spread, rel=1e-9)
    assert got['used'] == pytest.approx(used)


def test_cluster_health_extremes():
    # the collapsed state: uniform E-step, one center
    M = torch.full((1, 2, 4, 9), 0.25)
    C = torch.ones(1, 4, 6)
    h = cluster_health(M, C)
    assert h['entropy'] == pytest.approx(1.0) and h['spread'] == pytest.approx(0.0)
    assert h['used'] == 1
    # hard assignment of pixel i to center i % 3, centers with zero mean
    hard = torch.zeros(1, 1, 4, 9)
    hard[0, 0, torch.arange(9) % 3, torch.arange(9)] = 1
    C = torch.tensor([[[1., 0], [-1, 0], [0, 1], [0, -1]]])
    h = cluster_health(hard, C)
    assert h['entropy'] == pytest.approx(0.0) and h['spread'] == pytest.approx(1.0)
    assert h['used'] == 3
    # a single center is never "uncertain"
    assert cluster_health(torch.ones(1, 1, 1, 5), torch.randn(1, 1, 3))['entropy'] == 0.0
    with pytest.raises(ValueError, match='maps'):
        cluster_health(torch.ones(1, 4, 9), C)


def _small_init(mod):
    # the init of the backbone's init_weights: truncated normal, std 0.02
    for lin in (mod.q, mod.kv):
        torch.nn.init.trunc_normal_(lin.weight, std=0.02)
        torch.nn.init.zeros_(lin.bias)
    return mod


def test_dot_logits_collapse_at_small_init_the_defaults_do_not():
    """The failure mode of docs/en/clustering.md: with mmcf 0.1's dot-product
    logits and Eq. 3's M-step, at the backbone's std-0.02 init, the E-step is
    uniform and the K centers become one vector; the defaults (centered
    cosine logits, residual M-step) keep them apart from the first step."""
    torch.manual_seed(9)
    x = F.layer_norm(torch.randn(2, 64, 32), (32,))
    # distinct initial centers: pooled cells of the features
    c0 = x.reshape(2, 8, 8, 32)[:, ::2, ::2].reshape(2, 16, 32)
    old = _small_init(RecurrentClustering(32, head_dim=16, num_iters=3, logits='dot',
                                          residual=False))
    old.eval().record = 'last'
    old(x, c0)
    assert old.health['entropy'] > 0.999 and old.health['spread'] < 1e-3
    new = RecurrentClustering(32, head_dim=16, num_iters=3)
    assert new.logits == 'centered_cosine' and new.residual
    new.load_state_dict(old.state_dict(), strict=False)
    new.eval().record = 'last'
    out, _ = new(x, c0)
    assert new.health['entropy'] < 0.9 and new.health['spread'] > 0.1
    assert new.health['used'] >= 4
    # and the initial centers matter
    out2, _ = new(x, c0.roll(1, dims=1))
    assert not torch.allclose(out, out2)


def test_kmeans_projection_init():
    torch.manual_seed(11)
    mod = RecurrentClustering(32, head_dim=16, proj_init='kmeans')
    D = 32
    torch.testing.assert_close(mod.kv.weight[:D], mod.q.weight)  # W_k = W_q
    torch.testing.assert_close(mod.kv.weight[D:], torch.eye(D) * 0.02 * D ** 0.5)
    assert float(mod.q.weight.std()) == pytest.approx(0.02, rel=0.2)
    assert mod.q.bias.abs().max() == 0 and mod.kv.bias.abs().max() == 0
    rand = RecurrentClustering(32, head_dim=16, proj_init='random')
    assert not torch.allclose(rand.kv.weight[:D], rand.q.weight)
    with pytest.raises(ValueError, match='proj_init'):
        RecurrentClustering(32, 16, proj_init='orthogonal')


def test_logit_scale_options():
    mod = RecurrentClustering(32, head_dim=16, logits='cosine', logit_scale=5.0)
    assert mod.logit_scale.shape == (2, 1, 1) and mod.logit_scale.requires_grad
    torch.testing.assert_close(mod.temperature(), torch.full((2, 1, 1), 5.0))
    mod.logit_scale.data.fill_(10.0)  # capped at 100
    torch.testing.assert_close(mod.temperature(), torch.full((2, 1, 1), 100.0))
    fixed = RecurrentClustering(32, head_dim=16, logit_scale=5.0, learn_logit_scale=False)
    assert 'logit_scale' not in dict(fixed.named_parameters())
    assert 'logit_scale' in fixed.state_dict()
    dot = RecurrentClustering(32, head_dim=16, logits='dot')
    assert not hasattr(dot, 'logit_scale')
    torch.testing.assert_close(dot.temperature(), torch.full((2, 1, 1), 16 ** -0.5))
    with pytest.raises(ValueError, match='logits'):
        RecurrentClustering(32, 16, logits='l2')
    with pytest.raises(ValueError, match='logit_scale'):
        RecurrentClustering(32, 16, logit_scale=0.0)
    with pytest.raises(ValueError, match='head_dim'):
        RecurrentClustering(32, 0)


def test_recording_in_eval_mode_only():
    torch.manual_seed(10)
    mod = RecurrentClustering(16, head_dim=8, num_iters=3)
    x, c = torch.randn(2, 10, 16), torch.randn(2, 4, 16)
    mod(x, c)
    assert mod.assignments == {} and mod.health is None  # record='none'
    mod.record = 'last'
    mod(x, c)  # training mode: nothing kept
    assert mod.assignments == {}
    mod.eval()
    _, maps = mod(x, c)
    assert sorted(mod.assignments) == [2] and len(maps) == 1
    torch.testing.assert_close(mod.assignments[2], maps[-1].mean(dim=1))
    assert set(mod.health) == {'entropy', 'spread', 'used', 'num_centers'}
    mod.record = 'all'
    _, maps = mod(x, c)
    assert sorted(mod.assignments) == [0, 1, 2] and len(maps) == 3


@pytest.mark.parametrize('n,k', [(1, 5), (12, 1), (1, 1)])
@pytest.mark.parametrize('autocast', [False, True], ids=['float32', 'bf16-autocast'])
def test_centered_logits_have_finite_gradients_at_zero(n, k, autocast):
    """One pixel (its key is the mean key) or one center (its query is the
    mean query) makes the centered vector exactly 0: the gradients stay
    finite (F.normalize would give NaN), float32 and bf16."""
    torch.manual_seed(12)
    mod = RecurrentClustering(16, head_dim=8, num_iters=3)
    x = torch.randn(2, n, 16, requires_grad=True)
    c = torch.randn(2, k, 16, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out, maps = mod(x, c)
    out.float().sum().backward()
    for t in (x.grad, c.grad, *(p.grad for p in mod.parameters())):
        assert torch.isfinite(t).all()
    if n == 1 and k > 1:  # a lone pixel is shared equally by the centers
        torch.testing.assert_close(maps[-1].float(), torch.full_like(maps[-1].float(), 1 / k),
                                   atol=1e-3, rtol=0)


def test_unit_vectors():
    t = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    u = clustering.unit_vectors(t)
    torch.testing.assert_close(u.detach(), torch.tensor([[0.6, 0.8], [0.0, 0.0]]), atol=1e-6,
                               rtol=1e-6)
    u.sum().backward()
    assert torch.isfinite(t.grad).all()


def test_center_init_pooling_is_adaptive_avg_pool_and_survives_inference_mode():
    """Eq. 5's pooling as two products equals adaptive_avg_pool2d (odd
    sizes, overlapping and repeated bins); its cached weights made under
    inference_mode still serve a training forward and backward."""
    torch.manual_seed(0)
    mod = CenterInit(8, 6, residual=False)
    for H, W in [(7, 5), (2, 9), (13, 4)]:
        x = torch.randn(2, H * W, 8)
        with torch.inference_mode():
            out = mod(x, (H, W))
        grid = x.transpose(1, 2).reshape(2, 8, H, W)
        pooled = F.adaptive_avg_pool2d(grid, mod.grid).flatten(2).transpose(1, 2)
        torch.testing.assert_close(out, mod.ffn(pooled))
        xg = x.clone().requires_grad_()
        mod(xg, (H, W)).sum().backward()  # the same cached weights, with autograd
        assert torch.isfinite(xg.grad).all()
