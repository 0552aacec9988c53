"""Table 6 (§4.2) of ClusterFormer, row by row: parameter counts beside the
paper's, and the CPU ablation runs on the embedded data.

    python tools/analysis/table6.py params [--tables 6a 6c ...] [--with-6f]
    python tools/analysis/table6.py demo --task cls [--rows 6c-kmeans ...]
        [--seeds 0] [--work-dir work_dirs/table6] [--table-only]
    python tools/analysis/table6.py demo --task inst [--rows 6f-free ...]

``params`` builds each row's model from its config (the tiny ImageNet
classifier for 6a-e: backbone, centers neck and the 1000-class linear head,
as Table 1 counts; with ``--with-6f`` also the tiny COCO instance model for
6f, for which the paper gives no count) and prints one markdown table: the
paper's #Params, ours and the difference.

``demo`` trains the CPU demo once per row (``--task cls``: the 6a-e rows on
the classification demo; ``--task inst``: the 6f rows on the instance
demo), with the row's option applied to the demo config by
``--cfg-options`` (6d's head widths halved: the demo's ``test`` arch has
16-wide heads where tiny has 32), through
``tools/analysis/clustering_candidates.py`` (one run at a time, one CPU
thread; finished runs are not repeated), and prints the task metric and the
cluster health per row, at initialisation and after training.
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.realpath(__file__)))

from mmcf.analysis.table6 import (CLS_DEMO, INST_DEMO, TABLE_TITLES, Row,  # noqa: E402
                                  flat_options, rows)

#: the demo's ``test`` arch has heads of 16 where tiny has 32
DEMO_HEAD_DIM_SCALE = 0.5


def demo_options(row: Row) -> Dict[str, object]:
    """The row's option for the demo config (``test`` arch)."""
    opts = copy.deepcopy(row.options)
    clustering = opts.get('clustering_cfg', {})
    if 'head_dim' in clustering:
        clustering['head_dim'] = int(clustering['head_dim'] * DEMO_HEAD_DIM_SCALE)
    return opts


# ------------------------------------------------------------------ params
def count_params(config: str) -> int:
    """Parameters of the model a config builds (no weights initialised)."""
    import mmcf  # noqa: F401  (registers the modules)
    from mmengine.registry import init_default_scope
    from mmcf.utils.config import load_config
    cfg = load_config(osp.join(ROOT, config))
    scope = cfg.get('default_scope') or 'mmpretrain'
    init_default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


def params_table(tables: Optional[List[str]] = None, with_6f: bool = False) -> str:
    selected = [r for r in rows(tables) if with_6f or r.task == 'cls']
    lines = ['| table | row | option | paper #Params | ours | ours - paper |',
             '|---|---|---|---|---|---|']
    cache: Dict[str, int] = {}
    for r in selected:
        if r.config not in cache:
            cache[r.config] = count_params(r.config)
        ours = cache[r.config] / 1e6
        option = ', '.join(f'{k}={v!r}' for k, v in flat_options(r.options).items()) \
            or '(default)'
        if r.paper_params is None:
            paper, diff = '-', '-'
        else:
            paper = f'{r.paper_params:.2f}M'
            diff = f'{ours - r.paper_params:+.2f}M ({(ours / r.paper_params - 1) * 100:+.1f}%)'
        lines.append(f'| {r.table} | {r.label} | `{option}` | {paper} | {ours:.2f}M | {diff} |')
    return '\n'.join(lines)


# -------------------------------------------------------------------- demo
def register_demo_candidates(task: str, selected: List[Row]) -> str:
    """Make the rows candidates of ``clustering_candidates.py`` under the task
    ``table6-<task>``; returns that task's name."""
    import clustering_candidates as cc
    name = f'table6-{task}'
    if task == 'cls':
        cc.TASKS[name] = dict(cc.TASKS['cls'], config=CLS_DEMO)
    else:
        cc.TASKS[name] = dict(
            config=INST_DEMO, swin=None, prefix='model.bbox_head.', metric='coco/segm_mAP',
            source='bbox_head', data_key='train_dataloader.dataset.data_root',
            val_key='val_dataloader.dataset.data_root', subdir='coco')
    cc.CANDIDATES[name] = {r.name: (f'Table {r.table}: {r.label}', demo_options(r))
                           for r in selected}
    return name


def demo(argv: List[str]) -> str:
    parser = argparse.ArgumentParser(prog='table6.py demo')
    parser.add_argument('--task', choices=['cls', 'inst'], default='cls')
    parser.add_argument('--rows', nargs='+', help='row names (6c-kmeans, ...); '
                        'default: every row of the task')
    args, rest = parser.parse_known_args(argv)
    selected = [r for r in rows() if r.task == args.task]
    if args.rows:
        unknown = [n for n in args.rows if n not in {r.name for r in selected}]
        if unknown:
            parser.error(f'unknown rows {unknown} for --task {args.task}; '
                         f'known: {[r.name for r in selected]}')
        by_name = {r.name: r for r in selected}
        selected = [by_name[n] for n in dict.fromkeys(args.rows)]  # in the order given
    import clustering_candidates as cc
    task = register_demo_candidates(args.task, selected)
    if '--work-dir' not in rest:
        rest += ['--work-dir', 'work_dirs/table6']
    return cc.main(['--task', task, '--candidates', *[r.name for r in selected], *rest])


def main(argv: Optional[List[str]] = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ('params', 'demo'):
        sys.exit(__doc__)
    if argv[0] == 'demo':
        return demo(argv[1:])
    parser = argparse.ArgumentParser(prog='table6.py params')
    parser.add_argument('--tables', nargs='+', choices=sorted(TABLE_TITLES))
    parser.add_argument('--with-6f', action='store_true',
                        help='also count the COCO instance models of 6f')
    args = parser.parse_args(argv[1:])
    text = params_table(args.tables, args.with_6f)
    print(text)
    return text


if __name__ == '__main__':
    main()
