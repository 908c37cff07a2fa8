"""Time-regularised segmentation of a series (``temporal``): each scan's probabilities averaged
over its neighbours before the argmax, compared with the mean of the per-scan probabilities
taken in NumPy; the field of view stays 255; the disk-staged path (pipeline, CLI) agrees with
the lazy one and leaves nothing behind."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigseg import predict, synth
from bigseg.cli import main
from bigseg.errors import InputError
from bigseg.infer import segment, smooth_over_time
from bigseg.infer._temporal import staged
from bigseg.io import make_volume, open_volume, save_volume

from ._infer_nets import conv3d_net

KW = dict(patch=(8, 8, 8), overlap=0.25)


def _window_mean(p: np.ndarray, r: int) -> np.ndarray:
    n = p.shape[0]
    return np.stack([p[max(0, t - r):min(n, t + r + 1)].mean(axis=0) for t in range(n)])


@pytest.mark.parametrize("r", [1, 2, 6])
def test_probabilities_averaged_over_the_window_for_any_chunking(r):
    rng = np.random.default_rng(0)
    arr = rng.random((4, 13, 21, 18), dtype=np.float32)
    net = conv3d_net(3)
    alone = predict(arr, net, **KW, probabilities=True).probabilities.values
    want = _window_mean(alone, r)
    for chunks in [(1, 6, 11, 7), (2, 13, 5, 18)]:
        ds = predict(da.from_array(arr, chunks=chunks), net, **KW, temporal=r, probabilities=True,
                     uncertainty="entropy")
        assert ds.attrs["temporal"] == r and ds.probabilities.dims == ("t", "phase", "z", "y", "x")
        got = ds.probabilities.values
        np.testing.assert_allclose(got, want, atol=2e-7)
        top2 = np.sort(want, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-5  # away from ties
        np.testing.assert_array_equal(ds.labels.values[clear], want.argmax(axis=1)[clear])
        ent = -(got * np.log(np.clip(got, 1e-12, 1))).sum(axis=1)
        np.testing.assert_allclose(ds.uncertainty.values, ent, atol=1e-5)
    if r >= 3:  # the window spans the whole series: every scan gets the same labels
        lab = ds.labels.values
        assert all((lab[t] == lab[0]).all() for t in range(4))


def test_temporal_zero_is_each_scan_alone_and_probabilities_are_dropped_unless_asked():
    rng = np.random.default_rng(1)
    arr = rng.random((3, 10, 12, 14), dtype=np.float32)
    net = conv3d_net(3)
    alone = predict(arr, net, **KW)
    np.testing.assert_array_equal(predict(arr, net, **KW, temporal=0).labels.values, alone.labels.values)
    ds = predict(arr, net, **KW, temporal=1)
    assert set(ds.data_vars) == {"labels"}
    assert (ds.labels.values != alone.labels.values).any()  # it did average


@pytest.mark.parametrize("bad", [-1, 1.5, "one", True])
def test_bad_temporal_is_refused_by_name(bad):
    arr = np.zeros((2, 8, 8, 8), np.float32)
    with pytest.raises(InputError, match="`temporal`"):
        predict(arr, conv3d_net(0), **KW, temporal=bad)


def test_bad_arguments_of_the_window_are_refused_before_work():
    arr = np.zeros((2, 8, 8, 8), np.float32)
    with pytest.raises(InputError, match="`uncertainty`"):
        predict(arr, conv3d_net(0), **KW, temporal=1, uncertainty="variance")
    ds = predict(arr, conv3d_net(0), **KW)
    with pytest.raises(InputError, match="probabilities"):
        smooth_over_time(ds, 1)  # labels only: nothing to average


def test_temporal_needs_a_series():
    vol = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(InputError, match=r"`temporal` 0 for a single \(z, y, x\) volume.*Got 1 instead"):
        predict(vol, conv3d_net(0), **KW, temporal=1)
    with pytest.raises(InputError, match="`temporal`"):
        segment(vol, "default", temporal=2)


def _noisy_series(steps=3, n=32, seed=4):
    truth = synth.series((n, n, n), steps=steps, seed=seed, chunks=16).values
    image = np.stack([synth.xct(truth[t], seed=seed + 1000 * t).values for t in range(steps)])
    return truth, image


def test_the_window_cuts_flicker_and_raises_iou_on_a_noisy_series():
    """The default model on independently noisy scans of a slowly changing electrode: the
    averaged labels change phase between scans far less often and agree better with the truth
    at every step (mean IoU over the phases)."""
    truth, image = _noisy_series()
    alone = segment(image, "default").labels.values
    smooth = segment(image, "default", temporal=1).labels.values

    def changed(lab):
        return np.mean([(lab[t] != lab[t + 1]).mean() for t in range(len(lab) - 1)])

    def iou(lab, t):
        return np.mean([((lab[t] == k) & (truth[t] == k)).sum() / ((lab[t] == k) | (truth[t] == k)).sum()
                        for k in range(3)])

    assert changed(smooth) < 0.5 * changed(alone)
    for t in range(len(truth)):
        assert iou(smooth, t) > iou(alone, t)


def test_field_of_view_stays_unlabelled():
    """Outside: labels 255, probabilities and uncertainty NaN (no data); inside all finite."""
    _, image = _noisy_series(steps=2, n=24)
    ds = segment(image, "default", fov="cylinder", temporal=1, probabilities=True, uncertainty="entropy")
    lab, prob, unc = ds.labels.values, ds.probabilities.values, ds.uncertainty.values
    yy, xx = np.mgrid[:24, :24]
    outside = (yy - 11.5) ** 2 + (xx - 11.5) ** 2 > 12.0 ** 2
    assert (lab[:, :, outside] == 255).all()
    assert (lab[:, :, ~outside] < 3).all()
    assert np.isnan(prob[..., outside]).all() and np.isnan(unc[..., outside]).all()
    assert np.isfinite(prob[..., ~outside]).all() and np.isfinite(unc[..., ~outside]).all()
    np.testing.assert_array_equal(prob.argmax(1)[:, :, ~outside], lab[:, :, ~outside])


def test_a_scan_without_data_at_a_voxel_is_left_out_of_its_mean():
    """Fields of view that differ between scans: a voxel's mean over the scans that saw it."""
    from bigseg.kernels.blend import mean_in_order

    a = np.array([[0.2, 0.4], [0.6, np.nan]], np.float32)
    b = np.array([[0.4, np.nan], [0.8, np.nan]], np.float32)
    np.testing.assert_allclose(mean_in_order(a, b), [[0.3, 0.4], [0.7, np.nan]], rtol=1e-6)
    np.testing.assert_array_equal(mean_in_order(a[:1], np.ones((1, 2), np.float32)), (a[:1] + 1) / 2)  # as before


def test_staged_equals_lazy_and_removes_its_scratch(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.random((3, 12, 16, 20), dtype=np.float32)
    net = conv3d_net(5)
    ds = predict(da.from_array(arr, chunks=(1, 6, 8, 10)), net, **KW, probabilities=True)
    lazy = smooth_over_time(ds, 1, probabilities=True)
    with staged(ds, tmp_path, progress=False) as st:
        assert len(list(tmp_path.iterdir())) == 1  # the scratch store
        got = smooth_over_time(st, 1, probabilities=True)
        np.testing.assert_allclose(got.probabilities.values, lazy.probabilities.values, atol=1e-3)  # float16
        agree = (got.labels.values == lazy.labels.values).mean()
        assert agree > 0.995
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"):
        with staged(ds, tmp_path, progress=False):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_window_over_misaligned_scans_is_warned_about(tmp_path, capsys):
    """Scans moved against each other (no filters.align) would be averaged voxel by voxel: said
    by the API, the CLI and the pipeline, with the scans and the movement; aligned scans and
    scans that share nothing (noise) are not (warnings are errors in the tests)."""
    from bigseg.infer._temporal import warn_if_misaligned
    from bigseg.pipeline import Pipeline

    _, image = _noisy_series(steps=3, n=24)
    moved = image.copy()
    moved[2] = np.roll(image[2], 3, axis=1)
    np.testing.assert_array_equal(warn_if_misaligned(image, 1), 0)
    np.testing.assert_array_equal(warn_if_misaligned(np.random.default_rng(0).random((4, 13, 21, 18)), 2), 0)
    assert warn_if_misaligned(moved, 0) is None  # no window: nothing read
    net = conv3d_net(3)
    with pytest.warns(UserWarning, match=r"scans 0 and 2 of the series.*moved 3 voxels.*filters.align"):
        ds = predict(moved, net, **KW, temporal=1)
    assert ds.labels.shape == moved.shape  # said, not refused
    src = tmp_path / "m.ome.zarr"
    save_volume(make_volume(moved), src, progress=False)
    assert main(["segment", str(src), "--model", "default", "--temporal", "1", "--no-progress"]) == 0
    assert "scans 0 and 2 of the series" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"scans 0 and 1 of the series.*moved 3 voxels"):
        Pipeline(predict={"temporal": 1}, filters={"normalize": False}).run(
            moved[1:], tmp_path / "run", progress=False)


def test_the_drift_check_reads_a_few_scans_at_a_time(monkeypatch):
    """The drift check held every scan's central crop on the client at once (3 MiB per 64³ crop:
    385 MiB for 128 scans, 1.5 GiB for 500) where each pair needs only the scan before: read
    SCANS_AT_ONCE scans per compute now, the drift the same across the reads' borders."""
    import bigseg.runtime
    from bigseg.filters._align import SCANS_AT_ONCE
    from bigseg.infer import _temporal

    _, image = _noisy_series(steps=1, n=24)
    n = 2 * SCANS_AT_ONCE + 3
    series = np.stack([image[0]] * n)
    series[SCANS_AT_ONCE:] = np.roll(image[0], 3, axis=1)  # moved between two reads
    sizes = []
    real = bigseg.runtime.compute

    def compute(*objs, **kwargs):
        sizes.append(len(objs))
        return real(*objs, **kwargs)

    monkeypatch.setattr(bigseg.runtime, "compute", compute)
    with pytest.warns(UserWarning, match=rf"scans {SCANS_AT_ONCE - 2} and {SCANS_AT_ONCE} .*"
                                         r"moved 3 voxels"):  # (the first pair of a window across the move)
        drift = _temporal.warn_if_misaligned(series, 1)
    assert max(sizes) <= SCANS_AT_ONCE and sum(sizes) == n
    assert drift.shape == (n, 3)
    np.testing.assert_array_equal(drift[:SCANS_AT_ONCE], 0)
    np.testing.assert_array_equal(np.abs(drift[SCANS_AT_ONCE:]), [[0, 3, 0]] * (n - SCANS_AT_ONCE))


def test_cli_segment_temporal(tmp_path, capsys):
    _, image = _noisy_series(steps=3, n=24)
    src = tmp_path / "s.ome.zarr"
    save_volume(make_volume(da.from_array(image, chunks=(1, 12, 12, 24))), src, progress=False)
    assert main(["segment", str(src), "--model", "default", "--temporal", "1", "--probabilities",
                 "--no-progress"]) == 0
    lab = open_volume(src / "labels" / "segmentation").values
    want = segment(image, "default", temporal=1).labels.values
    assert (lab == want).mean() > 0.995  # stored as float16 between the passes
    assert open_volume(src / "labels" / "segmentation_probabilities").dims == ("t", "phase", "z", "y", "x")
    assert not list(src.rglob(".temporal*"))
    assert main(["segment", str(src), "--method", "threshold", "--temporal", "1", "--name", "t"]) == 2
    assert "`--temporal` only with --model" in capsys.readouterr().err


def test_staged_with_a_key_resumes_after_an_interruption(tmp_path):
    rng = np.random.default_rng(3)
    arr = rng.random((3, 12, 16, 20), dtype=np.float32)
    ds = predict(da.from_array(arr, chunks=(1, 6, 8, 10)), conv3d_net(5), **KW, probabilities=True)
    want = smooth_over_time(ds, 1, probabilities=True).probabilities.values
    state = {"fail": True, "calls": 0}

    def block(b, block_info=None):
        where = tuple(block_info[0]["chunk-location"])  # (dask's call for the output's meta stops here)
        state["calls"] += 1
        if state["fail"] and where == (2, 0, 1, 1, 1):
            raise RuntimeError("worker lost")
        return b

    flaky = ds.copy()
    flaky["probabilities"] = ds.probabilities.copy(data=ds.probabilities.data.map_blocks(block, dtype=np.float32))
    with pytest.raises(RuntimeError, match="worker lost"):
        with staged(flaky, tmp_path, key="series A", progress=False):
            pass
    kept = list(tmp_path.iterdir())
    assert len(kept) == 1  # kept for the resume
    state.update(fail=False, calls=0)
    with staged(flaky, tmp_path, key="series A", progress=False) as st:
        got = smooth_over_time(st, 1, probabilities=True).probabilities.values
    assert 0 < state["calls"] < 24  # 3 scans x 2 x 2 x 2 blocks: only those not on disk
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):  # another key removes what an old one left
        state["fail"] = True
        with staged(flaky, tmp_path, key="series A", progress=False):
            pass
    state["fail"] = False
    with staged(flaky, tmp_path, key="series B", progress=False):
        assert len(list(tmp_path.iterdir())) == 1
    assert list(tmp_path.iterdir()) == []


def test_scratches_of_two_outputs_in_one_folder_leave_each_other_alone(tmp_path):
    # `bigseg segment a --out x/a.zarr --temporal 1` and `... b --out x/b.zarr` at the same time
    rng = np.random.default_rng(4)
    ds = predict(da.from_array(rng.random((2, 6, 8, 10), dtype=np.float32), chunks=(1, 6, 8, 10)), conv3d_net(5),
                 **KW, probabilities=True)
    with staged(ds, tmp_path, key="scan a", prefix="temporal.a.zarr", progress=False):
        with staged(ds, tmp_path, key="scan b", prefix="temporal.b.zarr", progress=False):
            assert len(list(tmp_path.iterdir())) == 2
    assert list(tmp_path.iterdir()) == []
