"""A prediction computed once into a hidden scratch store and read back lazily from there.

``labels`` and, when present, ``probabilities`` and ``uncertainty`` of a ``predict`` Dataset
are stored as ONE float16 array, the channels side by side (probabilities, uncertainty, labels;
whole numbers up to 255 are exact in float16), so that one task per block runs the model once
for all of them. Used where the prediction is read more than once (the time window reads each
scan's blocks for every window holding it; ``write_prediction`` moves each variable into its
own OME-Zarr image). With a ``key`` the store is resumable: named by the key, written block by
block with a manifest (:mod:`bigseg.runtime._manifest`) and kept when the write is interrupted.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from ..runtime._budget import format_bytes
from ..runtime._files import FULL, no_room
from ..runtime._manifest import key_digest, resumable_array, store_resumable

__all__ = ["stored_once"]

_ORDER = ("probabilities", "uncertainty", "labels")


def keyed_scratch(folder: str | Path, prefix: str, key: str) -> Path:
    """The scratch store :func:`stored_once` keeps for ``key`` in ``folder`` (there when a write
    of the same inputs was interrupted)."""
    return Path(folder).absolute() / f".{prefix}-r{key_digest(key)}.zarr"


@contextmanager
def stored_once(ds: xr.Dataset, folder: str | Path, *, prefix: str, key: str | None = None, desc: str = "predicting",
                progress: bool = True) -> Iterator[xr.Dataset]:
    """``ds`` with its ``labels`` (and ``probabilities``, ``uncertainty`` when present) replaced
    by lazy reads of a scratch store ``folder/.{prefix}-*.zarr`` they were computed into (float16:
    the probabilities and uncertainty rounded as ``write_prediction`` stores them, the labels
    exact). The scratch is removed on leaving the block. With ``key`` (a string naming what
    ``ds`` is made from) it is named by the key and kept when the write fails or the process is
    killed: the same key later computes only the blocks not yet on disk, and scratches of this
    ``prefix`` made from other keys are removed; without ``key`` it is removed on error too."""
    import zarr

    folder = Path(folder).absolute()  # (workers in another working directory)
    ax = 1 if "t" in ds["labels"].dims else 0  # the channel axis: after t for a series
    parts, layout = [], []
    for var in _ORDER:
        if var not in ds:
            continue
        arr = ds[var].data if isinstance(ds[var].data, da.Array) else da.from_array(ds[var].data)
        arr = arr.astype(np.float16) if var == "probabilities" else da.expand_dims(arr.astype(np.float16), ax)
        parts.append(arr)
        layout.append((var, arr.shape[ax]))
    stack = da.concatenate(parts, axis=ax)
    stack = stack.rechunk(tuple(stack.shape[ax] if i == ax else int(max(c)) for i, c in enumerate(stack.chunks)))
    if key is None:
        scratch = folder / f".{prefix}-{uuid.uuid4().hex[:8]}.zarr"
    else:
        scratch = keyed_scratch(folder, prefix, key)
        for stale in folder.glob(f".{prefix}-*.zarr"):  # left by interrupted runs of other inputs
            if stale != scratch:
                shutil.rmtree(stale, ignore_errors=True)
    ok = False
    try:
        group = zarr.open_group(str(scratch), mode="a" if (scratch / "zarr.json").exists() else "w", zarr_format=3)
        target = resumable_array(group, "stack", shape=stack.shape, chunks=stack.chunksize, dtype=np.float16,
                                 manifest=scratch / ".blocks-done")
        try:
            store_resumable(stack, target, scratch / ".blocks-done", desc=desc, progress=progress)
        except OSError as exc:  # said of the output, not of a hidden chunk deep in a dask traceback
            if exc.errno not in FULL:
                raise
            kept = (" The blocks already written are kept: the same command resumes once there is room."
                    if key is not None else " Nothing that looks finished was left.")
            raise no_room(exc, f"the predictions in {str(folder)!r} ({desc}: a float16 scratch of "
                          f"{format_bytes(stack.nbytes)})", kept=kept) from None
        stored = da.from_zarr(zarr.open_array(str(scratch / "stack"), mode="r"))
        out = ds.copy()
        start = 0
        for var, n in layout:
            sl = (slice(None),) * ax + (slice(start, start + n),)
            piece = stored[sl]
            if var == "labels":
                piece = piece.astype(np.uint8)
            if var != "probabilities":
                piece = piece.squeeze(axis=ax)
            out[var] = ds[var].copy(data=piece)
            start += n
        yield out
        ok = True
    finally:
        if ok or key is None:
            shutil.rmtree(scratch, ignore_errors=True)
