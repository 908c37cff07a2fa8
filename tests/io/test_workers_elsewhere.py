"""Relative paths on a cluster whose workers run in another working directory (an existing
scheduler's workers, started elsewhere): every read and write goes where the caller means."""

from __future__ import annotations

import numpy as np
import pytest

import bigseg


@pytest.mark.slow
def test_relative_paths_are_the_callers_on_workers_started_elsewhere(tmp_path, odd_volume, monkeypatch):
    """Writes landed in the workers' directory (a FileNotFoundError at the end) and reads of a
    store there found nothing: zarr filled the missing chunks with zeros, a blank scan."""
    from bigseg import measure

    (tmp_path / "workers").mkdir()
    (tmp_path / "client").mkdir()
    monkeypatch.chdir(tmp_path / "workers")
    with bigseg.connect("local", n_workers=1, memory_limit="1GiB"):
        monkeypatch.chdir(tmp_path / "client")  # the workers stay where they started
        np.save("scan.npy", odd_volume)
        vol = bigseg.ingest("scan.npy", "scan.ome.zarr", chunks=16, progress=False)
        np.testing.assert_array_equal(vol.values, odd_volume)
        np.testing.assert_array_equal(bigseg.open_volume("scan.ome.zarr").values, odd_volume)
        z, y, x = np.indices(odd_volume.shape)
        labels = ((z // 9 + y // 11 + x // 13) % 3).astype(np.uint8)  # a few dozen particles (voxel noise: thousands)
        bigseg.save_labels(labels, "scan.ome.zarr", phases=["pore", "cbd", "active"], chunks=16, progress=False)
        lab = bigseg.open_volume("scan.ome.zarr/labels/segmentation")
        np.testing.assert_array_equal(lab.values, labels)
        table = measure.particles(lab, labels_to="scan.ome.zarr/labels/particles", split=False)
        ids = bigseg.open_volume("scan.ome.zarr/labels/particles").values
        assert ids.max() == len(table) and (ids > 0).sum() == (labels == 2).sum()
    assert not list((tmp_path / "workers").iterdir())  # nothing of the caller's went there
