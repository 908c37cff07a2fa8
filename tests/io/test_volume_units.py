"""The unit a volume gets (API.md: a volume's unit defaults to nm; a plain array is 1 "voxel")."""

from __future__ import annotations

import numpy as np

import bigseg
from bigseg import synth
from bigseg.io import unit_for


def test_a_voxel_size_without_a_unit_is_in_nm(tmp_path):
    a = np.zeros((4, 5, 6), np.float32)
    back = bigseg.open_volume(bigseg.save_volume(a, tmp_path / "a.ome.zarr", voxel_size=(2, 2, 2), progress=False))
    assert back.attrs["voxel_size"] == (2.0, 2.0, 2.0) and back.attrs["unit"] == "nm"  # was "voxel": areas in voxel²
    plain = bigseg.open_volume(bigseg.save_volume(a, tmp_path / "p.ome.zarr", progress=False))
    assert plain.attrs["unit"] == "voxel"  # nothing stated: sizes in voxels
    um = bigseg.open_volume(bigseg.save_volume(a, tmp_path / "u.ome.zarr", voxel_size=0.5, unit="um", progress=False))
    assert um.attrs["unit"] == "um"
    kept = bigseg.open_volume(bigseg.save_volume(um, tmp_path / "k.ome.zarr", voxel_size=1, progress=False))
    assert kept.attrs["unit"] == "um" and kept.attrs["voxel_size"] == (1.0, 1.0, 1.0)  # the data's own unit kept
    assert synth.electrode((8, 8, 8)).attrs["unit"] == "voxel"
    assert synth.electrode((8, 8, 8), voxel_size=50).attrs["unit"] == "nm"
    assert synth.series((8, 8, 8), steps=2, voxel_size=50).attrs["unit"] == "nm"
    assert unit_for("um", 3) == "um" and unit_for(None, None) == "voxel" and unit_for(None, None, "um") == "um"


def test_an_unknown_unit_is_refused_by_name(tmp_path):
    """Was accepted: written with no OME unit, and tables read "area [furlong²]"."""
    import pytest

    from bigseg.errors import ConfigError, InputError
    from bigseg.pipeline import Pipeline

    a = np.zeros((4, 5, 6), np.float32)
    np.save(tmp_path / "a.npy", a)
    for call in (lambda: bigseg.save_volume(a, tmp_path / "a.ome.zarr", voxel_size=2, unit="furlong", progress=False),
                 lambda: synth.electrode((8, 8, 8), voxel_size=2, unit="furlong"),
                 lambda: bigseg.ingest(tmp_path / "a.npy", tmp_path / "b.ome.zarr", voxel_size=2, unit="furlong",
                                       progress=False)):
        with pytest.raises(InputError, match=r"`unit` to be a length unit such as 'nm'.*Got 'furlong'"):
            call()
    with pytest.raises(ConfigError, match="`unit`"):
        Pipeline(unit="furlong")
    assert not list(tmp_path.glob("*.ome.zarr*"))
    assert synth.electrode((8, 8, 8), voxel_size=0.05, unit="micron").attrs["unit"] == "micron"  # as given
    import xarray as xr  # a volume's own unit (another writer's "pixel") is kept, and labels go into it

    px = xr.DataArray(a, dims=("z", "y", "x"), attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "pixel"})
    img = bigseg.save_volume(px, tmp_path / "px.ome.zarr", progress=False)
    bigseg.save_labels(np.zeros(a.shape, np.uint8), img, phases=["pore"], progress=False)
    assert bigseg.open_volume(img).attrs["unit"] == "pixel"
    typo = px.astype(np.uint8).assign_attrs(unit="parsec?")  # a volume's own unit no length: went on into "area [parsec?^2]"
    for call in (lambda: bigseg.measure.interfaces(typo), lambda: bigseg.filters.gaussian(typo),
                 lambda: bigseg.save_volume(typo, tmp_path / "t.ome.zarr", progress=False)):
        with pytest.raises(InputError, match=r"`\w+.attrs\['unit'\]` to be a length unit.*'parsec\?'.*recalibrated"):
            call()
    with pytest.raises(InputError, match="`unit`.*'parsec'"):
        bigseg.io.recalibrated(px, 2, "parsec")
    assert bigseg.measure.interfaces(bigseg.io.recalibrated(typo, 2, "um")).area.attrs["units"] == "um^2"


def test_a_dataarray_with_a_voxel_size_attribute_but_no_unit_is_in_nm():
    """`xr.DataArray(a, attrs={"voxel_size": 50})` was taken as 50 "voxel" edges: areas of
    2500 per face read "voxel^2". A voxel size without a unit is in nm, as for save_volume's."""
    import xarray as xr

    from bigseg import measure

    lab = synth.electrode((8, 10, 12), chunks=4).values
    ds = measure.interfaces(xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": 50}))
    assert ds.attrs["unit"] == "nm" and ds.area.attrs["units"] == "nm^2"
    bare = measure.interfaces(xr.DataArray(lab, dims=("z", "y", "x")))  # nothing stated: voxels
    assert bare.attrs["unit"] == "voxel" and bare.area.attrs["units"] == "voxel^2"
    np.testing.assert_allclose(ds.area.values, 2500 * bare.area.values)


def test_the_z_y_x_coordinates_state_their_unit(tmp_path):
    """Were bare numbers (the unit only in attrs["unit"]): a plot's axis or a to_netcdf of a volume
    lost it, though the t coordinate of a series carries its own."""
    lab = synth.electrode((8, 8, 8), voxel_size=50)
    assert all(lab[d].attrs["units"] == "nm" for d in "zyx")
    back = bigseg.open_volume(bigseg.save_volume(lab, tmp_path / "a.ome.zarr", progress=False))
    assert all(back[d].attrs["units"] == "nm" for d in "zyx")
    assert bigseg.io.recalibrated(back, 0.1, "um").x.attrs["units"] == "um"
    assert bigseg.io.make_volume(np.zeros((2, 2, 2))).z.attrs["units"] == "voxel"


def test_a_volume_placed_like_a_crop_takes_its_coordinates_with_their_unit():
    """placed_like puts a truth given as a bare array where the cropped scan lies: its z/y/x
    coordinates are the crop's, units and all (were bare numbers)."""
    from bigseg.io._volume import placed_like

    scan = synth.electrode((8, 8, 8), voxel_size=50)[2:6, 1:7, :]
    truth = bigseg.io.make_volume(np.zeros((4, 6, 8), np.uint8), voxel_size=50, unit="nm")
    placed = placed_like(truth, scan)
    for d in "zyx":
        np.testing.assert_array_equal(placed[d].values, scan[d].values)
        assert placed[d].attrs["units"] == "nm", d
