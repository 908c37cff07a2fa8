"""``bigseg.predict``: seam-free sliding-window inference over a dask volume, each window once.

The graph (DESIGN.md "Each patch evaluated once", overlap-add as in FFT convolution):

1. The window grid is MONAI's, laid over the whole (padded) volume: it depends only on the
   volume shape, the patch and the overlap (:mod:`bigseg.kernels.blend`).
2. ``acc`` task per block ``b`` = ``[lo_b, hi_b)``: read the input over ``[lo_b, ext_b)`` where
   ``ext_b = max(hi_b, last own start + patch)`` (a one-sided overhang of at most
   ``patch - 1`` on the high side), evaluate every window whose start corner lies in the block
   (batched, softmax per window) and sum ``w · p`` over the extended region, for the first
   C − 1 classes only: each window's softmax sums to 1, so the last class is the weight sum
   minus the others, and a third less data is in flight for 3 phases.
3. The ``acc`` task itself cuts its accumulator into the pieces that fall into each block it
   reaches (itself and, through the overhang, one or more higher neighbours — more than one
   when the chunks are smaller than the patch) and frees it; ``part`` keys pick the pieces.
4. ``blend`` task per block: the sum of the parts that land in it, divided by the weight sum
   Σ w of the grid over the block (MONAI's ``count_map``, recomputed from the geometry).
5. Blocks are swept one by one (local scheduler: one process, one device lock, so each block
   is blended right after its windows), row by row (few workers) or plane by plane along z
   (many): a group's windows start once the previous group is blended, so that only about
   one plane of overhangs is alive at a time; dask's own ordering would otherwise keep most
   accumulators waiting.

No task ever holds more than one block plus overhang: there is no full-volume accumulator.
The graph is written as one layer, in time linear in the number of blocks (0.2 s for 1024³
in 128³ chunks), with the model and the importance map as single keys.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from functools import partial
from itertools import product
from operator import getitem
from typing import Any

import dask
import dask.array as da
import dask.local
import dask.threaded
import numpy as np
import xarray as xr
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from .._parse import parse_axis, parse_choice, parse_chunks, parse_flag, parse_in_range, parse_positive_float, parse_positive_int
from ..errors import InputError
from ..io._volume import as_volume, check_grey, for_each_frame, is_series, state_values, zarr_source
from ..kernels import blend as K
from ..runtime._budget import check_budget, chunks_lever, format_bytes
from ..runtime._malloc import release_free_heap
from ..runtime._spill import SpilledArray
from ._model import (
    ACTIVATION_BYTES_PER_VOXEL,
    ModelSpec,
    _cpu_streams,
    _worker_device,
    cached_module,
    check_device,
    cpu_streams,
    default_batch_size,
    device_lock,
    load_model,
    resolve_model,
    resolved_once,
    run_patches,
)
from ._temporal import parse_temporal, smooth_over_time, warn_if_misaligned

__all__ = ["predict", "estimate_footprint"]

_PLANES = {"z": 0, "y": 1, "x": 2}


# ----------------------------------------------------------------------------- tasks


def _read_region(src: Any, lo: tuple[int, ...], hi: tuple[int, ...], pads: list[tuple[int, int]]) -> np.ndarray:
    """``[lo, hi)`` (padded coordinates) of a zero-padded stored volume, float32."""
    out = np.zeros([b - a for a, b in zip(lo, hi)], dtype=np.float32)
    u_lo = [max(a - p[0], 0) for a, p in zip(lo, pads)]
    u_hi = [min(b - p[0], n) for b, p, n in zip(hi, pads, src.shape)]
    if not all(a < b for a, b in zip(u_lo, u_hi)):
        return out
    # one z-row of stored chunks at a time: a single read over all 8 chunks of a block's region
    # decodes them all at once (zarr's async concurrency), ~100 MiB of transient buffers for a
    # 16 MiB region; chunk by chunk it decodes on one core only (2x slower)
    step = (getattr(src, "chunks", None) or src.shape)[0]
    z_edges = [u_lo[0], *range((u_lo[0] // step + 1) * step, u_hi[0], step), u_hi[0]]
    edges = [z_edges] + [[a, b] for a, b in zip(u_lo[1:], u_hi[1:])]
    for corner in product(*[zip(e[:-1], e[1:]) for e in edges]):
        dest = tuple(slice(a + p[0] - o, b + p[0] - o) for (a, b), p, o in zip(corner, pads, lo))
        out[dest] = src[tuple(slice(a, b) for a, b in corner)]
    return out


def _float_tensor(region: Any) -> Any:
    """A float32 torch tensor of a NumPy block, or of a CuPy block (e.g. filtered on the GPU)
    through DLPack, on its GPU: no round trip through the host."""
    import torch

    from ..ops import is_cupy

    if is_cupy(region):
        return torch.from_dlpack(region.astype(np.float32, copy=False))
    return torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32))


def _nonfinite_error(n_nan: int, n_inf: int, where: str) -> InputError:
    """The refusal of NaN/inf input voxels (a patch's normalisation would spread them to all of
    its probabilities), counted ``where`` ("(of N)", "in the region ...")."""
    got = " and ".join(f"{n} {what}" for n, what in ((n_nan, "NaN"), (n_inf, "infinite")) if n)
    return InputError(f"Expected `vol` without NaN or infinite values. Got {got} voxels {where}.")


def _acc_task(
    region: Any,
    blob: bytes | None,
    weight: np.ndarray,
    after: Any = None,
    *,
    window: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    pads: list[tuple[int, int]] | None = None,
    cuts: list[tuple[slice, ...]] | None = None,
    spill: list[bool] | None = None,
    key: str,
    checkpoint: str | None,
    origin: tuple[int, ...],
    own_starts: list[np.ndarray],
    patch: tuple[int, ...],
    n_classes: int,
    plane_axis: int | None,
    batch_size: int | None,
    device: str | None,
    autocast: str | None,
    tta: bool,
    channels_last: bool | None,
) -> np.ndarray:
    """Weighted probabilities Σ w·p (C - 1, *region.shape) float32 of the windows starting in a
    block, or with ``cuts`` the tuple of its pieces ``acc[:, cut]`` (copies) for the blocks it
    reaches, cut here under the device lock (a copy made beside a forward pass slows the pass).
    Where ``spill`` says so, a piece is a :class:`~bigseg.runtime._spill.SpilledArray` (it
    waits for a block a row or a plane ahead).

    ``region`` is the block's extended input, or (with ``window``) the stored zarr array to
    read ``window = (lo, hi)`` from."""
    dev = _worker_device(device)
    import torch

    with device_lock(dev), torch.inference_mode():  # one block per device at a time
        if window is not None:
            region = _read_region(region, window[0], window[1], pads or [(0, 0)] * len(window[0]))
        t_region = _float_tensor(region)
        if not bool(torch.isfinite(t_region).all()):  # torch: every core, one pass, no mask kept
            n_nan = int(torch.isnan(t_region).sum())
            sl = ", ".join(f"{d}[{o}:{o + s}]" for d, o, s in zip("zyx", origin, region.shape))
            raise _nonfinite_error(n_nan, int(torch.isinf(t_region).sum()), f"in the region {sl} (padded coordinates)")
        del region
        cl = bool(channels_last) if channels_last is not None else (dev.type == "cuda" and plane_axis is None)
        module = cached_module(key, blob, checkpoint, dev, channels_last=cl)
        bs = batch_size or default_batch_size(dev, patch)
        # on the CPU the batch's windows go to the CPU streams: each stream evaluates and adds
        # its share (bs / streams windows) on its own, the additions in order (same sums)
        pool, n_streams = _cpu_streams() if dev.type == "cpu" else (None, 1)

        def predict(x: Any) -> Any:
            return run_patches(
                x, module=module, device=dev, n_classes=n_classes, plane_axis=plane_axis,
                autocast=autocast, tta=tta, channels_last=cl, lock=False,
            )

        t_region = t_region.to(dev)
        acc, _n = K.accumulate_block_torch(
            t_region, origin, own_starts, patch, torch.from_numpy(weight).to(dev), predict,
            n_classes=n_classes, batch_size=max(1, -(-bs // n_streams)), keep=n_classes - 1, pool=pool,
        )
        del t_region
        if cuts is None:
            out: Any = acc.cpu().numpy() if dev.type != "cpu" else acc.numpy()
        else:  # copies (never views of the accumulator, which is freed here)
            park = spill or [False] * len(cuts)
            out = tuple(
                SpilledArray(acc[(slice(None), *ix)].cpu().numpy()) if p  # one contiguous copy, written, freed
                else acc[(slice(None), *ix)].clone(memory_format=torch.contiguous_format).cpu().numpy()
                for ix, p in zip(cuts, park)
            )
        del acc
    release_free_heap()
    return out


def _done(*_args: Any) -> int:
    """A tiny token that says its inputs exist (orders the sweep without moving data)."""
    return 0


def _gather(pieces: list[Any], where: list[tuple[tuple[slice, ...], ...]], shape: tuple[int, ...]) -> Any:
    """A float32 region of ``shape`` from input chunks: ``out[dst] = piece[src]`` for each (on the
    GPU for CuPy chunks)."""
    from ..ops import array_module

    out = array_module(pieces[0]).empty(shape, dtype=np.float32)
    for piece, (dst, src) in zip(pieces, where):
        out[dst] = piece[src]
    return out


def _blend_task(
    parts: list[np.ndarray],
    weight: np.ndarray,
    *,
    dests: list[tuple[slice, ...]],
    shape: tuple[int, ...],
    n_classes: int,
    lo: tuple[int, ...],
    starts: list[np.ndarray],
    patch: tuple[int, ...],
    labels_only: bool = False,
    device: str | None = None,
) -> np.ndarray:
    """Sum the accumulator pieces (first C-1 classes) landing in one block, divide by the
    weight sum of the grid over the block; the last class is 1 − the others. With
    ``labels_only`` the argmax (uint8) instead, without making the float32 probabilities
    (:func:`bigseg.kernels.blend.labels_from_partial`).

    When the model runs on this process's CPU, the task takes the CPU's device lock: the
    forward pass already uses every core, and a blend running beside it slows the pass
    about 3× (its intra-op threads wait for the descheduled one), far more than it gains."""
    with device_lock(cpu) if (cpu := _worker_device(device)).type == "cpu" else nullcontext():
        import torch  # multi-threaded in-place adds: ~2x faster than NumPy's here

        acc = torch.zeros((n_classes - 1, *shape), dtype=torch.float32)
        for part, dest in zip(parts, dests):
            acc[(slice(None), *dest)] += torch.from_numpy(part.load() if isinstance(part, SpilledArray) else part)
        total = acc.numpy()
        hi = tuple(a + b for a, b in zip(lo, shape))
        wsum = K.weight_sum(lo, hi, starts, patch, weight)
        out = K.labels_from_partial(total, wsum) if labels_only else K.normalise_partial(total, wsum, n_classes)
    del acc, total, wsum
    release_free_heap()
    return out


# ----------------------------------------------------------------------------- plan


def _bounds(chunks: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    return [np.concatenate([[0], np.cumsum(c)]).astype(int).tolist() for c in chunks]


def _plan(shape: tuple[int, ...], chunks: tuple[tuple[int, ...], ...], patch: tuple[int, ...], overlap: float):
    bounds = _bounds(chunks)
    starts = K.patch_starts(shape, patch, overlap)
    # per axis and block along it: the windows starting in the block, and its accumulator's end
    own = [[K.block_patches([s], [b[i]], [b[i + 1]])[0] for i in range(len(b) - 1)] for s, b in zip(starts, bounds)]
    ext = [[K.extended_stop([o[i]], [b[i + 1]], [p])[0] for i in range(len(b) - 1)]
           for o, b, p in zip(own, bounds, patch)]
    return bounds, starts, own, ext


def estimate_footprint(
    chunks: tuple[int, ...],
    patch: tuple[int, ...],
    *,
    n_classes: int,
    in_itemsize: int = 4,
    batch_size: int = 4,
    tta: bool = False,
    param_bytes: int = 0,
    activation_bytes_per_voxel: int = ACTIVATION_BYTES_PER_VOXEL,
) -> int:
    """Bytes one inference task holds at once, for the largest block ``chunks`` (z, y, x).

    The ``acc`` task holds the input over block + overhang (``chunk + patch - 1`` per axis) as
    read and as float32, the float32 accumulator (C channels), one batch of windows (input,
    logits, probabilities, the weighted copy, and :data:`ACTIVATION_BYTES_PER_VOXEL` of
    activations per voxel) and the model; the ``blend`` task holds the parts arriving from up
    to 8 neighbours (about 2 × C × block float32 in total), the sum and the probabilities.

    Parameters
    ----------
    chunks : the block's edge per axis, in voxels (z, y, x).
    patch : the model's window per axis, in voxels (as many axes as ``chunks``).
    n_classes : C, the model's output channels.
    in_itemsize : bytes per input voxel as read (default 4: float32).
    batch_size : windows per forward pass (default 4).
    tta : test-time augmentation: the batch's share counted twice (default False).
    param_bytes : the model's parameters, in bytes (default 0).
    activation_bytes_per_voxel : activations per window voxel, in bytes (default
        :data:`ACTIVATION_BYTES_PER_VOXEL`).

    Returns
    -------
    The larger task's bytes, an int.
    """
    ext = int(np.prod([c + p - 1 for c, p in zip(chunks, patch)]))
    block = int(np.prod(chunks))
    pvox = int(np.prod(patch))
    batch = batch_size * pvox * (4 * (1 + 3 * n_classes) + activation_bytes_per_voxel) * (2 if tta else 1)
    acc_task = ext * (in_itemsize * 2 + 4) + ext * n_classes * 4 + batch + param_bytes
    blend_task = block * n_classes * 4 * 4 + block * 5
    return int(max(acc_task, blend_task))


def _suggest_chunks(patch, n_classes, itemsize, batch_size, tta, param_bytes, budget) -> str:
    edge = 1024
    while edge >= 16:
        if estimate_footprint((edge,) * 3, patch, n_classes=n_classes, in_itemsize=itemsize, batch_size=batch_size,
                              tta=tta, param_bytes=param_bytes) <= budget:
            lever = chunks_lever(edge, f"vol.chunk or predict(..., chunks={edge})")
            return f"Use smaller chunks, e.g. chunks={edge} ({lever}), or a smaller batch_size."
        edge //= 2
    return "Even 16³ chunks do not fit: use a smaller batch_size or patch, or workers with more memory."


def _jobs(spec: ModelSpec, shape: tuple[int, ...], plane_axis: int | None,
          triplanar: bool) -> list[tuple[tuple[int, ...], int | None]]:
    """The (3D window, plane axis) of each pass over a (z, y, x) volume of ``shape``: one for a
    3D model, one per plane set for a 2D model (its patch capped at the plane's extent)."""
    if spec.ndim == 3:
        return [(spec.patch, None)]
    jobs = []
    for plane in ("zyx" if triplanar else "zyx"[plane_axis]):
        a = _PLANES[plane]
        extent = [n for i, n in enumerate(shape) if i != a]  # the plane's two axes
        # a bigseg Model's patch capped at this plane's extent (the y and x planes span z)
        p3 = list(spec.patch) if spec.uncapped is None else [min(p, n) for p, n in zip(spec.uncapped, extent)]
        p3.insert(a, 1)
        jobs.append((tuple(p3), a))
    return jobs


def check_memory(jobs: list[tuple[tuple[int, ...], int | None]], spec: ModelSpec, chunks: tuple[int, ...], dtype: Any,
                 *, batch_size: int, tta: bool, memory_limit: Any = None) -> int:
    """Refuse, before any work, a prediction whose task (:func:`estimate_footprint` for the
    largest block ``chunks`` (z, y, x) of a ``dtype`` volume) would not fit a worker
    (:func:`check_budget`), suggesting chunks that would; else return that footprint (bytes)."""
    C, itemsize = spec.n_classes, np.dtype(dtype).itemsize
    foot = max(estimate_footprint(chunks, p3, n_classes=C, in_itemsize=itemsize, batch_size=batch_size, tta=tta,
                                  param_bytes=spec.param_bytes) for p3, _ in jobs)
    try:
        check_budget(foot, what=f"predict with chunks {chunks} and patch {spec.patch}", memory_limit=memory_limit,
                     suggestion="")
    except MemoryError as exc:
        from ..errors import MemoryBudgetError
        from ..runtime._budget import worker_memory_limit

        limit, conc, _src = worker_memory_limit(memory_limit)
        hint = _suggest_chunks(jobs[0][0], C, itemsize, batch_size, tta, spec.param_bytes, limit // conc)
        raise MemoryBudgetError(f"{exc} {hint}") from None
    return foot


def check_memory_for(vol: Any, model: Any, *, patch: Any = None, phases: Any = None, device: Any = None,
                     triplanar: bool = False, plane: Any = None, batch_size: int | None = None, tta: bool = False,
                     memory_limit: Any = None, **_: Any) -> None:
    """The memory check :func:`predict` makes, for a volume not yet made (e.g. a lazy stand-in of
    the shape, chunks and dtype a pipeline's earlier stages will give it): a run refuses, before
    any stage writes, what its prediction could not fit. Other :func:`predict` options are ignored."""
    vol = as_volume(vol, name="vol", allow_series=True)
    if is_series(vol):
        vol = vol.isel(t=0)
    model, spec = resolve_model(model, patch=patch, phases=phases, device=device, shape=tuple(vol.shape))
    plane_axis = parse_plane(plane) if plane is not None else _trained_plane(model)
    if spec.ndim != 2:
        triplanar = False
    check_memory(_jobs(spec, tuple(vol.shape), plane_axis, triplanar), spec,
                 tuple(int(max(c)) for c in vol.data.chunks), vol.dtype, batch_size=batch_size or 4, tta=bool(tta),
                 memory_limit=memory_limit)


def _blend_volume(
    data: da.Array,
    spec: ModelSpec,
    *,
    source: Any = None,
    patch3: tuple[int, ...],
    plane_axis: int | None,
    overlap: float,
    weight: np.ndarray,
    options: dict[str, Any],
    sweep: str = "plane",
    labels_only: bool = False,
    spill: bool = False,
) -> tuple[da.Array, int]:
    """Blended probabilities (C, z, y, x) float32 of one (unpadded) volume and the number of
    windows; the window grid lives on the padded volume, the output is cropped back. With
    ``labels_only`` the (z, y, x) uint8 argmax instead, computed in the blend tasks. With
    ``spill`` (the block sweep only), the pieces that wait for the next row or plane of blocks
    go to anonymous temporary files (:class:`~bigseg.runtime._spill.SpilledArray`).

    The tasks are written straight into one graph layer (O(blocks) to build; chaining
    ``dask.delayed`` calls through the sweep's gates re-culls the whole graph at every call,
    which took minutes for 1024³ in 128³ chunks). The model, the importance map and the zarr
    source are each one key of the graph, referenced by every task, never copied into them."""
    pads = K.pad_widths(data.shape, patch3)
    if source is not None:  # read regions straight from the store, any block grid
        chunks = tuple(((b,) if b else ()) + tuple(c) + ((a,) if a else ()) for (b, a), c in zip(pads, data.chunks))
        shape = tuple(int(sum(c)) for c in chunks)
    else:
        if any(a or b for a, b in pads):
            data = da.pad(data, pads, mode="constant", constant_values=0)
        chunks = data.chunks
        shape = tuple(int(s) for s in data.shape)
    bounds, starts, own, ext = _plan(shape, chunks, patch3, overlap)
    n_patches = int(np.prod([len(s) for s in starts]))
    C = spec.n_classes
    spill = bool(spill) and sweep == "block"
    token = dask.base.tokenize(data.name, chunks, spec.key, patch3, plane_axis, overlap, weight, sorted(options.items()), spill)
    nblocks = [len(b) - 1 for b in bounds]
    name = f"bigseg-{'labels' if labels_only else 'blend'}-{token}"

    def key(kind: str, *idx: tuple[int, ...]) -> str:
        return f"bigseg-{kind}-{token}-" + "-".join(str(i) for t in idx for i in t)

    dsk: dict[Any, Any] = {}
    w_key, src_key = f"bigseg-weight-{token}", f"bigseg-source-{token}"
    blob_key = f"bigseg-model-{dask.base.tokenize(spec.key)}"  # one copy for every plane set
    dsk[w_key] = weight
    dsk[blob_key] = spec.blob
    if source is not None:
        dsk[src_key] = source

    has_acc = {
        idx for idx in product(*[range(n) for n in nblocks]) if all(len(own[a][i]) for a, i in enumerate(idx))
    }
    # which lower blocks reach into each block, per axis
    reach = K.overlap_regions(bounds, ext)
    sources: dict[tuple[int, ...], list] = {}
    targets: dict[tuple[int, ...], list] = {}
    for idx in product(*[range(n) for n in nblocks]):
        src = []
        for combo in product(*[reach[a][i] for a, i in enumerate(idx)]):
            j = tuple(c[0] for c in combo)
            if j in has_acc:
                src.append((j, combo))
                targets.setdefault(j, []).append((idx, combo))
        sources[idx] = src

    # Sweep the volume plane by plane along z (or row by row): the windows of a group start once
    # the previous group is blended, so that only about one plane of overhangs is ever alive
    # (dask's own ordering would otherwise run faces first and keep most accumulators waiting).
    if sweep == "block":  # one block at a time, each blended at once (one process: one device lock)
        groups = [[idx] for idx in product(*[range(n) for n in nblocks])]
    elif sweep == "row":  # (z, y) rows of blocks, for few concurrent workers
        groups = [[(z, y, x) for x in range(nblocks[2])] for z in range(nblocks[0]) for y in range(nblocks[1])]
    else:  # z planes of blocks
        groups = [list(product([z], *[range(n) for n in nblocks[1:]])) for z in range(nblocks[0])]
    part_key: dict[tuple, Any] = {}
    acc_static = dict(key=spec.key, checkpoint=spec.checkpoint, patch=patch3, n_classes=C, plane_axis=plane_axis, **options)
    gate, gates = None, []
    for gi, group in enumerate(groups):
        done = []
        for j in group:
            if j not in has_acc:
                continue
            jlo = tuple(bounds[a][i] for a, i in enumerate(j))
            jhi = tuple(ext[a][i] for a, i in enumerate(j))
            task = partial(_acc_task, origin=jlo, own_starts=[own[a][i] for a, i in enumerate(j)], **acc_static)
            if source is not None:
                region: Any = src_key
                task = partial(task, window=(jlo, jhi), pads=pads)
            else:  # the input chunks that the extended region covers, assembled in the task
                spans = [range(i, int(np.searchsorted(b, h, side="left"))) for i, b, h in zip(j, bounds, jhi)]
                pieces, where = [], []
                for cidx in product(*spans):
                    c_lo = [bounds[a][c] for a, c in enumerate(cidx)]
                    c_hi = [min(bounds[a][c + 1], jhi[a]) for a, c in enumerate(cidx)]
                    pieces.append((data.name, *cidx))
                    where.append((tuple(slice(l - o, h - o) for l, h, o in zip(c_lo, c_hi, jlo)),
                                  tuple(slice(0, h - l) for l, h in zip(c_lo, c_hi))))
                region = (_gather, pieces, where, tuple(h - l for l, h in zip(jlo, jhi)))
            acc = key("acc", j)
            # the accumulator is cut in the task into the pieces for each block it reaches
            whole = len(targets[j]) == 1 and all(c[1] == a and c[2] == b for c, a, b in zip(targets[j][0][1], jlo, jhi))
            if not whole:
                task = partial(task, cuts=[tuple(slice(c[1] - a, c[2] - a) for c, a in zip(combo, jlo))
                                           for _idx, combo in targets[j]])
                # a piece for a block in another row or plane waits for a whole row or plane
                park = [spill and idx[:-1] != j[:-1] for idx, _combo in targets[j]]
                if any(park):
                    task = partial(task, spill=park)
            dsk[acc] = (task, region, blob_key, w_key, gate)
            for i, (idx, _combo) in enumerate(targets[j]):
                if whole:
                    part_key[(j, idx)] = acc
                else:
                    part_key[(j, idx)] = key("part", j, idx)
                    dsk[part_key[(j, idx)]] = (getitem, acc, i)
                dsk[key("done", j, idx)] = (_done, part_key[(j, idx)])
                done.append((key("done", j, idx), idx))
        for idx in group:
            lo = tuple(bounds[a][i] for a, i in enumerate(idx))
            bshape = tuple(bounds[a][i + 1] - bounds[a][i] for a, i in enumerate(idx))
            near = [s[(s < h) & (s + p > l)] for s, l, h, p in zip(starts, lo, (a + b for a, b in zip(lo, bshape)), patch3)]
            dests = [tuple(slice(c[1] - l, c[2] - l) for c, l in zip(combo, lo)) for _, combo in sources[idx]]
            blend = partial(_blend_task, dests=dests, shape=bshape, n_classes=C, lo=lo, starts=near, patch=patch3,
                            labels_only=labels_only, device=options["device"])
            out_key = (name, *idx) if labels_only else (name, 0, *idx)
            dsk[out_key] = (blend, [part_key[(j, idx)] for j, _ in sources[idx]], w_key)
            dsk[key("done", idx)] = (_done, out_key)
            done.append((key("done", idx), idx))
        # chained through the previous gate: a group without windows of its own (blocks past the
        # last window start) must not let the next group's windows overtake the one before
        prev, gate = gate, f"bigseg-gate-{token}-{gi}"
        gates.append((gate, done, prev))
    layer = _SweepLayer(dsk, gates, name)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[data] if source is None else [])
    if labels_only:
        out = da.Array(graph, name, chunks=chunks, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))
    else:
        out = da.Array(graph, name, chunks=((C,), *chunks), dtype=np.float32, meta=np.empty((0, 0, 0, 0), np.float32))
    if any(a or b for a, b in pads):
        crop = tuple(slice(a, s - b) for (a, b), s in zip(pads, shape))
        out = out[crop if labels_only else (slice(None), *crop)]
    return out, n_patches


class _SweepLayer(MaterializedLayer):
    """The tasks of :func:`_blend_volume`, whose gates order the sweep. Culled to some output
    blocks (a resumed write computes only the blocks not on disk), each gate waits only for
    the tasks of those blocks: waiting for all of them would compute every block before (the
    gates chain), so a resume ran the model over the whole volume again."""

    def __init__(self, tasks: dict, gates: list, name: str, wanted: set | None = None) -> None:
        self.tasks, self.gates, self.name = tasks, gates, name
        mapping = dict(tasks)
        for gate, done, prev in gates:
            mapping[gate] = (_done, *[k for k, idx in done if wanted is None or idx in wanted], *([prev] if prev else []))
        super().__init__(mapping)

    def cull(self, keys: set, all_hlg_keys: Any) -> tuple[Any, Any]:
        wanted = {tuple(k[-3:]) for k in keys if isinstance(k, tuple) and k[0] == self.name}
        return MaterializedLayer.cull(_SweepLayer(self.tasks, self.gates, self.name, wanted), keys, all_hlg_keys)


# ----------------------------------------------------------------------------- public


def _sweep(blocks_along_x: int) -> str:
    """The order in which blocks are run (see :func:`_blend_volume`): ``"block"`` on the local
    threaded (or synchronous) scheduler, where every task shares this process's device lock and
    blocks run one at a time anyway, so each is blended at once and the fewest overhang pieces
    are alive (512³ in 128³ chunks: ~120 instead of ~170 MiB); on a cluster ``"row"`` when
    there are no more task slots than blocks along x, else ``"plane"``."""
    from ..runtime._progress import current_client, scheduler_for

    if current_client() is None and scheduler_for() in (dask.threaded.get, dask.local.get_sync):
        return "block"
    return "row" if _concurrent_slots() <= blocks_along_x else "plane"


def _concurrent_slots() -> int:
    """Tasks that can run at once: the cluster's threads, or the local scheduler's."""
    from ..runtime._progress import current_client

    client = current_client()
    if client is not None:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        return max(1, sum(int(w.get("nthreads") or 1) for w in workers.values()))
    import os

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _labels_block(p: np.ndarray) -> np.ndarray:
    return p.argmax(axis=0).astype(np.uint8)


def predict_frames(fn: Any, vol: Any, model: Any, **kwargs: Any) -> xr.Dataset:
    """``fn(frame, model, **kwargs)`` (:func:`predict` or ``bigseg.infer.segment``) for every frame
    of a series, the model loaded once; ``attrs["n_patches"]`` is the total over the frames."""
    model = load_model(model, kwargs.get("device"))
    with resolved_once():  # the model checked once for the series, not once per frame
        out = for_each_frame(fn, vol, model, **kwargs)
    n = out.attrs["n_patches"]
    out.attrs["n_patches"] = int(sum(n)) if isinstance(n, list) else int(n) * int(out.sizes["t"])
    return out


def predict_series(fn: Any, vol: Any, model: Any, *, temporal: int = 0, probabilities: bool = False,
                   uncertainty: str | None = None, **kwargs: Any) -> xr.Dataset:
    """:func:`predict_frames`, then with ``temporal`` > 0 the probabilities averaged over
    neighbouring scans (:func:`bigseg.infer.smooth_over_time`)."""
    if not temporal:
        return predict_frames(fn, vol, model, probabilities=probabilities, uncertainty=uncertainty, **kwargs)
    if uncertainty is not None:  # checked before any work: the frames are asked for none
        parse_choice("uncertainty", uncertainty, [None, "entropy", "margin"])
    # the frames' graphs first: their arguments are checked there, before the drift check reads the scans
    ds = predict_frames(fn, vol, model, probabilities=True, uncertainty=None, **kwargs)
    warn_if_misaligned(vol, temporal)
    return smooth_over_time(ds, temporal, probabilities=probabilities, uncertainty=uncertainty)


def check_options(*, overlap: Any = 0.5, blend: Any = "gaussian", sigma_scale: Any = 0.125, uncertainty: Any = None,
                  autocast: Any = "auto", batch_size: Any = None, device: Any = None, tta: Any = False,
                  probabilities: Any = False, triplanar: Any = False, spill: Any = True, plane: Any = None,
                  channels_last: Any = None) -> tuple:
    """:func:`predict`'s options checked by name (InputError), as (overlap, blend, sigma_scale,
    uncertainty, autocast, batch_size, device); a CUDA ``device`` where PyTorch sees no GPU (or
    not that one) is refused here too, so that callers can check before any work."""
    overlap = parse_in_range("overlap", overlap, 0.0, 1.0)
    blend = parse_choice("blend", blend, ["gaussian", "constant"])
    sigma_scale = parse_positive_float("sigma_scale", sigma_scale)
    uncertainty = parse_choice("uncertainty", uncertainty, [None, "entropy", "margin"])
    autocast = parse_choice("autocast", autocast, ["auto", "bf16", "fp16", None, "off"])
    if batch_size is not None:
        batch_size = parse_positive_int("batch_size", batch_size)
    for name, flag in (("tta", tta), ("probabilities", probabilities), ("triplanar", triplanar), ("spill", spill)):
        parse_flag(name, flag)
    if channels_last is not None:  # (None: by device; "no" was truthy)
        parse_flag("channels_last", channels_last)
    if plane is not None:
        parse_plane(plane)
        if triplanar:
            raise InputError(f"Expected `plane` None with `triplanar` (it takes all three planes). Got plane={plane!r}.")
    if device is not None:
        import torch

        try:
            device = str(torch.device(device))
        except (RuntimeError, TypeError):
            raise InputError(f"Expected `device` to be 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.") from None
        check_device(device)
    return overlap, blend, sigma_scale, uncertainty, autocast, batch_size, device


def parse_plane(plane: Any) -> int:
    """The axis normal to a 2D model's planes: ``"z"``/``"y"``/``"x"`` or 0/1/2 -> 0/1/2."""
    return parse_axis("plane", plane, what="the axis normal to a 2D model's planes")


def _trained_plane(model: Any) -> int:
    """The axis a bigseg 2D model was trained across (``provenance['data']['axis']``); z otherwise."""
    data = (getattr(model, "provenance", None) or {}).get("data") or {}
    axis = data.get("axis", 0) if isinstance(data, dict) else 0
    return int(axis) if isinstance(axis, (int, np.integer)) and 0 <= int(axis) <= 2 else 0


def _warn_if_not_cubic(vol: xr.DataArray, *, tolerance: float, axes: tuple[int, ...] = (0, 1, 2)) -> None:
    """Warn when ``vol``'s voxels along ``axes`` differ by more than ``tolerance`` times: a model
    trained on synthetic electrodes (``bigseg train --synthetic``, the default model) learnt round
    particles on cubic voxels, and sees those of a scan with 2 x 0.5 x 0.5 um voxels flattened 4x."""
    import warnings

    vs = [float(v) for v in vol.attrs.get("voxel_size", (1.0, 1.0, 1.0))]
    seen = [vs[a] for a in axes]
    if not (min(seen) > 0 and max(seen) / min(seen) > tolerance):
        return
    said = " x ".join(f"{v:g}" for v in vs)
    warnings.warn(f"The model learnt synthetic electrodes on cubic voxels; this volume's are {said} "
                  f"{vol.attrs.get('unit', 'voxel')} (z, y, x), {max(seen) / min(seen):.2g}x longer along "
                  f"{'zyx'[axes[seen.index(max(seen))]]} than along {'zyx'[axes[seen.index(min(seen))]]}: its particles look "
                  "flattened to the model. Resample the volume to (near) cubic voxels, or fine-tune the model on a "
                  "few annotated slices of it (bigseg train --init).", stacklevel=4)


def warn_if_other_voxels(model: Any, vol: xr.DataArray, *, tolerance: float = 1.5,
                         axes: tuple[int, ...] = (0, 1, 2)) -> None:
    """Warn when a model trained on a calibrated scan (``provenance['data']['voxel_size']``, as
    :func:`bigseg.train` records it) meets voxels more than ``tolerance`` times larger or smaller
    along some axis: it learnt shapes in voxels, and a particle twice as large in voxels (or a
    slice spacing twice as fine) is not what it was taught. Nothing is said where either side
    states no physical size (the default model learnt electrodes of many sizes in voxels), except
    that a model trained on synthetic electrodes (cubic voxels, e.g. the default model) warns about
    voxels more than ``tolerance`` times longer along one of ``axes`` (those a 2D model's planes
    hold) than along another."""
    import warnings

    from ..io._calibration import convert_length

    data = (getattr(model, "provenance", None) or {}).get("data") or {}
    trained, unit = (data.get("voxel_size"), data.get("unit")) if isinstance(data, dict) else (None, None)
    if isinstance(data, dict) and data.get("kind") == "synthetic" and not trained:
        _warn_if_not_cubic(vol, tolerance=tolerance, axes=axes)
        return
    if not trained or unit in (None, "voxel") or vol.attrs.get("unit", "voxel") == "voxel":
        return
    here = convert_length(tuple(float(v) for v in vol.attrs["voxel_size"]), str(vol.attrs["unit"]), str(unit))
    if here is None:
        return
    ratio = np.asarray(here) / np.asarray(trained, np.float64)
    if np.all((ratio <= tolerance) & (ratio >= 1.0 / tolerance)):
        return
    say = " x ".join(f"{v:g}" for v in here)
    warnings.warn(f"The model was trained on voxels of {' x '.join(f'{float(v):g}' for v in trained)} {unit} (z, y, "
                  f"x); this volume's are {say} {unit} ({', '.join(f'{r:.2g}x' for r in ratio)}): its shapes are not "
                  "the sizes in voxels the model learnt. Resample the volume to the model's voxels, or fine-tune the "
                  "model on a few annotated slices of it (bigseg train --init).", stacklevel=3)


def check_predict_kwargs(kwargs: dict) -> None:
    """Keyword arguments meant for :func:`predict` checked before any work: unknown names and bad
    values of its options refused by name (InputError)."""
    import inspect

    known = set(inspect.signature(predict).parameters) - {"vol", "model"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise InputError(f"Expected keyword arguments of bigseg.predict ({', '.join(sorted(known))}). "
                         f"Got {', '.join(map(repr, unknown))} instead.")
    options = set(inspect.signature(check_options).parameters)
    check_options(**{k: v for k, v in kwargs.items() if k in options and v is not None})


def predict(
    vol: Any,
    model: Any,
    *,
    patch: Any = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    sigma_scale: float = 0.125,
    tta: bool = False,
    probabilities: bool = False,
    uncertainty: str | None = None,
    batch_size: int | None = None,
    device: Any = None,
    autocast: str | None = "auto",
    triplanar: bool = False,
    plane: Any = None,
    chunks: Any = None,
    phases: Any = None,
    channels_last: bool | None = None,
    memory_limit: Any = None,
    spill: bool = True,
    temporal: int = 0,
) -> xr.Dataset:
    """Segment a volume with a model by sliding-window inference, block by block.

    The result equals MONAI's ``sliding_window_inference(vol, patch, ..., overlap, mode=blend,
    sigma_scale)`` of the softmax on the whole volume, for any chunking, while each window is
    evaluated exactly once and no task holds more than one block plus a ``patch - 1`` overhang.

    Parameters
    ----------
    vol : volume (z, y, x) or series (t, z, y, x): DataArray, dask or NumPy array, any real
        dtype; every frame of a series is predicted on its own (equal to predicting that frame
        alone). Normalise it the way the model was trained first (e.g.
        ``bigseg.filters.normalize`` for a model whose ``normalization`` is percentile-based):
        ``predict`` feeds the values as they are.
    model : ``torch.nn.Module`` mapping (N, 1, *patch) to (N, C, *patch) logits (then ``patch``
        is required), a bigseg ``Model`` (``phases``, ``patch``, ``ndim``) or a name/path for
        ``bigseg.models.load``
    patch : (z, y, x) window for a 3D model, (y, x) for a 2D model (run plane by plane, see
        ``plane``, with in-plane blending; for planes normal to y or x the patch's two values
        apply to (z, x) or (z, y)); default ``model.patch``. For a bigseg ``Model`` the patch is
        capped at the volume's extent (its nets take any size); for a plain torch module an
        axis shorter than the patch is zero-padded symmetrically (``(patch - size) // 2``
        before) and cropped back, as MONAI does.
    overlap : fraction in [0, 1); stride ``int(patch × (1 − overlap))`` (at least 1)
    blend : ``"gaussian"`` (σ = ``sigma_scale`` × patch, MONAI's importance map) or ``"constant"``
    tta : average the probabilities over all flips of the window's spatial axes
    probabilities : also return ``probabilities`` (phase, z, y, x) float32
    uncertainty : ``None``, ``"entropy"`` (nats) or ``"margin"`` (1 − max probability)
    batch_size : windows per forward pass (default 4 on CPU, sized to free memory on a GPU)
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: the worker's GPU if it has one
    autocast : ``"auto"`` (bf16, or fp16 where bf16 is unsupported, on GPU; off on CPU),
        ``"bf16"``, ``"fp16"`` or ``None`` (float32 throughout, on a GPU in IEEE precision, not
        cuDNN's default TF32: the CPU's result up to the order of sums)
    triplanar : 2D models only: predict along z, y and x and average the probabilities
    plane : 2D models only: the axis normal to the planes the model sees, ``"z"``, ``"y"`` or
        ``"x"``; default the axis a bigseg model was trained across (``train(axis=...)``,
        recorded in its provenance), else ``"z"``. Not with ``triplanar``.
    chunks : rechunk the input first (an int or one per axis; the output has these chunks, else
        the input's)
    phases : override the model's phase names
    memory_limit : per-worker memory (bytes or "4GiB") for the budget check; default: the
        workers' limit
    spill : on the local scheduler, keep the overhang pieces that wait for the next row or
        plane of blocks in anonymous temporary files under ``TMPDIR`` (disk, not RAM: memory
        no longer grows with the y·x cross-section); ``False`` keeps them in RAM. Clusters
        spill through dask's own worker memory management instead.
    temporal : a series only: average each scan's probabilities with those of the ``temporal``
        scans before and after it before the argmax (:func:`bigseg.infer.smooth_over_time`; the
        scans must be aligned); 0 (default): each scan alone
    channels_last : run the model and its windows in torch's channels-last memory layout (True
        or False), a speed setting; default None: on for a 3D model on a GPU, off otherwise

    Returns
    -------
    xarray.Dataset with ``labels`` (z, y, x) uint8 (attrs ``phases``), optionally
    ``probabilities`` (phase, z, y, x) float32 and ``uncertainty`` (z, y, x) float32, all lazy
    (for a series ``t`` comes first, e.g. probabilities (t, phase, z, y, x), OME-Zarr's order);
    attrs ``n_patches`` (windows evaluated, = MONAI's count on the whole volume, summed over
    blocks), ``patch``, ``overlap``, ``blend``, ``sigma_scale``, ``tta`` and ``triplanar`` (1 or 0),
    ``phases``; for a 2D
    model ``planes`` (``"z"``, ``"y"``, ``"x"`` or ``"zyx"``).

    Notes
    -----
    Memory: a task holds one block plus its overhang (``estimate_footprint``); the volume is
    swept block by block (local scheduler), row by row or plane by plane (cluster) so that
    about one plane of overhangs (C − 1 float32 channels) is alive; locally those that wait
    for the next row or plane are parked on disk (``spill``). An OME-Zarr volume
    (``open_volume``) is read region by region straight from the store. On the CPU, blocks run
    one at a time per process, their windows shared out between CPU streams (threads with a
    share of the cores each, each evaluating ``batch_size`` / streams windows at a time and
    adding them in order; ``BIGSEG_CPU_STREAMS``, default 2, see
    ``bigseg.infer.cpu_streams``). glibc's malloc is tuned so that freed blocks go back to the
    OS (``bigseg/runtime/_malloc.py``; ``BIGSEG_MALLOC_TUNING=0`` turns that off). The patch
    counters of each process are in ``bigseg.infer.worker_stats()``.

    Raises
    ------
    InputError : bad arguments (e.g. "Expected `overlap` in [0, 1). Got 1.2 instead."), NaN or inf in
        the input (with the count)
    ModelError : output channels disagree with the phases, a 2D model given 3D patches, the
        model on another device than ``device``
    MemoryBudgetError : a task would not fit in a worker's memory (checked before any work)
    """
    temporal = parse_temporal(temporal, series=is_series(vol))
    if is_series(vol):
        kwargs = {k: v for k, v in locals().items() if k not in ("vol", "model", "temporal")}
        return predict_series(predict, vol, model, temporal=temporal, **kwargs)
    overlap, blend, sigma_scale, uncertainty, autocast, batch_size, device = check_options(
        overlap=overlap, blend=blend, sigma_scale=sigma_scale, uncertainty=uncertainty, autocast=autocast,
        batch_size=batch_size, device=device, tta=tta, probabilities=probabilities, triplanar=triplanar, spill=spill,
        plane=plane, channels_last=channels_last)
    cpu_streams()  # a bad BIGSEG_CPU_STREAMS fails here, before any work
    raw = vol
    vol = as_volume(vol, name="vol", allow_series=True)  # a series never gets here: its frames do
    source = zarr_source(vol.data)
    if chunks is not None:
        vol = vol.chunk(dict(zip(vol.dims, parse_chunks(chunks, 3))))
    check_grey(vol)
    model, spec = resolve_model(model, patch=patch, phases=phases, device=device, shape=tuple(vol.shape))
    if triplanar and spec.ndim != 2:
        raise InputError("Expected `triplanar` True only with a 2D model. Got triplanar=True with a 3D model.")
    if plane is not None and spec.ndim != 2:
        raise InputError(f"Expected `plane` None with a 3D model (it sees the volume whole). Got plane={plane!r}.")
    plane_axis = parse_plane(plane) if plane is not None else _trained_plane(model)
    warn_if_other_voxels(model, vol, axes=(0, 1, 2) if spec.ndim == 3 or triplanar
                         else tuple(a for a in range(3) if a != plane_axis))
    if isinstance(raw, np.ndarray) and raw.dtype.kind == "f":
        n_nan, n_inf = int(np.count_nonzero(np.isnan(raw))), int(np.count_nonzero(np.isinf(raw)))
        if n_nan + n_inf:
            raise _nonfinite_error(n_nan, n_inf, f"(of {raw.size})")

    jobs = _jobs(spec, tuple(vol.shape), plane_axis, triplanar)
    # memory budget, before any work
    bs = batch_size or 4
    foot = check_memory(jobs, spec, tuple(int(max(c)) for c in vol.data.chunks), vol.dtype, batch_size=bs, tta=tta,
                        memory_limit=memory_limit)

    sweep = _sweep(max(len(c) for c in vol.data.chunks[2:]))
    options = dict(batch_size=batch_size, device=device, autocast=autocast, tta=bool(tta), channels_last=channels_last)
    # labels only (one plane set, nothing else asked): the argmax runs inside the blend tasks
    labels_only = not probabilities and uncertainty is None and len(jobs) == 1
    outs, n_patches = [], 0
    for p3, job_axis in jobs:  # (not plane_axis: the planes' attribute below reads the one asked for)
        weight = K.importance_map(p3, blend, sigma_scale)
        out, n = _blend_volume(vol.data, spec, patch3=p3, plane_axis=job_axis, overlap=overlap, weight=weight,
                               options=options, source=source, sweep=sweep, labels_only=labels_only, spill=spill)
        outs.append(out)
        n_patches += n
    if labels_only:
        labels = outs[0]
    else:
        probs = outs[0] if len(outs) == 1 else sum(outs[1:], outs[0]) / np.float32(len(outs))
        probs = probs.astype(np.float32)
        labels = da.map_blocks(_labels_block, probs, drop_axis=0, dtype=np.uint8, token="bigseg-argmax")

    base = {"voxel_size": vol.attrs.get("voxel_size", (1.0, 1.0, 1.0)), "unit": vol.attrs.get("unit", "voxel")}
    coords = {d: vol.coords[d] for d in vol.dims if d in vol.coords}
    data_vars: dict[str, Any] = {
        "labels": state_values(xr.DataArray(labels, dims=vol.dims, coords=coords,
                                            attrs={**base, "phases": list(spec.phases)})),
    }
    if probabilities:
        data_vars["probabilities"] = state_values(xr.DataArray(
            probs, dims=("phase", *vol.dims), coords={"phase": list(spec.phases), **coords},
            attrs={**base, "description": "blended softmax probabilities"},
        ))
    if uncertainty is not None:
        fn = K.entropy if uncertainty == "entropy" else K.margin
        unc = da.map_blocks(fn, probs, drop_axis=0, dtype=np.float32, token=f"bigseg-{uncertainty}")
        data_vars["uncertainty"] = state_values(xr.DataArray(
            unc, dims=vol.dims, coords=coords,
            attrs={**base, "method": uncertainty, "unit_of_value": "nats" if uncertainty == "entropy" else "1"},
        ))
    attrs = {
        **base,
        "phases": list(spec.phases),
        "n_patches": int(n_patches),
        "patch": list(spec.patch),
        "overlap": float(overlap),
        "blend": blend,
        "sigma_scale": float(sigma_scale),
        "tta": int(bool(tta)),  # 1 or 0: netCDF holds no booleans (ds.to_netcdf refused them)
        "triplanar": int(bool(triplanar)),
        "model_key": spec.key,
        "footprint_bytes": int(foot),
        "footprint": format_bytes(foot),
    }
    if spec.ndim == 2:  # the planes the model saw: "z" (normal to z), "y", "x" or "zyx" (triplanar)
        attrs["planes"] = "zyx" if triplanar else "zyx"[plane_axis]
    if spec.normalization is not None:
        attrs["normalization"] = json.dumps(spec.normalization, default=str)
    return xr.Dataset(data_vars, attrs=attrs)
