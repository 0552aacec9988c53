"""Run-level reliability settings that tools/train.py applies to a config."""
from __future__ import annotations

import os

from mmengine.config import Config

KILL_AFTER_ENV = 'MMCF_KILL_AFTER_ITERS'

def make_reliable(cfg: Config) -> Config:
    """Swap in :class:`AtomicCheckpointHook` and add :class:`RNGStateHook`.

    A stock ``CheckpointHook`` in ``default_hooks.checkpoint`` becomes
    ``AtomicCheckpointHook`` with the same settings (same behaviour, atomic
    files, old checkpoints deleted after the new one is written);
    ``RNGStateHook`` is appended to ``custom_hooks`` unless present. For
    tests, ``MMCF_KILL_AFTER_ITERS=N`` in the environment adds
    ``KillAtIterHook(after_iters=N)`` (SIGKILL after N iterations).
    """
    ckpt = cfg.get('default_hooks', {}).get('checkpoint', None)
    if ckpt is not None and ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        ckpt['type'] = 'AtomicCheckpointHook'
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'RNGStateHook' for h in hooks):
        hooks.append(dict(type='RNGStateHook'))
    kill_after = os.environ.get(KILL_AFTER_ENV)
    if kill_after:  # fault injection for the resume tests
        hooks.append(dict(type='KillAtIterHook', after_iters=int(kill_after)))
    cfg.custom_hooks = hooks
    return cfg
