"""Classical segmenters against scikit-image / scikit-learn on the whole volume in memory, for
awkward chunkings; grey-level order of the classes; refusals before any pass over the data."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from dask.callbacks import Callback
from skimage.filters import threshold_multiotsu
from skimage.segmentation import watershed as sk_watershed
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier

import bigseg.baselines as bb
from bigseg.errors import InputError
from bigseg.kernels.features import multiscale_features

from ._phantom import phantom

CHUNKS = [(7, 5, 11), (24, 30, 33)]


@pytest.fixture(scope="module")
def ph():
    return phantom((24, 30, 33), seed=2)


class _CountTasks(Callback):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _pretask(self, key, dsk, state):
        self.n += 1


def _sobel(a: np.ndarray) -> np.ndarray:
    return np.sqrt(sum(ndi.sobel(a, axis=i, mode="reflect") ** 2 for i in range(a.ndim)))


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
def test_threshold_of_a_signed_integer_volume_equals_scikit_image(ph, chunks):
    _, grey = ph
    a = np.round(grey * 150 - 40).astype(np.int16)  # negative grey values, fewer than 256 of them
    out = bb.threshold(da.from_array(a, chunks=chunks))
    th = threshold_multiotsu(a, classes=3)
    np.testing.assert_array_equal(out.attrs["thresholds"], th)
    np.testing.assert_array_equal(out.values, np.digitize(a, th, right=True))


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
def test_kmeans_on_every_voxel_agrees_with_scikit_learn_on_the_whole_array(ph, chunks):
    _, grey = ph
    x = np.stack([grey.ravel(), _sobel(grey).ravel()], 1)
    xs = (x - x.mean(0)) / x.std(0)
    km = KMeans(3, n_init=4, random_state=0).fit(xs)
    ref = np.argsort(np.argsort(km.cluster_centers_[:, 0]))[km.labels_].reshape(grey.shape)
    out = bb.kmeans(da.from_array(grey, chunks=chunks), sample=grey.size, seed=0)
    # the same clusters; float32 features and another fitting order move a few boundary voxels
    assert (out.values == ref).mean() > 0.999
    np.testing.assert_allclose(np.sort(np.array(out.attrs["centres"])[:, 0]),
                               np.sort(km.cluster_centers_[:, 0] * x.std(0)[0] + x.mean(0)[0]), atol=1e-3)


@pytest.mark.parametrize("window", ["conservative", "generous"])
def test_watershed_equals_scikit_image_on_the_whole_array(ph, window):
    _, grey = ph
    out = bb.watershed(da.from_array(grey, chunks=CHUNKS[0]), window=window, sigma=1.0)
    th, bands = np.asarray(out.attrs["thresholds"]), np.asarray(out.attrs["bands"])
    np.testing.assert_allclose(th, threshold_multiotsu(grey, classes=3), rtol=1e-6)
    markers = np.digitize(grey, th, right=True).astype(np.int32) + 1
    for lo, hi in bands:
        markers[(grey > lo) & (grey < hi)] = 0
    ref = sk_watershed(_sobel(ndi.gaussian_filter(grey, 1.0, mode="reflect", truncate=4.0)), markers) - 1
    whole = bb.watershed(da.from_array(grey, chunks=CHUNKS[1]), window=window, sigma=1.0).values
    np.testing.assert_array_equal(whole, ref)
    assert (out.values == ref).mean() >= 0.99  # blockwise: flooded from the seeds within the halo


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
def test_random_forest_equals_scikit_learn_on_the_whole_array(ph, chunks):
    truth, grey = ph
    sparse = np.full(truth.shape, 255, np.uint8)
    rng = np.random.default_rng(0)
    for z in (4, 15):
        m = rng.random(truth.shape[1:]) < 0.2
        sparse[z][m] = truth[z][m]
    sigmas = (0.7, 1.6)
    f = multiscale_features(grey, sigmas).reshape(-1, grey.size)
    keep = sparse.ravel() != 255
    rf = RandomForestClassifier(n_estimators=8, random_state=3, min_samples_leaf=2)
    rf.fit(f[:, keep].T, sparse.ravel()[keep])
    ref = rf.predict(f.T).reshape(grey.shape)
    out = bb.random_forest(da.from_array(grey, chunks=chunks), sparse, sigmas=sigmas, n_estimators=8, seed=3)
    np.testing.assert_array_equal(out.values, ref)


@pytest.mark.parametrize("method", ["threshold", "kmeans", "watershed"])
def test_classes_follow_the_grey_levels_whatever_the_phases_are(ph, method):
    # phase 0 brightest, 1 darkest, 2 in between: label 0 must be the darkest (truth 1), and so on
    truth, _ = ph
    grey = (ndi.gaussian_filter(np.array([0.85, 0.1, 0.4], np.float32)[truth], 1.0)
            + np.random.default_rng(5).normal(0, 0.03, truth.shape).astype(np.float32))
    d = da.from_array(grey, chunks=(7, 5, 11))
    a = getattr(bb, method)(d, seed=0) if method == "kmeans" else getattr(bb, method)(d)
    lab = a.values
    means = [grey[lab == c].mean() for c in range(3)]
    assert means[0] < means[1] < means[2] and a.attrs["phases"] == ["pore", "cbd", "active"]
    # each truth phase mostly gets the label of its grey rank (k-means, whose Sobel feature sends
    # the thin middle phase to the clusters of high gradient, the darkest and the brightest)
    for phase, label in ((1, 0), (0, 2)) if method == "kmeans" else ((1, 0), (2, 1), (0, 2)):
        assert np.bincount(lab[truth == phase], minlength=3).argmax() == label
    np.testing.assert_array_equal(lab, a.values)  # deterministic


def test_random_forest_refuses_labels_of_another_shape_before_any_pass(ph):
    truth, grey = ph
    said = r"`labels` to have the shape of `vol` \(24, 30, 33\)"
    with _CountTasks() as counted, pytest.raises(InputError, match=said):
        bb.random_forest(da.from_array(grey, chunks=CHUNKS[0]), truth[:, :, :-1])
    assert counted.n == 0


def test_a_range_stretched_by_outliers_is_not_called_too_few_grey_values(ph):
    _, grey = ph
    a = np.round(grey.clip(0, 1) * 200).astype(np.uint16)  # ~200 grey levels
    a[0, 0, 0] = 65535  # one hot pixel: 256 bins over [0, 65535] put all the others in the first
    for method in (bb.threshold, bb.watershed):
        with pytest.raises(InputError, match=r"at least 3 of the 256 equal histogram bins.*Got 2 \(a few outliers"):
            method(da.from_array(a, chunks=CHUNKS[0]))
    clipped = bb.threshold(da.from_array(np.minimum(a, 255), chunks=CHUNKS[0]))
    np.testing.assert_array_equal(clipped.attrs["thresholds"], threshold_multiotsu(np.minimum(a, 255), classes=3))
