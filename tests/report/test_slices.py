"""orthoslices: the figure of orthogonal slices with fixed phase colours."""

from __future__ import annotations

import dask.array as da
import matplotlib
import numpy as np
import pytest

from bigseg.errors import InputError
from bigseg.io import make_volume, phase_colour
from bigseg.report import fov_figure, label_rgba, orthoslices

matplotlib.use("Agg")


def test_label_colours_are_the_fixed_phase_colours():
    lab = np.array([[0, 1], [2, 255]], np.uint8)
    rgba = label_rgba(lab, ["pore", "cbd", "active"])
    assert np.allclose(rgba[0, 1], np.array(phase_colour("cbd", 1)) / 255)
    assert np.allclose(rgba[1, 0], np.array(phase_colour("active", 2)) / 255)
    assert rgba[1, 1, 3] == 0  # unlabelled is transparent


def test_writes_png_reading_only_slices(tmp_path):
    rng = np.random.default_rng(0)
    img = make_volume(da.from_array(rng.random((20, 30, 40), dtype=np.float32), chunks=10), voxel_size=50, unit="nm")
    lab = make_volume(da.from_array(rng.integers(0, 3, (20, 30, 40), dtype=np.uint8), chunks=10),
                      phases=["pore", "cbd", "active"])
    path = tmp_path / "f.png"
    fig = orthoslices(img, lab, path=path, title="test")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes) >= 6


def test_figure_pixels_use_phase_colours(tmp_path):
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[:, :, 5:] = 2
    fig = orthoslices(None, lab, index=(5, 5, 5))
    arr = fig.axes[0].images[0].get_array()
    assert np.allclose(arr[0, 0], np.array(phase_colour("pore", 0)) / 255)
    assert np.allclose(arr[0, 9], np.array(phase_colour("active", 2)) / 255)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_series_uses_time_step(tmp_path):
    lab = np.zeros((3, 8, 8, 8), np.uint8)
    lab[2] = 2
    fig = orthoslices(None, lab, t=-1)
    arr = fig.axes[0].images[0].get_array()
    assert np.allclose(arr[0, 0], np.array(phase_colour("active", 2)) / 255)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_input():
    with pytest.raises(InputError, match="`image` or `labels`"):
        orthoslices(None, None)
    with pytest.raises(InputError, match="`labels`"):
        orthoslices(np.zeros((4, 4, 4)), np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(InputError, match="`index`"):
        orthoslices(np.zeros((4, 4, 4)), index=(9, 0, 0))


def test_timeslices_of_a_thin_volume_are_not_mostly_white_space():
    """Was: every row 2.5 in high, so flat xz slices of an 8-slice volume took 9 % of the figure."""
    import matplotlib.pyplot as plt

    from bigseg.report import timeslices

    lab = (np.random.default_rng(0).random((5, 8, 64, 64)) < 0.4).astype(np.uint8) * 2
    for img in (lab.astype(np.float32), None):
        fig = timeslices(img, lab, plane="xz", steps=4)
        fig.canvas.draw()
        slices = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
        assert slices[0].images[0].get_array().shape[:2] == (8, 64)
        shown = sum(ax.get_window_extent().height for ax in slices[::4]) / fig.bbox.height
        assert shown > 0.15, shown
        plt.close(fig)


def test_timeslices_show_the_same_slice_at_each_step(tmp_path):
    import matplotlib.pyplot as plt

    from bigseg.report import timeslices

    lab = np.zeros((12, 6, 8, 10), np.uint8)
    for t in range(12):
        lab[t, :, :, : t] = 2  # the active phase grows along x with time
    img = lab.astype(np.float32) * 3 + np.arange(12, dtype=np.float32)[:, None, None, None]
    fig = timeslices(img, lab, plane="xz", index=4, steps=4, path=None)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["t = 0", "t = 4", "t = 7", "t = 11"]  # evenly spaced, first and last
    labels_row = [ax for ax in fig.axes if ax.images][4:]
    for ax, t in zip(labels_row, (0, 4, 7, 11)):
        arr = ax.images[0].get_array()  # an xz slice: z rows, x columns
        assert arr.shape[:2] == (6, 10)
        active = np.isclose(arr[0], np.array(phase_colour("active", 2)) / 255).all(-1)
        assert np.count_nonzero(active) == min(t, 10)
    # one grey window for every step: the brightening shows
    grey = [ax.images[0] for ax in fig.axes if ax.images][:4]
    assert len({im.get_clim() for im in grey}) == 1
    plt.close(fig)
    path = tmp_path / "t.png"
    timeslices(None, lab, path=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="`plane`"):
        timeslices(None, lab, plane="ab")
    with pytest.raises(InputError, match="`index`"):
        timeslices(None, lab, index=6)
    with pytest.raises(InputError, match="4D"):
        timeslices(None, lab[0])
    # times with a unit (the t coordinate's) read as such above each step
    import xarray as xr

    timed = xr.DataArray(lab[:3], dims=("t", "z", "y", "x"), coords={"t": ("t", [0.0, 30.0, 60.0], {"units": "min"})})
    fig = timeslices(None, timed, path=None)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["t = 0 min", "t = 30 min", "t = 60 min"]
    plt.close(fig)


def test_index_and_time_step_refused_not_truncated_or_wrapped():
    """QA (static analysis): ``int(i)`` ran before the index check (2.7 showed slice 2; 'a' and a
    bare 3 were Python errors) and a series' ``t`` was wrapped round (t=5 of 3 steps showed 2)."""
    img = np.zeros((6, 6, 6), np.float32)
    for bad in [(2.7, 3, 3), 3, ("a", 1, 1)]:
        with pytest.raises(InputError, match="`index`"):
            orthoslices(img, index=bad)
    series = np.zeros((3, 6, 6, 6), np.float32)
    for bad in [3, -4, 1.5, "x", None]:
        with pytest.raises(InputError, match="`t`"):
            orthoslices(series, t=bad)
        with pytest.raises(InputError, match="`t`"):
            fov_figure(series, np.ones((6, 6), bool), t=bad)
    import matplotlib.pyplot as plt

    for fig in (orthoslices(series, t=-3, index=np.array([1, 2, 3])), fov_figure(series, np.ones((6, 6), bool), t=2)):
        plt.close(fig)


def test_slices_before_a_filter_share_its_window_unless_in_other_units():
    """`before` is drawn above the filtered image in the image's grey window (what the filter did
    shows as it is), in its own where the windows differ (a normalisation into [0, 1])."""
    import matplotlib.pyplot as plt
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    raw = rng.normal(1000.0, 50.0, (12, 16, 20)).astype(np.float32)
    smooth = ndi.median_filter(raw, 3)
    fig = orthoslices(smooth, before=raw)
    assert [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["before", "after"]  # (the 2 x 3 slices first)
    grey = [ax.images[0].get_clim() for ax in fig.axes[:6] if ax.images]
    assert len(grey) == 6 and all(c == grey[3] for c in grey)  # the six slices in the filtered image's window
    plt.close(fig)
    normed = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    fig = orthoslices(normed, before=raw)
    grey = [ax.images[0].get_clim() for ax in fig.axes[:6] if ax.images]
    assert grey[0] != grey[3] and grey[0][0] > 100 and grey[3][1] <= 1  # each in its own units
    plt.close(fig)
    with pytest.raises(InputError, match="`before` to have the image's shape"):
        orthoslices(smooth, before=raw[:, :, :5])
    with pytest.raises(InputError, match="`image` with `before`"):
        orthoslices(None, np.zeros(raw.shape, np.uint8), before=raw)


def test_slices_before_share_the_window_while_half_the_narrower_one_is_in_common():
    """The before row takes the filtered image's grey window while the two windows have at least
    half the narrower one in common (its colour bar then says "after"), its own window below that:
    windows (0, 100) and (50, 150) share exactly half, (51, 151) less."""
    import matplotlib.pyplot as plt

    image = (np.arange(12 * 16 * 20, dtype=np.float64).reshape(12, 16, 20) % 101)  # 0..100 in each slice
    for shift, shared in ((50.0, True), (51.0, False)):
        fig = orthoslices(image, before=image + shift, percentiles=(0, 100))
        grey = [ax.images[0].get_clim() for ax in fig.axes if ax.images]
        bars = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel().startswith("grey value")]
        assert grey[3:] == [(0.0, 100.0)] * 3, shift  # the image's own window
        assert grey[:3] == [(0.0, 100.0) if shared else (shift, 100.0 + shift)] * 3, shift
        assert len(bars) == 2 and bars[0].endswith(" after)") == shared and not bars[1].endswith(" after)"), bars
        plt.close(fig)
