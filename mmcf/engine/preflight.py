"""Checks that the model, the data and a resumed checkpoint agree, before
the first iteration.

mmengine builds and trains what a config says without comparing its parts:
a head with more classes than the data set trains and fails at validation
(or never), one with fewer fails at the first target out of range, a resume
point past ``max_iters`` trains nothing and exits 0, and an optimizer state
of another type fails deep inside the optimizer. Each check here reads the
config (and the checkpoint) only, and raises :class:`PreflightError` naming
the config key, both values and the fix. ``tools/train.py`` runs them all,
``tools/test.py`` the class counts.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'ConcatDataset')
#: the registries by the config's default_scope
_DATASET_REGISTRIES = {'mmdet': 'mmdet.registry', 'mmseg': 'mmseg.registry',
                       'mmpretrain': 'mmpretrain.registry'}


class PreflightError(ValueError):
    """The config's parts (or a checkpoint) disagree; the message says how to fix it."""


# ----------------------------------------------------------------- classes
def _dataset_type(cfg: dict, scope: Optional[str]):
    import importlib
    kind = cfg.get('type')
    if not isinstance(kind, str):
        return kind
    module = _DATASET_REGISTRIES.get(str(scope))
    if module is None:
        return None
    try:
        return importlib.import_module(module).DATASETS.get(kind)
    except Exception:  # noqa: BLE001  (a type the scope does not know)
        return None


def dataset_classes(cfg: Optional[dict], scope: Optional[str]
                    ) -> Optional[Tuple[Sequence[str], str]]:
    """The classes a dataset config trains on and where they come from
    (``metainfo.classes``, ``classes``, a classes file, or the dataset
    type's ``METAINFO``); None when the config does not say (mmpretrain's
    folder mode, an unknown type)."""
    if not isinstance(cfg, dict):
        return None
    kind = str(cfg.get('type', '')).split('.')[-1]
    if kind in WRAPPERS:
        inner = cfg.get('dataset') or (cfg.get('datasets') or [None])[0]
        return dataset_classes(inner, scope)
    classes = (cfg.get('metainfo') or {}).get('classes')
    source = 'metainfo.classes'
    if classes is None and cfg.get('classes') is not None:
        classes, source = cfg['classes'], 'classes'
    if isinstance(classes, str):
        try:
            with open(classes, encoding='utf-8') as f:
                classes = [c for c in f.read().splitlines() if c.strip()]
            source = f'the classes file {cfg["classes"]}'
        except OSError:
            return None
    if classes is None:
        dataset = _dataset_type(cfg, scope)
        classes = getattr(dataset, 'METAINFO', {}).get('classes') if dataset else None
        source = f'{kind}.METAINFO'
    return (tuple(classes), source) if classes is not None else None


def _heads(model: dict, key: str = 'model') -> Iterator[Tuple[str, dict]]:
    """(config key, head dict) of every head that predicts classes."""
    for name in ('decode_head', 'auxiliary_head', 'bbox_head', 'head', 'panoptic_head'):
        head = model.get(name)
        items = head if isinstance(head, (list, tuple)) else [head]
        for i, h in enumerate(items):
            if isinstance(h, dict):
                yield (f'{key}.{name}' + (f'.{i}' if len(items) > 1 else ''), h)
    roi = model.get('roi_head')
    if isinstance(roi, dict):
        yield from _heads({k: roi.get(k) for k in ('bbox_head', 'mask_head')},
                          f'{key}.roi_head')
        if isinstance(roi.get('mask_head'), dict):
            yield f'{key}.roi_head.mask_head', roi['mask_head']


def head_class_counts(model: dict) -> List[Tuple[str, int]]:
    """(config key, class count) of every head of a model config (and of
    mmpretrain's data preprocessor, whose ``num_classes`` sizes the one-hot
    labels of batch augmentations)."""
    out = []
    for key, head in _heads(model):
        if 'num_things_classes' in head or 'num_stuff_classes' in head:
            things, stuff = head.get('num_things_classes'), head.get('num_stuff_classes', 0)
            if isinstance(things, int) and isinstance(stuff, int):
                name = f'{key}.num_things_classes + num_stuff_classes' if stuff else \
                    f'{key}.num_things_classes'
                out.append((name, things + stuff))
        elif isinstance(head.get('num_classes'), int):
            out.append((f'{key}.num_classes', head['num_classes']))
    pre = model.get('data_preprocessor')
    if isinstance(pre, dict) and isinstance(pre.get('num_classes'), int):
        out.append(('model.data_preprocessor.num_classes', pre['num_classes']))
    return out


def check_class_counts(cfg, loaders: Sequence[str] = ('train_dataloader', 'val_dataloader')
                       ) -> None:
    """Refuse a model whose heads predict another number of classes than the
    data sets of ``loaders`` have."""
    model = cfg.get('model')
    if not isinstance(model, dict):
        return
    counts = head_class_counts(model)
    scope = cfg.get('default_scope', None)
    for loader in loaders:
        found = dataset_classes((cfg.get(loader) or {}).get('dataset'), scope)
        if found is None:
            continue
        classes, source = found
        for key, n in counts:
            if n != len(classes) and not (key.endswith('mask_head.num_classes') and n == 1):
                shown = ', '.join(map(str, classes[:8])) + (', ...' if len(classes) > 8 else '')
                fix_key = key.split(' + ')[0]
                raise PreflightError(
                    f'{key} is {n} but {loader}.dataset has {len(classes)} classes ({shown}; '
                    f'from its {source}): the model and the data disagree, which fails '
                    f'{"at the first label past the head" if n < len(classes) else "at validation or silently never trains the extra classes"}. '
                    f'Set {fix_key} to match (--cfg-options {fix_key}='
                    f'{len(classes) if " + " not in key else "..."}) or give the data set '
                    'the classes the model was built for (metainfo=dict(classes=...)).')


# ------------------------------------------------------------------ resume
def _train_limit(cfg) -> Tuple[Optional[str], Optional[int]]:
    train = cfg.get('train_cfg') or {}
    by_epoch = train.get('by_epoch', 'max_epochs' in train) or \
        train.get('type') == 'EpochBasedTrainLoop'
    key = 'max_epochs' if by_epoch else 'max_iters'
    value = train.get(key)
    return (key, value) if isinstance(value, int) else (None, None)


def check_resume_point(cfg, ckpt: Dict[str, Any], path: str) -> None:
    """Refuse a resume from a checkpoint at or past the end of the config's
    schedule: it would train nothing (mmengine logs "resumed" and exits 0)."""
    key, limit = _train_limit(cfg)
    meta = ckpt.get('meta') or {}
    unit = 'epoch' if key == 'max_epochs' else 'iter'
    done = meta.get(unit)
    if key is None or not isinstance(done, int):
        return
    if done >= limit:
        raise PreflightError(
            f'--resume {path}: the checkpoint is at {unit} {done}, and train_cfg.{key} is '
            f'{limit}: nothing would be trained. Raise train_cfg.{key} past {done} '
            f'(--cfg-options train_cfg.{key}=N) to train on, or evaluate the checkpoint '
            'with tools/test.py.')


#: the hyper-parameters each optimizer keeps in its param groups (torch's)
_KNOWN_OPTIMIZERS = ('SGD', 'Adam', 'AdamW', 'RMSprop', 'Adagrad', 'Adadelta', 'Adamax',
                     'NAdam', 'RAdam', 'ASGD', 'Rprop', 'LBFGS')


def _optimizer_defaults(name: str, args: dict) -> Optional[set]:
    """The param-group keys of the optimizer ``name`` built with ``args``
    (None when it cannot be built here)."""
    import torch
    try:
        from mmengine.registry import OPTIMIZERS
        cls = OPTIMIZERS.get(name) or getattr(torch.optim, name)
        opt = cls([torch.nn.Parameter(torch.zeros(1))], **args)
    except Exception:  # noqa: BLE001  (an optimizer that needs more to be built)
        return None
    return set(opt.param_groups[0]) - {'params'}


def _likely_optimizer(group: dict) -> str:
    """The torch optimizer whose param groups look like the checkpoint's
    ``group``: the same keys, then the most flags of the same value (Adam
    and AdamW share their keys; ``decoupled_weight_decay`` tells them
    apart)."""
    import torch
    keys = set(group) - {'params', 'initial_lr'}
    best, best_score = 'another optimizer', -1
    for name in _KNOWN_OPTIMIZERS:
        try:
            lr = dict(lr=1.0) if name != 'LBFGS' else {}
            opt = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(1))], **lr)
        except Exception:  # noqa: BLE001
            continue
        own = opt.param_groups[0]
        if set(own) - {'params'} != keys:
            continue
        score = sum(own[k] == group[k] for k in keys if isinstance(own[k], bool))
        if score > best_score:
            best, best_score = name, score
    return best


def check_resume_optimizer(cfg, ckpt: Dict[str, Any], path: str) -> None:
    """Refuse a resume whose optimizer state is of another type than the
    config's (``KeyError: 'momentum'`` deep in SGD for an AdamW state)."""
    state = ckpt.get('optimizer')
    if not isinstance(state, dict) or not state.get('param_groups'):
        return
    wrapper = cfg.get('optim_wrapper') or {}
    optimizer = dict(wrapper.get('optimizer') or {})
    name = optimizer.pop('type', None)
    if not isinstance(name, str):
        return
    want = _optimizer_defaults(name, optimizer)
    have = set(state['param_groups'][0]) - {'params'}
    if want is None or want <= have:
        return
    other = _likely_optimizer(state['param_groups'][0])
    raise PreflightError(
        f'--resume {path}: its optimizer state is of {other} (param groups with '
        f'{sorted(have - {"lr", "initial_lr"})[:6]}), the config\'s '
        f'optim_wrapper.optimizer.type is {name} (which needs '
        f'{sorted(want - have)}). Resume with the optimizer the checkpoint was trained '
        f'with (--cfg-options optim_wrapper.optimizer.type={other}), or start a new '
        'schedule from its weights (--resume-weights-only, or load_from).')


def check_schedule(cfg) -> None:
    """Refuse a schedule that trains nothing or never validates:
    ``max_iters``/``max_epochs`` and ``val_interval`` must be positive
    (mmengine runs ``max_iters=0``, saves nothing and exits 0)."""
    train = cfg.get('train_cfg') or {}
    for key in ('max_iters', 'max_epochs', 'val_interval', 'val_begin'):
        value = train.get(key)
        floor = 0 if key == 'val_begin' else 1
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < floor:
            raise PreflightError(f'train_cfg.{key} is {value}: it must be at least {floor} '
                                 f'(--cfg-options train_cfg.{key}=N)')


def check_before_training(cfg, ckpt: Optional[Dict[str, Any]] = None,
                          path: Optional[str] = None) -> None:
    """Every check of this module that applies to a training run."""
    check_schedule(cfg)
    check_class_counts(cfg)
    if ckpt is not None and cfg.get('resume', False):
        check_resume_point(cfg, ckpt, path)
        check_resume_optimizer(cfg, ckpt, path)
