"""FLOPs and parameters of a model config, per ClusterFormer module group.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] [--backbone-only]
        [--scaling 224 448 896] [--table] [--json OUT] [--cfg-options k=v ...]

Uses mmengine's complexity analysis (``mmengine.analysis.FlopAnalyzer``;
one FLOP = one multiply-add; element-wise ops such as softmax are not
counted, see :mod:`mmcf.analysis.complexity`). Prints

* parameters and FLOPs per group: encoder stages, center init (Eq. 5),
  clustering (Eq. 3), dispatching (Eq. 6), heads;
* with ``--scaling``, the encoder's Eq. 3 FLOPs at several input sizes split
  into K/V projection, Q projection and E/M-step matmuls, with their growth
  against the growth of H*W (linear for fixed K and T);
* with ``--table``, mmengine's per-module table.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))))
import mmcf  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.analysis.print_helper import complexity_stats_table  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from mmcf.analysis import (GROUPS, clustering_flop_terms, flops_by_group,  # noqa: E402
                           format_count, make_flop_analyzer, params_by_group)
from mmcf.utils.build import build_model_from_cfg  # noqa: E402
from mmcf.utils.config import load_config  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='FLOPs and parameters per module group')
    parser.add_argument('config', help='model config')
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input size: H (square) or H W')
    parser.add_argument('--backbone-only', action='store_true', help='count the backbone only')
    parser.add_argument('--scaling', type=int, nargs='+', default=None,
                        help='square sizes at which to split the Eq. 3 FLOPs')
    parser.add_argument('--table', action='store_true', help="print mmengine's module table")
    parser.add_argument('--json', help='also write the numbers to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def input_hw(shape: List[int]) -> tuple:
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f'--shape takes H or H W (positive), got {shape}')
    return (shape[0], shape[0]) if len(shape) == 1 else tuple(shape)


def group_table(params: Dict[str, int], flops: Dict[str, int]) -> str:
    rows = ['| group | params | FLOPs |', '|---|---|---|']
    for group in list(GROUPS) + ['total']:
        rows.append(f'| {group} | {format_count(params[group])} | '
                    f'{format_count(flops[group])} |')
    return '\n'.join(rows)


def scaling_rows(model: torch.nn.Module, sizes: List[int]) -> List[dict]:
    """Eq. 3 FLOP terms at each square size, with growth vs the first size."""
    rows = []
    for size in sizes:
        terms = clustering_flop_terms(model, torch.zeros(1, 3, size, size))
        rows.append(dict(size=size, pixels=size * size, **terms))
    base = rows[0]
    for row in rows:
        row['pixel_growth'] = row['pixels'] / base['pixels']
        row['em_growth'] = row['E/M-step matmuls'] / max(1, base['E/M-step matmuls'])
    return rows


def scaling_table(rows: List[dict]) -> str:
    lines = ['| input | H*W growth | K/V proj. | Q proj. | E/M-step matmuls | E/M growth |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['size']} | x{r['pixel_growth']:.2f} | "
                     f"{format_count(r['kv projection'])} | {format_count(r['q projection'])} | "
                     f"{format_count(r['E/M-step matmuls'])} | x{r['em_growth']:.2f} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    hw = input_hw(args.shape)
    cfg = load_config(args.config, args.cfg_options)
    model = build_model_from_cfg(cfg)
    if args.backbone_only:
        if not hasattr(model, 'backbone'):
            raise KeyError(f'{type(model).__name__} has no backbone')
        model = model.backbone
    inputs = torch.zeros(1, 3, *hw)
    analyzer = make_flop_analyzer(model, inputs)
    params, flops = params_by_group(model), flops_by_group(model, inputs, analyzer)
    result = dict(config=args.config, input=list(hw), params=params, flops=flops)
    print(f'{args.config}, input 1x3x{hw[0]}x{hw[1]}'
          f'{" (backbone only)" if args.backbone_only else ""}:')
    print(group_table(params, flops))
    if args.scaling:
        rows = scaling_rows(model, args.scaling)
        result['scaling'] = rows
        print('\nEq. 3 (encoder clustering) FLOPs against input size:')
        print(scaling_table(rows))
    if args.table:
        print(complexity_stats_table(flops=analyzer, max_depth=3))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, KeyError, ValueError) as err:
        sys.exit(f'get_flops.py: error: {err}')
