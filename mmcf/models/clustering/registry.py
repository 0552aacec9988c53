"""The clustering layers by name, and where every block option lives.

Eq. 3's layer and the Table 6c variants register here
(:func:`register_clustering`) and are built from a ``clustering_cfg`` dict
by ``type`` (:func:`build_clustering`), as mmcv builds an attention by
``type``. The options of a layer are its class's signature
(:func:`clustering_options`), not a copied list.

An owner that takes option dicts (the encoder's blocks: ``clustering_cfg``
for Eq. 3, ``center_init_cfg`` for Eq. 5, ``dispatch_cfg`` for Eq. 6; the
decoder layers: ``clustering_cfg``) refuses the flat keywords of earlier
releases with :func:`refuse_old_options`, naming the dict and key each
belongs to now. Nothing here imports the layers: they import this module,
and the package ``__init__`` imports the variants, so the registry is full
whenever any module of the package has been imported. Framework-free.
"""
from __future__ import annotations

import inspect
from typing import Dict, Optional, Tuple, Type

import torch.nn as nn

#: ``type`` -> class, filled by :func:`register_clustering`
CLUSTERINGS: Dict[str, Type[nn.Module]] = {}
#: the class a ``clustering_cfg`` without ``type`` builds
DEFAULT_TYPE = 'RecurrentClustering'

#: the Table 6c row names of earlier releases (``center_update=``) -> ``type``
UPDATE_TYPES = {'recurrent': 'RecurrentClustering', 'cosine': 'CosineClustering',
                'vanilla': 'VanillaCrossAttention', 'criss_cross': 'CrissCrossClustering',
                'kmeans': 'KMeansClustering'}

#: keyword names of earlier releases -> their one name in ``clustering_cfg``
RENAMED_OPTIONS = {'center_update': 'type', 'update': 'type', 'cluster_logits': 'logits',
                   'residual_m_step': 'residual', 'fused_em': 'fused'}

#: flat block keywords of earlier releases -> ``(dict, key)`` where they live now
MOVED_OPTIONS = {'center_ffn_ratio': ('center_init_cfg', 'ffn_ratio'),
                 'center_init_residual': ('center_init_cfg', 'residual'),
                 'dispatch_mlp_ratio': ('dispatch_cfg', 'mlp_ratio'),
                 'dispatch_sim': ('dispatch_cfg', 'sim'),
                 'dispatch_mode': ('dispatch_cfg', 'mode')}

#: arguments an owner sets itself, never a config dict
OWNER_ARGS = ('self', 'dim', 'num_centers', 'kwargs')


def register_clustering(cls: Type[nn.Module]) -> Type[nn.Module]:
    """Make ``cls`` buildable as ``clustering_cfg=dict(type=cls.__name__)``."""
    CLUSTERINGS[cls.__name__] = cls
    return cls


def class_options(cls: type) -> Dict[str, object]:
    """Name -> default of the options a config dict may give ``cls``: the
    keyword parameters of its ``__init__`` but those the owner sets
    (:data:`OWNER_ARGS`), and, where that ``__init__`` passes ``**kwargs``
    on, those of its bases' (a subclass's default wins)."""
    options: Dict[str, object] = {}
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith('torch') \
                or '__init__' not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        for n, p in params.items():
            if n not in OWNER_ARGS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                options.setdefault(n, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return options


def clustering_options() -> Tuple[str, ...]:
    """Every option a ``clustering_cfg`` of Eq. 3's layer holds: ``type`` and
    the arguments of :class:`~mmcf.models.clustering.RecurrentClustering`."""
    return ('type', ) + tuple(class_options(CLUSTERINGS[DEFAULT_TYPE]))


def clustering_class(cfg: Optional[dict]) -> type:
    """The class a ``clustering_cfg`` builds (its ``type``: a registered name
    or a class; default :data:`DEFAULT_TYPE`)."""
    kind = (cfg or {}).get('type', DEFAULT_TYPE)
    cls = kind if isinstance(kind, type) else CLUSTERINGS.get(kind)
    if cls is None:
        raise KeyError(f'clustering_cfg.type {kind!r} is not a clustering layer; choose one '
                       f'of {sorted(CLUSTERINGS)}')
    return cls


def clustering_default(cfg: Optional[dict], key: str):
    """``cfg[key]``, else the default of the class ``cfg`` builds."""
    cfg = cfg or {}
    return cfg[key] if cfg.get(key) is not None else class_options(clustering_class(cfg))[key]


def clustering_num_iters(cfg: Optional[dict]) -> int:
    """T of the layers ``cfg`` builds (without building one)."""
    return int(clustering_default(cfg, 'num_iters'))


def _renamed_hint(key: str, value: object) -> str:
    """``clustering_cfg=dict(<new name>=<value>)`` for an old keyword."""
    new = RENAMED_OPTIONS.get(key, key)
    if new == 'type':
        value = UPDATE_TYPES.get(value, value) if isinstance(value, str) else value
    return f'clustering_cfg=dict({new}={value!r})'


def refuse_old_options(owner: str, kwargs: dict, allowed: Tuple[str, ...] = ()) -> None:
    """Refuse keyword arguments that ``owner`` no longer takes: each option
    has one name and one place. A clustering option (or its old name) is
    refused with a ``TypeError`` naming its ``clustering_cfg`` key, a moved
    Eq. 5 / Eq. 6 option naming its ``center_init_cfg`` / ``dispatch_cfg``
    key; anything else as unexpected."""
    for key, value in kwargs.items():
        if key in allowed:
            continue
        if key in RENAMED_OPTIONS or key in clustering_options():
            raise TypeError(f'{owner}: {key}= is a clustering option; pass '
                            f'{_renamed_hint(key, value)}')
        if key in MOVED_OPTIONS:
            where, new = MOVED_OPTIONS[key]
            raise TypeError(f'{owner}: {key}= moved; pass {where}=dict({new}={value!r})')
        raise TypeError(f'{owner} got an unexpected keyword argument {key!r}')


def build_from_cfg(cls: type, cfg: Optional[dict], name: str, *args, **owner_kwargs):
    """``cls(*args, **owner_kwargs, **cfg)`` for an option dict ``name``
    (``center_init_cfg``, ``dispatch_cfg``): a key the owner sets, a key
    ``cls`` does not take or an old flat name is refused naming the dict."""
    cfg = dict(cfg or {})
    known = class_options(cls)
    for key in cfg:
        if key in owner_kwargs or key in OWNER_ARGS:
            raise ValueError(f'{name} must not set {key}: the owner sets it')
        if key not in known:
            raise TypeError(f'{name}: {cls.__name__} has no option {key!r}; its options: '
                            f'{sorted(known)}')
    return cls(*args, **owner_kwargs, **cfg)


def build_clustering(cfg: Optional[dict], dim: int, num_heads: Optional[int] = None
                     ) -> nn.Module:
    """Build a clustering layer of width ``dim`` from ``cfg``: ``type`` (a
    name of :data:`CLUSTERINGS` or a class; default
    ``'RecurrentClustering'``) and the class's arguments. ``num_heads`` is
    the owner's (the backbone's per stage) unless ``cfg`` sets it."""
    cfg = dict(cfg or {})
    for key in ('dim', ) + (('num_heads', ) if num_heads is not None else ()):
        if key in cfg:
            raise ValueError(f'clustering_cfg must not set {key}: the owner sets it '
                             f'({key}={dim if key == "dim" else num_heads})')
    old = sorted(set(cfg) & set(RENAMED_OPTIONS))
    if old:
        raise TypeError(f'clustering_cfg: {old[0]}= was renamed; use '
                        f'{_renamed_hint(old[0], cfg[old[0]])}')
    cls = clustering_class(cfg)
    cfg.pop('type', None)
    if num_heads is not None:
        cfg['num_heads'] = num_heads
    return cls(dim, **cfg)
