"""The GPU path (CUDA device, autocast, channels-last, batch sized to the device)."""

from __future__ import annotations

import numpy as np
import pytest
from ._infer_nets import conv3d_net

from bigseg.infer import predict

pytestmark = pytest.mark.gpu


@pytest.fixture
def cuda():
    pytest.importorskip("cupy")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch


def test_cuda_matches_cpu(cuda):
    x = np.random.default_rng(0).normal(size=(40, 44, 48)).astype(np.float32)
    net = conv3d_net()
    cpu = predict(x, net, patch=(16, 16, 16), probabilities=True, device="cpu")["probabilities"].values
    exact = predict(x, net.to("cuda"), patch=(16, 16, 16), probabilities=True, device="cuda", autocast=None)
    np.testing.assert_allclose(exact["probabilities"].values, cpu, atol=1e-4)
    fast = predict(x, net, patch=(16, 16, 16), probabilities=True, device="cuda", tta=True)  # bf16/fp16 autocast
    assert np.abs(fast["probabilities"].values - cpu).max() < 0.1
