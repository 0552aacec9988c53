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
    assert lines[0] == '| head | seeds | bbox AP | segm AP | s/iter |'
    # ours first, variants next, the stock head last; std over seeds (n - 1)
    assert lines[1] == '| ClusterFormer (ours) | 0,1,2 | 12.0 ± 2.0 | 17.0 ± 2.0 | - |'
    assert lines[2] == '| ours: focal | 3 | 20.0 | 30.0 | - |'
    assert lines[3] == '| mmdet Mask2Former | 0 | 11.9 | 15.7 | - |'


MMSEG_LOG = '''\
12/05 10:00:01 - mmengine - INFO - Iter(train) [  50/2000]  lr: 1e-3  eta: 0:10:00  time: 0.3000  data_time: 0.01  loss: 2.0
12/05 10:00:02 - mmengine - INFO - Iter(train) [ 100/2000]  lr: 1e-3  eta: 0:10:00  time: 0.5000  data_time: 0.01  loss: 1.0
12/05 10:00:03 - mmengine - INFO - Iter(train) [2000/2000]  lr: 1e-5  eta: 0:00:00  time: 0.4000  data_time: 0.01  loss: 0.5
12/05 10:00:04 - mmengine - INFO - per class results:
12/05 10:00:04 - mmengine - INFO - 
+------------+-------+-------+
|   Class    |  IoU  |  Acc  |
+------------+-------+-------+
|    sky     | 90.5  | 95.0  |
|    pole    |  2.25 |  3.0  |
| pedestrian |  nan  |  nan  |
+------------+-------+-------+
12/05 10:00:04 - mmengine - INFO - Iter(val) [13/13]    aAcc: 80.0  mIoU: {miou}  mAcc: 50.0  data_time: 0.01  time: 0.05
'''


def test_time_per_iteration_and_per_class_iou_from_an_mmseg_log(tool, tmp_path):
    text = MMSEG_LOG.format(miou=46.38)
    assert tool.parse_train_time(text) == pytest.approx(0.4)  # median of the train lines
    classes = tool.parse_class_iou(text)
    assert list(classes) == ['sky', 'pole', 'pedestrian']
    assert classes['pole'] == pytest.approx(2.25) and classes['pedestrian'] != classes['pedestrian']
    root = str(tmp_path)
    for head, seed, miou in [('ours', 0, 40.0), ('ours', 1, 42.0), ('stock', 0, 41.0),
                             ('swin-upernet', 0, 39.5)]:
        path = osp.join(root, 'camvid', head, f'seed{seed}', '20261205_000000')
        os.makedirs(path)
        with open(osp.join(path, '20261205_000000.log'), 'w') as f:
            f.write(MMSEG_LOG.format(miou=miou))
    lines = [ln for ln in tool.table(root, ['camvid']).splitlines() if ln.startswith('| ')]
    assert lines[0] == '| head | seeds | mIoU | s/iter |'
    assert lines[1] == '| ClusterFormer (ours) | 0,1 | 41.0 ± 1.4 | 0.400 ± 0.000 |'
    assert lines[2] == '| mmseg UperNet | 0 | 41.0 | 0.400 |'
    assert lines[3] == '| mmseg Swin + UperNet | 0 | 39.5 | 0.400 |'
    assert lines[4] == '| head | sky | pole | pedestrian |'
    assert lines[5] == '| ClusterFormer (ours) | 90.5 ± 0.0 | 2.2 ± 0.0 | - |'


def test_drive_folds_table_has_a_column_per_drive_and_the_mean(tool, tmp_path):
    root = str(tmp_path)
    values = {('ours', 0): (14.0, 29.0, 26.0), ('ours', 1): (15.0, 30.0, 28.0),
              ('stock', 0): (13.0, 30.0, 29.0), ('ours', 2): (16.0, 31.0, None)}
    for (head, seed), mious in values.items():
        for fold, miou in zip(('0001TP', '0006R0', '0016E5'), mious):
            if miou is None:
                continue  # an unfinished fold: the seed's mean is left out
            path = osp.join(root, 'camvid-drives', head, fold, f'seed{seed}', '20261206_000000')
            os.makedirs(path)
            with open(osp.join(path, '20261206_000000.log'), 'w') as f:
                f.write(MMSEG_LOG.format(miou=miou))
    os.makedirs(osp.join(root, 'camvid-drives', 'folds'))  # the lists: not a head
    lines = [ln for ln in tool.table(root, ['camvid-drives']).splitlines()
             if ln.startswith('| ')]
    assert lines[0] == ('| head | seeds | mIoU, 0001TP held out | mIoU, 0006R0 held out | '
                        'mIoU, 0016E5 held out | mIoU, mean over drives | s/iter |')
    # per seed the mean of the three folds (23.0, 24.33), then mean ± sd
    assert lines[1] == ('| ClusterFormer (ours) | 0,1,2 | 15.0 ± 1.0 | 30.0 ± 1.0 | '
                        '27.0 ± 1.4 | 23.7 ± 0.9 | 0.400 ± 0.000 |')
    assert lines[2] == '| mmseg UperNet | 0 | 13.0 | 30.0 | 29.0 | 24.0 | 0.400 ± 0.000 |'
    args = tool.parse_args(['--tasks', 'camvid-drives', 'pennfudan', '--heads', 'ours',
                            'swin-upernet', 'swin-mask2former'])
    assert args.tasks == ['camvid-drives', 'pennfudan']


def test_health_of_our_runs_joins_the_table(tool, tmp_path):
    import json
    root = str(tmp_path)
    path = osp.join(root, 'seg', 'ours', 'seed0')
    _fake_run(root, 'seg', 'ours', 0, 'mIoU: 50.0')
    layers = [dict(entropy=0.6, spread=0.3, used=6.0, num_centers=7),
              dict(entropy=0.8, spread=0.5, used=7.0, num_centers=7)]
    with open(osp.join(path, 'health.json'), 'w') as f:
        json.dump(dict(health=dict(decode_head=layers)), f)
    lines = [ln for ln in tool.table(root, ['seg']).splitlines() if ln.startswith('| ')]
    assert lines[0].endswith('| s/iter | decoder health (entropy/logK / spread / used) |')
    assert lines[1] == '| ClusterFormer (ours) | 0 | 50.0 | - | 0.70 / 0.40 / 6.5 of 7 |'


def test_cfg_options_need_a_variant_name(tool):
    with pytest.raises(SystemExit):
        tool.parse_args(['--cfg-options', 'model.bbox_head.assign_prior=mask'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--variant', 'stock', '--cfg-options', 'a=1'])
    with pytest.raises(SystemExit):  # camvid's other heads are not the demos'
        tool.parse_args(['--tasks', 'seg', '--heads', 'mask2former'])
    assert tool.parse_args(['--tasks', 'camvid', '--heads', 'ours', 'swin-upernet']).heads == [
        'ours', 'swin-upernet']
    args = tool.parse_args(['--variant', 'prior', '--cfg-options', 'a=1', '--seeds', '3'])
    assert args.seeds == [3] and args.cfg_options == ['a=1']


# the key under which each pair's model holds its head
HEAD_KEYS = {'bbox_head', 'panoptic_head', 'decode_head', 'auxiliary_head'}


@pytest.mark.parametrize('task', ['seg', 'inst', 'pan', 'camvid', 'camvid-drives', 'pennfudan'])
def test_each_pair_shares_one_recipe(tool, task):
    """Ours and the stock head: the same optimizer, clipping, schedule, loop
    and data, and the same per-module learning-rate rules once the head's
    own key is read as "the head" (the instance pair trains both heads at
    twice the backbone's rate)."""
    from mmengine.config import Config
    pair = tool.PAIRS[task]
    ours, stock = (Config.fromfile(osp.join(ROOT, pair[k])) for k in ('ours', 'stock'))
    for key in ('param_scheduler', 'train_cfg', 'randomness'):
        assert ours.get(key) == stock.get(key), key
    for key in ('train_dataloader', 'val_dataloader'):
        assert ours[key] == stock[key], key

    def metrics(evaluators):
        """Evaluator dicts with their paths normalised and unset keys dropped."""
        out = []
        for e in (evaluators if isinstance(evaluators, list) else [evaluators]):
            out.append({k: osp.normpath(v) if k in ('ann_file', 'seg_prefix') else v
                        for k, v in e.items() if v is not None})
        return out

    if task == 'pan':  # ours also scores mIoU_pan, which the stock fusion head lacks
        assert metrics(ours.val_evaluator)[:2] == metrics(stock.val_evaluator)
    else:
        assert metrics(ours.val_evaluator) == metrics(stock.val_evaluator)

    def recipe(cfg):
        wrapper = cfg.optim_wrapper.to_dict()
        keys = wrapper.get('paramwise_cfg', {}).pop('custom_keys', {})
        heads = {k: v for k, v in keys.items() if k in HEAD_KEYS}
        assert len({str(v) for v in heads.values()}) <= 1
        return wrapper, next(iter(heads.values()), None)

    (w_ours, h_ours), (w_stock, h_stock) = recipe(ours), recipe(stock)
    assert w_ours['optimizer'] == w_stock['optimizer']
    assert w_ours.get('clip_grad') == w_stock.get('clip_grad')
    assert h_ours == h_stock
    if task in ('inst', 'pennfudan'):
        assert h_ours == {'lr_mult': 2.0}
    for other in pair.get('others', {}).values():  # Swin: the same recipe again
        cfg = Config.fromfile(osp.join(ROOT, other[1]))
        assert cfg.train_dataloader == ours.train_dataloader
        assert cfg.optim_wrapper.optimizer == ours.optim_wrapper.optimizer


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
