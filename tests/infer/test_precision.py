"""autocast=None means IEEE float32 on a GPU too: cuDNN's TF32 default is switched off for the
forward passes and restored after (the flags are plain settings: testable without a GPU)."""

from __future__ import annotations

import pytest
import torch

from bigseg.infer._model import ieee_float32


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
