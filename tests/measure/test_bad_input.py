"""Bad input is refused with an InputError naming the argument, before any heavy work."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigseg.errors import InputError
from bigseg.measure import (agreement, confusion, interfaces, particles, probability_uncertainty, scores, shells, spread,
                            summary, surface_area, thickness, volume_fractions)


def test_float_labels_refused():
    with pytest.raises(InputError, match=r"`labels` to hold integer labels.*float32"):
        volume_fractions(np.zeros((4, 4, 4), np.float32))


def test_float_labels_refused_before_compute():
    def boom(x):
        raise AssertionError("computed")

    lazy = da.zeros((8, 8, 8), dtype=np.float64, chunks=4).map_blocks(boom, dtype=np.float64)
    with pytest.raises(InputError, match="integer labels"):
        interfaces(lazy)


def test_values_beyond_phases_named():
    lab = np.zeros((6, 7, 8), np.uint8)
    lab[0, 0, :3] = 7
    lab[1, 1, 1] = 4
    with pytest.raises(InputError, match=r"values 0\.\.2.*Got 4 voxels with other values \(2 distinct: 4, 7\)"):
        interfaces(da.from_array(lab, chunks=3))
    with pytest.raises(InputError, match="Got 4 voxels"):
        volume_fractions(lab)


def test_wide_dtype_out_of_range_values():
    lab = np.zeros((5, 5, 5), np.int32)
    lab[0, 0, 0] = -3
    lab[1, 1, 1] = 1000
    with pytest.raises(InputError, match="2 voxels outside 0..255"):
        interfaces(lab)


def test_negative_unlabelled_values_are_told_how_to_mark_unlabelled():
    # other tools mark unlabelled voxels -1: the message says what bigseg expects, not only "a grey-value image?"
    lab = np.zeros((4, 5, 6), np.int16)
    lab[0] = -1
    with pytest.raises(InputError, match=r"30 voxels outside 0\.\.255.*grey-value image is no labels.*negative values "
                                         r"marking unlabelled.*255"):
        volume_fractions(da.from_array(lab, chunks=(3, 2, 4)))


def test_unlabelled_truth_is_ignored_unlabelled_prediction_missed():
    lab = np.zeros((5, 5, 5), np.uint8)
    lab[0] = 255
    assert scores(np.zeros_like(lab), lab).accuracy.item() == pytest.approx(0.8)
    assert scores(lab, np.zeros_like(lab)).accuracy.item() == 1.0


def test_shape_mismatch():
    with pytest.raises(InputError, match=r"`pred` to have the shape of `truth` \(4, 4, 4\)"):
        confusion(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(InputError, match=r"`segmentations\[1\]`"):
        agreement([np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8)])


def test_empty_and_wrong_ndim():
    with pytest.raises(InputError, match="`labels` to be non-empty"):
        volume_fractions(np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(InputError, match="`labels`"):
        interfaces(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="`truth` to be non-empty"):
        scores(np.zeros((4, 0, 4), np.uint8), np.zeros((4, 4, 4), np.uint8))


def test_bad_options():
    lab = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(InputError, match="`method`"):
        interfaces(lab, method="voxels")
    with pytest.raises(InputError, match="`phase`"):
        surface_area(lab, phase="graphite")
    with pytest.raises(InputError, match="`segmentations`"):
        agreement([lab])
    with pytest.raises(InputError, match="`results`"):
        spread([volume_fractions(lab)])
    with pytest.raises(InputError, match="`threshold`"):
        probability_uncertainty(np.zeros((3, 4, 4, 4), np.float32), threshold=1.5)
    with pytest.raises(InputError, match="`probabilities` to be floating"):
        probability_uncertainty(np.zeros((3, 4, 4, 4), np.uint8))


def test_axes_are_taken_by_name_not_by_position():
    import xarray as xr

    from bigseg.measure import profile

    rng = np.random.default_rng(0)
    lab = (rng.random((6, 8, 10)) < np.linspace(0.1, 0.9, 6)[:, None, None]).astype(np.uint8)  # grows along z
    ref = profile(xr.DataArray(lab, dims=("z", "y", "x")), axis="z")
    swapped = xr.DataArray(lab.transpose(2, 1, 0), dims=("x", "y", "z"))
    np.testing.assert_allclose(profile(swapped, axis="z").values, ref.values)
    np.testing.assert_allclose(profile(xr.DataArray(lab), axis="z").values, ref.values)  # dim_0.. in order
    with pytest.raises(InputError, match=r"`labels`'s dims to be named z, y, x.*\('a', 'b', 'c'\)"):
        profile(xr.DataArray(lab, dims=("a", "b", "c")), axis="z")
    assert swapped.dims == ("x", "y", "z")  # the input is left as it was
    with pytest.raises(InputError, match=r"`labels` to be a \(z, y, x\) volume or a \(t, z, y, x\) series"):
        profile(xr.DataArray(np.stack([lab, lab]), dims=("c", "z", "y", "x")), axis="z")  # not a series


@pytest.mark.parametrize("vs", [-1.0, (50, 50), "abc", (1, 0, 1)])
def test_a_bad_voxel_size_attribute_is_refused_by_name(vs, tmp_path):
    import xarray as xr

    from bigseg.io import save_volume

    lab = xr.DataArray(np.zeros((4, 5, 6), np.uint8), dims=("z", "y", "x"), attrs={"voxel_size": vs})
    with pytest.raises(InputError, match=r"`labels.attrs\['voxel_size'\]`"):
        volume_fractions(lab)
    with pytest.raises(InputError, match=r"`data.attrs\['voxel_size'\]`"):
        save_volume(lab.astype(np.float32), tmp_path / "v.ome.zarr")
    assert not (tmp_path / "v.ome.zarr").exists()


@pytest.mark.parametrize("dtype", [object, "U3", complex, "datetime64[s]"])
def test_data_that_are_not_numbers_are_refused_by_name(dtype):
    from bigseg import filters, save_volume

    a = np.zeros((4, 5, 6), dtype)
    with pytest.raises(InputError, match=r"`labels` to hold numbers .*Got dtype"):
        volume_fractions(a)
    with pytest.raises(InputError, match=r"`vol` to hold numbers"):
        filters.median(xr_of(a))
    with pytest.raises(InputError, match=r"`data` to hold numbers"):
        save_volume(a, "never-written.ome.zarr")


def xr_of(a):
    import xarray as xr

    return xr.DataArray(a, dims=("z", "y", "x"))


def test_a_dask_array_of_unknown_chunk_sizes_is_refused_with_the_way_out():
    from bigseg import filters

    x = da.random.random((10, 12, 14), chunks=5)
    picked = x[x >= 0]  # boolean indexing: 1D, chunk sizes unknown (NaN)
    cube = da.stack([da.stack([picked] * 3)] * 2, axis=1)  # 3D, still unknown
    assert np.isnan(cube.shape).any()
    with pytest.raises(InputError, match=r"known chunk sizes.*compute_chunk_sizes\(\)"):
        filters.gaussian(cube, sigma=1)
    with pytest.raises(InputError, match=r"known chunk sizes"):
        volume_fractions(cube.astype(np.uint8))


def test_a_path_where_a_volume_is_expected_says_how_to_open_it(tmp_path):
    with pytest.raises(InputError, match=r"Got the path .*truth\.tif.*bigseg\.open_volume\(path\).*open_source"):
        volume_fractions(str(tmp_path / "truth.tif"))
    with pytest.raises(InputError, match=r"Got the path"):
        scores(tmp_path / "truth.tif", np.zeros((2, 2, 2), np.uint8))


def test_grey_level_masks_are_told_how_to_map_them_to_phases():
    # a mask saved as an 8-bit image, one grey level per phase (64/128/192): the hint was "pass
    # `phases` naming every label value" (193 names), now the mapping to 0..2
    lab = np.full((4, 6, 8), 64, np.uint8)
    lab[:, 2:4], lab[:, 4:] = 128, 192
    with pytest.raises(InputError, match=r"64, 128, 192 look like one grey level per phase.*map them to 0\.\.2 first, "
                                         r"e\.g\. lut = np\.full\(256, 255, np\.uint8\); lut\[\[64, 128, 192\]\] = "
                                         r"\[0, 1, 2\]; labels = lut\[mask\]"):
        volume_fractions(da.from_array(lab, chunks=3))
    lut = np.full(256, 255, np.uint8)
    lut[[64, 128, 192]] = [0, 1, 2]
    np.testing.assert_allclose(volume_fractions(lut[lab]).values, [1 / 3, 1 / 3, 1 / 3])  # the hint works
    # values counting on past the phases: a phase name each, no grey-level hint
    small = np.zeros_like(lab)
    small[0, 0, :3] = (3, 4, 5)
    with pytest.raises(InputError, match=r"pass `phases` naming every label value\.$"):
        volume_fractions(small)


def test_a_mask_of_0_128_255_is_told_that_its_255_is_a_phase_too():
    # 0 / 128 / 255, the usual three grey levels of a three-phase mask: the hint mapped 0 and 128
    # only, "(255 stays unlabelled)": followed, the third phase (here a third of the voxels) was
    # left out of every measurement
    lab = np.zeros((4, 6, 9), np.uint8)
    lab[:, :, 3:6], lab[:, :, 6:] = 128, 255
    with pytest.raises(InputError, match=r"0, 128, 255 look like one grey level per phase.*255 continues their "
                                         r"steps.*lut\[\[0, 128, 255\]\] = \[0, 1, 2\]; labels = lut\[mask\]\.$"):
        volume_fractions(lab)
    lut = np.full(256, 255, np.uint8)
    lut[[0, 128, 255]] = [0, 1, 2]
    np.testing.assert_allclose(volume_fractions(lut[lab]).values, [1 / 3, 1 / 3, 1 / 3])  # the hint works
    # 255 off the levels' steps stays unlabelled in the hint
    lab[:, :, 6:] = 200
    lab[0, 0, 0] = 255
    with pytest.raises(InputError, match=r"0, 128, 200 look like.*labels = lut\[mask\] \(255 stays unlabelled\)"):
        volume_fractions(lab)


def test_a_two_phase_mask_saved_as_0_and_255_is_warned_about(tmp_path):
    # a label stack read as phase 0 and unlabelled voxels: every fraction of the first phase 1.0,
    # without a word (ImageJ, Fiji and OpenCV save binary masks as 0 / 255)
    import warnings

    from bigseg.io import open_source

    lab = np.zeros((4, 6, 8), np.uint8)
    lab[:, :, 4:] = 255
    np.save(tmp_path / "mask.npy", lab)
    with pytest.warns(UserWarning, match=r"holds only the values 0 \(pore\) and 255.*50\.0 % of the voxels.*map "
                                         r"255 to 1 first"):
        volume_fractions(open_source(tmp_path / "mask.npy"))
    two = np.where(lab == 255, 1, lab)
    np.testing.assert_allclose(volume_fractions(two, phases=["pore", "solid"]).values, [0.5, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        volume_fractions(lab)  # an array in Python, where 255 is deliberately unlabelled: nothing said
        lab[:, :, 4:6] = 1  # labels of several phases (a field of view around them): nothing said
        np.save(tmp_path / "fov.npy", lab)
        volume_fractions(open_source(tmp_path / "fov.npy"))
        # sparse annotations of one phase (255 unlabelled) whose phases the caller names: nothing said
        volume_fractions(open_source(tmp_path / "mask.npy"), phases=["pore", "cbd", "active"])


def test_an_axis_is_spelled_alike_in_every_measure():
    """`profile(axis=0)` was z while `tortuosity(axis=0)` and `connectivity(axis=0)` were refused (and
    `train(axis="z")` too): each takes "z"/"y"/"x" or 0/1/2, and refuses the rest by name."""
    from bigseg.measure import connectivity, profile, tortuosity

    rng = np.random.default_rng(1)
    lab = (rng.random((8, 9, 10)) < 0.6).astype(np.uint8)
    for name, axis in (("x", 2), ("y", 1)):
        assert connectivity(lab, axis=axis).identical(connectivity(lab, axis=name))
        assert tortuosity(lab, axis=axis, phase=1).identical(tortuosity(lab, axis=name, phase=1))
        assert profile(lab, axis=axis).identical(profile(lab, axis=name))
    for measure in (connectivity, tortuosity, profile):
        with pytest.raises(InputError, match=r"Expected `axis` to be 'z', 'y' or 'x' \(or 0, 1 or 2\). Got 3 instead"):
            measure(lab, axis=3)


def test_classes_counted_from_one_are_told_how_to_map_them():
    """A napari / ilastik / Fiji label export (0 = not annotated, classes 1, 2, 3) was told to "pass
    `phases` naming every label value", which would count "not annotated" as a phase: the hint
    now names the mapping to bigseg's values (0, 1, 2; 255 = not annotated), and it works."""
    from bigseg.io import sparse_labels

    ann = np.zeros((4, 6, 8), np.uint8)
    ann[1, :, :2], ann[1, :, 2:5], ann[1, :, 5:] = 1, 2, 3
    with pytest.raises(InputError, match=r"classes count from 1 .*map them first with "
                                         r"bigseg\.io\.sparse_labels\(labels, 0\); else pass `phases`"):
        volume_fractions(da.from_array(ann, chunks=3))
    with pytest.raises(InputError, match=r"bigseg\.io\.sparse_labels\(pred, 0\)"):
        scores(ann.clip(max=2), ann)
    np.testing.assert_allclose(volume_fractions(sparse_labels(ann, 0)).values, [2 / 8, 3 / 8, 3 / 8])


@pytest.mark.parametrize("call, match", [
    (lambda lab: summary(lab, profile_step=-1), r"`profile_step` to be a positive integer. Got -1 "),
    (lambda lab: summary(lab, profile_step="3"), r"`profile_step` to be a positive integer. Got '3' "),
    (lambda lab: particles(lab, labels_to=5), r"`labels_to` to be a path .*Got 5 instead"),
    (lambda lab: shells(lab, around=2.5, of="cbd", max_distance=3),
     r"`around` to name one or more of the phases .*Got 2.5 instead"),
    (lambda lab: shells(lab, around="active", of=2.5, max_distance=3),
     r"`of` to name one or more of the phases .*Got 2.5 instead"),
    (lambda lab: thickness(lab, phase=None), r"`phase` to name at least one phase .*Got None "),
    (lambda lab: thickness(lab, phase=2.5), r"`phase` to name at least one phase .*Got 2.5 "),
], ids=["summary-step-negative", "summary-step-text", "particles-labels_to-int", "shells-around-float",
        "shells-of-float", "thickness-phase-none", "thickness-phase-float"])
def test_argument_sweep_refuses_by_name(call, match):
    """From the argument sweep: `summary(profile_step=-1)` without a profile was silently ignored;
    `particles(labels_to=5)`, `shells(around=2.5)` and `thickness(phase=None)` were Python's
    TypeError from inside ("... object is not iterable"). Each now an InputError naming the
    argument and its value, at the call."""
    from bigseg.synth import electrode

    lab = electrode((8, 10, 10), chunks=8, radius=(3.0, 1.0))
    with pytest.raises(InputError, match=match):
        call(lab)


def test_absurd_counts_are_refused_at_the_call_before_compute():
    """``distance``, ``max_diameter`` and the perturbation's ``iterations`` of 10**12 were accepted,
    then hung or ran out of memory in the compute (a ball of (2 * distance + 1)**3 voxels, a halo
    of 2 * iterations, max_diameter + 1 counts per block); float-typed counts stay refused."""
    from bigseg.measure import perturbation_spread
    from bigseg.measure._blockwise import MAX_BINS
    from bigseg.measure._uncertainty import MAX_NEAR_DISTANCE, MAX_SAMPLES
    from bigseg.synth._perturb import MAX_ITERATIONS

    def boom(x):
        raise AssertionError("computed")

    lab = da.zeros((8, 8, 8), dtype=np.uint8, chunks=4).map_blocks(boom, dtype=np.uint8)
    prob = da.zeros((3, 8, 8, 8), dtype=np.float32, chunks=4).map_blocks(boom, dtype=np.float32)
    for calls, name, most in ((lambda v: perturbation_spread(lab, iterations=v), "iterations", MAX_ITERATIONS),
                              (lambda v: perturbation_spread(lab, n=v), "n", MAX_SAMPLES),
                              (lambda v: probability_uncertainty(prob, distance=v), "distance", MAX_NEAR_DISTANCE),
                              (lambda v: thickness(lab, max_diameter=v), "max_diameter", MAX_BINS)):
        for bad in (most + 1, 10**12):
            with pytest.raises(InputError, match=f"^Expected `{name}` to be at most {most:,}. Got {bad} instead.$"):
                calls(bad)
        for bad in (3.0, True):
            with pytest.raises(InputError, match=f"^Expected `{name}` to be a (positive|non-negative) integer. "
                                                 f"Got {bad!r} instead.$"):
                calls(bad)


def test_a_0_255_mask_series_is_warned_about_once_at_the_caller_s_line(tmp_path):
    # each step of a series said it again (a 128-scan series: 128 warnings), and the warning
    # pointed into bigseg/measure/_metrics.py (a fixed stacklevel), not at the line that measured
    import warnings

    from bigseg.io import open_source

    lab = np.zeros((3, 4, 6, 8), np.uint8)
    lab[..., 4:] = 255
    np.save(tmp_path / "series.npy", lab)
    series = open_source(tmp_path / "series.npy")
    # scores: the truth's and the prediction's, each once
    for measured, expected in ((lambda: volume_fractions(series), 1), (lambda: scores(series, series), 2)):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            measured()
        mask = [w for w in said if "holds only the values 0" in str(w.message)]
        assert len(mask) == expected, [str(w.message) for w in said]
        assert all("at t=0" in str(w.message) for w in mask)
        assert {w.filename for w in mask} == {__file__}
