"""Tortuosity factor and effective diffusivity of a phase through TauFactor, on sub-volumes."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import threading
import warnings
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from .._parse import AXES, parse_axis, parse_in_range, parse_positive_int, parse_tuple
from ..errors import InputError
from ..ops import block_slices
from ..runtime._progress import compute
from ..io._fov import fov_mask, inscribed_box
from ._blockwise import BlockGeometry, block_results
from ._inputs import UNLABELLED, Labels, as_labels
from ._metrics import _check, _phase_index, _stats_graph, _time

__all__ = ["tortuosity"]


#: held while TauFactor's output is silenced: ``redirect_stdout`` swaps the process-wide
#: ``sys.stdout``, so two solves silenced at once on threads (dask's threaded scheduler) restore
#: each other's StringIO and left the caller's prints going nowhere for the rest of the process
_QUIET = threading.Lock()


def _solve(block: np.ndarray, *, phase: int, axis: int, spacing: tuple[float, float, float], device: str | None,
           conv_crit: float, iter_limit: int) -> tuple[float, float, float, int, bool]:
    """TauFactor on one sub-volume: ``(tau, D_eff / D_0, porosity, iterations, settled)``;
    ``settled``: a result (TauFactor's own convergence, or no solve needed), not a field stopped
    at ``iter_limit`` (which may be the very check where it converged: a multiple of 100).

    The flux runs along ``axis`` (TauFactor's first axis); anisotropic voxels use its
    ``AnisotropicSolver`` (neighbour weights scaled by the squared spacing ratios).
    """
    import taufactor
    import torch

    img = np.moveaxis(np.asarray(block) == phase, axis, 0).astype(np.uint8)
    sp = tuple(float(spacing[a]) for a in [axis] + [a for a in range(3) if a != axis])  # as np.moveaxis
    porosity = float(img.mean())
    if porosity == 0.0:
        return math.inf, 0.0, 0.0, 0, True
    cc, _ = ndi.label(img)  # 6-connected: is any component on both faces normal to the flux?
    if not np.intersect1d(cc[0][cc[0] > 0], cc[-1][cc[-1] > 0]).size:
        return math.inf, 0.0, porosity, 0, True
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # TauFactor prints, and divides by zero where nothing percolates (tau = inf): the result says it all
    with _QUIET, contextlib.redirect_stdout(io.StringIO()), np.errstate(divide="ignore", invalid="ignore"):
        if len(set(sp)) == 1:
            solver = taufactor.Solver(img, device=dev)
        else:
            solver = _anisotropic_solver()(img, spacing=sp, device=dev)
        solver.solve(verbose=False, conv_crit=conv_crit, iter_limit=iter_limit)
    if solver.tau is None:  # stopped before TauFactor's first convergence check (every 100 iterations)
        return math.nan, math.nan, porosity, int(solver.iter), False
    tau = float(np.ravel(solver.tau)[0])
    d_eff = float(np.ravel(solver.D_eff)[0]) if np.isfinite(tau) else 0.0
    return tau, d_eff, porosity, int(solver.iter), bool(solver.converged)


def _anisotropic_solver():
    """TauFactor's ``AnisotropicSolver`` with the flux summed over every conducting voxel.

    TauFactor (1.2) drops the flux of voxels whose weighted neighbour count exceeds 8, its mark
    for "not conducting" (that count is infinite there) when every weight is 1. With voxels
    shorter across the flux than along it the weights ``(d_flux / d_other)**2`` exceed 1 and so
    does that count in conducting voxels: their flux was dropped, and τ came out infinite or
    several times too high (straight channels along z at 2 × 1 × 1 voxels: inf, not 2.5). Here
    the mark is the infinity itself, as TauFactor's multi-phase solver has it."""
    import taufactor
    import torch

    class Anisotropic(taufactor.AnisotropicSolver):
        def vertical_flux(self):
            flux = self.field[:, 2:-1, 1:-1, 1:-1] - self.field[:, 1:-2, 1:-1, 1:-1]
            flux[torch.isinf(self.factor[:, 0:-1])] = 0
            flux[torch.isinf(self.factor[:, 1:])] = 0
            return flux

    return Anisotropic


def _tile_chunks(shape: tuple[int, int, int], sub: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
    """The chunks of the sub-volumes: at most ``sub`` voxels per axis, as equal as possible,
    covering the volume, and at least 3 voxels (a solve needs them; e.g. 10 voxels at ``sub`` 3
    are cut 3 + 4 + 3, not 2 + 3 + 2 + 3)."""
    return tuple(tuple(np.diff(np.linspace(0, n, max(1, min(math.ceil(n / s), n // 3)) + 1).round().astype(int))
                       .tolist()) for n, s in zip(shape, sub))


def _solve_block(block: np.ndarray, geom: BlockGeometry, **kwargs: Any) -> tuple[float, float, float, int, bool]:
    return _solve(block, **kwargs)


def tortuosity(labels: Any, *, phase: str | int = "pore", axis: str | int = "z", subvolume: Any = 256,
               device: str | None = None, conv_crit: float = 1e-2, iter_limit: int = 10000, phases: Any = None,
               fov: Any = None, progress: bool = False) -> xr.Dataset:
    """Tortuosity factor τ and relative effective diffusivity of one phase, by TauFactor.

    TauFactor (Kench et al. 2023, `taufactor`) solves steady-state diffusion through the phase
    with fixed concentrations on the two faces normal to ``axis`` (no flux through the other
    faces) by over-relaxed iteration on the CPU or a CUDA GPU; τ = ε D_0 / D_eff with ε the
    phase's volume fraction. The volume is cut into sub-volumes of at most ``subvolume`` voxels
    per axis (each must fit the device), solved independently, one dask task each.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1``.
    phase : the conducting phase (default ``"pore"``: electrolyte transport).
    axis : ``"z"``, ``"y"`` or ``"x"`` (or 0, 1, 2), the transport direction (e.g. through the electrode
        thickness).
    subvolume : int or (z, y, x): largest sub-volume edge (default 256); the volume is split
        into near-equal sub-volumes no larger than this (but at least 3 voxels: a little larger
        where an axis would leave a thinner one, e.g. 10 voxels at 3 are cut 3 + 4 + 3).
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when the worker has it.
    conv_crit, iter_limit : TauFactor's convergence criterion and iteration cap.
    fov : a field of view (:func:`bigseg.io.fov_mask`: a (y, x) mask, or ``"auto"`` to find the
        255 fill around segmented labels): the diffusion is solved in the largest square box
        inside it (:func:`bigseg.io.inscribed_box`; ``attrs["box_yx"]``). Without it, labels
        holding unlabelled (255) voxels are refused.
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset over ``subvolume`` (and ``t`` for a series) with ``tau`` (tortuosity factor; ``inf``,
    without running the solver, where no 6-connected path of the phase joins the two faces), ``D_eff`` (effective over bulk
    diffusivity, dimensionless, ``porosity / tau``), ``porosity`` (volume fraction of
    ``phase`` in the sub-volume) and ``iterations``; coordinates ``z0, y0, x0, z1, y1, x1``
    give each sub-volume's voxel bounds (half-open, in the indices of ``labels``). A sub-volume
    whose solve stops at ``iter_limit`` unconverged (TauFactor's own check) has NaN ``tau`` and ``D_eff`` (with a warning).
    ``attrs["subvolume"]``: the largest (z, y, x) edges solved. Anisotropic voxels
    (``voxel_size``) are solved as they are (neighbour weights by the squared spacing ratios):
    within 2–6 % of the same structure cut into cubic voxels on default electrodes, up to 11 % on
    fine ones (particle radius 4 voxels on 2 × 1 × 1 voxels), where the coarse axis resolves the
    narrow pore throats worst.
    """
    axis = AXES[parse_axis("axis", axis)]
    lab = as_labels(labels, phases=phases)
    box = None
    if fov is not None:  # whole boxes only: the largest square inside the field of view
        box = inscribed_box(fov_mask(lab.vol, fov))
        lab = as_labels(lab.vol.isel(y=box[0], x=box[1]), phases=lab.phases)
    if min(lab.spatial_shape) < 3:
        raise InputError(f"Expected `labels` at least 3 voxels along every axis for a diffusion solve"
                         f"{' (inside the box of `fov`)' if box else ''}. Got {lab.spatial_shape} instead.")
    idx = _phase_index(lab, phase)
    if isinstance(subvolume, (int, np.integer)) and not isinstance(subvolume, bool):
        subvolume = (subvolume,) * 3
    sub = parse_tuple("subvolume", subvolume, 3, parse_positive_int)
    if any(s < 3 for s in sub):
        raise InputError(f"Expected `subvolume` to be at least 3 voxels per axis. Got {subvolume!r} instead.")
    if device is not None and not (isinstance(device, str) and (device == "cpu" or device.startswith("cuda"))):
        raise InputError(f"Expected `device` to be 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.")
    conv_crit = parse_in_range("conv_crit", conv_crit, 0.0, 1.0, closed="neither")
    iter_limit = parse_positive_int("iter_limit", iter_limit)
    try:
        import taufactor  # noqa: F401
    except ImportError as e:  # pragma: no cover - taufactor is in the dev and "transport" extras
        raise ImportError("bigseg.measure.tortuosity needs TauFactor: pip install 'bigseg[transport]'") from e
    ax = AXES.index(axis)
    chunks = _tile_chunks(lab.spatial_shape, sub)
    tiles = list(block_slices(chunks).values())  # C order, as block_results gives the solves
    solve = functools.partial(_solve_block, phase=idx, axis=ax, spacing=lab.voxel_size, device=device,
                              conv_crit=conv_crit, iter_limit=iter_limit)
    tasks = [block_results(solve, frame.rechunk(chunks), depth=0) for frame in lab.frames()]
    hists = _stats_graph(lab, hist_only=True)
    for t, c in enumerate(_check(lab, compute(*hists, desc="label values", progress=False), allow_unlabelled=True)):
        if c["hist"][UNLABELLED]:
            raise InputError(f"Expected `labels` without unlabelled (255) voxels: the diffusion is solved in whole "
                             f"boxes. Got {int(c['hist'][UNLABELLED])} unlabelled voxels"
                             f"{f' at t={t}' if lab.series else ''}"
                             f"{' inside the box of `fov`' if box else ''}: pass a field of view (`fov` 'auto' "
                             f"finds the 255 fill around segmented labels) or a box inside it.")
    res = compute(*tasks, desc=f"tortuosity ({lab.phases[idx]}, {axis})", progress=progress)
    res = np.asarray(res, np.float64).reshape(len(tasks), len(tiles), 5)
    # TauFactor's own word (was: every solve that reached iter_limit, also one that converged on that
    # very check); NaN: stopped before its first check
    stuck = res[..., 4] == 0
    if stuck.any():  # not a result: the field had not settled
        res[..., :2][stuck] = np.nan
        warnings.warn(f"tortuosity: {int(stuck.sum())} of {stuck.size} sub-volumes did not converge in "
                      f"iter_limit={iter_limit} iterations (conv_crit {conv_crit:g}); their tau and D_eff are NaN. "
                      f"Pass a larger `iter_limit` or `conv_crit`, or smaller sub-volumes.", stacklevel=2)
    ds = _dataset(lab, res, tiles, idx, axis, offset=(0, 0, 0) if box is None else (0, box[0].start, box[1].start))
    if box is not None:
        ds.attrs["box_yx"] = [[box[0].start, box[0].stop], [box[1].start, box[1].stop]]
    return ds


def _dataset(lab: Labels, res: np.ndarray, tiles, idx: int, axis: str, offset=(0, 0, 0)) -> xr.Dataset:
    dims = ("t", "subvolume") if lab.series else ("subvolume",)
    pick = (lambda a: a) if lab.series else (lambda a: a[0])
    coords: dict[str, Any] = {"subvolume": ("subvolume", np.arange(len(tiles)), {"long_name": "sub-volume number"})}
    for a, name in enumerate(AXES):
        coords[f"{name}0"] = ("subvolume", [t[a].start + offset[a] for t in tiles],
                              {"units": "voxel", "long_name": f"first {name} index of the sub-volume"})
        coords[f"{name}1"] = ("subvolume", [t[a].stop + offset[a] for t in tiles],
                              {"units": "voxel", "long_name": f"{name} index past the sub-volume's end"})
    if lab.series:
        coords["t"] = _time(lab)
    ds = xr.Dataset(
        {
            "tau": (dims, pick(res[..., 0]), {"units": "1", "long_name": f"tortuosity factor along {axis}"}),
            "D_eff": (dims, pick(res[..., 1]), {"units": "1", "long_name": "effective / bulk diffusivity"}),
            "porosity": (dims, pick(res[..., 2]), {"units": "1", "long_name": f"volume fraction of {lab.phases[idx]}"}),
            "iterations": (dims, pick(res[..., 3]).astype(np.int64), {"long_name": "TauFactor iterations"}),
        },
        coords=coords,
    )
    # the largest edges solved (subvolume=256 of a 48³ volume: 48, not the 256 asked for)
    largest = [max(t[a].stop - t[a].start for t in tiles) for a in range(3)]
    ds.attrs.update(phase=lab.phases[idx], axis=axis, subvolume=largest, solver="taufactor",
                    voxel_size=list(lab.voxel_size), unit=lab.unit)
    return ds
