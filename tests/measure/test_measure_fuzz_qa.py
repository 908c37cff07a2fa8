"""Defects found by property-based fuzzing of :mod:`bigseg.measure` (random labels, chunkings and
anisotropic voxels against whole-volume references): each test fails without its fix."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from bigseg.measure import particles


def test_particle_area_beside_unlabelled_voxels_does_not_depend_on_the_chunking():
    # an unlabelled voxel with one face neighbour in each of two particles is filled from one of
    # them for the smoothed mesh; the tie was broken by the lowest raw id, which for split=False
    # is numbered block by block, so the areas followed the chunking (6.76 in one chunk, 6.0 in
    # two along x)
    lab = np.zeros((4, 4, 8), np.uint8)
    lab[1:, :, 0:3] = 1  # particle A, its first voxel after B's in raster order
    lab[:, :, 4:] = 1  # particle B
    lab[:, :, 3] = 255  # an unlabelled column between them: each voxel ties A against B
    tables = []
    for chunks in (lab.shape, (4, 4, 4), (2, 2, 4)):
        vol = xr.DataArray(da.from_array(lab, chunks=chunks), dims=("z", "y", "x"),
                           attrs={"phases": ["pore", "active"]})
        tables.append(particles(vol, split=False))
    for t in tables[1:]:
        np.testing.assert_allclose(t["surface_area"], tables[0]["surface_area"], rtol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(t["voxels"], tables[0]["voxels"])


def test_a_chunk_of_no_voxel_is_no_block():
    """A dask array may hold chunks of length 0 (e.g. after slicing): the blocks merged them away
    but connectivity and the particle components counted the blocks from the chunks, and asked
    for blocks that did not exist (TypeError, IndexError before the single-layer graphs)."""
    from bigseg.measure import connectivity

    rng = np.random.default_rng(3)
    lab = (rng.random((12, 10, 9)) < 0.45).astype(np.uint8) * 2
    plain = xr.DataArray(da.from_array(lab, chunks=6), dims=("z", "y", "x"), attrs={"phases": ["pore", "cbd", "active"]})
    empty = plain.copy(data=da.from_array(lab, chunks=((6, 0, 6), (5, 0, 5), (9,))))
    assert 0 in empty.data.chunks[0]
    a, b = connectivity(plain, axis="z"), connectivity(empty, axis="z")
    for var in ("percolating", "isolated", "unknown", "components"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
    ta, tb = particles(plain, split=False), particles(empty, split=False)
    np.testing.assert_array_equal(ta["voxels"], tb["voxels"])
    np.testing.assert_allclose(ta["surface_area"], tb["surface_area"], rtol=1e-9, equal_nan=True)
