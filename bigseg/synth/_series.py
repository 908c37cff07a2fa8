"""``series``: an operando series of the same synthetic electrode evolving over time."""

from __future__ import annotations

import json
from typing import Any

import dask.array as da
import xarray as xr

from .._parse import parse_chunks, parse_in_range, parse_positive_int
from ..io import DEFAULT_PHASES, make_volume
from ..io._calibration import parse_unit
from ._electrode import DEFAULT_FRACTIONS, label_array, parse_shape, register_generator
from ._particles import State, build_model, check_model_size, parse_fractions, parse_radius, parse_seed

__all__ = ["series", "series_states", "MAX_STEPS"]

#: the most time ``steps`` of :func:`series`: an operando series has a few to a few hundred scans;
#: every step is a whole volume (10,000 of even 64³ are 2.6 GB of labels) and its own graph
MAX_STEPS = 10_000


def series_states(steps: int, *, swelling: float, crack_growth: float, gap: float) -> list[State]:
    """The particle state at each step: progress s = t / (steps - 1) in [0, 1] (state of
    charge / cycling); radius x (1 + swelling s), crack half-width x (0.3 + crack_growth 0.9 s)
    and extent x (0.5 + 0.5 s) (cracks nucleate and open), CBD gap ``gap s`` voxels around
    detaching particles."""
    out = []
    for t in range(steps):
        s = t / (steps - 1) if steps > 1 else 0.0
        out.append(State(scale=1.0 + swelling * s, crack_w=0.3 + 0.9 * crack_growth * s,
                         crack_rho=0.5 + 0.5 * min(1.0, crack_growth) * s, gap=gap * s))
    return out


def series(
    shape: Any,
    *,
    steps: int,
    seed: int = 0,
    fractions: Any = None,
    radius: Any = (8.0, 2.0),
    swelling: float = 0.05,
    crack_growth: float = 1.0,
    detached: float = 0.4,
    gap: float = 2.0,
    chunks: Any = 128,
    voxel_size: Any = None,
    unit: str | None = None,
) -> xr.DataArray:
    """An operando series (t, z, y, x) of one synthetic electrode whose particles evolve.

    Parameters
    ----------
    shape : int or (z, y, x), voxels per time step
    steps : int in [1, ``MAX_STEPS``], number of time steps
    seed, fractions, radius : as in :func:`bigseg.synth.electrode` (fractions hold at t = 0)
    swelling : relative radius change of every particle over the series (NMC changes volume by
        a few % with state of charge); positive swells, negative shrinks
    crack_growth : scale of crack opening over the series (0: static cracks)
    detached : fraction of particles whose CBD detaches (Jiang et al. 2020 measured the
        detached fraction of particle surfaces after cycling)
    gap : width (voxels) of the pore gap opened between a detaching particle and its CBD at the
        last step
    chunks : int or (z, y, x) spatial block size (one time step per block)
    voxel_size, unit : as in :func:`bigseg.synth.electrode` (default 1 ``"voxel"``)

    Returns
    -------
    DataArray, dims (t, z, y, x), uint8 labels ``0 pore, 1 cbd, 2 active``; the same particles
    (centres, shapes, crack planes) at every step; ``attrs["states"]`` lists each step's state
    and ``attrs["synth"]`` the generation parameters and ``n_particles`` (JSON text:
    ``json.loads``).
    The tomograms are ``xct(series(...))`` (independent noise per step).
    """
    shape_t = parse_shape(shape)
    steps = parse_positive_int("steps", steps, most=MAX_STEPS)
    seed = parse_seed(seed)
    unit = None if unit is None else parse_unit(unit)  # the caller's: a length bigseg knows
    fr = parse_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    rad = parse_radius(radius)
    swelling = parse_in_range("swelling", swelling, -0.3, 0.3, closed="both")
    crack_growth = parse_in_range("crack_growth", crack_growth, 0.0, 3.0, closed="both")
    detached = parse_in_range("detached", detached, 0.0, 1.0, closed="both")
    gap = parse_in_range("gap", gap, 0.0, 10.0, closed="both")
    chunks_t = parse_chunks(chunks, 3)
    check_model_size(shape_t, fr, rad)
    states = series_states(steps, swelling=swelling, crack_growth=crack_growth, gap=gap)
    # calibrated at t = 0 (cracks at 0.3 x their width there: calibrating the default state
    # left ~1 percentage point more active, less pore, than requested)
    model = build_model(shape_t, fractions=fr, radius=rad, seed=seed, detached=detached,
                        max_scale=max(1.0, 1.0 + swelling), state=states[0])
    arr = da.stack([label_array(model, chunks_t, st) for st in states])
    register_generator(arr.name, model, states)
    vol = make_volume(arr, voxel_size=voxel_size, unit=unit,
                      phases=DEFAULT_PHASES, name="labels")
    vol.attrs["states"] = json.dumps([vars(st) for st in states])  # JSON text: netCDF holds no dicts
    vol.attrs["synth"] = json.dumps({"fractions": list(fr), "radius": list(rad), "seed": seed, "swelling": swelling,
                                     "crack_growth": crack_growth, "detached": detached, "gap": gap,
                                     "n_particles": model.n_particles})
    return vol
