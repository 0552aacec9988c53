"""Careful resuming: pick a checkpoint that loads and check it before use.

:func:`find_resume_checkpoint` picks the checkpoint to resume from and skips,
with a warning naming the file and the reason, any that does not load (a file
cut off by a writer other than ours, or a disk error).

Before a run starts from a checkpoint, :func:`check_checkpoint_matches_model`
refuses weights of another architecture, :func:`check_checkpoint_finite`
refuses weights holding NaN or infinity, and :func:`missing_resume_state` names
the training state (optimizer, schedulers, counters) a checkpoint lacks.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

from .safe_load import CheckpointError, load_checkpoint_file

_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _candidates(work_dir: str) -> List[str]:
    """Checkpoints in ``work_dir``: ``last_checkpoint``'s first, then newest first."""
    found = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, 'rb') as f:
            raw = f.read()
        try:
            named = raw.decode('utf-8').strip()
        except UnicodeDecodeError:
            print_log(f'{pointer} is not UTF-8 text ({len(raw)} bytes; damaged?): ignoring '
                      'it and taking the newest epoch_N/iter_N checkpoint', logger='current',
                      level=logging.WARNING)
            named = ''
        if named and '\x00' not in named:
            found.append(named if osp.isabs(named) else osp.join(work_dir, osp.basename(named)))
    numbered = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            m = _CKPT_NAME.match(name)
            if m:
                numbered.append((int(m.group(2)), osp.join(work_dir, name)))
    for _, path in sorted(numbered, reverse=True):
        if all(osp.abspath(path) != osp.abspath(p) for p in found):
            found.append(path)
    return found


def find_resume_checkpoint(work_dir: str,
                           logger: Union[str, logging.Logger] = 'current') -> Optional[str]:
    """The newest checkpoint in ``work_dir`` that loads, or None.

    Tries the one ``last_checkpoint`` names, then ``epoch_N.pth`` /
    ``iter_N.pth`` from the highest N down; every file that does not load is
    skipped with a warning naming it and the reason.
    """
    for path in _candidates(work_dir):
        try:
            load_checkpoint_file(path, require=('state_dict', 'meta'))
        except CheckpointError as e:
            print_log(f'cannot resume from {path}, skipping it: {e}', logger=logger,
                      level=logging.WARNING)
            continue
        return path
    return None


def checkpoint_mismatch(model: torch.nn.Module, ckpt: Dict[str, Any]
                        ) -> Tuple[List[str], List[str], List[str]]:
    """``(missing, unexpected, wrong_shape)`` of the checkpoint's weights
    against ``model``'s (a ``module.`` prefix of DDP is ignored)."""
    module = getattr(model, 'module', model)
    state = ckpt.get('state_dict', ckpt)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f'{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}' for k, v in own.items()
             if k in state and hasattr(state[k], 'shape')
             and tuple(state[k].shape) != tuple(v.shape)]
    return missing, unexpected, wrong


def _mismatch_text(missing: List[str], unexpected: List[str], wrong: List[str]) -> str:
    parts = []
    if wrong:
        parts.append(f'{len(wrong)} shape mismatches, e.g. {wrong[:3]}')
    if missing:
        parts.append(f'{len(missing)} model weights missing, e.g. {missing[:3]}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected weights, e.g. {unexpected[:3]}')
    return '; '.join(parts)


def check_checkpoint_matches_model(model: torch.nn.Module, ckpt: Dict[str, Any],
                                   path: str, strict: bool = True,
                                   logger: Union[str, logging.Logger] = 'current') -> None:
    """Refuse a checkpoint whose weights do not fit ``model``.

    mmengine loads weights with ``strict=False`` when resuming, testing and
    for ``load_from``, so a checkpoint of another architecture only logs
    warnings and the run goes on with random weights. ``strict`` (resume,
    test) refuses any mismatch, naming the first keys. Not ``strict``
    (``load_from``, where fine-tuning with another head is common): refused
    when fewer than half of the model's weights would load (another
    architecture), else a warning counting the weights that keep their
    initial values.
    """
    module = getattr(model, 'module', model)
    missing, unexpected, wrong = checkpoint_mismatch(model, ckpt)
    if not (missing or unexpected or wrong):
        return
    total = len(module.state_dict())
    loaded = total - len(missing) - len(wrong)
    text = _mismatch_text(missing, unexpected, wrong)
    if strict or loaded * 2 < total:
        raise CheckpointError(
            f'checkpoint {path} does not match the model {type(module).__name__} of the '
            f'config (another architecture?): only {loaded} of its {total} weights would '
            f'load; ' + text)
    print_log(f'load_from {path}: {total - loaded} of the {total} weights of '
              f'{type(module).__name__} are NOT loaded and keep their initial values; '
              + text, logger=logger, level=logging.WARNING)


def check_checkpoint_finite(ckpt: Dict[str, Any], path: str) -> None:
    """Refuse a checkpoint whose weights hold NaN or infinity (a diverged
    run): evaluating it scores 0 without a word, resuming it trains on NaN."""
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise CheckpointError(f'checkpoint {path}: its state_dict is a {type(state).__name__}, '
                              'not a dict of weights')
    other = [f'{k} ({type(v).__name__})' for k, v in state.items()
             if not isinstance(v, torch.Tensor)]
    if other and 'state_dict' in ckpt:
        raise CheckpointError(f'checkpoint {path}: its weights must be tensors, but '
                              f'{len(other)} entries of its state_dict are not, e.g. '
                              f'{other[:3]}')
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor)
           and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f'checkpoint {path} holds NaN or infinite values in {len(bad)} weight tensor(s), '
            f'e.g. {bad[:3]}: the run that saved it diverged; take an earlier checkpoint')


#: what a checkpoint needs besides its weights to resume training exactly
RESUME_KEYS = ('meta', 'optimizer', 'param_schedulers')


def missing_resume_state(ckpt: Dict[str, Any], need_schedulers: bool = True) -> List[str]:
    """The training-state entries (optimizer, schedulers, counters) that a
    checkpoint lacks: a ``best_*.pth`` or a ``save_optimizer=False``
    checkpoint holds weights only."""
    keys = [k for k in RESUME_KEYS if need_schedulers or k != 'param_schedulers']
    return [k for k in keys if k not in ckpt]
