"""Block kernels for synthetic electrodes: particle rendering, global-coordinate noise, perturbation.

Pure NumPy/Numba, no dask. Every random or pseudo-random value here is a function of *global*
voxel coordinates (and a seed), never of the block a voxel happens to be in, so that a volume
assembled from blocks is bit-identical for any chunking:

* smooth random fields are sums of random Fourier modes whose per-axis phase factors are
  tabulated once over the whole axis (:func:`fourier_tables`) and only multiplied and added per
  voxel (no transcendental function whose SIMD and scalar paths could round differently);
* white noise comes from a counter-based hash (SplitMix64 finaliser) of the seed and the global
  (z, y, x) index, turned into an approximately normal deviate by summing four 16-bit uniforms
  (Irwin-Hall, variance rescaled to 1, bounded at +-3.46 sigma);
* particles are signed "radial distance" functions ``|x - c| - R(u)`` of a global particle
  list; a block takes the minimum over the particles that reach it, which does not depend on
  the order or the set of other particles visited.

Conventions: arrays are (z, y, x); coordinates are voxel indices (voxel centres at integers);
distances are in voxels. Compiled without ``fastmath`` so that no floating-point contraction
or reassociation can make results depend on loop vectorisation.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit

__all__ = [
    "N_QUAD",
    "N_CUBIC",
    "shape_factor",
    "fourier_tables",
    "fourier_field",
    "fourier_points",
    "render_particles",
    "particle_points",
    "hash_normal",
    "hash_uniform",
    "value_noise",
    "perturb_block",
    "place_particles",
]

N_QUAD = 6  # zz, yy, xx, zy, zx, yx
N_CUBIC = 10  # zzz, yyy, xxx, zzy, zzx, yyz, yyx, xxz, xxy, zyx

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


# --------------------------------------------------------------------------- hashing


@njit(cache=True, inline="always")
def _mix(h):
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


@njit(cache=True, inline="always")
def _hash4(seed, a, b, c):
    """SplitMix64-style hash of a 64-bit seed and three signed integer coordinates."""
    h = _mix(np.uint64(seed) + _GOLD)
    h = _mix(h ^ (np.uint64(a & 0xFFFFFFFFFFFF) + _GOLD))
    h = _mix(h ^ (np.uint64(b & 0xFFFFFFFFFFFF) * np.uint64(3) + _GOLD))
    h = _mix(h ^ (np.uint64(c & 0xFFFFFFFFFFFF) * np.uint64(7) + _GOLD))
    return h


@njit(cache=True, inline="always")
def _normal_from_hash(h):
    s = 0.0
    for k in range(4):
        s += (float((h >> np.uint64(16 * k)) & np.uint64(0xFFFF)) + 0.5) * (1.0 / 65536.0)
    return (s - 2.0) * 1.7320508075688772  # Irwin-Hall(4): var 1/3 -> 1


@njit(cache=True, nogil=True)
def hash_normal(origin, shape, seed):
    """Approximately standard-normal white noise at global voxels ``origin + index``.

    Parameters
    ----------
    origin : int64 (3,), global (z, y, x) of element [0, 0, 0] (may be negative: halo)
    shape : int64 (3,), block shape
    seed : int, stream key

    Returns
    -------
    float32 (z, y, x) array; the value at a global voxel is the same for any block.
    """
    out = np.empty((shape[0], shape[1], shape[2]), dtype=np.float32)
    for i in range(shape[0]):
        for j in range(shape[1]):
            for k in range(shape[2]):
                h = _hash4(seed, origin[0] + i, origin[1] + j, origin[2] + k)
                out[i, j, k] = _normal_from_hash(h)
    return out


@njit(cache=True, nogil=True)
def hash_uniform(origin, shape, seed):
    """Uniform values in [0, 1) at global voxels ``origin + index`` (as :func:`hash_normal`):
    float64 (z, y, x), the value at a global voxel the same for any block, e.g. to draw a random
    subsample that does not depend on the chunking."""
    out = np.empty((shape[0], shape[1], shape[2]), dtype=np.float64)
    for i in range(shape[0]):
        for j in range(shape[1]):
            for k in range(shape[2]):
                out[i, j, k] = float(_hash4(seed, origin[0] + i, origin[1] + j, origin[2] + k) >> np.uint64(11)) \
                    * (1.0 / 9007199254740992.0)
    return out


@njit(cache=True, inline="always")
def _lattice(seed, a, b, c):
    return float(_hash4(seed, a, b, c) >> np.uint64(11)) * (1.0 / 9007199254740992.0) * 2.0 - 1.0


@njit(cache=True, inline="always")
def _smooth(t):
    return t * t * (3.0 - 2.0 * t)


@njit(cache=True, nogil=True)
def value_noise(origin, shape, seed, cell):
    """Smooth value noise in [-1, 1]: hashed lattice values every ``cell`` voxels, smoothstep
    interpolated. float32 (z, y, x) at global voxels ``origin + index``."""
    out = np.empty((shape[0], shape[1], shape[2]), dtype=np.float32)
    inv = 1.0 / cell
    for i in range(shape[0]):
        fz = (origin[0] + i) * inv
        iz = int(np.floor(fz))
        tz = _smooth(fz - iz)
        for j in range(shape[1]):
            fy = (origin[1] + j) * inv
            iy = int(np.floor(fy))
            ty = _smooth(fy - iy)
            for k in range(shape[2]):
                fx = (origin[2] + k) * inv
                ix = int(np.floor(fx))
                tx = _smooth(fx - ix)
                c000 = _lattice(seed, iz, iy, ix)
                c001 = _lattice(seed, iz, iy, ix + 1)
                c010 = _lattice(seed, iz, iy + 1, ix)
                c011 = _lattice(seed, iz, iy + 1, ix + 1)
                c100 = _lattice(seed, iz + 1, iy, ix)
                c101 = _lattice(seed, iz + 1, iy, ix + 1)
                c110 = _lattice(seed, iz + 1, iy + 1, ix)
                c111 = _lattice(seed, iz + 1, iy + 1, ix + 1)
                a = c000 + (c001 - c000) * tx
                b = c010 + (c011 - c010) * tx
                c = c100 + (c101 - c100) * tx
                d = c110 + (c111 - c110) * tx
                e = a + (b - a) * ty
                f = c + (d - c) * ty
                out[i, j, k] = e + (f - e) * tz
    return out


# --------------------------------------------------------------------------- Fourier fields


def fourier_tables(rng: np.random.Generator, n_modes: int, wavelength: float, lengths, start=(0, 0, 0)):
    """Per-axis phase tables of a random smooth field ``sum_m a_m cos(k_m . x + phi_m)``.

    Wave vectors have random directions and lengths ``2 pi / wavelength`` times a factor in
    [0.7, 1.3]; amplitudes ``sqrt(2 / n_modes)`` give unit variance. The tables cover global
    indices ``start[a] .. start[a] + lengths[a] - 1`` of each axis.

    Returns
    -------
    tuple of three complex128 arrays (length_a, n_modes): ``T_z[z] * T_y[y] * T_x[x]`` summed
    (real part) over modes is the field at (z, y, x).
    """
    d = rng.normal(size=(n_modes, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    k = d * (2 * np.pi / wavelength) * rng.uniform(0.7, 1.3, size=(n_modes, 1))
    phi = rng.uniform(0, 2 * np.pi, size=n_modes)
    amp = np.sqrt(2.0 / n_modes)
    tables = []
    for axis in range(3):
        idx = np.arange(start[axis], start[axis] + lengths[axis], dtype=np.float64)
        ph = idx[:, None] * k[None, :, axis]
        if axis == 0:
            ph = ph + phi[None, :]
        t = np.exp(1j * ph)
        if axis == 0:
            t = t * amp
        tables.append(np.ascontiguousarray(t))
    return tuple(tables)


@njit(cache=True, nogil=True)
def fourier_field(tz, ty, tx, z0, y0, x0, nz, ny, nx):
    """Evaluate a Fourier field (tables from :func:`fourier_tables`) on a block.

    ``z0, y0, x0`` are offsets into the tables. Returns float32 (nz, ny, nx)."""
    m = tz.shape[1]
    out = np.empty((nz, ny, nx), dtype=np.float32)
    xr = np.empty((nx, m))
    xi = np.empty((nx, m))
    for k in range(nx):
        for q in range(m):
            xr[k, q] = tx[x0 + k, q].real
            xi[k, q] = tx[x0 + k, q].imag
    ar = np.empty(m)
    ai = np.empty(m)
    for i in range(nz):
        for j in range(ny):
            for q in range(m):
                a = tz[z0 + i, q]
                b = ty[y0 + j, q]
                ar[q] = a.real * b.real - a.imag * b.imag
                ai[q] = a.real * b.imag + a.imag * b.real
            for k in range(nx):
                s = 0.0
                for q in range(m):
                    s += ar[q] * xr[k, q] - ai[q] * xi[k, q]
                out[i, j, k] = s
    return out


@njit(cache=True, nogil=True)
def fourier_points(tz, ty, tx, pts):
    """Evaluate a Fourier field at integer points (n, 3) given as table offsets. float64 (n,)."""
    m = tz.shape[1]
    out = np.empty(pts.shape[0])
    for p in range(pts.shape[0]):
        s = 0.0
        for q in range(m):
            a = tz[pts[p, 0], q]
            b = ty[pts[p, 1], q]
            c = tx[pts[p, 2], q]
            rr = a.real * b.real - a.imag * b.imag
            ri = a.real * b.imag + a.imag * b.real
            s += rr * c.real - ri * c.imag
        out[p] = s
    return out


# --------------------------------------------------------------------------- particles


@njit(cache=True, inline="always")
def _shape(q, c, uz, uy, ux):
    """1 + quadratic + cubic spherical polynomial in the unit direction u."""
    r = 1.0
    r += q[0] * uz * uz + q[1] * uy * uy + q[2] * ux * ux
    r += 2.0 * (q[3] * uz * uy + q[4] * uz * ux + q[5] * uy * ux)
    r += c[0] * uz * uz * uz + c[1] * uy * uy * uy + c[2] * ux * ux * ux
    r += c[3] * uz * uz * uy + c[4] * uz * uz * ux + c[5] * uy * uy * uz
    r += c[6] * uy * uy * ux + c[7] * ux * ux * uz + c[8] * ux * ux * uy + c[9] * uz * uy * ux
    return max(r, 0.5)


def shape_factor(quad: np.ndarray, cubic: np.ndarray, directions: np.ndarray, reduce=None, batch: int = 4096) -> np.ndarray:
    """Radius multiplier R(u)/r of each particle (n,) along unit directions (m, 3): (n, m).

    With ``reduce`` (a function of an (k, m) array along axis 1), the reduced (n,) values,
    computed ``batch`` particles at a time (bounded memory)."""
    if reduce is not None:
        out = [reduce(shape_factor(quad[i:i + batch], cubic[i:i + batch], directions))
               for i in range(0, quad.shape[0], batch)]
        return np.concatenate(out) if out else np.zeros(0)
    uz, uy, ux = (directions[:, a][None, :] for a in range(3))
    q, c = quad[:, :, None], cubic[:, :, None]
    r = 1.0 + q[:, 0] * uz * uz + q[:, 1] * uy * uy + q[:, 2] * ux * ux
    r = r + 2.0 * (q[:, 3] * uz * uy + q[:, 4] * uz * ux + q[:, 5] * uy * ux)
    r = r + c[:, 0] * uz**3 + c[:, 1] * uy**3 + c[:, 2] * ux**3
    r = r + c[:, 3] * uz * uz * uy + c[:, 4] * uz * uz * ux + c[:, 5] * uy * uy * uz
    r = r + c[:, 6] * uy * uy * ux + c[:, 7] * ux * ux * uz + c[:, 8] * ux * ux * uy + c[:, 9] * uz * uy * ux
    return np.maximum(r, 0.5)


@njit(cache=True, inline="always")
def _particle_sdf(i, z, y, x, centre, radius, reach, quad, cubic, crack, scale, crack_w, crack_rho, margin):
    """Signed radial distance of voxel (z, y, x) to particle i, and whether it lies in i's crack.

    Returns (d, in_crack); d > margin is reported as a large value (not reached).
    """
    dz = z - centre[i, 0]
    dy = y - centre[i, 1]
    dx = x - centre[i, 2]
    rr = dz * dz + dy * dy + dx * dx
    lim = reach[i] * scale + margin
    if rr > lim * lim:
        return 1e9, False
    dist = np.sqrt(rr)
    rad = radius[i] * scale
    if dist < 1e-9:
        return -rad, False
    inv = 1.0 / dist
    d = dist - rad * _shape(quad[i], cubic[i], dz * inv, dy * inv, dx * inv)
    in_crack = False
    w = crack[i, 4] * crack_w
    if w > 0.0:
        # crack: a disk of radius rho * r in the plane n . (x - c) = offset * r, half-width w
        pn = dz * crack[i, 0] + dy * crack[i, 1] + dx * crack[i, 2] - crack[i, 3] * rad
        apn = abs(pn)
        if apn < w:
            t2 = rr - (pn + crack[i, 3] * rad) * (pn + crack[i, 3] * rad)
            rho = crack[i, 5] * crack_rho * rad
            if t2 < rho * rho:
                if d < 0.0:
                    in_crack = True
                d = max(d, w - apn)
    return d, in_crack


@njit(cache=True, nogil=True)
def render_particles(origin, shape, idx, centre, radius, reach, quad, cubic, crack, scale, crack_w, crack_rho, margin):
    """Nearest and second-nearest particle distances over a block.

    Parameters
    ----------
    origin, shape : int64 (3,), global (z, y, x) start and shape of the block
    idx : int64 (k,), the particles that may reach the block
    centre (n, 3), radius (n,), reach (n,) (max R/r * r), quad (n, 6), cubic (n, 10),
    crack (n, 6) = normal z, y, x, plane offset / r, half-width (voxels, 0 = none), disk radius / r
    scale, crack_w, crack_rho : float, swelling factor and crack growth factors (operando series)
    margin : float, distances are clipped at ``margin`` (voxels)

    Returns
    -------
    d1, d2 : float32 (z, y, x), smallest and second smallest signed distance (clipped)
    nearest : int32 (z, y, x), index of the nearest particle (-1 where none within margin)
    crk : bool (z, y, x), inside the crack of a particle
    """
    nz, ny, nx = shape[0], shape[1], shape[2]
    d1 = np.full((nz, ny, nx), margin, dtype=np.float64)
    d2 = np.full((nz, ny, nx), margin, dtype=np.float64)
    nearest = np.full((nz, ny, nx), -1, dtype=np.int32)
    crk = np.zeros((nz, ny, nx), dtype=np.bool_)
    for p in range(idx.shape[0]):
        i = idx[p]
        lim = reach[i] * scale + margin
        z_lo = max(int(np.floor(centre[i, 0] - lim)) - origin[0], 0)
        z_hi = min(int(np.ceil(centre[i, 0] + lim)) + 1 - origin[0], nz)
        y_lo = max(int(np.floor(centre[i, 1] - lim)) - origin[1], 0)
        y_hi = min(int(np.ceil(centre[i, 1] + lim)) + 1 - origin[1], ny)
        x_lo = max(int(np.floor(centre[i, 2] - lim)) - origin[2], 0)
        x_hi = min(int(np.ceil(centre[i, 2] + lim)) + 1 - origin[2], nx)
        lim2 = lim * lim
        for a in range(z_lo, z_hi):
            z = float(origin[0] + a)
            rz = (z - centre[i, 0]) * (z - centre[i, 0])
            if rz > lim2:
                continue
            for b in range(y_lo, y_hi):
                y = float(origin[1] + b)
                rzy = rz + (y - centre[i, 1]) * (y - centre[i, 1])
                if rzy > lim2:
                    continue
                half = np.sqrt(lim2 - rzy)
                c_lo = max(int(np.floor(centre[i, 2] - half)) - origin[2], x_lo)
                c_hi = min(int(np.ceil(centre[i, 2] + half)) + 1 - origin[2], x_hi)
                for c in range(c_lo, c_hi):
                    x = float(origin[2] + c)
                    d, inc = _particle_sdf(i, z, y, x, centre, radius, reach, quad, cubic, crack,
                                           scale, crack_w, crack_rho, margin)
                    if inc:
                        crk[a, b, c] = True
                    if d < d1[a, b, c]:
                        d2[a, b, c] = d1[a, b, c]
                        d1[a, b, c] = d
                        nearest[a, b, c] = i
                    elif d < d2[a, b, c]:
                        d2[a, b, c] = d
    return d1.astype(np.float32), d2.astype(np.float32), nearest, crk


@njit(cache=True, nogil=True)
def particle_points(pts, cell_start, cell_items, grid_origin, cell_size, grid_shape,
                    centre, radius, reach, quad, cubic, crack, scale, crack_w, crack_rho, margin):
    """:func:`render_particles` at scattered integer points (n, 3), using the bucket grid.

    Returns d1, d2 (float64 (n,)), nearest (int32), crk (bool)."""
    n = pts.shape[0]
    d1 = np.full(n, margin)
    d2 = np.full(n, margin)
    nearest = np.full(n, -1, dtype=np.int32)
    crk = np.zeros(n, dtype=np.bool_)
    for p in range(n):
        z, y, x = float(pts[p, 0]), float(pts[p, 1]), float(pts[p, 2])
        cz = int(np.floor((z - grid_origin[0]) / cell_size))
        cy = int(np.floor((y - grid_origin[1]) / cell_size))
        cx = int(np.floor((x - grid_origin[2]) / cell_size))
        for gz in range(max(cz - 1, 0), min(cz + 2, grid_shape[0])):
            for gy in range(max(cy - 1, 0), min(cy + 2, grid_shape[1])):
                for gx in range(max(cx - 1, 0), min(cx + 2, grid_shape[2])):
                    cell = (gz * grid_shape[1] + gy) * grid_shape[2] + gx
                    for q in range(cell_start[cell], cell_start[cell + 1]):
                        i = cell_items[q]
                        d, inc = _particle_sdf(i, z, y, x, centre, radius, reach, quad, cubic, crack,
                                               scale, crack_w, crack_rho, margin)
                        if inc:
                            crk[p] = True
                        if d < d1[p]:
                            d2[p] = d1[p]
                            d1[p] = d
                            nearest[p] = i
                        elif d < d2[p]:
                            d2[p] = d
    return d1, d2, nearest, crk


@njit(cache=True, nogil=True)
def place_particles(seed, radii, lo, hi, kappa, attempts):
    """Random sequential addition with limited overlap.

    Particles (radii, placed in the given order, largest first) are dropped at candidate
    positions uniform in the box [lo, hi) (the c-th candidate is a hash of (seed, c), so no
    candidate list is held in memory) and accepted when their
    centre is farther than ``kappa * (r_i + r_j)`` from every accepted particle j, so that
    neighbours may touch and interpenetrate (agglomerates) but not merge. Each particle gets at
    most ``attempts`` candidates.

    Returns
    -------
    centres (k, 3) float64 and the indices (k,) of the radii that were placed.
    """
    n = radii.shape[0]
    rmax = radii.max() if n else 1.0
    cs = 2.0 * kappa * rmax
    gs = np.empty(3, dtype=np.int64)
    for a in range(3):
        gs[a] = max(int(np.ceil((hi[a] - lo[a]) / cs)), 1)
    head = np.full(gs[0] * gs[1] * gs[2], -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    centres = np.empty((n, 3))
    placed = np.empty(n, dtype=np.int64)
    k = 0
    c = 0
    scale = 1.0 / 9007199254740992.0
    for i in range(n):
        for _ in range(attempts):
            pz = lo[0] + float(_hash4(seed, c, 0, 1) >> np.uint64(11)) * scale * (hi[0] - lo[0])
            py = lo[1] + float(_hash4(seed, c, 1, 2) >> np.uint64(11)) * scale * (hi[1] - lo[1])
            px = lo[2] + float(_hash4(seed, c, 2, 3) >> np.uint64(11)) * scale * (hi[2] - lo[2])
            c += 1
            gz = min(int((pz - lo[0]) / cs), gs[0] - 1)
            gy = min(int((py - lo[1]) / cs), gs[1] - 1)
            gx = min(int((px - lo[2]) / cs), gs[2] - 1)
            ok = True
            for az in range(max(gz - 1, 0), min(gz + 2, gs[0])):
                for ay in range(max(gy - 1, 0), min(gy + 2, gs[1])):
                    for ax in range(max(gx - 1, 0), min(gx + 2, gs[2])):
                        j = head[(az * gs[1] + ay) * gs[2] + ax]
                        while j >= 0 and ok:
                            dz = pz - centres[j, 0]
                            dy = py - centres[j, 1]
                            dx = px - centres[j, 2]
                            lim = kappa * (radii[i] + radii[placed[j]])
                            if dz * dz + dy * dy + dx * dx < lim * lim:
                                ok = False
                            j = nxt[j]
            if ok:
                centres[k, 0] = pz
                centres[k, 1] = py
                centres[k, 2] = px
                placed[k] = i
                cell = (gz * gs[1] + gy) * gs[2] + gx
                nxt[k] = head[cell]
                head[cell] = k
                k += 1
                break
    return centres[:k].copy(), placed[:k].copy()


# --------------------------------------------------------------------------- perturbation


@njit(cache=True, inline="always")
def _label_at(cur, a, b, c):
    """``cur[a, b, c]``, 255 (unlabelled) outside the block."""
    nz, ny, nx = cur.shape
    if a < 0 or b < 0 or c < 0 or a >= nz or b >= ny or c >= nx:
        return np.uint8(255)
    return cur[a, b, c]


@njit(cache=True, inline="always")
def _chosen_neighbour(cur, a, b, c, v, k, h):
    """The offset index j (0-5: axis j // 2, step -1 / +1) of the neighbour that the voxel
    (a, b, c) of phase ``v``, with ``k`` labelled neighbours of other phases, picks by hash ``h``."""
    want = int((h >> np.uint64(8)) & np.uint64(0xFFFF)) % k
    n = 0
    for j in range(6):
        ax = j // 2
        step = 2 * (j % 2) - 1
        w = _label_at(cur, a + (step if ax == 0 else 0), b + (step if ax == 1 else 0), c + (step if ax == 2 else 0))
        if w != v and w != 255:
            if n == want:
                return j
            n += 1
    return -1


@njit(cache=True, nogil=True)
def perturb_block(block, origin, ratio, iterations, seed):
    """Ground-truth perturbation of a label block (Su et al. 2022, Methods: "Synthetic training data").

    The paper picks a share of the interface voxels and dilates "either side" there: one phase
    erodes, the other dilates. Here, at each iteration, every interface voxel (a labelled voxel
    with ``k`` > 0 labelled 6-neighbours of other phases) is picked with probability ``ratio``;
    a picked voxel chooses one of those ``k`` neighbours at random and, with equal chance, either
    takes its phase or gives it its own. Each face of the interface is thus as likely to move
    one way as the other (no phase gains for being thin; a picked voxel always taking its
    neighbour's phase made thin phases, whose voxels have several, grow: CBD +16 % after 5
    iterations), and about ``ratio`` of the interface voxels move per iteration (exactly
    ``ratio`` on each side of a flat interface). A voxel offered several phases takes that of
    the lowest draw. Moves are decided from the whole previous state, so all moves of one
    iteration happen at once. Random numbers are hashes of (seed, iteration, global z, y, x of
    the picked voxel). Value 255 (unlabelled, and anything outside the block) neither moves nor
    spreads.

    The outer ``2 * iterations`` voxels of ``block`` are not valid on return where the block
    was cut from a larger volume (a voxel's move depends on its neighbours' neighbours); callers
    pass a halo of ``2 * iterations`` there and crop it.
    """
    nz, ny, nx = block.shape
    cur = block.copy()
    k = np.zeros(block.shape, np.uint8)
    for it in range(iterations):
        key = seed * 1000003 + it
        for a in range(nz):  # each voxel's count of labelled neighbours of other phases
            for b in range(ny):
                for c in range(nx):
                    v = cur[a, b, c]
                    n = 0
                    if v != 255:
                        for j in range(6):
                            ax = j // 2
                            step = 2 * (j % 2) - 1
                            w = _label_at(cur, a + (step if ax == 0 else 0), b + (step if ax == 1 else 0),
                                          c + (step if ax == 2 else 0))
                            if w != v and w != 255:
                                n += 1
                    k[a, b, c] = n
        new = cur.copy()
        for a in range(nz):
            for b in range(ny):
                for c in range(nx):
                    v = cur[a, b, c]
                    if v == 255 or k[a, b, c] == 0:
                        continue
                    best = 2.0
                    to = v
                    h = _hash4(key, origin[0] + a, origin[1] + b, origin[2] + c)
                    u = float(h >> np.uint64(40)) * (1.0 / 16777216.0)
                    if u < ratio and (h & np.uint64(1)) == np.uint64(0):  # picked, and takes its choice's phase
                        j = _chosen_neighbour(cur, a, b, c, v, int(k[a, b, c]), h)
                        ax = j // 2
                        step = 2 * (j % 2) - 1
                        best = u
                        to = cur[a + (step if ax == 0 else 0), b + (step if ax == 1 else 0), c + (step if ax == 2 else 0)]
                    for j in range(6):  # a neighbour that picks this voxel and gives it its phase
                        ax = j // 2
                        step = 2 * (j % 2) - 1
                        qa = a + (step if ax == 0 else 0)
                        qb = b + (step if ax == 1 else 0)
                        qc = c + (step if ax == 2 else 0)
                        w = _label_at(cur, qa, qb, qc)
                        if w == v or w == 255:
                            continue
                        hq = _hash4(key, origin[0] + qa, origin[1] + qb, origin[2] + qc)
                        uq = float(hq >> np.uint64(40)) * (1.0 / 16777216.0)
                        if uq >= ratio or uq >= best or (hq & np.uint64(1)) == np.uint64(0):
                            continue
                        # the neighbour's choice is this voxel: the offset back, j with its step reversed
                        if _chosen_neighbour(cur, qa, qb, qc, w, int(k[qa, qb, qc]), hq) == (j ^ 1):
                            best = uq
                            to = w
                    new[a, b, c] = to
        cur = new
    return cur
