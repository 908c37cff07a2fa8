"""Data augmentation on batches of patches (torch, on the training device).

Geometric: random flips and 90° rotations in the image plane (labels follow). Photometric
(image only): brightness/contrast and gamma, Gaussian blur (partial volume), Gaussian noise,
and XCT-like artefacts: ring artefacts (concentric circles about a random rotation axis) and a
slow multiplicative illumination drift, as the simulator :mod:`bigseg.synth` produces them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["Augment"]


@dataclass
class Augment:
    """Probabilities and ranges of each augmentation (0 disables one).

    Parameters
    ----------
    flip : probability of flipping each spatial axis of a sample (default 0.5).
    rot90 : probability of turning a sample by a random multiple of 90° in its (y, x) plane,
        square planes only (default 0.5).
    contrast : probability of scaling a sample's grey values about 0.5 by a factor
        log-uniform in ``contrast_range`` (default 0.8, range (0.75, 1.33)), and shifting them
        by up to ± ``brightness`` (default 0.15, in normalised grey values).
    contrast_range, brightness : see ``contrast``.
    gamma : probability of raising a sample's positive values to a power in
        [exp(-0.3), exp(0.3)] (default 0.3).
    blur : probability of a Gaussian blur of the batch, sigma uniform in ``blur_sigma`` voxels
        (default 0.25, sigma (0.3, 1.2)).
    blur_sigma : see ``blur``.
    noise : probability of adding Gaussian noise to a sample, its standard deviation uniform in
        ``noise_std`` (default 0.5, std (0, 0.15)).
    noise_std : see ``noise``.
    rings : probability of adding concentric ring artefacts in (y, x), amplitude ~0.05
        (default 0.2).
    drift : probability of a slow ±10 % intensity change along a random axis (default 0.2).

    Labels move with the geometric steps only (flips, turns).
    """

    flip: float = 0.5
    rot90: float = 0.5
    contrast: float = 0.8
    contrast_range: tuple[float, float] = (0.75, 1.33)
    brightness: float = 0.15
    gamma: float = 0.3
    blur: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    noise: float = 0.5
    noise_std: tuple[float, float] = (0.0, 0.15)
    rings: float = 0.2
    drift: float = 0.2

    @classmethod
    def none(cls) -> "Augment":
        return cls(0, 0, 0, (1, 1), 0, 0, 0, (0, 0), 0, (0, 0), 0, 0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment ``x`` (N, 1, *spatial) float and ``y`` (N, *spatial) int labels together."""
        nd = x.ndim - 2
        dev = x.device

        def u(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=gen).to(dev)

        # geometric, per sample (in-plane: the last two axes)
        xs, ys = [], []
        for i in range(x.shape[0]):
            xi, yi = x[i], y[i]
            if self.flip:
                for ax in range(nd):
                    if float(torch.rand((), generator=gen)) < self.flip:
                        xi, yi = xi.flip(ax + 1), yi.flip(ax)
            if self.rot90 and xi.shape[-1] == xi.shape[-2] and float(torch.rand((), generator=gen)) < self.rot90:
                k = int(torch.randint(1, 4, (), generator=gen))
                xi, yi = torch.rot90(xi, k, (-2, -1)), torch.rot90(yi, k, (-2, -1))
            xs.append(xi)
            ys.append(yi)
        x, y = torch.stack(xs), torch.stack(ys)
        n = x.shape[0]
        view = (n,) + (1,) * (x.ndim - 1)

        # photometric
        if self.blur:
            sig = self.blur_sigma[0] + (self.blur_sigma[1] - self.blur_sigma[0]) * float(torch.rand((), generator=gen))
            if float(torch.rand((), generator=gen)) < self.blur and sig > 0.05:
                x = _gaussian(x, sig)
        if self.rings:
            x = x + _rings(x, gen) * (u(*view) < self.rings)
        if self.drift:
            x = x * (1 + _drift(x, gen) * (u(*view) < self.drift))
        if self.gamma:
            g = torch.exp((u(*view) - 0.5) * 0.6)
            on = u(*view) < self.gamma
            x = torch.where(on, x.clamp(min=0) ** g + x.clamp(max=0), x)
        if self.contrast:
            lo, hi = self.contrast_range
            c = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u(*view))
            on = u(*view) < self.contrast
            b = (u(*view) - 0.5) * 2 * self.brightness
            x = torch.where(on, (x - 0.5) * c + 0.5 + b, x)
        if self.noise:
            std = self.noise_std[0] + (self.noise_std[1] - self.noise_std[0]) * u(*view)
            on = (u(*view) < self.noise).to(x.dtype)
            x = x + torch.randn(x.shape, generator=gen).to(dev) * std * on
        return x, y


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    nd = x.ndim - 2
    conv = F.conv2d if nd == 2 else F.conv3d
    for ax in range(nd):
        shape = [1, 1] + [1] * nd
        shape[2 + ax] = 2 * r + 1
        pad = [0, 0] * nd
        pad[2 * (nd - 1 - ax)] = pad[2 * (nd - 1 - ax) + 1] = r
        x = conv(F.pad(x, pad, mode="replicate"), k.reshape(shape))
    return x


def _rings(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Additive concentric rings in the (y, x) plane about a random centre, amplitude ~0.05."""
    n = x.shape[0]
    hy, wx = x.shape[-2], x.shape[-1]
    yy = torch.arange(hy, dtype=x.dtype, device=x.device)[:, None]
    xx = torch.arange(wx, dtype=x.dtype, device=x.device)[None, :]
    out = torch.zeros((n, 1) + x.shape[2:], dtype=x.dtype, device=x.device)
    for i in range(n):
        cy = (torch.rand((), generator=gen) * 3 - 1) * hy
        cx = (torch.rand((), generator=gen) * 3 - 1) * wx
        r = torch.sqrt((yy - float(cy)) ** 2 + (xx - float(cx)) ** 2)
        prof = torch.zeros_like(r)
        for _ in range(6):
            rj = float(torch.rand((), generator=gen)) * float(r.max())
            aj = float(torch.randn((), generator=gen)) * 0.05
            wj = 0.4 + 0.6 * float(torch.rand((), generator=gen))
            prof = prof + aj * torch.exp(-0.5 * ((r - rj) / wj) ** 2)
        out[i] = prof  # broadcast over z for 3D patches (rings are the same in every slice)
    return out


def _drift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Slow relative intensity change (±10 %) along a random axis of the patch."""
    n, nd = x.shape[0], x.ndim - 2
    out = torch.zeros((n, 1) + x.shape[2:], dtype=x.dtype, device=x.device)
    for i in range(n):
        ax = int(torch.randint(0, nd, (), generator=gen))
        length = x.shape[2 + ax]
        t = torch.linspace(-0.5, 0.5, length, dtype=x.dtype, device=x.device)
        slope = (float(torch.rand((), generator=gen)) - 0.5) * 0.2
        shape = [1] * nd
        shape[ax] = length
        out[i, 0] = (slope * t).reshape(shape)
    return out
