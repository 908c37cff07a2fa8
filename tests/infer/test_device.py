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
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_ieee_on_cuda_restored_after():
    before = _flags()
    with ieee_float32(torch.device("cuda")):
        inside = _flags()
        assert inside in (("ieee", "ieee"), (False, False))
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
