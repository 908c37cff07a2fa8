"""Blocks of a stored (zarr) volume read their halo'd region straight from the store: the same
blocks as ``da.overlap``, and the same measurements, without shared chunks held in memory."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg.measure import particles, shells
from bigseg.io._volume import zarr_source
from bigseg.measure._blockwise import _halo_array


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    lab = bigseg.synth.electrode((36, 41, 38), radius=(3, 1), seed=9).values  # chunks 10,10,10,6 x 17,17,7 x 13,13,12
    path = tmp_path_factory.mktemp("halo") / "scan.ome.zarr"
    bigseg.save_volume(lab.astype(np.float32), path, chunks=(10, 17, 13), progress=False)
    bigseg.save_labels(lab, path, phases=["pore", "cbd", "active"], chunks=(10, 17, 13), progress=False)
    return lab, bigseg.open_volume(path / "labels" / "segmentation")


@pytest.mark.parametrize("depth", [{0: 1, 1: 1, 2: 1}, {0: 6, 1: 3, 2: 0}, {0: 6, 1: 7, 2: 12}])
def test_direct_reads_equal_overlap(stored, depth):
    _, vol = stored
    got = _halo_array(vol.data, depth, zarr_source(vol.data))
    assert got.name.startswith("halo-read-")  # the store is read directly
    ref = da.overlap.overlap(vol.data, depth=depth, boundary="none")
    assert got.chunks == ref.chunks
    np.testing.assert_array_equal(got.compute(), ref.compute())
    # anything but a plain stored array goes through da.overlap
    assert not _halo_array(vol.data + 0, depth, zarr_source(vol.data + 0)).name.startswith("halo-read-")
    rechunked = vol.data.rechunk((12, 14, 19))  # another grid over the same store: read directly too
    got = _halo_array(rechunked, depth, zarr_source(vol.data))
    np.testing.assert_array_equal(got.compute(), da.overlap.overlap(rechunked, depth=depth, boundary="none").compute())


def test_measurements_of_a_stored_volume_equal_in_memory(stored, monkeypatch):
    from bigseg.measure import _particles

    lab, vol = stored
    used = []
    real = _particles._stored_ids
    monkeypatch.setattr(_particles, "_stored_ids", lambda folder, *a, **k: used.append(folder) or real(folder, *a, **k))
    mem = da.from_array(lab, chunks=(10, 17, 12))
    with pytest.warns(UserWarning, match="wider than"):  # a halo wider than the chunks: merged, then read directly
        pd.testing.assert_frame_equal(particles(vol, max_diameter=14), particles(mem, max_diameter=14))
    # the stored labels' ids went through a scratch folder beside the image, removed afterwards
    image = vol.attrs["source"].rsplit("/labels/", 1)[0]
    assert len(used) == 1 and str(used[0].parent) == os.path.dirname(image) and not used[0].exists()
    np.testing.assert_array_equal(shells(vol, around="active", of="cbd", max_distance=5).values,
                                  shells(mem, around="active", of="cbd", max_distance=5).values)
