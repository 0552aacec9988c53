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
  (Mask2FormerHead, 20 queries, 6 layers, 64 wide), bbox and segm AP;
* ``pan``: our panoptic head vs mmdet's Mask2Former panoptic (23 queries),
  PQ, PQ_th, PQ_st and the thing masks' segm AP.

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
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))

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
}

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


def run_dir(work_dir: str, task: str, head: str, seed: int) -> str:
    return osp.join(work_dir, task, head, f'seed{seed}')


def read_result(path: str) -> Optional[Dict[str, float]]:
    """Metrics of the newest log under a run's work dir, or None."""
    logs = sorted(glob.glob(osp.join(path, '*', '*.log')))
    for log in reversed(logs):
        with open(log, encoding='utf-8', errors='replace') as f:
            metrics = parse_val_metrics(f.read())
        if metrics:
            return metrics
    return None


def train_one(config: str, path: str, seed: int, cfg_options: Sequence[str]) -> int:
    os.makedirs(path, exist_ok=True)
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, config),
           '--work-dir', path, '--cfg-options', f'randomness.seed={seed}', *cfg_options]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with open(osp.join(path, 'train.out'), 'w') as out:
        return subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def summarise(values: List[float]) -> str:
    if not values:
        return '-'
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f'{mean:.1f}'
    return f'{mean:.1f} ± {statistics.stdev(values):.1f}'


def table(work_dir: str, tasks: Sequence[str]) -> str:
    """One markdown table per task: a row per head (ours, its variants, the
    stock head) with the mean ± standard deviation over the seeds found."""
    out = []
    for task in tasks:
        pair = PAIRS[task]
        heads = sorted(d for d in os.listdir(osp.join(work_dir, task))
                       if osp.isdir(osp.join(work_dir, task, d))) \
            if osp.isdir(osp.join(work_dir, task)) else []
        heads.sort(key=lambda h: (h != 'ours', h == 'stock', h))
        cols = [name for name, _, _ in pair['metrics']]
        out.append(f'### {task}\n')
        out.append('| head | seeds | ' + ' | '.join(cols) + ' |')
        out.append('|---|---|' + '---|' * len(cols))
        for head in heads:
            results = []
            for seed_dir in sorted(glob.glob(osp.join(work_dir, task, head, 'seed*'))):
                r = read_result(seed_dir)
                if r is not None:
                    results.append((seed_dir.rsplit('seed', 1)[1], r))
            if not results:
                continue
            cells = []
            for _, key, factor in pair['metrics']:
                cells.append(summarise([r[key] * factor for _, r in results if key in r]))
            name = {'ours': 'ClusterFormer (ours)', 'stock': pair['stock_name']}.get(
                head, f'ours: {head}')
            seeds = ','.join(s for s, _ in results)
            out.append(f'| {name} | {seeds} | ' + ' | '.join(cells) + ' |')
        out.append('')
    return '\n'.join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tasks', nargs='+', default=list(PAIRS), choices=list(PAIRS))
    p.add_argument('--heads', nargs='+', default=['ours', 'stock'],
                   choices=['ours', 'stock'])
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
    p.add_argument('--table-only', action='store_true')
    p.add_argument('--force', action='store_true')
    args = p.parse_args(argv)
    if (args.cfg_options or args.config) and not args.variant:
        p.error('--cfg-options / --config change our head: name the variant with --variant')
    if args.config and len(args.tasks) != 1:
        p.error('--config replaces the config of one task: give one --tasks')
    if args.variant in ('ours', 'stock'):
        p.error('--variant must not be "ours" or "stock"')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.table_only:
        runs: List[Tuple[str, str, int, List[str]]] = []
        for task in args.tasks:
            for head in args.heads:
                if head == 'stock' and args.variant:
                    continue
                name = args.variant if (head == 'ours' and args.variant) else head
                config = PAIRS[task][head]
                if head == 'ours' and args.variant and args.config:
                    config = osp.abspath(args.config)
                for seed in args.seeds:
                    path = run_dir(args.work_dir, task, name, seed)
                    if not args.force and read_result(path) is not None:
                        continue
                    opts = list(args.cfg_options) if name == args.variant else []
                    runs.append((config, path, seed, opts))
        print(f'{len(runs)} runs, {args.jobs} at a time', flush=True)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            codes = list(pool.map(lambda r: (r[1], train_one(*r)), runs))
        for path, code in codes:
            if code:
                print(f'FAILED ({code}): {path} (see {path}/train.out)', flush=True)
    print(table(args.work_dir, args.tasks))


if __name__ == '__main__':
    main()
