"""Config-level helpers used by tools/train.py and tools/test.py."""
from __future__ import annotations

import difflib
import inspect
import os
from typing import Iterable, Optional

from mmengine.config import Config

KILL_AFTER_ENV = 'MMCF_KILL_AFTER_ITERS'

#: top-level keys the runner (or our tools) read besides Runner.__init__'s
_RUNNER_EXTRA_KEYS = {'runner_type', 'find_unused_parameters', 'custom_imports', 'compile',
                      'model_wrapper_cfg', 'strategy', 'launcher', 'work_dir', 'resume',
                      'load_from', 'dist_params', 'auto_scale_lr'}


def _runner_keys() -> set:
    from mmengine.runner import Runner
    return set(inspect.signature(Runner.__init__).parameters) - {'self'} | _RUNNER_EXTRA_KEYS


def check_cfg_option_keys(cfg: Config, keys: Optional[Iterable[str]]) -> None:
    """Refuse ``--cfg-options`` whose first component the config does not have.

    ``Config.merge_from_dict`` silently creates a new top-level key for a
    misspelt one (``train_dataloder.batch_size=4``) and the runner never reads
    it. Keys the runner reads (``load_from``, ``custom_hooks``, ...) are
    allowed even when the config lacks them.

    Raises:
        KeyError: naming the key and the closest existing keys.
    """
    known = set(cfg.keys()) | _runner_keys()
    for key in keys or ():
        top = key.split('.', 1)[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3)
            hint = f'; did you mean {close}?' if close else ''
            raise KeyError(f'--cfg-options {key}: the config has no key {top!r}{hint}')


def load_checked_config(path: str, cfg_options: Optional[dict], launcher: str = 'none',
                        work_dir: Optional[str] = None) -> Config:
    """:func:`mmcf.utils.config.load_config` that names the config file in a
    syntax error (mmengine reports ``<unknown>``) and refuses misspelt
    ``--cfg-options`` keys (:func:`check_cfg_option_keys`) before merging them."""
    from mmcf.utils.config import load_config
    try:
        cfg = load_config(path, None, launcher, work_dir)
    except SyntaxError as e:
        raise SyntaxError(f'config {path} line {e.lineno}: {e.msg}') from e
    check_cfg_option_keys(cfg, (cfg_options or {}).keys())
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:  # --work-dir wins over the config and --cfg-options
        cfg.work_dir = work_dir
    return cfg


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
