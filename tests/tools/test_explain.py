"""Explainability maps (tool + hook), FLOP counting and the benchmark tool."""
import glob
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from helpers import ROOT

CLS_CFG = osp.join(ROOT, 'configs', 'classification', 'clusterformer-test_1xb32-12e_shapes.py')
SEG_CFG = osp.join(ROOT, 'configs', 'segmentation', 'clusterformer-test_1xb8-1k_shapes-64x64.py')


def _load_tool(*parts):
    path = osp.join(ROOT, 'tools', *parts)
    spec = importlib.util.spec_from_file_location(parts[-1][:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _read_rgb(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    assert img is not None, path
    return img[..., ::-1]


def _first_image(root, sub):
    files = sorted(glob.glob(osp.join(str(root), sub, '**', '*.png'), recursive=True))
    assert files, f'no images under {sub}'
    return files[0]


# ------------------------------------------------------------------ rendering
def test_panel_layout_and_colours():
    from mmcf.visualization import cluster_palette, render_assignment_panel
    from mmcf.visualization.render import GAP, TITLE_HEIGHT
    image = np.full((40, 20, 3), 100, np.uint8)
    labels = np.array([[0, 1], [2, 3]])  # 2x2 map, 4 clusters
    palette = cluster_palette(4)
    assert len({tuple(c) for c in palette}) == 4
    panel = render_assignment_panel(image, labels, 'title', palette, alpha=0.5, panel_size=80)
    assert panel.shape == (TITLE_HEIGHT + 80, 3 * 40 + 2 * GAP, 3)
    tile = panel[TITLE_HEIGHT:, 40 + GAP:80 + GAP]  # the map tile, 80x40
    assert (tile[5, 5] == palette[0]).all() and (tile[5, 35] == palette[1]).all()
    assert (tile[75, 5] == palette[2]).all() and (tile[75, 35] == palette[3]).all()
    overlay = panel[TITLE_HEIGHT:, 2 * (40 + GAP):]
    expected = np.round(0.5 * 100 + 0.5 * palette[3].astype(float))
    np.testing.assert_allclose(overlay[75, 35], expected, atol=1)
    # a map of a padded batch: only the part over the image is drawn
    padded = render_assignment_panel(image, np.array([[0, 1], [2, 3]]), valid=(1.0, 0.5),
                                     palette=palette, panel_size=80)
    tile = padded[TITLE_HEIGHT:, 40 + GAP:80 + GAP]
    assert (tile[5, 35] == palette[0]).all() and (tile[75, 35] == palette[2]).all()


# ------------------------------------------------------------------ the tool
def test_tool_draws_backbone_maps_of_an_embedded_image(shapes_root, tmp_path):
    from mmcf.visualization.render import GAP, TITLE_HEIGHT
    tool = _load_tool('visualize_clusters.py')
    image = _first_image(shapes_root, 'classification/val')
    out = tmp_path / 'maps'
    files = tool.main([CLS_CFG, image, '--out-dir', str(out), '--panel-size', '128'])
    stem = osp.splitext(osp.basename(image))[0]
    names = sorted(osp.basename(f) for f in files)
    assert names == sorted([f'{stem}_backbone_stage{s}_it2.png' for s in range(4)] +
                           [f'{stem}_clusters.png'])
    panel = _read_rgb(str(out / f'{stem}_backbone_stage0_it2.png'))
    assert panel.shape == (TITLE_HEIGHT + 128, 3 * 128 + 2 * GAP, 3)  # 64x64 image -> 128 tiles
    tile = panel[TITLE_HEIGHT:, 128 + GAP:256 + GAP].reshape(-1, 3)
    # stage 0 is 16x16 cells of 8x8 px: more than one cluster, and every
    # colour is a palette colour
    colours = {tuple(c) for c in tile}
    assert len(colours) > 1
    from mmcf.visualization import cluster_palette
    assert colours <= {tuple(c) for c in cluster_palette(16)}
    sheet = _read_rgb(str(out / f'{stem}_clusters.png'))
    assert sheet.shape == (TITLE_HEIGHT + 4 * (GAP + panel.shape[0]), panel.shape[1], 3)
    # the title says the weights are random: dark text pixels in the band
    assert (panel[:TITLE_HEIGHT] < 128).any()


def test_tool_draws_segmentation_head_class_centers(shapes_root, tmp_path):
    tool = _load_tool('visualize_clusters.py')
    image = _first_image(shapes_root, 'semantic/img_dir/val')
    files = tool.main([SEG_CFG, image, '--out-dir', str(tmp_path), '--source', 'decode_head',
                       '--iteration', '0', '--panel-size', '64'])
    assert len(files) == 6 + 1  # six decoder layers + contact sheet
    assert any('decode_head_layer5_it0' in f for f in files)


def test_tool_prints_cluster_health(shapes_root, tmp_path, capsys):
    tool = _load_tool('visualize_clusters.py')
    image = _first_image(shapes_root, 'semantic/img_dir/val')
    tool.main([SEG_CFG, image, '--out-dir', str(tmp_path), '--panel-size', '32'])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(('backbone', 'decode_head'))]
    assert [r[:3] for r in rows[:4]] == [['backbone', 'stage', str(i)] for i in range(4)]
    assert len(rows) == 4 + 6  # four stages, six decoder layers
    for r in rows:
        entropy, spread = float(r[3]), float(r[4])
        used, k = (float(v) for v in r[5].split('/'))
        assert 0 <= entropy <= 1 and spread >= 0 and 1 <= used <= k


def test_inferencers_of_two_libraries_then_our_tool(shapes_root, tmp_path):
    """docs/en/get_started.md: set the scope before the second library's
    inferencer; mmcf's tools set theirs."""
    from mmengine.registry import init_default_scope
    from mmpretrain import ImageClassificationInferencer
    from mmseg.apis import MMSegInferencer
    image = _first_image(shapes_root, 'semantic/img_dir/val')
    seg = MMSegInferencer(model=SEG_CFG, weights=None, device='cpu')
    assert seg(image, return_datasamples=True).pred_sem_seg.data.shape[-2:] == (64, 64)
    init_default_scope('mmpretrain')
    cls = ImageClassificationInferencer(model=CLS_CFG, pretrained=False, device='cpu')
    assert 0 <= cls(image)[0]['pred_label'] < 4
    # the scope is mmpretrain's now; our tool runs an mmseg config anyway
    files = _load_tool('visualize_clusters.py').main(
        [SEG_CFG, image, '--out-dir', str(tmp_path), '--stages', '0', '--source', 'backbone'])
    assert len(files) == 2


def test_compute_maps_for_backbone_and_seg_head(shapes_root):
    from mmengine.dataset import pseudo_collate

    from mmcf.utils.build import build_image_pipeline, build_model_from_cfg
    from mmcf.utils.config import load_config
    from mmcf.visualization import compute_cluster_maps, find_assignment_sources
    cfg = load_config(SEG_CFG)
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg)
    assert list(find_assignment_sources(model)) == ['backbone', 'decode_head']
    data = pseudo_collate([build_image_pipeline(cfg)(
        dict(img_path=_first_image(shapes_root, 'semantic/img_dir/val')))])
    maps, batch_hw = compute_cluster_maps(model, data, iteration=1)
    assert batch_hw == (64, 64)
    head = [m for m in maps if m.source == 'decode_head']
    # layer l clusters level l mod 3 of the pixel decoder: strides 32, 16, 8
    assert [tuple(m.labels.shape[-2:]) for m in head] == [(2, 2), (4, 4), (8, 8)] * 2
    assert all(m.num_centers == 7 and int(m.labels.max()) < 7 for m in head)
    backbone = [m for m in maps if m.source == 'backbone']
    assert [tuple(m.labels.shape[-2:]) for m in backbone] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    # recording modes are restored; the default records only the last iteration
    assert model.backbone.record_assignments == 'last'
    assert model.decode_head.record_assignments == 'last'
    with torch.no_grad():
        model(model.data_preprocessor(data, False)['inputs'], mode='tensor')
    with pytest.raises(IndexError, match='iteration 0 not recorded'):
        model.decode_head.assignment_maps(stage=0, iteration=0)
    soft = model.decode_head.assignment_maps(stage=2, hard=False)
    assert soft.shape == (1, 7, 8, 8)
    torch.testing.assert_close(soft.sum(1), torch.ones(1, 8, 8))


def test_tool_refuses_bad_input(shapes_root, tmp_path):
    tool = _load_tool('visualize_clusters.py')
    image = _first_image(shapes_root, 'classification/val')
    with pytest.raises(FileNotFoundError, match='image not found: .*nope.png'):
        tool.main([CLS_CFG, str(tmp_path / 'nope.png')])
    with pytest.raises(FileNotFoundError, match='config file not found'):
        tool.main([str(tmp_path / 'nope.py'), image])
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        tool.main([CLS_CFG, image, '--checkpoint', str(tmp_path / 'x.pth')])
    with pytest.raises(IndexError, match='stage 7 is out of range for backbone, which has 4'):
        tool.main([CLS_CFG, image, '--stages', '7', '--out-dir', str(tmp_path)])
    with pytest.raises(KeyError, match="no cluster-assignment source named \\['neck'\\]"):
        tool.main([CLS_CFG, image, '--source', 'neck', '--out-dir', str(tmp_path)])


# ------------------------------------------------------------------ the hook
@pytest.mark.parametrize('scope', ['mmengine', 'mmpretrain', 'mmseg', 'mmdet'])
def test_hook_builds_from_each_registry(scope):
    import importlib
    import mmcf  # noqa: F401
    registry = importlib.import_module(f'{scope}.registry').HOOKS
    hook = registry.build(dict(type='ClusterMapVisualizationHook', indices=[3, 5]))
    assert type(hook).__name__ == 'ClusterMapVisualizationHook' and hook.indices == [3, 5]


def test_hook_logs_maps_at_each_validation(shapes_root, tmp_path):
    from mmengine.runner import Runner

    from mmcf.utils.config import load_config
    cls = osp.join(str(shapes_root), 'classification')
    cfg = load_config(CLS_CFG, dict(
        train_dataloader=dict(batch_size=16, dataset=dict(data_root=cls)),
        val_dataloader=dict(batch_size=16, dataset=dict(data_root=cls)),
        test_dataloader=dict(dataset=dict(data_root=cls)),
        train_cfg=dict(max_epochs=2, val_interval=1),
        param_scheduler=[], default_hooks=dict(checkpoint=dict(interval=100, save_best=None)),
        custom_hooks=[dict(type='ClusterMapVisualizationHook', indices=[0, 7], stages=[0, 3],
                           log_panels=True, panel_size=64)]),
        work_dir=str(tmp_path))
    runner = Runner.from_cfg(cfg)
    runner.train()
    files = sorted(osp.basename(f) for f in glob.glob(
        osp.join(str(tmp_path), '*', 'vis_data', 'vis_image', 'cluster_maps_*.png')))
    per_epoch = runner.iter // 2
    expected = []
    for step in (per_epoch, 2 * per_epoch):  # two validations
        for idx in (0, 7):
            expected += [f'cluster_maps_img{idx}_{step}.png',
                         f'cluster_maps_img{idx}_backbone_stage0_it2_{step}.png',
                         f'cluster_maps_img{idx}_backbone_stage3_it2_{step}.png']
    assert files == sorted(expected)
    sheet = _read_rgb(glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'vis_image',
                                         f'cluster_maps_img7_{per_epoch}.png'))[0])
    assert sheet.shape[1] == 3 * 64 + 2 * 4 and sheet.shape[0] > 2 * 64
    # the cluster health of the same forward is logged as scalars, per stage
    import json
    records = [json.loads(line) for path in glob.glob(
        osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json')) for line in open(path)]
    health = [r for r in records if 'cluster_health/backbone.stage0.entropy' in r]
    assert [r['step'] for r in health] == [per_epoch, 2 * per_epoch]
    for r in health:
        for stage in range(4):
            assert 0.0 <= r[f'cluster_health/backbone.stage{stage}.entropy'] <= 1.0
            assert 1 <= r[f'cluster_health/backbone.stage{stage}.used'] <= 16
            assert r[f'cluster_health/backbone.stage{stage}.spread'] >= 0.0


# ------------------------------------------------------------------ FLOPs
def _eq3_terms(arch_dims, depths, tokens, K=16, T=3):
    kv = sum(n * N * D * 2 * D for D, n, N in zip(arch_dims, depths, tokens))
    q = sum(n * T * K * D * D for D, n in zip(arch_dims, depths))
    em = sum(n * 2 * T * K * N * D for D, n, N in zip(arch_dims, depths, tokens))
    return kv, q, em


def test_clustering_flops_double_when_pixels_double():
    from mmcf.analysis import clustering_flop_terms, flops_by_group, params_by_group
    from mmcf.models import ClusterFormer
    model = ClusterFormer('test', out_indices=(0, 1, 2, 3)).eval()
    dims, depths = [32, 64, 128, 256], [1, 1, 2, 1]
    small = clustering_flop_terms(model, torch.zeros(1, 3, 64, 64))
    large = clustering_flop_terms(model, torch.zeros(1, 3, 64, 128))
    # mmengine's count equals the formulas: N*D*2D, T*K*D^2, 2*T*K*N*D per layer
    assert tuple(small.values()) == _eq3_terms(dims, depths, [256, 64, 16, 4])
    assert large['E/M-step matmuls'] == 2 * small['E/M-step matmuls']
    assert large['kv projection'] == 2 * small['kv projection']
    assert large['q projection'] == small['q projection']  # K and T fixed
    groups = flops_by_group(model, torch.zeros(1, 3, 64, 64))
    assert groups['clustering (Eq. 3)'] == sum(small.values())
    assert groups['heads'] == 0 and all(groups[g] > 0 for g in
                                        ('encoder stages', 'center init (Eq. 5)',
                                         'dispatching (Eq. 6)'))
    assert groups['total'] == sum(v for k, v in groups.items() if k != 'total')
    params = params_by_group(model)
    assert params['total'] == sum(p.numel() for p in model.parameters())
    assert params['total'] == sum(v for k, v in params.items() if k != 'total')
    assert params['clustering (Eq. 3)'] == sum(
        p.numel() for blk in model.modules() if hasattr(blk, 'clustering') and blk.clustering
        for p in blk.clustering.parameters())


def test_get_flops_tool_groups_heads_and_scaling(tmp_path):
    tool = _load_tool('analysis', 'get_flops.py')
    result = tool.main([CLS_CFG, '--shape', '64', '--scaling', '64', '128',
                        '--json', str(tmp_path / 'flops.json')])
    # LinearClsHead's fc (the centers neck has no parameters)
    assert result['params']['heads'] == 256 * 4 + 4
    assert result['flops']['heads'] == 256 * 4
    assert [r['em_growth'] for r in result['scaling']] == [1.0, 4.0]
    assert [r['pixel_growth'] for r in result['scaling']] == [1.0, 4.0]
    assert osp.isfile(tmp_path / 'flops.json')


# ------------------------------------------------------------------ benchmark
def test_benchmark_tool_runs_interleaved_and_writes_json(tmp_path):
    import json
    tool = _load_tool('analysis', 'benchmark.py')
    out = tmp_path / 'bench.json'
    tool.main(['--archs', 'tiny', '--sizes', '64', '96', '--batch-sizes', '1', '2',
               '--max-batch-pixels', str(96 * 96), '--repeats', '2', '--warmup', '0',
               '--modes', 'forward', '--out', str(out)])
    result = json.loads(out.read_text())
    rows = result['results']
    assert [(r['model'], r['size'], r['batch']) for r in rows] == [
        ('ClusterFormer-tiny', 64, 1), ('Swin-T', 64, 1),
        ('ClusterFormer-tiny', 64, 2), ('Swin-T', 64, 2),
        ('ClusterFormer-tiny', 96, 1), ('Swin-T', 96, 1)]
    assert result['skipped'] == [dict(arch='tiny', size=96, batch=2, mode='forward')]
    for r in rows:
        assert r['latency_ms'] > 0 and r['peak_mb'] > 0
        assert r['throughput'] == pytest.approx(r['batch'] * 1e3 / r['latency_ms'])
    # activations grow with the batch
    assert rows[2]['peak_mb'] > rows[0]['peak_mb']


def test_benchmark_training_step_profile_and_targets(tmp_path, capsys):
    """--modes train times forward + backward + AdamW for each model (and
    the plain E/M path with --plain-em, same weights), --profile splits the
    time into op categories, and the targets are printed as measured figures
    or 'not measured'."""
    import json
    tool = _load_tool('analysis', 'benchmark.py')
    out = tmp_path / 'bench.json'
    tool.main(['--archs', 'tiny', '--sizes', '64', '--batch-sizes', '1', '--repeats', '1',
               '--warmup', '1', '--modes', 'forward', 'train', '--plain-em', '--profile',
               '--out', str(out)])
    result = json.loads(out.read_text())
    rows = result['results']
    assert [(r['mode'], r['model']) for r in rows] == [
        (mode, name) for mode in ('forward', 'train') for name in
        ('ClusterFormer-tiny', 'Swin-T', 'ClusterFormer-tiny (plain E/M)')]
    train = [r for r in rows if r['mode'] == 'train']
    assert all(r['size'] == 64 and r['latency_ms'] > 0 for r in train)
    # a training step holds activations and gradients: more than a forward
    fwd = {r['model']: r for r in rows if r['mode'] == 'forward'}
    for r in train:
        assert r['peak_mb'] > 2 * fwd[r['model']]['peak_mb']
    assert len(result['profiles']) == 6
    for p in result['profiles']:
        assert set(p['ms']) == set(tool.CATEGORY_NAMES)
        assert p['ms']['matmul'] > 0
        assert (p['ms']['optimizer'] > 0) == (p['mode'] == 'train')
    targets = {t['target']: t for t in result['targets']}
    assert len(targets) == 5 and all(t['value'] is None and t['met'] is None
                                     for t in targets.values())  # no 224 / 1024 rows
    # one floor per mode, from the ClusterFormer and Swin profiles (not the plain one)
    floors = {f['mode']: f for f in result['floors']}
    assert set(floors) == {'forward', 'train'}
    for mode, f in floors.items():
        prof = {p['model']: p['ms'] for p in result['profiles'] if p['mode'] == mode}
        swin_total = sum(prof['Swin-T'].values())
        assert f['floor'] == pytest.approx(prof['ClusterFormer-tiny']['matmul'] / swin_total)
        assert f['floor'] < f['level']
    text = capsys.readouterr().out
    assert 'Where the time goes' in text and '| not measured |' in text
    assert 'plain E/M ms' in text and 'Lower bounds of CF/Swin' in text


def test_benchmark_profile_floors():
    """The floor is ClusterFormer's products against Swin's whole run; the
    level adds Swin's own other ops; plain and compiled profiles and pairs
    without a Swin profile give none."""
    tool = _load_tool('analysis', 'benchmark.py')

    def prof(model, mode, **ms):
        return dict(model=model, mode=mode, size=224, batch=1, dtype='fp32',
                    ms={c: ms.get(c, 0.0) for c in tool.CATEGORY_NAMES})
    floors = tool.profile_floors([
        prof('ClusterFormer-tiny', 'forward', matmul=120.0, elementwise=30.0),
        prof('Swin-T', 'forward', matmul=100.0, copies=20.0, softmax=5.0),
        prof('ClusterFormer-tiny (plain E/M)', 'forward', matmul=1.0),
        prof('ClusterFormer-tiny', 'train', matmul=10.0)])
    assert len(floors) == 1
    f = floors[0]
    assert f['mode'] == 'forward' and f['swin_total_ms'] == 125.0
    assert f['floor'] == pytest.approx(120 / 125) and f['level'] == pytest.approx(145 / 125)
    assert f['matmul_ratio'] == pytest.approx(1.2)


def test_benchmark_targets_from_rows():
    tool = _load_tool('analysis', 'benchmark.py')

    def row(model, mode, size, ms, mb=None, batch=1, dtype='fp32'):
        return dict(model=model, arch='tiny', mode=mode, size=size, batch=batch, dtype=dtype,
                    latency_ms=ms, peak_mb=mb)
    rows = [row('ClusterFormer-tiny', 'forward', 224, 90.0), row('Swin-T', 'forward', 224, 100.0),
            # compiled rows do not count for the targets
            row('ClusterFormer-tiny (compiled)', 'forward', 224, 10.0),
            row('Swin-T (compiled)', 'forward', 224, 100.0),
            row('ClusterFormer-tiny', 'forward', 1024, 2200.0),
            row('Swin-T', 'forward', 1024, 2000.0),
            row('ClusterFormer-tiny', 'train', 224, 300.0, 120.0),
            row('Swin-T', 'train', 224, 280.0, 100.0)]
    cpu = tool.targets(dict(results=rows, machine=dict(device='cpu')))
    values = [(t['value'], t['met']) for t in cpu]
    assert [t['limit'] for t in cpu] == [0.95, 0.95, None, 1.05, 1.0]
    assert values[0] == (pytest.approx(0.9), True)  # forward 224 <= 0.95
    assert values[1] == (pytest.approx(1.1), False)  # forward 1024
    assert values[2] == (pytest.approx(2200 / 90), None)  # growth: informative, no target
    assert values[3] == (pytest.approx(300 / 280), False)  # train step 1.07 > 1.05
    assert values[4] == (pytest.approx(1.2), False)  # memory
    assert [t['kind'] for t in cpu] == ['ratio', 'ratio', 'info', 'ratio', 'ratio']
    rows[0]['latency_ms'] = 96.0  # 0.96 > 0.95
    assert tool.targets(dict(results=rows, machine=dict(device='cpu')))[0]['met'] is False
    # CUDA: bf16 batch 16 at 1024 px <= 1.0, batch 1 informative, the smoke line
    gpu_rows = [row('ClusterFormer-tiny', 'forward', 1024, 50.0, batch=16, dtype='bf16'),
                row('Swin-T', 'forward', 1024, 50.0, batch=16, dtype='bf16'),
                row('ClusterFormer-tiny', 'train', 1024, 180.0, batch=16, dtype='bf16'),
                row('Swin-T', 'train', 1024, 150.0, batch=16, dtype='bf16'),
                row('ClusterFormer-tiny', 'forward', 1024, 8.0, batch=1, dtype='bf16'),
                row('Swin-T', 'forward', 1024, 5.0, batch=1, dtype='bf16')]
    result = dict(results=gpu_rows, machine=dict(device='cuda'), smoke=dict(passed=True))
    gpu = tool.targets(result)
    assert [(t['limit'], t['value'], t['met'], t['kind']) for t in gpu] == [
        (1.0, pytest.approx(1.0), True, 'ratio'), (1.0, pytest.approx(1.2), False, 'ratio'),
        (None, pytest.approx(1.6), None, 'info'), (None, True, True, 'check')]
    assert 'smoke' in gpu[3]['target']
    del result['smoke']
    assert tool.targets(result)[3]['met'] is None  # not measured without gpu_check
    # the CUDA targets of CPU rows (gpu_check --device cpu --quick): not measured
    assert all(t['value'] is None for t in tool.targets(dict(results=rows, machine=dict(
        device='cpu')), cuda=True))
    text = tool.targets_markdown(gpu)
    assert '| 1.60 | - | no target |' in text and '| pass | pass | yes |' in text
    assert '| 1.20 | <= 1.00 | no |' in text
    assert 'issue' not in open(tool.__file__).read().lower()
    assert tool.op_category('aten::_softmax') == 'softmax'
    assert tool.op_category('aten::addmm') == 'matmul'
    assert tool.op_category('aten::native_layer_norm_backward') == 'normalisation'
    assert tool.op_category('aten::_foreach_mul_') == 'optimizer'
    assert tool.op_category('aten::copy_') == 'copies'
    assert tool.op_category('aten::gelu') == 'elementwise'


def _tiny_net():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return (self.conv(x), )
    return Net()


def test_benchmark_optimizer_choice_reaches_adamw():
    """--optimizer: adamw keeps torch's defaults (foreach=None, fused=None:
    the single-tensor loop on the CPU, foreach on CUDA), foreach / fused
    pass foreach=True / fused=True; lr and weight decay as before."""
    tool = _load_tool('analysis', 'benchmark.py')
    x = torch.randn(1, 3, 8, 8)
    for name, foreach, fused in (('adamw', None, None), ('foreach', True, None),
                                 ('fused', None, True)):
        run = tool.make_train_step(_tiny_net(), x, 'fp32', name)
        defaults = run.optimizer.defaults
        assert isinstance(run.optimizer, torch.optim.AdamW)
        assert (defaults['foreach'], defaults['fused']) == (foreach, fused), name
        assert (defaults['lr'], defaults['weight_decay']) == (1e-6, 0.05)
        run()
        run()  # with AdamW state
        info = tool.optimizer_info(name, torch.device('cpu'))
        assert (info['foreach'], info['fused']) == (foreach, fused)
    assert tool.optimizer_info('adamw', torch.device('cpu'))['implementation'] == \
        'single-tensor'
    assert tool.optimizer_info('adamw', torch.device('cuda'))['implementation'] == 'foreach'
    assert tool.optimizer_info('fused', torch.device('cpu'))['implementation'] == 'fused'
    with pytest.raises(ValueError):
        tool.build_optimizer(_tiny_net().parameters(), 'sgd')


def test_benchmark_compiled_rows_and_optimizer_in_json(tmp_path, capsys, monkeypatch):
    """--compile (here with torch.compile replaced by the identity, so no
    compiler runs): compiled rows beside the eager ones, the first call
    reported as compile time, the compiled ratio in the table;
    --optimizer fused recorded in the JSON and the header."""
    import json
    tool = _load_tool('analysis', 'benchmark.py')
    calls = []

    def fake_compile(model, **kw):
        calls.append(type(model).__name__)
        return model
    monkeypatch.setattr(torch, 'compile', fake_compile)
    out = tmp_path / 'bench.json'
    tool.main(['--archs', 'test', '--sizes', '64', '--batch-sizes', '1', '--repeats', '1',
               '--warmup', '0', '--modes', 'forward', 'train', '--compile', '--optimizer',
               'fused', '--out', str(out)])
    result = json.loads(out.read_text())
    assert [(r['mode'], r['model'], r['compiled']) for r in result['results']] == [
        (mode, name, name.endswith('(compiled)')) for mode in ('forward', 'train') for name in
        ('ClusterFormer-test', 'Swin-test', 'ClusterFormer-test (compiled)',
         'Swin-test (compiled)')]
    assert calls == ['ClusterFormer', 'SwinTransformer'] * 2  # once per measurement
    compiled = [r for r in result['results'] if r['compiled']]
    assert all(r['compile_s'] > 0 and r['peak_mb'] is not None for r in compiled)
    assert result['compile'] == dict(enabled=True, failures=[])
    assert result['optimizer']['name'] == 'fused' and result['optimizer']['fused'] is True
    text = capsys.readouterr().out
    assert 'CF/Swin compiled' in text and 'CF compile s' in text
    assert 'fused=True), fused implementation; torch.compile: on' in text
    assert 'Targets:' in text and 'issue' not in text.lower()


def test_benchmark_compile_failure_falls_back_to_eager(tmp_path, capsys, monkeypatch):
    """A compiler that fails: one line per model with the reason, the eager
    rows only, the reason in the JSON; the failing model is not tried again."""
    import json
    tool = _load_tool('analysis', 'benchmark.py')

    def broken_compile(model, **kw):
        raise RuntimeError('no C++ compiler found\nsecond line')
    monkeypatch.setattr(torch, 'compile', broken_compile)
    out = tmp_path / 'bench.json'
    tool.main(['--archs', 'test', '--sizes', '64', '--batch-sizes', '1', '--repeats', '1',
               '--warmup', '0', '--modes', 'forward', 'train', '--compile', '--no-memory',
               '--out', str(out)])
    result = json.loads(out.read_text())
    assert [(r['mode'], r['model']) for r in result['results']] == [
        (mode, name) for mode in ('forward', 'train') for name in
        ('ClusterFormer-test', 'Swin-test')]
    reason = 'RuntimeError: no C++ compiler found'
    assert [(f['model'], f['mode'], f['reason']) for f in result['compile']['failures']] == [
        ('ClusterFormer-test', 'forward', reason), ('Swin-test', 'forward', reason)]
    text = capsys.readouterr().out
    for name in ('ClusterFormer-test', 'Swin-test'):
        assert f'torch.compile unavailable for {name}: {reason}; compiled rows skipped' in text
    assert 'compiled ms' not in text and 'second line' not in text


def test_benchmark_compile_or_none_with_a_real_dynamo_backend():
    """compile_or_none through torch.compile itself with cheap backends: a
    backend that raises gives None and the reason; the 'eager' backend (graph
    capture, no code generation) gives a runner, forward and training step."""
    tool = _load_tool('analysis', 'benchmark.py')
    x = torch.randn(1, 3, 8, 8)

    def failing_backend(gm, example_inputs):
        raise ValueError('backend exploded')
    net = _tiny_net()
    run, seconds, reason = tool.compile_or_none(net, x, backend=failing_backend)
    if run is not None or reason is None:
        pytest.fail(f'a raising backend was not reported: {reason}')
    assert 'backend exploded' in reason and seconds >= 0
    assert all(p.grad is None for p in net.parameters())
    torch._dynamo.reset()
    for mode in ('forward', 'train'):
        run, seconds, reason = tool.compile_or_none(net, x, mode=mode, backend='eager')
        assert reason is None and seconds > 0, reason
        run()
    torch._dynamo.reset()


def test_benchmark_time_limit_skips_later_measurements(tmp_path, capsys):
    import json
    tool = _load_tool('analysis', 'benchmark.py')
    out = tmp_path / 'bench.json'
    tool.main(['--archs', 'test', '--sizes', '64', '--batch-sizes', '1', '--modes', 'forward',
               '--time-limit', '1e-9', '--out', str(out)])
    result = json.loads(out.read_text())
    assert result['results'] == [] and result['skipped'] == [dict(
        arch='test', size=64, batch=1, mode='forward', dtype='fp32', reason='time limit')]
    assert 'skipped (time limit): test forward 64px b1 fp32' in capsys.readouterr().out
