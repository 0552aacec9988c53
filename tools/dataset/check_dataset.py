#!/usr/bin/env python
"""Validate a data set before training.

    python tools/dataset/check_dataset.py ROOT [--format classification coco
        panoptic semantic] [--split train val] [--no-images]
    python tools/dataset/check_dataset.py --config CONFIG [--cfg-options ...]

With ROOT, checks a folder laid out like the embedded shapes data set
(``make_shapes.py``); with ``--config``, the train/val/test data sets of the
config (the check ``tools/train.py --check-data`` runs). Prints one line per
checked part and exits with 0, or prints every problem (file, key, value) and
exits with 1.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))))
from mmcf.utils.cli import CfgOptionsAction  # noqa: E402

from mmcf.datasets.config_check import (FORMATS, check_data_root,  # noqa: E402
                                        check_dataset_cfg)
from mmcf.datasets.data_check import DatasetError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Validate a data set for mmcf')
    parser.add_argument('root', nargs='?', help='data root (shapes layout)')
    parser.add_argument('--config', help='check the data sets of this config instead')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='with --config: override config settings, key=value pairs (as tools/train.py)')
    parser.add_argument('--format', nargs='+', choices=FORMATS, default=list(FORMATS))
    parser.add_argument('--split', nargs='+', default=['train', 'val'])
    parser.add_argument('--no-images', action='store_true',
                        help='check that images exist, without decoding them')
    args = parser.parse_args(argv)
    if (args.root is None) == (args.config is None):
        parser.error('give a data root or --config, not both')
    if args.cfg_options and args.config is None:
        parser.error('--cfg-options needs --config')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.config:
            from mmcf.utils.config import load_config
            cfg = load_config(args.config, args.cfg_options)
            report = {}
            for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
                if cfg.get(split) is not None:
                    report[split] = check_dataset_cfg(
                        cfg[split].dataset, not args.no_images,
                        allow_outside_root=cfg.get('allow_outside_data_root', False))
        else:
            report = check_data_root(args.root, args.format, args.split,
                                     check_images=not args.no_images)
    except (DatasetError, FileNotFoundError, KeyError) as e:
        print(f'data check failed: {e}', file=sys.stderr)
        return 1
    for key, value in report.items():
        print(f'{key}: ok {value}' if value is not None else f'{key}: not checked (unknown type)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
