"""Each option of the encoder and decoder in one place: the three option
dicts of a block (Eq. 3, 5, 6), the refusal of the flat keywords of earlier
releases, the option list read from the signature, the fused E/M step chosen
by the code, and the layout of mmcf/models (no import circle, file sizes)."""
import ast
import inspect
import os
import os.path as osp

import pytest
import torch

from mmcf.models import ClusterFormer
from mmcf.models.backbones import ClusterBlock
from mmcf.models.clustering import (CLUSTERINGS, EM_HOOKS, CenterInit, FeatureDispatch,
                                    RecurrentClustering, class_options, clustering_options,
                                    register_clustering)
from mmcf.models.clustering.variants import CrissCrossClustering

from helpers import ROOT


def test_three_dicts_reach_every_block():
    model = ClusterFormer(
        'test',
        clustering_cfg=dict(num_iters=2, logits='cosine'),
        center_init_cfg=dict(ffn_ratio=0.5, residual=False),
        dispatch_cfg=dict(mlp_ratio=0.5, sim='assignment'))
    for stage in model.stages:
        for blk in stage.blocks:
            dim = blk.norm1.normalized_shape[0]
            assert isinstance(blk.center_init, CenterInit)
            assert blk.center_init.residual is False
            assert blk.center_init.ffn.fc1.out_features == dim // 2
            assert (blk.clustering.num_iters, blk.clustering.logits) == (2, 'cosine')
            assert isinstance(blk.dispatch, FeatureDispatch)
            assert blk.dispatch.sim == 'assignment' and blk.dispatch.needs_assignment
            assert blk.dispatch.mlp.fc1.out_features == dim // 2
    # defaults are the classes' own: nothing restates them on the way
    blk = ClusterFormer('test').stages[0].blocks[0]
    assert blk.center_init.residual is class_options(CenterInit)['residual']
    assert blk.dispatch.mode == class_options(FeatureDispatch)['mode']
    assert blk.center_init.ffn.fc1.out_features == round(
        32 * class_options(CenterInit)['ffn_ratio'])


@pytest.mark.parametrize('key,value,hint', [
    ('center_ffn_ratio', 0.5, r'center_init_cfg=dict\(ffn_ratio=0.5\)'),
    ('center_init_residual', False, r'center_init_cfg=dict\(residual=False\)'),
    ('dispatch_mlp_ratio', 0.5, r'dispatch_cfg=dict\(mlp_ratio=0.5\)'),
    ('dispatch_sim', 'assignment', r"dispatch_cfg=dict\(sim='assignment'\)"),
    ('dispatch_mode', 'fc', r"dispatch_cfg=dict\(mode='fc'\)")])
def test_flat_block_options_are_refused_naming_their_dict(key, value, hint):
    for owner, build in (('ClusterFormer', lambda **kw: ClusterFormer('test', **kw)),
                         ('ClusterBlock', lambda **kw: ClusterBlock(32, 4, **kw))):
        with pytest.raises(TypeError, match=rf'{owner}: {key}= moved; pass {hint}'):
            build(**{key: value})


def test_bad_option_dicts_are_refused_naming_the_dict():
    with pytest.raises(TypeError, match=r"center_init_cfg: CenterInit has no option 'ratio'"):
        ClusterFormer('test', center_init_cfg=dict(ratio=0.5))
    with pytest.raises(ValueError, match='dispatch_cfg must not set dim'):
        ClusterFormer('test', dispatch_cfg=dict(dim=8))
    with pytest.raises(ValueError, match='center_init_cfg must not set num_centers'):
        ClusterFormer('test', center_init_cfg=dict(num_centers=8))
    with pytest.raises(TypeError, match=r'mlp_ratio= is an arch setting; pass '
                       r'arch=dict\(\.\.\., mlp_ratio=2\.0\)'):
        ClusterFormer('test', mlp_ratio=2.0)
    arch = dict(embed_dims=32, depths=[1, 1, 1, 1], num_centers=4, head_dim=16, mlp_ratio=2.0)
    blk = ClusterFormer(arch).stages[0].blocks[0]
    assert blk.ffn.layers[0][0].out_features == 64


def test_backbone_takes_at_most_swins_number_of_parameters():
    params = [p for p in inspect.signature(ClusterFormer.__init__).parameters.values()
              if p.name != 'self' and p.kind != p.VAR_KEYWORD]
    assert len(params) <= 19, [p.name for p in params]


def test_clustering_options_are_the_signature():
    """The list a refusal checks against is read from the class, so a new
    argument of the layer is an option at once."""
    sig = inspect.signature(RecurrentClustering.__init__).parameters
    expected = {n for n, p in sig.items()
                if n not in ('self', 'dim') and p.kind != p.VAR_KEYWORD}
    assert set(clustering_options()) == expected | {'type'}
    assert class_options(CLUSTERINGS['CosineClustering'])['num_iters'] == sig['num_iters'].default


# ------------------------------------------------- the fused step, by the code
class _CheckerboardMask(RecurrentClustering):
    """A variant with its own mask and no flag: center k sees only the
    pixels n with n + k even."""

    def logit_mask(self, hw, num_pixels, num_centers, device):
        n = torch.arange(num_pixels, device=device)[:, None]
        k = torch.arange(num_centers, device=device)[None]
        return (n + k) % 2 == 0


class _SameSoftmax(RecurrentClustering):
    """Overrides a hook with the base's function and says so."""
    em_hooks_equal_to_base = ('assign', )

    def assign(self, logits):
        return torch.softmax(logits, dim=-1)


class _OwnUpdate(RecurrentClustering):
    """Changes only what happens after the M-step (the fused step keeps it)."""

    def update(self, c, clustered):
        return c + 0.5 * clustered


def _run(cls, fused, x, c0, seed=0):
    torch.manual_seed(seed)
    mod = cls(16, head_dim=8, num_iters=2, fused=fused).double()
    return mod(x, c0, hw=(4, 5))


def test_fused_step_runs_only_where_the_base_hooks_are_kept():
    assert RecurrentClustering.fuses() and CLUSTERINGS['CosineClustering'].fuses()
    for name in ('VanillaCrossAttention', 'CrissCrossClustering', 'KMeansClustering'):
        assert not CLUSTERINGS[name].fuses(), name
    assert not _CheckerboardMask.fuses() and _SameSoftmax.fuses() and _OwnUpdate.fuses()
    assert set(EM_HOOKS) == {'plain_logits', 'logit_mask', 'assign', 'plain_m_step'}


def test_a_variant_with_its_own_mask_gets_its_mask_applied():
    torch.manual_seed(3)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    c0 = torch.randn(2, 6, 16, dtype=torch.float64)
    c_fused, m_fused = _run(_CheckerboardMask, True, x, c0)
    c_plain, m_plain = _run(_CheckerboardMask, False, x, c0)
    torch.testing.assert_close(c_fused, c_plain)
    mask = _CheckerboardMask.logit_mask(None, None, 20, 6, 'cpu').T  # (K, N)
    assert m_fused[-1].shape == (2, 2, 6, 20)
    assert (m_fused[-1][..., ~mask] == 0).all() and (m_fused[-1][..., mask] > 0).all()
    c_base, _ = _run(RecurrentClustering, True, x, c0)
    assert not torch.allclose(c_base, c_fused)


def test_hooks_declared_equal_and_other_overrides_keep_the_fused_step():
    torch.manual_seed(4)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    c0 = torch.randn(2, 6, 16, dtype=torch.float64)
    for cls in (_SameSoftmax, _OwnUpdate):
        c_fused, _ = _run(cls, True, x, c0)
        c_plain, _ = _run(cls, False, x, c0)
        torch.testing.assert_close(c_fused, c_plain)
    # the declared hook is equal to the base's (what the declaration claims)
    torch.testing.assert_close(_run(_SameSoftmax, False, x, c0)[0],
                               _run(RecurrentClustering, False, x, c0)[0])
    assert not torch.allclose(_run(_OwnUpdate, True, x, c0)[0],
                              _run(RecurrentClustering, True, x, c0)[0])


def test_registering_a_variant_makes_it_buildable():
    from mmcf.models.clustering import build_clustering
    register_clustering(_CheckerboardMask)
    try:
        layer = build_clustering(dict(type='_CheckerboardMask', num_iters=1, head_dim=8), 16)
        assert type(layer) is _CheckerboardMask and layer.num_iters == 1
    finally:
        del CLUSTERINGS['_CheckerboardMask']
    assert CrissCrossClustering.__name__ in CLUSTERINGS


# ------------------------------------------------------------------ layout
def _imports(path):
    tree = ast.parse(open(path, encoding='utf-8').read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            names.add(node.module or '')
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_clustering_modules_import_without_a_circle():
    """registry <- rca <- variants: the registry imports no layer, the
    layer's file neither the variants nor the registry's users; the plain
    path does not import the fused step's file for its geometry."""
    pkg = osp.join(ROOT, 'mmcf', 'models', 'clustering')
    graph = {f[:-3]: {m.split('.')[0] for m in _imports(osp.join(pkg, f))}
             for f in os.listdir(pkg) if f.endswith('.py') and f != '__init__.py'}
    assert graph['registry'] & set(graph) == set()
    assert 'variants' not in graph['rca']
    assert graph['geometry'] <= {'chunks', 'torch', '__future__', 'typing'}
    assert graph['em_step'] & set(graph) == {'chunks', 'geometry'}

    def reaches(a, b, seen=()):
        return any(n == b or (n in graph and n not in seen and reaches(n, b, seen + (a, )))
                   for n in graph.get(a, ()))
    assert not any(reaches(m, m) for m in graph)


def test_file_sizes():
    for folder, limit in ((osp.join(ROOT, 'mmcf', 'models'), 450), (osp.join(ROOT, 'mmcf'), 500)):
        for base, _, files in os.walk(folder):
            for f in files:
                if f.endswith('.py'):
                    with open(osp.join(base, f), encoding='utf-8') as fh:
                        n = sum(1 for _ in fh)
                    assert n <= limit, f'{osp.join(base, f)}: {n} lines (limit {limit})'
