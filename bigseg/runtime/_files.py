"""Outputs written whole or not at all.

Each is written under a hidden name beside its path and moved onto the path (``os.replace``)
once written, so a process killed or failing mid-write never leaves a file cut short or a store
half-made that a later command (``bigseg report``, ``info``, a resumed run) would read as
finished; an earlier output at the path stays as it was until then. The default temporary name
keeps the path's suffix (pandas, matplotlib and xarray pick the format or compression from it);
a zarr store's writer names its own (:func:`bigseg.io._omezarr.writing`: found again, and
removed, by the next write of that store).

What is moved into place is first flushed to the disk (``fsync`` of every file and folder of it,
then of the folder it is moved into), so that a power cut or a node that crashes (its page cache
lost, unlike a killed process's) cannot leave an output that looks complete but holds blocks
that never reached the disk; a resumable write's block is flushed before it is marked done
(:func:`bigseg.runtime._manifest.store_resumable`). ``BIGSEG_FSYNC=0`` in the environment turns
that off (each process reads it: set it for the workers too).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputNotWritableError
from ._signals import stops_held

#: the metadata files that make a folder a zarr store (v3, v2 array, v2 group)
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")


def is_zarr_store(path: Any) -> bool:
    """Whether ``path`` is a zarr store (v3 ``zarr.json``, or v2 ``.zarray`` / ``.zgroup``)."""
    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in ZARR_METADATA)


#: what a disk or quota that is full says when written to
FULL = (errno.ENOSPC, errno.EDQUOT)

#: files a file browser leaves in any folder (macOS Finder, Windows Explorer): no one's data
SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def folded(name: str) -> str:
    """``name`` as the file systems of macOS and Windows compare names: case-insensitive, and (macOS)
    whatever the Unicode normalisation (``ä`` one character or ``a`` and a combining mark), so
    that two names folded alike are one file there."""
    import unicodedata

    return unicodedata.normalize("NFC", name).casefold()


def remove(path: Path) -> None:
    """Delete a folder or a file, whichever ``path`` is (no error if it is gone); a link (to a
    folder too) is removed itself, never what it leads to (``shutil.rmtree`` refuses a link, and
    ``ignore_errors`` left it in place without a word)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def durable() -> bool:
    """Whether outputs are flushed to the disk before they count as written (``BIGSEG_FSYNC``,
    default on; ``0`` off)."""
    return os.environ.get("BIGSEG_FSYNC", "1") != "0"


def flush(path: str | os.PathLike, *, tree: bool = False) -> None:
    """``path`` (a file, or a folder's entries) on the disk: ``fsync``; with ``tree``, every file
    and folder below it first. Nothing where :func:`durable` is off, nothing for a path that is gone;
    a folder that cannot be opened for it (Windows) is passed over."""
    if not durable():
        return
    path = Path(path)
    if tree and path.is_dir() and not path.is_symlink():
        for top, dirs, files in os.walk(path, topdown=False):
            for name in files:
                _fsync(Path(top) / name)
            for name in dirs:
                _fsync(Path(top) / name)
    _fsync(path)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, PermissionError):  # gone, or a folder on Windows
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # a folder some file systems do not sync (EINVAL): its files are
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def move_into_place(tmp: Path, path: Path) -> None:
    """A finished write ``tmp`` (file or folder) onto ``path``, replacing what is there (a folder
    is moved aside first, to ``tmp``'s name + ``.old``, then removed). Where what is there cannot
    be replaced (Windows: a file another program has open, such as a table in Excel)
    :class:`~bigseg.errors.OutputNotWritableError` says so (and the earlier output
    stays). ``tmp`` is flushed to the disk first, and the folder holding ``path`` after
    (:func:`flush`)."""
    flush(tmp, tree=True)  # whole on the disk before it takes the name of a finished output
    try:
        if path.is_dir():
            old = tmp.with_name(tmp.name + ".old")
            try:
                # a stop (Ctrl-C, SIGTERM) between the two moves left nothing at path (the new folder
                # was removed as unfinished, the earlier one only under its hidden name): held till both are done
                with stops_held():
                    os.replace(path, old)
                    try:
                        os.replace(tmp, path)
                    except OSError:
                        os.replace(old, path)
                        raise
            finally:
                remove(old)
        else:
            os.replace(tmp, path)
        flush(path.parent)  # the new name itself
    except PermissionError as exc:
        if not path.exists():  # (a folder that may not be written: said where the write starts)
            raise
        raise OutputNotWritableError(
            f"Expected {str(path)!r} to be replaceable by the output just written. Got {exc.strerror or exc}: "
            "another program may have it open (on Windows such a file cannot be replaced: close the table in "
            "Excel, the image or page in its viewer); close it and run again.") from exc


def no_room(exc: OSError, what: str, *, kept: str = " Nothing that looks finished was left.") -> OutputNotWritableError:
    """:class:`~bigseg.errors.OutputNotWritableError` saying that ``what`` (the output, named as
    its user knows it: not the hidden file or chunk being written) could not be written for want
    of room, ``exc`` a disk- or quota-full error (:data:`FULL`), and what of it was ``kept``."""
    return OutputNotWritableError(
        f"Expected room to write {what}. Got: {exc.strerror or os.strerror(exc.errno)} (disk or quota full)."
        f"{kept} Free space, or write it elsewhere.")


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, tmp: Path | None = None, what: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` (or ``tmp``) to write to: moved onto ``path`` when the
    block ends without an error, removed otherwise (a failing removal, e.g. a disk gone
    read-only, does not hide the error that stopped the write). A disk or quota found full is
    said of ``path`` (or as ``what``: :func:`no_room`), not of the hidden name in the writer's
    error, gone by then."""
    path = Path(path)
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield tmp
        move_into_place(tmp, path)
    except OSError as exc:
        if exc.errno not in FULL:
            raise
        earlier = " (an earlier one stays as it was)" if path.exists() else ""
        raise no_room(exc, what or repr(str(path)), kept=f" Nothing that looks finished was left{earlier}.") from None
    finally:
        with contextlib.suppress(OSError):
            remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """``path`` holding ``text`` (UTF-8), written whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """``path`` holding ``data``, written whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def json_text(obj: Any, **dumps: Any) -> str:
    """``obj`` as strict JSON for a script (``jq``, ``json.loads`` of other languages): NaN and
    infinities (a statistic of an all-NaN image, the IoU of a phase absent from both) as null,
    which Python's ``json.dumps`` would write as the invalid ``NaN`` / ``Infinity``."""
    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(obj), allow_nan=False, **dumps)
