"""The ClusterFormer backbone: shapes, parameter counts, options, bad input."""
import pytest
import torch
import torch.nn.functional as F

from mmcf.models import ClusterFormer
from mmcf.models.backbones import ClusterBlock


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('hw', [(225, 199), (64, 64), (37, 101)])
def test_odd_sizes_give_swin_strides(hw):
    model = ClusterFormer('test', out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.randn(2, 3, *hw))
    H, W = hw
    for i, out in enumerate(outs):
        s = 4 * 2 ** i
        # ceil(H / stride), like Swin's corner padding
        assert out.shape == (2, model.embed_dims[i], -(-H // s), -(-W // s))
    assert len(outs) == 4


def test_image_smaller_than_one_patch():
    model = ClusterFormer('test', out_indices=(0, 3)).eval()
    outs = model(torch.randn(1, 3, 3, 2))
    assert [o.shape[-2:] for o in outs] == [(1, 1), (1, 1)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_out_centers_appended():
    model = ClusterFormer('test', out_indices=(2, 3), out_centers=True).eval()
    outs = model(torch.randn(2, 3, 64, 64))
    assert len(outs) == 3
    assert outs[-1].shape == (2, 16, 256)  # K=16 centers of width 256


@pytest.mark.parametrize('arch,target', [('tiny', 27.85e6), ('small', 48.71e6)])
def test_parameter_counts_match_table1(arch, target):
    model = ClusterFormer(arch, out_centers=True)
    head = torch.nn.Linear(768, 1000)
    total = n_params(model) + n_params(head)
    assert abs(total - target) / target < 0.03, total


def test_iterations_do_not_change_parameter_count():
    counts = {n_params(ClusterFormer('tiny', clustering_cfg=dict(num_iters=t)))
              for t in (1, 2, 3, 4)}
    assert len(counts) == 1


def test_arch_zoo_and_custom_arch():
    m = ClusterFormer(dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1]),
                      clustering_cfg=dict(head_dim=16), num_centers=4)
    assert m.embed_dims == [16, 32, 48, 64]
    assert ClusterFormer('t').embed_dims == [96, 192, 384, 768]
    with pytest.raises(KeyError, match="Unknown ClusterFormer arch 'huge'"):
        ClusterFormer('huge')
    with pytest.raises(KeyError, match='depths'):
        ClusterFormer(dict(embed_dims=32))
    with pytest.raises(ValueError, match='head_dim'):
        ClusterFormer(dict(embed_dims=40, depths=[1, 1, 1, 1]), clustering_cfg=dict(head_dim=32))
    with pytest.raises(ValueError, match='out_indices'):
        ClusterFormer('test', out_indices=(4, ))


@pytest.mark.parametrize('channels', [1, 4])
def test_wrong_channel_count_is_refused(channels):
    model = ClusterFormer('test')
    with pytest.raises(ValueError, match=f'expects \\(B, 3, H, W\\).*{channels}'):
        model(torch.randn(1, channels, 32, 32))


def test_in_channels_option():
    model = ClusterFormer('test', in_channels=1).eval()
    assert model(torch.randn(1, 1, 32, 32))[0].shape == (1, 256, 1, 1)


@pytest.mark.parametrize('kwargs', [
    dict(with_clustering=False), dict(with_dispatch=False),
    dict(with_clustering=False, with_dispatch=False),
    dict(clustering_cfg=dict(type='VanillaCrossAttention')),
    dict(clustering_cfg=dict(type='KMeansClustering')), dict(clustering_cfg=dict(m_step='sum')),
    dict(dispatch_cfg=dict(sim='assignment')), dict(clustering_cfg=dict(num_iters=1)),
    dict(clustering_cfg=dict(head_dim=16))])
def test_ablation_switches_run_and_train(kwargs):
    model = ClusterFormer('test', out_centers=True, **kwargs)
    outs = model(torch.randn(2, 3, 32, 32))
    loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.patch_embed.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_ablation_switches_remove_modules():
    base = ClusterFormer('tiny')
    no_cluster = ClusterFormer('tiny', with_clustering=False)
    no_dispatch = ClusterFormer('tiny', with_dispatch=False)
    assert n_params(no_cluster) < n_params(base)
    assert n_params(no_dispatch) < n_params(base)
    assert no_cluster.stages[0].blocks[0].clustering is None
    assert no_dispatch.stages[0].blocks[0].dispatch is None


def test_block_wiring_matches_formula():
    """x' = x + Dispatch(LN x, RCA(LN x, Init(LN x))); out = x' + FFN(LN x')."""
    torch.manual_seed(0)
    block = ClusterBlock(32, num_centers=4, clustering_cfg=dict(head_dim=16)).eval()
    x = torch.randn(2, 6 * 5, 32)
    out, centers = block(x, (6, 5))
    xn = F.layer_norm(x, (32, ), block.norm1.weight, block.norm1.bias)
    c0 = block.center_init(xn, (6, 5))
    c, _ = block.clustering(xn, c0)
    x1 = x + block.dispatch(xn, c)
    x1n = F.layer_norm(x1, (32, ), block.norm2.weight, block.norm2.bias)
    ffn = block.ffn.layers
    ref = x1 + ffn[1](F.gelu(ffn[0][0](x1n)))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(centers, c)


def test_assignment_maps_recorded_without_rerun():
    model = ClusterFormer('test', out_indices=(0, 1, 2, 3)).eval()
    with pytest.raises(RuntimeError, match='forward'):
        model.assignment_maps()
    model(torch.randn(2, 3, 70, 50))
    hard = model.assignment_maps(stage=-1)
    assert hard.shape == (2, 3, 2) and hard.dtype == torch.long
    assert int(hard.max()) < 16
    soft = model.assignment_maps(stage=0, hard=False)
    assert soft.shape == (2, 16, 18, 13)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, 18, 13))
    with pytest.raises(IndexError, match='iteration'):
        model.assignment_maps(stage=0, iteration=0)
    model.record_assignments = 'all'
    model(torch.randn(1, 3, 64, 64))
    maps = [model.assignment_maps(stage=1, block=0, iteration=t) for t in range(3)]
    assert all(m.shape == (1, 8, 8) for m in maps)
    model.record_assignments = 'none'
    model(torch.randn(1, 3, 64, 64))
    with pytest.raises(RuntimeError, match='No assignment map'):
        model.assignment_maps()


def test_frozen_stages_and_norm_eval():
    model = ClusterFormer('test', frozen_stages=2, out_indices=(0, 1, 2, 3))
    model.train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not model.stages[0].training and model.stages[2].training
    assert not model.norm0.weight.requires_grad and model.norm2.weight.requires_grad


def test_with_cp_gives_same_output_and_gradients():
    torch.manual_seed(0)
    a = ClusterFormer('test', drop_path_rate=0.0)
    b = ClusterFormer('test', drop_path_rate=0.0, with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    outs_a, outs_b = a(x), b(x)
    torch.testing.assert_close(outs_a[0], outs_b[0])
    outs_a[0].sum().backward()
    outs_b[0].sum().backward()
    torch.testing.assert_close(a.patch_embed.projection.weight.grad,
                               b.patch_embed.projection.weight.grad)


@pytest.mark.parametrize('registry', ['mmpretrain', 'mmdet', 'mmseg'])
def test_builds_from_each_library_registry(registry):
    import importlib
    reg = importlib.import_module(f'{registry}.registry').MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(registry):
        model = reg.build(dict(type='ClusterFormer', arch='test', out_indices=(1, 2)))
    assert isinstance(model, ClusterFormer)
    assert [o.shape[1] for o in model(torch.randn(1, 3, 32, 32))] == [64, 128]


def test_loads_pretrained_reads_dicts_and_lists():
    from mmcf.models.utils import loads_pretrained
    pre = dict(type='Pretrained', checkpoint='x.pth')
    assert loads_pretrained(pre)
    assert loads_pretrained([dict(type='TruncNormal', layer='Linear'), pre])
    assert not loads_pretrained(None)
    assert not loads_pretrained([dict(type='TruncNormal', layer='Linear')])


def _scene(size: int, seed: int = 0) -> torch.Tensor:
    """A structured test image (B=2): coloured regions, a gradient and noise,
    normalised like the pipelines' images."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(2, 3, size, size)
    h = size // 2
    colours = torch.rand(2, 4, 3, generator=g) * 2 - 1
    for b in range(2):
        for q, (r, c) in enumerate([(0, 0), (0, h), (h, 0), (h, h)]):
            img[b, :, r:r + h, c:c + h] = colours[b, q, :, None, None]
    ramp = torch.linspace(-0.5, 0.5, size)
    img = img + ramp[None, None, :, None] + 0.1 * torch.randn(img.shape, generator=g)
    img[:, :, size // 3:size // 2, size // 4:3 * size // 4] = 1.5  # a bar
    return img


def _eq5_sensitivity(model, x):
    """Relative change of every output when the Eq. 5 centers of every block
    are moved (rolled over K and shifted)."""
    with torch.no_grad():
        outs = model(x)

    def move(module, args, out):
        return out.roll(1, dims=1) + 0.5 * out.std()
    handles = [blk.center_init.register_forward_hook(move)
               for stage in model.stages for blk in stage.blocks]
    with torch.no_grad():
        moved = model(x)
    for h in handles:
        h.remove()
    return [float((a - b).abs().max() / a.abs().max()) for a, b in zip(outs, moved)]


@pytest.mark.parametrize('arch,size', [('test', 64), ('tiny', 224)])
def test_clustering_is_healthy_at_initialisation(arch, size):
    """docs/en/clustering.md: with the default options the K centers of every
    stage are distinct at init (no collapse to one vector), several win
    pixels, and the Eq. 5 centers matter for the output."""
    torch.manual_seed(0)
    model = ClusterFormer(arch, out_indices=(0, 1, 2, 3), out_centers=True,
                          record_assignments='all')
    model.init_weights()
    model.eval()
    x = _scene(size)
    with torch.no_grad():
        model(x)
    health = model.cluster_health()
    assert len(health) == 4
    for stage, h in enumerate(health):
        assert h['spread'] > 0.1, (stage, h)
        assert h['entropy'] < 0.97, (stage, h)
        assert h['used'] >= 3, (stage, h)
        assert h['blocks'] == len(model.stages[stage].blocks)
    change = _eq5_sensitivity(model, x)
    # the feature maps move (the dispatch MLP starts small) and the centers a lot
    assert min(change[:4]) > 1e-4 and change[4] > 0.1, change


def test_mmcf01_clustering_collapses_at_initialisation():
    """The state the defaults avoid (mmcf 0.1's dot logits and Eq. 3 M-step):
    a uniform E-step, one center per block, and an output that does not
    depend on the Eq. 5 centers."""
    torch.manual_seed(0)
    model = ClusterFormer('test', out_indices=(0, 1, 2, 3), out_centers=True,
                          clustering_cfg=dict(logits='dot', residual=False),
                          center_init_cfg=dict(residual=False), record_assignments='all')
    model.init_weights()
    x = _scene(64)
    with torch.no_grad():
        model.eval()(x)
    for h in model.cluster_health():
        assert h['entropy'] > 0.999 and h['spread'] < 1e-3
    assert max(_eq5_sensitivity(model, x)[:4]) < 1e-5


def test_init_weights_is_quiet_outside_a_runner(capsys):
    model = ClusterFormer('test')
    model.init_weights()
    out = capsys.readouterr()
    assert 'The value is the same before and after' not in out.out + out.err


def test_cluster_health_api():
    model = ClusterFormer('test', record_assignments='last').eval()
    with pytest.raises(RuntimeError, match='No cluster health'):
        model.cluster_health()
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    health = model.cluster_health(per_block=True)
    assert [h['blocks'] for h in health] == [1, 1, 1, 1]  # 'last': each stage's last block
    assert all(h['num_centers'] == 16 and len(h['per_block']) == 1 for h in health)
    model.record_assignments = 'none'
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(RuntimeError):
        model.cluster_health()


@pytest.mark.parametrize('record', ['none', 'all'])
def test_fused_em_backbone_equals_plain_and_keeps_the_state_dict(record):
    """clustering_cfg.fused=True (default) and False: the same state-dict keys, the same
    outputs and gradients (float64), the same recorded maps."""
    from mmcf.models import ClusterFormer
    torch.manual_seed(0)
    fused = ClusterFormer('test', out_indices=(0, 1, 2, 3), drop_path_rate=0.0,
                          record_assignments=record).double()
    plain = ClusterFormer('test', out_indices=(0, 1, 2, 3), drop_path_rate=0.0,
                          record_assignments=record,
                          clustering_cfg=dict(fused=False)).double()
    assert list(fused.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 72, 56, dtype=torch.float64)
    grads = []
    for model in (fused, plain):
        model.train()
        loss = sum((o * o).mean() for o in model(x))
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for g, r in zip(*grads):
        torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9)
    outs, maps = [], []
    for model in (fused, plain):
        model.eval()
        with torch.no_grad():
            outs.append(model(x))
        if record == 'all':  # every block and iteration, soft maps
            maps.append([model.assignment_maps(stage=s, block=0, iteration=0, hard=False)
                         for s in range(4)])
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for a, b in zip(*maps):
        assert a.shape[:2] == (2, 16)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('kwargs,hint', [
    (dict(num_iters=2), r'clustering_cfg=dict\(num_iters=2\)'),
    (dict(head_dim=16), r'clustering_cfg=dict\(head_dim=16\)'),
    (dict(center_update='kmeans'), r"clustering_cfg=dict\(type='KMeansClustering'\)"),
    (dict(cluster_logits='dot'), r"clustering_cfg=dict\(logits='dot'\)"),
    (dict(residual_m_step=False), r'clustering_cfg=dict\(residual=False\)'),
    (dict(fused_em=False), r'clustering_cfg=dict\(fused=False\)')])
def test_clustering_options_live_in_clustering_cfg_only(kwargs, hint):
    """One name per option from the backbone to the E-step: the keywords of
    earlier releases are refused with the place and name they have now."""
    with pytest.raises(TypeError, match=rf'ClusterFormer: {list(kwargs)[0]}= is a clustering '
                       rf'option; pass {hint}'):
        ClusterFormer('test', **kwargs)
    with pytest.raises(TypeError, match="unexpected keyword argument 'archh'"):
        ClusterFormer('test', archh='tiny')
    with pytest.raises(ValueError, match='must not set num_heads'):
        ClusterFormer('test', clustering_cfg=dict(num_heads=2))
    # the one dict reaches every block's layer, under its own names
    model = ClusterFormer('test', clustering_cfg=dict(
        type='KMeansClustering', num_iters=2, logits='dot', residual=False, fused=False))
    rca = model.stages[1].blocks[0].clustering
    assert type(rca).__name__ == 'KMeansClustering'
    assert (rca.num_iters, rca.logits, rca.residual, rca.fused) == (2, 'dot', False, False)
    assert (rca.num_heads, rca.head_dim) == (4, 16)  # the arch's heads and head width
    assert model.num_iters == 2
