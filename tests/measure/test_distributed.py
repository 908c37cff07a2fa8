"""The same exact numbers on a LocalCluster of processes (partials pickle; numba and caches per worker)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from ._measure_ref import faces_per_axis

import bigseg
from bigseg.kernels.metrics import mc_field_areas
from bigseg.measure import interfaces, particles, summary

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore")]


@pytest.mark.slow
def test_local_cluster_matches_in_memory(labels, tmp_path, capfd):
    """In-memory and stored labels on one cluster (a start and stop cost ~5 s here); stored:
    blocks read their halo'd regions from the store in the worker processes, the particle ids
    go through the scratch folder, the instance labels to the image."""
    lab = da.from_array(labels, chunks=(17, 23, 30))
    truth = np.roll(labels, 1, 0)
    image = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(labels.astype(np.float32), image, chunks=(17, 23, 30), progress=False)
    bigseg.save_labels(labels, image, phases=["pore", "cbd", "active"], chunks=(17, 23, 30), progress=False)
    stored = bigseg.open_volume(image / "labels" / "segmentation")
    with bigseg.connect("local", n_workers=2, dashboard=False, quiet=True):
        ds = summary(lab, truth=truth, progress=True)
        out, err = capfd.readouterr()
        assert "Completed" in err and "Completed" not in out  # bars on stderr: stdout stays the results'
        mc = interfaces(lab, method="marching_cubes")
        parts = particles(lab, split=True, max_diameter=12)
        comps = particles(lab, phase="cbd", split=False)
        mc_stored = interfaces(stored, method="marching_cubes")
        parts_stored = particles(stored, split=True, max_diameter=12, labels_to=image / "labels" / "particles")
    np.testing.assert_array_equal(ds.faces.values, faces_per_axis(labels, 3).sum(0))
    assert "iou" in ds
    whole = mc_field_areas(np.pad(labels, 1, mode="edge"), [(0,), (1,), (2,)])
    np.testing.assert_allclose(mc.phase_area.values, whole, rtol=1e-9)
    pd.testing.assert_frame_equal(parts, particles(labels, split=True, max_diameter=12), rtol=1e-9)
    pd.testing.assert_frame_equal(comps, particles(labels, phase="cbd", split=False), rtol=1e-9)
    np.testing.assert_allclose(mc_stored.phase_area.values, whole, rtol=1e-9)
    pd.testing.assert_frame_equal(parts_stored, parts, rtol=1e-9)
    ids = bigseg.open_volume(image / "labels" / "particles").values
    np.testing.assert_array_equal(np.bincount(ids.ravel(), minlength=len(parts) + 1)[1:], parts.voxels.to_numpy())
    assert not [p for p in tmp_path.iterdir() if ".particle-ids-" in p.name]


# (one voxel thick, the mesh has no cells: refused, see test_tortuosity.py::test_labels_too_thin_...)
@pytest.mark.parametrize("shape,chunks", [((2, 30, 5), (1, 11, 2)), ((3, 3, 40), (2, 2, 13))], ids=str)
def test_thin_volumes_marching_cubes(shape, chunks):
    rng = np.random.default_rng(1)
    lab = (rng.random(shape) < 0.5).astype(np.uint8) * 2
    ds = interfaces(da.from_array(lab, chunks=chunks), method="marching_cubes")
    whole = mc_field_areas(np.pad(lab, 1, mode="edge"), [(0,), (1,), (2,)])
    assert whole.max() > 0
    np.testing.assert_allclose(ds.phase_area.values, whole, rtol=1e-9, atol=1e-12)
    bool_ds = interfaces(lab.astype(bool), phases=["pore", "solid"])
    assert bool_ds.faces.values[0, 1] == faces_per_axis(lab // 2, 2)[:, 0, 1].sum()
