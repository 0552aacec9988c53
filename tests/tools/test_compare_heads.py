"""tools/analysis/compare_heads.py and the stock-head comparison configs:
the log parser on a saved log, the seed table, and every comparison config
trains and validates through tools/train.py."""
import dataclasses
import os
import os.path as osp

import pytest

from demo_configs import DEMO_BY_NAME
from helpers import ROOT, load_tool, python, run

LOGS = osp.join(ROOT, 'tests', 'tools', 'logs')


@pytest.fixture(scope='module')
def tool():
    return load_tool(osp.join('analysis', 'compare_heads'))


def test_parser_takes_the_last_complete_validation(tool):
    with open(osp.join(LOGS, 'compare_heads_inst.log')) as f:
        text = f.read()
    metrics = tool.parse_val_metrics(text)
    # the last [5/5] summary, not the earlier one nor the [2/5] progress line
    assert metrics['coco/bbox_mAP'] == pytest.approx(0.041)
    assert metrics['coco/segm_mAP'] == pytest.approx(0.108)
    assert metrics['coco/bbox_mAP_m'] == -1.0
    assert 'eta' not in metrics
    assert tool.parse_val_metrics(text.split('Iter(val)')[0]) is None
    # a validation half-way through the schedule is not the run's result
    halfway = text.split('Iter(train) [1000/1000]')[0]
    assert 'Iter(val) [5/5]' in halfway and tool.parse_val_metrics(halfway) is None
    test_line = '12/01 18:43:28 - mmengine - INFO - Iter(test) [5/5]    mIoU: 51.9500  aAcc: 88.1'
    assert tool.parse_val_metrics(test_line) == {'mIoU': 51.95, 'aAcc': 88.1}


def _fake_run(root, task, head, seed, line):
    path = osp.join(root, task, head, f'seed{seed}', '20261201_000000')
    os.makedirs(path)
    with open(osp.join(path, '20261201_000000.log'), 'w') as f:
        f.write('2026/12/01 00:00:00 - mmengine - INFO - Iter(val) [5/5]    ' + line + '\n')


def test_table_mean_and_spread_over_seeds(tool, tmp_path):
    root = str(tmp_path)
    for seed, (bbox, segm) in enumerate([(0.10, 0.15), (0.12, 0.17), (0.14, 0.19)]):
        _fake_run(root, 'inst', 'ours', seed, f'coco/bbox_mAP: {bbox}  coco/segm_mAP: {segm}')
    _fake_run(root, 'inst', 'stock', 0, 'coco/bbox_mAP: 0.119  coco/segm_mAP: 0.157')
    _fake_run(root, 'inst', 'focal', 3, 'coco/bbox_mAP: 0.2  coco/segm_mAP: 0.3')
    os.makedirs(osp.join(root, 'inst', 'stock', 'seed1'))  # unfinished: skipped
    text = tool.table(root, ['inst'])
    lines = [ln for ln in text.splitlines() if ln.startswith('| ')]
    assert lines[0] == '| head | seeds | bbox AP | segm AP |'
    # ours first, variants next, the stock head last; std over seeds (n - 1)
    assert lines[1] == '| ClusterFormer (ours) | 0,1,2 | 12.0 ± 2.0 | 17.0 ± 2.0 |'
    assert lines[2] == '| ours: focal | 3 | 20.0 | 30.0 |'
    assert lines[3] == '| mmdet Mask2Former | 0 | 11.9 | 15.7 |'


def test_cfg_options_need_a_variant_name(tool):
    with pytest.raises(SystemExit):
        tool.parse_args(['--cfg-options', 'model.bbox_head.assign_prior=mask'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--variant', 'stock', '--cfg-options', 'a=1'])
    args = tool.parse_args(['--variant', 'prior', '--cfg-options', 'a=1', '--seeds', '3'])
    assert args.seeds == [3] and args.cfg_options == ['a=1']


@pytest.mark.parametrize('task,demo', [('seg', 'segmentation'), ('inst', 'detection'),
                                       ('pan', 'panoptic')])
def test_stock_comparison_configs_train_and_validate(tool, task, demo, shapes_root,
                                                     tmp_path):
    """The stock head beside each demo: same data and schedule, two
    iterations and a validation through tools/train.py; the log gives the
    metrics the table reads."""
    pair = tool.PAIRS[task]
    spec = dataclasses.replace(DEMO_BY_NAME[demo], config=osp.join(ROOT, pair['stock']))
    work = tmp_path / 'work'
    run([python(), 'tools/train.py', spec.config, '--work-dir', str(work),
         *spec.cli_options(shapes_root, [
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             f'train_dataloader.batch_size={spec.batch_size}',
             'default_hooks.checkpoint.interval=2'])])
    metrics = tool.read_result(str(work))
    assert metrics is not None
    for _, key, _ in pair['metrics']:
        assert key in metrics
