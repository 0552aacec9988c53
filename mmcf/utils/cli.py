"""Command-line pieces shared by mmcf's tools."""
from __future__ import annotations

import argparse
import os

from mmengine.config import DictAction


class CfgOptionsAction(DictAction):
    """mmengine's ``--cfg-options`` parser (``key=value``, lists and tuples
    in brackets), with its failures named: a value it cannot read (a
    ``dict(...)`` holding commas sends mmengine 0.10.7 into endless
    recursion, unbalanced brackets trip an assertion) is an argparse error
    naming the option and how to write it, and an item without ``=`` too."""

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or ():
            if '=' not in item:
                parser.error(f'{option_string} {item!r}: expected key=value')
            key, value = item.split('=', 1)
            try:
                options[key] = self._parse_iterable(value)
            except (RecursionError, AssertionError, ValueError) as e:
                hint = (' (a dict cannot be given in one value: set its keys one by one, '
                        f'{key}.type=... {key}.<arg>=...)' if value.lstrip('\'"').startswith(
                            ('dict(', '{')) else ' (lists: key="[a,b]", tuples: key="(a,b)")')
                parser.error(f'{option_string} {item!r}: the value cannot be read: '
                             f'{type(e).__name__}{hint}')
        setattr(namespace, self.dest, options)


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank`` as tools/train.py
    and tools/test.py take them."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override config settings, key=value pairs (a.b=1, a.c="[1,2]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and give torchrun's rank to a process started without one."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args
