"""Run-level reliability settings that tools/train.py applies to a config."""
from __future__ import annotations

from mmengine.config import Config


def make_reliable(cfg: Config) -> Config:
    """Swap in :class:`AtomicCheckpointHook` and add :class:`RNGStateHook`.

    A stock ``CheckpointHook`` in ``default_hooks.checkpoint`` becomes
    ``AtomicCheckpointHook`` with the same settings (same behaviour, atomic
    files, old checkpoints deleted after the new one is written);
    ``RNGStateHook`` is appended to ``custom_hooks`` unless present.
    """
    ckpt = cfg.get('default_hooks', {}).get('checkpoint', None)
    if ckpt is not None and ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        ckpt['type'] = 'AtomicCheckpointHook'
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'RNGStateHook' for h in hooks):
        hooks.append(dict(type='RNGStateHook'))
    cfg.custom_hooks = hooks
    return cfg
