"""Eq. 3, 5 and 6 against slow references written from the formulas."""
import importlib.util
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

# load the framework-free module by path: it must not need mmcv or mmengine
_spec = importlib.util.spec_from_file_location(
    'clustering', osp.join(osp.dirname(__file__), '..', 'mmcf', 'models', 'clustering.py'))
clustering = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clustering)
CenterInit = clustering.CenterInit
FeatureDispatch = clustering.FeatureDispatch
RecurrentClustering = clustering.RecurrentClustering


def _linear(x, layer):
    return x @ layer.weight.T + layer.bias


def reference_rca(mod, x, c0, update='recurrent', m_step='mean'):
    """Eq. 3 (and Eq. 1 / k-means) element by element, one image at a time."""
    D = x.shape[-1]
    h, d, T = mod.num_heads, mod.head_dim, mod.num_iters
    Wk, Wv = mod.kv.weight[:D], mod.kv.weight[D:]
    bk, bv = mod.kv.bias[:D], mod.kv.bias[D:]
    outs, last_maps = [], []
    for b in range(x.shape[0]):
        KI = x[b] @ Wk.T + bk  # (N, D), once
        VI = x[b] @ Wv.T + bv
        C = c0[b].clone()
        for _ in range(T):
            Q = _linear(C, mod.q)  # only Q is recomputed
            newC = torch.zeros_like(C)
            maps = []
            for head in range(h):
                s = slice(head * d, (head + 1) * d)
                logits = Q[:, s] @ KI[:, s].T / math.sqrt(d)  # (K, N)
                if update == 'recurrent':
                    e = torch.exp(logits - logits.max(dim=0).values)
                    M = e / e.sum(dim=0, keepdim=True)  # softmax over K
                elif update == 'vanilla':
                    e = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
                    M = e / e.sum(dim=1, keepdim=True)  # softmax over HW
                else:
                    M = torch.zeros_like(logits)
                    for i in range(logits.shape[1]):
                        M[logits[:, i].argmax(), i] = 1.0
                maps.append(M)
                for k in range(C.shape[0]):
                    if update == 'vanilla':
                        newC[k, s] = C[k, s] + (M[k, :, None] * VI[:, s]).sum(0)
                    elif m_step == 'mean':
                        newC[k, s] = (M[k, :, None] * VI[:, s]).sum(0) / M[k].sum().clamp_min(1e-6)
                    else:
                        newC[k, s] = (M[k, :, None] * VI[:, s]).sum(0)
            C = newC
        outs.append(C)
        last_maps.append(torch.stack(maps))
    return torch.stack(outs), torch.stack(last_maps)


@pytest.mark.parametrize('update,m_step', [('recurrent', 'mean'), ('recurrent', 'sum'),
                                           ('vanilla', 'mean'), ('kmeans', 'mean')])
def test_rca_matches_reference(update, m_step):
    torch.manual_seed(0)
    mod = RecurrentClustering(16, head_dim=8, num_iters=3, update=update, m_step=m_step).double()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    c0 = torch.randn(2, 5, 16, dtype=torch.float64)
    out, maps = mod(x, c0)
    ref, ref_maps = reference_rca(mod, x, c0, update, m_step)
    assert out.shape == (2, 5, 16)
    assert maps[-1].shape == (2, 2, 5, 12)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(maps[-1], ref_maps)


def test_e_step_is_soft_assignment_over_k():
    torch.manual_seed(1)
    mod = RecurrentClustering(32, head_dim=32, num_iters=2)
    _, maps = mod(torch.randn(1, 20, 32), torch.randn(1, 7, 32), keep_all=True)
    assert len(maps) == 2
    for m in maps:
        assert (m >= 0).all() and (m <= 1).all()
        torch.testing.assert_close(m.sum(dim=2), torch.ones(1, 1, 20))  # each pixel sums to 1 over K


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
    with pytest.raises(ValueError, match='update'):
        RecurrentClustering(32, 16, update='criss')
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
    return mod.ffn.fc2(F.gelu(mod.ffn.fc1(pooled)))


@pytest.mark.parametrize('hw,k', [((8, 6), 6), ((5, 7), 9), ((3, 3), 16)])
def test_center_init_matches_reference(hw, k):
    torch.manual_seed(5)
    mod = CenterInit(16, k, ffn_ratio=0.5).double()
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


def test_dispatch_matches_reference():
    torch.manual_seed(6)
    mod = FeatureDispatch(16, mlp_ratio=0.5).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    c = torch.randn(2, 4, 16, dtype=torch.float64)
    torch.testing.assert_close(mod(x, c), reference_dispatch(mod, x, c))


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
