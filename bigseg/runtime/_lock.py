"""One writer at a time: an advisory lock on an output, held for the whole write.

Two processes writing the same output at once (a SLURM job resubmitted while the first is still
running, ``bigseg watch`` and a hand-started ``bigseg run`` into the same folder) would each
resume from the other's half-written blocks, remove each other's hidden write folders and race
at the final rename. The second one is refused instead, before it does any work, with who holds
the output.

The lock is ``flock`` on a hidden file beside the output (inside a run folder), so a killed
process holds nothing and a crash never leaves an output locked; across the nodes of a cluster
it needs a file system with ``flock`` (NFSv4, Lustre mounted with ``flock``); on one that refuses
``flock`` (e.g. Lustre mounted without it: ENOSYS) the write goes ahead unlocked, with a warning. Who holds it
(process, host, command, start time) is written into the file, and the file is removed on
release while still locked; a process that locked a file just removed sees that it is no longer
the one at the path and tries again (so two writers never both hold an output). Not the
``filelock`` package: it leaves its lock files behind and keeps no holder, and what is needed
here is a few lines of ``fcntl``. Within one thread the same output may be held again (a
command that holds its output for the whole run, then writes it through
:func:`bigseg.io.save_volume`); another thread of the process is refused as another process
is (a GUI's or a notebook's second worker thread: the lock is the process's, and the first
thread's release would free it while the second still writes). Where ``fcntl`` is missing
(Windows) nothing is locked between processes.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import OutputInUseError, OutputNotWritableError
from ._signals import stops_held

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["describe", "held", "holder", "lock_path", "recorded"]

_HELD: Counter = Counter()  # lock files this process holds -> depth
_OWNER: dict[Path, int] = {}  # lock files this process holds -> the thread that holds them
_UNLOCKABLE = -1  # what _acquire returns where the file system refuses flock
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
_GUARD = threading.Lock()
#: bytes the hidden names beside an output add to its name at most: a file's partial write
#: ``.NAME.PID-HEX.partial`` (a 7-digit PID) and its suffix again, else a time window's scratch
#: ``.temporal.NAME-rDIGEST.zarr`` (a resumable store's ``.NAME.partial-rDIGEST``, the lock
#: ``.NAME.lock`` are shorter): a longer name passes the file system's limit there
HIDDEN_NAME_EXTRA = (26, 29)


def lock_path(target: str | os.PathLike, *, inside: bool = False) -> Path:
    """The lock file of ``target``: ``target/.bigseg.lock`` for a folder the writer owns
    (``inside``), else the hidden sibling ``.NAME.lock`` (for a store renamed into place)."""
    target = Path(target)
    return target / ".bigseg.lock" if inside else target.parent / f".{target.name}.lock"


def recorded(target: str | os.PathLike, *, inside: bool = False) -> dict:
    """What the lock file of ``target`` says of its (last) holder; ``{}`` when there is none."""
    return _who(lock_path(target, inside=inside))


def _who(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe(who: dict) -> str:
    """"process PID on HOST (since TIME: COMMAND)" for what :func:`holder` returns."""
    if not who:
        return "another process"
    return f"process {who.get('pid')} on {who.get('host')} (since {who.get('since')}: {who.get('command')})"


def holder(target: str | os.PathLike, *, inside: bool = False) -> dict | None:
    """Who writes ``target`` now (``pid``, ``host``, ``since``, ``command``; ``{}`` when it does not
    say), or ``None`` when nobody holds it. The lock is taken for an instant to test it (a writer
    starting then waits that instant, see :func:`_acquire`), never kept."""
    path = lock_path(target, inside=inside)
    if fcntl is None or not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _who(path)
    except OSError as exc:
        if exc.errno in _NO_FLOCK:
            return None  # nothing can be locked there, so nobody holds it
        raise
    finally:
        os.close(fd)  # (a lock taken here is released with it)
    return None


def _acquire(path: Path, tries: int = 10) -> int | None:
    """An open descriptor of ``path`` locked by this process, ``None`` when another holds it
    (asked ``tries`` times over ~0.2 s: :func:`holder` takes the lock for an instant to test it),
    or ``_UNLOCKABLE`` where the file system refuses ``flock``."""
    while True:
        # O_NOFOLLOW: a link planted at the lock's name (a shared folder) would have this process
        # truncate and write whatever file it points to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            tries -= 1
            if tries <= 0:
                return None
            time.sleep(0.02)
            continue
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_FLOCK:
                raise
            try:
                path.unlink()
            except OSError:
                pass
            return _UNLOCKABLE
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it on release before we locked it: the path has a new file


def make_folder(folder: str | os.PathLike, *, target: Any, argument: str, hint: str = "") -> None:
    """Create ``folder`` (and its parents) for the output ``target`` and check that a file can be
    written in it; where that cannot be done (a file in the way, a read-only place, no
    permission) raise :class:`OutputNotWritableError`
    naming ``argument``, before any work."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # an existing folder on a read-only mount: said now, not mid-write
    except OSError as exc:
        _refuse_unwritable(exc, target, argument, hint)
        raise


def _refuse_unwritable(exc: OSError, target: Any, argument: str, hint: str) -> None:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):  # mkdir: a file where a folder must go
        here = Path(target)
        blocker = next((q for q in (here, *here.parents) if q.exists() and not q.is_dir()), here)
        raise OutputNotWritableError(
            f"Expected `{argument}` in a folder. Got {str(target)!r}, but {str(blocker)!r} is a file, not a "
            f"folder.") from None
    if exc.errno == errno.ELOOP:  # (_acquire's O_NOFOLLOW)
        raise OutputNotWritableError(
            f"Expected the lock file of `{argument}` {str(target)!r} to be a file bigseg makes or none. Got "
            f"{exc.filename!r}, a symbolic link (left by someone else?): not followed; remove it and run again.") from None
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise OutputNotWritableError(
            f"Expected `{argument}` somewhere this process may write. Got {str(target)!r}, where it may not "
            f"({exc.strerror}){': ' + hint if hint else ''}.") from None


def _check_name_room(target: Path, argument: str) -> None:
    """Refuse, before any work, an output whose name leaves no room for the hidden names written
    beside it (:data:`HIDDEN_NAME_EXTRA`; the write ended in "File name too long", naming one)."""
    try:
        most = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (no pathconf: Windows; a limit not reported)
        most = 255
    name = len(os.fsencode(target.name))
    room = most - max(HIDDEN_NAME_EXTRA[0] + len(os.fsencode(target.suffix)), HIDDEN_NAME_EXTRA[1])
    if name > room:
        raise OutputNotWritableError(
            f"Expected `{argument}` with a name of at most {room} bytes here (bigseg writes it first under a "
            f"hidden name beside it, longer by up to {most - room}, and the file system allows {most}). Got "
            f"{str(target)!r}, whose name is {name} bytes: shorten it.")


@contextmanager
def held(target: str | os.PathLike, *, argument: str, inside: bool = False, hint: str = "",
         resumes: bool = False) -> Iterator[Path]:
    """Hold ``target`` for this thread until the block ends (held again by the same thread: nested);
    raise :class:`OutputInUseError` naming ``argument`` and the holder when another process, or
    another thread of this one, holds it (no waiting; ``resumes``:
    the refusal says that running again takes up what that one finished), and
    :class:`OutputNotWritableError` (with ``hint``) where this process may not write there
    (permissions, a read-only mount such as a beamline's raw-data store)."""
    path = lock_path(target, inside=inside)
    make_folder(path.parent, target=target, argument=argument, hint=hint)
    if not inside:
        _check_name_room(Path(target), argument)
    path = path.parent.resolve() / path.name  # one name per lock file however the folder is reached

    def refused(who: str) -> OutputInUseError:
        return OutputInUseError(
            f"Expected `{argument}` not to be written by another bigseg run at the same time. Got {str(target)!r}, "
            f"which {who} is writing; wait for it to end (or stop it) and run again"
            f"{': the run resumes what it finished' if resumes else ''}.")

    fd = None  # stays None where nothing is locked: held again, no fcntl (Windows)
    counted = False
    try:
        # a stop (Ctrl-C, SIGTERM) between taking the lock and noting it here left it taken for the
        # rest of the process (a notebook's next run of that output refused, or let in unlocked):
        # held until both are done, then raised (and the finally below releases what was taken)
        with stops_held():
            with _GUARD:
                other = _OWNER.setdefault(path, threading.get_ident()) != threading.get_ident()
                again = not other and _HELD[path] > 0  # this thread holds it already
                if not other:  # (an entry only while held: a watch's or a script's hundreds of runs leave none)
                    _HELD[path] += 1
                    counted = True
            if other:  # the lock is the process's: another thread's release would free it while this one writes
                who = _who(path)  # that thread may itself still be waiting on another process's lock: name that one
                elsewhere = who.get("pid") not in (None, os.getpid()) or who.get("host") not in (None,
                                                                                               socket.gethostname())
                raise refused(describe(who) if elsewhere else f"another thread of this process ({os.getpid()})")
            if not again and fcntl is not None:
                try:
                    fd = _acquire(path)
                except OSError as exc:
                    _refuse_unwritable(exc, target, argument, hint)
                    raise
        if fd is None and not again and fcntl is not None:
            raise refused(describe(_who(path)))
        if fd == _UNLOCKABLE:
            fd = None
            warnings.warn(f"The file system of {str(target)!r} does not support flock (e.g. Lustre mounted "
                          "without the flock option): it is written without a lock, so a second bigseg run "
                          "writing it at the same time would not be refused.", UserWarning, stacklevel=3)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                     "command": " ".join(sys.argv)[:300]}).encode())
        yield path
    finally:
        with stops_held():  # released whole, even when a stop lands here
            if counted:
                with _GUARD:
                    _HELD[path] -= 1
                    if _HELD[path] <= 0:
                        del _HELD[path], _OWNER[path]
            if fd is not None:
                try:
                    path.unlink()  # while still locked: see the module's docstring
                except OSError:
                    pass
                os.close(fd)  # releases the lock
