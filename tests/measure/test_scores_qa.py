"""Scores, confusion and agreement against scikit-learn and MONAI on small volumes with awkward
chunking, unlabelled voxels, absent phases and label volumes that name their phases otherwise."""

from __future__ import annotations

import itertools
import re

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score, precision_score, recall_score

from bigseg import measure
from bigseg.errors import InputError

SHAPE = (13, 17, 19)
CHUNKS = [(7, 5, 11), (13, 17, 19), (1, 17, 4)]
PHASES = ["pore", "cbd", "active"]
REVERSED = ["active", "cbd", "pore"]


def _random_pair(seed: int = 0, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """(truth, pred) uint8 in 0..2 with ~10 % unlabelled (255) voxels in each."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, shape).astype(np.uint8)
    pred = np.where(rng.random(shape) < 0.6, truth, rng.integers(0, 3, shape)).astype(np.uint8)
    truth[rng.random(shape) < 0.1] = 255
    pred[rng.random(shape) < 0.1] = 255
    return truth, pred


def _named(a: np.ndarray, phases: list[str] | None, chunks=(7, 5, 11)) -> xr.DataArray:
    dims = ("t", "z", "y", "x")[-a.ndim:]
    chunks = ((1,) if a.ndim == 4 else ()) + tuple(chunks)
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=dims, attrs={} if phases is None else {"phases": phases})


def _sklearn_scores(truth: np.ndarray, pred: np.ndarray, k: int = 3) -> dict[str, np.ndarray]:
    """Scores over the labelled truth voxels; a prediction of 255 there is a miss (a class of its own)."""
    m = truth != 255
    t, p = truth[m], pred[m]
    kw = {"labels": list(range(k)), "average": None}  # IoU and Dice: callers have no phase absent from both
    nan = {**kw, "zero_division": np.nan}
    return {"iou": jaccard_score(t, p, **kw), "dice": f1_score(t, p, **kw), "precision": precision_score(t, p, **nan),
            "recall": recall_score(t, p, **nan), "accuracy": float((t == p).mean())}


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
def test_confusion_and_scores_equal_scikit_learn(chunks):
    truth, pred = _random_pair(1)
    cm = measure.confusion(da.from_array(truth, chunks=chunks), da.from_array(pred, chunks=chunks))
    m = truth != 255
    ref = confusion_matrix(truth[m], pred[m], labels=[0, 1, 2, 255])
    np.testing.assert_array_equal(cm.values, ref[:3, :3])
    assert cm.attrs["unlabelled_predictions"] == ref[:3, 3].sum()
    assert cm.attrs["ignored_voxels"] == (~m).sum()
    sc = measure.scores(da.from_array(truth, chunks=chunks), da.from_array(pred, chunks=chunks))
    for key, want in _sklearn_scores(truth, pred).items():
        np.testing.assert_allclose(sc[key].values, want, rtol=1e-12, err_msg=key)


def test_iou_and_dice_equal_monai():
    torch = pytest.importorskip("torch")
    from monai.metrics import compute_iou, compute_dice

    truth, pred = _random_pair(2)
    m = truth != 255  # MONAI has no ignore value: the labelled truth voxels only, a 255 prediction in no class
    onehot = [torch.from_numpy(np.stack([(x[m] == c) for c in range(3)])[None].astype(np.float32))
              for x in (pred, truth)]
    sc = measure.scores(da.from_array(truth, chunks=(7, 5, 11)), da.from_array(pred, chunks=(7, 5, 11)))
    np.testing.assert_allclose(sc.iou.values, compute_iou(*onehot, include_background=True)[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(sc.dice.values, compute_dice(*onehot, include_background=True)[0].numpy(), rtol=1e-6)


def test_a_phase_absent_from_both_is_nan_and_said_and_absent_from_one_is_scored_as_scikit_learn():
    truth, pred = _random_pair(3)
    t = np.where(truth == 1, 0, truth).astype(np.uint8)  # no cbd in the truth
    both = measure.scores(_named(t, None), _named(np.where(pred == 1, 2, pred).astype(np.uint8), None))
    assert np.isnan(both[["iou", "dice", "precision", "recall"]].sel(phase="cbd").to_array()).all()
    assert "'cbd' is absent from truth and prediction" in both.attrs["note"]
    only_pred = measure.scores(_named(t, None), _named(pred, None))  # cbd predicted, absent from the truth
    ref = _sklearn_scores(t, pred)
    for key in ("iou", "dice", "precision", "recall"):
        np.testing.assert_allclose(only_pred[key].values, ref[key], rtol=1e-12, err_msg=key)
    assert only_pred.iou.sel(phase="cbd") == 0 and np.isnan(only_pred.recall.sel(phase="cbd"))
    assert "'cbd' is absent from the truth" in only_pred.attrs["note"]


def test_phases_named_in_another_order_are_matched_by_name():
    truth, pred = _random_pair(4)
    swapped = np.where(pred == 255, 255, 2 - pred).astype(np.uint8)  # the same segmentation, values reversed
    want = measure.scores(_named(truth, PHASES), _named(pred, PHASES))
    got = measure.scores(_named(truth, PHASES), _named(swapped, REVERSED))
    assert list(got.phase.values) == REVERSED  # in the prediction's order
    for key in ("iou", "dice", "precision", "recall", "support", "accuracy"):
        np.testing.assert_allclose(got[key].sel(phase=PHASES) if "phase" in got[key].dims else got[key],
                                   want[key], rtol=1e-12, err_msg=key)
    cm = measure.confusion(_named(np.where(truth == 255, 255, 2 - truth).astype(np.uint8), REVERSED),
                           _named(pred, PHASES))
    np.testing.assert_array_equal(cm.values, measure.confusion(_named(truth, PHASES), _named(pred, PHASES)).values)
    assert list(cm.truth_phase.values) == list(cm.pred_phase.values) == PHASES


def test_a_truth_that_names_its_phases_names_an_unnamed_prediction():
    truth, pred = _random_pair(5)
    sc = measure.scores(_named(truth, REVERSED), pred)  # value 0 is active in both
    assert list(sc.phase.values) == REVERSED
    np.testing.assert_allclose(sc.iou.values, _sklearn_scores(truth, pred)["iou"], rtol=1e-12)
    cm = measure.confusion(truth, _named(pred, REVERSED))
    assert list(cm.truth_phase.values) == REVERSED


@pytest.mark.parametrize("other", [["a", "b", "c"], ["pore", "cbd", "active", "binder"], "mask"])
def test_other_phase_names_are_refused_unless_phases_is_given(other):
    truth, pred = _random_pair(6)
    if other == "mask":  # a boolean mask (background / foreground) is no 3-phase volume
        p, named_as = _named(pred == 2, None), ["background", "foreground"]
    else:
        p, named_as = _named(pred, other), other
    for fn in (measure.scores, measure.confusion):
        with pytest.raises(InputError, match=rf"name the same phases.*{PHASES}.*`truth`.*{named_as}.*`phases`"):
            fn(_named(truth, PHASES), p)
    if other != "mask":
        forced = measure.scores(_named(truth, PHASES), p, phases=PHASES)  # by label value
        np.testing.assert_allclose(forced.iou.values, _sklearn_scores(truth, pred)["iou"], rtol=1e-12)


@pytest.mark.parametrize("other", [(13, 17, 18), (13, 19, 17), (1, 13, 17, 19)], ids=str)
def test_other_shapes_are_refused(other):
    truth, pred = _random_pair(7)
    bad = np.resize(pred, other)
    for fn in (measure.scores, measure.confusion):
        said = rf"`pred` to have the shape of `truth` \(13, 17, 19\)\. Got {re.escape(str(other))}"
        with pytest.raises(InputError, match=said):
            fn(truth, bad)


def test_series_scored_scan_by_scan_as_scikit_learn():
    truth, pred = _random_pair(8, (3, 9, 11, 13))
    sc = measure.scores(_named(truth, None, (5, 4, 7)), _named(pred, None, (9, 11, 13)))
    assert sc.iou.dims == ("t", "phase")
    for t in range(3):
        for key, want in _sklearn_scores(truth[t], pred[t]).items():
            np.testing.assert_allclose(sc[key].isel(t=t).values, want, rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("chunks", CHUNKS[:2], ids=str)
def test_agreement_equals_numpy_and_scikit_learn(chunks):
    truth, _ = _random_pair(9)
    segs = [_random_pair(10 + i)[1] for i in range(4)]
    ds = measure.agreement([da.from_array(s, chunks=chunks) for s in segs], truth=da.from_array(truth, chunks=chunks))
    fr = np.array([[np.sum(s == p) / np.sum(s != 255) for p in range(3)] for s in segs])
    np.testing.assert_allclose(ds.volume_fraction.values, fr, rtol=1e-12)
    np.testing.assert_allclose(ds.fraction_std.values, fr.std(axis=0, ddof=1), rtol=1e-12)
    diff = []
    for a, b in itertools.combinations(range(len(segs)), 2):
        both = (segs[a] != 255) & (segs[b] != 255)
        diff.append(np.sum(both & (segs[a] != segs[b])) / both.sum())
    np.testing.assert_allclose(ds.differing_fraction.values, diff, rtol=1e-12)
    np.testing.assert_allclose(ds.mean_differing_fraction.values, np.mean(diff), rtol=1e-12)
    for i, s in enumerate(segs):
        for key, want in _sklearn_scores(truth, s).items():
            np.testing.assert_allclose(ds[key].isel(segmentation=i).values, want, rtol=1e-12, err_msg=key)


def test_agreement_matches_a_truth_named_in_another_order_by_name():
    truth, _ = _random_pair(11)
    segs = [_random_pair(12 + i)[1] for i in range(2)]
    rev = np.where(truth == 255, 255, 2 - truth).astype(np.uint8)
    want = measure.agreement([_named(s, PHASES) for s in segs], truth=_named(truth, PHASES))
    got = measure.agreement([_named(s, PHASES) for s in segs], truth=_named(rev, REVERSED))
    assert list(got.phase.values) == PHASES
    for key in ("iou", "dice", "precision", "recall", "accuracy"):
        np.testing.assert_allclose(got[key].values, want[key].values, rtol=1e-12, err_msg=key)
    # segmentations that name no phases take the truth's names, as scores does
    unnamed = measure.agreement(segs, truth=_named(truth, REVERSED))
    assert list(unnamed.phase.values) == REVERSED
    np.testing.assert_allclose(unnamed.iou.isel(segmentation=0).values, _sklearn_scores(truth, segs[0])["iou"])
    with pytest.raises(InputError, match="name the same phases"):
        measure.agreement([_named(s, PHASES) for s in segs], truth=_named(truth, ["a", "b", "c"]))


def test_agreement_matches_segmentations_named_in_another_order_by_name():
    """A segmentation storing the same phases in another order was refused (scores match them
    by name): its label values are now read in the first one's order."""
    truth, _ = _random_pair(21)
    segs = [_random_pair(22 + i)[1] for i in range(3)]
    want = measure.agreement([_named(s, PHASES) for s in segs], truth=_named(truth, PHASES))
    rev = np.where(segs[1] == 255, 255, 2 - segs[1]).astype(np.uint8)
    got = measure.agreement([_named(segs[0], PHASES), _named(rev, REVERSED), _named(segs[2], PHASES)],
                            truth=_named(truth, PHASES))
    assert list(got.phase.values) == PHASES
    for key in ("volume_fraction", "fraction_std", "differing_fraction", "mean_differing_fraction",
                "iou", "dice", "precision", "recall", "accuracy"):
        np.testing.assert_allclose(got[key].values, want[key].values, rtol=1e-12, err_msg=key)
    with pytest.raises(InputError, match=r"segmentations\[1\]"):
        measure.agreement([_named(segs[0], PHASES), _named(segs[1], ["a", "b", "c"])])


def test_agreement_mean_leaves_out_pairs_without_common_voxels():
    """Two segmentations labelling disjoint halves (255 elsewhere) have no voxel in common: their
    pair is NaN, and the mean over the pairs was NaN too."""
    a = np.random.default_rng(3).integers(0, 3, SHAPE).astype(np.uint8)
    left, right = a.copy(), a.copy()
    left[:, :, SHAPE[2] // 2:] = 255
    right[:, :, :SHAPE[2] // 2] = 255
    other = np.where(a == 0, 1, a).astype(np.uint8)
    ds = measure.agreement([da.from_array(x, chunks=(7, 5, 11)) for x in (left, right, other)])
    diff = ds.differing_fraction.values
    assert np.isnan(diff[0]) and np.isfinite(diff[1:]).all()
    np.testing.assert_allclose(float(ds.mean_differing_fraction), np.mean(diff[1:]), rtol=1e-12)


def test_two_boxes_cut_from_other_places_of_a_scan_are_warned_about():
    """Two crops of one shape from different places were scored against each other without a
    word (IoU 0.34 / 0.11 / 0.49 for boxes 4 voxels apart); now warned, as other voxel sizes
    are. Boxes at one place, and arrays that state no place, are not."""
    import warnings

    import bigseg

    lab = bigseg.synth.electrode((24, 20, 20), seed=1, chunks=10, voxel_size=50, unit="nm")
    a, b = lab.isel(z=slice(0, 20)), lab.isel(z=slice(4, 24))
    with pytest.warns(UserWarning, match=r"`truth` and `pred` have the same shape but lie at different places of the "
                                         r"scan \(first voxel at z, y, x = 0, 0, 0 voxels against 4, 0, 0 voxels\)"):
        measure.scores(a, b)
    with pytest.warns(UserWarning, match=r"`segmentations\[0\]` and `segmentations\[1\]` .* different places"):
        measure.agreement([b, a])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(measure.scores(b, b.copy()).accuracy) == 1.0
        measure.scores(a.values, b)  # a NumPy array states no place
        measure.scores(b, bigseg.synth.electrode((20, 20, 20), seed=1, chunks=10).isel(z=slice(0, 20)))  # in voxels


def test_labels_with_nan_for_unlabelled_voxels_are_told_how_to_mark_them():
    """`labels.where(mask)` leaves NaN floats: the error says how to mark those voxels (255) and
    the labels so marked are measured over the labelled voxels."""
    import bigseg

    lab = bigseg.synth.electrode((10, 12, 14), seed=2, chunks=5)
    keep = lab.z < 6
    holed = lab.where(keep)
    with pytest.raises(InputError, match=r"float\d\d instead; round or threshold the values first \(NaN marking "
                                         r"unlabelled voxels.*labels\.fillna\(255\)\.astype\('uint8'\), 255 = unlabelled"):
        measure.volume_fractions(holed)
    fixed = holed.fillna(255).astype("uint8")
    np.testing.assert_allclose(measure.volume_fractions(fixed).values,
                               measure.volume_fractions(lab.isel(z=slice(0, 6))).values)
