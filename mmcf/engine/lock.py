"""One training per work dir: a lock file naming the run that holds it.

Two trainings into one work dir overwrite each other's checkpoints, config
and ``last_checkpoint``, and each one's start-up clean-up deletes the other's
in-progress temporary files. :class:`WorkDirLock` lets only one in.

The lock is ``<work_dir>/.mmcf-train.lock``, held with ``fcntl.flock`` for
the life of the training process and holding the holder's pid, host name
and start time. The operating system releases a ``flock`` when its process
dies, however it dies (SIGKILL, out-of-memory), so a lock file left by a
killed run is not held: the next run takes it over and says whose it was.
Where ``flock`` is unavailable (Windows) the file is created exclusively
and a lock whose pid no longer runs on this host counts as stale.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import os.path as osp
import socket
import time
from typing import Optional, Union

from mmengine.logging import print_log

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = '.mmcf-train.lock'


class WorkDirLockedError(RuntimeError):
    """The work dir is in use by another live training."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return False
    return True


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}")


class WorkDirLock:
    """Hold ``<work_dir>/.mmcf-train.lock`` while training; see the module doc.

    Use as a context manager or with :meth:`acquire` / :meth:`release`.

    Raises:
        WorkDirLockedError: from :meth:`acquire`, when a live run holds the
            lock; the message names its pid, host and start time.
    """

    def __init__(self, work_dir: str,
                 logger: Union[str, logging.Logger] = 'current') -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self.logger = logger
        self._fd: Optional[int] = None

    def _read_holder(self) -> dict:
        try:
            with open(self.path, 'rb') as f:
                return json.loads(f.read().decode('utf-8') or '{}')
        except (OSError, ValueError):
            return {}

    def _refuse(self, holder: dict) -> None:
        raise WorkDirLockedError(
            f'work dir {self.work_dir} is in use by another training ({_describe(holder)}; '
            f'lock file {self.path}): two runs in one work dir overwrite each other\'s '
            'checkpoints. Wait for it to finish, stop it, or pass another --work-dir.')

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(self.work_dir, exist_ok=True)
        me = dict(pid=os.getpid(), host=socket.gethostname(),
                  started=time.strftime('%Y-%m-%d %H:%M:%S'))
        if fcntl is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    self._refuse(self._read_holder())
                raise
        else:
            fd = self._acquire_exclusive(me)
        previous = self._read_holder()
        if previous.get('pid') is not None and previous.get('pid') != me['pid']:
            print_log(f'work dir {self.work_dir}: taking over the lock of a run that is no '
                      f'longer running ({_describe(previous)})', logger=self.logger,
                      level=logging.WARNING)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode('utf-8'))
        os.fsync(fd)
        self._fd = fd
        return self

    def _acquire_exclusive(self, me: dict) -> int:
        """O_EXCL creation with a pid check, for systems without flock."""
        for _ in range(2):
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._read_holder()
                if holder.get('host') == me['host'] and not _pid_alive(int(holder.get('pid', -1))):
                    os.remove(self.path)  # stale: its process is gone
                    continue
                self._refuse(holder)
        self._refuse(self._read_holder())

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fcntl is not None:
            # emptied, not removed: a run that opened the file meanwhile must
            # find the same file (inode) free, not lock a new one beside it
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:
            os.close(fd)
            try:
                os.remove(self.path)
            except OSError:
                pass

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
