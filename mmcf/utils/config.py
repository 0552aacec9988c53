"""Config loading shared by mmcf's tools."""
import difflib
import inspect
import os.path as osp
import typing
from typing import Any, Dict, Iterable, Optional, Tuple

from mmengine.config import Config

#: top-level keys the runner (or our tools) read besides Runner.__init__'s
_RUNNER_EXTRA_KEYS = {'runner_type', 'find_unused_parameters', 'custom_imports', 'compile',
                      'model_wrapper_cfg', 'strategy', 'launcher', 'work_dir', 'resume',
                      'load_from', 'dist_params', 'auto_scale_lr', 'allow_outside_data_root'}


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


# registries to look a ``type`` up in, by the first component of its key
_REGISTRY_BY_ROOT = {
    'model': ('MODELS', 'TASK_UTILS'), 'default_hooks': ('HOOKS', ),
    'custom_hooks': ('HOOKS', ), 'optim_wrapper': ('OPTIM_WRAPPERS', 'OPTIMIZERS'),
    'param_scheduler': ('PARAM_SCHEDULERS', ), 'val_evaluator': ('METRICS', 'EVALUATOR'),
    'test_evaluator': ('METRICS', 'EVALUATOR'), 'visualizer': ('VISUALIZERS', 'VISBACKENDS'),
    'log_processor': ('LOG_PROCESSORS', ), 'train_cfg': ('LOOPS', ), 'val_cfg': ('LOOPS', ),
    'test_cfg': ('LOOPS', ), 'model_wrapper_cfg': ('MODEL_WRAPPERS', ),
}
_ALL_REGISTRIES = ('MODELS', 'TASK_UTILS', 'TRANSFORMS', 'DATASETS', 'DATA_SAMPLERS', 'HOOKS',
                   'OPTIM_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
                   'LOOPS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'MODEL_WRAPPERS')


def _find_class(type_: object, scope: Optional[str], preferred: Iterable[str]):
    """The class a ``type`` names, looked up as the runner would; None if
    not found (then its arguments are not checked)."""
    if inspect.isclass(type_):
        return type_
    if not isinstance(type_, str):
        return None
    import mmengine.registry as registries
    names = list(preferred) + [n for n in _ALL_REGISTRIES if n not in preferred]
    for name in names:
        registry = getattr(registries, name)
        try:
            with registry.switch_scope_and_registry(scope) as reg:
                cls = reg.get(type_)
        except Exception:  # noqa: BLE001  (a scope whose package is absent)
            cls = None
        if cls is not None:
            return cls
    return None


def accepted_arguments(cls) -> Optional[set]:
    """The keyword arguments ``cls(...)`` accepts; None when it takes any.

    An ``__init__`` with ``**kwargs`` passes them on to its base class, so
    the bases' arguments are added, along the MRO, up to a base that takes
    no ``**kwargs``; ``object`` and ``torch.nn.Module`` accept none
    (mmengine's ``CheckpointHook`` forwards its ``**kwargs`` to
    ``Runner.save_checkpoint``, which takes none either).
    """
    import torch.nn as nn
    if not inspect.isclass(cls):
        try:
            params = inspect.signature(cls).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind == p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params}
    accepted: set = set()
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        if klass in (object, nn.Module):
            return accepted
        try:
            params = inspect.signature(vars(klass)['__init__']).parameters.values()
        except (TypeError, ValueError):
            return None
        accepted |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                          p.KEYWORD_ONLY)} - {'self'}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return accepted
    return accepted


# ``optim_wrapper`` keys that mmengine's optimizer wrapper constructor takes
# (DefaultOptimWrapperConstructor) before it builds the wrapper class.
_CONSTRUCTOR_KEYS = ('constructor', 'paramwise_cfg')


def _implied_type(root: str, node: dict) -> Optional[str]:
    """The class the runner builds from a dict without ``type``."""
    if root == 'train_cfg':
        return 'EpochBasedTrainLoop' if node.get('by_epoch', 'max_epochs' in node) \
            else 'IterBasedTrainLoop'
    if root in ('val_cfg', 'test_cfg'):
        return {'val_cfg': 'ValLoop', 'test_cfg': 'TestLoop'}[root]
    if root == 'optim_wrapper':
        return 'OptimWrapper'
    return None


_MISSING = object()
_SCALARS = (bool, int, float)


def _scalar_types(annotation: Any) -> Optional[Tuple[type, ...]]:
    """The scalar types (bool, int, float and None) an annotation allows, or
    None when it allows anything else too (then no type is checked)."""
    if annotation in _SCALARS or annotation is type(None):
        return (annotation, )
    if typing.get_origin(annotation) is typing.Union:
        out: Tuple[type, ...] = ()
        for arg in typing.get_args(annotation):
            one = _scalar_types(arg)
            if one is None:
                return None
            out += one
        return out
    return None


def _expected_types(cls, name: str) -> Optional[Tuple[type, ...]]:
    """What argument ``name`` of ``cls.__init__`` takes, from its
    annotation, else from its default (None: not checked)."""
    init = getattr(cls, '__init__', None)
    for klass in getattr(cls, '__mro__', ()):
        if name in inspect.signature(vars(klass).get('__init__', lambda self: None)).parameters:
            init = vars(klass)['__init__']
            break
    try:
        param = inspect.signature(init).parameters.get(name)
    except (TypeError, ValueError):
        return None
    if param is None:
        return None
    try:
        hint = typing.get_type_hints(init).get(name)
    except Exception:  # noqa: BLE001  (forward references that do not resolve)
        hint = None
    if hint is not None:
        return _scalar_types(hint)
    default = param.default
    if default is param.empty or default is None or type(default) not in _SCALARS:
        return None
    return (type(default), type(None))


def _fits(value: Any, types: Tuple[type, ...]) -> bool:
    if value is None:
        return type(None) in types
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int):
        return int in types or float in types
    if isinstance(value, float):
        return float in types
    return False


def _type_names(types: Tuple[type, ...]) -> str:
    names = [{'int': 'an int', 'float': 'a number', 'bool': 'a bool (True or False)'}.get(
        t.__name__, t.__name__) for t in types if t is not type(None)]
    return ' or '.join(names) + (' (or None)' if type(None) in types else '')


def check_cfg_option_value(key: str, value: Any, types: Optional[Tuple[type, ...]],
                           owner: str) -> None:
    """Refuse a ``--cfg-options`` value of another type than ``types``."""
    if types is None or _fits(value, types):
        return
    got = f'the string {value!r}' if isinstance(value, str) else \
        f'{type(value).__name__} {value!r}'
    raise TypeError(f'--cfg-options {key}={value}: {owner} takes {_type_names(types)}, got '
                    f'{got}')


def check_cfg_option_args(cfg: Config, keys: Optional[Iterable[str]]) -> None:
    """Refuse ``--cfg-options`` keys that no class along their path takes.

    Call after merging. For each key, every dict on its path that names a
    ``type`` (or is a loop or optimizer wrapper config, which the runner
    builds without one) must take the next component as an argument of its
    class's ``__init__`` (see :func:`accepted_arguments`): a misspelt hook
    option such as ``default_hooks.checkpoint.max_keep_ckpt`` is otherwise
    accepted and fails at the first save, after a whole epoch of training.
    Types not found in any registry are not checked.

    Raises:
        KeyError: naming the key, the class and the closest arguments.
    """
    scope = cfg.get('default_scope', None)
    for key in keys or ():
        parts = key.split('.')
        node: object = cfg._cfg_dict if isinstance(cfg, Config) else cfg
        preferred = _REGISTRY_BY_ROOT.get(parts[0], ())
        for depth, part in enumerate(parts):
            if isinstance(node, (list, tuple)):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError):
                    break
                continue
            if not isinstance(node, dict) or part not in node:
                break
            if depth > 0:
                here = parts[depth - 1]
                if here == 'pipeline' or parts[0].endswith('pipeline'):
                    preferred = ('TRANSFORMS', )
                elif here == 'dataset' or here == 'datasets':
                    preferred = ('DATASETS', )
                elif here == 'sampler':
                    preferred = ('DATA_SAMPLERS', )
                elif here == 'optimizer':
                    preferred = ('OPTIMIZERS', )
            type_ = node.get('type', None) if depth > 0 else None
            if type_ is None and depth == 1:
                type_ = _implied_type(parts[0], node)
            if depth == 1 and parts[0] == 'optim_wrapper' and part in _CONSTRUCTOR_KEYS:
                # read by the optimizer wrapper constructor, not the wrapper class
                node = node[part]
                continue
            if part not in ('type', '_scope_') and type_ is not None:
                cls = _find_class(type_, scope, preferred)
                accepted = accepted_arguments(cls) if cls is not None else None
                if accepted is not None and part not in accepted:
                    close = difflib.get_close_matches(part, sorted(accepted), n=3)
                    hint = f'; did you mean {close}?' if close else ''
                    raise KeyError(
                        f'--cfg-options {key}: {getattr(cls, "__name__", cls)} (at '
                        f'{".".join(parts[:depth]) or "top level"}) takes no argument '
                        f'{part!r}{hint}')
                if depth == len(parts) - 1 and inspect.isclass(cls):
                    check_cfg_option_value(key, node[part], _expected_types(cls, part),
                                           f'{cls.__name__}\'s {part}')
            node = node[part]


def _value_at(cfg: Config, key: str) -> Any:
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def check_cfg_option_types(cfg: Config, cfg_options: Dict[str, Any]) -> None:
    """Refuse a ``--cfg-options`` value where the config holds a number or a
    switch and the new value is not one (``train_cfg.max_iters=ten``).
    The argument's own type (an int where a float would not do) is checked
    against its class after merging (:func:`check_cfg_option_args`), as are
    arguments the config does not hold."""
    for key, value in cfg_options.items():
        old = _value_at(cfg, key)
        if old is _MISSING or old is None or type(old) not in _SCALARS:
            continue
        types = (bool, ) if isinstance(old, bool) else (float, )
        check_cfg_option_value(key, value, types + (type(None), ),
                               f'the config (which holds {old!r} there)')


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read a config, apply ``--cfg-options``, the launcher and the work dir.

    A syntax error names the config file (mmengine reports ``<unknown>``);
    misspelt ``--cfg-options`` keys are refused: top-level ones before merging
    (:func:`check_cfg_option_keys`), arguments of a hook, model, transform,
    loop... after (:func:`check_cfg_option_args`). The work dir is the one given, else the
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
        check_cfg_option_types(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
        check_cfg_option_args(cfg, cfg_options.keys())
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
