"""Phase fractions in concentric shells around a phase (e.g. CBD coverage around particles)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import xarray as xr

from .._parse import parse_positive_float
from ..errors import InputError
from ..kernels.metrics import shell_counts
from ..runtime._progress import compute
from ._blockwise import MAX_BINS, BlockGeometry, block_partials
from ._inputs import Labels, as_labels
from ._metrics import _check, _codes, _common_attrs, _coords, _dims, _phase_index, _phase_items, _stack, _stats_graph, phases_attr

__all__ = ["shells"]


def _shell_block(block: np.ndarray, geom: BlockGeometry, *, around, k, max_distance, step, sampling) -> np.ndarray:
    codes, _ = _codes(block, geom)
    return shell_counts(codes, geom.halo_lo, geom.halo_hi, around=around, n_phases=k,
                        max_distance=max_distance, step=step, sampling=sampling).ravel()


def _phase_set(lab: Labels, name: str, value: Any) -> tuple[int, ...]:
    items = _phase_items(value)
    if not items:
        raise InputError(f"Expected `{name}` to name one or more of the phases {lab.phases}. Got {value!r} instead.")
    try:
        return tuple(sorted({_phase_index(lab, v) for v in items}))
    except InputError:
        raise InputError(f"Expected `{name}` to name one or more of the phases {lab.phases}. "
                         f"Got {value!r} instead.") from None


def shells(labels: Any, *, around: Any, of: Any, max_distance: float, step: float = 1.0, phases: Any = None,
           progress: bool = False) -> xr.DataArray:
    """Fraction of phase ``of`` in concentric shells at growing distance from phase ``around``.

    As in the 3D U-Net study (Müller et al. 2021), e.g. how much of the space within a few
    voxels of the active particles is CBD: ``shells(labels, around="active", of="cbd",
    max_distance=10)``.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1``; voxels
        valued 255 (unlabelled, e.g. outside the field of view) are counted in no shell, and
        the distance near them is to the nearest ``around`` voxel inside (as at the volume's
        border, what lies beyond is not known).
    around : the phase(s) the distance is measured from (name, label value or a list).
    of : the phase(s) whose fraction is reported in each shell (name, value or a list).
    max_distance, step : outer radius of the last shell and shell width, in voxel edges (of
        the smallest edge for anisotropic voxels: the distance is Euclidean in physical units).
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``shell_fraction`` over ``distance`` (and ``t`` for a series): in shell ``i`` the
    voxels at a Euclidean distance ``d`` from the nearest ``around`` voxel with
    ``i * step < d <= (i + 1) * step``; the coordinate ``distance`` is the shell's outer radius
    in ``unit`` and ``distance_voxels`` in voxel edges; the coordinate ``voxels`` counts the
    shell's labelled voxels (so ``shell_fraction * voxels`` is the count of ``of``). NaN for an
    empty shell. ``attrs["around"]`` and ``attrs["of"]`` name the phases joined by ``+``
    (``"cbd+active"``, for reading), ``attrs["around_phases"]`` and ``attrs["of_phases"]`` as JSON
    lists (``json.loads``; whole where a phase's own name holds a ``+``); ``step_voxels`` and
    ``max_distance_voxels`` are the arguments (in voxel edges, beside ``distance_units``, the unit
    of ``distance``). Exact (integer counts summed over blocks with a halo of ``max_distance``) for
    any chunking.
    """
    max_distance = parse_positive_float("max_distance", max_distance)
    step = parse_positive_float("step", step)
    if step > max_distance:
        raise InputError(f"Expected `step` to be at most `max_distance` ({max_distance}). Got {step} instead.")
    lab = as_labels(labels, phases=phases)
    src = _phase_set(lab, "around", around)
    dst = _phase_set(lab, "of", of)
    if set(dst) <= set(src):  # each voxel of `of` is at distance 0 from `around`: in no shell, every one 0
        raise InputError(f"Expected `of` to name a phase other than `around` ({'+'.join(lab.phases[i] for i in src)}): "
                         f"its voxels lie at distance 0, in no shell, so every shell would read 0. Got of={of!r} instead.")
    n_shells = int(math.ceil(max_distance / step - 1e-9))
    if n_shells > MAX_BINS:  # each block would hold (phases x shells) counts
        raise InputError(f"Expected `step` to make at most {MAX_BINS} shells out to `max_distance`={max_distance:g} (a "
                         f"step of at least {max_distance / MAX_BINS:.3g}). Got step={step!r} instead.")
    vmin = min(lab.voxel_size)
    sampling = tuple(v / vmin for v in lab.voxel_size)
    depth = int(math.ceil(max_distance / min(sampling)))
    fn = functools.partial(_shell_block, around=src, k=lab.k, max_distance=max_distance, step=step,
                           sampling=sampling)
    parts = [block_partials(fn, f, depth=depth, nout=lab.k * n_shells, dtype=np.int64) for f in lab.frames()]
    hists = _stats_graph(lab, hist_only=True)
    res = compute(*hists, *parts, desc="shells", progress=progress)
    for t, c in enumerate(_check(lab, res[: len(hists)], allow_unlabelled=True)):
        if not sum(int(c["hist"][i]) for i in src):
            import warnings

            warnings.warn(f"shells: no voxel of `around` ({'+'.join(lab.phases[i] for i in src)})"
                          f"{f' at t={t}' if lab.series else ''}: there is no distance to measure, every shell is "
                          "NaN.", stacklevel=2)
    counts = [np.asarray(r).reshape(lab.k, n_shells) for r in res[len(hists):]]
    total = [c.sum(axis=0) for c in counts]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = [np.where(t > 0, c[list(dst)].sum(axis=0) / t, np.nan) for c, t in zip(counts, total)]
    outer = step * np.arange(1, n_shells + 1)
    outer[-1] = max_distance
    dims = _dims(lab, ("distance",))
    out = xr.DataArray(_stack(lab, frac), dims=dims, coords=_coords(lab), name="shell_fraction")
    out = out.assign_coords(distance=outer * vmin, distance_voxels=("distance", outer),
                            voxels=(dims, _stack(lab, total), {"units": "voxel", "long_name": "labelled voxels of the shell"}))
    # the phases as one string ("cbd+active"): netCDF keeps it as it is (a list of one name came
    # back as a bare string, and netCDF3 takes no list of strings)
    around_name, of_name = ("+".join(lab.phases[i] for i in ids) for ids in (src, dst))
    out.attrs.update(units="1", long_name=f"fraction of {of_name} at a distance from {around_name}",
                     around=around_name, of=of_name,  # as text; by name, whole (a phase "a+b" beside "a" and "b"):
                     around_phases=phases_attr([lab.phases[i] for i in src]),
                     of_phases=phases_attr([lab.phases[i] for i in dst]),
                     distance_units=lab.unit, step_voxels=step, max_distance_voxels=max_distance,
                     phases=phases_attr(lab.phases), **_common_attrs(lab))  # every phase by label value
    out["distance"].attrs.update(units=lab.unit, long_name=f"distance from {around_name} (outer radius of the shell)")
    out["distance_voxels"].attrs.update(units="voxel", long_name=f"distance from {around_name} in smallest voxel edges")
    return out
