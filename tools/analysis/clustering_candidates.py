"""Train the CPU demos once per clustering option and tabulate accuracy and
cluster health: the measurement behind the clustering defaults
(docs/en/clustering.md).

    python tools/analysis/clustering_candidates.py --task cls \
        [--candidates today cosine ... swin] [--seeds 0 1 2] [--jobs 2] \
        [--work-dir work_dirs/clustering_candidates] [--data-root data/shapes]

For every candidate (a named set of options, see ``CANDIDATES``) and seed it
runs ``tools/train.py`` on the task's demo config (one CPU thread per run,
``--jobs`` runs at a time), then ``tools/analysis/cluster_health.py`` on the
untrained model (its ``init_weights``) and on the final checkpoint, over the
validation split, and prints one markdown table: the task metric (mean and
spread over seeds) and, per stage (``--task cls``: the backbone) or decoder
layer (``--task seg``: the decode head), entropy / log K, center spread and
centers in use, at initialisation and after training (averaged over seeds),
and in how many seeds every stage / layer of the trained model has entropy /
log K <= 0.9 and spread >= 0.1. Runs whose work dir
already holds a finished result are not repeated (``--force`` re-runs them);
``--table-only`` tabulates whatever has finished, every seed found.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

from mmcf.analysis.table6 import flat_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))

BACKBONE = 'model.backbone.'
DECODER = 'model.decode_head.transformer_decoder.layer_cfg.'

def _clustering(logits: str, tau: Optional[float] = None, proj_init: Optional[str] = None,
                residual: bool = True) -> dict:
    """The clustering options of a candidate as its ``clustering_cfg``."""
    cfg = dict(logits=logits, residual=residual)
    if tau is not None:
        cfg['logit_scale'] = tau
    if proj_init is not None:
        cfg['proj_init'] = proj_init
    return dict(clustering_cfg=cfg)


def _backbone(what: str, logits: str, tau: float, proj_init: str, residual: bool,
              grid: bool) -> tuple:
    """A backbone candidate with every clustering option spelled out."""
    return what, dict(_clustering(logits, tau, proj_init, residual),
                      center_init_cfg=dict(residual=grid))


#: mmcf 0.1's backbone clustering, as absolute config keys
OLD_BACKBONE = {'model.backbone.clustering_cfg.logits': 'dot',
                'model.backbone.clustering_cfg.proj_init': 'random',
                'model.backbone.clustering_cfg.residual': False,
                'model.backbone.center_init_cfg.residual': False}

#: name -> (what it is, cfg-options under the task's prefix, or absolute
#: ``model.`` keys). 'today' / 'mmcf-0.1' is mmcf 0.1's clustering.
CANDIDATES: Dict[str, Dict[str, object]] = {
    'cls': {
        'today': _backbone('dot logits, Eq. 3 M-step, FFN(P) centers (mmcf 0.1)',
                    'dot', 10.0, 'random', residual=False, grid=False),
        'dot+residual': _backbone('dot logits, Eq. 2 residual M-step',
                    'dot', 10.0, 'random', residual=True, grid=False),
        'cosine': _backbone('cosine logits (tau 10)',
                    'cosine', 10.0, 'random', residual=False, grid=False),
        'cosine+residual': _backbone('cosine logits (tau 10), residual M-step',
                    'cosine', 10.0, 'random', residual=True, grid=False),
        'cosine+grid': _backbone('cosine (tau 10), P + FFN(P) centers',
                    'cosine', 10.0, 'random', residual=False, grid=True),
        'cosine+kmeans+grid': _backbone('cosine (tau 10), k-means init, P + FFN(P)',
                    'cosine', 10.0, 'kmeans', residual=False, grid=True),
        'cosine+residual+grid': _backbone('cosine (tau 10), residual M-step, P + FFN(P)',
                    'cosine', 10.0, 'random', residual=True, grid=True),
        'centered': _backbone('centered cosine (tau 10)',
                    'centered_cosine', 10.0, 'random', residual=False, grid=False),
        'centered+kmeans+grid': _backbone('centered cosine (tau 10), k-means init, P + FFN(P)',
                    'centered_cosine', 10.0, 'kmeans', residual=False, grid=True),
        'centered+residual': _backbone('centered cosine (tau 10), residual M-step',
                    'centered_cosine', 10.0, 'random', residual=True, grid=False),
        'centered+residual+kmeans+grid': _backbone('centered cosine (tau 10), k-means init, residual M-step, P + FFN(P)',
                    'centered_cosine', 10.0, 'kmeans', residual=True, grid=True),
        'centered+residual+grid': _backbone('centered cosine (tau 10), residual M-step, P + FFN(P)',
                    'centered_cosine', 10.0, 'random', residual=True, grid=True),
        'centered5+residual+grid': _backbone('centered cosine (tau 5), residual M-step, P + FFN(P)',
                    'centered_cosine', 5.0, 'random', residual=True, grid=True),
        'swin': ("mmpretrain's Swin, same widths/depths and recipe", None),
    },
    'seg': {
        'mmcf-0.1': ('backbone and decoder RCA of mmcf 0.1 (dot logits, Eq. 3 M-step)',
                     {**OLD_BACKBONE, **_clustering('dot', residual=False)}),
        'dot': ('decoder RCA: dot logits, Eq. 3 M-step (mmcf 0.1); default backbone',
                _clustering('dot', residual=False)),
        'cosine': ('decoder RCA: cosine logits (tau 5), Eq. 3 M-step',
                   _clustering('cosine', 5.0, residual=False)),
        'centered5+residual': ('decoder RCA: centered cosine (tau 5), residual M-step '
                               '(the default)',
                               _clustering('centered_cosine', 5.0, residual=True)),
        'centered20+residual': ('decoder RCA: centered cosine (tau 20), residual M-step',
                                _clustering('centered_cosine', 20.0, residual=True)),
    },
}

TASKS = {
    'cls': dict(config='configs/classification/clusterformer-test_1xb32-12e_shapes.py',
                swin='configs/classification/swin-test_1xb32-12e_shapes.py',
                prefix=BACKBONE, metric='accuracy/top1', source='backbone',
                data_key='train_dataloader.dataset.data_root',
                val_key='val_dataloader.dataset.data_root', subdir='classification'),
    'seg': dict(config='configs/segmentation/clusterformer-test_1xb8-1k_shapes-64x64.py',
                swin=None, prefix=DECODER, metric='mIoU', source='decode_head',
                data_key='train_dataloader.dataset.data_root',
                val_key='val_dataloader.dataset.data_root', subdir='semantic'),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', choices=sorted(TASKS), default='cls')
    parser.add_argument('--candidates', nargs='+', help='default: all of the task')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--jobs', type=int, default=1, help='runs at a time')
    parser.add_argument('--work-dir', default='work_dirs/clustering_candidates')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--num-images', type=int, default=200,
                        help='validation images for the health figures')
    parser.add_argument('--force', action='store_true', help='re-run finished runs')
    parser.add_argument('--table-only', action='store_true',
                        help='only tabulate the finished runs under --work-dir')
    args = parser.parse_args(argv)
    known = CANDIDATES[args.task]
    args.candidates = args.candidates or list(known)
    unknown = [c for c in args.candidates if c not in known]
    if unknown:
        parser.error(f'unknown candidates {unknown} for --task {args.task}; '
                     f'known: {list(known)}')
    return args


def _options(task: dict, options: Optional[dict], seed: int, data_root: str) -> List[str]:
    root = osp.join(data_root, task['subdir'])
    out = [f'randomness.seed={seed}', f"{task['data_key']}={root}", f"{task['val_key']}={root}"]
    for key, value in flat_options(options or {}).items():
        key = key if key.startswith('model.') else task['prefix'] + key
        out.append(f'{key}={value!r}' if isinstance(value, str) else f'{key}={value}')
    return out


def _last_metric(work_dir: str, metric: str) -> Optional[float]:
    """The metric of the last validation in the run's scalars.json."""
    value = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if metric in record:
                    value = float(record[metric])
    return value


def _health(config: str, checkpoint: Optional[str], options: List[str], out: str,
            num_images: int, source: str) -> dict:
    cmd = [sys.executable, osp.join(ROOT, 'tools/analysis/cluster_health.py'), config,
           '--num-images', str(num_images), '--source', source, '--json', out,
           '--cfg-options', *options]
    if checkpoint:
        cmd += ['--checkpoint', checkpoint]
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)['health'][source]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def run_one(args, name: str, seed: int) -> dict:
    task = TASKS[args.task]
    _, options = CANDIDATES[args.task][name]
    config = task['swin'] if options is None else task['config']
    work_dir = osp.abspath(osp.join(args.work_dir, args.task, f'{name}_seed{seed}'))
    result_file = osp.join(work_dir, 'candidate.json')
    if osp.isfile(result_file) and not args.force:
        with open(result_file) as f:
            return json.load(f)
    opts = _options(task, options, seed, args.data_root)
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/train.py'), config,
                    '--work-dir', work_dir, '--cfg-options', *opts],
                   check=True, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    result = dict(candidate=name, seed=seed, metric=_last_metric(work_dir, task['metric']))
    # no clustering (Table 6a's baseline and dispatch-only rows): no E-step to measure
    if options is not None and options.get('with_clustering', True) is not False:
        ckpt = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime)
        ckpt = [c for c in ckpt if not osp.basename(c).startswith('best')][-1]
        result['init'] = _health(config, None, opts, osp.join(work_dir, 'health_init.json'),
                                 args.num_images, task['source'])
        result['trained'] = _health(config, ckpt, opts,
                                    osp.join(work_dir, 'health_trained.json'),
                                    args.num_images, task['source'])
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=1)
    return result


#: the bar of a healthy trained model, every stage / layer
HEALTHY = dict(entropy=0.9, spread=0.1)


def _stages(health: Optional[List[dict]], key: str, fmt: str) -> str:
    if not health:
        return '-'
    return ' / '.join(format(h[key], fmt) for h in health)


def table(args, results: List[dict]) -> str:
    task = TASKS[args.task]
    unit = 'stage 0-3' if task['source'] == 'backbone' else 'layer 0-5'
    lines = [f'| candidate | what | {task["metric"]} (mean ± sd, seeds) | '
             f'entropy/logK init ({unit}) | trained | spread init | trained | '
             'used/K init | trained | healthy seeds |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name in args.candidates:
        runs = [r for r in results if r['candidate'] == name]
        values = [r['metric'] for r in runs if r['metric'] is not None]
        if values:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            metric = f'{statistics.mean(values):.2f} ± {sd:.2f} ({len(values)})'
        else:
            metric = '-'
        cells = []
        for key, fmt in (('entropy', '.2f'), ('spread', '.2f'), ('used', '.1f')):
            for when in ('init', 'trained'):
                # health averaged over seeds, stage by stage
                hs = [r[when] for r in runs if r.get(when)]
                avg = [{key: statistics.mean(h[i][key] for h in hs)}
                       for i in range(len(hs[0]))] if hs else None
                cells.append(_stages(avg, key, fmt))
        trained = [r['trained'] for r in runs if r.get('trained')]
        healthy = sum(all(h['entropy'] <= HEALTHY['entropy'] and h['spread'] >= HEALTHY['spread']
                          for h in t) for t in trained)
        cells.append(f'{healthy}/{len(trained)}' if trained else '-')
        lines.append(f'| {name} | {CANDIDATES[args.task][name][0]} | {metric} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    jobs = [(c, s) for c in args.candidates for s in args.seeds]
    if args.table_only:
        results = []
        for name in args.candidates:
            pattern = osp.join(args.work_dir, args.task, f'{glob.escape(name)}_seed*',
                               'candidate.json')
            for path in sorted(glob.glob(pattern)):
                with open(path) as f:
                    results.append(json.load(f))
        args.candidates = [c for c in args.candidates
                           if any(r['candidate'] == c for r in results)]
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda job: run_one(args, *job), jobs))
    text = table(args, results)
    print(text)
    return text


if __name__ == '__main__':
    main()
