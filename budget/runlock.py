"""One controller per run folder: an exclusive lock held by the process that runs it.

Two controllers on one folder would both reserve, push and train from one ledger; SQLite keeps each
write whole but not the two runs' plans apart. So :meth:`budget.controller.Controller.open` takes this
lock first and :meth:`close` lets it go. It is ``flock(2)`` on ``<run folder>/controller.lock``: the
kernel releases it when the process ends, however it ends, so a ``kill -9`` never leaves a stale lock
to clean up by hand. The file also says who holds it (process id, host, since when, the command), for
the one line a second controller prints. Readers (``status``, ``report``, ``serve``, ``approve``) never
take it: SQLite lets them read and decide while a run is going.

``flock`` is written by hand because the standard library has it (``fcntl``) and a package would add
nothing but a dependency; it is advisory, which is all a lock between our own processes needs.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from budget.exceptions import UsageError

__all__ = ["LOCK_FILE", "RunFolderBusyError", "RunLock"]

LOCK_FILE = "controller.lock"


class RunFolderBusyError(UsageError):
    """Another process runs a controller on this run folder."""


class RunLock:
    """The exclusive lock of one run folder; :meth:`acquire` raises :class:`RunFolderBusyError` when taken."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (the run folder must exist) and write who holds it; a no-op when already held.

        Raises
        ------
        RunFolderBusyError
            With one line naming the process that holds the folder and since when.
        """
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise RunFolderBusyError(f"Run folder '{self.path.parent}' is in use by {holder}; wait for it to end "
                                     "(or stop it), or use another --run-dir.") from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                                 "command": _command()}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (the file stays: removing it would race with a process about to lock it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _command() -> str:
    """This process's command line as it was typed (``python -m budget.controller ...``), shortened."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in {"controller.py", "__main__.py"}:
        argv[0] = "python -m budget.controller"
    return " ".join(argv)[:300]


def _describe(raw: bytes) -> str:
    """'process 123 on host (since ..., `command`)', from what the holder wrote; 'another process' if unreadable."""
    try:
        info = json.loads(raw.decode())
        return (f"process {int(info['pid'])} on {info['host']} since {info['since']} "
                f"(`{str(info.get('command', ''))[:120]}`)")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "another process (it has not written its name yet)"
