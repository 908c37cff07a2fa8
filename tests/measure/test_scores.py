"""Confusion, IoU/Dice/precision/recall/accuracy and agreement against NumPy references."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from ._measure_ref import confusion as ref_confusion

from bigseg.errors import InputError
from bigseg.io import make_volume
from bigseg.measure import agreement, confusion, scores


@pytest.fixture(scope="module")
def pair(labels):
    rng = np.random.default_rng(5)
    pred = labels.copy()
    flip = rng.random(labels.shape) < 0.1
    pred[flip] = rng.integers(0, 3, flip.sum())
    truth = labels.copy()
    truth[rng.random(labels.shape) < 0.2] = 255  # sparse annotation: ignored
    return truth, pred


@pytest.mark.parametrize("chunks", [((17, 23, 30), (17, 23, 30)), ((5, 48, 56), (40, 7, 9)), ((40, 48, 56), (1, 48, 56))], ids=str)
def test_confusion_exact(pair, chunks):
    truth, pred = pair
    cm = confusion(da.from_array(truth, chunks=chunks[0]), da.from_array(pred, chunks=chunks[1]))
    np.testing.assert_array_equal(cm.values, ref_confusion(truth, pred, 3))
    assert cm.dims == ("truth_phase", "pred_phase") and cm.dtype == np.int64
    assert cm.attrs["ignored_voxels"] == int((truth == 255).sum())


def test_scores_match_definitions(pair):
    truth, pred = pair
    ds = scores(truth, da.from_array(pred, chunks=(11, 13, 17)))
    cm = ref_confusion(truth, pred, 3).astype(float)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    np.testing.assert_allclose(ds.iou.values, tp / (tp + fp + fn), rtol=1e-15)
    np.testing.assert_allclose(ds.dice.values, 2 * tp / (2 * tp + fp + fn), rtol=1e-15)
    np.testing.assert_allclose(ds.precision.values, tp / (tp + fp), rtol=1e-15)
    np.testing.assert_allclose(ds.recall.values, tp / (tp + fn), rtol=1e-15)
    assert ds.accuracy.item() == pytest.approx(tp.sum() / cm.sum(), rel=1e-15)
    assert list(ds.phase.values) == ["pore", "cbd", "active"]
    assert "note" not in ds.attrs


def test_absent_phase_gives_nan_and_note():
    truth = np.zeros((8, 9, 10), np.uint8)
    truth[:4] = 2
    pred = truth.copy()
    pred[0, 0, 0] = 0
    ds = scores(truth, pred)
    assert np.isnan(ds.iou.sel(phase="cbd").item()) and np.isnan(ds.dice.sel(phase="cbd").item())
    assert "'cbd' is absent from truth and prediction" in ds.attrs["note"]
    assert ds.iou.sel(phase="pore").item() == pytest.approx(360 / 361)


def test_majority_class_trap_visible():
    truth = np.full((10, 10, 10), 2, np.uint8)
    truth[:4] = 0
    pred = np.full_like(truth, 2)
    ds = scores(truth, pred)
    assert ds.accuracy.item() == pytest.approx(0.6)
    assert ds.iou.sel(phase="pore").item() == 0.0
    assert np.isnan(ds.precision.sel(phase="pore").item())


def test_scores_series(pair):
    truth, pred = pair
    t4 = make_volume(np.stack([truth, truth]), phases=["pore", "cbd", "active"])
    p4 = make_volume(np.stack([pred, truth.clip(0, 2)]), phases=["pore", "cbd", "active"])
    ds = scores(t4, p4)
    assert ds.iou.dims == ("t", "phase") and ds.accuracy.dims == ("t",)
    np.testing.assert_allclose(ds.accuracy.values[1], 1.0)


def test_a_truth_series_at_other_times_is_scored_at_the_predictions_times(pair):
    """Scans stated in minutes against a reference at other times: each score sat at the truth's
    time, and summary's outer join made four steps, half of them NaN. A reference that states no
    times (numbered 0, 1: a .npy) is at no other time and is not warned of."""
    from bigseg.measure import summary

    truth, pred = pair
    t4 = make_volume(np.stack([truth, truth]), phases=["pore", "cbd", "active"]).assign_coords(t=[0.0, 60.0])
    p4 = make_volume(np.stack([pred, truth.clip(0, 2)]), phases=["pore", "cbd", "active"]).assign_coords(t=[0.0, 30.0])
    with pytest.warns(UserWarning, match=r"series of 2 scans at other times \(t = 0.0, 60.0 against 0.0, 30.0\): "
                                         r"compared scan by scan in order, the scores are given at `pred`'s times"):
        ds = scores(t4, p4)
    assert list(ds.t.values) == [0.0, 30.0] and ds.accuracy.values[1] == 1.0
    with pytest.warns(UserWarning, match="at other times"):
        m = summary(p4, truth=t4, profile="z")
    assert list(m.t.values) == [0.0, 30.0] and not np.isnan(m.iou.values).any()
    np.testing.assert_allclose(m.iou.values, ds.iou.values)
    steps = make_volume(np.stack([truth, truth]), phases=["pore", "cbd", "active"])  # t = 0, 1: no times stated
    assert list(steps.t.values) == [0, 1]
    quiet = scores(steps, p4)  # (filterwarnings=error: a warning fails here)
    assert list(quiet.t.values) == [0.0, 30.0]
    np.testing.assert_array_equal(quiet.iou.values, ds.iou.values)


@pytest.mark.parametrize("chunks", [(17, 23, 30), (40, 3, 56)], ids=str)
def test_agreement_matches_reference(labels, chunks):
    segs = [labels, np.roll(labels, 1, 0), np.roll(labels, 2, 1), labels[:, :, ::-1]]
    ds = agreement([da.from_array(s, chunks=chunks) for s in segs])
    fr = np.array([np.bincount(s.ravel(), minlength=3) / s.size for s in segs])
    np.testing.assert_allclose(ds.volume_fraction.values, fr, rtol=1e-15)
    np.testing.assert_allclose(ds.fraction_std.values, fr.std(axis=0, ddof=1), rtol=1e-12)
    diffs = [np.mean(a != b) for a, b in itertools.combinations(segs, 2)]
    np.testing.assert_allclose(ds.differing_fraction.values, diffs, rtol=1e-12)
    assert ds.mean_differing_fraction.item() == pytest.approx(np.mean(diffs))
    assert ds.differing_fraction.attrs["units"] == "1"


def test_a_truth_of_another_voxel_size_is_warned_about():
    import warnings

    import xarray as xr

    a = np.zeros((4, 5, 6), np.uint8)
    a[:, :, 3:] = 2
    attrs = {"voxel_size": (50.0, 50.0, 50.0), "unit": "nm", "phases": ["pore", "cbd", "active"]}
    truth = xr.DataArray(a, dims=("z", "y", "x"), attrs=attrs)
    with pytest.warns(UserWarning, match=r"different voxel sizes \(\(50.0, 50.0, 50.0\) nm against \(100.0"):
        scores(truth, truth.copy(data=a).assign_attrs(voxel_size=(100.0, 50.0, 50.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores(truth, truth.copy())
        agreement([truth, truth.copy()])
    # so does agreement (bigseg compare said nothing)
    with pytest.warns(UserWarning, match=r"`segmentations\[0\]` and `segmentations\[1\]` have the same shape but "
                                         r"different voxel sizes") as caught:
        agreement([truth, truth.copy(data=a).assign_attrs(voxel_size=(100.0, 50.0, 50.0))], progress=False)
    assert caught[0].filename == __file__  # the caller's line


def test_another_voxel_size_in_another_unit_is_warned_about_and_the_same_one_is_not():
    import warnings

    import xarray as xr

    a = np.zeros((4, 5, 6), np.uint8)
    a[:, :, 3:] = 2
    truth = xr.DataArray(a, dims=("z", "y", "x"), attrs={"voxel_size": (50.0, 50.0, 50.0), "unit": "nm"})
    with pytest.warns(UserWarning, match=r"different voxel sizes \(\(50.0, 50.0, 50.0\) nm against \(0.1, 0.05, 0.05\) um"):
        scores(truth, truth.copy().assign_attrs(voxel_size=(0.1, 0.05, 0.05), unit="um"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 50 nm is 0.05 µm: the same grid
        scores(truth, truth.copy().assign_attrs(voxel_size=(0.05, 0.05, 0.05), unit="µm"))


def test_every_score_states_its_unit_and_what_it_is(pair):
    """iou, dice, precision, recall, support, accuracy and the confusion matrix had `units` but
    no `long_name` (CF): metrics.nc named none of them."""
    truth, pred = pair
    for ds in (scores(truth, pred), agreement([pred, truth], truth=truth), confusion(truth, pred).to_dataset()):
        for name, var in ds.data_vars.items():
            assert var.attrs.get("units") and var.attrs.get("long_name"), name


def test_phases_named_in_other_case_are_matched():
    """A reference naming the phases in other case ("pore", "cbd", "nmc" against a segmentation's
    "Pore", "CBD", "NMC"; in another order too) is the same phases, each its one case variant
    (as a phase asked for by name): scored by name, not refused; other phases still are."""
    rng = np.random.default_rng(0)
    v = rng.integers(0, 3, (8, 9, 10)).astype(np.uint8)
    pred = make_volume(v, phases=["Pore", "CBD", "NMC"])
    truth = make_volume(np.array([1, 2, 0], np.uint8)[v], phases=["nmc", "pore", "cbd"])  # other order and case
    s = scores(truth, pred)
    assert list(s.phase.values) == ["Pore", "CBD", "NMC"] and np.all(s.iou.values == 1.0)
    a = agreement([pred, truth], truth=truth)
    assert float(a.mean_differing_fraction) == 0.0 and np.all(a.iou.values == 1.0)
    with pytest.raises(InputError, match="name the same phases"):
        scores(make_volume(v, phases=["pore", "cbd", "active"]), pred)
