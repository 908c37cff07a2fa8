"""Per-block partials of the label metrics (pure NumPy/Numba, no dask).

Every function here works on one block (a NumPy array, possibly with a halo) and returns
small integer or float partials whose sum over blocks equals the whole-array result:

* :func:`label_stats` — histogram of label values, voxel faces shared by each phase pair per
  axis, and interface-voxel counts, in one pass (halo of one voxel, both sides);
* :func:`confusion_counts` — a 256 × 256 joint histogram of (truth, prediction) values
  (:func:`confusion_compact`: what the confusion matrix is made of, of their sum);
* :func:`pair_differences` — voxels that differ between every pair of segmentations;
* :func:`mc_field_areas` — the smoothed marching-cubes surface area of phase indicators and
  unions of phases over the cells whose lower corner lies in the block.

Marching-cubes estimator
------------------------
For a set ``S`` of phases, the indicator ``1[label ∈ S]`` is averaged over a 3 × 3 × 3 window
with ``mode="nearest"`` (the label volume is extended by replicating its border voxels), giving
``f = c / 27`` with an integer count ``c`` in 0..27. The iso-surface ``f = 0.5`` is triangulated
by the marching cubes of Lewiner et al. (2003) as implemented by ``skimage.measure.marching_cubes``
on the voxel-centre grid of the volume (surfaces are open at the outermost voxel centres). Each
cell's triangles depend only on its 8 corner counts, and vertex positions are recomputed in
float64 from the counts (``t = (13.5 - c0) / (c1 - c0)`` along a cell edge; the centre vertex of
the ambiguous cases is the centre of mass of the corners weighted by ``1 / |c - 13.5|``, as in
Lewiner's code), so a cell's area never depends on where the cell sits in the volume or in a
block:

* the 126 sign patterns without an ambiguous face or body diagonal have a fixed tiling, learned
  once per process from scikit-image itself (:func:`_learn_tilings`); their cells are measured
  directly in the jitted loop;
* the 128 ambiguous patterns (Lewiner's face and interior tests) are measured per distinct
  40-bit key of corner counts: scikit-image triangulates each new key once, on a batch of
  isolated cells, and the area is cached per voxel size (at most ``_MAX_TABLE`` keys).

The total is the mesh area that ``marching_cubes(c / 27, 0.5)`` + ``mesh_surface_area`` give on
the whole array, up to scikit-image's own float32 rounding of vertex positions (about 1e-7
relative), and is identical, up to the summation order (1e-12 relative), for every chunking.
(With ``scipy.ndimage.uniform_filter`` instead of ``c / 27`` the last bit of some values
differs, which can flip Lewiner's face tests where they are exact ties, e.g. on symmetric faces:
about 1e-5 relative on electrode volumes.)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

import numpy as np

from ._jit import njit
from .distance import euclidean_distance

__all__ = [
    "NBINS",
    "histogram",
    "slice_counts",
    "slice_faces",
    "label_stats",
    "confusion_counts",
    "confusion_compact",
    "pair_differences",
    "box_counts",
    "mc_field_areas",
    "mc_region",
    "mc_config_areas",
    "interface_mask",
    "shell_counts",
]

#: Number of histogram bins for uint8 labels (value 255 = unlabelled).
NBINS = 256
_LEVEL_COUNT = 13.5  # 0.5 * 27: iso-level of the smoothed indicator, in counts


# --------------------------------------------------------------------------------------------
# histogram + faces + interface voxels
# --------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def _label_stats_kernel(ext, z0, z1, y0, y1, x0, x1, k, hist, faces, onvox):  # pragma: no cover - jit
    Z, Y, X = ext.shape
    for z in range(z0, z1):
        for y in range(y0, y1):
            for x in range(x0, x1):
                v = ext[z, y, x]
                hist[v] += 1
                if v >= k:
                    continue
                # fast path: all existing 6-neighbours equal
                same = True
                if z + 1 < Z and ext[z + 1, y, x] != v:
                    same = False
                elif z > 0 and ext[z - 1, y, x] != v:
                    same = False
                elif y + 1 < Y and ext[z, y + 1, x] != v:
                    same = False
                elif y > 0 and ext[z, y - 1, x] != v:
                    same = False
                elif x + 1 < X and ext[z, y, x + 1] != v:
                    same = False
                elif x > 0 and ext[z, y, x - 1] != v:
                    same = False
                if same:
                    continue
                n0 = 255
                n1 = 255
                n2 = 255
                n3 = 255
                n4 = 255
                n5 = 255
                if z + 1 < Z:
                    n0 = ext[z + 1, y, x]
                    if n0 != v and n0 < k:
                        faces[0, v, n0] += 1
                if y + 1 < Y:
                    n1 = ext[z, y + 1, x]
                    if n1 != v and n1 < k:
                        faces[1, v, n1] += 1
                if x + 1 < X:
                    n2 = ext[z, y, x + 1]
                    if n2 != v and n2 < k:
                        faces[2, v, n2] += 1
                if z > 0:
                    n3 = ext[z - 1, y, x]
                if y > 0:
                    n4 = ext[z, y - 1, x]
                if x > 0:
                    n5 = ext[z, y, x - 1]
                # distinct neighbour phases != v, each counted once for this voxel
                if n0 != v and n0 < k:
                    onvox[v, n0] += 1
                if n1 != v and n1 < k and n1 != n0:
                    onvox[v, n1] += 1
                if n2 != v and n2 < k and n2 != n0 and n2 != n1:
                    onvox[v, n2] += 1
                if n3 != v and n3 < k and n3 != n0 and n3 != n1 and n3 != n2:
                    onvox[v, n3] += 1
                if n4 != v and n4 < k and n4 != n0 and n4 != n1 and n4 != n2 and n4 != n3:
                    onvox[v, n4] += 1
                if (n5 != v and n5 < k and n5 != n0 and n5 != n1 and n5 != n2 and n5 != n3
                        and n5 != n4):
                    onvox[v, n5] += 1


@njit(nogil=True, cache=True, inline="always")
def _count_voxel(ftab, mtab, s, v, n0, n1, n2, n3, n4, n5):  # pragma: no cover - jit
    """Tally one voxel of phase ``v``: its +z, +y, +x faces (``n0``, ``n1``, ``n2``) and the mask
    of phases among its six neighbours, in parity slot ``s``."""
    ftab[s, 0, v, n0] += 1
    ftab[s, 1, v, n1] += 1
    ftab[s, 2, v, n2] += 1
    mtab[s, v, (1 << n0) | (1 << n1) | (1 << n2) | (1 << n3) | (1 << n4) | (1 << n5)] += 1


@njit(nogil=True, cache=True)
def _label_stats_small_k(ext, z0, z1, y0, y1, x0, x1, lut, ftab, mtab):  # pragma: no cover - jit
    """Branch-free variant for at most 7 phases: values are mapped to codes ``min(v, K)`` (K =
    "not a phase"); a missing neighbour (volume border) is replaced by the voxel itself. Counts
    go to two interleaved tables (by x parity) to break store-to-load dependencies:
    ``ftab[s, axis, code, code_of_high_neighbour]`` and ``mtab[s, code, mask]`` where ``mask``
    has bit ``j`` set when a 6-neighbour has code ``j``."""
    Z, Y, X = ext.shape
    for z in range(z0, z1):
        zp = z + 1 if z + 1 < Z else z
        zm = z - 1 if z > 0 else z
        for y in range(y0, y1):
            yp = y + 1 if y + 1 < Y else y
            ym = y - 1 if y > 0 else y
            r = ext[z, y]
            up = ext[zp, y]
            dn = ext[zm, y]
            no = ext[z, yp]
            so = ext[z, ym]
            for x in range(x0, x1):
                s = x & 1
                v = lut[r[x]]
                xp = x + 1 if x + 1 < X else x
                xm = x - 1 if x > 0 else x
                n0 = lut[up[x]]
                n1 = lut[no[x]]
                n2 = lut[r[xp]]
                n3 = lut[dn[x]]
                n4 = lut[so[x]]
                n5 = lut[r[xm]]
                _count_voxel(ftab, mtab, s, v, n0, n1, n2, n3, n4, n5)


@njit(nogil=True, cache=True)
def _label_stats_valid(ext, z0, z1, y0, y1, x0, x1, ftab, mtab):  # pragma: no cover - jit
    """As :func:`_label_stats_small_k` for a block whose values are all phases (no lookup table),
    with the interior of each row free of border tests."""
    Z, Y, X = ext.shape
    xa = min(max(x0, 1), x1)
    xb = max(min(x1, X - 1), xa)
    for z in range(z0, z1):
        zp = z + 1 if z + 1 < Z else z
        zm = z - 1 if z > 0 else z
        for y in range(y0, y1):
            yp = y + 1 if y + 1 < Y else y
            ym = y - 1 if y > 0 else y
            r = ext[z, y]
            up = ext[zp, y]
            dn = ext[zm, y]
            no = ext[z, yp]
            so = ext[z, ym]
            for x in range(x0, xa):  # x = 0 (volume border)
                xp = x + 1 if x + 1 < X else x
                _count_voxel(ftab, mtab, x & 1, r[x], up[x], no[x], r[xp], dn[x], so[x], r[x])
            for x in range(xa, xb):  # interior of the row
                _count_voxel(ftab, mtab, x & 1, r[x], up[x], no[x], r[x + 1], dn[x], so[x], r[x - 1])
            for x in range(xb, x1):  # x = X - 1 (volume border)
                xm = x - 1 if x > 0 else x
                _count_voxel(ftab, mtab, x & 1, r[x], up[x], no[x], r[x], dn[x], so[x], r[xm])


_MASK_BITS = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.int64)  # (mask, bit)


def label_stats(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int],
                n_phases: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram, faces per axis and interface voxels of one block.

    Parameters
    ----------
    ext : (z, y, x) uint8 labels of the block plus a halo of ``halo_lo``/``halo_hi`` voxels
        (0 or 1 per axis; 0 where the block touches the volume border).
    n_phases : number of phases ``K``; values ``>= K`` are only counted in the histogram.

    Returns
    -------
    hist : (256,) int64 counts of each value over the block (halo excluded).
    faces : (3, K, K) int64: ``faces[a, i, j]`` = voxel pairs ``(v, v + e_a)`` with ``v`` in the
        block, ``label[v] = i``, ``label[v + e_a] = j != i`` (each face counted by exactly one
        block: the one holding its lower voxel).
    onvox : (K, K) int64: ``onvox[i, j]`` = voxels of phase ``i`` in the block with at least one
        6-neighbour of phase ``j != i``.
    """
    ext = np.ascontiguousarray(ext, dtype=np.uint8)
    k = int(n_phases)
    Z, Y, X = ext.shape
    if k <= 7:
        ftab = np.zeros((2, 3, 8, 8), np.int64)
        mtab = np.zeros((2, 8, 256), np.int64)
        bounds = (halo_lo[0], Z - halo_hi[0], halo_lo[1], Y - halo_hi[1], halo_lo[2], X - halo_hi[2])
        if ext.size and int(ext.max()) < k:
            _label_stats_valid(ext, *bounds, ftab, mtab)
        else:
            lut = np.minimum(np.arange(NBINS), k).astype(np.uint8)
            _label_stats_small_k(ext, *bounds, lut, ftab, mtab)
        faces = ftab.sum(axis=0)[:, :k, :k].copy()
        faces[:, np.arange(k), np.arange(k)] = 0
        mt = mtab.sum(axis=0)
        onvox = (mt @ _MASK_BITS)[:k, :k].copy()
        onvox[np.arange(k), np.arange(k)] = 0
        per_code = mt.sum(axis=1)
        if per_code[k:].any():  # values beyond the phases: full histogram (for the error message)
            hist = histogram(ext[halo_lo[0]:Z - halo_hi[0], halo_lo[1]:Y - halo_hi[1], halo_lo[2]:X - halo_hi[2]])
        else:
            hist = np.zeros(NBINS, np.int64)
            hist[:k] = per_code[:k]
        return hist, faces, onvox
    hist = np.zeros(NBINS, np.int64)
    faces = np.zeros((3, k, k), np.int64)
    onvox = np.zeros((k, k), np.int64)
    _label_stats_kernel(ext, halo_lo[0], Z - halo_hi[0], halo_lo[1], Y - halo_hi[1],
                        halo_lo[2], X - halo_hi[2], k, hist, faces, onvox)
    return hist, faces, onvox


@njit(nogil=True, cache=True)
def _hist_kernel(flat, out):  # pragma: no cover - jit
    # four interleaved tables break the store-to-load chain on runs of equal values
    n = flat.size
    for i in range(0, n - 3, 4):
        out[0, flat[i]] += 1
        out[1, flat[i + 1]] += 1
        out[2, flat[i + 2]] += 1
        out[3, flat[i + 3]] += 1
    for i in range(n - n % 4, n):
        out[0, flat[i]] += 1


def histogram(block: np.ndarray) -> np.ndarray:
    """(256,) int64 counts of each value of a uint8 block."""
    out = np.zeros((4, NBINS), np.int64)
    _hist_kernel(np.ascontiguousarray(block, np.uint8).ravel(), out)
    return out.sum(axis=0)


@njit(nogil=True, cache=True)
def _slice_hist_kernel(b, axis, out):  # pragma: no cover - jit
    nz, ny, nx = b.shape
    for i in range(nz):
        for j in range(ny):
            for m in range(nx):
                s = i if axis == 0 else (j if axis == 1 else m)
                out[s, b[i, j, m]] += 1


def slice_counts(block: np.ndarray, axis: int, k: int) -> np.ndarray:
    """Voxels of each phase in every slice of a uint8 label block normal to ``axis``.

    Returns
    -------
    (block.shape[axis], k + 1) int64: ``out[s, j]`` = voxels valued ``j`` (``j < k``) in slice
    ``s``, ``out[s, k]`` = unlabelled voxels (value 255). Other values are not counted.
    """
    out = np.zeros((block.shape[axis], NBINS), np.int64)
    _slice_hist_kernel(np.asarray(block, np.uint8), int(axis), out)
    return np.concatenate([out[:, :k], out[:, NBINS - 1:]], axis=1)


@njit(nogil=True, cache=True)
def _slice_faces_kernel(ext, z0, z1, y0, y1, x0, x1, axis, k, out):  # pragma: no cover - jit
    nz, ny, nx = ext.shape
    for i in range(z0, z1):
        for j in range(y0, y1):
            for m in range(x0, x1):
                a = ext[i, j, m]
                if a >= k:
                    continue
                s = i - z0 if axis == 0 else (j - y0 if axis == 1 else m - x0)
                if i + 1 < nz:
                    b = ext[i + 1, j, m]
                    if b != a and b < k:
                        out[s, 0, a, b] += 1
                if j + 1 < ny:
                    b = ext[i, j + 1, m]
                    if b != a and b < k:
                        out[s, 1, a, b] += 1
                if m + 1 < nx:
                    b = ext[i, j, m + 1]
                    if b != a and b < k:
                        out[s, 2, a, b] += 1


def slice_faces(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int], axis: int,
                k: int) -> np.ndarray:
    """Voxel faces shared by two phases in every slice (normal to ``axis``) of a block.

    Parameters
    ----------
    ext : (z, y, x) uint8 labels of the block plus its halo (``halo_lo``/``halo_hi`` voxels; at
        least one on the high side where the volume continues).

    Returns
    -------
    (block.shape[axis], 3, k, k) int64: ``out[s, d, a, b]`` = faces normal to ``d`` between a
    voxel of phase ``a`` in slice ``s`` and its +1 neighbour along ``d`` of phase ``b != a``
    (both below ``k``), each face once; a face between slices ``s`` and ``s + 1`` counts for
    ``s``. Summed over the slices and made symmetric, the block's share of the volume's faces.
    """
    lo = [int(v) for v in halo_lo]
    hi = [ext.shape[d] - int(halo_hi[d]) for d in range(3)]
    out = np.zeros((hi[axis] - lo[axis], 3, k, k), np.int64)
    _slice_faces_kernel(np.ascontiguousarray(ext, np.uint8), lo[0], hi[0], lo[1], hi[1], lo[2], hi[2], int(axis), k,
                        out)
    return out


# --------------------------------------------------------------------------------------------
# confusion and pairwise differences
# --------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def _joint_hist(t, p, out):  # pragma: no cover - jit
    n = t.size
    for i in range(0, n - 3, 4):
        out[0, t[i], p[i]] += 1
        out[1, t[i + 1], p[i + 1]] += 1
        out[2, t[i + 2], p[i + 2]] += 1
        out[3, t[i + 3], p[i + 3]] += 1
    for i in range(n - n % 4, n):
        out[0, t[i], p[i]] += 1


def confusion_counts(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(256, 256) int64 joint histogram ``out[truth_value, pred_value]`` of two uint8 blocks."""
    out = np.zeros((4, NBINS, NBINS), np.int64)
    _joint_hist(np.ascontiguousarray(truth, np.uint8).ravel(), np.ascontiguousarray(pred, np.uint8).ravel(), out)
    return out.sum(axis=0)


def confusion_compact(counts: np.ndarray, *, rows: Sequence[int], k: int) -> np.ndarray:
    """A volume's summed confusion vector (the ``NBINS``² joint histogram of
    :func:`confusion_counts`, raveled, then the truth's and the prediction's out-of-range counts)
    cut to what the confusion matrix is made of: the joint's row sums and column sums (``NBINS``
    each: the values each side holds), the two counts, then the ``rows`` (truth values) at the
    prediction's values ``0 .. k - 1`` and 255 (``len(rows)`` × ``(k + 1)``), all int64, raveled.
    4 KiB instead of 512 KiB per volume (the client holds one per scan of a series)."""
    counts = np.asarray(counts, np.int64)
    joint = counts[: NBINS * NBINS].reshape(NBINS, NBINS)
    part = joint[np.asarray(rows, np.intp)][:, [*range(k), NBINS - 1]]
    return np.concatenate([joint.sum(axis=1), joint.sum(axis=0), counts[NBINS * NBINS:NBINS * NBINS + 2], part.ravel()])


def pair_differences(*blocks: np.ndarray) -> np.ndarray:
    """For every pair ``(i < j)`` of uint8 label blocks, in ``itertools.combinations`` order: the
    voxels labelled in both (not 255) that differ, then (second half) the voxels labelled in both."""
    n = len(blocks)
    npair = n * (n - 1) // 2
    out = np.zeros(2 * npair, np.int64)
    labelled = [b != NBINS - 1 for b in blocks]  # 255: unlabelled
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            both = labelled[i] & labelled[j]
            out[k] = np.count_nonzero((blocks[i] != blocks[j]) & both)
            out[npair + k] = np.count_nonzero(both)
            k += 1
    return out


# --------------------------------------------------------------------------------------------
# shells: phase counts by distance from a phase
# --------------------------------------------------------------------------------------------
def shell_counts(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int], *,
                 around: tuple[int, ...], n_phases: int, max_distance: float, step: float,
                 sampling: tuple[float, float, float]) -> np.ndarray:
    """Voxels of each phase in shells of growing distance from the phases ``around``, in one block.

    Parameters
    ----------
    ext : (z, y, x) uint8 labels of the block plus its halo (``halo_lo``/``halo_hi`` voxels, at
        least ``max_distance`` where the volume continues).
    around : label values the distance is measured from.
    max_distance, step : in units of ``sampling`` (the Euclidean distance transform's spacing).

    Returns
    -------
    (n_phases, n_shells) int64: ``out[j, i]`` = voxels of phase ``j`` in the block whose distance
    ``d`` to the nearest ``around`` voxel satisfies ``i * step < d <= (i + 1) * step``, with
    ``n_shells = ceil(max_distance / step)``; exact when the halo covers ``max_distance``.
    """
    n_shells = int(np.ceil(max_distance / step - 1e-9))
    out = np.zeros((n_phases, n_shells), np.int64)
    src = np.isin(ext, around)
    if not src.any():
        return out
    d = euclidean_distance(~src, sampling)
    core = tuple(slice(lo, n - hi) for lo, n, hi in zip(halo_lo, ext.shape, halo_hi))
    d = d[core]
    codes = ext[core]
    sel = (d > 0) & (d <= max_distance * (1 + 1e-12)) & (codes < n_phases)
    shell = np.minimum(np.ceil(d[sel] / step - 1e-9).astype(np.int64) - 1, n_shells - 1)
    return np.bincount(codes[sel].astype(np.int64) * n_shells + shell,
                       minlength=n_phases * n_shells).reshape(n_phases, n_shells)


# --------------------------------------------------------------------------------------------
# probabilities: interface mask
# --------------------------------------------------------------------------------------------
def interface_mask(labels: np.ndarray, ignore: int | None = None) -> np.ndarray:
    """Voxels with at least one 6-neighbour of another label (neighbours inside the array only);
    a pair where either voxel holds ``ignore`` (e.g. 255, unlabelled) is no interface."""
    m = np.zeros(labels.shape, bool)
    for ax in range(labels.ndim):
        a = [slice(None)] * labels.ndim
        b = [slice(None)] * labels.ndim
        a[ax] = slice(None, -1)
        b[ax] = slice(1, None)
        d = labels[tuple(a)] != labels[tuple(b)]
        if ignore is not None:
            d &= (labels[tuple(a)] != ignore) & (labels[tuple(b)] != ignore)
        m[tuple(a)] |= d
        m[tuple(b)] |= d
    return m


# --------------------------------------------------------------------------------------------
# marching cubes on the 3x3x3-smoothed indicator
# --------------------------------------------------------------------------------------------
def box_counts(ind: np.ndarray) -> np.ndarray:
    """3 × 3 × 3 box sums (valid part) of a uint8 0/1 array: shape shrinks by 2 on every axis."""
    s = ind[:-2] + ind[1:-1] + ind[2:]
    s = s[:, :-2] + s[:, 1:-1] + s[:, 2:]
    return s[:, :, :-2] + s[:, :, 1:-1] + s[:, :, 2:]


@njit(nogil=True, cache=True, inline="always")
def _hash(key, bits):  # pragma: no cover - jit
    return (np.uint64(key) * np.uint64(11400714819323198485)) >> np.uint64(64 - bits)


@njit(nogil=True, cache=True, inline="always")
def _slot(key, tkeys, bits):  # pragma: no cover - jit
    """Where ``key`` sits in the open-addressing table ``tkeys`` (2**bits slots), -1 if absent."""
    mask = (1 << bits) - 1
    h = np.int64(_hash(key, bits))
    while True:
        kk = tkeys[h]
        if kk == key:
            return h
        if kk == -1:
            return np.int64(-1)
        h = (h + 1) & mask


@njit(nogil=True, cache=True)
def _table_insert(tkeys, tvals, bits, keys, vals):  # pragma: no cover - jit
    mask = (1 << bits) - 1
    for i in range(keys.size):
        key = keys[i]
        h = np.int64(_hash(key, bits))
        while True:
            kk = tkeys[h]
            if kk == key:
                break
            if kk == -1:
                tkeys[h] = key
                tvals[h] = vals[i]
                break
            h = (h + 1) & mask


class _AreaTable:
    """Open-addressing hash table key → cell area for one voxel size; grows, never shrinks.

    Readers (the jitted cell loop) get a consistent ``(keys, vals, bits)`` snapshot; writers
    build a new table under a lock, so concurrent threads never see a half-written table.
    """

    def __init__(self, spacing: tuple[float, float, float]):
        self.spacing = spacing
        self.lock = threading.Lock()
        self.n = 0
        self.snapshot = self._empty(12)

    @staticmethod
    def _empty(bits: int) -> tuple[np.ndarray, np.ndarray, int]:
        return np.full(1 << bits, -1, np.int64), np.zeros(1 << bits, np.float64), bits

    def add(self, keys: np.ndarray, vals: np.ndarray) -> None:
        with self.lock:
            tkeys, tvals, bits = self.snapshot
            need = self.n + len(keys)
            if need * 2 > (1 << bits):
                nbits = bits
                while need * 2 > (1 << nbits):
                    nbits += 1
                old = tkeys != -1
                nk, nv, _ = self._empty(nbits)
                _table_insert(nk, nv, nbits, tkeys[old], tvals[old])
                tkeys, tvals, bits = nk, nv, nbits
            else:
                tkeys, tvals = tkeys.copy(), tvals.copy()
            _table_insert(tkeys, tvals, bits, keys, vals)
            self.n = int(np.count_nonzero(tkeys != -1))
            self.snapshot = (tkeys, tvals, bits)


#: an empty second table for :func:`_mc_cells` (every key missing from the first is missing)
_NO_SIDE = _AreaTable._empty(1)

_TABLES: dict[tuple[float, float, float], _AreaTable] = {}
_MAX_TABLE = 1 << 21  # cached keys per voxel size (~64 MiB); beyond, new keys are computed each time
_TABLES_LOCK = threading.Lock()


def _table(spacing: tuple[float, float, float]) -> _AreaTable:
    key = tuple(float(s) for s in spacing)
    with _TABLES_LOCK:
        if key not in _TABLES:
            _TABLES[key] = _AreaTable(key)  # type: ignore[arg-type]
        return _TABLES[key]


# corner n = dz*4 + dy*2 + dx, key bits 5n..5n+4
_CORNERS = np.array([[n >> 2, (n >> 1) & 1, n & 1] for n in range(8)], np.int64)
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8)
                   if np.abs(_CORNERS[a] - _CORNERS[b]).sum() == 1], np.int64)  # 12 cell edges


def _decode(keys: np.ndarray) -> np.ndarray:
    return (keys[:, None] >> (5 * np.arange(8, dtype=np.int64))) & 31


@njit(nogil=True, cache=True)
def _snap_areas(local, cid, counts, spacing, out):  # pragma: no cover - jit
    """Snap each triangle vertex to its exact position, then add the triangle's area to its cell.

    An edge vertex (two local coordinates in {0, 1}) moves to ``t = (13.5 - c0) / (c1 - c0)``
    along its edge; the centre vertex of the ambiguous cases (no coordinate in {0, 1}) to the
    centre of mass of the 8 corners weighted by ``1 / |c - 13.5|`` (Lewiner et al. 2003, as in
    scikit-image). Returns the number of vertices that matched neither (left as given).
    """
    unmatched = 0
    p = np.empty((3, 3))
    for f in range(local.shape[0]):
        u = cid[f]
        for v in range(3):
            nint = 0
            fa = -1
            for a in range(3):
                l = local[f, v, a]
                if abs(l) < 1e-4 or abs(l - 1.0) < 1e-4:
                    nint += 1
                else:
                    fa = a
            ok = False
            if nint == 2:
                n0 = 0
                n1 = 0
                for a in range(3):
                    bit = 1 << (2 - a)
                    if a == fa:
                        n1 += bit
                    elif local[f, v, a] > 0.5:
                        n0 += bit
                        n1 += bit
                c0 = float(counts[u, n0])
                c1 = float(counts[u, n1])
                if (c0 > 13.5) != (c1 > 13.5):
                    t = (13.5 - c0) / (c1 - c0)
                    if abs(t - local[f, v, fa]) < 1e-4:
                        for a in range(3):
                            p[v, a] = local[f, v, a]
                        p[v, fa] = t
                        ok = True
            elif nint == 0:
                wz = 0.0
                wy = 0.0
                wx = 0.0
                ws = 0.0
                for n in range(8):
                    w = 1.0 / abs(float(counts[u, n]) - 13.5)
                    ws += w
                    wz += w * (n >> 2)
                    wy += w * ((n >> 1) & 1)
                    wx += w * (n & 1)
                cz = wz / ws
                cy = wy / ws
                cx = wx / ws
                if (abs(cz - local[f, v, 0]) < 1e-4 and abs(cy - local[f, v, 1]) < 1e-4
                        and abs(cx - local[f, v, 2]) < 1e-4):
                    p[v, 0] = cz
                    p[v, 1] = cy
                    p[v, 2] = cx
                    ok = True
            if not ok:
                unmatched += 1
                for a in range(3):
                    p[v, a] = local[f, v, a]
        ax = (p[1, 0] - p[0, 0]) * spacing[0]
        ay = (p[1, 1] - p[0, 1]) * spacing[1]
        az = (p[1, 2] - p[0, 2]) * spacing[2]
        bx = (p[2, 0] - p[0, 0]) * spacing[0]
        by = (p[2, 1] - p[0, 1]) * spacing[1]
        bz = (p[2, 2] - p[0, 2]) * spacing[2]
        cx_ = ay * bz - az * by
        cy_ = az * bx - ax * bz
        cz_ = ax * by - ay * bx
        out[u] += 0.5 * np.sqrt(cx_ * cx_ + cy_ * cy_ + cz_ * cz_)
    return unmatched


def _batch_triangles(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate isolated cells (U, 8 corner counts) with scikit-image in one call.

    The cells are laid out on a grid with stride 2, and a mask keeps only the cells holding a
    configuration. Returns the triangles' vertices relative to their cell (F, 3, 3) float64
    (as scikit-image gives them, float32-rounded) and each triangle's cell index (F,).
    """
    from skimage.measure import marching_cubes

    u = len(counts)
    g = max(1, int(np.ceil(u ** (1 / 3) - 1e-9)))
    while g ** 3 < u:
        g += 1
    vol = np.zeros((2 * g, 2 * g, 2 * g), np.float32)
    mask = np.zeros(vol.shape, bool)
    a, b, c = np.unravel_index(np.arange(u), (g, g, g))
    for n in range(8):
        dz, dy, dx = _CORNERS[n]
        vol[2 * a + dz, 2 * b + dy, 2 * c + dx] = counts[:, n] / np.float32(27)
    mask[2 * a + 1, 2 * b + 1, 2 * c + 1] = True  # scikit-image masks a cell by its upper corner
    verts, faces, _, _ = marching_cubes(vol, 0.5, mask=mask)
    tri = verts.astype(np.float64)[faces]  # (F, 3, 3)
    cell = np.floor(tri.mean(axis=1) / 2.0).astype(np.int64)  # (F, 3) grid index of the cell
    cid = np.ravel_multi_index(tuple(cell.T), (g, g, g))
    return np.ascontiguousarray(tri - 2.0 * cell[:, None, :]), cid


def mc_config_areas(keys: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                    *, return_unmatched: bool = False):
    """Marching-cubes area of isolated cells given by their 40-bit corner-count keys.

    The cells are triangulated by ``skimage.measure.marching_cubes`` (level 0.5 of
    ``count / 27``, see :func:`_batch_triangles`); each vertex is then snapped to its float64
    position computed from the counts, and the triangle areas are summed per cell.

    Parameters
    ----------
    keys : (U,) int64 keys (corner n = dz*4 + dy*2 + dx in bits 5n..5n+4)
    spacing : (z, y, x) voxel size

    Returns
    -------
    (U,) float64 areas in spacing units²; with ``return_unmatched`` also the number of
    vertices that could not be snapped (expected 0).
    """
    keys = np.asarray(keys, np.int64)
    u = len(keys)
    out = np.zeros(u, np.float64)
    if u == 0:
        return (out, 0) if return_unmatched else out
    counts = _decode(keys)
    local, cid = _batch_triangles(counts)
    unmatched = _snap_areas(local, cid, counts, np.asarray(spacing, np.float64), out)
    if return_unmatched:
        return out, int(unmatched)
    return out


# --------------------------------------------------------------------------------------------
# fixed tilings of the unambiguous sign patterns
# --------------------------------------------------------------------------------------------
# faces of the cell as corner cycles (n = dz*4 + dy*2 + dx)
_FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))


def _ambiguous(index: int) -> bool:
    """Whether a sign pattern (bit n = corner n above the level) needs Lewiner's tests.

    Ambiguous: a face with diagonal signs (cases 3, 6, 7, 10, 12, 13 of Lewiner et al.) or two
    corners of one sign at the ends of a body diagonal with the six others of the other sign
    (case 4, interior test).
    """
    bits = [(index >> n) & 1 for n in range(8)]
    for f in _FACES:
        s = [bits[n] for n in f]
        if s[0] == s[2] and s[1] == s[3] and s[0] != s[1]:
            return True
    pop = sum(bits)
    if pop in (2, 6):
        sel = [n for n in range(8) if bits[n] == (1 if pop == 2 else 0)]
        if sel[0] ^ sel[1] == 7:
            return True
    return False


_TILINGS: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
_TILINGS_LOCK = threading.Lock()


def _learn_tilings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangles (as triples of cell-edge numbers) of every unambiguous sign pattern.

    Learned from scikit-image itself: each of the 256 patterns is triangulated with two
    different sets of generic corner values; a pattern whose triangles are the same edge triples
    both times (and which :func:`_ambiguous` does not flag) has a fixed tiling, so its cells can
    be measured without calling scikit-image. Returns ``(ambiguous (256,) uint8, ntri (256,)
    int64, tiling (256, 12, 3) int64)``.
    """
    global _TILINGS
    with _TILINGS_LOCK:
        if _TILINGS is not None:
            return _TILINGS
        amb = np.array([_ambiguous(i) for i in range(256)], np.uint8)
        amb[0] = amb[255] = 0
        learned = []
        for hi, lo in (((15, 17, 21, 26, 19, 23, 16, 25), (3, 11, 0, 8, 12, 5, 1, 9)),
                       ((24, 14, 18, 22, 27, 16, 20, 15), (10, 2, 6, 13, 4, 7, 0, 11))):
            counts = np.array([[hi[n] if (i >> n) & 1 else lo[n] for n in range(8)] for i in range(1, 255)],
                              np.int64)
            local, cid = _batch_triangles(counts)
            edge_of = {(int(a), int(b)): e for e, (a, b) in enumerate(_EDGES)}
            tri_by_cell: list[list[tuple[int, ...]]] = [[] for _ in range(254)]
            for t in range(len(cid)):
                ids = []
                for v in range(3):
                    l_ = local[t, v]
                    near = (np.abs(l_) < 1e-4) | (np.abs(l_ - 1) < 1e-4)
                    if near.sum() != 2:
                        ids.append(12)  # centre vertex: only in ambiguous cases
                        continue
                    fa = int(np.flatnonzero(~near)[0])
                    base = [int(round(x)) if k != fa else 0 for k, x in enumerate(l_)]
                    top = list(base)
                    top[fa] = 1
                    n0 = base[0] * 4 + base[1] * 2 + base[2]
                    n1 = top[0] * 4 + top[1] * 2 + top[2]
                    ids.append(edge_of[(n0, n1)])
                tri_by_cell[cid[t]].append(tuple(ids))
            learned.append([sorted(tuple(sorted(x)) for x in tris) for tris in tri_by_cell])
        ntri = np.zeros(256, np.int64)
        tiling = np.full((256, 12, 3), -1, np.int64)
        for i in range(1, 255):
            a, b = learned[0][i - 1], learned[1][i - 1]
            if a != b or any(12 in t for t in a) or len(a) > 12:
                amb[i] = 1
            if amb[i]:
                continue
            ntri[i] = len(a)
            for j, t in enumerate(a):
                tiling[i, j] = t
        _TILINGS = (amb, ntri, tiling)
        return _TILINGS


@njit(nogil=True, cache=True)
def _mc_cells_fast(c, tkeys, tvals, bits, missing, amb, ntri, tiling, edges, spacing, keep):  # pragma: no cover - jit
    return _mc_cells(c, tkeys, tvals, bits, _NO_SIDE[0], _NO_SIDE[1], _NO_SIDE[2], missing, amb, ntri, tiling, edges,
                     spacing, keep)


@njit(nogil=True, cache=True)
def _mc_cells(c, tkeys, tvals, bits, xkeys, xvals, xbits, missing, amb, ntri, tiling, edges, spacing,
              keep):  # pragma: no cover - jit
    """:func:`_mc_cells_fast` with a second table ``xkeys``/``xvals``/``xbits`` looked up where the
    first has no key (this block's own keys where the shared table is full)."""
    nz, ny, nx = c.shape
    masked = keep.shape[0] == nz  # a (1, 1, 1) keep: every cell counts
    total = 0.0
    nmiss = 0
    a = np.empty(8, np.int64)
    pz = np.empty(3)
    py = np.empty(3)
    px = np.empty(3)
    sz, sy, sx = spacing[0], spacing[1], spacing[2]
    col = np.empty(nx, np.int64)
    for z in range(nz - 1):
        for y in range(ny - 1):
            # sign bits of the 4 corners of each (y, z) column: corner n = dz*4 + dy*2 (+ dx)
            for x in range(nx):
                col[x] = ((c[z, y, x] >= 14) | ((c[z, y + 1, x] >= 14) << 2)
                          | ((c[z + 1, y, x] >= 14) << 4) | ((c[z + 1, y + 1, x] >= 14) << 6))
            for x in range(nx - 1):
                idx = col[x] | (col[x + 1] << 1)
                if idx == 0 or idx == 255:
                    continue
                if masked and not (keep[z, y, x] & keep[z, y, x + 1] & keep[z, y + 1, x] & keep[z, y + 1, x + 1]
                                   & keep[z + 1, y, x] & keep[z + 1, y, x + 1] & keep[z + 1, y + 1, x]
                                   & keep[z + 1, y + 1, x + 1]):
                    continue  # a corner outside the labelled voxels: no surface there
                a[0] = c[z, y, x]
                a[1] = c[z, y, x + 1]
                a[2] = c[z, y + 1, x]
                a[3] = c[z, y + 1, x + 1]
                a[4] = c[z + 1, y, x]
                a[5] = c[z + 1, y, x + 1]
                a[6] = c[z + 1, y + 1, x]
                a[7] = c[z + 1, y + 1, x + 1]
                if amb[idx] == 0:
                    for t in range(ntri[idx]):
                        for v in range(3):
                            e = tiling[idx, t, v]
                            n0 = edges[e, 0]
                            n1 = edges[e, 1]
                            w = (13.5 - a[n0]) / (a[n1] - a[n0])
                            z0 = float(n0 >> 2)
                            y0 = float((n0 >> 1) & 1)
                            x0 = float(n0 & 1)
                            pz[v] = (z0 + w * (float(n1 >> 2) - z0)) * sz
                            py[v] = (y0 + w * (float((n1 >> 1) & 1) - y0)) * sy
                            px[v] = (x0 + w * (float(n1 & 1) - x0)) * sx
                        uz = pz[1] - pz[0]
                        uy = py[1] - py[0]
                        ux = px[1] - px[0]
                        vz = pz[2] - pz[0]
                        vy = py[2] - py[0]
                        vx = px[2] - px[0]
                        cz = uy * vx - ux * vy
                        cy = ux * vz - uz * vx
                        cx = uz * vy - uy * vz
                        total += 0.5 * np.sqrt(cz * cz + cy * cy + cx * cx)
                    continue
                key = (a[0] | (a[1] << 5) | (a[2] << 10) | (a[3] << 15) | (a[4] << 20) | (a[5] << 25)
                       | (a[6] << 30) | (a[7] << 35))
                h = _slot(key, tkeys, bits)
                if h >= 0:
                    total += tvals[h]
                    continue
                h = _slot(key, xkeys, xbits)
                if h >= 0:
                    total += xvals[h]
                else:
                    missing[nmiss] = key
                    nmiss += 1
    return total, nmiss


def fill_unlabelled(codes: np.ndarray, unlabelled: int = 255) -> np.ndarray:
    """``codes`` with each ``unlabelled`` voxel next to a labelled one given a phase of its
    labelled neighbours: those across a face first, else across an edge, else at a corner; the
    most frequent among them (ties: the lowest code). Others stay ``unlabelled``. Local (a voxel's
    3 × 3 × 3 neighbourhood), so a block with a halo fills its core as the whole array does.

    For the smoothed marching cubes next to a field of view's edge: the surfaces then end at the
    outermost labelled voxel centres, as at the volume's border (``mode="nearest"``), instead of
    the smoothing reading unlabelled voxels as none of the phases."""
    out = codes.copy()
    todo = codes == unlabelled
    if not todo.any() or todo.all():
        return out
    phases = [int(p) for p in np.unique(codes) if p != unlabelled]
    pad = np.pad(codes, 1, constant_values=unlabelled)
    n = codes.shape
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)]
    for k in (1, 2, 3):  # faces, edges, corners
        ring = [o for o in offsets if sum(map(abs, o)) == k]
        votes = np.zeros((len(phases),) + n, np.uint8)
        for o in ring:
            view = pad[tuple(slice(1 + d, 1 + d + m) for d, m in zip(o, n))]
            for j, p in enumerate(phases):
                votes[j] += view == p
        have = todo & (votes.max(axis=0) > 0)
        if have.any():
            out[have] = np.asarray(phases, codes.dtype)[votes.argmax(axis=0)[have]]
            todo &= ~have
        if not todo.any():
            break
    return out


def mc_region(ext: np.ndarray, origin: tuple[int, ...], shape: tuple[int, ...], volume: tuple[int, ...],
              halo_lo: tuple[int, ...], halo_hi: tuple[int, ...]) -> np.ndarray:
    """The ``ext`` that :func:`mc_field_areas` expects for one block, cut from the block plus its
    halo (``halo_lo``/``halo_hi`` voxels, at least 2 where the volume continues): the block's
    smoothed region (the block + 1 voxel on each high side, clipped to the volume) and one more
    voxel all round, border voxels replicated beyond the volume (``mode="nearest"``)."""
    sl, pad = [], []
    for a in range(3):
        o, b, n = origin[a], shape[a], volume[a]
        start, stop = o - 1, min(o + b + 1, n) + 1
        av0, av1 = o - halo_lo[a], o + b + halo_hi[a]
        s0, s1 = max(start, av0), min(stop, av1)
        sl.append(slice(s0 - av0, s1 - av0))
        pad.append((s0 - start, stop - s1))
    region = ext[tuple(sl)]
    if any(p != (0, 0) for p in pad):
        region = np.pad(region, pad, mode="edge")
    return region


def mc_field_areas(ext: np.ndarray, fields: list[tuple[int, ...]],
                   spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), keep: np.ndarray | None = None) -> np.ndarray:
    """Smoothed marching-cubes areas of several phase sets over one block's cells.

    Parameters
    ----------
    ext : (fz + 2, fy + 2, fx + 2) integer labels around the block's smoothed region: the
        region of ``f`` is the block extended by one voxel on each high side (clipped to the
        volume), and ``ext`` adds one more voxel on every side (border voxels replicated where
        the region touches the volume border, i.e. ``mode="nearest"``).
    fields : phase sets; the indicator of each set is smoothed and triangulated.
    spacing : (z, y, x) voxel size.
    keep : optional bool array of ``ext``'s shape: only cells whose 8 corners are kept count (the
        labelled voxels, with ``ext`` filled by :func:`fill_unlabelled`).

    Returns
    -------
    (len(fields),) float64 areas in spacing units² of the cells whose lower corner is a voxel
    of the region's first ``f.shape - 1`` voxels per axis, i.e. of the block.
    """
    table = _table(tuple(spacing))  # type: ignore[arg-type]
    amb, ntri, tiling = _learn_tilings()
    sp = np.asarray(table.spacing, np.float64)
    nphase = max((max(f) for f in fields if f), default=-1) + 1
    counts = [box_counts((ext == i).view(np.uint8)) for i in range(nphase)]
    corners = (np.ones((1, 1, 1), np.bool_) if keep is None or keep.all()
               else np.ascontiguousarray(keep[1:-1, 1:-1, 1:-1]))
    out = np.zeros(len(fields), np.float64)
    missing = None
    for j, f in enumerate(fields):
        if not f or len(f) == 0:
            continue
        c = counts[f[0]]
        for i in f[1:]:
            c = c + counts[i]
        if c.shape[0] < 2 or c.shape[1] < 2 or c.shape[2] < 2:
            continue
        ncell = (c.shape[0] - 1) * (c.shape[1] - 1) * (c.shape[2] - 1)
        if missing is None or missing.size < ncell:
            missing = np.empty(ncell, np.int64)
        tkeys, tvals, bits = table.snapshot
        total, nmiss = _mc_cells_fast(c, tkeys, tvals, bits, missing, amb, ntri, tiling, _EDGES, sp, corners)
        if nmiss:
            uk = np.unique(missing[:nmiss])
            vals = mc_config_areas(uk, table.spacing)
            side = _NO_SIDE
            if table.n + len(uk) <= _MAX_TABLE:
                table.add(uk, vals)
                tkeys, tvals, bits = table.snapshot
            else:  # the shared table is full: these keys in a small table of their own, for this block
                # only (not a copy of the shared one: up to 128 MiB and 0.1 s per field of every block)
                own = _AreaTable(table.spacing)
                own.add(uk, vals)
                side = own.snapshot
            # sum every cell again in cell order: adding the missing cells' areas after the others
            # made the total depend on what the cache held (which blocks ran before, in this process
            # or thread), so the same call differed in its last bits on a cold and a warm cache,
            # between runs, schedulers and workers
            total, nmiss = _mc_cells(c, tkeys, tvals, bits, *side, missing, amb, ntri, tiling, _EDGES, sp, corners)
            assert nmiss == 0, "marching-cubes cell areas missing from the table just filled"
        out[j] = total
    return out
