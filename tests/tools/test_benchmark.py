"""tools/analysis/gpu_check.py: the prepared GPU check, tested on the CPU
(--device cpu --quick) and without CUDA (exit code 2)."""
import json
import os
import os.path as osp

import pytest
import torch

from helpers import default_scope_kept, load_tool


def _load_gpu_check():
    return load_tool(osp.join('analysis', 'gpu_check'))


def test_gpu_check_quick_on_cpu_writes_markdown_and_json(tmp_path, capsys):
    tool = _load_gpu_check()
    out = tmp_path / 'sub' / 'gpu.md'
    code = tool.main(['--device', 'cpu', '--quick', '--out', str(out)])
    assert code == 0
    text = out.read_text()
    assert text.startswith('## GPU check: no GPU (CPU), ')
    assert 'CPU quick mode' in text and 'command: `python tools/analysis/gpu_check.py ' \
        '--device cpu --quick --out ' in text
    smoke_part = text.split('### Benchmark')[0]
    assert smoke_part.count('| pass |') == 4 and 'FAIL' not in text  # the smoke checks
    assert '| test vs Swin-test | forward | 64 | 2 | bf16 |' in text
    assert '| test vs Swin-test | train | 64 | 1 | bf16 |' in text
    assert 'Targets:' in text and 'CUDA bf16 forward tiny / Swin-T, 1024 px, batch 16' in text
    assert 'issue' not in text.lower()
    data = json.loads((tmp_path / 'sub' / 'gpu.json').read_text())
    assert data['exit_code'] == 0 and data['complete'] and data['quick']
    assert data['smoke']['passed'] and len(data['smoke']['checks']) == 4
    fused = [c for c in data['smoke']['checks'] if c['check'].startswith('forward')]
    assert all('fused E/M step called' in c['detail'] for c in fused)
    rows = data['benchmark']['results']
    assert {(r['mode'], r['batch'], r['dtype']) for r in rows} == {
        (m, b, 'bf16') for m in ('forward', 'train') for b in (1, 2)}
    assert all(r['peak_mb'] is not None for r in rows)
    smoke = [t for t in data['targets'] if t['kind'] == 'check']
    assert len(smoke) == 1 and smoke[0]['met'] is True
    printed = capsys.readouterr().out
    assert f'written: {out}' in printed


def test_gpu_check_without_cuda_exits_2(tmp_path, capsys, monkeypatch):
    tool = _load_gpu_check()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    out = tmp_path / 'gpu.md'
    assert tool.main(['--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert 'sees no CUDA device' in err and '--device cpu --quick' in err
    assert not out.exists()
    with pytest.raises(SystemExit) as exc:  # the CPU runs toy sizes only
        tool.main(['--device', 'cpu'])
    assert exc.value.code == 2


def test_gpu_check_smoke_reports_a_mismatch(monkeypatch):
    """The fused-vs-plain comparison fails when the fused step is off."""
    tool = _load_gpu_check()
    from mmcf.models.clustering import rca

    def off(*args, **kwargs):
        c, m = original(*args, **kwargs)
        return c * 1.01, m
    original = rca.fused_em_step
    monkeypatch.setattr(rca, 'fused_em_step', off)
    result = tool.smoke('test', 32, 1, torch.device('cpu'))
    assert not result['passed']
    assert [c['passed'] for c in result['checks']] == [True, True, False, False]


def test_seg_step_benchmark_tables_our_head_beside_the_reference(tmp_path, capsys):
    tool = load_tool(osp.join('analysis', 'benchmark_seg_step'))
    seg = osp.join(tool.ROOT, 'configs', 'segmentation')
    configs = [osp.join(seg, 'upernet_clusterformer-test_1xb8-1k_shapes-64x64.py'),
               osp.join(seg, 'clusterformer-test_1xb8-1k_shapes-64x64.py')]
    out = tmp_path / 'steps.json'
    with default_scope_kept():
        assert tool.main(configs + ['--size', '32', '32', '--batch', '2', '--repeats', '1',
                                    '--warmup', '1', '--out', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'training step at 32x32, batch 2, median of 1 (interleaved)' in text
    assert '| upernet_clusterformer-test_1xb8-1k_shapes-64x64 | ' in text
    assert 'Target: training step, our head / upernet_clusterformer-test' in text
    data = json.loads(out.read_text())
    assert data['reference'] == 'upernet_clusterformer-test_1xb8-1k_shapes-64x64'
    ref, ours = data['results']
    assert ref['time_ratio'] == 1.0 and ref['peak_ratio'] == 1.0
    assert ours['time_ratio'] == pytest.approx(ours['ms'] / ref['ms'])
    assert ours['peak_mb'] > 0 and ours['params_m'] > 1
    assert data['target']['value'] == ours['time_ratio']
    assert data['target']['met'] == (ours['time_ratio'] <= 1.5)
    assert data['num_classes'] == 7 and os.listdir(tmp_path) == ['steps.json']  # no temporary
    # the made-up batch is the loader's: uint8 images, labels below the class count
    batch = tool.make_batch(2, 8, 12, 7)
    assert batch['inputs'][0].dtype == torch.uint8 and batch['inputs'][0].shape == (3, 8, 12)
    labels = batch['data_samples'][1].gt_sem_seg.data
    assert labels.shape == (1, 8, 12) and int(labels.max()) < 7


def test_seg_step_benchmark_names_a_missing_config(capsys):
    tool = load_tool(osp.join('analysis', 'benchmark_seg_step'))
    with pytest.raises(SystemExit):
        tool.main(['configs/segmentation/nope.py'])
    assert 'config file not found: configs/segmentation/nope.py' in capsys.readouterr().err
