"""predict refuses bad input before any work, with messages that name the argument and value."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch
from ._infer_nets import conv2d_net, conv3d_net

from bigseg.errors import InputError, MemoryBudgetError, ModelError
from bigseg.runtime._budget import format_bytes
from bigseg.infer import estimate_footprint, predict, segment


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(20, 22, 24)).astype(np.float32)


@pytest.mark.parametrize("overlap", [1.2, 1.0, -0.1, "a", "0.5"])  # text, even of a number: refused
def test_overlap_outside_unit_interval(x, overlap):
    with pytest.raises(InputError, match=r"Expected `overlap` (to be a number )?in \[0, 1\)\. Got") as e:
        predict(x, conv3d_net(), patch=(8, 8, 8), overlap=overlap)
    if overlap == 1.2:
        assert str(e.value) == "Expected `overlap` in [0, 1). Got 1.2 instead."


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"blend": "linear"}, "`blend`"),
        ({"sigma_scale": 0}, "`sigma_scale`"),
        ({"uncertainty": "variance"}, "`uncertainty`"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"autocast": "fp8"}, "`autocast`"),
        ({"tta": "yes"}, "`tta`"),
        ({"spill": "no"}, "`spill`"),
        ({"device": "gpu7"}, "`device`"),
        ({"patch": (8, 8, 0)}, "`patch`"),
        ({"patch": None}, "`patch`"),
        ({"triplanar": True}, "`triplanar`"),
        ({"plane": "y"}, r"Expected `plane` None with a 3D model"),
        ({"plane": "w"}, r"Expected `plane` to be 'z', 'y' or 'x' .*Got 'w'"),
        ({"plane": True}, "`plane`"),
        ({"plane": "y", "triplanar": True}, r"Expected `plane` None with `triplanar`"),
    ],
)
def test_bad_arguments(x, kwargs, match):
    kw = {"patch": (8, 8, 8), **kwargs}
    with pytest.raises(InputError, match=match):
        predict(x, conv3d_net(), **kw)


def test_bad_volumes():
    with pytest.raises(InputError, match="`vol`"):
        predict(np.zeros((4, 5)), conv3d_net(), patch=(8, 8, 8))
    with pytest.raises(InputError, match="`vol`"):
        predict(np.zeros((4, 5, 6), dtype=np.complex64), conv3d_net(), patch=(8, 8, 8))


def test_boolean_volume_is_refused_as_no_grey_values():
    with pytest.raises(InputError, match=r"Expected `vol` to hold grey values \(integers or floats\). Got dtype bool"):
        predict(np.zeros((4, 5, 6), bool), conv3d_net(), patch=(4, 4, 4))


def test_one_output_channel_is_refused_before_any_work(x):
    # a softmax over one channel is 1 everywhere: the labels path failed in the blend, after every window
    with pytest.raises(ModelError, match="at least two.*Got 1 channel"):
        predict(x, torch.nn.Conv3d(1, 1, 1), patch=(8, 8, 8))
    with pytest.raises(ModelError, match="at least two"):
        predict(x, torch.nn.Conv3d(1, 1, 1), patch=(8, 8, 8), probabilities=True)


def test_output_channels_disagree_with_phases(x):
    with pytest.raises(ModelError, match=r"match `phases` \['a', 'b', 'c', 'd'\]. Got 3 output channels"):
        predict(x, conv3d_net(), patch=(8, 8, 8), phases=["a", "b", "c", "d"])

    class Named(torch.nn.Sequential):
        phases = ["pore", "active"]

    net = Named(torch.nn.Conv3d(1, 3, 1))
    with pytest.raises(ModelError, match="2 phases"):
        predict(x, net, patch=(8, 8, 8))


def test_model_output_shape_must_match_the_patch(x):
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3))  # no padding: shrinks the patch
    with pytest.raises(ModelError, match=r"\(1, C, \*patch\)"):
        predict(x, net, patch=(8, 8, 8))
    with pytest.raises(ModelError, match="`model`"):
        predict(x, "not a model".encode(), patch=(8, 8, 8))


def test_2d_model_given_3d_patches(x):
    class Slice2D(torch.nn.Sequential):
        ndim = 2
        patch = (16, 16)

    net = Slice2D(torch.nn.Conv2d(1, 3, 1))
    with pytest.raises(ModelError, match=r"2 values \(y, x\) for a 2D model"):
        predict(x, net, patch=(8, 8, 8))
    with pytest.raises(ModelError):  # a plain 2D module with a 3D patch fails its probe
        predict(x, conv2d_net(), patch=(8, 8, 8))


def _forbid_graph(monkeypatch):
    """Make building predict's graph fail the test: checks must come before it. (A patch counter
    would be racy: a failed compute in an earlier test may leave windows running in threads.)"""
    import bigseg.infer._predict as P

    def no_graph(*a, **k):
        raise AssertionError("predict built its graph before refusing the input")

    monkeypatch.setattr(P, "_blend_volume", no_graph)


def test_nan_in_numpy_input_is_counted_before_work(x, monkeypatch):
    x = x.copy()
    x[3, 4, 5] = x[10, 1, 1] = np.nan
    _forbid_graph(monkeypatch)
    with pytest.raises(InputError, match="Got 2 NaN voxels"):
        predict(x, conv3d_net(), patch=(8, 8, 8))


def test_nan_in_lazy_input_fails_its_block(x):
    x = x.copy()
    x[3, 4, 5] = np.nan
    ds = predict(da.from_array(x, chunks=10), conv3d_net(), patch=(8, 8, 8))
    with pytest.raises(InputError, match=r"Got 1 NaN voxels in the region z\[0:"):
        ds["labels"].values


def test_infinite_input_is_refused_like_nan(x, monkeypatch):
    """inf went through: the patches' normalisation made it NaN probabilities, silently."""
    x = x.copy()
    x[3, 4, 5] = np.inf
    x[10, 1, 1] = -np.inf
    with pytest.raises(InputError, match=r"Expected `vol` without NaN or infinite values\. Got 2 infinite voxels"):
        with monkeypatch.context() as m:
            _forbid_graph(m)
            predict(x, conv3d_net(), patch=(8, 8, 8))
    ds = predict(da.from_array(x, chunks=10), conv3d_net(), patch=(8, 8, 8))
    with pytest.raises(InputError, match=r"Got \d infinite voxels in the region z\[0:"):
        ds["labels"].values


def test_model_on_another_device_than_requested(x):
    import torch

    if torch.cuda.is_available():
        with pytest.raises(ModelError, match="requested `device` 'cuda'.* on 'cpu'"):
            predict(x, conv3d_net(), patch=(8, 8, 8), device="cuda")
    else:  # the first thing to say: there is no GPU here
        with pytest.raises(InputError, match="`device` 'cuda' only where PyTorch sees a CUDA GPU"):
            predict(x, conv3d_net(), patch=(8, 8, 8), device="cuda")
    with pytest.raises(InputError, match=r"`device` to be 'cpu', 'cuda' or 'cuda:N'. Got 'gpu'"):  # not a device
        predict(x, conv3d_net(), patch=(8, 8, 8), device="gpu")
    net = conv3d_net().to("meta")
    with pytest.raises(ModelError, match="on 'meta'"):
        predict(x, net, patch=(8, 8, 8), device="cpu")


def test_memory_budget_refuses_before_any_work(x, monkeypatch):
    _forbid_graph(monkeypatch)
    need = estimate_footprint((20, 20, 20), (16, 16, 16), n_classes=3, batch_size=1)
    fits = estimate_footprint((16, 16, 16), (16, 16, 16), n_classes=3, batch_size=1)
    limit = (need + fits) // 2
    with pytest.raises(MemoryBudgetError) as e:
        predict(da.from_array(x, chunks=20), conv3d_net(), patch=(16, 16, 16), batch_size=1, memory_limit=limit)
    msg = str(e.value)
    assert f"needs an estimated {format_bytes(need)}" in msg and f"{format_bytes(limit)} available" in msg
    assert "smaller chunks, e.g. chunks=16" in msg
    with pytest.raises(MemoryBudgetError, match="Even 16³ chunks do not fit"):
        predict(da.from_array(x, chunks=20), conv3d_net(), patch=(16, 16, 16), memory_limit="1MiB")
    monkeypatch.undo()
    # the estimate grows with the block and the overhang, and a generous limit passes
    small = estimate_footprint((32, 32, 32), (16, 16, 16), n_classes=3)
    big = estimate_footprint((128, 128, 128), (16, 16, 16), n_classes=3)
    assert big > 8 * small * 0.9
    assert estimate_footprint((128,) * 3, (64,) * 3, n_classes=3) > estimate_footprint((128,) * 3, (16,) * 3, n_classes=3)
    ds = predict(da.from_array(x, chunks=20), conv3d_net(), patch=(16, 16, 16), memory_limit="2GiB")
    assert ds.attrs["footprint_bytes"] <= 2**31


def test_memory_budget_uses_the_cluster_workers_limit(x):
    from bigseg.runtime._budget import worker_memory_limit

    limit, threads, source = worker_memory_limit("3GiB")
    assert (limit, threads, source) == (3 * 2**30, 1, "memory_limit")
    with pytest.raises(InputError, match="`memory_limit`"):
        worker_memory_limit("lots")


def test_a_volume_too_small_for_the_network_says_so():
    from bigseg import models

    net = models.create("unet3d", patch=(16, 16, 16), channels=(4, 8, 16))
    with pytest.raises(ModelError, match=r"cut to the volume's extent \(2, 2, 2\).*too small"):
        predict(np.zeros((2, 2, 2), np.float32), net)


@pytest.mark.parametrize("fov", [None, (16, 16, 12)])
def test_a_blank_scan_is_refused_by_segment_not_labelled_as_phases(fov):
    from bigseg import models
    from bigseg.infer import segment

    net = models.create("unet3d", patch=(16, 16, 16), channels=(4, 8, 16))
    blank = np.full((16, 32, 32), 1234, np.uint16)
    with pytest.raises(InputError, match=r"more than one grey value.*Got 1234 at both \(a blank or saturated"):
        segment(blank, net, fov=fov)
    scan = blank.copy()
    scan[:, :4] = 7  # outside a centred circle of radius 12: still blank inside the field of view
    if fov is not None:
        with pytest.raises(InputError, match="inside the field of view"):
            segment(scan, net, fov=fov)
    scan[:, 10:20, 10:20] = 2000
    assert segment(scan, net, fov=fov)["labels"].shape == scan.shape


@pytest.mark.parametrize("kwargs, match", [
    ({"overlp": 0.3}, r"keyword arguments of bigseg.predict .*Got 'overlp'"),
    ({"overlap": 2}, r"`overlap` in \[0, 1\)\. Got 2"),
    ({"tta": "yes"}, r"`tta` to be True or False"),
])
def test_segment_checks_the_predict_options_before_the_normalisation_pass(kwargs, match, monkeypatch):
    from bigseg import filters, models
    from bigseg.infer import segment

    def no_pass(*a, **k):
        raise AssertionError("the data was read before the options were checked")

    monkeypatch.setattr(filters, "normalize", no_pass)
    net = models.create("unet3d", patch=(16, 16, 16), channels=(4, 8, 16))
    with pytest.raises(InputError, match=match):
        segment(np.random.default_rng(0).random((16, 16, 16), dtype=np.float32), net, **kwargs)


@pytest.mark.parametrize("fov", [None, (8, 8, 6)])
def test_segment_refuses_a_boolean_mask_as_predict_does(fov, monkeypatch):
    """A mask (e.g. labels == 2) is no scan: predict refused it, segment normalised it to 0/1
    and labelled it."""
    from bigseg import filters, models
    from bigseg.infer import segment

    def no_pass(*a, **k):
        raise AssertionError("the data was read before the input was checked")

    monkeypatch.setattr(filters, "normalize", no_pass)
    net = models.create("unet3d", patch=(8, 8, 8), channels=(2, 4))
    mask = np.random.default_rng(0).random((16, 16, 16)) > 0.5
    with pytest.raises(InputError, match=r"Expected `vol` to hold grey values \(integers or floats\)\. Got dtype bool"):
        segment(mask, net, fov=fov)
    with pytest.raises(InputError, match=r"Got dtype bool"):
        predict(mask, net)


@pytest.mark.parametrize("call, match", [
    (lambda v: predict(v, conv3d_net(), patch=(4, 8, 8), channels_last="no"), r"`channels_last` to be True or False. Got 'no'"),
    (lambda v: segment(v, normalize="no"), r"`normalize` to be True or False. Got 'no'"),
    (lambda v: segment(v, fov_margin=-1.0), r"`fov_margin` in \[0, inf\). Got -1.0"),
    (lambda v: segment(v, fov_margin="1"), r"`fov_margin` to be a number .*Got '1'"),
], ids=["predict-channels_last-text", "segment-normalize-text", "segment-fov_margin-negative", "segment-fov_margin-text"])
def test_argument_sweep_refuses_by_name(call, match):
    """From the argument sweep: `channels_last="no"` / `normalize="no"` ran as True (truthy text) and
    `segment(fov_margin=-1)` without a field of view was silently ignored; each now an InputError
    naming the argument and its value, at the call."""
    with pytest.raises(InputError, match=match):
        call(np.zeros((4, 8, 8), np.float32))


@pytest.mark.parametrize("fn", [predict, segment])
def test_a_missing_model_checkpoint_is_named_as_model(fn, tmp_path):
    """From the argument sweep: `predict(vol, "typo")` was refused naming `name_or_path` (models.load's
    argument), not the `model` the caller gave."""
    with pytest.raises(ModelError, match=r"Expected `model` to be 'default' or an existing checkpoint file. Got '.*nope"):
        fn(np.zeros((4, 8, 8), np.float32), str(tmp_path / "nope.pt"))
