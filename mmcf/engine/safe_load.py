"""Safe loading: let torch >= 2.6 load OpenMMLab checkpoints while keeping safe loading.

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

:func:`load_checkpoint_file` loads a file with safe loading on and raises
:class:`CheckpointError`, naming the file and the reason, for a file that is
missing, truncated or corrupt, or that holds an object safe loading refuses.
"""
from __future__ import annotations

import os.path as osp
import pickle
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

_registered = False


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that names no file."""


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


def load_checkpoint_file(path: str, require: Sequence[str] = ('state_dict', ),
                         map_location: Any = None) -> Dict[str, Any]:
    """Load ``path`` with safe loading on, or raise :class:`CheckpointError`.

    The error names the file and says why: missing, truncated or corrupt,
    holding an object that safe loading refuses, or lacking the keys in
    ``require``. ``map_location`` is torch's (default: the CPU).
    """
    if not osp.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint file not found: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path} is empty (0 bytes)')
    try:
        ckpt = torch.load(path, map_location=map_location or 'cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many types here)
        refused = _unsafe_global(e)
        if refused is not None:
            # ``from None``: torch's error would be printed above ours, with its advice
            # to re-run with weights_only=False, which a refused file must not get
            raise CheckpointError(
                f'checkpoint {path} is refused: it holds code or objects other than '
                f'tensors and plain containers ({refused}), which safe loading '
                '(weights_only=True) refuses to unpickle. Use a checkpoint from a source '
                'you trust, or re-save its weights alone (the "state_dict" of tensors).'
            ) from None
        detail, cause = _reading_error(e)
        raise CheckpointError(
            f'checkpoint {path} cannot be read (truncated or corrupt?): {detail}') from cause
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict')
    missing = [k for k in require if k not in ckpt]
    if missing:
        raise CheckpointError(f'checkpoint {path} has no {missing} entry '
                              f'(its keys: {sorted(map(str, ckpt))})')
    return ckpt


#: torch's wordings of a refused global: "Unsupported global: GLOBAL os.system
#: was not an allowed global by default" (torch 2.4-2.5) and "Trying to load
#: unsupported GLOBAL posix.system whose module posix is blocked" (torch >= 2.6)
_UNSAFE_GLOBAL = re.compile(r'unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)', re.IGNORECASE)


def _unsafe_global(err: Exception) -> Optional[str]:
    """What safe loading refused, from torch's message: ``global posix.system``
    or mmcf's getattr refusal; None for any other error (a corrupt file)."""
    text = str(err)
    m = _UNSAFE_GLOBAL.search(text)
    if m:
        return f'global {m.group(1)}'
    if 'allows getattr only' in text:
        m = re.search(r'checkpoint asks for getattr\([^\n]*?\)', text)
        return m.group(0) if m else 'a getattr call'
    return None


#: how torch >= 2.6 words the start of the error it raises in place of its weights-only
#: unpickler's own; the rest of its text advises re-running with ``weights_only=False``
_WEIGHTS_ONLY_FAILED = 'Weights only load failed'


def _reading_error(err: Exception) -> Tuple[str, Optional[BaseException]]:
    """Why torch cannot read a file, as ``'<type>: <first line>'``, and the
    error to chain ours to.

    A corrupt file often trips torch's weights-only unpickler, and torch
    replaces that unpickler's error ("Unsupported operand 120") with one whose
    first line advises ``weights_only=False``: the unpickler's own error
    (its ``__context__``) is then named and chained instead, or none when it
    is missing. Any other error (``EOFError`` of a truncated file, the zip
    reader's ``RuntimeError``, an ``OSError``) is named and chained as is:
    its traceback shows where reading stopped.
    """
    if isinstance(err, pickle.UnpicklingError) and str(err).startswith(_WEIGHTS_ONLY_FAILED):
        inner = err.__context__
        if not isinstance(inner, Exception):
            return f'{type(err).__name__}: {_WEIGHTS_ONLY_FAILED}', None
        err = inner
    lines = str(err).strip().splitlines()
    return f'{type(err).__name__}: {lines[0] if lines else ""}', err
