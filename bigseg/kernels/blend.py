"""Sliding-window geometry and importance-weighted blending on NumPy blocks (no dask).

Everything here reproduces MONAI's ``sliding_window_inference`` (``monai/inferers/utils.py``,
MONAI 1.x) so that bigseg's block-wise result equals MONAI's whole-volume result:

* :func:`pad_widths` — a patch larger than the volume along an axis: the volume is padded with
  zeros, ``(patch - size) // 2`` voxels before and the rest after (``F.pad(mode="constant")``),
  and the output cropped back.
* :func:`scan_interval` — ``int(patch * (1 - overlap))`` (at least 1), or ``patch`` when the patch
  spans the (padded) axis (``_get_scan_interval``).
* :func:`patch_starts` — window starts ``i * interval`` with the last window clamped to the end of
  the axis (``dense_patch_slices``). The grid depends only on the volume shape, the patch and the
  overlap, never on the chunking.
* :func:`importance_map` — ``compute_importance_map``: ``"gaussian"`` is the product of 1-D
  Gaussians ``exp(-x² / 2σ²)`` on centred coordinates ``x = -(p-1)/2 … (p-1)/2`` with
  ``σ = sigma_scale × p``, evaluated in float32 and clamped below at ``max(min(map), 1e-3)``
  (so effectively at 1e-3); ``"constant"`` is all ones. No other normalisation.

The overlap-add pieces (:func:`block_patches`, :func:`accumulate_block`, :func:`overlap_regions`)
implement DESIGN.md's "each patch evaluated once": a block evaluates the patches whose start
corner lies in it and accumulates their weighted softmax over the block plus a one-sided
overhang of at most ``patch - 1`` voxels on the high side.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, wait
from itertools import product
from typing import Any

import numpy as np

__all__ = [
    "pad_widths",
    "scan_interval",
    "patch_starts",
    "count_patches",
    "importance_map",
    "block_patches",
    "extended_stop",
    "accumulate_block",
    "accumulate_block_torch",
    "weight_sum",
    "normalise_partial",
    "overlap_regions",
    "normalise_accumulator",
    "entropy",
    "margin",
]


def pad_widths(shape: Sequence[int], patch: Sequence[int]) -> list[tuple[int, int]]:
    """Zero padding (before, after) per axis that makes every axis at least one patch long.

    As MONAI: ``diff = max(patch - size, 0)``; ``diff // 2`` before, ``diff - diff // 2`` after.
    """
    out = []
    for s, p in zip(shape, patch):
        diff = max(int(p) - int(s), 0)
        out.append((diff // 2, diff - diff // 2))
    return out


def scan_interval(shape: Sequence[int], patch: Sequence[int], overlap: float | Sequence[float]) -> tuple[int, ...]:
    """Stride of the window grid per axis (``shape`` is the padded shape, >= ``patch``)."""
    ov = [float(overlap)] * len(shape) if np.isscalar(overlap) else [float(o) for o in overlap]  # type: ignore[arg-type]
    out = []
    for s, p, o in zip(shape, patch, ov):
        if int(p) == int(s):
            out.append(int(p))
        else:
            interval = int(p * (1 - o))
            out.append(interval if interval > 0 else 1)
    return tuple(out)


def patch_starts(shape: Sequence[int], patch: Sequence[int], overlap: float | Sequence[float]) -> list[np.ndarray]:
    """Start index of every window along each axis (``shape`` is the padded shape).

    Returns one sorted int64 array per axis; the windows are the Cartesian product.
    """
    interval = scan_interval(shape, patch, overlap)
    out = []
    for s, p, i in zip(shape, patch, interval):
        s, p = int(s), int(p)
        num = int(math.ceil(s / i))
        n = next((d for d in range(num) if d * i + p >= s), None)
        count = n + 1 if n is not None else 1
        starts = [k * i - max(k * i + p - s, 0) for k in range(count)]
        out.append(np.asarray(starts, dtype=np.int64))
    return out


def count_patches(shape: Sequence[int], patch: Sequence[int], overlap: float | Sequence[float]) -> int:
    """Number of windows MONAI evaluates on a (padded) volume of ``shape``."""
    return int(np.prod([len(s) for s in patch_starts(shape, patch, overlap)]))


def importance_map(patch: Sequence[int], mode: str = "gaussian", sigma_scale: float | Sequence[float] = 0.125) -> np.ndarray:
    """Blending weight of each voxel of a window, shape ``patch``, float32 (MONAI's
    ``compute_importance_map``, reproduced bit-for-bit with float32 arithmetic)."""
    patch = tuple(int(p) for p in patch)
    if mode == "constant":
        weight = np.ones(patch, dtype=np.float32)
    elif mode == "gaussian":
        scales = [float(sigma_scale)] * len(patch) if np.isscalar(sigma_scale) else [float(s) for s in sigma_scale]  # type: ignore[arg-type]
        weight = None
        for i, (p, sc) in enumerate(zip(patch, scales)):
            sigma = p * sc
            x = np.arange(-(p - 1) / 2.0, (p - 1) / 2.0 + 1, dtype=np.float32)[:p]
            g = np.exp(x**2 / np.float32(-2 * sigma**2)).astype(np.float32)
            if weight is None:
                weight = g
            else:
                weight = weight[..., None] * g.reshape((1,) * i + (p,))
        assert weight is not None
    else:
        raise ValueError(f"Expected `blend` to be one of ['gaussian', 'constant']. Got {mode!r} instead.")
    floor = max(float(weight.min()), 1e-3)
    return np.maximum(weight, np.float32(floor)).astype(np.float32)


def block_patches(starts: Sequence[np.ndarray], lo: Sequence[int], hi: Sequence[int]) -> list[np.ndarray]:
    """Per axis, the window starts that lie in ``[lo, hi)`` (the block's own windows)."""
    return [s[(s >= a) & (s < b)] for s, a, b in zip(starts, lo, hi)]


def extended_stop(own_starts: Sequence[np.ndarray], hi: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """High end of a block's accumulator: ``max(hi, last own start + patch)`` per axis (the
    one-sided overhang is ``extended_stop - hi`` <= ``patch - 1``)."""
    out = []
    for s, h, p in zip(own_starts, hi, patch):
        out.append(max(int(h), int(s[-1]) + int(p)) if len(s) else int(h))
    return tuple(out)


def accumulate_block(
    region: np.ndarray,
    origin: Sequence[int],
    own_starts: Sequence[np.ndarray],
    patch: Sequence[int],
    weight: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    n_classes: int,
    batch_size: int = 4,
) -> tuple[np.ndarray, int]:
    """Evaluate every window starting in a block and sum their weighted probabilities.

    Parameters
    ----------
    region : (z, y, x) float32 input over the block's extended region (block + overhang),
        whose first voxel is at global index ``origin``
    own_starts : per axis, the global starts of the block's windows
    patch : window shape (z, y, x)
    weight : importance map, shape ``patch``, float32
    predict : maps a batch ``(N, *patch)`` float32 to softmax probabilities ``(N, C, *patch)``
    n_classes : C

    Returns
    -------
    (acc, n) : ``acc`` (C, *region.shape) float32 = Σ_windows w·p over the region (the weight sum
        is ``acc.sum(0)``, since each window's probabilities sum to 1), and ``n`` the number of
        windows evaluated.
    """
    acc = np.zeros((n_classes, *region.shape), dtype=np.float32)
    corners = list(product(*[s.tolist() for s in own_starts]))
    patch = tuple(int(p) for p in patch)
    for b0 in range(0, len(corners), batch_size):
        batch = corners[b0 : b0 + batch_size]
        sls = [tuple(slice(c - o, c - o + p) for c, o, p in zip(corner, origin, patch)) for corner in batch]
        x = np.stack([region[sl] for sl in sls]).astype(np.float32, copy=False)
        probs = predict(x)
        for sl, p in zip(sls, probs):
            acc[(slice(None), *sl)] += p * weight
    return acc, len(corners)


def accumulate_block_torch(
    region: Any,
    origin: Sequence[int],
    own_starts: Sequence[np.ndarray],
    patch: Sequence[int],
    weight: Any,
    predict: Callable[[Any], Any],
    *,
    n_classes: int,
    batch_size: int = 4,
    keep: int | None = None,
    pool: Executor | None = None,
) -> tuple[Any, int]:
    """:func:`accumulate_block` on torch tensors (CPU or GPU): ``region`` (z, y, x) float32 and
    ``weight`` on the model's device, ``predict`` maps (N, *patch) to (N, C, *patch) there.
    Accumulates in place (``addcmul_``: no temporaries); returns ``(acc, n)`` with ``acc`` a
    (C, *region.shape) float32 tensor on that device. With ``keep`` only the first ``keep``
    classes are accumulated (the last class follows from the weight sum, see :func:`weight_sum`).

    With ``pool`` (e.g. threads that each run one single-threaded forward pass), batches are
    evaluated side by side in its threads, each thread adding its own batch as soon as the
    batch before it has been added: the sums are bit for bit those of the sequential loop,
    while one thread's additions overlap the other threads' forward passes and no thread waits
    for a slower sibling's whole batch."""
    import torch

    keep = n_classes if keep is None else int(keep)
    acc = torch.zeros((keep, *region.shape), dtype=torch.float32, device=region.device)
    corners = list(product(*[s.tolist() for s in own_starts]))
    patch = tuple(int(p) for p in patch)
    batches = [corners[b0 : b0 + batch_size] for b0 in range(0, len(corners), batch_size)]

    def evaluate(batch: list) -> tuple[list, Any]:
        sls = [tuple(slice(c - o, c - o + p) for c, o, p in zip(corner, origin, patch)) for corner in batch]
        return sls, predict(torch.stack([region[sl] for sl in sls]))

    def add(sls: list, probs: Any) -> None:
        for sl, p in zip(sls, probs):
            acc[(slice(None), *sl)].addcmul_(p[:keep], weight)

    if pool is None:
        for batch in batches:
            add(*evaluate(batch))
        return acc, len(corners)

    turn = threading.Condition()
    state = {"next": 0, "failed": False}
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()  # per thread in torch

    def work(i: int) -> None:
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                if state["failed"]:
                    return
                sls, probs = evaluate(batches[i])
                with turn:
                    turn.wait_for(lambda: state["next"] == i or state["failed"])
                    if state["failed"]:
                        return
                add(sls, probs)
                del probs
        except BaseException:
            with turn:
                state["failed"] = True
                turn.notify_all()
            raise
        with turn:
            state["next"] += 1
            turn.notify_all()

    futures = [pool.submit(work, i) for i in range(len(batches))]
    wait(futures)  # nothing of this block still runs when it returns, nor when it raises
    for fut in futures:  # in order: the first error raises
        fut.result()
    return acc, len(corners)


def weight_sum(
    lo: Sequence[int], hi: Sequence[int], starts: Sequence[np.ndarray], patch: Sequence[int], weight: np.ndarray
) -> np.ndarray:
    """Σ of the importance maps of every window over ``[lo, hi)``: MONAI's ``count_map`` for
    one block, float32 (it depends only on the grid, so blocks need not ship it).

    Summed with torch (its in-place adds use every intra-op thread and cost ~3× less per
    window than NumPy's on a 128³ block), in the same order, so bit-identical to NumPy."""
    import torch

    out = torch.zeros([b - a for a, b in zip(lo, hi)], dtype=torch.float32)
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
    near = [s[(s < h) & (s + p > l)] for s, l, h, p in zip(starts, lo, hi, patch)]
    for corner in product(*[n.tolist() for n in near]):
        src = tuple(slice(max(l - c, 0), min(h - c, p)) for c, l, h, p in zip(corner, lo, hi, patch))
        dst = tuple(slice(max(c - l, 0), min(c + p, h) - l) for c, l, h, p in zip(corner, lo, hi, patch))
        out[dst] += w[src]
    return out.numpy()


def normalise_partial(acc: np.ndarray, total_weight: np.ndarray, n_classes: int) -> np.ndarray:
    """Blended probabilities (C, ...) float32 from Σ w·p of the first C-1 classes and Σ w: the
    last class is 1 − Σ of the others (each window's softmax sums to 1), which keeps a third
    less data in flight for 3 phases. Agrees with dividing all C sums to ~1e-7."""
    out = np.empty((n_classes, *total_weight.shape), dtype=np.float32)
    np.divide(acc[: n_classes - 1], total_weight, out=out[: n_classes - 1])
    out[n_classes - 1] = 1
    out[n_classes - 1] -= out[: n_classes - 1].sum(axis=0)
    np.clip(out[n_classes - 1], 0, 1, out=out[n_classes - 1])
    return out


def labels_from_partial(acc: np.ndarray, total_weight: np.ndarray) -> np.ndarray:
    """``normalise_partial(acc, total_weight, C).argmax(0)`` as uint8 without the (C, ...)
    float32 probabilities: same float32 arithmetic (divide, sum of the first C-1 classes,
    ``1 - sum`` clipped to [0, 1]) and tie rule (the first maximum wins). ``acc`` (float32) is
    divided in place: pass a temporary. Runs on torch (multi-threaded in-place ops, ~30 % less
    time than NumPy on a 128³ block) with a running maximum: no int64 argmax of the block."""
    import torch

    a = torch.from_numpy(acc)
    a.div_(torch.from_numpy(np.ascontiguousarray(total_weight, dtype=np.float32)))
    last = a.sum(0)
    last.neg_().add_(1).clamp_(0, 1)
    labels = torch.zeros(last.shape, dtype=torch.uint8)
    best = a[0].clone()
    for c in range(1, a.shape[0] + 1):
        cand = a[c] if c < a.shape[0] else last
        wins = cand > best  # strictly: the first maximum wins ties, as argmax
        labels.masked_fill_(wins, c)
        torch.maximum(best, cand, out=best)
    return labels.numpy()


def overlap_regions(
    bounds: Sequence[Sequence[int]], ext_stop: Sequence[Sequence[int]]
) -> list[list[tuple[int, int, int]]]:
    """Per axis and per block ``i``: the lower-or-equal blocks ``j`` whose accumulator
    ``[bounds[j], ext_stop[j])`` reaches into block ``i`` = ``[bounds[i], bounds[i+1])``.

    Returns, per axis, a list (over target blocks ``i``) of lists of ``(j, start, stop)`` with
    ``start, stop`` the global overlap; a block receives from every lower block whose
    overhang reaches it, however small the chunks.
    """
    out: list[list[tuple[int, int, int]]] = []
    for b, e in zip(bounds, ext_stop):
        per_axis: list = []
        n = len(b) - 1
        for i in range(n):
            lo, hi = b[i], b[i + 1]
            src = []
            for j in range(i + 1):
                a, z = max(lo, b[j]), min(hi, e[j])
                if a < z:
                    src.append((j, a, z))
            per_axis.append(src)
        out.append(per_axis)
    return out


def normalise_accumulator(acc: np.ndarray) -> np.ndarray:
    """Σ w·p (C, ...) → blended probabilities (C, ...) float32: divide by the weight sum Σ w
    (= Σ_c acc[c]), in place for a float32 ``acc``. Voxels no window reached (impossible on a
    full grid) stay 0."""
    total = acc.sum(axis=0, dtype=np.float32)
    total[total == 0] = 1
    return np.divide(acc, total, out=acc if acc.dtype == np.float32 else None).astype(np.float32, copy=False)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy -Σ p log p (nats) over axis 0, float32."""
    p = np.clip(probs, 1e-12, 1.0)
    return (-(probs * np.log(p)).sum(axis=0)).astype(np.float32)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 − max_c p (0 = certain), float32."""
    return (1.0 - probs.max(axis=0)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# probabilities over time (a series' time window)
# --------------------------------------------------------------------------------------------
def mean_in_order(*blocks: np.ndarray) -> np.ndarray:
    """float32 mean of equal-shape blocks, summed in the order given (so the result does not
    depend on how the caller split the work). NaN (no data: outside a scan's field of view) is
    left out of a voxel's mean; NaN where every block has it."""
    acc = blocks[0].astype(np.float32, copy=True)
    for b in blocks[1:]:
        acc += b
    if np.isfinite(acc).all():  # no block held NaN or inf there (either would carry into the sum)
        acc /= np.float32(len(blocks))
        return acc
    acc = np.zeros(blocks[0].shape, np.float32)
    n = np.zeros(blocks[0].shape, np.float32)
    for b in blocks:
        ok = np.isfinite(b)
        acc += np.where(ok, b, 0)
        n += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return acc / n  # 0 / 0: NaN


def labels_keeping(probs: np.ndarray, before: np.ndarray, keep: int = 255) -> np.ndarray:
    """uint8 argmax over axis 1 of (t, phase, ...) probabilities, ``keep`` wherever ``before``
    (t, ...) holds it (voxels outside a field of view stay outside)."""
    out = probs.argmax(axis=1).astype(np.uint8)
    out[before == keep] = keep
    return out


def uncertainty_over_phases(probs: np.ndarray, method: str) -> np.ndarray:
    """:func:`entropy` or :func:`margin` (``method``) over axis 1 of (t, phase, ...) probabilities."""
    fn = entropy if method == "entropy" else margin
    return fn(np.moveaxis(probs, 1, 0))
