"""Per-block kernels for particle instances: splitting touching particles and per-particle partials.

Pure NumPy/SciPy/scikit-image functions of one block plus its halo (``ext``) and where that block
lies in the volume; :mod:`bigseg.measure._particles` runs them over a dask volume and adds the
partials up.

Splitting (the classic distance-transform watershed of touching spheres): the Euclidean distance
of every particle voxel to the nearest voxel of another phase
(:func:`bigseg.kernels.distance.euclidean_distance`, SciPy's values, with the voxel size as sampling), its h-maxima (6-connected: domes more
than ``h`` above the saddle towards any higher dome) as one marker per particle, and a
marker-based watershed of the negated distance inside the phase
(``skimage.segmentation.watershed``). The h-maxima are those of ``skimage.morphology.h_maxima``
(tested equal), found as the dynamics of the domes by one union-find sweep over the phase voxels
in decreasing distance (:func:`dome_tops`, 7× faster than the grey-level reconstruction). The distance gets a tiny deterministic offset, a hash of
the GLOBAL voxel index far below the spacing between distinct distances, so that no two voxels
tie: the flooding order, and with it the result, does not depend on where a block starts.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from ._jit import njit
from .distance import euclidean_distance
from .metrics import fill_unlabelled, mc_field_areas, mc_region

__all__ = ["axis_lengths", "distance_map", "dome_tops", "particle_markers", "split_particles", "label_points", "block_components", "neighbours", "face_pairs", "join_components", "stitch_components", "particle_partials", "fill_unlabelled_ids", "overlap_counts", "mutual_matches", "PARTIAL_KEYS"]

_FACES = ndi.generate_binary_structure(3, 1)
_TIE = 1e-6  # size of the tie-break offset, in units of the smallest voxel edge


def _tie_break(index: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) from a global voxel index (a multiplicative hash)."""
    h = (index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return h.astype(np.float64) / float(1 << 24)


def distance_map(mask: np.ndarray, origin: tuple[int, int, int], volume: tuple[int, int, int],
                 spacing: tuple[float, float, float]) -> np.ndarray:
    """(z, y, x) float64 distance of each ``mask`` voxel to the nearest non-mask voxel, in spacing
    units (0 outside the mask), plus the global tie-break offset (< 1e-6 of the smallest edge).

    ``origin`` is the global position of ``mask[0, 0, 0]``; voxels beyond the array are not
    background (as ``distance_transform_edt`` on the whole volume). Exact in a block's core when
    the halo is at least the largest distance.
    """
    d = euclidean_distance(mask, spacing)
    where = np.nonzero(mask)  # the tie-break only where it matters (phase voxels)
    index = np.ravel_multi_index(tuple(w + o for w, o in zip(where, origin)), volume)
    d[where] += _TIE * min(spacing) * _tie_break(index)
    return d


@njit(cache=True, nogil=True)
def _root(parent, p):  # pragma: no cover - jit
    while parent[p] != p:
        parent[p] = parent[parent[p]]  # path halving
        p = parent[p]
    return p


@njit(cache=True, nogil=True)
def _dome_tops(d, order, thr):  # pragma: no cover - jit
    nz, ny, nx = d.shape
    flat = d.ravel()
    parent = np.full(flat.size, -1, np.int64)  # -1: not reached yet
    peak = np.empty(flat.size, np.int64)  # per root: its highest voxel
    out = np.zeros(flat.size, np.bool_)
    plane = ny * nx
    sizes = (nz, ny, nx)
    strides = (plane, nx, 1)
    for k in range(order.size):
        p = order[k]
        parent[p] = p
        peak[p] = p
        z = p // plane
        y = (p - z * plane) // nx
        coords = (z, y, p - z * plane - y * nx)
        for j in range(6):  # the 6 face neighbours: axis j // 2, step -1 or +1
            a = j // 2
            step = 2 * (j % 2) - 1
            if not 0 <= coords[a] + step < sizes[a]:
                continue
            q = p + step * strides[a]
            if parent[q] < 0:
                continue
            rq = _root(parent, q)
            rp = _root(parent, p)
            if rq == rp:
                continue
            pa = peak[rp]
            pb = peak[rq]
            if flat[pa] > flat[pb] or (flat[pa] == flat[pb] and pa < pb):
                hi, lo = rp, rq
            else:
                hi, lo = rq, rp
            if flat[peak[lo]] - flat[p] >= thr:  # the lower dome's height above this saddle
                out[peak[lo]] = True
            parent[lo] = hi
    for k in range(order.size):  # the highest dome of each component: above the background (0)
        p = order[k]
        if parent[p] == p and flat[peak[p]] >= thr:
            out[peak[p]] = True
    return out.reshape(d.shape)


def dome_tops(d: np.ndarray, mask: np.ndarray, height: float) -> np.ndarray:
    """(z, y, x) bool: the top voxel of every dome of ``d`` inside ``mask`` that rises at least
    ``height`` above its saddle towards a higher dome (6-connected; the highest dome of a
    component counts from 0, the level outside ``mask``). With ``d`` > 0 inside the mask and 0
    outside, equal to ``skimage.morphology.h_maxima(d, height, footprint=6-connected) & mask``
    for distinct values inside the mask (tested): the dynamics of the domes, found by merging the
    mask voxels into components in decreasing order of ``d`` (union-find).
    """
    idx = np.flatnonzero(mask)
    order = idx[np.argsort(-d.ravel()[idx], kind="stable")]
    return _dome_tops(np.ascontiguousarray(d, np.float64), order, float(height))


def _phase_distance(codes: np.ndarray, mask: np.ndarray, origin: tuple[int, int, int],
                    volume: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """:func:`distance_map` of ``mask`` with unlabelled (255) voxels, e.g. outside the field of
    view, taken as the volume's border is (not background: the particle may go on there), so
    that a particle cut by them is split as in the volume cropped without them. 0 outside ``mask``."""
    unlabelled = codes == 255
    if not unlabelled.any():
        return distance_map(mask, origin, volume, spacing)
    return np.where(mask, distance_map(mask | unlabelled, origin, volume, spacing), 0.0)


def particle_markers(codes: np.ndarray, phase: int, origin: tuple[int, int, int], volume: tuple[int, int, int],
                     spacing: tuple[float, float, float], h: float,
                     open_sides: tuple[tuple[bool, bool], ...] = ((False, False),) * 3) -> np.ndarray:
    """(z, y, x) bool marker voxels: h-maxima (domes more than ``h`` voxel edges above their
    saddle) of the distance map of the voxels valued ``phase``; one marker per particle.

    A component of the phase too small to hold such a dome (e.g. a few voxels) gets its highest
    voxel as marker, unless it touches a side of the array where the volume continues
    (``open_sides[axis] = (low, high)``): the block that holds all of it marks it.
    """
    mask = codes == phase
    if not mask.any():
        return np.zeros(mask.shape, bool)
    d = _phase_distance(codes, mask, origin, volume, spacing)
    # 6-connected, as the watershed: a dome must not "see" a higher one through a diagonal contact.
    # Domes must rise MORE than h (by over twice the tie-break): distances are often exact lattice
    # values (a dome exactly h high is common), and the tie-break must not decide those.
    m = dome_tops(d, mask, (h + 2 * _TIE) * min(spacing))
    cc, n = ndi.label(mask, structure=_FACES)
    has = np.zeros(n + 1, bool)
    has[cc[m]] = True
    for j, box in enumerate(ndi.find_objects(cc), start=1):
        if has[j] or box is None:
            continue
        if any((s.start == 0 and lo) or (s.stop == size and hi)
               for s, size, (lo, hi) in zip(box, mask.shape, open_sides)):
            continue
        sub = np.where(cc[box] == j, d[box], -1.0)
        at = np.unravel_index(int(np.argmax(sub)), sub.shape)
        m[tuple(s.start + a for s, a in zip(box, at))] = True
    return m


def split_particles(codes: np.ndarray, markers: np.ndarray, phase: int, origin: tuple[int, int, int],
                    volume: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """(z, y, x) particle ids: the watershed of the negated distance map of ``codes == phase``
    flooded from ``markers`` (their integer ids, 0 = none), 6-connected, inside the phase.
    Phase voxels that no marker reaches inside the array stay 0."""
    mask = codes == phase
    if not mask.any() or not markers.any():
        return np.zeros(mask.shape, markers.dtype)
    d = _phase_distance(codes, mask, origin, volume, spacing)
    return watershed(-d, markers=np.where(mask, markers, 0), mask=mask, connectivity=1).astype(markers.dtype)


def label_points(index: np.ndarray, volume: tuple[int, int, int]) -> np.ndarray:
    """Connected components (6-neighbourhood, as the watershed) of a sparse set of voxels given by their sorted,
    distinct global linear indices: ids 1, 2, ... in raster order of each component's first voxel."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(index)
    if n == 0:
        return np.zeros(0, np.int64)
    Z, Y, X = volume
    z, y, x = np.unravel_index(index, volume)
    rows, cols = [], []
    for dz, dy, dx in ((0, 0, 1), (0, 1, 0), (1, 0, 0)):  # the "forward" face neighbours
        zz, yy, xx = z + dz, y + dy, x + dx
        ok = (zz < Z) & (yy >= 0) & (yy < Y) & (xx >= 0) & (xx < X)
        nb = (zz * Y + yy) * X + xx
        pos = np.searchsorted(index, nb)
        hit = ok & (pos < n)
        hit[hit] = index[pos[hit]] == nb[hit]
        rows.append(np.flatnonzero(hit))
        cols.append(pos[hit])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # renumber components by their first voxel (index is sorted, so by first occurrence)
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[comp].astype(np.int64) + 1


def block_components(mask: np.ndarray) -> tuple[np.ndarray, int, tuple[np.ndarray, ...]]:
    """6-connected components of one block (``scipy.ndimage.label``) and the labels on its six
    faces, low and high per axis (z, y, x), for stitching with the neighbouring blocks."""
    lab, n = ndi.label(mask, structure=_FACES)
    faces = tuple(f for a in range(3) for f in (np.take(lab, 0, axis=a), np.take(lab, -1, axis=a)))
    return lab.astype(np.int32), int(n), faces


def neighbours(grid: tuple[int, ...]):
    """``(block, its higher neighbour, axis)`` for every pair of blocks sharing a face, blocks
    in C order."""
    for b in np.ndindex(*grid):
        for a in range(len(grid)):
            if b[a] + 1 < grid[a]:
                yield b, tuple(v + (1 if i == a else 0) for i, v in enumerate(b)), a


def face_pairs(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """(n, 2) int64 distinct pairs (label on ``hi``, label on ``lo``) of the labelled voxels
    facing each other across a block border: a block's high face and its neighbour's low face."""
    m = (hi > 0) & (lo > 0)
    if not m.any():
        return np.zeros((0, 2), np.int64)
    return np.unique(np.stack([hi[m], lo[m]], axis=1).astype(np.int64), axis=0)


def join_components(counts: np.ndarray, pairs: dict[tuple[tuple[int, ...], tuple[int, ...]], np.ndarray]) -> np.ndarray:
    """Global component of every block-local component, from the :func:`face_pairs` of each
    pair of neighbouring blocks ``(block, neighbour)`` (labels from 1, as on the faces).

    Returns ``(counts.sum(),)`` int64 global ids (from 0), blocks in C order.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    offsets = np.concatenate([[0], np.cumsum(counts.ravel())])
    flat = {b: i for i, b in enumerate(np.ndindex(*counts.shape))}
    rows, cols = [], []
    for (b, nb), pr in pairs.items():
        if len(pr):
            rows.append(offsets[flat[b]] + pr[:, 0] - 1)
            cols.append(offsets[flat[nb]] + pr[:, 1] - 1)
    n = int(offsets[-1])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    _, comp = connected_components(coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n)), directed=False)
    return comp.astype(np.int64)


def stitch_components(counts: np.ndarray, faces: dict[tuple[int, ...], tuple[np.ndarray, ...]]) -> np.ndarray:
    """Global component of every block-local component.

    Parameters
    ----------
    counts : (blocks along z, y, x) number of local components of each block.
    faces : for each block index, its six face label arrays from :func:`block_components`.

    Returns
    -------
    (counts.sum(),) int64 global ids (from 0) of the local components, blocks in C order; two
    local components are one when they share a face across a block border.
    """
    return join_components(counts, {(b, nb): face_pairs(faces[b][2 * a + 1], faces[nb][2 * a])
                                    for b, nb, a in neighbours(counts.shape)})


def overlap_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxels shared by the particles of two label images of the same block (e.g. two time
    steps): ``(pairs (n, 2) int64 (id in a, id in b), counts (n,) int64)``, ids 0 left out."""
    m = (a > 0) & (b > 0)
    pa, pb = a[m].astype(np.uint64), b[m].astype(np.uint64)
    if len(pa) and int(max(pa.max(), pb.max())) >> 32:  # ids beyond 32 bits: no 64-bit key holds a pair
        pairs, counts = np.unique(np.stack([pa, pb], axis=1), axis=0, return_counts=True)
        return pairs.astype(np.int64), counts.astype(np.int64)
    # one uint64 key per pair (int64 overflowed for a first id of 2**31 and more)
    uniq, counts = np.unique((pa << np.uint64(32)) | pb, return_counts=True)
    return (np.stack([uniq >> np.uint64(32), uniq & np.uint64(0xFFFFFFFF)], axis=1).astype(np.int64),
            counts.astype(np.int64))


def mutual_matches(pairs: np.ndarray, counts: np.ndarray, size_a: np.ndarray, size_b: np.ndarray,
                   min_fraction: float = 0.5) -> dict[int, int]:
    """Particles of step a continued by particles of step b: ``{id_a: id_b}`` for pairs that are
    each other's largest overlap (ties: the smaller id) and share at least ``min_fraction`` of
    the smaller particle. A particle that cracks continues as its largest piece; the others,
    and particles without such a partner, start new tracks.

    ``pairs``/``counts``: overlaps summed over all blocks (each pair once); ``size_a``/``size_b``:
    voxels per particle, indexed by id (index 0 unused).
    """
    if len(pairs) == 0:
        return {}
    order = np.lexsort((pairs[:, 1], -counts))  # largest overlap first, then the smaller id in b
    best_b: dict[int, tuple[int, int]] = {}
    for i in order:
        best_b.setdefault(int(pairs[i, 0]), (int(pairs[i, 1]), int(counts[i])))
    order = np.lexsort((pairs[:, 0], -counts))
    best_a: dict[int, int] = {}
    for i in order:
        best_a.setdefault(int(pairs[i, 1]), int(pairs[i, 0]))
    out = {}
    for ia, (ib, n) in best_b.items():
        if best_a.get(ib) == ia and n >= min_fraction * min(size_a[ia], size_b[ib]):
            out[ia] = ib
    return out


def fill_unlabelled_ids(ids: np.ndarray, codes: np.ndarray, phase: int, unlabelled: int = 255) -> np.ndarray:
    """``ids`` with each ``unlabelled`` voxel that :func:`bigseg.kernels.metrics.fill_unlabelled`
    gives ``phase`` given the particle id most frequent among its neighbours of the ring that
    decided it (across a face, else an edge, else a corner; ties: the particle of the tied
    neighbour first in raster order, not the lowest id: ids numbered per chunking, as the
    components of ``split=False`` are, would make the fill, and so the areas, depend on it), so
    that a particle's smoothed indicator is filled next to a field of view's edge as its phase's
    is (the edge voxel's particle, not its phase, continues beyond it; ``mode="nearest"`` at the
    volume's border). Local (a voxel's 3 × 3 × 3 neighbourhood), as the phases' fill."""
    out = ids.copy()
    todo = codes == unlabelled
    pts = np.argwhere(todo & (fill_unlabelled(codes, unlabelled) == phase))
    if not len(pts):
        return out
    pid = np.pad(ids.astype(np.int64), 1)
    plabelled = np.pad(~todo, 1)  # beyond the array: not labelled, as the fill has it
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)]
    done = np.zeros(len(pts), bool)
    for k in (1, 2, 3):  # faces, edges, corners
        q = pts[:, None, :] + 1 + np.array([o for o in offsets if sum(map(abs, o)) == k])[None]
        at = (q[..., 0], q[..., 1], q[..., 2])
        here = ~done & plabelled[at].any(axis=1)
        v = np.where(plabelled[at], pid[at], 0)[here]  # (m, ring): the ring's particle ids (0: none)
        votes = ((v[:, :, None] == v[:, None, :]) & (v[:, None, :] > 0)).sum(axis=2)
        # most votes, then the first in the ring's raster order (offsets in lexicographic order)
        best = np.argmax(votes, axis=1)
        sel = pts[here]
        out[sel[:, 0], sel[:, 1], sel[:, 2]] = v[np.arange(len(v)), best]
        done |= here
    return out


def axis_lengths(voxels: np.ndarray, sums: np.ndarray, products: np.ndarray, spacing) -> np.ndarray:
    """Principal axis lengths of particles from their moments, longest first: (n, 3), in the units of
    ``spacing``.

    ``voxels`` (n,) counts, ``sums`` (n, 3) coordinate sums (z, y, x voxel indices) and ``products``
    (n, 3, 3) sums of their products. Each voxel is a solid box (its own variance, edge² / 12, added):
    the covariance's eigenvalues λ give the lengths √(20 λ), the full axes of the ellipsoid of the same
    second moments (scikit-image's ``axis_major_length``/``axis_minor_length`` for points at the voxel
    centres: a voxel there is 0 long, here its edge × 1.29; a ball of radius 10 voxels within 0.5 %).
    """
    sp = np.asarray(spacing, np.float64)
    n = np.asarray(voxels, np.float64)[:, None, None]
    mean = np.asarray(sums, np.float64) / n[:, :, 0]
    cov = np.asarray(products, np.float64) / n - mean[:, :, None] * mean[:, None, :]
    cov = cov * sp[:, None] * sp[None, :] + np.diag(sp ** 2 / 12.0)
    lam = np.linalg.eigvalsh(cov)[:, ::-1] if len(cov) else np.zeros((0, 3))
    return np.sqrt(20.0 * np.clip(lam, 0.0, None))


#: Keys of a :func:`particle_partials` table, all 1D arrays over its ``id``.
PARTIAL_KEYS = ("id", "voxels", "sum_z", "sum_y", "sum_x", "sum_zz", "sum_yy", "sum_xx", "sum_zy", "sum_zx", "sum_yx",
                "min_z", "min_y", "min_x", "max_z", "max_y", "max_x", "first", "intensity", "intensity_voxels",
                "min_intensity", "max_intensity", "contacts", "area")


def particle_partials(ids: np.ndarray, codes: np.ndarray, intensity: np.ndarray | None, *, phase: int,
                      n_phases: int, origin: tuple[int, int, int], shape: tuple[int, int, int],
                      volume: tuple[int, int, int], halo_lo: tuple[int, int, int],
                      halo_hi: tuple[int, int, int], spacing: tuple[float, float, float],
                      area_method: str = "marching_cubes") -> dict[str, np.ndarray]:
    """Additive per-particle partials of one block.

    Parameters
    ----------
    ids : (z, y, x) integer particle ids of the block plus a halo of ``halo_lo``/``halo_hi``
        voxels (at least 2 where the volume continues, 3 where it holds unlabelled voxels; 0 at its
        border); 0 = no particle.
    codes : the phase labels on the same grid (``phase`` marks particle voxels).
    intensity : grey values on the same grid, or None.
    origin, shape, volume : the block's first voxel and shape, and the volume's shape.

    Returns
    -------
    dict of 1D arrays over ``id`` (every particle with a voxel in the block or a marching-cubes
    cell owned by it): ``voxels``; coordinate sums ``sum_z/y/x`` (voxel indices) and sums of their
    products ``sum_zz/yy/xx/zy/zx/yx`` (the second moments); bounding box
    ``min_*``/``max_*`` (inclusive; +/- large values where the block holds none of its voxels);
    ``first``, the smallest global linear index of its voxels; ``intensity`` sums,
    ``intensity_voxels`` counts and ``min_intensity``/``max_intensity`` (+/- inf where none) over
    the voxels whose grey value is finite (NaN and inf left out; zeros without ``intensity``);
    ``contacts`` (n, n_phases + 1) area of the faces shared with each other phase (column
    ``phase``: faces with other particles, or with phase voxels of no particle) and, in the last
    column, faces on the volume border; a face normal to axis ``a`` weighs ``prod(spacing) /
    spacing[a]``, so anisotropic voxels count by area; ``area``, the smoothed marching-cubes
    surface area of the particle over the cells owned by the block (see
    :mod:`bigseg.kernels.metrics`; open at unlabelled (255) voxels, as the phases' surfaces:
    :func:`fill_unlabelled_ids`), or with ``area_method="crofton"`` its Crofton area over the
    crossings that start at its voxels in the block (:mod:`bigseg.kernels.crofton`; none at the
    volume border or against unlabelled voxels).
    """
    core = tuple(slice(lo, n - hi) for lo, n, hi in zip(halo_lo, ids.shape, halo_hi))
    cid = ids[core]
    cut = (origin, shape, volume, halo_lo, halo_hi)
    unlabelled = codes == 255
    keep = None
    if area_method != "crofton" and unlabelled.any():  # smoothed as at the volume's border; only cells between
        # labelled voxels count (their fill reads a halo of 3)
        region = mc_region(fill_unlabelled_ids(ids, codes, phase), *cut)
        keep = ~mc_region(unlabelled, *cut)
    else:
        region = mc_region(ids, *cut)
    uids = np.unique(region)
    uids = uids[uids != 0]
    n = len(uids)
    out: dict[str, np.ndarray] = {"id": uids.astype(np.int64)}
    big = np.iinfo(np.int64).max
    if n == 0:
        for key in PARTIAL_KEYS[1:]:
            out[key] = np.zeros((0, n_phases + 1) if key == "contacts" else 0)
        return out
    sel = cid != 0
    idx = np.searchsorted(uids, cid[sel])
    zz, yy, xx = np.nonzero(sel)
    zz = zz + origin[0]
    yy = yy + origin[1]
    xx = xx + origin[2]
    out["voxels"] = np.bincount(idx, minlength=n).astype(np.int64)
    out["sum_z"] = np.bincount(idx, weights=zz, minlength=n)
    out["sum_y"] = np.bincount(idx, weights=yy, minlength=n)
    out["sum_x"] = np.bincount(idx, weights=xx, minlength=n)
    for key, a, b in (("sum_zz", zz, zz), ("sum_yy", yy, yy), ("sum_xx", xx, xx), ("sum_zy", zz, yy),
                      ("sum_zx", zz, xx), ("sum_yx", yy, xx)):
        out[key] = np.bincount(idx, weights=a * b, minlength=n)  # (summed as float64)
    first = np.ravel_multi_index((zz, yy, xx), volume)
    for key, arr, fn, init in (("min_z", zz, np.minimum, big), ("min_y", yy, np.minimum, big),
                               ("min_x", xx, np.minimum, big), ("first", first, np.minimum, big),
                               ("max_z", zz, np.maximum, -1), ("max_y", yy, np.maximum, -1),
                               ("max_x", xx, np.maximum, -1)):
        acc = np.full(n, init, np.int64)
        fn.at(acc, idx, arr)
        out[key] = acc
    if intensity is not None:
        grey = intensity[core][sel].astype(np.float64)
        ok = np.isfinite(grey)  # a NaN or inf grey value is no measurement: left out (and counted)
        out["intensity"] = np.bincount(idx[ok], weights=grey[ok], minlength=n)
        out["intensity_voxels"] = np.bincount(idx[ok], minlength=n).astype(np.int64)
        for key, fn, init in (("min_intensity", np.minimum, np.inf), ("max_intensity", np.maximum, -np.inf)):
            acc = np.full(n, init)
            fn.at(acc, idx[ok], grey[ok])
            out[key] = acc
    else:
        for key in ("intensity", "min_intensity", "max_intensity"):
            out[key] = np.zeros(n)
        out["intensity_voxels"] = np.zeros(n, np.int64)
    # faces: each particle voxel of the block against its 6 neighbours (code -1 = beyond the volume)
    pid = np.pad(ids, 1, constant_values=0)
    small = codes.dtype in (np.uint8, np.int8, np.int16)  # (int16 holds their codes and the -1)
    pcode = np.pad(codes.astype(np.int16 if small else np.int64), 1, constant_values=-1)
    c0 = tuple(slice(s.start + 1, s.stop + 1) for s in core)
    contacts = np.zeros((n, n_phases + 1), np.float64)
    sp = np.asarray(spacing, np.float64)
    # each neighbour compared over the whole block, then the particle voxels' pairs counted through
    # one index image (idx where sel, -1 elsewhere): one gather per neighbour, not three (the same
    # counts; the crossings took 60 % of the partials of a 128^3 block)
    cidx = np.full(cid.shape, -1, np.int32 if n * (n_phases + 1) <= np.iinfo(np.int32).max else np.int64)
    cidx[sel] = idx
    pcat = np.where(pcode < 0, n_phases, np.minimum(pcode, n_phases))  # each voxel's contact column
    for a in range(3):
        face_area = float(np.prod(sp) / sp[a])  # a face normal to axis a: the other two edges
        for step in (-1, 1):
            nb = list(c0)
            nb[a] = slice(c0[a].start + step, c0[a].stop + step)
            face = (pid[tuple(nb)] != cid) & sel
            contacts += face_area * np.bincount(cidx[face] * (n_phases + 1) + pcat[tuple(nb)][face],
                                                minlength=n * (n_phases + 1)).reshape(n, n_phases + 1)
    out["contacts"] = contacts
    if area_method == "crofton":  # the crossings of the 13 directions' lines, seen from the particle's voxels
        from .crofton import DIRECTIONS, crofton_weights

        w, length = crofton_weights(tuple(float(s) for s in sp))
        area = np.zeros(n)
        crossable = (pcode >= 0) & (pcode < n_phases)  # not the border, not 255
        for d, wd, ld in zip(DIRECTIONS, w, length):
            for sign in (-1, 1):
                nb = tuple(slice(s.start + sign * o, s.stop + sign * o) for s, o in zip(c0, d))
                cross = (pid[nb] != cid) & crossable[nb] & sel
                area += np.bincount(cidx[cross], minlength=n) * (2.0 * wd * float(np.prod(sp)) / ld)
        out["area"] = area
        return out
    # marching cubes of each particle's indicator over the cells this block owns (next to
    # unlabelled voxels: over those between labelled voxels, ``region`` filled as it says)
    compact = np.searchsorted(uids, region) + 1
    compact[region == 0] = 0
    area = np.zeros(n)
    for j, box in enumerate(ndi.find_objects(compact)):
        if box is None:
            continue
        box = tuple(slice(max(s.start - 3, 0), min(s.stop + 3, m)) for s, m in zip(box, compact.shape))
        ind = (compact[box] == j + 1).view(np.uint8)
        area[j] = mc_field_areas(ind, [(1,)], spacing, keep=None if keep is None else keep[box])[0]
    out["area"] = area
    return out
