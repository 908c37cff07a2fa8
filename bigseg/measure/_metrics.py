"""Volume fractions, phase-pair interfaces and surface areas as exact blockwise reductions."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from .._parse import parse_choice
from ..errors import InputError, warn_caller
from ..io._volume import UNLABELLED, phase_named
from ..kernels.crofton import DIRECTIONS, crossing_areas, crossing_counts
from ..kernels.metrics import NBINS, fill_unlabelled, histogram, label_stats, mc_field_areas, mc_region
from ..runtime._progress import compute
from ._blockwise import BlockGeometry, block_partials, crop_halo
from ._inputs import Labels, as_labels, check_values, from_stack

__all__ = ["volume_fractions", "interfaces", "surface_area", "specific_surface_area", "METHODS", "FACES_CAVEAT"]

METHODS = ("faces", "marching_cubes", "crofton")
# said beside face-counted areas wherever they are shown (the report, `bigseg measure`)
FACES_CAVEAT = ("counted voxel faces read curved interfaces high (a sphere: +50 %); for areas to quote use crofton "
                "(a few %; marching cubes loses films a voxel or two thin)")
Method = Literal["faces", "marching_cubes", "crofton"]


# --------------------------------------------------------------------------------------------
# block functions (module level so that they pickle for distributed workers)
# --------------------------------------------------------------------------------------------
def _codes(block: np.ndarray, geom: BlockGeometry) -> tuple[np.ndarray, int]:
    """uint8 codes of a block (+ halo) and the number of values outside 0..255 in the block proper."""
    if block.dtype == np.uint8:
        return block, 0
    if block.dtype == np.bool_:
        return block.view(np.uint8), 0
    core, _, _ = crop_halo(block, geom, 0)
    nbad = int(np.count_nonzero((core < 0) | (core > 255)))
    if nbad or block.min() < 0 or block.max() > 255:
        block = np.where((block < 0) | (block > 255), 255, block)
    return block.astype(np.uint8), nbad


def _hist_block(block: np.ndarray, geom: BlockGeometry) -> np.ndarray:
    codes, nbad = _codes(block, geom)
    return np.concatenate([histogram(codes), [nbad]])


def _stats_block(block: np.ndarray, geom: BlockGeometry, *, k: int) -> np.ndarray:
    codes, nbad = _codes(block, geom)
    hist, faces, onvox = label_stats(codes, geom.halo_lo, geom.halo_hi, k)
    return np.concatenate([hist, faces.ravel(), onvox.ravel(), [nbad]])


def _stats_crofton_block(block: np.ndarray, geom: BlockGeometry, *, k: int) -> np.ndarray:
    """:func:`_stats_block`'s partials and the (13, k, k) Crofton crossing counts of the block:
    integers, summed over the blocks exactly and made areas once (:func:`_check`), so the areas
    are the whole array's to the last bit for any chunking (per-block float areas were not)."""
    codes, nbad = _codes(block, geom)
    hist, faces, onvox = label_stats(codes, geom.halo_lo, geom.halo_hi, k)
    counts = crossing_counts(codes, geom.halo_lo, geom.halo_hi, k).sum(axis=0)
    return np.concatenate([hist, faces.ravel(), onvox.ravel(), [nbad], counts.ravel()]).astype(np.int64)


def _stats_mc_block(block: np.ndarray, geom: BlockGeometry, *, k: int, fields: tuple,
                    spacing: tuple[float, float, float]) -> np.ndarray:
    codes, nbad = _codes(block, geom)
    sext, lo, hi = crop_halo(codes, geom, 1)
    hist, faces, onvox = label_stats(sext, lo, hi, k)
    cut = functools.partial(mc_region, origin=geom.origin, shape=geom.shape, volume=geom.volume,
                            halo_lo=geom.halo_lo, halo_hi=geom.halo_hi)
    if (codes == UNLABELLED).any():  # smoothed as at the volume's border: filled from the labelled side, no cells beyond
        areas = mc_field_areas(cut(fill_unlabelled(codes, UNLABELLED)), list(fields), spacing,
                               keep=cut(codes != UNLABELLED))
    else:
        areas = mc_field_areas(cut(codes), list(fields), spacing)
    return np.concatenate([hist, faces.ravel(), onvox.ravel(), [nbad], areas]).astype(np.float64)


# --------------------------------------------------------------------------------------------
# graph builders
# --------------------------------------------------------------------------------------------
def _fields(k: int) -> tuple[tuple[int, ...], ...]:
    """Single phases, then unions of every pair (for A_ij = (A_i + A_j - A_i∪j) / 2)."""
    return tuple((i,) for i in range(k)) + tuple(itertools.combinations(range(k), 2))


def parse_method(method: Any, lab: Labels) -> str:
    """``method`` of an area measurement, checked against the labels: a marching-cubes mesh
    needs at least 2 voxels along every axis (one slice has no surface to mesh)."""
    method = parse_choice("method", method, METHODS)
    if method == "marching_cubes" and min(lab.spatial_shape) < 2:  # its cells lie between voxel centres
        raise InputError(f"Expected `method` 'faces' for labels {lab.spatial_shape} with an axis of one voxel "
                         f"(a marching-cubes mesh needs 2 along every axis; it would measure 0). Got {method!r} "
                         f"instead.")
    return method


def _stats_graph(lab: Labels, *, marching_cubes: bool = False, fields: tuple | None = None,
                 hist_only: bool = False, crofton: bool = False):
    k = lab.k
    nstat = NBINS + 3 * k * k + k * k + 1
    parts = []
    for frame in lab.frames():
        if hist_only:
            parts.append(block_partials(_hist_block, frame, depth=0, nout=NBINS + 1, dtype=np.int64))
        elif marching_cubes:
            flds = _fields(k) if fields is None else fields
            fn = functools.partial(_stats_mc_block, k=k, fields=flds, spacing=lab.voxel_size)
            # 3: the cells' 2 voxels of smoothing, and the neighbours that fill unlabelled ones among them
            parts.append(block_partials(fn, frame, depth=3, nout=nstat + len(flds), dtype=np.float64))
        elif crofton:  # the 26 neighbours: a halo of one voxel, as the faces
            fn = functools.partial(_stats_crofton_block, k=k)
            parts.append(block_partials(fn, frame, depth=1, nout=nstat + len(DIRECTIONS) * k * k, dtype=np.int64))
        else:
            fn = functools.partial(_stats_block, k=k)
            parts.append(block_partials(fn, frame, depth=1, nout=nstat, dtype=np.int64))
    return parts


def _unpack(vec: np.ndarray, k: int) -> dict[str, np.ndarray]:
    if len(vec) == NBINS + 1:
        return {"hist": vec[:NBINS].astype(np.int64), "bad": np.int64(vec[NBINS])}
    i = 0
    out = {}
    for key, size, shape in (("hist", NBINS, (NBINS,)), ("faces", 3 * k * k, (3, k, k)),
                             ("onvox", k * k, (k, k)), ("bad", 1, ())):
        out[key] = np.rint(vec[i:i + size]).astype(np.int64).reshape(shape)
        i += size
    out["areas"] = np.asarray(vec[i:], np.float64)
    return out


def _check(lab: Labels, results, *, allow_unlabelled: bool, crofton: bool = False) -> list[dict[str, np.ndarray]]:
    out = []
    stack = from_stack(lab)  # (its 0 / 255 mask said once, at the first step that is one)
    for t, vec in enumerate(results):
        s = _unpack(np.asarray(vec), lab.k)
        if crofton:  # the summed crossing counts, made (k, k) areas once
            counts = np.rint(s["areas"]).astype(np.int64).reshape(len(DIRECTIONS), lab.k, lab.k)
            s["areas"] = crossing_areas(counts, lab.voxel_size).ravel()
        if check_values(s["hist"], lab.k, lab.phases, lab.name, allow_unlabelled=allow_unlabelled,
                        out_of_range=int(s["bad"]), t=t if lab.series else None, stack=stack):
            stack = False
        out.append(s)
    return out


def _run(lab: Labels, *, allow_unlabelled: bool, desc: str, progress: bool,
         marching_cubes: bool = False, fields: tuple | None = None,
         hist_only: bool = False, crofton: bool = False) -> list[dict[str, np.ndarray]]:
    parts = _stats_graph(lab, marching_cubes=marching_cubes, fields=fields, hist_only=hist_only, crofton=crofton)
    return _check(lab, compute(*parts, desc=desc, progress=progress), allow_unlabelled=allow_unlabelled,
                  crofton=crofton)


def _stack(lab: Labels, arrays: list[np.ndarray]) -> np.ndarray:
    return np.stack(arrays) if lab.series else arrays[0]


def _dims(lab: Labels, dims: tuple[str, ...]) -> tuple[str, ...]:
    return (("t",) + dims) if lab.series else dims


def _time(lab: Labels) -> xr.Variable:
    """A series' ``t`` coordinate for its results: the volume's, values and attrs (units), else
    0, 1, 2, ...; its ``long_name`` "time" where it has units, else "time step" (the scans' order)."""
    t = lab.vol.coords["t"].variable if "t" in lab.vol.coords else xr.Variable("t", np.arange(lab.vol.shape[0]))
    return named_time(t)


def named_time(t: xr.Variable) -> xr.Variable:
    """A copy of the time coordinate ``t`` with a ``long_name`` (its own, else "time" where it
    has units, "time step" where it has none: the scans' order)."""
    t = t.copy()
    if "long_name" not in t.attrs:
        t.attrs["long_name"] = "time" if t.attrs.get("units") else "time step"
    return t


#: the dimensions of results that hold phase names, with the ``long_name`` of their coordinate
#: (CF style, as every other coordinate and variable states one; a name has no ``units``)
PHASE_DIMS = {"phase": "phase", "phase_a": "phase on one side of the interface",
              "phase_b": "phase on the other side of the interface", "truth_phase": "phase in the reference (truth)",
              "pred_phase": "phase in the prediction", "from_phase": "phase at the step before",
              "to_phase": "phase at this step"}


def phase_coord(dim: str, names: Any) -> xr.Variable:
    """The coordinate of phase names along ``dim`` (a key of :data:`PHASE_DIMS`), with its ``long_name``."""
    return xr.Variable(dim, [str(p) for p in names], {"long_name": PHASE_DIMS[dim]})


def _coords(lab: Labels, **named: list[str]) -> dict[str, Any]:
    coords: dict[str, Any] = {k: phase_coord(k, v) for k, v in named.items()}
    if lab.series:
        coords["t"] = _time(lab)
    return coords


def phases_attr(phases: Any) -> str:
    """Phase names by label value as one attribute of a result (shells, thickness, particle
    tables: the figures colour each phase by its label value): a JSON list, as netCDF3 holds no
    list of strings, and any name (``+`` and ``,`` included) comes back whole."""
    import json

    return json.dumps([str(p) for p in phases])


def phases_of_attr(value: Any) -> list[str] | None:
    """The phase names :func:`phases_attr` wrote (a list, as a label volume's ``attrs["phases"]``
    holds them, is taken as it is), or ``None``."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return [str(p) for p in value] if value is not None and hasattr(value, "__iter__") else None


def _common_attrs(lab: Labels) -> dict[str, Any]:
    return {"voxel_size": list(lab.voxel_size), "unit": lab.unit, "shape": list(lab.spatial_shape)}


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def volume_fractions(labels: Any, *, phases: Any = None, progress: bool = False) -> xr.DataArray:
    """Volume fraction of every phase: voxel count / number of labelled voxels.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer label volume (DataArray, dask or NumPy); value
        ``i`` is phase ``phases[i]``; voxels valued 255 (unlabelled) are left out of the total.
    phases : phase names, default ``labels.attrs["phases"]`` or ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``volume_fraction`` over ``phase`` (and ``t`` for a series), dimensionless, with
    the coordinate ``voxels`` each phase's voxel count (so ``voxels.sum("phase")`` is the number
    of labelled voxels). Exact for any chunking (integer counts
    summed over blocks).

    Examples
    --------
    >>> from bigseg import measure, synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> fractions = measure.volume_fractions(labels)
    >>> dict(zip(fractions.phase.values.tolist(), fractions.round(2).values.tolist()))
    {'pore': 0.35, 'cbd': 0.15, 'active': 0.5}
    >>> int(fractions.voxels.sum("phase"))  # labelled voxels: 32³
    32768
    """
    lab = as_labels(labels, phases=phases)
    stats = _run(lab, allow_unlabelled=True, desc="volume fractions", progress=progress, hist_only=True)
    return _fractions_dataarray(lab, stats)


def _face_areas(vs: tuple[float, float, float]) -> np.ndarray:
    """Area of a voxel face normal to z, y, x."""
    return np.array([vs[1] * vs[2], vs[0] * vs[2], vs[0] * vs[1]])


def interfaces(labels: Any, *, method: Method = "faces", phases: Any = None,
               progress: bool = False) -> xr.Dataset:
    """Interfaces between every pair of phases: shared faces, interface voxels and area.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1``; voxels
        valued 255 (unlabelled, e.g. outside the field of view, see :func:`bigseg.io.fov_mask`)
        are no part of the sample: faces against them are no interface.
    method : how ``area`` is estimated:

        * ``"faces"``: number of shared voxel faces × face area (anisotropic voxels: a face
          normal to z has area ``vy * vx``, ...). Exact for axis-aligned boxes but it
          overestimates curved surfaces: about +50 % on a sphere (the mean of
          ``|nz| + |ny| + |nx|`` over a sphere is 3/2).
        * ``"marching_cubes"``: the low-bias smoothed estimate. The indicator of each phase is
          averaged over a 3 × 3 × 3 window (``mode="nearest"``: the border voxels are
          replicated outside the volume), triangulated by marching cubes at 0.5 (Lewiner et al.,
          as ``skimage.measure.marching_cubes`` with ``spacing=voxel_size``) and measured with
          ``mesh_surface_area``; pair areas are ``A_ij = (A_i + A_j - A_i∪j) / 2``. A sphere of
          radius 20 voxels comes within 0.1 % of 4πr². Surfaces are open at the outermost voxel
          centres, also at the edge of unlabelled voxels (a field of view): there each unlabelled
          voxel takes its labelled neighbours' phase for the smoothing and only cells between
          labelled voxels count, as at the volume's border (one unlabelled slice gives the areas
          of the volume cropped without it). See :mod:`bigseg.kernels.metrics` for how cells are counted once per block.
        * ``"crofton"``: the Cauchy-Crofton formula on the 13 neighbour directions (``S_V = 2
          P_L``: crossings of test lines along the 3 axes and 10 diagonals through every voxel
          centre, weighted by each direction's share of the sphere; Legland et al. 2007; see
          :mod:`bigseg.kernels.crofton`). Balls of radius 3 voxels and more within 1.5 %, planes
          -7.3 % (along an axis) to +2.3 % by orientation (exact on average), and a CBD film one
          voxel thick is kept (marching cubes erases it). On anisotropic voxels the planes'
          spread widens (exact on average over orientations): -12.5 to +9.4 % on 2 × 1 × 1
          voxels, -20 to +10 % on 4 × 1 × 1 (a plane normal to the long axis -20 %); halo of one
          voxel, as ``"faces"``
          (a numba pass per direction over each block, :func:`bigseg.kernels.crofton.crossing_counts`:
          about 40 % of the speed of faces).
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset over ``(phase_a, phase_b)`` (and ``t`` for a series), symmetric with a zero diagonal:

    * ``faces`` (int64): voxel faces shared by the two phases (6-neighbour pairs);
    * ``voxel_fraction``: fraction of the voxels lying on the interface, i.e. voxels of phase a
      with a 6-neighbour of phase b, plus voxels of b with a 6-neighbour of a, over the number
      of labelled voxels (the LRCS-Net paper reports interfaces "as a percentage of voxels",
      Su et al. 2022); a voxel touching two other phases counts on both interfaces;
    * ``area`` in ``unit^2``;
    * ``coverage``: the share of phase a's interface area that it shares with phase b (rows sum
      to 1; NaN for a phase without interfaces), the "surface coverage" of Müller et al. 2021
      (e.g. how much of the active material's surface touches CBD rather than pore). Not
      symmetric. Faces on the volume's border are no interface and are not counted. With
      ``marching_cubes`` the pair areas come from smoothed surfaces, which partly lose thin
      films (a CBD layer one or two voxels thick) to the 3 × 3 × 3 smoothing: on default
      electrodes (96³, seeds 0–2) the active surface's CBD coverage reads 0.51–0.54 by faces,
      0.50–0.52 by Crofton and 0.39–0.41 by marching cubes. The per-particle contacts of :func:`particles` count faces;
    * with ``"marching_cubes"`` also ``phase_area`` over ``phase`` (``unit^2``): each phase's
      own smoothed surface area (with unlabelled voxels, the sum of its pair areas).

    ``attrs`` hold ``method``, ``voxels`` (the labelled voxels; a list for a series),
    ``voxel_size``, ``unit`` and ``shape``.

    Every quantity is a sum of per-block partials and does not depend on the chunking.

    Examples
    --------
    >>> from bigseg import measure, synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> ifc = measure.interfaces(labels, method="faces")
    >>> list(ifc.data_vars), ifc.area.dims, ifc.attrs["unit"]
    (['faces', 'voxel_fraction', 'area', 'coverage'], ('phase_a', 'phase_b'), 'nm')
    >>> area = ifc.area.sel(phase_a="active", phase_b="cbd")  # nm², as the voxel size says
    >>> bool(area > 0), bool(area == ifc.area.sel(phase_a="cbd", phase_b="active"))
    (True, True)
    >>> round(float(ifc.coverage.sel(phase_a="active", phase_b="cbd")), 2)  # share of the active surface on CBD
    0.47
    """
    lab = as_labels(labels, phases=phases)
    method = parse_method(method, lab)
    stats = _run(lab, allow_unlabelled=True, desc=f"interfaces ({method})", progress=progress,
                 marching_cubes=method == "marching_cubes", crofton=method == "crofton")
    return _interfaces_dataset(lab, stats, method)


def check_labels(labels: Any, *, name: str = "labels", phases: Any = None, progress: bool = False) -> None:
    """One pass over a label volume: every value a phase's index or 255 (unlabelled), else an
    ``InputError`` naming ``name`` and the values, e.g. a truth checked before the work that
    would end by scoring against it."""
    _run(as_labels(labels, name=name, phases=phases), allow_unlabelled=True, desc=f"{name}: label values",
         progress=progress, hist_only=True)


def labelled_voxels(lab: Labels, s: dict[str, np.ndarray], t: int = 0) -> int:
    """The voxels of frame ``t`` that carry a phase (255, unlabelled or outside the field of
    view, is no part of the sample); raises if there are none."""
    n = int(s["hist"][: lab.k].sum())
    if n == 0:
        raise InputError(f"Expected `{lab.name}` to hold labelled voxels{f' at t={t}' if lab.series else ''}. "
                         "Got only unlabelled (255) voxels.")
    return n


def _interfaces_dataset(lab: Labels, stats: list[dict[str, np.ndarray]], method: str) -> xr.Dataset:
    k = lab.k
    mc = method == "marching_cubes"
    fa = _face_areas(lab.voxel_size)
    faces_l, vf_l, area_l, phase_area_l = [], [], [], []
    flds = _fields(k)
    n_l = [labelled_voxels(lab, s, t) for t, s in enumerate(stats)]
    for s, n_lab in zip(stats, n_l):
        f3 = s["faces"] + s["faces"].transpose(0, 2, 1)
        faces_l.append(f3.sum(axis=0))
        vf_l.append((s["onvox"] + s["onvox"].T) / n_lab)
        if mc:
            pair = _mc_pairs(k, s["areas"], lab.phases, lab.unit)
            area_l.append(pair)
            masked = n_lab < int(s["hist"].sum())  # the field of view's edge is no surface of a phase
            a = dict(zip(flds, s["areas"]))
            phase_area_l.append(pair.sum(axis=1) if masked else np.array([a[(i,)] for i in range(k)]))
        elif method == "crofton":
            area_l.append(s["areas"].reshape(k, k))
        else:
            area_l.append((f3 * fa[:, None, None]).sum(axis=0))
    dims = _dims(lab, ("phase_a", "phase_b"))
    coords = _coords(lab, phase_a=lab.phases, phase_b=lab.phases)
    area_units = f"{lab.unit}^2"
    ds = xr.Dataset(
        {
            "faces": (dims, _stack(lab, faces_l), {"units": "1", "long_name": "voxel faces shared by the two phases"}),
            "voxel_fraction": (dims, _stack(lab, vf_l), {
                "units": "1", "long_name": "fraction of the labelled voxels on the interface (6-neighbourhood)"}),
            "area": (dims, _stack(lab, area_l), {"units": area_units, "long_name": f"interface area ({method})",
                                                  "method": method}),
        },
        coords=coords,
    )
    with np.errstate(divide="ignore", invalid="ignore"):  # share of each phase's interfaces (its surface coverage)
        cover = [a / a.sum(axis=1, keepdims=True) for a in area_l]
    ds["coverage"] = (dims, _stack(lab, cover), {
        "units": "1", "long_name": "fraction of phase_a's interface area shared with phase_b (surface coverage)"})
    if mc:
        ds["phase_area"] = (_dims(lab, ("phase",)), _stack(lab, phase_area_l),
                            {"units": area_units, "long_name": "surface area of each phase (marching cubes)"})
        ds = ds.assign_coords(phase=phase_coord("phase", lab.phases))
    ds.attrs.update(method=method, voxels=n_l if lab.series else n_l[0], **_common_attrs(lab))
    return ds


def _mc_pairs(k: int, areas: np.ndarray, phases: Sequence[str] | None = None, unit: str = "") -> np.ndarray:
    """Pair areas ``A_ij = (A_i + A_j - A_i∪j) / 2`` from the areas of :func:`_fields` (next to
    unlabelled voxels the fields are smoothed as at the volume's border and no cell reaches past
    the labelled voxels: :func:`bigseg.kernels.metrics.fill_unlabelled`).

    Smoothing can make the union's surface larger than the two phases' together where a phase
    is a film one or two voxels thin (the 3 × 3 × 3 mean erases it from its own indicator but
    not from the union's): such a pair would come out negative. It is set to 0, with a warning
    that names it (an area below 0 is no measurement; ``method="faces"`` counts the film)."""
    a = dict(zip(_fields(k), areas))
    pair = np.zeros((k, k))
    for i, j in itertools.combinations(range(k), 2):
        pair[i, j] = pair[j, i] = 0.5 * (a[(i,)] + a[(j,)] - a[(i, j)])
    scale = max(float(np.max(np.abs(areas))) if len(areas) else 0.0, 1e-300)
    below = [(i, j) for i, j in itertools.combinations(range(k), 2) if pair[i, j] < -1e-9 * scale]
    if below:
        names = list(phases) if phases is not None else [str(i) for i in range(k)]
        told = ", ".join(f"{names[i]}–{names[j]} {pair[i, j]:.4g}" + (f" {unit}^2" if unit else "") for i, j in below)
        warn_caller(f"marching cubes: the interface area of {told} came out below 0 (a phase thinner than the "
                    "3 × 3 × 3 smoothing, e.g. a 1–2-voxel film, is lost from its own surface but not from the "
                    "union's); set to 0. method='faces' counts such films.")
    return np.maximum(pair, 0.0)


def _fractions_dataarray(lab: Labels, stats: list[dict[str, np.ndarray]]) -> xr.DataArray:
    counts = [s["hist"][: lab.k] for s in stats]
    frac = [c / labelled_voxels(lab, s, t) for t, (c, s) in enumerate(zip(counts, stats))]
    da_ = xr.DataArray(_stack(lab, frac), dims=_dims(lab, ("phase",)), coords=_coords(lab, phase=lab.phases),
                       name="volume_fraction")
    da_.attrs.update(units="1", long_name="volume fraction (voxel count / labelled voxels)",
                     **_common_attrs(lab))
    da_.coords["voxels"] = (_dims(lab, ("phase",)), _stack(lab, counts),
                            {"units": "voxel", "long_name": "voxels of the phase"})
    return da_


def _surface_areas(lab: Labels, method: str, progress: bool, phase_idx: list[int] | None = None):
    """Per-frame arrays of the surface area of each phase (``unit^2``) and the histograms."""
    k = lab.k
    idx = list(range(k)) if phase_idx is None else phase_idx
    if method == "marching_cubes":
        flds = tuple((i,) for i in idx)
        stats = _run(lab, allow_unlabelled=True, desc="surface area", progress=progress,
                     marching_cubes=True, fields=flds)
        for t, s in enumerate(stats):  # no labelled voxel: refused, as every other measure does (was 0.0)
            labelled_voxels(lab, s, t)
        if all(int(s["hist"][: k].sum()) == int(s["hist"].sum()) for s in stats):
            return [s["areas"] for s in stats], stats
        # unlabelled voxels (outside the field of view): their boundary is no surface of a
        # phase, so sum the phase's pair areas, in which it cancels (a second pass)
        stats = _run(lab, allow_unlabelled=True, desc="surface area", progress=progress, marching_cubes=True)
        return [_mc_pairs(k, s["areas"], lab.phases, lab.unit).sum(axis=1)[idx] for s in stats], stats
    stats = _run(lab, allow_unlabelled=True, desc="surface area", progress=progress, crofton=method == "crofton")
    fa = _face_areas(lab.voxel_size)
    out = []
    for t, s in enumerate(stats):
        labelled_voxels(lab, s, t)
        f3 = s["faces"] + s["faces"].transpose(0, 2, 1)
        pair = s["areas"].reshape(k, k) if method == "crofton" else (f3 * fa[:, None, None]).sum(axis=0)
        out.append(pair.sum(axis=1)[idx])
    return out, stats


def _phase_items(value: Any) -> list:
    """One phase (a name or a label value) or several, as a list; ``[]`` for neither (None, 2.5)."""
    if isinstance(value, (str, int, np.integer)):
        return [value]
    try:
        return list(value)
    except TypeError:  # (None, 2.5: "... object is not iterable")
        return []


def _phase_index(lab: Labels, phase: Any) -> int:
    if isinstance(phase, str) and lab.vol.dtype == np.bool_ and phase not in lab.phases:
        raise InputError(f"Expected `phase` to be one of {lab.phases} for a boolean mask of `{lab.name}` (its "
                         f"True voxels are 'foreground'). Got {phase!r} instead: pass phase='foreground'.")
    if isinstance(phase, str):  # by name, or the one phase of that name in other case ("Pore" for "pore")
        return lab.phases.index(parse_choice("phase", phase_named(lab.phases, phase) or phase, lab.phases))
    if isinstance(phase, (int, np.integer)) and not isinstance(phase, bool) and 0 <= int(phase) < lab.k:
        return int(phase)
    raise InputError(f"Expected `phase` to be one of {lab.phases} or an index below {lab.k}. Got {phase!r} instead.")


def surface_area(labels: Any, *, phase: str | int, method: Method = "faces", phases: Any = None,
                 progress: bool = False) -> float | xr.DataArray:
    """Surface area of one phase, in ``unit^2``.

    ``"faces"``: all voxel faces between the phase and any other phase × face area (the volume
    border is not a surface); ``"marching_cubes"``: the smoothed-indicator mesh area of the
    phase; ``"crofton"``: the sum of its Crofton pair areas (see :func:`interfaces`). None of them counts the boundary of unlabelled (255) voxels,
    e.g. the edge of the field of view (with marching cubes, the sum of the phase's pair areas,
    in a second pass).

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer label volume, as for :func:`volume_fractions`;
        its ``attrs["voxel_size"]`` and ``attrs["unit"]`` give the unit (default 1 ``voxel``).
    phase : the phase measured, by name (one of the phases) or by index (its label value);
        required.
    method : ``"faces"`` (default), ``"marching_cubes"`` or ``"crofton"`` (see above and
        :func:`interfaces`); ``"marching_cubes"`` needs 2 voxels or more along every axis.
    phases : phase names, default ``labels.attrs["phases"]`` or ``["pore", "cbd", "active"]``
        (``["background", "foreground"]`` for a boolean mask).
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    The area in ``unit^2``: a float, or a DataArray ``surface_area`` over ``t`` for a series.
    """
    lab = as_labels(labels, phases=phases)
    method = parse_method(method, lab)
    i = _phase_index(lab, phase)
    areas, _ = _surface_areas(lab, method, progress, [i])
    if not lab.series:
        return float(areas[0][0])
    return xr.DataArray([a[0] for a in areas], dims=("t",), coords=_coords(lab), name="surface_area",
                        attrs={"units": f"{lab.unit}^2", "phase": lab.phases[i], "method": method})


def specific_surface_area(labels: Any, *, phase: str | int | None = None, method: Method = "faces",
                          per: str = "total", phases: Any = None,
                          progress: bool = False) -> float | xr.DataArray | xr.Dataset:
    """Surface area per volume, in ``unit^-1``.

    With ``phase``: that phase's surface area (as :func:`surface_area` measures it) per volume
    of the whole sample (``per="total"``, the electrode's specific surface area) or per volume
    of the phase itself (``per="phase"``; NaN where the phase is absent); a float, or a
    DataArray over ``t`` for a series.

    Without ``phase``: every phase at once, a Dataset over ``phase`` (and ``t``):
    ``surface_area`` (``unit^2``), ``volume`` (``unit^3``), ``per_total_volume`` = area /
    volume of the whole sample (its labelled voxels: those valued 255, e.g. outside the field
    of view, are no part of it) and ``per_phase_volume`` = area / volume of the phase (both
    ``unit^-1``).

    Areas end at the volume's border, so for a structure larger than the volume (an electrode)
    the area per volume reads low by about c / L on a cube of L voxels: c ≈ 1 (faces), 2
    (Crofton), 3.4 (marching cubes); −1.6 / −3.1 / −5.3 % at 64³ (README, "Measurements").

    Parameters
    ----------
    labels, method, phases, progress : as for :func:`surface_area`.
    phase : one phase, by name or index; default None: every phase (the Dataset above).
    per : ``"total"`` (default: per volume of the labelled sample) or ``"phase"`` (per volume of
        the phase); used with ``phase`` (the Dataset has both).

    Returns
    -------
    With ``phase``: a float in ``unit^-1``, or a DataArray ``specific_surface_area`` over ``t``
    for a series; without: the Dataset described above.
    """
    per = parse_choice("per", per, ("total", "phase"))
    lab = as_labels(labels, phases=phases)
    method = parse_method(method, lab)
    if phase is not None:
        i = _phase_index(lab, phase)
        name = lab.phases[i]
        one = _specific_surface_area(lab, method, progress, [i])[f"per_{per}_volume"].sel(phase=name)
        if not lab.series:
            return float(one)
        return one.drop_vars("phase").rename("specific_surface_area").assign_attrs(phase=name, method=method, per=per)
    return _specific_surface_area(lab, method, progress)


def _specific_surface_area(lab: Labels, method: Method, progress: bool, idx: list[int] | None = None) -> xr.Dataset:
    """The Dataset of :func:`specific_surface_area` over the phases ``idx`` (default all; one
    phase's marching cubes mesh is all that is built for one)."""
    idx = list(range(lab.k)) if idx is None else idx
    areas, stats = _surface_areas(lab, method, progress, idx)
    vvox = float(np.prod(lab.voxel_size))
    vols = [s["hist"][idx] * vvox for s in stats]
    totals = [labelled_voxels(lab, s, t) * vvox for t, s in enumerate(stats)]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_phase = [np.where(v > 0, a / np.where(v > 0, v, 1.0), np.nan) for a, v in zip(areas, vols)]
    dims = _dims(lab, ("phase",))
    u = lab.unit
    ds = xr.Dataset(
        {
            "surface_area": (dims, _stack(lab, areas), {"units": f"{u}^2", "long_name": "surface area of the phase",
                                                        "method": method}),
            "volume": (dims, _stack(lab, vols), {"units": f"{u}^3", "long_name": "volume of the phase"}),
            "per_total_volume": (dims, _stack(lab, [a / t for a, t in zip(areas, totals)]),
                                 {"units": f"{u}^-1", "long_name": "specific surface area: surface area / sample volume"}),
            "per_phase_volume": (dims, _stack(lab, per_phase),
                                 {"units": f"{u}^-1", "long_name": "surface area / volume of the phase"}),
        },
        coords=_coords(lab, phase=[lab.phases[i] for i in idx]),
    )
    ds.attrs.update(method=method, **_common_attrs(lab))
    return ds
