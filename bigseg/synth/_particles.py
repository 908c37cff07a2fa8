"""The global particle model of a synthetic electrode and its block renderer.

A :class:`ParticleModel` is drawn once per (shape, fractions, radius, seed): particle centres
and radii, low-order shape harmonics, crack planes, per-axis tables of two smooth random fields
(surface roughness and CBD patchiness), a spatial bucket grid, and the two global thresholds
calibrated on a seeded sample of voxels so that the phase fractions match the request. Every
block is then a pure function of the model and the block's global position
(:func:`render_labels`), hence the same for any chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._parse import parse_in_range, parse_nonnegative_int
from ..errors import InputError, MemoryBudgetError
from ..io import DEFAULT_PHASES
from ..kernels import synth as K

__all__ = ["ParticleModel", "State", "build_model", "render_labels", "parse_fractions", "parse_radius", "parse_seed",
           "check_model_size"]

#: Numbers of candidate points used to calibrate the phase thresholds.
_SAMPLE = 1 << 18

#: Seeds of the simulator are below this: the X-ray CT and perturbation kernels mix a seed into
#: 64-bit integer keys (``seed * 1009 + t`` per time step, then ``* 31``), which must not overflow.
MAX_SEED = 1 << 48

#: Largest share of the CBD allowed beyond every particle's reach (``margin`` voxels from its
#: surface, where the CBD field no longer sees a surface): above it the margin is widened, so
#: that CBD stays films and bridges on the particles instead of blobs floating in open pore.
_MAX_FLOATING_CBD = 0.05

#: Bytes a particle of the model costs while it is drawn and held (its arrays, the placement's
#: and the bucket grid's, the temporary copies): the estimate :func:`check_model_size` uses.
_BYTES_PER_PARTICLE = 512


def parse_seed(value) -> int:
    """A seed of the simulator: an int in [0, 2**48)."""
    seed = parse_nonnegative_int("seed", value)
    if seed >= MAX_SEED:
        raise InputError(f"Expected `seed` in [0, 2**48). Got {value!r} instead.")
    return seed


def check_model_size(shape: tuple[int, int, int], fractions: tuple[float, float, float],
                     radius: tuple[float, float]) -> None:
    """Refuse, before any work, a particle list larger than this machine's memory (the model
    is drawn in one process and held by every worker): an estimate of ``1.1 active (volume
    padded by a radius) / (4/3 pi mean**3)`` particles of ``_BYTES_PER_PARTICLE`` each
    (``electrode(10**5)`` failed with NumPy's "Unable to allocate 1.87 TiB"). Particles wider than
    the volume along every axis are warned of: it holds a piece of one or two of them, no sample."""
    r_mean = radius[0]
    if 2 * r_mean > max(shape):  # electrode(32, radius=100): one particle's inside, without a word
        import warnings

        warnings.warn(f"`radius` mean {r_mean:g} voxels makes particles {2 * r_mean:g} voxels across, wider than "
                      f"`shape` {tuple(shape)} along every axis: the volume holds a piece of one or two particles, "
                      f"not a sample of many (the radius is in voxels).", UserWarning, stacklevel=3)
    n = 1.1 * fractions[2] * math.prod(s + 2 * r_mean for s in shape) / (4 / 3 * math.pi * r_mean**3) + 64
    need = n * _BYTES_PER_PARTICLE
    import psutil

    from ..runtime._budget import format_bytes

    have = psutil.virtual_memory().total
    if need > have:
        raise MemoryBudgetError(
            f"Expected `shape` {tuple(shape)} with `radius` mean {r_mean:g} to need a particle model that fits in "
            f"memory: about {n:.3g} particles, {format_bytes(need)}, more than this machine's {format_bytes(have)} "
            f"(the model is held by every worker). Generate a smaller volume or larger particles."
        )


def parse_fractions(value) -> tuple[float, float, float]:
    """``{"pore": p, "cbd": c, "active": a}`` or ``(p, c, a)`` -> (p, c, a), each in [0, 1], sum 1."""
    if isinstance(value, dict):
        unknown = set(value) - set(DEFAULT_PHASES)
        if unknown or set(value) != set(DEFAULT_PHASES):
            raise InputError(
                f"Expected `fractions` to have the keys {DEFAULT_PHASES}. Got {sorted(value)} instead."
            )
        items = [value[k] for k in DEFAULT_PHASES]
    else:
        try:
            items = list(value)
        except TypeError:
            raise InputError(f"Expected `fractions` to be a dict or 3 numbers (pore, cbd, active). Got {value!r} instead.") from None
        if len(items) != 3:
            raise InputError(f"Expected `fractions` to have 3 values (pore, cbd, active). Got {value!r} instead.")
    out = tuple(parse_in_range("fractions", v, 0.0, 1.0, closed="both") for v in items)
    if abs(sum(out) - 1.0) > 1e-6:
        raise InputError(f"Expected `fractions` to sum to 1. Got {value!r} (sum {sum(out):.4g}) instead.")
    if out[2] < 0.02 or out[2] > 0.8:
        raise InputError(f"Expected the `fractions` of 'active' in [0.02, 0.8]. Got {out[2]:g} instead.")
    return out  # type: ignore[return-value]


def parse_radius(value) -> tuple[float, float]:
    """``mean`` or ``(mean, std)`` in voxels -> (mean, std); mean >= 1.5, std >= 0."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        items = [value, 0.25 * float(value)]
    else:
        try:
            items = list(value)
        except TypeError:
            raise InputError(f"Expected `radius` to be a number or (mean, std) in voxels. Got {value!r} instead.") from None
        if len(items) != 2:
            raise InputError(f"Expected `radius` to be a number or (mean, std) in voxels. Got {value!r} instead.")
    try:
        mean = float(items[0])
        std = float(items[1])
    except (TypeError, ValueError):
        raise InputError(f"Expected `radius` to be a number or (mean, std) in voxels. Got {value!r} instead.") from None
    if not (math.isfinite(mean) and mean >= 1.5):
        raise InputError(f"Expected `radius` mean to be at least 1.5 voxels. Got {value!r} instead.")
    if not (math.isfinite(std) and std >= 0):
        raise InputError(f"Expected `radius` std to be a non-negative number. Got {value!r} instead.")
    return mean, std


@dataclass(frozen=True)
class State:
    """Operando state of the particles: swelling ``scale`` (radius multiplier), crack growth
    (half-width and extent multipliers) and the CBD gap (voxels) around detached particles."""

    scale: float = 1.0
    crack_w: float = 1.0
    crack_rho: float = 1.0
    gap: float = 0.0


@dataclass
class ParticleModel:
    """Everything a block needs to render its labels (all lengths in voxels, (z, y, x))."""

    shape: tuple[int, int, int]
    centre: np.ndarray  # (n, 3) float64
    radius: np.ndarray  # (n,)
    reach: np.ndarray  # (n,) max R(u)
    quad: np.ndarray  # (n, 6)
    cubic: np.ndarray  # (n, 10)
    crack: np.ndarray  # (n, 6)
    detached: np.ndarray  # (n,) bool
    rough_tables: tuple
    cbd_tables: tuple
    rough_amp: float
    cbd_amp: float
    cbd_length: float
    neck_weight: float
    margin: float
    max_scale: float
    cell_size: float = 0.0
    grid_origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    grid_shape: np.ndarray = field(default_factory=lambda: np.ones(3, dtype=np.int64))
    cell_start: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.int64))
    cell_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    t_active: float = 0.0
    tau_cbd: float = 0.0

    def __dask_tokenize__(self):
        return ("ParticleModel", self.shape, self.centre, self.radius, self.reach, self.quad, self.cubic,
                self.crack, self.detached, self.rough_tables, self.cbd_tables, self.rough_amp, self.cbd_amp,
                self.cbd_length, self.neck_weight, self.margin, self.max_scale, self.t_active, self.tau_cbd)

    @property
    def n_particles(self) -> int:
        return int(self.radius.shape[0])

    # -- spatial buckets ---------------------------------------------------------------
    def _bucket(self) -> None:
        reach_max = float(self.reach.max()) if self.n_particles else 1.0
        self.cell_size = reach_max * self.max_scale + self.margin + 1.0
        lo = self.centre.min(axis=0) if self.n_particles else np.zeros(3)
        hi = self.centre.max(axis=0) if self.n_particles else np.ones(3)
        self.grid_origin = np.floor(lo) - 1.0
        self.grid_shape = (np.floor((hi - self.grid_origin) / self.cell_size).astype(np.int64) + 1)
        cells = self._cell_of(self.centre)
        order = np.argsort(cells, kind="stable")
        self.cell_items = order.astype(np.int64)
        counts = np.bincount(cells, minlength=int(np.prod(self.grid_shape)))
        self.cell_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def _cell_of(self, pts: np.ndarray) -> np.ndarray:
        g = np.floor((pts - self.grid_origin) / self.cell_size).astype(np.int64)
        g = np.clip(g, 0, self.grid_shape - 1)
        return (g[:, 0] * self.grid_shape[1] + g[:, 1]) * self.grid_shape[2] + g[:, 2]

    def candidates(self, origin, shape, scale: float = 1.0) -> np.ndarray:
        """Indices of the particles that may reach the box ``[origin, origin + shape)``:
        gathered from the bucket cells around the box (O(particles near the box)), then
        filtered by bounding box."""
        origin = np.asarray(origin, dtype=np.float64)
        stop = origin + np.asarray(shape, dtype=np.float64) - 1.0
        lo = np.floor((origin - self.cell_size - self.grid_origin) / self.cell_size).astype(np.int64)
        hi = np.floor((stop + self.cell_size - self.grid_origin) / self.cell_size).astype(np.int64)
        lo = np.clip(lo, 0, self.grid_shape - 1)
        hi = np.clip(hi, -1, self.grid_shape - 1)
        if np.any(hi < lo):
            return np.zeros(0, dtype=np.int64)
        gz, gy = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
        rows = (gz.ravel() * self.grid_shape[1] + gy.ravel()) * self.grid_shape[2]
        starts = self.cell_start[rows + lo[2]]
        stops = self.cell_start[rows + hi[2] + 1]
        lens = stops - starts
        if lens.sum() == 0:
            return np.zeros(0, dtype=np.int64)
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
        cand = self.cell_items[idx]
        lim = (self.reach[cand] * scale + self.margin)[:, None]
        c = self.centre[cand]
        keep = np.all((c + lim >= origin - 0.5) & (c - lim <= stop + 0.5), axis=1)
        return np.sort(cand[keep])

    # -- fields ------------------------------------------------------------------------
    def fields_at_points(self, pts: np.ndarray, state: State = State()):
        d1, d2, nearest, crk = K.particle_points(
            pts, self.cell_start, self.cell_items, self.grid_origin, self.cell_size, self.grid_shape,
            self.centre, self.radius, self.reach, self.quad, self.cubic, self.crack,
            state.scale, state.crack_w, state.crack_rho, self.margin,
        )
        nr = K.fourier_points(*self.rough_tables, pts)
        nc = K.fourier_points(*self.cbd_tables, pts)
        return d1, d2, nearest, crk, nr, nc

    def fields_block(self, origin, shape, state: State = State()):
        origin = np.asarray(origin, dtype=np.int64)
        shape = np.asarray(shape, dtype=np.int64)
        idx = self.candidates(origin, shape, state.scale)
        d1, d2, nearest, crk = K.render_particles(
            origin, shape, idx, self.centre, self.radius, self.reach, self.quad, self.cubic, self.crack,
            state.scale, state.crack_w, state.crack_rho, self.margin,
        )
        nr = K.fourier_field(*self.rough_tables, origin[0], origin[1], origin[2], shape[0], shape[1], shape[2])
        nc = K.fourier_field(*self.cbd_tables, origin[0], origin[1], origin[2], shape[0], shape[1], shape[2])
        return d1, d2, nearest, crk, nr, nc


def _classify(model: ParticleModel, d1, d2, nearest, crk, nr, nc, state: State, xp=np):
    """Labels from the distance and noise fields: 2 active, 1 CBD, 0 pore (see build_model)."""
    rough = (model.rough_amp * nr).astype(d1.dtype)
    e1 = d1 + rough
    e2 = d2 + rough
    active = e1 < model.t_active
    score = model.cbd_amp * nc - (e1 + model.neck_weight * e2) / model.cbd_length
    cbd = ~active & ~crk & (score > model.tau_cbd)
    if state.gap > 0 and model.detached.any():
        det = np.zeros(nearest.shape, dtype=bool)
        ok = nearest >= 0
        det[ok] = model.detached[nearest[ok]]
        cbd &= ~(det & (e1 < model.t_active + state.gap))
    out = np.zeros(d1.shape, dtype=np.uint8)
    out[cbd] = 1
    out[active] = 2
    return out


def render_labels(model: ParticleModel, origin, shape, state: State = State()) -> np.ndarray:
    """uint8 (z, y, x) labels of the block at global ``origin`` with ``shape``."""
    return _classify(model, *model.fields_block(origin, shape, state), state)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(phi), np.sin(phi) * np.sin(theta), np.sin(phi) * np.cos(theta)], axis=1)


def build_model(
    shape: tuple[int, int, int],
    *,
    fractions: tuple[float, float, float],
    radius: tuple[float, float],
    seed: int,
    cracked: float = 0.2,
    detached: float = 0.4,
    max_scale: float = 1.0,
    irregularity: float = 1.0,
    state: State = State(),
) -> ParticleModel:
    """Draw the particles and calibrate the thresholds (see :func:`bigseg.synth.electrode`).

    Method: polydisperse log-normal radii are placed largest first by random sequential
    addition with limited overlap (centres at least 0.8 (r_i + r_j) apart) in the volume padded
    by one mean radius, until their summed volume reaches the requested active fraction (plus
    10 % for overlaps). Each particle's surface is ``r (1 + u'Qu + cubic(u))`` (random traceless
    quadratic and cubic harmonics in the unit direction u) plus a global roughness field; some
    (probability ``cracked``, larger particles more often) carry a planar crack. CBD is where
    ``A n(x) - (d1 + w d2) / L`` exceeds a threshold (n: smooth random field, d1/d2: distance to
    the nearest/second nearest particle surface), i.e. patchy films on surfaces that thicken
    into bridges at necks, as in the carbon-binder domain of NMC cathodes (Müller et al. 2021;
    Jiang et al. 2020). The active threshold (a fraction of a voxel) and the CBD threshold are
    quantiles of these fields on 2**18 seeded random voxels, so the fractions match the request
    in ``state`` (swelling and cracks as rendered; an operando series passes its first step,
    whose cracks are narrower than the default state's; the CBD gap is not modelled here).
    Distances are clipped at ``margin`` voxels from the surfaces (max(4, 0.75 mean radius));
    when more than 5 % of the CBD would lie beyond that reach (blobs in open pore, touching no
    particle: e.g. fractions (0.6, 0.2, 0.2), or radius (8, 8)), the margin is widened by 1.5x
    (up to 4 mean radii + 8) and the thresholds recalibrated, so the CBD stays on the particles
    as thicker films.
    """
    f_pore, f_cbd, f_act = fractions
    r_mean, r_std = radius
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    shape_arr = np.asarray(shape, dtype=np.float64)
    pad = r_mean
    lo = np.full(3, -pad)
    hi = shape_arr - 1 + pad
    vol_pad = float(np.prod(hi - lo))

    # radii: log-normal with the requested mean and standard deviation
    if r_std > 0:
        s2 = math.log(1 + (r_std / r_mean) ** 2)
        mu = math.log(r_mean) - s2 / 2
    dirs = _fibonacci_sphere(256)
    target = f_act * vol_pad * 1.10
    radii_chunks, quad_chunks, cubic_chunks, vols = [], [], [], 0.0
    while vols < target:
        m = max(64, int((target - vols) / (4.19 * r_mean**3)) + 64)
        r = np.exp(rng.normal(mu, math.sqrt(s2), size=m)) if r_std > 0 else np.full(m, r_mean)
        r = np.clip(r, 1.0, None)
        q = rng.normal(0, 0.07 * irregularity, size=(m, 6))
        q[:, :3] -= q[:, :3].mean(axis=1, keepdims=True)
        c = rng.normal(0, 0.05 * irregularity, size=(m, 10))
        v = 4 / 3 * np.pi * r**3 * K.shape_factor(q, c, dirs, reduce=lambda sf: (sf**3).mean(axis=1))
        cum = vols + np.cumsum(v)
        n_take = int(np.searchsorted(cum, target) + 1)
        n_take = min(n_take, m)
        radii_chunks.append(r[:n_take])
        quad_chunks.append(q[:n_take])
        cubic_chunks.append(c[:n_take])
        vols = float(cum[n_take - 1])
    radii = np.concatenate(radii_chunks)
    quad = np.concatenate(quad_chunks)
    cubic = np.concatenate(cubic_chunks)
    order = np.argsort(-radii, kind="stable")
    radii, quad, cubic = radii[order], quad[order], cubic[order]
    attempts = 200
    place_seed = int(rng.integers(0, 2**62))
    centres, placed = K.place_particles(place_seed, radii, lo, hi, 0.8, attempts)
    radii, quad, cubic = radii[placed], quad[placed], cubic[placed]
    n = len(radii)
    reach = radii * K.shape_factor(quad, cubic, dirs, reduce=lambda sf: sf.max(axis=1)) * 1.05 + 0.5

    # cracks: a planar crack through some particles, more likely in large ones
    p_crack = np.clip(cracked * radii / r_mean, 0, 1)
    has = rng.uniform(size=n) < p_crack
    nrm = rng.normal(size=(n, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    crack = np.zeros((n, 6))
    crack[:, :3] = nrm
    crack[:, 3] = rng.uniform(-0.3, 0.3, size=n)
    crack[:, 4] = np.where(has, rng.uniform(0.6, 1.2, size=n) * max(1.0, r_mean / 8) ** 0.5, 0.0)
    crack[:, 5] = rng.uniform(0.7, 1.3, size=n)
    det = rng.uniform(size=n) < detached

    rough_wl = max(3.0, 0.7 * r_mean)
    cbd_wl = max(4.0, 1.0 * r_mean)
    sz = tuple(int(s) for s in shape)
    model = ParticleModel(
        shape=sz,
        centre=centres,
        radius=radii,
        reach=reach,
        quad=quad,
        cubic=cubic,
        crack=crack,
        detached=det,
        rough_tables=K.fourier_tables(rng, 24, rough_wl, sz),
        cbd_tables=K.fourier_tables(rng, 32, cbd_wl, sz),
        rough_amp=0.06 * r_mean * irregularity,
        cbd_amp=1.0,
        cbd_length=max(1.0, 0.3 * r_mean),
        neck_weight=0.5,
        margin=max(4.0, 0.75 * r_mean),
        max_scale=float(max_scale),
    )
    model._bucket()

    # calibrate the two thresholds on seeded random voxels; where more CBD is asked for than
    # films within ``margin`` of the surfaces hold (much CBD on little active, or a few large
    # particles about wide pores), widen the margin: thicker films, not blobs in open pore
    pts = np.stack([rng.integers(0, s, size=_SAMPLE) for s in sz], axis=1).astype(np.int64)
    floating = _calibrate(model, pts, f_act, f_cbd, state)
    while floating > _MAX_FLOATING_CBD and model.margin < 4.0 * r_mean + 8.0:
        model.margin *= 1.5
        model._bucket()
        floating = _calibrate(model, pts, f_act, f_cbd, state)
    return model


def _calibrate(model: ParticleModel, pts: np.ndarray, f_act: float, f_cbd: float, state: State) -> float:
    """Set ``model.t_active`` and ``model.tau_cbd`` from the fields at the sample ``pts``;
    returns the share of the sampled CBD beyond every particle's reach (``margin``)."""
    d1, d2, nearest, crk, nr, nc = model.fields_at_points(pts, state)
    e1 = d1 + model.rough_amp * nr
    e2 = d2 + model.rough_amp * nr
    model.t_active = float(np.quantile(e1, f_act))
    score = model.cbd_amp * nc - (e1 + model.neck_weight * e2) / model.cbd_length
    free = ~(e1 < model.t_active) & ~crk
    k = int(round(f_cbd * len(pts)))
    s_free = np.sort(score[free])[::-1]
    if k <= 0:
        model.tau_cbd = float("inf")
    elif k >= len(s_free):
        model.tau_cbd = float("-inf")
    else:
        model.tau_cbd = float(0.5 * (s_free[k - 1] + s_free[k]))
    cbd = free & (score > model.tau_cbd)
    return float((cbd & (nearest < 0)).sum() / max(int(cbd.sum()), 1))
