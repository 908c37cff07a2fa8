"""Deterministic tiny networks and a known-function predictor for the inference tests."""

from __future__ import annotations

import numpy as np
import torch


def conv3d_net(seed: int = 0, classes: int = 3) -> torch.nn.Module:
    """A fixed random-weight 3D conv network (1 -> 4 -> 4 -> classes channels), eval mode."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Tanh(),
        torch.nn.Conv3d(4, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(4, classes, 1),
    )
    return net.eval()


def conv2d_net(seed: int = 0, classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, classes, 3, padding=1),
    )
    return net.eval()


class KnownLogits(torch.nn.Module):
    """logits_c = a_c · x + b_c · (window-local z, y, x coordinates) + d_c: a predictor whose
    output is known exactly and depends on where a voxel sits in its window (so any blending
    mistake shows)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("a", torch.randn(classes, generator=g))
        self.register_buffer("b", torch.randn(classes, 3, generator=g) * 0.2)
        self.register_buffer("d", torch.randn(classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, *sp = x.shape
        grids = torch.meshgrid(*[torch.arange(s, dtype=x.dtype) for s in sp], indexing="ij")
        coord = torch.stack([g for g in grids])  # (3, *sp)
        out = self.a[None, :, None, None, None] * x + torch.einsum("ck,k...->c...", self.b, coord)[None]
        return out + self.d[None, :, None, None, None]


def monai_probs(x: np.ndarray, net, roi, *, overlap=0.5, mode="gaussian", sigma_scale=0.125, tta=False) -> np.ndarray:
    """MONAI sliding_window_inference of softmax(net) on a whole (z, y, x) or (n, y, x) batch
    of 2D images (len(roi) == 2): returns (C, ...) float32."""
    from monai.inferers import sliding_window_inference  # here: the GPU tests use this module where MONAI is not

    def predictor(t):
        if not tta:
            return torch.softmax(net(t), 1)
        dims = list(range(2, t.ndim))
        import itertools

        flips = [()] + [c for r in range(1, len(dims) + 1) for c in itertools.combinations(dims, r)]
        acc = 0
        for f in flips:
            ti = t.flip(f) if f else t
            p = torch.softmax(net(ti), 1)
            acc = acc + (p.flip(f) if f else p)
        return acc / len(flips)

    with torch.inference_mode():
        if len(roi) == 3:
            t = torch.from_numpy(x)[None, None]
            return sliding_window_inference(t, roi, 4, predictor, overlap=overlap, mode=mode, sigma_scale=sigma_scale)[0].numpy()
        t = torch.from_numpy(np.ascontiguousarray(x))[:, None]
        out = sliding_window_inference(t, roi, 4, predictor, overlap=overlap, mode=mode, sigma_scale=sigma_scale)
        return out.numpy().transpose(1, 0, 2, 3)
