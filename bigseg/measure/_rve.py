"""Representative volume element: how the phase fractions of sub-cubes scatter with their size."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_in_range, parse_positive_int
from ..errors import InputError
from ..runtime._progress import compute
from ._inputs import as_labels
from ._metrics import _check, _common_attrs, _stats_graph, phase_coord

__all__ = ["rve"]

#: Largest grid of per-base-cube counts held on the client (int64 per cube and phase).
_MAX_GRID_BYTES = 256 * 2**20


def _cube_counts(frame: da.Array, k: int, base: int) -> list[da.Array]:
    """Per phase, the voxel counts of every ``base``³ cube of the frame (the volume's far ends,
    beyond the last whole cube, left out)."""
    n = tuple((s // base) * base for s in frame.shape)
    x = frame[: n[0], : n[1], : n[2]]
    x = x.rechunk(tuple(max(base, (max(c) // base) * base) for c in x.chunks))
    return [da.coarsen(np.sum, (x == p).astype(np.int32), {0: base, 1: base, 2: base}, trim_excess=True)
            for p in range(k)]


def rve(labels: Any, *, sizes: Any = None, base: int | None = None, tolerance: float = 0.05,
        phases: Any = None, progress: bool = False) -> xr.Dataset:
    """Representative-volume-element analysis: the volume fraction of each phase in
    non-overlapping sub-cubes of growing edge, and how much it scatters from cube to cube.

    A sub-volume is representative of the electrode when its fractions scatter little; the
    smallest such edge tells how large a sample (or a tortuosity sub-volume) must be. The
    ML-vs-threshold study names this analysis as needed to judge X-ray CT and FIB-SEM volumes.

    Parameters
    ----------
    labels : (z, y, x) integer labels, values ``0..len(phases)-1`` (255: unlabelled).
    sizes : cube edges in voxels, multiples of ``base``; default ``base``, 2 ``base``, 4
        ``base``... up to half the shortest axis (at least two cubes along it).
    base : edge of the smallest cube counted (every size is a multiple of it); default the
        sizes' greatest common divisor, or without ``sizes`` the largest of 4 and (shortest
        axis) / 64. The counts of every base cube are gathered on the client (at most 256 MiB).
    tolerance : relative scatter (standard deviation over mean fraction) below which a size
        counts as representative for a phase.
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset over (``size``, ``phase``): ``mean`` and ``std`` (sample standard deviation, n − 1)
    of the fraction over the cubes, ``relative_std`` = std / mean, ``cubes`` (how many) per
    size; ``rve_size`` (phase): the smallest size whose relative scatter is at most
    ``tolerance`` (NaN if none). ``size`` is in voxels, ``size_physical`` in ``unit`` along z
    (cubes hold the same number of voxels per axis). Counts are exact and do not depend on the
    chunking; cubes tile the volume from its first voxel, the remainder at the far ends is
    left out, and so is every cube holding an unlabelled (255) voxel, e.g. beyond the edge of
    the field of view (``cubes`` says how many are left; NaN where none is).
    """
    lab = as_labels(labels, phases=phases)
    if lab.series:
        raise InputError("Expected `labels` of one volume (z, y, x). Got a series: pass labels.isel(t=k).")
    shortest = min(lab.spatial_shape)
    tolerance = parse_in_range("tolerance", tolerance, 0.0, 1.0, closed="right")
    given = None if sizes is None else sorted({parse_positive_int("sizes", v) for v in np.atleast_1d(sizes).tolist()})
    if base is not None:
        base = parse_positive_int("base", base)
    else:  # the sizes' common divisor, or a 64th of the shortest axis
        base = int(np.gcd.reduce(given)) if given else max(4, shortest // 64)
    n_base = int(np.prod([n // base for n in lab.spatial_shape])) * lab.k
    if n_base * 8 > _MAX_GRID_BYTES:
        raise InputError(f"Expected `base` (the sizes' common divisor) of at least "
                         f"{int(np.ceil((n_base * 8 / _MAX_GRID_BYTES) ** (1 / 3) * base))} voxels for a volume of "
                         f"{lab.spatial_shape}: {base}-voxel cubes would need {n_base * 8 / 2**20:.0f} MiB of counts. "
                         f"Got base {base} instead.")
    if given is None:
        sizes_l = []
        s = base
        while 2 * s <= shortest:
            sizes_l.append(s)
            s *= 2
    else:
        sizes_l = given
    if not sizes_l:
        raise InputError(f"Expected `labels` at least {2 * base} voxels along every axis for cubes of `base` "
                         f"({base}) voxels and more, each at most half the shortest axis. Got shape "
                         f"{lab.spatial_shape} instead.")
    bad = [s for s in sizes_l if s % base or 2 * s > shortest]
    if bad:
        raise InputError(f"Expected `sizes` to be multiples of `base` ({base}) of at most half the shortest axis "
                         f"({shortest} voxels). Got {bad or sizes_l or sizes!r} instead.")
    hists = _stats_graph(lab, hist_only=True)
    counts = _cube_counts(lab.frames()[0], lab.k, base)
    res = compute(*hists, *counts, desc="sub-cube fractions", progress=progress)
    _check(lab, res[: len(hists)], allow_unlabelled=True)
    grid = np.stack([np.asarray(c, np.int64) for c in res[len(hists):]], axis=-1)  # (nz, ny, nx, k) base cubes
    mean, std, cubes = [], [], []
    for size in sizes_l:
        m = size // base
        g = tuple(d // m for d in grid.shape[:3])
        c = grid[: g[0] * m, : g[1] * m, : g[2] * m].reshape(g[0], m, g[1], m, g[2], m, lab.k).sum(axis=(1, 3, 5))
        c = c.reshape(-1, lab.k)
        c = c[c.sum(axis=1) == size ** 3]  # cubes with unlabelled voxels (outside the field of view) left out
        frac = c / float(size) ** 3
        with np.errstate(invalid="ignore"):
            mean.append(frac.mean(axis=0) if len(frac) else np.full(lab.k, np.nan))
        std.append(frac.std(axis=0, ddof=1) if len(frac) > 1 else np.full(lab.k, np.nan))
        cubes.append(len(frac))
    mean_a, std_a = np.array(mean), np.array(std)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = std_a / mean_a
    ok = rel <= tolerance
    first = [float(sizes_l[int(np.argmax(ok[:, j]))]) if ok[:, j].any() else np.nan for j in range(lab.k)]
    ds = xr.Dataset(
        {
            "mean": (("size", "phase"), mean_a, {"units": "1", "long_name": "mean volume fraction of the cubes"}),
            "std": (("size", "phase"), std_a, {"units": "1", "long_name": "standard deviation (n - 1) over the cubes"}),
            "relative_std": (("size", "phase"), rel, {"units": "1", "long_name": "std / mean of the volume fraction over the cubes"}),
            "cubes": (("size",), np.array(cubes), {"units": "1", "long_name": "number of cubes of this edge"}),
            "rve_size": (("phase",), np.array(first), {
                "units": "voxel", "long_name": f"smallest cube edge with relative std <= {tolerance:g}"}),
        },
        coords={"size": ("size", np.array(sizes_l), {"units": "voxel", "long_name": "cube edge"}),
                "phase": phase_coord("phase", lab.phases),
                "size_physical": ("size", np.array(sizes_l, np.float64) * lab.voxel_size[0],
                                  {"units": lab.unit, "long_name": "cube edge along z"})},
    )
    ds.attrs.update(tolerance=tolerance, base=base, **_common_attrs(lab))
    return ds
