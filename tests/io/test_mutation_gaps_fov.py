"""Gaps a mutation audit of io/_fov and io/_calibration found: each test fails on a wrong
variant of the code that the rest of the suite let through. References are built by hand
(brute-force distances, masks drawn by construction, unit factors written out)."""

import numpy as np
import pytest

from bigseg.io import fov_mask, inscribed_box
from bigseg.io._calibration import _ome_calibration, _ome_origin, convert_length
from bigseg.io._fov import fov_centre


# --- io/_fov ---------------------------------------------------------------------------------

def test_a_circle_holds_the_voxels_exactly_at_its_radius():
    m = fov_mask(np.zeros((2, 21, 25), np.uint8), (10, 12, 5)).values
    # integer points at distance exactly 5 from (10, 12): (10, 17), (13, 16), (5, 12), (6, 9)
    for y, x in [(10, 17), (13, 16), (5, 12), (6, 9), (15, 12), (10, 7)]:
        assert m[y, x], (y, x)
    assert not m[10, 18] and not m[14, 16]
    assert m.sum() == 81  # lattice points in a closed disk of radius 5 (Gauss circle problem, N(5) = 81)


def _brute_margin(inside, margin):
    """Inside voxels farther than ``margin`` from every outside voxel, the image's surroundings
    (a ring of voxels beyond its edge) counting as outside."""
    ny, nx = inside.shape
    pad = np.zeros((ny + 2, nx + 2), bool)
    pad[1:-1, 1:-1] = inside
    oy, ox = np.nonzero(~pad)
    out = np.zeros_like(inside)
    for y, x in zip(*np.nonzero(inside)):
        d = np.sqrt((oy - (y + 1)) ** 2 + (ox - (x + 1)) ** 2).min()
        out[y, x] = d > margin
    return out


@pytest.mark.parametrize("fov, margin", [((8, 9, 6), 2), ("cylinder", 2), ("cylinder", 1.5)], ids=str)
def test_margin_against_brute_force_distances(fov, margin):
    vol = np.zeros((1, 17, 20), np.uint8)
    inside = fov_mask(vol, fov).values
    got = fov_mask(vol, fov, margin=margin).values
    np.testing.assert_array_equal(got, _brute_margin(inside, margin))


def _auto_volume():
    """Fill 0 in the four corners and in a strip that touches only the right edge; the sample
    (values 1..2) elsewhere, with one column that is 0 in one slice only (not a fill)."""
    rng = np.random.default_rng(0)
    a = (1.0 + rng.random((3, 12, 14))).astype(np.float32)
    outside = np.zeros((12, 14), bool)
    outside[:2, :2] = outside[:2, -2:] = outside[-2:, :2] = outside[-2:, -2:] = True
    outside[5:8, 12:] = True  # touches the right edge only
    a[:, outside] = 0
    a[1, 6, 11] = 0.0  # next to the strip: a sample voxel of value 0, but the column varies
    return a, ~outside


@pytest.mark.parametrize("chunks", [None, (2, 5, 3)], ids=str)
def test_auto_finds_a_fill_that_touches_one_edge_only_and_keeps_varying_columns(chunks):
    import dask.array as da

    a, inside = _auto_volume()
    vol = a if chunks is None else da.from_array(a, chunks=chunks)
    m = fov_mask(vol, "auto")
    np.testing.assert_array_equal(m.values, inside)
    assert m.attrs["fill"] == 0


def test_fov_centre_of_a_mask_is_its_centroid():
    m = np.zeros((20, 30), bool)
    m[2:9, 5:26] = True  # centroid (5, 15)
    m[9, 25] = True
    ys, xs = np.nonzero(m)
    assert fov_centre(m) == pytest.approx((ys.mean(), xs.mean()))


def _check_box(m, ys, xs):
    assert 0 <= ys.start and ys.stop <= m.shape[0] and 0 <= xs.start and xs.stop <= m.shape[1]
    assert ys.stop - ys.start == xs.stop - xs.start  # a square
    assert m[ys, xs].shape == (ys.stop - ys.start,) * 2 and m[ys, xs].all()
    grown = (slice(ys.start - 1, ys.stop + 1), slice(xs.start - 1, xs.stop + 1))  # a larger one does not fit
    assert ys.start == 0 or xs.start == 0 or ys.stop == m.shape[0] or xs.stop == m.shape[1] or not m[grown].all()


def test_inscribed_box_stays_in_the_image_when_the_mask_reaches_its_edge():
    m = np.zeros((10, 10), bool)
    m[2:, :] = True  # centroid row 5.5
    _check_box(m, *inscribed_box(m))


def test_inscribed_box_is_centred_on_the_nearest_voxel_to_the_centroid():
    yy, xx = np.ogrid[:25, :25]
    m = (yy - 10.7) ** 2 + (xx - 12.2) ** 2 <= 36
    ys, xs = inscribed_box(m)
    _check_box(m, ys, xs)
    cy, cx = (c.mean() for c in np.nonzero(m))
    assert abs((ys.start + ys.stop - 1) / 2 - cy) <= 0.5 and abs((xs.start + xs.stop - 1) / 2 - cx) <= 0.5


# --- io/_calibration -------------------------------------------------------------------------

@pytest.mark.parametrize("values, src, dest, expected", [
    ((5.0,), "angstrom", "nm", (0.5,)),          # 1 Å = 0.1 nm
    ((3.0,), "Å", "pm", (300.0,)),                # 1 Å = 100 pm
    ((0.123456789,), "mm", "um", (123.456789,)),  # 9 significant digits survive the rounding
    ((650.123456,), "nm", "um", (0.650123456,)),
], ids=str)
def test_convert_length_factors(values, src, dest, expected):
    assert convert_length(values, src, dest) == pytest.approx(expected, rel=1e-12)


_OME = ('<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
        '<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="4" SizeY="4" SizeZ="2" SizeC="1" '
        'SizeT="1" {sizes}>{plane}</Pixels></Image></OME>')


def test_ome_sizes_without_units_are_micrometres():
    xml = _OME.format(sizes='PhysicalSizeX="0.5" PhysicalSizeY="0.5" PhysicalSizeZ="2"', plane="")
    assert _ome_calibration(xml) == ((2.0, 0.5, 0.5), "um")


def test_ome_positions_without_units_are_micrometres():
    sizes = ('PhysicalSizeX="50" PhysicalSizeXUnit="nm" PhysicalSizeY="50" PhysicalSizeYUnit="nm" '
             'PhysicalSizeZ="100" PhysicalSizeZUnit="nm"')
    plane = '<Plane TheZ="0" TheT="0" TheC="0" PositionX="1" PositionY="2" PositionZ="0.5"/>'
    # 1 um / 50 nm = 20 voxels, 2 um / 50 nm = 40, 0.5 um / 100 nm = 5
    assert _ome_origin(_OME.format(sizes=sizes, plane=plane)) == pytest.approx((5.0, 40.0, 20.0))


def test_auto_ignores_a_nan_voxel_in_a_fill_column():
    # fill 2.0 (not 0) outside; one outside column holds a NaN in one slice: its other values are
    # still the fill, so it stays outside ("min, max (NaN ignored)")
    rng = np.random.default_rng(1)
    a = (5.0 + rng.random((3, 12, 14))).astype(np.float32)
    yy, xx = np.ogrid[:12, :14]
    inside = (yy - 5.5) ** 2 + (xx - 6.5) ** 2 <= 25
    a[:, ~inside] = 2.0
    a[1, 0, 0] = a[2, 11, 13] = np.nan
    m = fov_mask(a, "auto")
    np.testing.assert_array_equal(m.values, inside)
    assert m.attrs["fill"] == 2.0


def test_inscribed_box_of_an_even_field_of_view_loses_no_row():
    """A whole 48 x 48 field of view gave a 47 x 47 box (odd sides only, around a rounded
    centre): the tortuosity inside it left a row and a column of the volume out. Even sides
    now, centred on the centroid between voxels: the whole square, and the largest square in
    a disc centred between voxels (42, found by trying every square)."""
    assert inscribed_box(np.ones((48, 48), bool)) == (slice(0, 48), slice(0, 48))
    assert inscribed_box(np.ones((47, 47), bool)) == (slice(0, 47), slice(0, 47))
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 <= 30 ** 2
    ys, xs = inscribed_box(disc)
    _check_box(disc, ys, xs)
    assert ys.stop - ys.start == 42 and (ys.start + ys.stop - 1) / 2 == 31.5
