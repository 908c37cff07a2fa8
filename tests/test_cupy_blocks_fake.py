"""CuPy blocks through the host-side steps, on machines without a GPU: a FAKE ``cupy`` (NumPy
underneath) that, as real CuPy, refuses implicit conversion to NumPy (``np.asarray`` of a CuPy
array raises TypeError; ``.get()`` is the way to the host) and NumPy arrays mixed into its
operations. The real-CuPy tests (tests/test_gpu_paths.py) skip without a GPU, so a stray
``np.asarray(block)`` on a path they cover would only show on a GPU."""

from __future__ import annotations

import sys
import types

import dask
import dask.array as da
import numpy as np
import pytest
from numpy.lib.mixins import NDArrayOperatorsMixin

import bigseg
from bigseg import baselines, synth
from bigseg.io import make_volume


# ------------------------------------------------------------------------ FAKE cupy (test only)
def _unwrap(x, strict=True):
    if isinstance(x, FakeCupyArray):
        return x._a
    if strict and isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)} (fake cupy: a NumPy array mixed with CuPy ones)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(i, strict) for i in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, strict) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return FakeCupyArray(x)
    if isinstance(x, (tuple, list)):
        return type(x)(_wrap(i) for i in x)
    if isinstance(x, np.generic):  # CuPy reductions give 0-d arrays
        return FakeCupyArray(np.asarray(x))
    return x


class FakeCupyArray(NDArrayOperatorsMixin):
    """Stands for ``cupy.ndarray`` (its module is "cupy", as bigseg.ops.is_cupy reads it)."""

    __module__ = "cupy"

    def __init__(self, a):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def get(self):
        return self._a.copy()

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)

    def __len__(self):
        return len(self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value, strict=False)  # host to device is allowed

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)
        return lambda *a, **k: _wrap(attr(*_unwrap(a), **_unwrap(k)))


def _module_of(target, name):
    mod = types.ModuleType(name)

    def getattr_(attr):
        f = getattr(target, attr)
        if not callable(f) or isinstance(f, type):
            return f
        return lambda *a, **k: _wrap(f(*_unwrap(a), **_unwrap(k)))

    mod.__getattr__ = getattr_
    return mod


@pytest.fixture
def fake_cupy(monkeypatch):
    import scipy.ndimage

    cp = _module_of(np, "cupy")
    cp.ndarray = FakeCupyArray
    cp.asarray = lambda a, dtype=None: FakeCupyArray(np.array(_unwrap(a, strict=False), dtype=dtype))
    cp.asnumpy = lambda a: a.get()
    cupyx, cscipy = types.ModuleType("cupyx"), types.ModuleType("cupyx.scipy")
    cndi = _module_of(scipy.ndimage, "cupyx.scipy.ndimage")
    cupyx.scipy, cscipy.ndimage = cscipy, cndi
    for name, mod in [("cupy", cp), ("cupyx", cupyx), ("cupyx.scipy", cscipy), ("cupyx.scipy.ndimage", cndi)]:
        monkeypatch.setitem(sys.modules, name, mod)
    with dask.config.set(scheduler="synchronous"):
        yield cp


def test_the_fake_refuses_implicit_conversion(fake_cupy):
    a = fake_cupy.asarray(np.arange(4.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    assert bigseg.ops.is_cupy(a) and bigseg.ops.to_numpy(a + 1).tolist() == [1.0, 2.0, 3.0, 4.0]


# ----------------------------------------------------------------------------------- the checks
@pytest.fixture(scope="module")
def scan():
    lab = synth.electrode((12, 20, 22), seed=4, chunks=(12, 20, 22)).values
    img = synth.xct(lab, seed=4).values.astype(np.float32)
    return lab, img


def _volume(a, cp=None, chunks=(7, 11, 12)):
    arr = da.from_array(a, chunks=chunks)
    if cp is not None:
        arr = arr.map_blocks(cp.asarray, meta=cp.asarray(np.empty((0,) * a.ndim, a.dtype)))
    return make_volume(arr, voxel_size=50, unit="nm")


def test_kmeans_of_cupy_blocks(fake_cupy, scan):
    _, img = scan
    got = baselines.kmeans(_volume(img, fake_cupy), sample=2000).data.compute()  # was: np.asarray(block) in the sample
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, baselines.kmeans(_volume(img), sample=2000).values)


def test_random_forest_of_cupy_blocks(fake_cupy, scan):
    lab, img = scan
    sparse = np.full_like(lab, 255)
    sparse[::3] = lab[::3]
    kw = dict(sigmas=(1.0,), n_estimators=4)
    got = baselines.random_forest(_volume(img, fake_cupy), sparse, **kw).data.compute()  # was: np.asarray(block)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, baselines.random_forest(_volume(img), sparse, **kw).values)


@pytest.mark.parametrize("suffix", ["npy", "h5"])
def test_export_of_cupy_blocks(fake_cupy, scan, tmp_path, suffix):
    _, img = scan
    path = bigseg.io.export(_volume(img, fake_cupy), tmp_path / f"x.{suffix}", progress=False)  # was: np.asarray(slab)
    if suffix == "npy":
        np.testing.assert_array_equal(np.load(path), img)
    else:
        import h5py

        with h5py.File(path) as f:
            np.testing.assert_array_equal(f["exchange/data"][()], img)


def test_measurements_of_cupy_labels(fake_cupy, scan):
    # labels made on a GPU (e.g. thresholded CuPy blocks): measured on the host, as NumPy labels
    lab, _ = scan
    gpu = _volume(lab, fake_cupy)
    got = bigseg.measure.volume_fractions(gpu)  # was: np.ascontiguousarray(block) in the kernels
    np.testing.assert_array_equal(got.values, bigseg.measure.volume_fractions(_volume(lab)).values)
    np.testing.assert_array_equal(bigseg.measure.scores(lab, gpu)["iou"].values, np.ones(3))


def test_a_float16_median_of_cupy_blocks_is_the_hosts(fake_cupy, scan):
    # the host took float16 through float32 (scipy has no float16 kernels), CuPy blocks went as they were
    from bigseg import filters

    _, img = scan
    half = img.astype(np.float16)
    got = filters.median(_volume(half, fake_cupy), size=3).data.compute()
    np.testing.assert_array_equal(bigseg.ops.to_numpy(got), filters.median(_volume(half), size=3).values)
