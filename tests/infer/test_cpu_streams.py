"""CPU streams: a batch of windows split between threads gives the one-stream result, leaves
torch's thread setting alone, and a bad ``BIGSEG_CPU_STREAMS`` is refused before any work."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import bigseg
from bigseg.errors import InputError
from bigseg.infer import _model as M

from ._infer_nets import conv3d_net


def _run(x: np.ndarray, net, *, tta: bool = False) -> np.ndarray:
    return M.run_patches(x, module=net, device=torch.device("cpu"), n_classes=3, plane_axis=None,
                         autocast=None, tta=tta, channels_last=False)


@pytest.mark.parametrize("tta", [False, True])
def test_streams_match_one_stream(monkeypatch, tta):
    net = conv3d_net(seed=3)
    x = np.random.default_rng(0).normal(size=(5, 12, 10, 9)).astype(np.float32)  # 5: uneven split
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", "1")
    one = _run(x, net, tta=tta)
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", "2")
    seen: set[str] = set()
    orig = net.forward

    def spy(t):
        seen.add(threading.current_thread().name)
        return orig(t)

    monkeypatch.setattr(net, "forward", spy)
    before = M.worker_stats()["patches"]
    two = _run(x, net, tta=tta)
    assert two.shape == one.shape == (5, 3, 12, 10, 9)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    assert any(name.startswith("bigseg-cpu-stream") for name in seen), seen
    assert M.worker_stats()["patches"] - before == 5  # windows counted once, not per stream


def test_streams_keep_the_callers_thread_count(monkeypatch):
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", "2")
    before = torch.get_num_threads()
    _run(np.zeros((2, 4, 4, 4), np.float32), conv3d_net())
    assert torch.get_num_threads() == before
    n, per = M.cpu_streams()
    assert n == min(2, before) and per == max(1, before // n)


def test_default_streams(monkeypatch):
    monkeypatch.delenv("BIGSEG_CPU_STREAMS", raising=False)
    n, per = M.cpu_streams()
    threads = torch.get_num_threads()
    assert (n, per) == ((2, threads // 2) if threads >= 2 else (1, 1))


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_streams_setting_refused_before_work(monkeypatch, tmp_path, value):
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", value)
    vol = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(InputError, match=f"BIGSEG_CPU_STREAMS.*{value!r}"):
        bigseg.predict(vol, conv3d_net(), patch=(4, 4, 4), device="cpu")
