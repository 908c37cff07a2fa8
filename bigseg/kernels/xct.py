"""Block kernel of the X-ray CT forward simulation (NumPy/SciPy, no dask).

:func:`xct_block` turns a label block padded by a halo into a reconstructed-tomogram block.
Everything random is a function of global voxel coordinates (see :mod:`bigseg.kernels.synth`),
the z drift and the ring profile come from global tables, so that a tomogram assembled from
blocks is identical for any chunking, provided the halo is at least :func:`halo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .synth import hash_normal, value_noise

__all__ = ["Physics", "halo", "xct_block", "gaussian_radius", "noise_norm"]

_TRUNCATE = 4.0


@dataclass(frozen=True)
class Physics:
    """Imaging parameters (intensities in units of the active-material attenuation).

    attenuation : (pore, cbd, active) linear attenuation (reconstructed grey value) per phase
    texture : (pore, cbd, active) relative amplitude of a fine intensity texture per phase
        (CBD nanoporosity, grain contrast inside particles), correlation ``texture_scale`` voxels
    psf_sigma : standard deviation (voxels) of the Gaussian point-spread function (partial volume)
    phase_contrast : strength of propagation phase contrast: ``I - c sigma**2 LoG_sigma(I)``
        (bright/dark fringes at interfaces), ``phase_sigma`` its Gaussian scale (voxels)
    snr : contrast-to-noise ratio ``(active - pore) / sigma_noise``; ``inf`` for no noise
    noise : "gaussian" (homoscedastic) or "poisson" (variance proportional to the local
        intensity, normalised to ``snr`` at the active phase; Gaussian approximation)
    noise_correlation : Gaussian correlation length (voxels) of the reconstruction noise
        (filtered back projection gives grainy, slightly correlated noise); 0 for white noise
    rings : amplitude of ring artefacts relative to the contrast (concentric circles about the
        rotation axis, the volume's (y, x) centre, the same in every slice)
    drift : relative amplitude of a slow illumination drift along z (multiplicative)
    cupping : beam-hardening cupping of a cylindrical sample: grey values scaled by
        ``1 - cupping * (1 - (r / R)**2)`` within the circle inscribed in the (y, x)
        cross-section (R half its shorter side, r the distance from the axis), unchanged beyond:
        the centre reads ``cupping`` darker than the rim
    bits : None (float32 output), 8 or 16 (quantised to uint8/uint16 over ``window``)
    """

    attenuation: tuple[float, float, float] = (0.12, 0.28, 1.0)
    texture: tuple[float, float, float] = (0.0, 0.25, 0.04)
    texture_scale: float = 2.0
    psf_sigma: float = 1.0
    phase_contrast: float = 1.0
    phase_sigma: float = 1.0
    snr: float = 5.0
    noise: str = "gaussian"
    noise_correlation: float = 0.7
    rings: float = 0.05
    drift: float = 0.05
    cupping: float = 0.0
    bits: int | None = None

    @property
    def contrast(self) -> float:
        return float(self.attenuation[2] - self.attenuation[0])

    def window(self) -> tuple[float, float]:
        """Grey-value window mapped onto the integer range when quantising."""
        lo, hi = min(self.attenuation), max(self.attenuation)
        c = abs(self.contrast) or 1.0
        return lo - 0.45 * c, hi + 0.45 * c


def gaussian_radius(sigma: float) -> int:
    """Kernel radius SciPy uses for ``sigma`` (truncate 4)."""
    return int(_TRUNCATE * float(sigma) + 0.5) if sigma > 0 else 0


def halo(p: Physics) -> int:
    """Halo (voxels) a block needs so that its interior equals the whole-volume result."""
    chain = gaussian_radius(p.phase_sigma) * (p.phase_contrast != 0) + gaussian_radius(p.psf_sigma)
    noise = gaussian_radius(p.noise_correlation) if np.isfinite(p.snr) else 0
    return int(max(chain, noise))


def noise_norm(sigma: float) -> float:
    """Factor restoring unit variance of white noise after a 3D Gaussian filter of ``sigma``."""
    if sigma <= 0:
        return 1.0
    r = gaussian_radius(sigma)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float((w**2).sum() ** -1.5)


def xct_block(
    labels: np.ndarray,
    origin: np.ndarray,
    depth: tuple[int, int, int],
    p: Physics,
    *,
    seed: int,
    drift: np.ndarray,
    drift_start: int,
    rings: np.ndarray,
    ring_step: float,
    centre: tuple[float, float],
    cup_radius: float = 0.0,
    texture_seed: int | None = None,
) -> np.ndarray:
    """Simulated reconstructed tomogram of a padded label block.

    Parameters
    ----------
    labels : uint8 (z, y, x), the block with ``depth`` voxels of halo on each side
    origin : int64 (3,), global (z, y, x) index of ``labels[0, 0, 0]`` (negative in the halo)
    p : imaging parameters
    seed : noise stream key
    drift : float64 (n,), multiplicative drift per global z, ``drift[z - drift_start]``
    rings : float64 (m,), additive ring profile sampled every ``ring_step`` voxels of radius
    centre : (y, x) of the rotation axis, voxels
    cup_radius : R of the cupping (``p.cupping``), voxels
    texture_seed : key of the texture (default ``seed``): the sample's, where the noise is the
        scan's (the steps of a series share it)

    Returns
    -------
    float32 (z, y, x) of the block without halo, or uint8/uint16 when ``p.bits`` is set.
    Order of operations: attenuation and texture -> phase-contrast fringes -> PSF blur ->
    z drift -> cupping -> ring artefacts -> reconstruction noise -> quantisation.
    """
    origin = np.asarray(origin, dtype=np.int64)
    shape = np.asarray(labels.shape, dtype=np.int64)
    lut = np.full(256, p.attenuation[0], dtype=np.float32)
    lut[:3] = p.attenuation
    mu = lut[labels]
    if any(p.texture):
        tex = np.zeros(256, dtype=np.float32)
        tex[:3] = p.texture
        vn = value_noise(origin, shape, np.int64(seed if texture_seed is None else texture_seed) * 31 + 17,
                         float(p.texture_scale))
        mu *= 1.0 + tex[labels] * vn
    if p.phase_contrast:
        s = float(p.phase_sigma)
        mu = mu - np.float32(p.phase_contrast * s * s) * ndi.gaussian_laplace(mu, s, mode="reflect", truncate=_TRUNCATE)
    if p.psf_sigma > 0:
        mu = ndi.gaussian_filter(mu, p.psf_sigma, mode="reflect", truncate=_TRUNCATE)
    z = origin[0] + np.arange(shape[0]) - drift_start
    mu *= drift[z].astype(np.float32)[:, None, None]
    y = (origin[1] + np.arange(shape[1], dtype=np.float64) - centre[0])[:, None]
    x = (origin[2] + np.arange(shape[2], dtype=np.float64) - centre[1])[None, :]
    if p.cupping and cup_radius > 0:
        cup = 1.0 - p.cupping * np.clip(1.0 - (y * y + x * x) / cup_radius**2, 0.0, None)
        mu *= cup.astype(np.float32)[None, :, :]
    if p.rings:
        r = np.sqrt(y * y + x * x) / ring_step
        i0 = np.minimum(np.floor(r).astype(np.int64), rings.shape[0] - 2)
        f = r - i0
        ring = rings[i0] * (1.0 - f) + rings[i0 + 1] * f
        mu += ring.astype(np.float32)[None, :, :]
    if np.isfinite(p.snr):
        n = hash_normal(origin, shape, np.int64(seed) * 2 + 1)
        if p.noise_correlation > 0:
            n = ndi.gaussian_filter(n, p.noise_correlation, mode="reflect", truncate=_TRUNCATE)
            n *= np.float32(noise_norm(p.noise_correlation))
        sigma = abs(p.contrast) / p.snr
        if p.noise == "poisson":
            mu += np.float32(sigma) * np.sqrt(np.maximum(mu, 0) / np.float32(max(p.attenuation[2], 1e-6))) * n
        else:
            mu += np.float32(sigma) * n
    dz, dy, dx = depth
    out = mu[dz : shape[0] - dz, dy : shape[1] - dy, dx : shape[2] - dx]
    if p.bits:
        lo, hi = p.window()
        top = 2**p.bits - 1
        q = np.rint((out - np.float32(lo)) * np.float32(top / (hi - lo)))
        return np.clip(q, 0, top).astype(np.uint8 if p.bits == 8 else np.uint16)
    return np.ascontiguousarray(out, dtype=np.float32)
