"""Table 6 (§4.2) row by row: every row's config changes only its option,
builds, trains a step with a gradient for every trainable parameter
(k-means included); 6c's updates, 6d's head widths, 6e's dispatch rows and
6f's initial decoder queries do what their names say. Tiny models, 32-64 px."""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmcf  # noqa: F401  (registers the modules)
from helpers import ROOT, build_head_from_config, fake_backbone_outputs
from mmcf.analysis.table6 import ROWS, find_row, flat_options, rows
from mmcf.models.backbones.clusterformer import ClusterFormer
from mmcf.models.clustering import (CosineClustering, CrissCrossClustering, FeatureDispatch,
                                   KMeansClustering, RecurrentClustering, VanillaCrossAttention,
                                   pooling_bins)
from mmcf.models.decoder import CenterQueryInit

INST_DEMO = osp.join(ROOT, 'configs', 'detection', 'clusterformer-test_1xb8-1k_shapes-inst.py')


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize('row', [r for r in ROWS if not r.default], ids=lambda r: r.name)
def test_row_config_changes_only_its_option(row):
    cfg = Config.fromfile(osp.join(ROOT, row.config)).to_dict()
    base_path = find_row(f'{row.table}-' + [r.key for r in rows([row.table])
                                              if r.default][0]).config
    base = Config.fromfile(osp.join(ROOT, base_path)).to_dict()
    a, b = flat_options(cfg), flat_options(base)
    changed = {k: a.get(k) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed == row.cfg_options(), changed


def test_every_row_has_a_config_and_the_tables_are_complete():
    counts = {t: len(rows([t])) for t in ('6a', '6b', '6c', '6d', '6e', '6f')}
    assert counts == {'6a': 4, '6b': 4, '6c': 5, '6d': 5, '6e': 5, '6f': 5}
    for r in ROWS:
        assert osp.isfile(osp.join(ROOT, r.config)), r.config
    with pytest.raises(KeyError, match='6z'):
        rows(['6z'])


# ------------------------------------------- every 6a-e row trains (test arch)
@pytest.mark.parametrize('row', [r for r in ROWS if r.task == 'cls'], ids=lambda r: r.name)
def test_row_trains_a_step_and_every_parameter_gets_a_gradient(row):
    torch.manual_seed(0)
    opts = copy.deepcopy(row.options)
    clustering = opts.get('clustering_cfg', {})
    if 'head_dim' in clustering:  # the test arch is 16 wide per head: 8 .. 24
        clustering['head_dim'] = clustering['head_dim'] // 2
    model = ClusterFormer('test', out_indices=(0, 1, 2, 3), out_centers=True,
                          drop_path_rate=0.0, **opts)
    model.init_weights()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 3, 64, 64)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    outs = model(x)
    g = torch.Generator().manual_seed(1)
    # a random projection: a squared norm of LayerNorm outputs has no gradient
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    loss.backward()
    no_grad = {k for k, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.any()}
    assert no_grad == _dead_without_dispatch(model, row), sorted(no_grad)
    optim.step()
    assert all(not torch.equal(before[k], p) for k, p in model.named_parameters()
               if k not in no_grad)


def _dead_without_dispatch(model, row):
    """Without feature dispatching the centers of a block reach nothing but
    ``out_centers`` (the last block's): every other block's center
    initialisation, clustering and the norm before them have no path to the
    output, in the paper's design as here (6a "Baseline", "+ RCA", 6e
    "None"). Every other parameter of every row gets a gradient."""
    if row.options.get('with_dispatch', True):
        return set()
    last = (len(model.stages) - 1, len(model.stages[-1].blocks) - 1)
    dead = set()
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage.blocks):
            if (i, j) == last:
                continue
            for name in ('norm1', 'center_init', 'clustering'):
                module = getattr(block, name)
                if module is not None:
                    dead |= {f'stages.{i}.blocks.{j}.{name}.{k}'
                             for k, _ in module.named_parameters()}
    return dead


# --------------------------------------------------------------- 6c updates
def test_kmeans_is_hard_forward_and_straight_through_backward():
    mod = KMeansClustering(16, head_dim=8)
    logits = torch.randn(2, 2, 10, 5, requires_grad=True)
    m = mod.assign(logits)
    hard = F.one_hot(logits.argmax(-1), 5).float()
    assert torch.equal(m, hard)  # exactly one-hot in the forward pass
    w = torch.randn_like(m)
    (m * w).sum().backward()
    ref = logits.detach().clone().requires_grad_(True)
    (ref.softmax(-1) * w).sum().backward()
    torch.testing.assert_close(logits.grad, ref.grad)  # the softmax's gradient
    with torch.no_grad():
        assert torch.equal(mod.assign(logits), hard)


def test_kmeans_gives_q_and_keys_a_gradient():
    torch.manual_seed(0)
    mod = KMeansClustering(16, head_dim=8)
    c, maps = mod(torch.randn(2, 12, 16), torch.randn(2, 4, 16))
    assert set(maps[-1].unique().tolist()) <= {0.0, 1.0}
    (c * torch.randn_like(c)).sum().backward()
    assert mod.q.weight.grad.abs().sum() > 0
    assert mod.kv.weight.grad[:16].abs().sum() > 0  # the key half


def test_cosine_update_has_no_projections():
    mod = CosineClustering(16, head_dim=8, logits='cosine')
    assert [k for k, _ in mod.named_parameters()] == ['logit_scale']
    torch.manual_seed(0)
    x, c0 = torch.randn(1, 9, 16), torch.randn(1, 3, 16)
    c, maps = mod(x, c0)
    # one iteration by hand, head 0: softmax_K(tau cos(C, I)), mean M-step, residual
    mod1 = CosineClustering(16, head_dim=8, logits='cosine', num_iters=1)
    c1, m1 = mod1(x, c0)
    tau = math.exp(mod1.logit_scale[0].item())
    s = tau * F.normalize(x[0, :, :8], dim=-1) @ F.normalize(c0[0, :, :8], dim=-1).T
    m = s.softmax(-1)  # (N, K)
    want = c0[0, :, :8] + (m.T @ x[0, :, :8]) / m.sum(0)[:, None]
    torch.testing.assert_close(c1[0, :, :8], want, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='no projections'):
        CosineClustering(16, head_dim=4, num_heads=2)


def test_vanilla_has_a_query_projection_per_iteration_and_an_output_projection():
    rec = RecurrentClustering(32, 16, num_iters=3)
    van = VanillaCrossAttention(32, 16, num_iters=3)
    assert len(van.q_iters) == 2 and van.out_proj.weight.shape == (32, 32)
    assert n_params(van) - n_params(rec) == 2 * (32 * 32 + 32) + 32 * 32 + 32
    _, maps = van(torch.randn(1, 10, 32), torch.randn(1, 4, 32))
    torch.testing.assert_close(maps[-1].sum(-1), torch.ones(1, 2, 4))  # softmax over HW


def test_pooling_bins_are_the_adaptive_pooling_windows():
    for length, bins in ((7, 3), (2, 4), (10, 10), (5, 2)):
        member = pooling_bins(length, bins)
        for i in range(length):
            onehot = torch.zeros(1, 1, length)
            onehot[..., i] = 1.0
            pooled = F.adaptive_avg_pool1d(onehot, bins)[0, 0]
            assert torch.equal(member[i], pooled > 0), (length, bins, i)


def test_criss_cross_attends_to_the_rows_and_columns_of_its_grid_cell():
    torch.manual_seed(0)
    mod = CrissCrossClustering(16, head_dim=8, num_iters=2)
    H, W, K = 6, 4, 4  # grid 2 x 2: cell (r, c) covers rows 3r..3r+2, cols 2c..2c+1
    _, maps = mod(torch.randn(1, H * W, 16), torch.randn(1, K, 16), hw=(H, W))
    m = maps[-1][0, 0].reshape(K, H, W)
    for k in range(K):
        r, c = divmod(k, 2)
        path = torch.zeros(H, W, dtype=torch.bool)
        path[3 * r:3 * r + 3, :] = True
        path[:, 2 * c:2 * c + 2] = True
        assert (m[k][~path] == 0).all() and (m[k][path] > 0).all()
        torch.testing.assert_close(m[k].sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match='hw'):
        mod(torch.randn(1, H * W, 16), torch.randn(1, K, 16))


# --------------------------------------------------------- 6d head widths
def test_head_dim_keeps_the_heads_and_grows_the_parameters():
    head = 768 * 1000 + 1000
    counts = {hd: n_params(ClusterFormer('tiny', clustering_cfg=dict(head_dim=hd),
                                     out_centers=True)) + head
              for hd in (16, 24, 32, 40, 48)}
    assert counts[32] == 28_273_330  # the default model is unchanged
    values = [counts[hd] for hd in (16, 24, 32, 40, 48)]
    steps = [b - a for a, b in zip(values, values[1:])]
    assert all(s > 0 for s in steps) and len(set(steps)) == 1  # linear in head_dim
    m = ClusterFormer('tiny', clustering_cfg=dict(head_dim=48))
    rca = m.stages[2].blocks[0].clustering
    assert (rca.num_heads, rca.head_dim, rca.q.weight.shape) == (12, 48, (576, 384))
    assert rca.v_head_dim == 32
    # a custom arch without num_heads still splits its width into head_dim heads
    custom = ClusterFormer(dict(embed_dims=32, depths=[1, 1, 1, 1]),
                           clustering_cfg=dict(head_dim=16))
    assert custom.num_heads == [2, 4, 8, 16]


# ------------------------------------------------------- 6e dispatch rows
def test_dispatch_rows_match_their_formulas():
    torch.manual_seed(0)
    x, c = torch.randn(2, 9, 16), torch.randn(2, 4, 16)
    assign = torch.rand(2, 2, 4, 9).softmax(dim=2)
    fc = FeatureDispatch(16, mode='fc')
    out = fc(x, c)
    torch.testing.assert_close(out, fc.fc(c.mean(1, keepdim=True)).expand(-1, 9, -1))
    conf = FeatureDispatch(16, mode='confidence')
    m = assign.mean(1)  # (B, K, N)
    a, k = m.max(dim=1)
    want = conf.mlp(a[..., None] * torch.stack([c[b, k[b]] for b in range(2)]))
    torch.testing.assert_close(conf(x, c, assign), want)
    with pytest.raises(ValueError, match='assignment'):
        conf(x, c)
    sim = FeatureDispatch(16, mode='fc_sim')
    cos = F.normalize(x, dim=-1) @ F.normalize(c, dim=-1).transpose(1, 2)
    s, k = cos.max(-1)
    picked = torch.stack([c[b, k[b]] for b in range(2)])
    torch.testing.assert_close(sim(x, c), sim.fc(torch.sigmoid(s)[..., None] * picked))
    with pytest.raises(ValueError, match='dispatch mode'):
        FeatureDispatch(16, mode='gate')
    with pytest.raises(ValueError, match='with_clustering=True'):
        ClusterFormer('test', with_clustering=False, dispatch_cfg=dict(mode='confidence'))


# ------------------------------------------------- 6f initial decoder queries
def _init(mode, K=6, D=32):
    torch.manual_seed(0)
    return CenterQueryInit(mode, K, D, encoder_channels=16, num_encoder_centers=4)


def test_mixed_selection_positions_come_from_the_top_scored_pixels():
    q = _init('mixed_selection')
    with torch.no_grad():  # the score is the first channel
        q.select_score.weight.zero_()
        q.select_score.weight[0, 0] = 1.0
        q.select_score.bias.zero_()
    coarse = torch.zeros(1, 32, 3, 4)
    ranking = [(2, 1), (0, 3), (1, 0)]  # (row, col), best first
    for i, (y, x) in enumerate(ranking):
        coarse[0, 0, y, x] = 10.0 - i
    out = q(None, coarse)
    from mmdet.models.layers.transformer.utils import coordinate_to_encoding
    for k in range(6):  # K = 6 > 3 marked pixels: the first 3 are the marked ones
        if k < 3:
            y, x = ranking[k]
            xy = torch.tensor([[[(x + 0.5) / 4, (y + 0.5) / 3]]])
            gate = torch.sigmoid(torch.tensor(10.0 - k))
            want = q.center_feat.weight[k] + gate * q.select_pos(
                coordinate_to_encoding(xy, num_feats=16))[0, 0]
            torch.testing.assert_close(out[0, k], want)
    # the content part is the same learned table for every image, the
    # positional part moves with the image's best pixels
    other = torch.zeros_like(coarse)
    other[0, 0, 0, 0] = 10.0
    assert not torch.allclose(q(None, other)[0, 0], out[0, 0])
    # fewer pixels than centers: the ranked pixels are used in turn
    small = q(None, torch.randn(1, 32, 1, 2))
    torch.testing.assert_close(small[0, 2] - q.center_feat.weight[2],
                               small[0, 0] - q.center_feat.weight[0])


def test_scene_adaptive_depends_on_the_scene_only_through_its_global_feature():
    q = _init('scene_adaptive')
    a = torch.randn(2, 32, 3, 3)
    shuffled = a.flatten(2)[..., torch.randperm(9)].reshape(2, 32, 3, 3)
    out = q(None, a)
    torch.testing.assert_close(q(None, shuffled), out)  # only the mean counts
    assert not torch.allclose(out[0], out[1])  # two scenes, two sets of centers
    coef = q.center_coef(a.mean(dim=(2, 3))).view(2, 6, 4).softmax(-1)
    torch.testing.assert_close(out, torch.einsum('bkm,kmd->bkd', coef, q.center_basis))


def test_free_centers_are_the_same_for_every_image():
    q = _init('free')
    out = q(None, torch.randn(2, 32, 3, 3))
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], q.center_feat.weight)


@pytest.mark.parametrize('center_init', ['mixed_selection', 'scene_adaptive'])
def test_new_query_inits_train_in_the_instance_head(center_init):
    init_default_scope('mmdet')
    head = build_head_from_config(INST_DEMO, center_init=center_init)
    feats = fake_backbone_outputs(batch=2)
    cls_scores, mask_preds = head(feats)[:2]
    g = torch.Generator().manual_seed(0)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum()
               for t in list(cls_scores) + list(mask_preds))
    loss.backward()
    no_grad = [k for k, p in head.trunk.query_init.named_parameters()
               if p.grad is None or not p.grad.any()]
    assert not no_grad, no_grad
    other = copy.deepcopy(feats)
    other = other[:4] + (torch.randn_like(other[4]), )
    with torch.no_grad():  # the encoder centers are not read
        head.eval()
        assert all(torch.equal(a, b) for a, b in zip(head(feats)[0], head(other)[0]))
