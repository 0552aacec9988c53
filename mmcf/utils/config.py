"""Config loading shared by mmcf's tools."""
import difflib
import inspect
import os.path as osp
from typing import Iterable, Optional

from mmengine.config import Config

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


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read a config, apply ``--cfg-options``, the launcher and the work dir.

    A syntax error names the config file (mmengine reports ``<unknown>``);
    misspelt ``--cfg-options`` keys are refused before merging
    (:func:`check_cfg_option_keys`). The work dir is the one given, else the
    config's, else ``./work_dirs/<config name>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as e:
        raise SyntaxError(f'config {path} line {e.lineno}: {e.msg}') from e
    cfg.launcher = launcher
    check_cfg_option_keys(cfg, (cfg_options or {}).keys())
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
