"""Test-only hooks and fault injection, kept out of the mmcf package.

Runs import it through the config (``custom_imports``, see
:func:`with_fault_injection`), so the product code has no kill switch
(tests/helpers.run puts tests/ on the subprocesses' ``PYTHONPATH``):

* ``KillAtIterHook(after_iters=N)``: SIGKILL the process after N training
  iterations (counted over the whole run), as a pre-emption would.
* ``LossDumpHook``: append every rank's losses of each iteration to
  ``<work_dir>/losses_rank<R>.jsonl`` (mmengine logs rank 0's only).
* ``EvalCountMetric``: a validation metric ``fault/count`` that counts the
  evaluations of this process (1, 2, ...), so that every validation makes a
  new best checkpoint.
* ``HoldAtStartHook(marker=PATH)``: at the start of training, create
  ``PATH`` and sleep until killed (a run that holds its work dir).
* ``MMCF_KILL_DURING_SAVE=<file name>`` in the environment: the atomic
  checkpoint writer writes half of that file's temporary and SIGKILLs its own
  process, a deterministic "killed while writing a checkpoint".
"""
import json
import os
import os.path as osp
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, METRICS

from mmcf.engine import atomic_save as _atomic_save

KILL_DURING_SAVE_ENV = 'MMCF_KILL_DURING_SAVE'


def with_fault_injection(config: str, folder: str, hooks=(), **top_level) -> str:
    """A config file in ``folder`` that inherits ``config``, imports this
    module (``custom_imports`` is read when a config file is parsed, so it
    cannot come from ``--cfg-options``), adds ``hooks`` to ``custom_hooks``
    and sets ``top_level`` keys. Returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, 'fault_injection_' + osp.basename(config))
    with open(path, 'w') as f:
        f.write(f'_base_ = {config!r}\n'
                "custom_imports = dict(imports=['mmcf', 'fault_injection'], "
                'allow_failed_imports=False)\n'
                f'custom_hooks = {list(hooks)!r}\n')
        f.writelines(f'{k} = {v!r}\n' for k, v in top_level.items())
    return path


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL the process after ``after_iters`` training iterations."""

    priority = 'LOWEST'

    def __init__(self, after_iters: int) -> None:
        if after_iters < 1:
            raise ValueError(f'after_iters must be >= 1, got {after_iters}')
        self.after_iters = after_iters

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.after_iters:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class LossDumpHook(Hook):
    """Every rank's losses per training iteration, one JSON line each."""

    priority = 'LOW'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        row = {'iter': runner.iter + 1}
        for key, value in (outputs or {}).items():
            if 'loss' in key:
                row[key] = float(value.detach() if isinstance(value, torch.Tensor) else value)
        path = osp.join(runner.work_dir, f'losses_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(row) + '\n')


@METRICS.register_module()
class EvalCountMetric(BaseMetric):
    """``fault/count``: 1 at this process's first evaluation, then 2, ..."""

    default_prefix = 'fault'
    evaluations = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        EvalCountMetric.evaluations += 1
        return {'count': float(EvalCountMetric.evaluations)}


@HOOKS.register_module()
class HoldAtStartHook(Hook):
    """Create ``marker`` when training starts, then sleep (at most
    ``seconds``) until the test kills the process."""

    def __init__(self, marker: str, seconds: float = 300.0) -> None:
        self.marker = marker
        self.seconds = seconds

    def before_train(self, runner) -> None:
        with open(self.marker, 'w') as f:
            f.write(str(os.getpid()))
        time.sleep(self.seconds)


def _install_kill_during_save(name: str) -> None:
    """Replace mmcf's atomic writer so that writing ``name`` leaves half of
    its temporary file on disk and then SIGKILLs the process."""
    real = _atomic_save.atomic_write

    def atomic_write(data, path):
        if osp.basename(path) != name:
            return real(data, path)
        if isinstance(data, str):
            data = data.encode('utf-8')
        tmp = _atomic_save.temporary_path(path)
        with open(tmp, 'wb') as f:
            f.write(data[:len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    _atomic_save.atomic_write = atomic_write


if os.environ.get(KILL_DURING_SAVE_ENV):
    _install_kill_during_save(os.environ[KILL_DURING_SAVE_ENV])
