"""filters.align: scans of a series moved onto a reference scan; shifts recovered by phase
correlation, applied blockwise exactly as scipy.ndimage.shift on the whole array."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg import filters, synth
from bigseg.errors import InputError

TRUE = np.array([[0.0, 0.0, 0.0], [1.6, -2.3, 0.8], [-1.0, 1.0, 2.4]])


@pytest.fixture(scope="module")
def scans():
    lab = synth.electrode((40, 56, 52), seed=2, chunks=64)
    img = synth.xct(lab, seed=2).values
    return lab.values, np.stack([img] + [ndi.shift(img, s, order=1, mode="nearest") for s in TRUE[1:]])


def test_shifts_recovered_and_scans_aligned(scans):
    _, ser = scans
    before = ser.copy()
    out = filters.align(da.from_array(ser, chunks=(1, 13, 20, 17)))
    np.testing.assert_allclose(out.attrs["shifts"], -TRUE, atol=0.15)
    o = out.values
    est = np.asarray(out.attrs["shifts"])
    crop = [[int(np.ceil(max(0, est[:, a].max()))), n + int(np.floor(min(0, est[:, a].min())))]
            for a, n in enumerate((40, 56, 52))]  # the region every moved scan covers
    assert out.attrs["crop"] == crop and o.shape == (3, *(hi - lo for lo, hi in crop))
    for t in (1, 2):
        assert np.abs(o[t] - o[0]).mean() < 0.35 * np.abs(ser[t] - ser[0]).mean()
    np.testing.assert_array_equal(ser, before)  # the input is never modified


@pytest.mark.parametrize("chunks", [(1, 40, 56, 52), (1, 9, 14, 11)])
def test_blockwise_equals_whole_array_shift(scans, chunks):
    _, ser = scans
    shifts = [[0, 0, 0], [-2.7, 1.25, 0.5], [3.0, -0.4, -4.6]]
    out = filters.align(da.from_array(ser, chunks=chunks), shifts=shifts, crop=False)
    moved = out.values  # computed once (each `.values` of the lazy result computes every block again)
    for t, s in enumerate(shifts):
        np.testing.assert_allclose(moved[t], ndi.shift(ser[t], s, order=1, mode="nearest"), rtol=0, atol=1e-6)
    cropped = filters.align(da.from_array(ser, chunks=chunks), shifts=shifts)
    assert cropped.attrs["crop"] == [[3, 37], [2, 55], [1, 47]]
    np.testing.assert_array_equal(cropped.values, moved[:, 3:37, 2:55, 1:47])



def test_float16_scans_move_as_in_float32():
    """scipy.ndimage.shift has no float16 kernel: a float16 series failed in every block."""
    rng = np.random.default_rng(0)
    ser = rng.normal(size=(2, 9, 13, 11)).astype(np.float16)
    shifts = [[0, 0, 0], [1.5, -2.25, 3.0]]
    out = filters.align(da.from_array(ser, chunks=(1, 4, 1, 11)), shifts=shifts, crop=False)
    assert out.dtype == np.float16
    ref = ndi.shift(ser[1].astype(np.float32), shifts[1], order=1, mode="nearest").astype(np.float16)
    np.testing.assert_array_equal(out.values[1], ref)
    np.testing.assert_array_equal(out.values[0], ser[0])

def test_labels_move_by_whole_voxels_with_the_image_shifts(scans):
    lab, _ = scans
    moved = np.stack([lab, ndi.shift(lab, (2, -3, 1), order=0, mode="nearest")])
    out = filters.align(da.from_array(moved, chunks=(1, 11, 19, 13)), shifts=[[0, 0, 0], [-2, 3, -1]])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.values[1], out.values[0])


def test_bad_input_named(scans):
    _, ser = scans
    with pytest.raises(InputError, match="`reference`"):
        filters.align(ser, reference=3)
    with pytest.raises(InputError, match="`shifts`"):
        filters.align(ser, shifts=[[0, 0, 0]])
    with pytest.raises(InputError, match="`vol`.*4D"):
        filters.align(ser[0])
    with pytest.raises(InputError, match="`crop`"):
        filters.align(ser, shifts=np.zeros((3, 3)), crop="yes")
    with pytest.raises(InputError, match="smaller than the volume"):
        filters.align(ser, shifts=[[0, 0, 0], [45, 0, 0], [-45, 0, 0]])
    with pytest.raises(InputError, match="`sample`"):
        filters.align(ser, sample=4)


def test_cli_filter_align_then_median(scans, tmp_path, capsys):
    from bigseg.cli import main
    from bigseg.io import open_volume, save_volume

    _, ser = scans
    save_volume(ser, tmp_path / "s.ome.zarr", chunks=(16, 20, 24), progress=False)
    assert main(["filter", str(tmp_path / "s.ome.zarr"), str(tmp_path / "a.ome.zarr"), "--align", "--median", "3"]) == 0
    out = capsys.readouterr().out
    assert "align(onto t = 0; shifts z,y,x: +0.00,+0.00,+0.00; -1." in out and "-> median(3)" in out
    ref = filters.median(filters.align(ser), size=3)
    np.testing.assert_allclose(open_volume(tmp_path / "a.ome.zarr").values, ref.values, rtol=0, atol=1e-6)
    assert main(["filter", str(tmp_path / "s.ome.zarr"), str(tmp_path / "b.ome.zarr"), "--align", "7"]) == 2
    assert "`--align` to be a time step index" in capsys.readouterr().err  # the option typed, not the API name


@pytest.mark.slow
def test_larger_drift_between_noisy_scans():
    """Each scan its own noise (another simulation seed), drifts of up to 8 voxels: the second,
    overlap-matched estimate brings every axis within 0.2 voxel (the first alone was off by up to
    0.6 along the short z axis)."""
    lab = synth.electrode((64, 96, 96), seed=9, chunks=96)
    true = np.array([[0, 0, 0], [-0.05, 6.1, -5.84], [3.06, 7.6, 1.05], [-6.66, -1.58, 1.96]])
    scans = [synth.xct(lab, seed=9, preset="lab-micro-ct").values]
    scans += [ndi.shift(synth.xct(lab, seed=10 + i, preset="lab-micro-ct").values, s, order=1, mode="nearest")
              for i, s in enumerate(true[1:])]
    np.testing.assert_allclose(filters.estimate_shifts(np.stack(scans)), -true, atol=0.2)


def test_half_voxel_fractions_are_not_pulled_towards_whole_voxels():
    """Band-limited (Fourier) moves with fractions near one half, seen through each scan's own
    noise: within 0.03 voxel at ``upsample=100``. Correlating the Hann-tapered sub-volumes once
    read them up to 0.06 voxel nearer the whole voxel; correlating again after moving the scan
    by the first estimate leaves almost nothing to pull."""
    lab = synth.electrode((48, 64, 64), seed=4, chunks=64)
    img = ndi.gaussian_filter(synth.xct(lab, preset="ideal").values.astype(np.float64), 1.0)
    rng = np.random.default_rng(1)
    true = np.array([[0.0, 0.0, 0.0], [1.45, -2.5, 3.55], [-0.55, 0.48, -1.5]])
    scans = [np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(img), s)).real + rng.normal(0, 0.05, img.shape)
             for s in true]
    est = filters.estimate_shifts(np.stack(scans), sample=40, upsample=100)
    np.testing.assert_allclose(est, -true, atol=0.03)


def test_a_scan_with_nothing_to_match_is_said_not_given_a_silent_zero():
    """A blank scan (or one all NaN: outside the field of view) got the shift 0 without a word;
    it is warned about, naming the scan, and the others keep their shifts."""
    import warnings

    from bigseg.filters import estimate_shifts

    img = synth.xct(synth.electrode((24, 32, 32), seed=2), seed=2).values
    moved = ndi.shift(img, (0, 2, -1), order=1, mode="nearest")
    for blank in (np.full_like(img, 0.4), np.full_like(img, np.nan)):
        with pytest.warns(UserWarning, match=r"scan\(s\) \[2\] hold no structure .* they are given the shift 0"):
            s = estimate_shifts(np.stack([img, moved, blank]), sample=24)
        np.testing.assert_allclose(s[1], (0, -2, 1), atol=0.15)
        assert (s[2] == 0).all()
    with pytest.warns(UserWarning, match=r"scan\(s\) \[0\] .* every scan is given the shift 0"):
        estimate_shifts(np.stack([np.full_like(img, 0.4), moved]), sample=24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate_shifts(np.stack([img, moved]), sample=24)


def test_a_drift_beyond_half_the_sub_volume_is_found_on_a_wider_region():
    """Two windows of one electrode 18 and 14 voxels apart, each its own noise, correlated on
    24³ sub-volumes: the correlation wraps around (18 read as -6) and the scans were "aligned"
    by a small wrong shift without a word. The scan that does not match at its estimate is
    estimated again on a wider region, binned: within 0.3 voxel of the truth."""
    big = synth.electrode((40, 128, 128), seed=9, chunks=128)
    win = (slice(4, 36), slice(16, 112), slice(16, 112))
    ref = synth.xct(big, seed=9, preset="synchrotron-micro-ct").values
    other = synth.xct(big, seed=10, preset="synchrotron-micro-ct").values
    true = np.array([0.0, 18.0, -14.4])
    moved = ndi.shift(other, true, order=1, mode="nearest")[win]
    est = filters.estimate_shifts(np.stack([ref[win], moved, other[win]]), sample=24)
    np.testing.assert_allclose(est[1], -true, atol=0.3)
    np.testing.assert_allclose(est[2], 0, atol=0.3)


def test_a_scan_matching_nowhere_is_warned_with_its_correlation():
    """A scan of another electrode has no right shift: it is named, with the correlation at
    the shift it was given, rather than aligned silently."""
    a = synth.xct(synth.electrode((24, 48, 48), seed=2), seed=2).values
    b = synth.xct(synth.electrode((24, 48, 48), seed=5), seed=5).values
    with pytest.warns(UserWarning, match=r"scan\(s\) \[1\] do not match scan 0 .*correlation .*1 \(-?0\.\d\d\)"):
        filters.estimate_shifts(np.stack([a, b, a]), sample=24)


def test_shifts_of_many_scans_read_a_few_scans_at_a_time(scans, monkeypatch):
    """Every scan's sub-volume (and every refined pair) was read in one compute and held on the
    client together (8 MiB per 128³ float32 sub-volume: GiB for an operando series of hundreds of
    scans): SCANS_AT_ONCE scans per compute now, the shifts those of each scan alone."""
    from bigseg.filters import _align

    _, ser = scans
    n = 2 * _align.SCANS_AT_ONCE + 3
    series = np.stack([ser[t % 3] for t in range(n)])
    sizes = []
    real = _align.compute

    def compute(*objs, **kwargs):
        sizes.append(len(objs))
        return real(*objs, **kwargs)

    monkeypatch.setattr(_align, "compute", compute)
    est = filters.estimate_shifts(da.from_array(series, chunks=(1, 20, 28, 26)), sample=32)
    assert max(sizes) <= _align.SCANS_AT_ONCE
    np.testing.assert_allclose(est, -TRUE[np.arange(n) % 3], atol=0.2)


def test_a_pass_over_many_scans_draws_one_bar_not_one_per_few_scans(scans, capsys):
    """Each group of SCANS_AT_ONCE scans drew a bar of its own: ~50 bars in a batch log for the
    passes over 128 scans. One bar per pass now, over its scans."""
    from bigseg.filters import _align

    _, ser = scans
    n = 2 * _align.SCANS_AT_ONCE + 3
    series = np.stack([ser[t % 3] for t in range(n)])
    filters.estimate_shifts(da.from_array(series, chunks=(1, 20, 28, 26)), sample=32, progress=True)
    done = [line for line in capsys.readouterr().err.splitlines() if "100%" in line]
    reads = [line for line in done if line.startswith("sub-volumes for alignment")]
    assert len(reads) == 2  # the reference's sub-volume, then one bar over the scans' (was 1 + 3)
    assert f"{n - 1}/{n - 1}" not in reads[0] and f"{n}/{n}" in reads[1] and "scan" in reads[1]
    pairs = [line for line in done if line.startswith("aligned sub-volumes")]
    assert 1 <= len(pairs) <= _align.REFINE_PASSES + 1  # a bar per refinement pass and the match (was 3 per pass)
