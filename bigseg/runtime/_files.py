"""Files written whole or not at all.

Each is written under a hidden name beside its path and moved onto the path in one step
(``os.replace``) once written, so a process killed or failing mid-write never leaves a file cut
short that a later command (``bigseg report``, ``info``, a resumed run) would read as finished;
an earlier file at the path stays as it was until then. The temporary name keeps the path's
suffix (pandas, matplotlib and xarray pick the format or compression from it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to: moved onto ``path`` when the block ends
    without an error, removed when it raises."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """``path`` holding ``text`` (UTF-8), written whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
