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
    counts = {n_params(ClusterFormer('tiny', num_iters=t)) for t in (1, 2, 3, 4)}
    assert len(counts) == 1


def test_arch_zoo_and_custom_arch():
    m = ClusterFormer(dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1]),
                      head_dim=16, num_centers=4)
    assert m.embed_dims == [16, 32, 48, 64]
    assert ClusterFormer('t').embed_dims == [96, 192, 384, 768]
    with pytest.raises(KeyError, match="Unknown ClusterFormer arch 'huge'"):
        ClusterFormer('huge')
    with pytest.raises(KeyError, match='depths'):
        ClusterFormer(dict(embed_dims=32))
    with pytest.raises(ValueError, match='head_dim'):
        ClusterFormer(dict(embed_dims=40, depths=[1, 1, 1, 1]), head_dim=32)
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
    dict(center_update='vanilla'), dict(center_update='kmeans'),
    dict(m_step='sum'), dict(dispatch_sim='assignment'), dict(num_iters=1),
    dict(head_dim=16)])
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
    block = ClusterBlock(32, num_centers=4, head_dim=16).eval()
    x = torch.randn(2, 6 * 5, 32)
    out = block(x, (6, 5))
    xn = F.layer_norm(x, (32, ), block.norm1.weight, block.norm1.bias)
    c0 = block.center_init(xn, (6, 5))
    c, _ = block.clustering(xn, c0)
    x1 = x + block.dispatch(xn, c)
    x1n = F.layer_norm(x1, (32, ), block.norm2.weight, block.norm2.bias)
    ffn = block.ffn.layers
    ref = x1 + ffn[1](F.gelu(ffn[0][0](x1n)))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(block.centers, c)


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
