"""Let torch >= 2.6 load OpenMMLab checkpoints while keeping safe loading.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it unpickles
only tensors, containers and an allow-list of types. mmengine 0.10.7 calls
``torch.load`` without ``weights_only``, and the checkpoints its runner writes
hold a few objects beyond tensors (the message hub's ``HistoryBuffer`` with
its numpy arrays and scalars), so resume, ``load_from`` and
``init_cfg=dict(type='Pretrained')`` fail with an ``UnpicklingError``.

:func:`register_checkpoint_safe_globals` adds exactly those types to torch's
allow-list (``torch.serialization.add_safe_globals``). Safe loading stays on:
a checkpoint holding any other object is still refused by torch.

One entry needs care: a ``HistoryBuffer`` pickles its table of statistics
methods as ``getattr(HistoryBuffer, 'mean')`` and so on. Allowing the builtin
``getattr`` would let a checkpoint fetch any attribute reachable from the
allowed objects (``getattr.__self__`` is the ``builtins`` module), and
mmengine later calls the functions in that table. So the pickled name
``builtins.getattr`` is bound to :func:`_history_buffer_getattr`, which
resolves only ``HistoryBuffer``'s registered statistics methods and refuses
everything else.
"""
from __future__ import annotations

import pickle
from typing import Any, List

import numpy as np
import torch

_registered = False


def _numpy_globals() -> List[Any]:
    """numpy objects that pickled arrays, dtypes and scalars refer to."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    items: List[Any] = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes through their classes (numpy.dtypes.*DType)
    for code in '?bhilqBHILQefdgFDGSUV':
        items.append(type(np.dtype(code)))
    # numpy 2 writes paths under numpy._core, numpy 1 under numpy.core: name
    # both, so a checkpoint written with either numpy loads with the other
    for obj in (multiarray._reconstruct, multiarray.scalar):
        for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            items.append((obj, f'{mod}.{obj.__name__}'))
    return items


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as a checkpoint may use it: HistoryBuffer statistics only."""
    from mmengine.logging import HistoryBuffer
    # the four built-in statistics (HistoryBuffer.__init__ registers them) and
    # any added with HistoryBuffer.register_statistics
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); mmcf allows getattr only for '
        'the statistics methods of mmengine.logging.HistoryBuffer')


def checkpoint_safe_globals() -> List[Any]:
    """The non-tensor types found in mmengine/mmpretrain/mmdet/mmseg checkpoints."""
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


def register_checkpoint_safe_globals() -> None:
    """Allow :func:`checkpoint_safe_globals` in ``torch.load(weights_only=True)``.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    global _registered
    if _registered:
        return
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads everything anyway
        _registered = True
        return
    add(checkpoint_safe_globals())
    _registered = True
