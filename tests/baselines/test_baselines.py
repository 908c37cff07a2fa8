"""Classical segmenters: equal to scikit-image where defined, chunking-invariant, recover a phantom."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage.filters import threshold_multiotsu

import bigseg.baselines as bb
from bigseg.errors import InputError
from bigseg.io import DEFAULT_PHASES

from ._phantom import iou, phantom

CHUNKS = [(17, 23, 30), (9, 56, 11), 64]


@pytest.fixture(scope="module")
def ph():
    return phantom((40, 48, 56), seed=0)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_threshold_equals_skimage_multiotsu(ph, chunks):
    truth, grey = ph
    out = bb.threshold(da.from_array(grey, chunks=chunks), classes=3)
    th = threshold_multiotsu(grey, classes=3)
    np.testing.assert_allclose(out.attrs["thresholds"], th, rtol=1e-12)
    lab = out.values
    assert lab.dtype == np.uint8 and out.attrs["phases"] == DEFAULT_PHASES
    np.testing.assert_array_equal(lab, np.digitize(grey, bins=th, right=True))


def test_threshold_integer_volume_and_four_classes():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.normal(m, 12, 4000) for m in (40, 90, 150, 200)]).clip(0, 255).astype(np.uint8)
    a = rng.permutation(a).reshape(16, 25, 40)
    out = bb.threshold(da.from_array(a, chunks=(5, 7, 9)), classes=4)
    th = threshold_multiotsu(a, classes=4)
    np.testing.assert_array_equal(out.attrs["thresholds"], th)
    np.testing.assert_array_equal(out.values, np.digitize(a, bins=th, right=True))
    assert out.attrs["phases"] == ["phase0", "phase1", "phase2", "phase3"]
    wide = (a.astype(np.uint16) * 200)  # > 256 distinct levels: 256 float bins, thresholds near 200x
    th_wide = bb.threshold(da.from_array(wide, chunks=7), classes=4).attrs["thresholds"]
    np.testing.assert_allclose(th_wide, np.asarray(th) * 200, atol=2 * 255 * 200 / 256)


@pytest.mark.parametrize("method", ["threshold", "watershed"])
def test_grey_value_at_a_threshold_stays_in_the_class_below(method):
    # scikit-image's threshold is the last grey value of the lower class: an 8-bit image of three
    # grey values must come back as exactly those three classes (plain digitize emptied class 0)
    truth = np.random.default_rng(3).integers(0, 3, (12, 20, 24)).astype(np.uint8)
    grey = np.array([10, 120, 230], np.uint8)[truth]
    assert list(threshold_multiotsu(grey, classes=3)) == [10, 120]
    out = getattr(bb, method)(da.from_array(grey, chunks=(5, 7, 9)), classes=3)
    np.testing.assert_array_equal(out.values, truth)

# IoU floors on the phantom (stated, checked): pore, cbd, active
FLOORS = {
    "threshold": (0.8, 0.65, 0.85),
    "kmeans": (0.75, 0.45, 0.55),
    "watershed": (0.75, 0.55, 0.85),
    "watershed_generous": (0.8, 0.65, 0.85),
}


@pytest.mark.parametrize("method", list(FLOORS))
def test_baselines_recover_phantom_phases(ph, method):
    truth, grey = ph
    d = da.from_array(grey, chunks=(17, 23, 30))
    if method == "threshold":
        out = bb.threshold(d)
    elif method == "kmeans":
        out = bb.kmeans(d, sample=50_000)
    elif method == "watershed":
        out = bb.watershed(d, window="conservative")
    else:
        out = bb.watershed(d, window="generous")
    assert out.attrs["phases"] == DEFAULT_PHASES
    lab = out.values
    assert lab.dtype == np.uint8 and lab.shape == truth.shape
    scores = [iou(truth, lab, k) for k in range(3)]
    assert all(s >= f for s, f in zip(scores, FLOORS[method])), (method, scores)


@pytest.mark.parametrize("sample", [10**7, 5_000], ids=["every-voxel", "subsample"])
def test_kmeans_chunking_invariant(ph, sample):
    """The subsample is drawn by position and fitted in one order: the same labels for any chunking."""
    _, grey = ph
    a = bb.kmeans(da.from_array(grey, chunks=(17, 23, 30)), sample=sample)
    b = bb.kmeans(da.from_array(grey, chunks=64), sample=sample)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.attrs["centres"] == b.attrs["centres"]
    other = bb.kmeans(da.from_array(grey, chunks=64), sample=sample, seed=1)  # the seed still draws another sample
    assert sample > grey.size or other.attrs["centres"] != b.attrs["centres"]


@pytest.mark.parametrize("method", ["kmeans", "watershed"])
@pytest.mark.parametrize("dtype, offset", [(np.uint32, 2**31), (np.int64, 2**40), (np.float64, 1e9)])
def test_grey_values_float32_would_round_segment_as_their_differences(method, dtype, offset):
    """Offset-binary uint32 (2**31 + k), int64 or float64 far from 0: features and seeds made in
    float32 moved 2**31 + k by up to 128 (k-means agreed on a third of the voxels with the same
    scan without the offset, the watershed on half)."""
    _, grey = phantom((24, 28, 32), seed=1)
    u2 = np.round(np.clip(grey, 0, None) * 20000).astype(np.uint16)
    shifted = u2.astype(dtype) + dtype(offset)
    ref = getattr(bb, method)(da.from_array(u2, chunks=(12, 28, 17))).values
    out = getattr(bb, method)(da.from_array(shifted, chunks=(12, 28, 17))).values
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype, offset", [(np.uint32, 2**31), (np.float64, 1e9)])
def test_random_forest_features_keep_grey_values_float32_would_round(dtype, offset):
    """As k-means' and the watershed's: float32 features moved offset-binary uint32 (2**31 + k) or
    float64 far from 0 by up to 128; the forest now works on the grey values less one of them."""
    truth, grey = phantom((24, 28, 32), seed=1)
    u2 = np.round(np.clip(grey, 0, None) * 20000).astype(np.uint16)
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[::5, ::2, ::2] = truth[::5, ::2, ::2]
    kw = dict(n_estimators=5, sigmas=(0.7, 1.6))
    ref = bb.random_forest(da.from_array(u2, chunks=(12, 28, 17)), sparse, **kw).values
    out = bb.random_forest(da.from_array(u2.astype(dtype) + dtype(offset), chunks=(12, 28, 17)), sparse, **kw).values
    assert (out == ref).mean() > 0.999


def test_watershed_blockwise_close_to_whole_array(ph):
    _, grey = ph
    blockwise = bb.watershed(da.from_array(grey, chunks=(17, 23, 30))).values
    whole = bb.watershed(da.from_array(grey, chunks=grey.shape)).values
    assert (blockwise == whole).mean() >= 0.99


def test_random_forest_beats_multiotsu_on_cbd(ph):
    truth, grey = ph
    sparse = np.full(truth.shape, 255, np.uint8)
    rng = np.random.default_rng(5)
    for z in (8, 30):  # two annotated slices, 20 % of each
        m = rng.random(truth.shape[1:]) < 0.2
        sparse[z][m] = truth[z][m]
    d = da.from_array(grey, chunks=(17, 23, 30))
    rf = bb.random_forest(d, da.from_array(sparse, chunks=(20, 20, 20)), n_estimators=30, sigmas=(0.7, 1.6, 3.5))
    lab = rf.values
    assert rf.attrs["phases"] == DEFAULT_PHASES and lab.dtype == np.uint8
    otsu = bb.threshold(d).values
    rf_cbd, otsu_cbd = iou(truth, lab, 1), iou(truth, otsu, 1)
    assert rf_cbd >= 0.8
    assert rf_cbd > otsu_cbd + 0.05, (rf_cbd, otsu_cbd)
    assert all(iou(truth, lab, k) >= 0.85 for k in (0, 2))


def test_random_forest_is_in_the_graph_once_not_in_every_blocks_task(ph):
    """The fitted forest is one key that every block's prediction reads: a copy inside each task
    travels with each task to its worker (a default forest is tens of MB: 2.8 GB for the 64
    blocks of a 64^3 volume on a cluster)."""
    import cloudpickle
    import dask

    truth, grey = ph
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[::6] = truth[::6]
    rf = bb.random_forest(da.from_array(grey, chunks=(17, 23, 30)), sparse, n_estimators=5, sigmas=(0.7, 1.6))
    (opt,) = dask.optimize(rf.data)
    graph = dict(opt.__dask_graph__())
    whole = len(cloudpickle.dumps(graph))  # what is shared is pickled once here
    each = sum(len(cloudpickle.dumps(task)) for task in graph.values())  # as the scheduler sends them
    assert each < 1.5 * whole, (each, whole)


def test_feature_halo_makes_random_forest_chunking_invariant(ph):
    truth, grey = ph
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[20, ::3, ::3] = truth[20, ::3, ::3]
    kw = dict(n_estimators=10, sigmas=(1.0,), seed=3)
    a = bb.random_forest(da.from_array(grey, chunks=(17, 23, 30)), sparse, **kw).values
    b = bb.random_forest(grey, sparse, **kw).values
    np.testing.assert_array_equal(a, b)
    # more labels than max_samples: the voxels kept are drawn by position, the same for any chunking
    dense = np.full(truth.shape, 255, np.uint8)
    dense[::4] = truth[::4]
    few = bb.random_forest(da.from_array(grey, chunks=(17, 23, 30)), da.from_array(dense, chunks=(9, 40, 11)),
                           max_samples=500, **kw)
    assert abs(few.attrs["n_training_voxels"] - 500) < 100
    np.testing.assert_array_equal(few.values, bb.random_forest(grey, dense, max_samples=500, **kw).values)
    # the same annotations as napari/ilastik export them (0 = not annotated, classes from 1)
    exported = np.where(sparse == 255, 0, sparse + 1).astype(np.uint16)
    c = bb.random_forest(grey, da.from_array(exported, chunks=(17, 23, 30)), unlabelled=0, **kw).values
    np.testing.assert_array_equal(c, b)
    with pytest.warns(UserWarning, match="value 0 fills .* % of them: each of those voxels trains as phase 0.*unlabelled=0"):
        with pytest.raises(InputError, match=r"values 0, 1, 2 \(phases .*\) or 255 \(unlabelled\)\. Got \[3\] instead; "
                                             r"if 0 marks the unannotated voxels.*unlabelled=0"):
            bb.random_forest(grey, exported, **kw)  # read as 255-convention: refused, as train refuses it
    stray = exported.copy()
    stray[20, 0, :2] = (9, 255)  # said as given, not as moved down by `unlabelled=0` (8, 254)
    with pytest.raises(InputError, match=r"values 1, 2, 3 \(phases \['pore', 'cbd', 'active'\]\) or 0 \(unlabelled\)\. "
                                         r"Got \[9, 255\] instead\.$"):
        bb.random_forest(grey, stray, unlabelled=0, **kw)
    with pytest.warns(UserWarning, match="`unlabelled`=0 marks no voxel"):
        bb.random_forest(grey, truth.astype(np.uint8) + 1, unlabelled=0, **kw)  # dense, from 1: nothing marked 0


def test_multiscale_features_blockwise_exact():
    from bigseg.kernels.features import feature_halo, multiscale_features
    from bigseg.ops import map_overlap_exact

    g = np.random.default_rng(2).random((20, 22, 24)).astype(np.float32)
    whole = multiscale_features(g, (0.7, 1.6))
    for i in range(whole.shape[0]):
        blk = map_overlap_exact(lambda b, i=i: multiscale_features(b, (0.7, 1.6))[i], da.from_array(g, chunks=7),
                                feature_halo((0.7, 1.6)), dtype=np.float32).compute()
        np.testing.assert_allclose(blk, whole[i], rtol=1e-5, atol=1e-5)


def test_bad_input():
    grey = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    labels = np.full(grey.shape, 255, np.uint8)
    labels[0, 0, :4] = [0, 1, 0, 1]
    with pytest.raises(InputError, match="shape"):
        bb.random_forest(grey, labels[:5])
    with pytest.raises(InputError, match=r"no(ne)? .*'active'|\['active'\]"):
        bb.random_forest(grey, labels, phases=["pore", "cbd", "active"])
    with pytest.raises(InputError, match="labelled voxels"):
        bb.random_forest(grey, np.full(grey.shape, 255, np.uint8))
    with pytest.raises(InputError, match="integers"):
        bb.random_forest(grey, labels.astype(np.float32))
    with pytest.raises(InputError, match="`classes`"):
        bb.threshold(grey, classes=1)
    with pytest.raises(InputError, match="`window`"):
        bb.watershed(grey, window="wide")
    with pytest.raises(InputError, match="`sigmas`"):
        bb.random_forest(grey, labels, sigmas=(1.0, -1.0))
    with pytest.raises(InputError, match="`seed`.*-1"):  # was scikit-learn's traceback, after the passes
        bb.kmeans(grey, seed=-1)
    with pytest.raises(InputError, match="`seed`.*-1"):
        bb.random_forest(grey, labels, seed=-1)
    bad = grey.copy()
    bad[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="1 NaN"):
        bb.threshold(bad)
    with pytest.raises(InputError, match="1 NaN"):
        bb.kmeans(bad)
    # the options are refused before the volume's passes (NaN would be found by one)
    for nbins in (2.5, "a", -5, 0, 2):
        with pytest.raises(InputError, match=f"`nbins`.*Got {nbins!r}"):
            bb.threshold(bad, nbins=nbins)
    with pytest.raises(InputError, match="`nbins` to be at least `classes` \\(4\\)"):
        bb.watershed(bad, classes=4, nbins=3)
    with pytest.raises(InputError, match="`nbins`"):
        bb.multiotsu_thresholds(bad, nbins=1)
    with pytest.raises(InputError, match="`sigmas`.*'1, 2'"):
        bb.random_forest(bad, labels, sigmas="1, 2")
    with pytest.raises(InputError, match="`seed`"):
        bb.kmeans(bad, seed=-1)


def test_absurd_counts_are_refused_before_the_volumes_passes():
    """nbins=10**12 and n_estimators=10**12 were accepted, then failed or hung after the passes
    over the volume (a histogram of 10**12 bins; a forest of 10**12 trees); float-typed counts stay refused."""
    from bigseg.baselines._common import MAX_NBINS
    from bigseg.baselines._forest import MAX_ESTIMATORS

    bad = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    bad[1, 1, 1] = np.nan  # found by a pass over the volume: the options are refused before it
    labels = np.full(bad.shape, 255, np.uint8)
    labels[0, 0, :3] = [0, 1, 2]
    for calls, name, most in ((lambda v: bb.threshold(bad, nbins=v), "nbins", MAX_NBINS),
                              (lambda v: bb.watershed(bad, nbins=v), "nbins", MAX_NBINS),
                              (lambda v: bb.random_forest(bad, labels, n_estimators=v), "n_estimators", MAX_ESTIMATORS)):
        for n in (most + 1, 10**12):
            with pytest.raises(InputError, match=f"^Expected `{name}` to be at most {most:,}. Got {n} instead.$"):
                calls(n)
        for n in (256.0, True):
            with pytest.raises(InputError, match=f"^Expected `{name}` to be a positive integer. Got {n!r} instead.$"):
                calls(n)


def test_a_multi_otsu_search_of_years_is_refused_before_the_volumes_passes():
    """classes=10 over the default 256 bins (C(256, 9) ~ 10**16 placements of the thresholds for
    scikit-image to try) was accepted, then ran for years; 3 classes over 2**16 bins took minutes."""
    from math import comb

    from bigseg.baselines._common import MAX_PLACEMENTS

    bad = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    bad[1, 1, 1] = np.nan  # found by a pass over the volume: the options are refused before it
    for call in (bb.threshold, bb.watershed):
        with pytest.raises(InputError, match=r"for 10 classes at most 39 bins. Got nbins=256 for 10 classes "):
            call(bad, classes=10)
        with pytest.raises(InputError, match="for 3 classes at most 23,170 bins. Got nbins=65536"):
            call(bad, nbins=2**16)
    assert comb(39, 9) <= MAX_PLACEMENTS < comb(40, 9) and comb(23170, 2) <= MAX_PLACEMENTS < comb(23171, 2)
    grey = np.random.default_rng(0).permutation(np.linspace(0, 1, 1320, dtype=np.float32)).reshape(10, 11, 12)
    assert len(np.unique(bb.threshold(grey, classes=254).values)) == 254  # C(256, 253) placements: fine


def test_forest_takes_one_number_as_one_scale():
    grey = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    labels = np.full(grey.shape, 255, np.uint8)
    labels[0, :5], labels[0, 5:], labels[1] = 0, 1, 2
    one = bb.random_forest(grey, labels, sigmas=1.5, seed=0)
    assert one.attrs["sigmas"] == [1.5]
    np.testing.assert_array_equal(one.values, bb.random_forest(grey, labels, sigmas=(1.5,), seed=0).values)


def test_forest_asks_for_the_phases_of_a_fourth_value_in_labels_marking_255():
    # 255 marks the unannotated voxels, so a value 3 is a fourth phase: the hint was `unlabelled=0`
    grey = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    labels = np.full(grey.shape, 255, np.uint8)
    labels[0, :5], labels[0, 5:], labels[1], labels[2] = 0, 1, 2, 3
    with pytest.raises(InputError, match=r"Got \[3\] instead; the labels mark unannotated voxels 255, so each value is "
                                         r"a phase: pass `phases` with a name for each of the 4 values 0\.\.3\.$"):
        bb.random_forest(grey, labels, seed=0)
    four = bb.random_forest(grey, labels, phases=["pore", "cbd", "active", "crack"], seed=0)
    assert four.attrs["phases"] == ["pore", "cbd", "active", "crack"]


def test_forest_asks_for_the_phases_of_two_class_labels():
    # labels 0/1 only (pore / solid): the three default phases miss the third, say how to name two
    grey = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    labels = np.full(grey.shape, 255, np.uint8)
    labels[0, :5], labels[0, 5:] = 0, 1
    with pytest.raises(InputError, match=r"Got none for \['active'\] .* if only the 2 classes labelled 0\.\.1 are "
                                         r"meant, name them, e\.g\. phases=\['phase0', 'phase1'\]\.$"):
        bb.random_forest(grey, labels, seed=0)
    two = bb.random_forest(grey, labels, phases=["pore", "solid"], seed=0)
    assert two.attrs["phases"] == ["pore", "solid"]
    named = labels.copy()
    named[1] = 2
    named[named == 1] = 255  # phases named by the labels' values: cbd missing in the middle, no hint
    with pytest.raises(InputError, match=r"Got none for \['cbd'\] \(counts .*\) instead\.$"):
        bb.random_forest(grey, named, seed=0)

def test_synthetic_electrode():
    synth = pytest.importorskip("bigseg.synth")
    truth = synth.electrode((48, 48, 48), seed=1, chunks=24)
    grey = synth.xct(truth, seed=1)
    t = truth.values
    otsu = bb.threshold(grey)
    lab = otsu.values
    assert otsu.attrs["phases"] == DEFAULT_PHASES
    assert iou(t, lab, 2) >= 0.6 and iou(t, lab, 0) >= 0.5
    sparse = np.full(t.shape, 255, np.uint8)
    rng = np.random.default_rng(0)
    for z in (10, 24, 38):
        m = rng.random(t.shape[1:]) < 0.25
        sparse[z][m] = t[z][m]
    rf = bb.random_forest(grey, sparse, n_estimators=30, sigmas=(0.7, 1.6, 3.5)).values
    assert iou(t, rf, 1) > iou(t, lab, 1)
    assert iou(t, rf, 2) >= 0.7


def test_series_frame_by_frame():
    """Each scan of a (t, z, y, x) series is thresholded / clustered / flooded on its own (its
    own histogram): a scan with another grey scale gets the same labels; the random forest
    trains once on the labels of all frames (here only frame 1 is labelled)."""
    truth, grey = phantom((20, 28, 24), seed=5)
    series = da.from_array(np.stack([grey, 2.5 * grey + 3.0]), chunks=(1, 9, 14, 11))
    for fn in (bb.threshold, bb.kmeans, bb.watershed):
        out = fn(series)
        assert out.dims == ("t", "z", "y", "x")
        a, b = out.values
        np.testing.assert_array_equal(a, fn(series[0]).values)  # the same chunking
        assert (a == b).mean() > 0.995, fn.__name__  # k-means samples differ slightly per scale
    th = bb.threshold(series).attrs["thresholds"]
    assert len(th) == 2 and th[1][0] == pytest.approx(2.5 * th[0][0] + 3.0, rel=1e-3)
    same = da.from_array(np.stack([grey, grey]), chunks=(1, 9, 14, 11))
    sparse = np.full((2, *truth.shape), 255, np.uint8)
    sparse[1, ::4] = truth[::4]  # frame 0 has no labels at all
    rf = bb.random_forest(same, sparse, n_estimators=10)
    one = bb.random_forest(same[1], sparse[1], n_estimators=10)
    np.testing.assert_array_equal(rf.values[0], one.values)
    np.testing.assert_array_equal(rf.values[1], one.values)
    assert rf.attrs["n_training_voxels"] == one.attrs["n_training_voxels"]


def test_a_blank_scan_is_refused_by_name_not_by_scikit_image():
    from bigseg import baselines
    from bigseg.errors import InputError

    for method in (baselines.threshold, baselines.watershed, baselines.kmeans):  # k-means wrote one class
        with pytest.raises(InputError, match="at least 3 distinct grey values for 3 classes. Got 1"):
            method(np.zeros((6, 7, 8), np.float32))
    two = np.zeros((6, 7, 8), np.uint16)
    two[3:] = 9
    with pytest.raises(InputError, match="Got 2 in the k-means sample of 336 voxels"):
        baselines.kmeans(two)


def test_kmeans_labels_do_not_depend_on_the_threads_of_the_fitting_process():
    # the fit runs where the graph is built: a LocalCluster's client (OMP_NUM_THREADS=1) and a
    # many-core laptop gave centres apart in the 4th digit and 29 of 110 592 voxels apart
    from threadpoolctl import threadpool_limits

    from bigseg import baselines, synth

    img = synth.xct(synth.electrode((24, 28, 32), seed=1), seed=1).values
    free = baselines.kmeans(img)
    with threadpool_limits(limits=1):
        one = baselines.kmeans(img)
    assert free.attrs["centres"] == one.attrs["centres"]
    np.testing.assert_array_equal(free.values, one.values)


def test_kmeans_says_when_outliers_take_clusters_of_their_own():
    """One voxel of 1e6 in a 32³ scan took two of the three k-means clusters: all three phases in
    one class (accuracy 0.72 -> 0.15), silently, where multi-Otsu refuses such a range. Warned
    now, and the clip the warning asks for restores the segmentation."""
    import warnings

    from bigseg import synth

    lab = synth.electrode((32, 32, 32), seed=1, chunks=16)
    img = synth.xct(lab, seed=1).values
    hot = img.copy()
    hot[0, 0, 0] = 1e6
    with pytest.warns(UserWarning, match=r"k-means gave 2 of its 3 clusters fewer than 0\.1 % of the sampled voxels "
                                         r"\(\[\d+, \d, \d\] of 32768\).*Clip the volume's grey values"):
        bb.kmeans(hot, progress=False)
    with pytest.warns(UserWarning, match="k-means gave 2") as told:  # a series: at this line still (was bigseg's)
        bb.kmeans(np.stack([hot, img]), progress=False)
    assert [w.filename for w in told] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = bb.kmeans(img, progress=False).values
        clipped = bb.kmeans(np.clip(hot, *np.percentile(hot, [0.01, 99.99])), progress=False).values
    assert (clipped == lab.values).mean() > 0.65 and abs((clipped == clean).mean() - 1) < 0.05


def test_forest_and_training_are_told_how_to_map_grey_level_masks():
    # labels drawn in an image editor and saved as grey levels (0 / 128 / 192, 255 unannotated)
    grey = np.random.default_rng(0).random((10, 16, 16)).astype(np.float32)
    labels = np.full(grey.shape, 255, np.uint8)
    labels[0, :5], labels[0, 5:], labels[1] = 0, 128, 192
    hint = (r"Got \[128, 192\] instead; 0, 128, 192 look like one grey level per phase \(a mask saved as an image\): "
            r"map them to 0\.\.2 first, e\.g\. lut = np\.full\(256, 255, np\.uint8\); lut\[\[0, 128, 192\]\] = "
            r"\[0, 1, 2\]; labels = lut\[mask\] \(255 stays unlabelled\)\.$")
    with pytest.raises(InputError, match=hint):
        bb.random_forest(grey, labels, seed=0)
    import bigseg

    with pytest.raises(InputError, match=hint):
        bigseg.train(grey, labels, epochs=1)


def test_a_seed_beyond_scikit_learns_range_is_refused_before_the_passes():
    """kmeans(seed=2**40) passed the check, ran the passes over the volume and then failed with
    scikit-learn's InvalidParameterError ('random_state' ... [0, 4294967295])."""
    grey = np.full((8, 8, 8), np.nan, np.float32)  # a pass over the data would refuse the NaN first
    labels = np.full(grey.shape, 255, np.uint8)
    for call in (lambda: bb.kmeans(grey, seed=2**40), lambda: bb.random_forest(grey, labels, seed=2**32)):
        with pytest.raises(InputError, match=r"Expected `seed` in \[0, 2\*\*32\) \(scikit-learn's random_state\)"):
            call()
