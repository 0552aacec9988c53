"""Atomic saving: checkpoints that survive being killed.

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

The tests kill runs in the middle of these writes from outside the package
(tests/fault_injection.py); nothing here has a kill switch.
"""
from __future__ import annotations

import os
import os.path as osp
from collections import deque
from typing import Any, List, Optional, Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

ATOMIC_BACKEND = 'mmcf_atomic_local'
TMP_TAG = '.mmcf-tmp-'


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
    removed and ``path`` keeps its old content; an ``OSError`` (a full
    disk, a folder without write permission) is raised again naming
    ``path``.
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
    except BaseException as e:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and path not in str(e):
            kept = 'is unchanged' if osp.exists(path) else 'was not written'
            raise type(e)(e.errno, f'{e.strerror} while saving {path} (the file there {kept})',
                          path) from e
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

