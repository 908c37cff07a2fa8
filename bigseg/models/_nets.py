"""Network architectures: an LRCS-Net-style 2D encoder-decoder and a compact 3D U-Net.

Both map ``(N, 1, *spatial)`` float32 images to ``(N, C, *spatial)`` logits for any spatial size
(inputs are padded internally to a multiple of the total pooling factor and cropped back).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .._parse import parse_choice, parse_positive_float, parse_positive_int
from ..errors import InputError

__all__ = ["LRCSNet", "UNet3D"]


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Reflect-pad (replicate for tiny inputs) the spatial axes of ``x`` up to ``multiple``."""
    spatial = tuple(int(s) for s in x.shape[2:])
    pads: list[int] = []
    for s in reversed(spatial):
        extra = (-s) % multiple
        pads += [extra // 2, extra - extra // 2]
    if any(pads):
        mode = "reflect" if all(p < s for p, s in zip(pads[::2] + pads[1::2], 2 * list(reversed(spatial)))) else "replicate"
        x = F.pad(x, pads, mode=mode)
    return x, spatial


def _crop(x: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    starts = [(int(p) - s) // 2 for p, s in zip(x.shape[2:], spatial)]
    idx = (slice(None), slice(None)) + tuple(slice(a, a + s) for a, s in zip(starts, spatial))
    return x[idx]


class LRCSNet(nn.Module):
    """LRCS-Net-style 2D encoder-decoder with indexed max-pooling/unpooling (Su et al. 2022, Fig. 2).

    Encoder: five convolutions with three indexed 2×2 max-poolings (``return_indices``); leaky
    ReLU after each convolution except the last, which ends the encoder with a sigmoid, as in
    the paper. Decoder: eight convolutions with three max-unpoolings that receive the encoder's
    pooling indices at the start of each block (SegNet-style), batch normalisation and leaky
    ReLU after each decoder convolution but the last (a 1×1 convolution to class logits).

    Parameters
    ----------
    in_channels, out_channels : input channels (1 grey level) and number of classes
    kernels : number of convolution kernels of the first level (32 in the paper's search)
    kernel_size : odd convolution kernel size (5 × 5 in the paper's search)
    growth : channel multiplier per pooling level (1 keeps ``kernels`` everywhere; 2 doubles)
    negative_slope : leaky-ReLU slope
    """

    ndim = 2
    pool_factor = 8

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        *,
        kernels: int = 32,
        kernel_size: int = 5,
        growth: float = 2.0,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        kernels = parse_positive_int("kernels", kernels)
        kernel_size = parse_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:  # 'same' padding (size // 2) needs an odd size: an even one grows each map by 1
            raise InputError(f"Expected `kernel_size` to be an odd positive integer (e.g. 3 or 5). Got {kernel_size!r} instead.")
        growth = parse_positive_float("growth", growth)
        k = [max(1, int(round(kernels * growth**i))) for i in range(4)]
        self.negative_slope = negative_slope

        def conv(a: int, b: int, size: int = kernel_size) -> nn.Conv2d:
            return nn.Conv2d(a, b, size, padding=size // 2)

        # encoder: 5 convolutions, 3 indexed max-poolings
        self.enc1 = conv(in_channels, k[0])
        self.enc2 = conv(k[0], k[1])
        self.enc3 = conv(k[1], k[2])
        self.enc4 = conv(k[2], k[3])
        self.enc5 = conv(k[3], k[3])
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        # decoder: 8 convolutions, 3 unpoolings (indices enter at the first conv of each block)
        self.dec0 = conv(k[3], k[2])
        self.dec3a, self.dec3b = conv(k[2], k[2]), conv(k[2], k[1])
        self.dec2a, self.dec2b = conv(k[1], k[1]), conv(k[1], k[0])
        self.dec1a, self.dec1b = conv(k[0], k[0]), conv(k[0], k[0])
        self.head = nn.Conv2d(k[0], out_channels, 1)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in (k[2], k[2], k[1], k[1], k[0], k[0], k[0]))

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, *spatial) of ``x``, a (N, 1, *spatial) float32 batch (padded inside to a
        multiple of the pooling factor, cropped back)."""
        x, spatial = _pad_to(x, self.pool_factor)
        a = self._act(self.enc1(x))
        s1 = a.shape[2:]
        a, i1 = self.pool(a)
        a = self._act(self.enc2(a))
        s2 = a.shape[2:]
        a, i2 = self.pool(a)
        a = self._act(self.enc3(a))
        s3 = a.shape[2:]
        a, i3 = self.pool(a)
        a = self._act(self.enc4(a))
        a = torch.sigmoid(self.enc5(a))
        bn = iter(self.bns)
        a = self._act(next(bn)(self.dec0(a)))
        a = self.unpool(a, i3, output_size=s3)
        a = self._act(next(bn)(self.dec3a(a)))
        a = self._act(next(bn)(self.dec3b(a)))
        a = self.unpool(a, i2, output_size=s2)
        a = self._act(next(bn)(self.dec2a(a)))
        a = self._act(next(bn)(self.dec2b(a)))
        a = self.unpool(a, i1, output_size=s1)
        a = self._act(next(bn)(self.dec1a(a)))
        a = self._act(next(bn)(self.dec1b(a)))
        return _crop(self.head(a), spatial)


class _Block3D(nn.Sequential):
    def __init__(self, a: int, b: int, norm: str, slope: float) -> None:
        layers: list[nn.Module] = []
        for cin in (a, b):
            layers.append(nn.Conv3d(cin, b, 3, padding=1, bias=norm == "none"))
            if norm == "instance":
                layers.append(nn.InstanceNorm3d(b, affine=True))
            elif norm == "batch":
                layers.append(nn.BatchNorm3d(b))
            layers.append(nn.LeakyReLU(slope))
        super().__init__(*layers)


class UNet3D(nn.Module):
    """Compact 3D U-Net (Çiçek et al. 2016; as used on synthetic electrodes by Müller et al. 2021).

    Parameters
    ----------
    in_channels, out_channels : input channels and number of classes
    channels : feature channels per level, e.g. (16, 32, 64): ``len(channels) - 1`` poolings
    norm : "instance" | "batch" | "none"
    up : "trilinear" (upsample + 1×1×1 conv) or "transpose" (2×2×2 transposed convolution)
    negative_slope : leaky-ReLU slope
    """

    ndim = 3

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        *,
        channels: Any = (16, 32, 64),
        norm: str = "instance",
        up: str = "trilinear",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        if isinstance(channels, (str, bytes)) or not hasattr(channels, "__len__") or len(channels) == 0:
            raise InputError(f"Expected `channels` to be feature channels per level, e.g. (16, 32, 64). Got {channels!r} instead.")
        try:
            ch = [parse_positive_int("channels", c) for c in channels]
        except InputError:
            raise InputError(f"Expected `channels` to be positive integers, e.g. (16, 32, 64). Got {channels!r} instead.") from None
        norm = parse_choice("norm", norm, ["instance", "batch", "none"])  # another name was silently no normalisation
        up = parse_choice("up", up, ["trilinear", "transpose"])
        self.pool_factor = 2 ** (len(ch) - 1)
        self.up_mode = up
        self.down = nn.ModuleList()
        prev = in_channels
        for c in ch:
            self.down.append(_Block3D(prev, c, norm, negative_slope))
            prev = c
        self.ups = nn.ModuleList()
        self.upblocks = nn.ModuleList()
        for c_hi, c_lo in zip(reversed(ch[:-1]), reversed(ch[1:])):
            if up == "transpose":
                self.ups.append(nn.ConvTranspose3d(c_lo, c_hi, 2, stride=2))
            else:
                self.ups.append(nn.Conv3d(c_lo, c_hi, 1))
            self.upblocks.append(_Block3D(2 * c_hi, c_hi, norm, negative_slope))
        self.head = nn.Conv3d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, *spatial) of ``x``, a (N, 1, *spatial) float32 batch (padded inside to a
        multiple of the pooling factor, cropped back)."""
        x, spatial = _pad_to(x, self.pool_factor)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool3d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for upc, block in zip(self.ups, self.upblocks):
            skip = skips.pop()
            if self.up_mode == "transpose":
                x = upc(x)
            else:
                x = upc(F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False))
            x = block(torch.cat([skip, x], 1))
        return _crop(self.head(x), spatial)
