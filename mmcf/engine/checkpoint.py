"""Checkpoints: safe loading on torch >= 2.6, atomic saving and careful resuming.

**Safe loading.** Let torch >= 2.6 load OpenMMLab checkpoints while keeping safe loading.

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

**Atomic saving.** Checkpoints that survive being killed: atomic saving and careful resuming.

mmengine 0.10.7 writes a checkpoint with one ``open(path, 'wb').write(...)``
and its ``CheckpointHook`` deletes the oldest kept checkpoint *before* writing
the new one and then rewrites ``last_checkpoint`` in place. A process killed
in the middle (SIGKILL, pre-emption, out-of-memory) can therefore leave a
truncated ``iter_N.pth`` that ``last_checkpoint`` points to, or with
``max_keep_ckpts=1`` no complete checkpoint at all.

:class:`AtomicCheckpointHook` (a drop-in ``CheckpointHook``) saves through
:class:`AtomicLocalBackend`: the bytes go to a temporary file in the same
folder, are flushed and fsync'ed, and only then ``os.replace``-d onto the
final name, so a checkpoint file is either complete or absent. Only after
that is ``last_checkpoint`` replaced (atomically too), and only after that are
old checkpoints deleted.

:func:`find_resume_checkpoint` picks the checkpoint to resume from and skips,
with a warning naming the file and the reason, any that does not load (a file
cut off by a writer other than ours, or a disk error).

The tests kill runs in the middle of these writes from outside the package
(tests/fault_injection.py); nothing here has a kill switch.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
import pickle
import re
from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

ATOMIC_BACKEND = 'mmcf_atomic_local'
TMP_TAG = '.mmcf-tmp-'
_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


# ------------------------------------------------------------- safe loading
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


# ----------------------------------------------------------- atomic saving


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


def _fsync_dir(folder: str) -> None:
    """Make a rename inside ``folder`` durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(data: Union[bytes, str], path: str) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never partly written.

    The data go to ``.<name>.mmcf-tmp-<pid>`` beside ``path``, are fsync'ed
    and then renamed onto ``path`` with ``os.replace`` (atomic on POSIX and
    Windows within one file system). On any error the temporary file is
    removed and ``path`` keeps its old content.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def temporary_path(path: str) -> str:
    """Where :func:`atomic_write` puts the bytes of ``path`` before the
    rename: ``.<name>.mmcf-tmp-<pid>`` in the same folder."""
    folder = osp.dirname(osp.abspath(path))
    return osp.join(folder, f'.{osp.basename(path)}{TMP_TAG}{os.getpid()}')


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete temporary files that a killed :func:`atomic_write` left behind."""
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in os.listdir(folder):
        if name.startswith('.') and TMP_TAG in name:
            path = osp.join(folder, name)
            if osp.isfile(path):
                os.remove(path)
                removed.append(path)
    return removed


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic :meth:`put`/:meth:`put_text`."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), str(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` only note the path."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.paths: List[str] = []

    def remove(self, path) -> None:
        self.paths.append(path)

    def rmtree(self, path) -> None:
        self.paths.append(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are complete or absent.

    Takes every argument of mmengine's ``CheckpointHook``. Differences:

    * checkpoints (periodic, last and best) are written with
      :func:`atomic_write` when they go to a local folder;
    * ``last_checkpoint`` is replaced atomically, after the checkpoint it
      names is complete;
    * checkpoints beyond ``max_keep_ckpts`` are deleted after the new one is
      saved, never before, so a kill at any moment leaves a complete one;
    * the previous best checkpoint (``save_best``) is deleted only after the
      new best and the checkpoint recording it are complete (mmengine deletes
      it first), so a kill during a best save leaves the previous best;
    * temporary files of a run killed while saving are deleted before
      training starts.
    """

    def __init__(self, *args, backend_args: Optional[dict] = None, **kwargs):
        out_dir = kwargs.get('out_dir', args[4] if len(args) > 4 else None)
        if backend_args is None and (out_dir is None or '://' not in str(out_dir)):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for path in remove_stale_temporaries(self.out_dir):
                runner.logger.warning(
                    f'removed {path}: a checkpoint write interrupted in an earlier run')

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best before it writes the new one;
        # record those removals and carry them out once the new best and the
        # periodic checkpoint that names it (re-saved by mmengine) are written
        backend = self.file_backend
        deferred = _DeferredRemoval(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        current = {str(p) for p in [getattr(self, 'best_ckpt_path', None),
                                    *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()]
                   if p}
        for path in deferred.paths:
            if str(path) in current:
                continue
            if backend.isfile(path):
                backend.remove(path)
            elif backend.isdir(path):
                backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        drop: List[int] = []
        if self.max_keep_ckpts > 0:
            kept = [s for s in self.keep_ckpt_ids if s != step] + [step]
            drop = kept[:-self.max_keep_ckpts]
            self.keep_ckpt_ids = deque(kept[-self.max_keep_ckpts:])
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        for old in drop:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)


# --------------------------------------------------------------------------
# loading and resuming
# --------------------------------------------------------------------------
def load_checkpoint_file(path: str, require: Sequence[str] = ('state_dict', )) -> Dict[str, Any]:
    """Load ``path`` with safe loading on, or raise :class:`CheckpointError`.

    The error names the file and says why: missing, truncated or corrupt,
    holding an object that safe loading refuses, or lacking the keys in
    ``require``.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path} is empty (0 bytes)')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many types here)
        text = str(e).strip().splitlines()[0] if str(e).strip() else ''
        refused = _unsafe_global(e)
        if refused is not None:
            raise CheckpointError(
                f'checkpoint {path} is refused: it holds code or objects other than '
                f'tensors and plain containers ({refused}), which safe loading '
                '(weights_only=True) refuses to unpickle. Use a checkpoint from a source '
                'you trust, or re-save its weights alone (the "state_dict" of tensors).'
            ) from e
        raise CheckpointError(
            f'checkpoint {path} cannot be read (truncated or corrupt?): '
            f'{type(e).__name__}: {text}') from e
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


def _candidates(work_dir: str) -> List[str]:
    """Checkpoints in ``work_dir``: ``last_checkpoint``'s first, then newest first."""
    found = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, 'rb') as f:
            raw = f.read()
        try:
            named = raw.decode('utf-8').strip()
        except UnicodeDecodeError:
            print_log(f'{pointer} is not UTF-8 text ({len(raw)} bytes; damaged?): ignoring '
                      'it and taking the newest epoch_N/iter_N checkpoint', logger='current',
                      level=logging.WARNING)
            named = ''
        if named and '\x00' not in named:
            found.append(named if osp.isabs(named) else osp.join(work_dir, osp.basename(named)))
    numbered = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            m = _CKPT_NAME.match(name)
            if m:
                numbered.append((int(m.group(2)), osp.join(work_dir, name)))
    for _, path in sorted(numbered, reverse=True):
        if all(osp.abspath(path) != osp.abspath(p) for p in found):
            found.append(path)
    return found


def find_resume_checkpoint(work_dir: str,
                           logger: Union[str, logging.Logger] = 'current') -> Optional[str]:
    """The newest checkpoint in ``work_dir`` that loads, or None.

    Tries the one ``last_checkpoint`` names, then ``epoch_N.pth`` /
    ``iter_N.pth`` from the highest N down; every file that does not load is
    skipped with a warning naming it and the reason.
    """
    for path in _candidates(work_dir):
        try:
            load_checkpoint_file(path, require=('state_dict', 'meta'))
        except CheckpointError as e:
            print_log(f'cannot resume from {path}, skipping it: {e}', logger=logger,
                      level=logging.WARNING)
            continue
        return path
    return None


def checkpoint_mismatch(model: torch.nn.Module, ckpt: Dict[str, Any]
                        ) -> Tuple[List[str], List[str], List[str]]:
    """``(missing, unexpected, wrong_shape)`` of the checkpoint's weights
    against ``model``'s (a ``module.`` prefix of DDP is ignored)."""
    module = getattr(model, 'module', model)
    state = ckpt.get('state_dict', ckpt)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f'{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}' for k, v in own.items()
             if k in state and hasattr(state[k], 'shape') and tuple(state[k].shape) != tuple(v.shape)]
    return missing, unexpected, wrong


def _mismatch_text(missing: List[str], unexpected: List[str], wrong: List[str]) -> str:
    parts = []
    if wrong:
        parts.append(f'{len(wrong)} shape mismatches, e.g. {wrong[:3]}')
    if missing:
        parts.append(f'{len(missing)} model weights missing, e.g. {missing[:3]}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected weights, e.g. {unexpected[:3]}')
    return '; '.join(parts)


def check_checkpoint_matches_model(model: torch.nn.Module, ckpt: Dict[str, Any],
                                   path: str, strict: bool = True,
                                   logger: Union[str, logging.Logger] = 'current') -> None:
    """Refuse a checkpoint whose weights do not fit ``model``.

    mmengine loads weights with ``strict=False`` when resuming, testing and
    for ``load_from``, so a checkpoint of another architecture only logs
    warnings and the run goes on with random weights. ``strict`` (resume,
    test) refuses any mismatch, naming the first keys. Not ``strict``
    (``load_from``, where fine-tuning with another head is common): refused
    when fewer than half of the model's weights would load (another
    architecture), else a warning counting the weights that keep their
    initial values.
    """
    module = getattr(model, 'module', model)
    missing, unexpected, wrong = checkpoint_mismatch(model, ckpt)
    if not (missing or unexpected or wrong):
        return
    total = len(module.state_dict())
    loaded = total - len(missing) - len(wrong)
    text = _mismatch_text(missing, unexpected, wrong)
    if strict or loaded * 2 < total:
        raise CheckpointError(
            f'checkpoint {path} does not match the model {type(module).__name__} of the '
            f'config (another architecture?): only {loaded} of its {total} weights would '
            f'load; ' + text)
    print_log(f'load_from {path}: {total - loaded} of the {total} weights of '
              f'{type(module).__name__} are NOT loaded and keep their initial values; '
              + text, logger=logger, level=logging.WARNING)


def check_checkpoint_finite(ckpt: Dict[str, Any], path: str) -> None:
    """Refuse a checkpoint whose weights hold NaN or infinity (a diverged
    run): evaluating it scores 0 without a word, resuming it trains on NaN."""
    state = ckpt.get('state_dict', ckpt)
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor)
           and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f'checkpoint {path} holds NaN or infinite values in {len(bad)} weight tensor(s), '
            f'e.g. {bad[:3]}: the run that saved it diverged; take an earlier checkpoint')


#: what a checkpoint needs besides its weights to resume training exactly
RESUME_KEYS = ('meta', 'optimizer', 'param_schedulers')


def missing_resume_state(ckpt: Dict[str, Any], need_schedulers: bool = True) -> List[str]:
    """The training-state entries (optimizer, schedulers, counters) that a
    checkpoint lacks: a ``best_*.pth`` or a ``save_optimizer=False``
    checkpoint holds weights only."""
    keys = [k for k in RESUME_KEYS if need_schedulers or k != 'param_schedulers']
    return [k for k in keys if k not in ckpt]
