"""Interface areas by the Cauchy-Crofton formula on the 13 neighbour directions (NumPy/numba, no dask).

Stereology's ``S_V = 2 P_L``: a surface's area per volume is twice the mean number of its
crossings per unit length of test lines of uniformly random direction. On a voxel grid the test
lines run along the 13 directions to the 26 neighbours (3 axes, 6 face and 4 body diagonals),
through every voxel centre; a crossing is a pair of neighbours along the line holding two
different phases. With ``N_d`` crossings along direction ``d`` (step ``l_d``, in physical units)
each crossing stands for ``v / l_d`` of surface seen along ``d`` (``v`` the voxel volume), and
the directions are averaged with weights ``w_d``: the share of the sphere of directions closest
to ``±d`` (Voronoi cells on the sphere, for the physical directions of anisotropic voxels too),

    A = 2 Σ_d w_d N_d v / l_d

(Legland, Kiêu & Devaux 2007, "Computation of Minkowski measures on 2D and 3D binary images",
Image Anal. Stereol. 26: 83-92). Unlike the smoothed marching cubes it never loses a film one
voxel thick (both of its faces are crossed), and unlike face counting its orientation bias is a
few per cent, not up to +73 %. Pairs with an unlabelled (255) voxel are no crossing.
"""

from __future__ import annotations

import functools

import numpy as np

from ._jit import njit

__all__ = ["DIRECTIONS", "crofton_weights", "crossing_counts", "crossing_areas", "crofton_areas", "slice_areas"]

#: the 13 directions to half of the 26 neighbours (z, y, x)
DIRECTIONS = ((1, 0, 0), (0, 1, 0), (0, 0, 1),
              (0, 1, 1), (0, 1, -1), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
              (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1))


@functools.lru_cache(maxsize=32)
def crofton_weights(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """``(w, l)``: each direction's share of the sphere of directions (the points of a dense
    Fibonacci sphere nearest to ``±d`` in physical space; they sum to 1) and its step length
    (physical units)."""
    d = np.asarray(DIRECTIONS, np.float64) * np.asarray(spacing, np.float64)
    length = np.linalg.norm(d, axis=1)
    unit = d / length[:, None]
    n = 400_000  # the shares to ~1e-4
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    pts = np.stack([z, r * np.sin(phi), r * np.cos(phi)], axis=1)
    nearest = np.abs(pts @ unit.T).argmax(axis=1)  # ±d: the larger |cos|
    w = np.bincount(nearest, minlength=len(DIRECTIONS)) / n
    return w, length


@njit(nogil=True, cache=True)
def _pair_counts(ext, lo, hi, dirs, k, out):  # pragma: no cover - jit
    """``out[z - lo[0], d, a, b] += 1`` for each voxel ``(z, y, x)`` in ``lo..hi`` of phase ``a``
    whose neighbour at ``+dirs[d]`` (inside ``ext``) has phase ``b != a`` (both below ``k``)."""
    s0, s1, s2 = ext.shape
    for di in range(dirs.shape[0]):
        dz, dy, dx = dirs[di, 0], dirs[di, 1], dirs[di, 2]
        z0, z1 = max(lo[0], -dz), min(hi[0], s0 - dz)
        y0, y1 = max(lo[1], -dy), min(hi[1], s1 - dy)
        x0, x1 = max(lo[2], -dx), min(hi[2], s2 - dx)
        for z in range(z0, z1):
            for y in range(y0, y1):
                for x in range(x0, x1):
                    a = ext[z, y, x]
                    b = ext[z + dz, y + dy, x + dx]
                    if a != b and a < k and b < k:
                        out[z - lo[0], di, a, b] += 1


def crossing_counts(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int], k: int,
                    axis: int = 0) -> np.ndarray:
    """``(n, 13, k, k)`` int64: the crossings of each of the block's ``n`` slices along ``axis``,
    per direction of :data:`DIRECTIONS` and (from, to) phase; each pair of neighbours once, owned
    by its voxel lower along ``axis`` (the other may lie in the halo: ``halo_lo``/``halo_hi``
    voxels, 1 where the volume continues, 0 at its border), so blocks add up to the volume's
    crossings. Codes ``>= k`` (255: unlabelled) cross nothing."""
    order = (axis,) + tuple(a for a in range(3) if a != axis)  # the slices on axis 0
    ext = np.ascontiguousarray(np.transpose(ext, order) if axis else ext, np.uint8)
    dirs = np.asarray(DIRECTIONS, np.int64)[:, order]
    dirs[dirs[:, 0] < 0] *= -1  # the same pairs of neighbours, owned by the lower one along the axis
    lo = np.array([halo_lo[a] for a in order], np.int64)
    hi = np.array(ext.shape, np.int64) - np.array([halo_hi[a] for a in order], np.int64)
    out = np.zeros((int(hi[0] - lo[0]), len(DIRECTIONS), k, k), np.int64)
    _pair_counts(ext, lo, hi, dirs, k, out)
    return out


def crossing_areas(counts: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``(..., k, k)`` symmetric areas (physical units²) of ``(..., 13, k, k)`` crossing counts
    (:func:`crossing_counts`): ``2 w_d v / l_d`` per crossing along direction ``d``, summed over
    the directions."""
    w, length = crofton_weights(tuple(float(s) for s in spacing))
    per_crossing = 2.0 * w * float(np.prod(spacing)) / length
    return np.einsum("...dab,d->...ab", counts + np.swapaxes(counts, -1, -2), per_crossing)


def crofton_areas(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int], k: int,
                  spacing: tuple[float, float, float]) -> np.ndarray:
    """(k, k) symmetric interface areas (physical units²) of the crossings owned by the block
    proper (:func:`crossing_counts`: each pair of neighbours once over the blocks of a volume).

    ``ext`` holds uint8 phase codes of the block and a halo of ``halo_lo``/``halo_hi`` voxels
    (1 where the volume continues, 0 at its border). Codes ``>= k`` (255: unlabelled) cross
    nothing.
    """
    return crossing_areas(crossing_counts(ext, halo_lo, halo_hi, k).sum(axis=0), spacing)


def slice_areas(counts: np.ndarray, spacing: tuple[float, float, float], axis: int) -> np.ndarray:
    """``(n, 2, k, k)`` areas of the ``(n, 13, k, k)`` crossing counts of ``n`` slices along
    ``axis`` (:func:`crossing_counts` with that ``axis``): ``[s, 0]`` of the crossings within
    slice ``s``, ``[s, 1]`` of those between slices ``s`` and ``s + 1``. Summed over ``s`` and
    both kinds, :func:`crossing_areas` of all the counts."""
    across = np.asarray(DIRECTIONS)[:, axis] != 0
    return np.stack([crossing_areas(np.where(use[None, :, None, None], counts, 0), spacing)
                     for use in (~across, across)], axis=1)
