"""Block-level resume of a write: a manifest of the blocks already on disk.

A resumable write stores a dask array into a zarr array one block per task; each task writes
its block (one zarr chunk: the array's chunks are the blocks) and then drops an empty marker
file named by the block's index into the manifest folder. A write that is interrupted (an
error, a killed process, a cluster job that ran out of time) leaves the blocks it finished
marked; storing the same array again computes only the unmarked ones (and, with dask's graph
culling, only what they depend on). A block that was being written when the process died
has no marker and is written again, so a marker always means a whole block on disk: the block's
chunk files are flushed to the disk (``fsync``) before its marker is made, so that holds after a
power cut or a crashed node too (``BIGSEG_FSYNC=0``: not flushed).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..ops._blocks import per_block
from ._files import ZARR_METADATA, durable, flush, is_zarr_store
from ._progress import compute, showing

__all__ = ["store_resumable", "stored_named", "blocks_done", "resumable_array", "key_digest", "path_stamp"]


def key_digest(key: str) -> str:
    """A short stable name (12 hex digits of SHA-256) for what a resumable write is made from."""
    return hashlib.sha256(str(key).encode()).hexdigest()[:12]


def path_stamp(path: Any) -> Any:
    """A file or folder as it stands, for a resume key: its resolved path and the time it (for a
    zarr store, its ``zarr.json``, which a write of the store makes anew) was last written, and
    a file's size; a folder of files (TIFF slices): their number, total size and latest time (a
    slice rewritten in place changes no folder time); a zarr store also those of its files but
    its ``labels/`` (chunks written in place change no ``zarr.json``); ``None`` for no path; a glob: the list of
    its matches' stamps."""
    import glob

    if path is None:
        return None
    p = Path(path)
    if not p.exists() and glob.escape(str(p)) != str(p):
        return [path_stamp(m) for m in sorted(glob.glob(str(p)))]
    if p.is_dir():  # a zarr store (v3, or another writer's v2: OME-Zarr v0.4) is stamped by its metadata too
        store = is_zarr_store(p)
        meta = [os.stat(next(p / f for f in ZARR_METADATA if (p / f).exists())).st_mtime_ns] if store else []
        files = _file_stats(p, below=store)
        return [str(p.resolve()), *meta, len(files), sum(f.st_size for f in files),
                max((f.st_mtime_ns for f in files), default=None)]
    if not p.exists():
        return [str(p.resolve()), None]
    st = os.stat(p)
    return [str(p.resolve()), st.st_mtime_ns, st.st_size]


def _file_stats(folder: Path, *, below: bool) -> list[os.stat_result]:
    """The stats of the files in ``folder`` and, ``below``, in its folders but its ``labels/`` and
    hidden ones (a zarr store's chunks, written in place with no new ``zarr.json``; not what
    `bigseg segment` writes into it, nor its partial writes); files gone meanwhile (a store being
    written) and dangling links skipped."""
    stats = []
    for d, dirs, names in os.walk(folder):
        dirs[:] = [n for n in dirs if below and not n.startswith(".") and not (n == "labels" and Path(d) == folder)]
        for name in names:
            try:
                stats.append(os.stat(os.path.join(d, name)))
            except FileNotFoundError:
                pass
    return stats


def _name(idx: tuple[int, ...]) -> str:
    return ".".join(str(int(i)) for i in idx)


def blocks_done(manifest: str | Path) -> set[str]:
    """The names (``"i.j.k"``) of the blocks marked as on disk in ``manifest``."""
    manifest = Path(manifest)
    return {p.name for p in manifest.iterdir()} if manifest.is_dir() else set()


def _with_config(arr: Any, config: Any) -> Any:
    """``arr.with_config(config)``: that method is zarr >= 3.1.6's; before it, the same construction."""
    if hasattr(arr, "with_config"):
        return arr.with_config(config)
    plain = arr._async_array
    return type(arr)(type(plain)(metadata=plain.metadata, store_path=plain.store_path, config=config))


def resumable_array(group: Any, name: str, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any,
                    manifest: str | Path, **kwargs: Any) -> Any:
    """``group[name]`` as an interrupted write left it when it has this shape, chunks and dtype
    (its manifest stays valid; opened with ``kwargs["config"]``, which zarr does not store); otherwise a
    new array (``kwargs`` to ``create_array``; fill 0) and the manifest cleared."""
    import shutil

    old = group.get(name)
    if old is not None and (tuple(old.shape), tuple(old.chunks), np.dtype(old.dtype)) == (
            tuple(shape), tuple(chunks), np.dtype(dtype)):
        return _with_config(old, kwargs["config"]) if "config" in kwargs else old
    shutil.rmtree(manifest, ignore_errors=True)
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, overwrite=True, **kwargs)


#: dask's own array plumbing and bigseg's naming of stored values: no stage of the pipeline
_PLUMBING = frozenset({"array", "asarray", "astype", "from-zarr", "original-from-zarr", "getitem", "overlap", "trim",
                       "rechunk-merge", "rechunk-split", "concatenate", "stack", "broadcast_to", "where", "full",
                       "zeros", "ones", "empty", "zeros_like", "ones_like", "empty_like", "full_like", "values_named",
                       "transpose", "reshape"})


def stage_label(arr: da.Array) -> str:
    """The stages that make ``arr`` (its graph's layers named by bigseg's tasks: ``median``,
    ``gaussian``, ``kmeans``, ``bigseg-argmax``, ...), in order, as the first word of a task key:
    ``median+gaussian``. dask fuses a stage's tasks into the task that stores its blocks, so the
    dashboard's task stream would otherwise show every stage as the store's one name."""
    from dask.utils import key_split

    names: list[str] = []
    for layer in arr.dask.layers:
        name = key_split(layer).lstrip("_")
        if name and name not in _PLUMBING and name not in names:
            names.append(name)
    # a task key's first word may hold any character but "-" (key_split cuts there; later words alphabetic only)
    return "+".join(n.replace("-", "_") for n in names)


def _store_block(block: np.ndarray, target: Any, region: tuple[slice, ...], marker: str) -> int:
    target[region] = block
    _flush_chunks(target, region)  # on the disk, not only in the page cache (a power cut, a crashed node)
    Path(marker).touch()  # only once the block is on disk
    return 1


def _flush_chunks(target: Any, region: tuple[slice, ...]) -> None:
    """The chunk files of the zarr array ``target`` (in a local store) that ``region`` covers, and
    every folder from theirs up to the store's root (a chunk key's folders, ``c/0/1`` in zarr v3,
    are made by the block's write: each one's name in the folder above must be on the disk too),
    flushed to the disk (:func:`bigseg.runtime._files.flush`); nothing for another store (in
    memory, object storage) or where ``BIGSEG_FSYNC=0``."""
    root = getattr(getattr(target.store_path, "store", None), "root", None)
    if root is None or not durable():
        return
    root = Path(root)
    base = root / target.store_path.path
    files = [base / target.metadata.encode_chunk_key(idx) for idx in itertools.product(
        *(range(r.start // c, -(-r.stop // c)) for r, c in zip(region, target.chunks)))]
    for f in files:
        flush(f)
    folders = {f.parent for f in files}
    folders |= {up for folder in folders for up in folder.parents if up == root or root in up.parents}
    for folder in sorted(folders, key=lambda p: -len(p.parts)):  # the deepest first, the root last
        flush(folder)


def _store_mapped(block: np.ndarray, target: Any, block_info: Any = None) -> np.ndarray:
    target[tuple(slice(*loc) for loc in block_info[0]["array-location"])] = block
    return np.zeros((1,) * block.ndim, np.uint8)


def stored_named(arrays: list[da.Array], targets: list[Any]) -> list[da.Array]:
    """Lazy stores of ``arrays`` into the zarr arrays ``targets`` (same shapes, chunks equal to
    the arrays' blocks) to compute together, as ``dask.array.store`` makes them (one graph: what
    the arrays share, e.g. a pyramid's levels of one prediction, computed once), but each array's
    tasks named by the stages that make it (:func:`stage_label`), not ``store-map``."""
    from dask.base import tokenize

    out = []
    for arr, target in zip(arrays, targets):
        stages = stage_label(arr)
        out.append(arr.map_blocks(_store_mapped, target, dtype=np.uint8, chunks=tuple((1,) * len(c) for c in arr.chunks),
                                  name=f"{stages + '-' if stages else ''}store-"
                                       f"{tokenize(arr.name, str(getattr(target, 'store_path', id(target))))}"))
    return out


def store_resumable(arr: da.Array, target: Any, manifest: str | Path, *, desc: str = "writing",
                    progress: bool = True) -> tuple[int, int]:
    """Store ``arr`` into the zarr array ``target`` (same shape; chunks equal to ``arr``'s
    blocks) block by block, skipping the blocks ``manifest`` marks as done and marking each
    block it writes. Returns (blocks written now, blocks in all)."""
    if tuple(target.shape) != tuple(arr.shape):
        raise ValueError(f"target shape {target.shape} differs from the array's {arr.shape}")
    manifest = Path(manifest)
    manifest.mkdir(parents=True, exist_ok=True)
    done = blocks_done(manifest)
    bounds = [np.cumsum((0, *c)) for c in arr.chunks]
    todo = [idx for idx in np.ndindex(*arr.numblocks) if _name(idx) not in done]
    total = int(np.prod(arr.numblocks))
    if not todo:
        return 0, total
    stages = stage_label(arr)  # the dashboard's name of these tasks: the stages computed in them
    # the graph is culled to the blocks not on disk first, so that a layer may drop what only the
    # others need (the gates of predict's sweep: else the model ran over the whole volume again)
    stores = per_block(_store_block, arr, blocks=todo, name=f"{stages + '-' if stages else ''}store-"
                       f"{key_digest(f'{arr.name}{manifest}')}",
                       args=lambda idx: (target, tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, idx)),
                                         str(manifest / _name(idx))))
    if len(todo) < total:
        desc = f"{desc} (resuming: {total - len(todo)} of {total} blocks on disk)"
        if not showing(progress):  # said without a bar too: a resumed run is worth knowing
            print(f"bigseg: {desc}", file=sys.stderr, flush=True)
    compute(stores, desc=desc, progress=progress)
    return len(todo), total
