"""Devices without a GPU: autocast=None means IEEE float32 on a GPU too (cuDNN's TF32 default
switched off for the forward passes and restored after: the flags are plain settings), and a
model named by the caller is loaded onto the device asked for, the caller's own never moved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bigseg
from bigseg.bench import benchmark
from bigseg.errors import InputError
from bigseg.infer._model import ieee_float32, load_model


def _flags():
    b = torch.backends
    new = getattr(b.cudnn, "conv", None)
    state = (b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
    if new is not None and hasattr(new, "fp32_precision"):  # torch >= 2.9: the per-operator settings too
        state += (b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision, b.cuda.matmul.fp32_precision)
    return state


def test_ieee_on_cuda_restored_after():
    before = _flags()
    with ieee_float32(torch.device("cuda")):
        inside = _flags()
        assert inside[:2] == (False, False)  # legacy readers (inductor's) still read it: conv and rnn alike
        assert all(v in ("ieee", "none") for v in inside[2:])  # "none": no TF32 on torch >= 2.9
    assert _flags() == before


def test_restored_after_an_error_and_untouched_on_cpu():
    before = _flags()
    with pytest.raises(RuntimeError), ieee_float32(torch.device("cuda")):
        raise RuntimeError("boom")
    assert _flags() == before
    with ieee_float32(torch.device("cpu")):
        assert _flags() == before


def test_a_named_model_is_loaded_onto_the_device_and_a_given_one_left_alone():
    net = load_model("default", "cpu")
    assert next(net.parameters()).device.type == "cpu"
    assert load_model(net, "cuda") is net  # the caller's own: never moved (resolve_model says so by name)
    assert load_model(net) is net


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_cuda_without_a_gpu_refused_by_name_before_any_work(tmp_path):
    img = np.zeros((8, 16, 16), np.float32)
    with pytest.raises(InputError, match="`device` 'cuda'"):
        bigseg.infer.segment(img, "default", device="cuda")
    with pytest.raises(InputError, match="`device` 'cuda'"):
        benchmark(size=16, stages="segment", predict={"device": "cuda"}, workdir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_overlapping_passes_on_two_gpus_restore_the_flags_once_both_are_done():
    """Two GPUs' passes in one process overlap: the flags stay IEEE until the last one leaves,
    then come back to what they were (not to the IEEE the second one would have saved)."""
    before = _flags()
    first, second = ieee_float32(torch.device("cuda", 0)), ieee_float32(torch.device("cuda", 1))
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert _flags() != before  # the second GPU's pass is still running
    second.__exit__(None, None, None)
    assert _flags() == before


def test_newer_precisions_set_apart_are_handled_and_restored():
    """Someone set torch >= 2.9's per-operator precisions apart (conv TF32, rnn IEEE): the legacy
    getter refuses to read them, so those settings themselves are switched and restored."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is None or not hasattr(conv, "fp32_precision"):
        pytest.skip("torch < 2.9 has no per-operator precisions")
    b = torch.backends.cudnn
    old = (b.conv.fp32_precision, b.rnn.fp32_precision)
    try:
        b.conv.fp32_precision, b.rnn.fp32_precision = "tf32", "ieee"
        with ieee_float32(torch.device("cuda")):
            assert (b.conv.fp32_precision, b.rnn.fp32_precision) == ("ieee", "ieee")
        assert (b.conv.fp32_precision, b.rnn.fp32_precision) == ("tf32", "ieee")
    finally:
        b.conv.fp32_precision, b.rnn.fp32_precision = old
