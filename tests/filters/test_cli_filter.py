"""``bigseg filter`` writes the exact filter chain into a new OME-Zarr."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from skimage.filters import unsharp_mask

from bigseg.cli import main
from bigseg.io import open_volume, save_volume


def test_filter_cli_lrcsnet_chain(tmp_path, capsys):
    a = np.random.default_rng(0).normal(100, 10, (20, 24, 28)).astype(np.float32)
    save_volume(a, tmp_path / "in.ome.zarr", chunks=(7, 11, 13), voxel_size=(2, 1, 1), unit="um", progress=False)
    rc = main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "out.ome.zarr"), "--median", "3",
               "--unsharp", "6,0.6", "--unsharp-2d"])
    assert rc == 0
    assert "median(3) -> unsharp(6.0, 0.6, 2d)" in capsys.readouterr().out
    out = open_volume(tmp_path / "out.ome.zarr")
    assert out.attrs["voxel_size"] == (2.0, 1.0, 1.0) and out.dtype == np.float32
    ref = np.stack([unsharp_mask(s, radius=6, amount=0.6, preserve_range=True) for s in ndi.median_filter(a, 3)])
    np.testing.assert_allclose(out.values, ref, rtol=1e-5, atol=1e-3)


def test_filter_cli_normalize_gaussian_and_errors(tmp_path, capsys):
    a = np.random.default_rng(1).integers(0, 4000, (12, 13, 14)).astype(np.uint16)
    save_volume(a, tmp_path / "in.ome.zarr", chunks=5, progress=False)
    assert main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "o.ome.zarr"), "--normalize",
                 "--gaussian", "1.1"]) == 0
    lo, hi = np.percentile(a, [0.5, 99.5])
    ref = ndi.gaussian_filter(np.clip((a.astype(np.float32) - lo) / (hi - lo), 0, 1), 1.1)
    np.testing.assert_allclose(open_volume(tmp_path / "o.ome.zarr").values, ref, rtol=1e-5, atol=1e-6)
    assert main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "p.ome.zarr")]) == 2
    assert main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "p.ome.zarr"), "--gaussian", "0"]) == 2
    err = capsys.readouterr().err
    assert "--median" in err and "`--gaussian` > 0" in err
    assert main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "p.ome.zarr"), "--normalize",
                 "--gaussian", "0"]) == 2
    err = capsys.readouterr().err
    assert "`--gaussian` > 0" in err and "value range" not in err  # refused before normalize's passes
    src, dst = str(tmp_path / "in.ome.zarr"), str(tmp_path / "p.ome.zarr")
    for argv, said in ((["--median", "100"], "`--median` a window of at most 100,000 voxels"),  # was MemoryError
                       (["--median", "3", "--unsharp-2d"], "--unsharp-2d with --unsharp"),  # was ignored
                       (["--unsharp", "0,0.5"], "`--unsharp` > 0"),
                       (["--normalize", "99,1"], "0 <= LOW < HIGH <= 100")):
        assert main(["filter", src, dst, *argv]) == 2, argv
        assert said in capsys.readouterr().err, argv
    assert main(["filter", src, dst, "--median", "15", "--no-progress"]) == 0  # wider than the volume: mirrored, as scipy


def test_filter_cli_refuses_to_normalize_a_blank_scan(tmp_path, capsys):
    src = save_volume(np.full((8, 9, 10), 7, np.uint16), tmp_path / "blank.ome.zarr", progress=False)
    assert main(["filter", src, str(tmp_path / "out.ome.zarr"), "--normalize", "--no-progress"]) == 2
    assert "more than one grey value between its 0.5 and 99.5 percentiles" in capsys.readouterr().err
    assert not list(tmp_path.glob("*out.ome.zarr*"))  # zeros were written as the filtered scan


def test_filter_cli_draws_before_and_after_on_request(tmp_path, capsys):
    """`bigseg filter` drew nothing: `--plot` draws the same central slices before and after,
    checked before any work; an aligned series' before is the region every scan covers."""
    import matplotlib.image as mpimg

    a = np.random.default_rng(0).normal(100, 10, (20, 24, 28)).astype(np.float32)
    save_volume(a, tmp_path / "in.ome.zarr", chunks=(7, 11, 13), progress=False)
    fig = tmp_path / "f.png"
    assert main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "out.ome.zarr"), "--median", "3",
                 "--plot", str(fig), "--no-progress"]) == 0
    assert f"figure {fig}" in capsys.readouterr().out and mpimg.imread(fig)[..., :3].std() > 0.05
    assert main(["filter", str(tmp_path / "in.ome.zarr"), str(tmp_path / "o2.ome.zarr"), "--median", "3",
                 "--plot", str(tmp_path / "f.csv"), "--no-progress"]) == 2
    assert "`--plot` to end in .png" in capsys.readouterr().err and not (tmp_path / "o2.ome.zarr").exists()
    ser = np.stack([a, np.roll(a, 2, axis=1)])
    save_volume(ser, tmp_path / "ser.ome.zarr", chunks=(1, 10, 12, 14), progress=False)
    assert main(["filter", str(tmp_path / "ser.ome.zarr"), str(tmp_path / "al.ome.zarr"), "--align",
                 "--plot", str(tmp_path / "al.png"), "--no-progress"]) == 0
    assert (tmp_path / "al.png").exists()


def test_filter_cli_plot_after_align_and_another_filter(tmp_path, capsys):
    """--align then --median with --plot: the median dropped align's `crop`, so the before slices
    were the uncropped series and the figure was refused ("`before` to have the image's shape")
    after dest was written, exit 2."""
    a = np.random.default_rng(0).normal(100, 10, (12, 16, 18)).astype(np.float32)
    save_volume(np.stack([a, np.roll(a, 2, axis=1)]), tmp_path / "ser.ome.zarr", chunks=(1, 6, 8, 9), progress=False)
    assert main(["filter", str(tmp_path / "ser.ome.zarr"), str(tmp_path / "al.ome.zarr"), "--align", "--median", "3",
                 "--plot", str(tmp_path / "al.png"), "--no-progress"]) == 0, capsys.readouterr().err
    assert (tmp_path / "al.png").exists()
