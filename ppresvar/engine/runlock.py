"""One writer per folder: a run directory (training) or an export folder.

A second ``tools/train.py --resume RUN`` started while the first one still
trains would append to the same ``metrics.jsonl`` and overwrite the same
checkpoints. So the process that writes a folder holds an exclusive lock on
``<folder>/.lock`` (``fcntl.flock``; ``msvcrt.locking`` on Windows) for as
long as it writes. The operating system drops the lock when the process
ends, however it ends (SIGKILL included), so a killed run never leaves a
stuck lock: the file stays, the lock does not, and the next process takes it
over. The file holds the holder's pid, host, start time and command, for the
message that refuses the second process.
"""
import json
import os
import socket
import sys
import time

from ..errors import UserError

__all__ = ["FolderInUseError", "FolderLock", "LOCK_NAME", "holder_of"]

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


class FolderInUseError(UserError):
    pass


def _try_lock(fd):
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def holder_of(folder):
    """What ``<folder>/.lock`` says about its (last) holder, or ``{}``."""
    try:
        with open(os.path.join(folder, LOCK_NAME)) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}


class FolderLock(object):
    """``with FolderLock(folder, "run directory", "--resume"):`` or
    ``acquire()`` / ``release()``. ``acquire`` raises
    :class:`FolderInUseError` when another live process holds the folder."""

    def __init__(self, folder, what="folder", advice="wait for it to end or stop it"):
        self.folder, self.what, self.advice = folder, what, advice
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd = None

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                raise FolderInUseError(self._refusal())
            # The holder before us may have removed the file between our open
            # and our lock: then we locked a deleted file; take the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self.fd = fd
                self._write_holder()
                return self
            os.close(fd)
        raise FolderInUseError("cannot lock %s: the lock file keeps changing; is another process starting "
                               "and stopping on %s?" % (self.path, self.folder))

    def _write_holder(self):
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        blob = json.dumps(info).encode()
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, blob)

    def _refusal(self):
        h = holder_of(self.folder)
        who = "another process"
        if h.get("pid"):
            who = "process %s on %s (started %s: %s)" % (h["pid"], h.get("host", "?"), h.get("started", "?"),
                                                        h.get("command", "?"))
        return "%s %s is in use by %s; %s, or choose another %s" % (self.what, self.folder, who, self.advice,
                                                                   self.what)

    def release(self):
        if self.fd is None:
            return
        try:
            os.remove(self.path)  # still holding the lock: nobody can hold this inode now
        except OSError:
            pass
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
