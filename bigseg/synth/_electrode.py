"""``electrode``: a synthetic three-phase cathode microstructure, generated block by block."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_chunks, parse_in_range, parse_tuple, parse_positive_int
from ..io import DEFAULT_PHASES, make_volume
from ..io._calibration import parse_unit
from ._particles import (ParticleModel, State, build_model, check_model_size, parse_fractions, parse_radius, parse_seed,
                         render_labels)

__all__ = ["electrode", "label_array", "parse_shape", "generator_of"]

DEFAULT_FRACTIONS = {"pore": 0.35, "cbd": 0.15, "active": 0.50}


def parse_shape(shape: Any) -> tuple[int, int, int]:
    """An int (cube) or (z, y, x) positive ints."""
    return parse_tuple("shape", shape, 3, parse_positive_int)  # type: ignore[return-value]


def _block(model: ParticleModel, state: State, block_info=None) -> np.ndarray:
    info = block_info[None]
    origin = [loc[0] for loc in info["array-location"]]
    return render_labels(model, origin, info["chunk-shape"], state)


#: Recently built label arrays (dask name -> (model, states)), so that ``xct`` can render the
#: labels of each block's halo itself instead of exchanging halos between blocks (which makes
#: dask hold a growing front of blocks). Bounded: models of large volumes weigh tens of MB.
_GENERATORS: OrderedDict[str, tuple[ParticleModel, list[State]]] = OrderedDict()
_MAX_GENERATORS = 4


def register_generator(name: str, model: ParticleModel, states: list[State]) -> None:
    _GENERATORS[name] = (model, states)
    _GENERATORS.move_to_end(name)
    while len(_GENERATORS) > _MAX_GENERATORS:
        _GENERATORS.popitem(last=False)


def generator_of(arr: da.Array) -> tuple[ParticleModel, list[State]] | None:
    """The particle model (and per-step states) behind an unmodified ``electrode``/``series``
    dask array, or None."""
    return _GENERATORS.get(getattr(arr, "name", None))


def label_array(model: ParticleModel, chunks: tuple[int, ...], state: State = State()) -> da.Array:
    """Lazy uint8 (z, y, x) labels of ``model``: one task per block, the model shared by all."""
    shared = dask.delayed(model, name=f"synth-model-{dask.base.tokenize(model)}", traverse=False)
    normalized = da.core.normalize_chunks(chunks, model.shape)
    arr = da.map_blocks(
        _block, chunks=normalized, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8),
        model=shared, state=state, name=f"synth-electrode-{dask.base.tokenize(model, state, normalized)}",
    )
    register_generator(arr.name, model, [state])
    return arr


def electrode(
    shape: Any,
    *,
    fractions: Any = None,
    radius: Any = (8.0, 2.0),
    seed: int = 0,
    chunks: Any = 128,
    cracked: float = 0.2,
    irregularity: float = 1.0,
    voxel_size: Any = None,
    unit: str | None = None,
) -> xr.DataArray:
    """A synthetic three-phase cathode microstructure (NMC-like), lazily, block by block.

    Parameters
    ----------
    shape : int or (z, y, x) ints, voxels
    fractions : dict ``{"pore", "cbd", "active"}`` or 3 numbers (pore, cbd, active) summing to 1;
        default ``{"pore": 0.35, "cbd": 0.15, "active": 0.50}``. Matched to within ~0.005 on
        volumes of 96**3 and more (thresholds calibrated on 2**18 seeded voxels).
    radius : mean or (mean, std) of the particle radius in voxels (log-normal); default (8, 2);
        a volume whose particle list would not fit in this machine's memory is refused
        (MemoryBudgetError)
    seed : int in [0, 2**48), the whole microstructure is a function of (shape, fractions, radius,
        seed, cracked, irregularity)
    chunks : int or (z, y, x), block size of the returned dask array (the result does not depend
        on it, bit for bit)
    cracked : float in [0, 1], probability that a particle of mean radius carries a crack
        (proportional to its radius)
    irregularity : float in [0, 3], scale of the particles' shape harmonics and surface roughness
    voxel_size, unit : physical voxel size (z, y, x) stored in the attrs; default 1 "voxel"
        (sizes in voxels); a voxel size without a unit is in nm. The microstructure is drawn in
        voxels whatever the voxel size: with anisotropic voxels its particles are stretched by
        the edges' ratio (on 2 x 0.5 x 0.5 um voxels 4x longer along z, sphericity ~0.8); for
        round particles seen through anisotropic voxels, generate on cubic voxels and bin the
        long axis (e.g. ``bigseg.io.recalibrated(labels[::4], (2.0, 0.5, 0.5), "um")`` of labels made
        on 0.5 um voxels)

    Returns
    -------
    DataArray, dims (z, y, x), uint8 labels ``0 pore, 1 cbd, 2 active``, dask-backed with
    ``chunks``; ``attrs["phases"] = ["pore", "cbd", "active"]``; ``attrs["synth"]`` the
    generation parameters (fractions, radius, seed, cracked, irregularity) and ``n_particles``
    as JSON text (``json.loads``).

    Notes
    -----
    Active particles: polydisperse log-normal radii, placed largest first by random sequential
    addition with limited overlap (touching and agglomerated, not merged), irregular surfaces
    (random quadratic + cubic spherical harmonics and a global roughness field), some with a
    planar crack. CBD: patchy films on particle surfaces thickening into bridges at necks. The
    particle list is drawn once for the whole volume; each block renders only the particles
    whose reach overlaps it (bucket grid), so memory is bounded by the block and the result is
    identical for any chunking. The 3D U-Net study (Müller et al. 2021) trains on such
    artificial electrodes with simulated tomography.

    Examples
    --------
    A small electrode in 16-voxel chunks, with 50 nm voxels:

    >>> from bigseg import synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), seed=0, chunks=16,
    ...                          voxel_size=50, unit="nm")
    >>> labels.dims, labels.shape, labels.dtype
    (('z', 'y', 'x'), (32, 32, 32), dtype('uint8'))
    >>> labels.attrs["phases"], labels.attrs["voxel_size"], labels.attrs["unit"]
    (['pore', 'cbd', 'active'], (50.0, 50.0, 50.0), 'nm')
    >>> [round(float((labels == k).mean()), 2) for k in range(3)]  # the requested fractions
    [0.35, 0.15, 0.5]
    """
    shape_t = parse_shape(shape)
    fr = parse_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    rad = parse_radius(radius)
    seed = parse_seed(seed)
    unit = None if unit is None else parse_unit(unit)  # the caller's: a length bigseg knows
    chunks_t = parse_chunks(chunks, 3)
    cracked = parse_in_range("cracked", cracked, 0.0, 1.0, closed="both")
    irregularity = parse_in_range("irregularity", irregularity, 0.0, 3.0, closed="both")
    check_model_size(shape_t, fr, rad)
    model = build_model(shape_t, fractions=fr, radius=rad, seed=seed, cracked=cracked, irregularity=irregularity)
    arr = label_array(model, chunks_t)
    vol = make_volume(arr, voxel_size=voxel_size, unit=unit,
                      phases=DEFAULT_PHASES, name="labels")
    # JSON text, as predict's "normalization": netCDF (to_netcdf) holds no dict attrs
    vol.attrs["synth"] = json.dumps({"fractions": list(fr), "radius": list(rad), "seed": seed, "cracked": cracked,
                                     "irregularity": irregularity, "n_particles": model.n_particles})
    return vol
