"""CPU streams: a block's windows shared between threads give the one-stream result, leave
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


def _probabilities(vol: np.ndarray, net, **kw) -> np.ndarray:
    return bigseg.predict(vol, net, patch=(8, 8, 8), device="cpu", probabilities=True, **kw)["probabilities"].values


@pytest.mark.parametrize("tta", [False, True])
def test_streams_match_one_stream(monkeypatch, tta):
    from bigseg.infer import _predict as P

    net = conv3d_net(seed=3)
    vol = np.random.default_rng(0).normal(size=(14, 18, 16)).astype(np.float32)
    kw = dict(tta=tta, batch_size=5)  # 5 windows per batch: an uneven share between 2 streams
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", "1")
    one = _probabilities(vol, net, **kw)
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", "2")
    seen: set[str] = set()
    real = P.run_patches

    def spy(x, **k):
        seen.add(threading.current_thread().name)
        return real(x, **k)

    monkeypatch.setattr(P, "run_patches", spy)
    before = M.worker_stats()["patches"]
    ds = bigseg.predict(vol, net, patch=(8, 8, 8), device="cpu", probabilities=True, **kw)
    two = ds["probabilities"].values
    assert two.shape == one.shape == (3, 14, 18, 16)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    assert any(name.startswith("bigseg-cpu-stream") for name in seen), seen
    assert M.worker_stats()["patches"] - before == ds.attrs["n_patches"]  # windows counted once, not per stream


def test_streams_keep_the_callers_thread_count(monkeypatch):
    monkeypatch.setenv("BIGSEG_CPU_STREAMS", "2")
    before = torch.get_num_threads()
    _probabilities(np.zeros((12, 12, 12), np.float32), conv3d_net())
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
