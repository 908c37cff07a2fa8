"""CuPy blocks (a volume filtered on a GPU worker) through the rest of bigseg, and training on
CUDA: each the same as on the host. Skipped without CuPy and a CUDA device (CI has none); run
on a GPU machine with ``scripts/gpu_check.sh``."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

cp = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")
try:
    if cp.cuda.runtime.getDeviceCount() < 1 or not torch.cuda.is_available():  # pragma: no cover - machine
        pytest.skip("no CUDA device", allow_module_level=True)
except Exception:  # pragma: no cover - no driver
    pytest.skip("no CUDA device", allow_module_level=True)

import bigseg  # noqa: E402
from bigseg import baselines, filters, infer, synth  # noqa: E402
from bigseg.io import make_volume  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def scan():
    lab = synth.electrode((24, 40, 44), seed=4, chunks=(24, 40, 44)).values
    img = synth.xct(lab, seed=4).values.astype(np.float32)
    return lab, img


def _on_gpu(a: np.ndarray, chunks=(11, 17, 23)):
    arr = da.from_array(a, chunks=chunks).map_blocks(cp.asarray, meta=cp.empty((0,) * a.ndim, a.dtype))
    return make_volume(arr, voxel_size=50, unit="nm")


def _on_host(a: np.ndarray, chunks=(11, 17, 23)):
    return make_volume(da.from_array(a, chunks=chunks), voxel_size=50, unit="nm")


def test_normalize_of_cupy_blocks(scan):
    _, img = scan
    gpu = filters.normalize(_on_gpu(img)).data.compute()
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(gpu), filters.normalize(_on_host(img)).values, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["threshold", "kmeans", "watershed"])
def test_classical_segmenters_on_cupy_blocks_give_host_labels(scan, method):
    _, img = scan
    fn = getattr(baselines, method)
    gpu = fn(_on_gpu(img)).data.compute()
    assert isinstance(gpu, np.ndarray) and gpu.dtype == np.uint8  # labels on the host, whatever the input
    np.testing.assert_array_equal(gpu, fn(_on_host(img)).values)


def test_predict_takes_cupy_blocks_through_dlpack(scan):
    _, img = scan
    host = infer.segment(_on_host(img), "default", device="cuda", autocast=None, probabilities=True)
    gpu = infer.segment(_on_gpu(img), "default", device="cuda", autocast=None, probabilities=True)
    np.testing.assert_allclose(gpu["probabilities"].values, host["probabilities"].values, atol=1e-5)
    np.testing.assert_array_equal(gpu["labels"].values, host["labels"].values)


def test_field_of_view_of_cupy_blocks(scan):
    # "auto" reads the fill from the columns' range, the outside is refilled with noise before
    # the model: both on CuPy blocks as on NumPy ones
    _, img = scan
    img = img.copy()
    yy, xx = np.mgrid[:img.shape[1], :img.shape[2]]
    img[:, (yy - 19.5) ** 2 + (xx - 21.5) ** 2 > 18 ** 2] = 0
    host = infer.segment(_on_host(img), "default", device="cuda", autocast=None, fov="auto", probabilities=True)
    gpu = infer.segment(_on_gpu(img), "default", device="cuda", autocast=None, fov="auto", probabilities=True)
    assert (host["labels"].values == 255).any()
    np.testing.assert_array_equal(gpu["labels"].values, host["labels"].values)
    np.testing.assert_allclose(gpu["probabilities"].values, host["probabilities"].values, atol=1e-5)


def test_default_model_on_cuda_matches_the_cpu(scan):
    lab, img = scan
    cpu = infer.segment(img, "default", device="cpu")["labels"].values
    exact = infer.segment(img, "default", device="cuda", autocast=None)["labels"].values
    assert (exact == cpu).mean() > 0.999  # float32 on both: sums in another order
    fast = infer.segment(img, "default", device="cuda")["labels"].values  # bf16/fp16 autocast
    assert (fast == cpu).mean() > 0.98
    iou = bigseg.measure.scores(lab, fast)["iou"].values
    assert iou.min() > 0.3


def test_save_volume_of_cupy_blocks(scan, tmp_path):
    _, img = scan
    path = bigseg.save_volume(_on_gpu(img), tmp_path / "g.ome.zarr", progress=False)
    np.testing.assert_array_equal(bigseg.open_volume(path).values, img)


def test_training_steps_on_cuda_with_amp(scan):
    lab, img = scan
    sparse = np.full_like(lab, 255)
    sparse[::4, 4:36, 4:40] = lab[::4, 4:36, 4:40]
    torch.manual_seed(0)
    m = bigseg.train(img, sparse, arch="lrcsnet", patch=(32, 32), arch_kwargs={"kernels": 8, "growth": 1.0}, epochs=3,
                     steps_per_epoch=20, lr=1e-2, lr_decay=0.5, batch_size=4, device="cuda", amp="auto", augment=False,
                     progress=False, seed=1)
    h = m.provenance["history"]
    assert len(h) == 3 and h[-1]["loss"] < h[0]["loss"]
    assert "(CUDA)" in m.provenance["hardware"]
