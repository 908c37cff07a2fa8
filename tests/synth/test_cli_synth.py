"""``bigseg synth``: OME-Zarr image + labels, series, PNG, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from bigseg.io import DEFAULT_PHASES, open_volume
from bigseg.synth import electrode, xct


@pytest.fixture
def run(bigseg_cli):
    """``bigseg synth ARGS`` (in this process; the entry point has its own test)."""
    return lambda *args, check=True: bigseg_cli("synth", *args, check=check)


def test_writes_image_labels_and_png(tmp_path, run):
    dest = tmp_path / "s.ome.zarr"
    png = tmp_path / "s.png"
    out = run(dest, "--shape", "40,48,56", "--chunks", "17,23,30", "--seed", "4", "--voxel-size", "50", "--unit", "nm",
              "--perturb", "--png", png, "--no-progress")
    assert "wrote" in out.stdout
    img = open_volume(dest)
    lab = open_volume(dest, label="truth")
    pert = open_volume(dest, label="perturbed")
    assert img.shape == lab.shape == (40, 48, 56) and img.dtype == np.float32 and lab.dtype == np.uint8
    assert lab.attrs["phases"] == DEFAULT_PHASES and img.attrs["voxel_size"] == (50.0, 50.0, 50.0)
    assert img.attrs["unit"] == "nm"
    # what was written is exactly the API's result (which is chunk independent)
    ref = electrode((40, 48, 56), seed=4, chunks=64)
    assert np.array_equal(lab.values, ref.values)
    np.testing.assert_allclose(img.values, xct(ref, seed=4).values, atol=1e-6, rtol=0)
    assert 0 < (pert.values != lab.values).mean() < 0.5
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the usual next step needs no --name/--overwrite: the segmentation goes beside the truth
    from bigseg.cli import main

    assert main(["segment", str(dest), "--method", "threshold"]) == 0
    assert open_volume(dest, label="segmentation").shape == (40, 48, 56)
    assert np.array_equal(open_volume(dest, label="truth").values, ref.values)


def test_series_and_options(tmp_path, run):
    dest = tmp_path / "t.ome.zarr"
    run(dest, "--shape", "32", "--steps", "3", "--chunks", "16", "--preset", "lab-micro-ct", "--bits", "8",
        "--snr", "inf", "--no-progress")
    img = open_volume(dest)
    assert img.dims == ("t", "z", "y", "x") and img.shape == (3, 32, 32, 32) and img.dtype == np.uint8
    assert open_volume(dest, label="truth").shape == (3, 32, 32, 32)


def test_a_cylinder_as_a_reconstruction_images_it(tmp_path, run):
    dest = tmp_path / "c.ome.zarr"
    run(dest, "--shape", "16,36,40", "--seed", "2", "--cylinder", "--perturb", "--no-progress")
    yy, xx = np.ogrid[:36, :40]
    inside = (yy - 17.5) ** 2 + (xx - 19.5) ** 2 <= 18 ** 2
    img, lab = open_volume(dest).values, open_volume(dest, label="truth").values
    ref = electrode((16, 36, 40), seed=2, chunks=64).values
    assert (img[:, ~inside] == 0).all() and (img[:, inside] != 0).all()
    assert (lab[:, ~inside] == 255).all() and np.array_equal(lab[:, inside], ref[:, inside])
    assert (open_volume(dest, label="perturbed").values[:, ~inside] == 255).all()
    from bigseg.cli import main

    assert main(["segment", str(dest), "--method", "threshold", "--fov", "auto"]) == 0
    assert (open_volume(dest, label="segmentation").values[:, ~inside] == 255).all()


def test_a_volume_thinner_than_the_perturbation_halo(tmp_path, run):
    """Three slices and 5 iterations (this printed dask's 'overlapping depth 5 is larger than
    your array 3' with a traceback)."""
    dest = tmp_path / "thin.ome.zarr"
    run(dest, "--shape", "3,40,40", "--perturb", "--no-progress")
    from bigseg.synth import perturb

    truth = open_volume(dest, label="truth")
    assert np.array_equal(open_volume(dest, label="perturbed").values, perturb(truth.values, seed=0).values)


def test_refuses_to_overwrite(tmp_path, run):
    dest = tmp_path / "s.ome.zarr"
    run(dest, "--shape", "24", "--no-progress")
    out = run(dest, "--shape", "24", "--no-progress", check=False)
    assert out.returncode == 2 and "overwrite" in out.stderr


@pytest.mark.parametrize(
    "args, name",
    [
        (["--fractions", "0.5,0.2,0.4"], "fractions"),
        (["--radius=-3"], "radius"),
        (["--preset", "cone-beam"], "preset"),
        (["--shape", "0"], "shape"),
        (["--snr", "-2"], "snr"),
    ],
)
def test_bad_input_names_the_argument(tmp_path, args, name, run):
    out = run(tmp_path / "x.ome.zarr", "--shape", "24", *args, check=False) if name != "shape" else \
        run(tmp_path / "x.ome.zarr", *args, check=False)
    assert out.returncode == 2
    assert f"`--{name}`" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.ome.zarr").exists()
