"""Train our heads and the stock heads users would pick instead on the same
backbone, data and recipe, over seeds, and print one table.

    python tools/analysis/compare_heads.py [--tasks seg inst pan] \
        [--seeds 0 1 2] [--jobs 2] [--heads ours stock] \
        [--work-dir work_dirs/compare_heads] [--variant NAME \
        [--cfg-options KEY=VALUE ...] [--config CONFIG]] [--table-only] [--force]

The pairs (``PAIRS``) are the CPU demos beside a stock head on the same
`test` ClusterFormer backbone, embedded data, schedule, optimizer and seed:

* ``seg``: our ClusterFormer decode head vs mmseg's UperNet (UPerHead +
  auxiliary FCNHead), mIoU;
* ``inst``: our detection / instance head vs mmdet's Mask2Former
  (Mask2FormerHead, 20 queries, 6 layers, 64 wide), both heads at twice the
  backbone's learning rate, bbox and segm AP;
* ``pan``: our panoptic head vs mmdet's Mask2Former panoptic (23 queries),
  PQ, PQ_th, PQ_st and the thing masks' segm AP;
* ``camvid``: real street scenes (CamVid, 11 classes, 96x128, the shared
  copy's val split), 2000 iterations of the semantic demo's recipe: our head
  vs mmseg's UperNet on our backbone, and also (``others``) mmseg's
  Mask2Former head on our backbone and mmseg's Swin of the same widths and
  depths with UperNet; mIoU and the IoU of every class;
* ``camvid-drives``: the same four on street scenes they have not seen:
  cross-validation by drive (``tools/dataset/camvid_drive_folds.py``: the
  shared train and val splits pooled, each run trains on two of the drives
  0001TP, 0006R0, 0016E5 and validates on the third), a column per
  held-out drive and the mean over the drives;
* ``pennfudan``: real photos with instance masks (Penn-Fudan pedestrians,
  one class, 100 train / 20 val photos at 128 px, scale jitter, crop, flip
  and photometric distortion, 4000 iterations): our instance head vs mmdet's
  Mask2Former on our backbone and on Swin of the same size; bbox and segm AP.

The table gives, per head, the mean ± standard deviation over the seeds of
each metric and of the training time per iteration (the median of the
log's ``time`` over the run; one thread). ``--health`` also measures the
cluster health of our heads' decoder layers (and the backbone's stages)
after training (``tools/analysis/cluster_health.py`` on the last
checkpoint, 64 validation images) and adds it to the table.

Each run is ``tools/train.py <config> --cfg-options randomness.seed=S``
with one CPU thread, ``--jobs`` at a time; its metrics are read from the
last validation line of its log. ``--variant NAME --cfg-options ...``
trains our head with changed options under its own name (a row of its
own), which is how a head change is measured one at a time; ``--variant
NAME --config CONFIG`` trains another config (one inheriting the demo) in
its place. Runs whose
work dir already holds a finished log are not repeated (``--force`` re-runs
them); ``--table-only`` tabulates what has finished. Bounding-box AP of the
stock Mask2Former comes from its masks (mmdet's mask-to-box), ours from the
box branch.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset'))
from camvid_drive_folds import DRIVES, write_folds  # noqa: E402

#: task -> configs of our head and the stock head, and the metrics shown:
#: (column name, key in the validation log line, factor to percent)
PAIRS: Dict[str, dict] = {
    'seg': dict(
        ours='configs/segmentation/clusterformer-test_1xb8-1k_shapes-64x64.py',
        stock='configs/segmentation/upernet_clusterformer-test_1xb8-1k_shapes-64x64.py',
        stock_name='mmseg UperNet',
        metrics=[('mIoU', 'mIoU', 1.0)]),
    'inst': dict(
        ours='configs/detection/clusterformer-test_1xb8-1k_shapes-inst.py',
        stock='configs/detection/mask2former_clusterformer-test_1xb8-1k_shapes-inst.py',
        stock_name='mmdet Mask2Former',
        metrics=[('bbox AP', 'coco/bbox_mAP', 100.0), ('segm AP', 'coco/segm_mAP', 100.0)]),
    'pan': dict(
        ours='configs/panoptic/clusterformer-test_1xb8-1k_shapes-panoptic.py',
        stock='configs/panoptic/mask2former_clusterformer-test_1xb8-1k_shapes-panoptic.py',
        stock_name='mmdet Mask2Former',
        metrics=[('PQ', 'coco_panoptic/PQ', 1.0), ('PQ_th', 'coco_panoptic/PQ_th', 1.0),
                 ('PQ_st', 'coco_panoptic/PQ_st', 1.0),
                 ('segm AP', 'coco/segm_mAP', 100.0)]),
    'camvid': dict(
        ours='configs/segmentation/clusterformer-test_1xb8-2k_camvid-96x128.py',
        stock='configs/segmentation/upernet_clusterformer-test_1xb8-2k_camvid-96x128.py',
        stock_name='mmseg UperNet',
        others={
            'mask2former': ('mmseg Mask2Former',
                            'configs/segmentation/'
                            'mask2former_clusterformer-test_1xb8-2k_camvid-96x128.py'),
            'swin-upernet': ('mmseg Swin + UperNet',
                             'configs/segmentation/upernet_swin-test_1xb8-2k_camvid-96x128.py'),
        },
        metrics=[('mIoU', 'mIoU', 1.0)], per_class=True),
}
PAIRS['pennfudan'] = dict(
    ours='configs/detection/clusterformer-test_1xb8-4k_pennfudan-128.py',
    stock='configs/detection/mask2former_clusterformer-test_1xb8-4k_pennfudan-128.py',
    stock_name='mmdet Mask2Former',
    others={
        'swin-mask2former': ('mmdet Swin + Mask2Former',
                             'configs/detection/mask2former_swin-test_1xb8-4k_pennfudan-128.py'),
    },
    metrics=PAIRS['inst']['metrics'])
#: ``camvid-drives``: the CamVid pair on new scenes, by cross-validation over
#: the drives (tools/dataset/camvid_drive_folds.py): each run trains on two
#: drives (train and val splits pooled) and validates on the third
PAIRS['camvid-drives'] = dict(PAIRS['camvid'], folds=DRIVES)

_VAL_LINE = re.compile(r'Iter\((?:val|test)\) \[(\d+)/(\d+)\]\s+(.*)$')
_TRAIN_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\]')
_METRIC = re.compile(r'([\w/.\-]+):\s+(-?[\d.]+(?:e[-+]?\d+)?)')


def parse_val_metrics(log_text: str) -> Optional[Dict[str, float]]:
    """The metrics of the LAST validation (or test) summary line of an
    mmengine log (``Iter(val) [n/n]  key: value  key: value ...``) after
    the training's last iteration (``Iter(train) [N/N]``), or None when the
    run has not finished: the validations half-way through a schedule are
    not its result. A log without training lines (``tools/test.py``) gives
    its last summary."""
    found = None
    trained = finished = False
    for line in log_text.splitlines():
        t = _TRAIN_LINE.search(line)
        if t:
            trained = True
            finished = t.group(1) == t.group(2)
            continue
        m = _VAL_LINE.search(line)
        if m and m.group(1) == m.group(2) and (finished or not trained):
            found = {k: float(v) for k, v in _METRIC.findall(m.group(3))}
    return found


_TIME = re.compile(r'\btime: ([\d.]+)')
_CLASS_ROW = re.compile(r'^\|\s*([^|]+?)\s*\|\s*(-?[\d.]+|nan)\s*\|\s*(-?[\d.]+|nan)\s*\|$')


def parse_train_time(log_text: str) -> Optional[float]:
    """Median seconds per training iteration over the ``time:`` of the
    log's training lines (mmengine's IterTimerHook), or None."""
    times = [float(t.group(1)) for line in log_text.splitlines()
             if _TRAIN_LINE.search(line) for t in [_TIME.search(line)] if t]
    return statistics.median(times) if times else None


def parse_class_iou(log_text: str) -> Optional[Dict[str, float]]:
    """Class -> IoU of the LAST ``per class results`` table of an mmseg log
    (IoUMetric prints one per validation), or None."""
    found = None
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if not line.rstrip().endswith('per class results:'):
            continue
        table: Dict[str, float] = {}
        for row in lines[i + 1:]:
            m = _CLASS_ROW.match(row.strip())
            if m:
                if m.group(1) != 'Class':
                    table[m.group(1)] = float(m.group(2))
            elif table or row.strip().startswith('+') or not row.strip():
                if table and not row.strip().startswith('+'):
                    break
        found = table or found
    return found


def run_dir(work_dir: str, task: str, head: str, seed: int, fold: Optional[str] = None
            ) -> str:
    """``work_dir/task/head/seed<S>``, or ``.../head/<fold>/seed<S>`` for a
    task validated fold by fold."""
    parts = [work_dir, task, head] + ([fold] if fold else []) + [f'seed{seed}']
    return osp.join(*parts)


def _newest_log(path: str) -> Optional[str]:
    """Text of the newest log under a run's work dir with a final
    validation, or None."""
    for log in reversed(sorted(glob.glob(osp.join(path, '*', '*.log')))):
        with open(log, encoding='utf-8', errors='replace') as f:
            text = f.read()
        if parse_val_metrics(text):
            return text
    return None


def read_result(path: str) -> Optional[Dict[str, float]]:
    """Metrics of the newest log under a run's work dir, or None."""
    text = _newest_log(path)
    return parse_val_metrics(text) if text else None


def read_run(path: str) -> Optional[dict]:
    """A finished run: its ``metrics``, training ``time`` per iteration,
    ``classes`` (per-class IoU, mmseg) and ``health`` (health.json, when
    measured), or None."""
    text = _newest_log(path)
    if text is None:
        return None
    health = None
    if osp.isfile(osp.join(path, 'health.json')):
        with open(osp.join(path, 'health.json')) as f:
            health = json.load(f)
    return dict(metrics=parse_val_metrics(text), time=parse_train_time(text),
                classes=parse_class_iou(text), health=health)


def train_one(config: str, path: str, seed: int, cfg_options: Sequence[str]) -> int:
    os.makedirs(path, exist_ok=True)
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, config),
           '--work-dir', path, '--cfg-options', f'randomness.seed={seed}', *cfg_options]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with open(osp.join(path, 'train.out'), 'w') as out:
        return subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def measure_health(config: str, path: str, cfg_options: Sequence[str]) -> int:
    """Cluster health of a finished run's last checkpoint (every source:
    the backbone's stages, the head's decoder layers) into health.json."""
    ckpts = sorted(glob.glob(osp.join(path, 'iter_*.pth')),
                   key=lambda p: int(re.findall(r'iter_(\d+)', p)[0]))
    if not ckpts:
        return 1
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'analysis', 'cluster_health.py'),
           osp.join(ROOT, config), '--checkpoint', ckpts[-1], '--num-images', '64',
           '--json', osp.join(path, 'health.json')]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with open(osp.join(path, 'health.out'), 'w') as out:
        return subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def summarise(values: List[float], digits: int = 1) -> str:
    """``mean ± sd`` (n - 1) of the values that are numbers ('-' for none;
    mmseg's IoU of a class absent from the data is NaN)."""
    values = [v for v in values if v == v]
    if not values:
        return '-'
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}'


def head_names(pair: dict) -> Dict[str, str]:
    """Run name -> what the table calls it, for the heads a task compares."""
    names = {'ours': 'ClusterFormer (ours)', 'stock': pair['stock_name']}
    names.update({k: label for k, (label, _) in pair.get('others', {}).items()})
    return names


def _health_cell(runs: List[dict], source: str) -> str:
    """entropy/logK, spread and used/K of a source, averaged over its
    stages (layers) and the seeds: ``0.71 / 0.35 / 9.8 of 11``."""
    stages = [s for r in runs if r.get('health')
              for s in r['health'].get('health', {}).get(source, [])]
    if not stages:
        return '-'
    mean = {k: statistics.fmean(s[k] for s in stages) for k in ('entropy', 'spread', 'used')}
    return (f"{mean['entropy']:.2f} / {mean['spread']:.2f} / {mean['used']:.1f} of "
            f"{stages[0]['num_centers']}")


def _runs_of(work_dir: str, task: str, head: str, folds: Sequence[Optional[str]]
             ) -> List[Tuple[str, Optional[str], dict]]:
    """(seed, fold, run) of every finished run of a head."""
    runs = []
    for fold in folds:
        base = osp.join(work_dir, task, head, *([fold] if fold else []))
        for seed_dir in sorted(glob.glob(osp.join(base, 'seed*'))):
            r = read_run(seed_dir)
            if r is not None:
                runs.append((seed_dir.rsplit('seed', 1)[1], fold, r))
    return runs


def _fold_means(runs: List[Tuple[str, Optional[str], dict]], key: str, factor: float,
                folds: Sequence[str]) -> List[float]:
    """Per seed that has every fold, the mean of the metric over the folds
    (the cross-validation score of that seed)."""
    by_seed: Dict[str, Dict[str, float]] = {}
    for seed, fold, r in runs:
        if key in r['metrics']:
            by_seed.setdefault(seed, {})[fold] = r['metrics'][key] * factor
    return [statistics.fmean(v[f] for f in folds) for _, v in sorted(by_seed.items())
            if all(f in v for f in folds)]


def table(work_dir: str, tasks: Sequence[str]) -> str:
    """One markdown table per task: a row per head (ours, its variants, the
    stock head and the other heads) with the mean ± standard deviation over
    the seeds found, the training time per iteration and, where measured,
    the cluster health of the decoder layers; for mmseg tasks a second table
    of per-class IoU. A task validated by folds (``camvid-drives``) has a
    column per held-out fold (mean ± sd over the seeds) and the mean over
    the folds: per seed the mean of its folds, then mean ± sd over the seeds
    that finished every fold; its per-class IoU is the mean over every fold
    and seed."""
    out = []
    for task in tasks:
        pair = PAIRS[task]
        folds: Sequence[Optional[str]] = pair.get('folds') or [None]
        names = head_names(pair)
        heads = sorted(d for d in os.listdir(osp.join(work_dir, task))
                       if osp.isdir(osp.join(work_dir, task, d)) and d != 'folds') \
            if osp.isdir(osp.join(work_dir, task)) else []
        # ours, its variants, then the stock head and the other heads
        order = list(names)
        heads.sort(key=lambda h: (0 if h == 'ours' else 2 if h in names else 1,
                                  order.index(h) if h in names else 0, h))
        if pair.get('folds'):
            (col, key, factor), = pair['metrics'][:1]
            cols = [f'{col}, {fold} held out' for fold in folds] + [f'{col}, mean over drives']
        else:
            cols = [name for name, _, _ in pair['metrics']]
        rows, class_rows, with_health = [], [], False
        for head in heads:
            runs = _runs_of(work_dir, task, head, folds)
            if not runs:
                continue
            if pair.get('folds'):
                cells = [summarise([r['metrics'][key] * factor for _, f, r in runs
                                    if f == fold and key in r['metrics']]) for fold in folds]
                cells.append(summarise(_fold_means(runs, key, factor, folds)))
            else:
                cells = [summarise([r['metrics'][k] * fac for _, _, r in runs
                                    if k in r['metrics']]) for _, k, fac in pair['metrics']]
            cells.append(summarise([r['time'] for _, _, r in runs if r['time']], 3))
            health = _health_cell([r for _, _, r in runs], 'decode_head' if task.startswith((
                'seg', 'camvid')) else 'bbox_head')
            with_health |= health != '-'
            name = names.get(head, f'ours: {head}')
            seeds = ','.join(sorted({s for s, _, _ in runs}, key=int))
            rows.append((name, seeds, cells, health))
            per_class = [r['classes'] for _, _, r in runs if r['classes']]
            if pair.get('per_class') and per_class:
                classes = list(per_class[0])
                class_rows.append((name, classes, [summarise([c[k] for c in per_class
                                                              if k in c]) for k in classes]))
        out.append(f'### {task}\n')
        extra = ' | decoder health (entropy/logK / spread / used)' if with_health else ''
        out.append('| head | seeds | ' + ' | '.join(cols) + ' | s/iter' + extra + ' |')
        out.append('|---|---|' + '---|' * (len(cols) + 1 + bool(with_health)))
        for name, seeds, cells, health in rows:
            tail = f' | {health}' if with_health else ''
            out.append(f'| {name} | {seeds} | ' + ' | '.join(cells) + tail + ' |')
        out.append('')
        if class_rows:
            classes = class_rows[0][1]
            out.append('| head | ' + ' | '.join(classes) + ' |')
            out.append('|---|' + '---|' * len(classes))
            for name, _, cells in class_rows:
                out.append(f'| {name} | ' + ' | '.join(cells) + ' |')
            out.append('')
    return '\n'.join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tasks', nargs='+', default=['seg', 'inst', 'pan'], choices=list(PAIRS))
    p.add_argument('--heads', nargs='+', default=['ours', 'stock'],
                   help="'ours', 'stock' and, for a task that has them, the other heads "
                   "(camvid: 'mask2former', 'swin-upernet')")
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'compare_heads'))
    p.add_argument('--variant', default=None,
                   help='train our head under this name with --cfg-options')
    p.add_argument('--cfg-options', nargs='*', default=[],
                   help='KEY=VALUE options for our head (with --variant)')
    p.add_argument('--config', default=None,
                   help='a config to train instead of our demo config (with --variant, '
                   'one task): for changes --cfg-options cannot write, e.g. lists of dicts')
    p.add_argument('--health', action='store_true',
                   help="measure the cluster health of our heads' runs after training")
    p.add_argument('--table-only', action='store_true')
    p.add_argument('--force', action='store_true')
    args = p.parse_args(argv)
    if (args.cfg_options or args.config) and not args.variant:
        p.error('--cfg-options / --config change our head: name the variant with --variant')
    if args.config and len(args.tasks) != 1:
        p.error('--config replaces the config of one task: give one --tasks')
    known = {h for t in args.tasks for h in head_names(PAIRS[t])}
    if args.variant in known:
        p.error(f'--variant must not be one of the compared heads {sorted(known)}')
    unknown = sorted(set(args.heads) - known)
    if unknown:
        p.error(f'--heads {unknown} are not compared in --tasks {args.tasks}; '
                f'known: {sorted(known)}')
    return args


def head_config(pair: dict, head: str) -> Optional[str]:
    """The config a head of a task trains, or None when the task has no
    such head."""
    if head in ('ours', 'stock'):
        return pair[head]
    other = pair.get('others', {}).get(head)
    return other[1] if other else None


def fold_options(task: str, work_dir: str) -> Dict[Optional[str], List[str]]:
    """Fold -> the ``--cfg-options`` that select its data (``{None: []}``
    for a task without folds); writes the fold lists under
    ``work_dir/task/folds`` from the data root of our head's config."""
    pair = PAIRS[task]
    if not pair.get('folds'):
        return {None: []}
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, pair['ours']))
    return write_folds(cfg.train_dataloader.dataset.data_root,
                       osp.join(work_dir, task, 'folds'), pair['folds'])


def planned_runs(args) -> List[Tuple[str, str, str, int, List[str]]]:
    """(head, config, work dir, seed, cfg-options) of every run still to do,
    seed by seed (so that a seed's comparison is complete first), then fold
    and head; seed -1 is a finished run that only needs its health."""
    runs = []
    for task in args.tasks:
        by_fold = fold_options(task, args.work_dir)
        for seed in args.seeds:
            for fold, data_opts in by_fold.items():
                for head in args.heads:
                    config = head_config(PAIRS[task], head)
                    if config is None or (head != 'ours' and args.variant):
                        continue
                    name = args.variant if (head == 'ours' and args.variant) else head
                    if head == 'ours' and args.variant and args.config:
                        config = osp.abspath(args.config)
                    path = run_dir(args.work_dir, task, name, seed, fold)
                    opts = data_opts + (list(args.cfg_options) if name == args.variant else [])
                    if args.force or read_result(path) is None:
                        runs.append((head, config, path, seed, opts))
                    elif args.health and head == 'ours' and not osp.isfile(
                            osp.join(path, 'health.json')):
                        runs.append((head, config, path, -1, opts))  # health only
    return runs


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.table_only:
        runs = planned_runs(args)
        print(f'{len(runs)} runs, {args.jobs} at a time', flush=True)

        def one(run: Tuple[str, str, str, int, List[str]]) -> Tuple[str, int]:
            head, config, path, seed, opts = run
            code = train_one(config, path, seed, opts) if seed >= 0 else 0
            if code == 0 and args.health and head not in ('stock', *PAIRS_OTHERS):
                code = measure_health(config, path, opts)
            return path, code

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            codes = list(pool.map(one, runs))
        for path, code in codes:
            if code:
                print(f'FAILED ({code}): {path} (see {path}/train.out, health.out)',
                      flush=True)
    print(table(args.work_dir, args.tasks))


#: run names of the other heads of every task (no cluster health to measure)
PAIRS_OTHERS = tuple(k for pair in PAIRS.values() for k in pair.get('others', {}))


if __name__ == '__main__':
    main()
