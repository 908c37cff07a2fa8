"""Crofton interface areas: blocks add up to the whole array for any chunking, unlabelled voxels
cross nothing, and every area function and command takes the method."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import bigseg
from bigseg.kernels.crofton import crofton_areas
from bigseg.measure import interfaces, specific_surface_area, summary, surface_area


@pytest.fixture(scope="module")
def lab():
    return bigseg.synth.electrode((26, 30, 34), radius=(4, 1), seed=7).values


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)])
def test_any_chunking_equals_the_whole_array(lab, spacing):
    whole = crofton_areas(lab, (0, 0, 0), (0, 0, 0), 3, spacing)
    assert whole[0, 1] > 0 and np.allclose(whole, whole.T) and not whole.diagonal().any()
    for chunks in ((26, 30, 34), (7, 11, 13), (5, 30, 9)):
        vol = xr.DataArray(da.from_array(lab, chunks=chunks), dims=("z", "y", "x"),
                           attrs={"voxel_size": spacing, "unit": "nm"})
        np.testing.assert_allclose(interfaces(vol, method="crofton").area.values, whole, rtol=1e-12)


def test_unlabelled_voxels_cross_nothing(lab):
    masked = lab.copy()
    masked[:, :, 20:] = 255
    got = interfaces(masked, method="crofton").area.values
    np.testing.assert_allclose(got, crofton_areas(lab[:, :, :20], (0, 0, 0), (0, 0, 0), 3, (1.0,) * 3), rtol=1e-12)


def test_surface_and_specific_areas_and_summary_take_the_method(lab):
    pair = interfaces(lab, method="crofton").area.values
    assert surface_area(lab, phase="cbd", method="crofton") == pytest.approx(pair[1].sum())
    ssa = specific_surface_area(lab, method="crofton")
    np.testing.assert_allclose(ssa.per_total_volume.values, pair.sum(axis=1) / lab.size)
    np.testing.assert_allclose(summary(lab, method="crofton").area.values, pair)
    faces = interfaces(lab).area.values
    assert (pair[np.triu_indices(3, 1)] < faces[np.triu_indices(3, 1)]).all()  # faces read +30-60 %


def test_cli_and_configuration_take_crofton(tmp_path, capsys):
    from bigseg.cli import main
    from bigseg.config import RunConfig

    np.save(tmp_path / "seg.npy", bigseg.synth.electrode((16, 18, 20), radius=(4, 1), seed=2).values)
    assert main(["measure", str(tmp_path / "seg.npy"), "--method", "crofton"]) == 0
    assert "crofton" in capsys.readouterr().out
    assert RunConfig.load(None, measure={"interfaces": "crofton"}).measure["interfaces"] == "crofton"


def test_areas_are_bit_for_bit_the_same_for_any_chunking():
    """Crossings are counted per block and summed as integers, then made areas once: the areas
    (and the pipeline's metrics without a profile) are the same bits for any chunking, as the
    whole array's (summing per-block float areas differed in the last bit)."""
    lab = bigseg.synth.electrode((40, 36, 44), seed=11)
    vs = {"voxel_size": (50.0, 50.0, 50.0), "unit": "nm"}
    whole = crofton_areas(lab.values, (0, 0, 0), (0, 0, 0), 3, vs["voxel_size"])
    for chunks in ((17, 23, 31), (9, 36, 13)):
        vol = xr.DataArray(da.from_array(lab.values, chunks=chunks), dims=("z", "y", "x"), attrs=vs)
        np.testing.assert_array_equal(interfaces(vol, method="crofton").area.values, whole)
        np.testing.assert_array_equal(summary(vol, method="crofton").area.values, whole)
        assert surface_area(vol, phase="cbd", method="crofton") == whole[1].sum()
