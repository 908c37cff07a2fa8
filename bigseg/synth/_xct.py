"""``xct``: simulated reconstructed X-ray tomograms of label volumes, block by block."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_choice
from ..errors import InputError
from ..io import DEFAULT_PHASES, as_volume, like_volume
from ..io._volume import _relabel_block, reorder_lut
from ..kernels.xct import Physics, halo, xct_block
from ._electrode import generator_of
from ._particles import parse_seed

__all__ = ["xct", "PRESETS", "physics"]

#: Named imaging set-ups (see :class:`bigseg.kernels.xct.Physics` for the meaning of each field).
PRESETS: dict[str, dict[str, Any]] = {
    # Nano-CT with propagation phase contrast (holotomography / Zernike TXM, ~50-60 nm voxels,
    # as the NMC data of Su et al. 2022): strong edge fringes, CBD only a little above pore.
    "nano-ct-phase": dict(attenuation=(0.12, 0.30, 1.0), texture=(0.0, 0.25, 0.04), texture_scale=2.0,
                          psf_sigma=0.9, phase_contrast=1.6, phase_sigma=1.0, snr=5.0, noise="gaussian",
                          noise_correlation=0.7, rings=0.05, drift=0.05),
    # Nano-CT in absorption: no fringes, sharper, CBD very close to pore.
    "nano-ct-absorption": dict(attenuation=(0.12, 0.22, 1.0), texture=(0.0, 0.2, 0.04), texture_scale=2.0,
                               psf_sigma=0.8, phase_contrast=0.0, phase_sigma=1.0, snr=6.0, noise="gaussian",
                               noise_correlation=0.6, rings=0.04, drift=0.04),
    # Laboratory micro-CT (~0.5-1 um voxels): blurrier, noisier (photon-limited), CBD barely
    # separable from pore, weak edge enhancement, stronger rings and drift.
    "lab-micro-ct": dict(attenuation=(0.15, 0.21, 1.0), texture=(0.0, 0.15, 0.03), texture_scale=2.0,
                         psf_sigma=1.4, phase_contrast=0.3, phase_sigma=1.0, snr=3.5, noise="poisson",
                         noise_correlation=0.8, rings=0.07, drift=0.08),
    # Synchrotron micro-CT with propagation distance: sharp with pronounced fringes.
    "synchrotron-micro-ct": dict(attenuation=(0.12, 0.24, 1.0), texture=(0.0, 0.2, 0.03), texture_scale=2.0,
                                 psf_sigma=0.7, phase_contrast=1.8, phase_sigma=1.2, snr=8.0, noise="gaussian",
                                 noise_correlation=0.6, rings=0.08, drift=0.03),
    # No artefacts: attenuation only (for tests and as a reference).
    "ideal": dict(attenuation=(0.12, 0.30, 1.0), texture=(0.0, 0.0, 0.0), psf_sigma=0.0, phase_contrast=0.0,
                  snr=math.inf, noise_correlation=0.0, rings=0.0, drift=0.0),
}

_FIELDS = {f.name for f in dataclasses.fields(Physics)}


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    if isinstance(value, dict):
        try:
            value = [value[k] for k in ("pore", "cbd", "active")]
        except KeyError:
            raise InputError(f"Expected `{name}` to have the keys pore, cbd, active. Got {value!r} instead.") from None
    try:
        items = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"Expected `{name}` to be 3 numbers (pore, cbd, active). Got {value!r} instead.") from None
    if len(items) != 3 or not all(math.isfinite(v) for v in items):
        raise InputError(f"Expected `{name}` to be 3 finite numbers (pore, cbd, active). Got {value!r} instead.")
    return items  # type: ignore[return-value]


def physics(preset: str = "nano-ct-phase", **overrides: Any) -> Physics:
    """The :class:`Physics` of a preset with keyword overrides, validated (errors name the key).

    Parameters
    ----------
    preset : a name of :data:`PRESETS` (default ``"nano-ct-phase"``).
    **overrides : fields of :class:`Physics` to set instead of the preset's (None: the preset's).
    """
    preset = parse_choice("preset", preset, list(PRESETS))
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise InputError(f"Expected physics parameters among {sorted(_FIELDS)}. Got unknown {unknown} instead.")
    kw = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    kw["attenuation"] = _triple("attenuation", kw["attenuation"])
    kw["texture"] = _triple("texture", kw.get("texture", (0, 0, 0)))
    if any(t < 0 or t >= 1 for t in kw["texture"]):
        raise InputError(f"Expected `texture` values in [0, 1). Got {kw['texture']!r} instead.")
    for name in ("psf_sigma", "phase_sigma", "noise_correlation", "rings", "drift", "texture_scale", "cupping"):
        if name in kw:
            v = kw[name]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v < 0:
                raise InputError(f"Expected `{name}` to be a non-negative number. Got {v!r} instead.")
            # the Gaussians' radii are the halo every block reads: 8 voxels make one of 32 (of 64 with phase contrast)
            if name in ("psf_sigma", "phase_sigma", "noise_correlation") and v > 8:
                raise InputError(f"Expected `{name}` at most 8 voxels. Got {v!r} instead.")
            # multiplicative: a factor reaching 0 would darken a slice to nothing or invert its contrast
            if name in ("drift", "cupping") and v >= 1:
                raise InputError(f"Expected `{name}` in [0, 1). Got {v!r} instead.")
    if kw.get("texture_scale", 2.0) < 0.5:  # the lattice's cells in voxels: finer is white noise (tiny: NaN)
        raise InputError(f"Expected `texture_scale` to be at least 0.5 voxels. Got {kw['texture_scale']!r} instead.")
    if kw.get("phase_contrast", 0) and not kw.get("phase_sigma", 1.0) > 0:
        raise InputError(f"Expected `phase_sigma` > 0 with phase contrast. Got {kw['phase_sigma']!r} instead.")
    pc = kw.get("phase_contrast", 0.0)
    if isinstance(pc, bool) or not isinstance(pc, (int, float, np.number)) or not math.isfinite(pc):
        raise InputError(f"Expected `phase_contrast` to be a finite number. Got {pc!r} instead.")
    snr = kw.get("snr", 5.0)
    if isinstance(snr, bool) or not isinstance(snr, (int, float, np.number)) or not snr > 0:
        raise InputError(f"Expected `snr` to be a positive number (or inf for no noise). Got {snr!r} instead.")
    kw["noise"] = parse_choice("noise", kw.get("noise", "gaussian"), ["gaussian", "poisson"])
    if kw.get("bits") not in (None, 8, 16):
        raise InputError(f"Expected `bits` to be None, 8 or 16. Got {kw['bits']!r} instead.")
    if kw["attenuation"][2] == kw["attenuation"][0]:
        raise InputError(f"Expected `attenuation` of pore and active to differ. Got {kw['attenuation']!r} instead.")
    return Physics(**kw)


def _tables(p: Physics, shape: tuple[int, int, int], depth: int, seed: int):
    """Global drift table (per z, with halo) and radial ring profile, drawn from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC7]))
    nz = shape[0]
    z = np.arange(-depth, nz + depth, dtype=np.float64)
    span = max(nz - 1, 1)
    phase = rng.uniform(0, 2 * np.pi)
    period = rng.uniform(0.8, 2.0) * max(nz, 64)
    slope = rng.uniform(-1, 1)
    drift = 1.0 + p.drift * (0.6 * np.sin(2 * np.pi * z / period + phase) + 0.8 * slope * (z / span - 0.5))
    cy, cx = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    rmax = math.hypot(cy + depth + 1, cx + depth + 1) + 2
    step = 0.25
    r = np.arange(0, rmax + 2 * step, step)
    prof = np.zeros_like(r)
    if p.rings:
        n_rings = max(3, int(rmax / 6))
        radii = rng.uniform(0, rmax, size=n_rings)
        amp = rng.normal(0, 1, size=n_rings) * p.rings * abs(p.contrast)
        amp *= 1.0 + 1.5 * np.exp(-radii / (0.3 * rmax))  # rings are stronger near the axis
        width = rng.uniform(0.4, 1.0, size=n_rings)
        for rj, aj, wj in zip(radii, amp, width):
            prof += aj * np.exp(-0.5 * ((r - rj) / wj) ** 2)
    return drift, prof, step, (cy, cx)


def _xct3d(lab: da.Array, p: Physics, seed: int, texture_seed: int | None = None) -> da.Array:
    shape = tuple(int(s) for s in lab.shape)
    given = lab.chunks
    h = halo(p)
    depth = tuple(min(h, s) for s in shape)
    if h:
        lab = lab.rechunk(tuple(da.overlap.ensure_minimum_chunksize(max(d, 1), c) for d, c in zip(depth, lab.chunks)))
    drift, rings, step, centre = _tables(p, shape, h, seed)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in lab.chunks]
    padded = da.overlap.overlap(lab, depth=dict(enumerate(depth)), boundary="reflect") if h else lab
    out_dtype = np.float32 if not p.bits else (np.uint8 if p.bits == 8 else np.uint16)

    def block(x: np.ndarray, block_id=None) -> np.ndarray:
        origin = np.array([starts[a][block_id[a]] - depth[a] for a in range(3)], dtype=np.int64)
        return xct_block(x, origin, depth, p, seed=seed, drift=drift, drift_start=-h, rings=rings,
                         ring_step=step, centre=centre, cup_radius=min(shape[1:]) / 2, texture_seed=texture_seed)

    out = da.map_blocks(block, padded, chunks=lab.chunks, dtype=out_dtype, meta=np.empty((0, 0, 0), out_dtype),
                        token="synth-xct")
    return out if out.chunks == given else out.rechunk(given)  # the labels' chunks (zarr takes no uneven ones)


def _xct3d_generated(model, state, chunks, p: Physics, seed: int, texture_seed: int | None = None) -> da.Array:
    """As :func:`_xct3d` for labels of a particle model: each block renders the labels of its
    own halo (the volume's edge mirrored as dask's 'reflect' boundary does), so blocks are
    independent and memory stays bounded by the block whatever the volume size. Along an axis
    thinner than the halo, :func:`_xct3d` images the whole axis as one block (its chunks are
    merged to at least the halo): so does each block here, then keeps its own part (a block of
    that axis imaged alone mirrored its halo at its cut, not at the volume's edge: the result
    depended on the chunking)."""
    import dask

    from ._particles import render_labels

    shape = model.shape
    h = halo(p)
    depth = tuple(min(h, s) for s in shape)
    drift, rings, step, centre = _tables(p, shape, h, seed)
    out_dtype = np.float32 if not p.bits else (np.uint8 if p.bits == 8 else np.uint16)

    def block(model, block_info=None) -> np.ndarray:
        info = block_info[None]
        loc = [(0, n) if d < h else ab for ab, d, n in zip(info["array-location"], depth, shape)]  # imaged
        lo = [max(a - d, 0) for (a, _), d in zip(loc, depth)]
        hi = [min(b + d, n) for (_, b), d, n in zip(loc, depth, shape)]
        lab = render_labels(model, lo, [b - a for a, b in zip(lo, hi)], state)
        pad = [(l - (a - d), (b + d) - u) for (a, b), d, l, u in zip(loc, depth, lo, hi)]
        if any(x or y for x, y in pad):
            lab = np.pad(lab, pad, mode="symmetric")
        origin = np.array([a - d for (a, _), d in zip(loc, depth)], dtype=np.int64)
        out = xct_block(lab, origin, depth, p, seed=seed, drift=drift, drift_start=-h, rings=rings,
                        ring_step=step, centre=centre, cup_radius=min(shape[1:]) / 2, texture_seed=texture_seed)
        return out[tuple(slice(a - a0, b - a0) for (a, b), (a0, _) in zip(info["array-location"], loc))]

    shared = dask.delayed(model, name=f"synth-model-{dask.base.tokenize(model)}", traverse=False)
    return da.map_blocks(block, shared, chunks=chunks, dtype=out_dtype, meta=np.empty((0, 0, 0), out_dtype),
                         token="synth-xct")


def _by_phase_name(vol: xr.DataArray) -> Any:
    """The labels' dask array with values 0 pore, 1 cbd, 2 active: labels whose
    ``attrs["phases"]`` name these phases at other values (a two-phase ``["pore", "active"]``
    segmentation, phases stored in another order) are mapped by name, as the measurements
    match phases. Names that are not all the simulator's own (``["void", "binder", "nmc"]``)
    leave the values as they are (0, 1, 2 imaged as pore, cbd, active)."""
    arr = vol.data
    names = list(vol.attrs.get("phases") or [])
    if not names or names == DEFAULT_PHASES[:len(names)] or not set(names) <= set(DEFAULT_PHASES) \
            or len(set(names)) != len(names):
        return arr
    # values beyond the phases (255 unlabelled too) are kept: imaged as pore, as before
    return arr.map_blocks(_relabel_block, reorder_lut(names, DEFAULT_PHASES), arr.dtype, dtype=arr.dtype,
                          token="xct-by-phase-name")


def xct(labels: Any, *, seed: int = 0, preset: str = "nano-ct-phase", chunks: Any = None, **physics_kw: Any) -> xr.DataArray:
    """Simulated reconstructed X-ray tomogram of a label volume.

    Parameters
    ----------
    labels : DataArray / dask / NumPy, (z, y, x) or (t, z, y, x) uint8 labels
        ``0 pore, 1 cbd, 2 active`` (any other integer, negative or beyond 255 included, is
        imaged as pore); labels whose ``attrs["phases"]`` name these phases at other values
        (``["pore", "active"]``, another order) are imaged by name
    seed : int in [0, 2**48), noise, texture, ring and drift stream; deterministic per seed
    preset : "nano-ct-phase" (default), "nano-ct-absorption", "lab-micro-ct",
        "synchrotron-micro-ct" or "ideal"
    chunks : output chunks (default: the labels' chunks, enlarged to at least the halo)
    **physics_kw : overrides of the preset, named as in :class:`bigseg.kernels.xct.Physics`:
        ``attenuation=(pore, cbd, active)``, ``texture``, ``psf_sigma`` (voxels),
        ``phase_contrast``, ``phase_sigma``, ``snr`` (contrast-to-noise ratio, ``inf`` = no
        noise), ``noise`` ("gaussian" | "poisson"), ``noise_correlation``, ``rings``, ``drift``
        (in [0, 1)), ``phase_sigma``, ``psf_sigma`` and ``noise_correlation`` at most 8 voxels,
        ``cupping`` (beam hardening: the inscribed cylinder's centre that much darker than its
        rim; 0 in every preset), ``bits`` (None | 8 | 16)

    Returns
    -------
    DataArray, same dims, coordinates and voxel size as ``labels``; float32 grey values in units
    of the active-material attenuation (or uint8/uint16 when ``bits`` is set). A series gets
    an independent noise, ring and drift realisation per time step (each step a scan of its
    own), and the same texture at every step (CBD nanoporosity and grain contrast belong to the
    sample: redrawn per step, they changed where the material did not). ``attrs["xct"]``: the preset, seed and
    physics as JSON text (``json.loads``).

    Notes
    -----
    The model follows what the papers show of real data: CBD is only slightly more attenuating
    than pore (the hard case in Su et al. 2022 and Müller et al. 2021), propagation phase
    contrast adds a Laplacian-of-Gaussian halo at interfaces, partial volume blurs them over a
    few voxels (Su et al. measured a ~10-voxel slope at NMC-CBD borders), and reconstruction
    adds grainy noise, rings about the rotation axis and slow intensity drift. Computed with a
    halo (:func:`bigseg.kernels.xct.halo`) and global-coordinate random numbers, so the result
    does not depend on the chunking.

    Examples
    --------
    >>> from bigseg import synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> image = synth.xct(labels, preset="lab-micro-ct", seed=0)
    >>> image.dims, image.shape, image.dtype
    (('z', 'y', 'x'), (32, 32, 32), dtype('float32'))
    >>> image.attrs["voxel_size"], image.attrs["unit"]  # taken from the labels
    ((50.0, 50.0, 50.0), 'nm')
    >>> pore, cbd, active = (float(image.where(labels == k).mean()) for k in range(3))
    >>> pore < cbd < active  # mean grey levels, as in real scans
    True
    """
    vol = as_volume(labels, name="labels", allow_series=True)
    seed = parse_seed(seed)
    p = physics(preset, **physics_kw)
    if not np.issubdtype(vol.dtype, np.integer):
        raise InputError(f"Expected `labels` to have an integer dtype. Got {vol.dtype} instead.")
    arr = _by_phase_name(vol)
    gen = generator_of(arr)
    if chunks is not None:
        from .._parse import parse_chunks

        arr = arr.rechunk(parse_chunks(chunks, arr.ndim))
    if arr.dtype != np.uint8:  # other values are pore, also those a cast would wrap into 0-2 (258, -254)
        arr = da.where((arr == 1) | (arr == 2), arr, 0).astype(np.uint8)
    if gen is not None:
        model, states = gen
        cs = arr.chunks[-3:]
        if arr.ndim == 4:
            out = da.stack([_xct3d_generated(model, st, cs, p, seed * 1009 + t, texture_seed=seed)
                            for t, st in enumerate(states)])
        else:
            out = _xct3d_generated(model, states[0], cs, p, seed)
    elif arr.ndim == 4:
        out = da.stack([_xct3d(arr[t], p, seed * 1009 + t, texture_seed=seed) for t in range(arr.shape[0])])
    else:
        out = _xct3d(arr, p, seed)
    res = like_volume(out, vol, name="image")
    # JSON text, as predict's "normalization": netCDF (to_netcdf) holds no dict attrs
    res.attrs["xct"] = json.dumps({"preset": preset, "seed": seed, **dataclasses.asdict(p)})
    return res
