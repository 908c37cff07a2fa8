"""Command-line checks found acting as a user (QA helper A): phases named by options checked
before any pass over the data, an option given twice with two values said, a synthetic scan's unit
without a voxel size, a folder of slices mixing two name patterns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


@pytest.fixture
def labels(tmp_path):
    """A small OME-Zarr image with its labels in labels/truth."""
    from bigseg.io import save_labels, save_volume

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, (8, 10, 12)).astype(np.uint8)
    img = save_volume(truth.astype(np.float32), tmp_path / "s.ome.zarr", progress=False)
    save_labels(truth, img, name="truth", phases=["pore", "cbd", "active"], progress=False)
    return tmp_path / "s.ome.zarr" / "labels" / "truth"


@pytest.mark.parametrize("option, value, bad", [("--shells", "active:binder:5", "binder"),
                                                ("--shells", "nmc:cbd:5", "nmc"),
                                                ("--shells", "cbd:cbd:5", "to name two phases"),
                                                ("--thickness", "pore,void", "void")])
def test_measure_refuses_unknown_phases_before_any_work(labels, monkeypatch, bigseg_cli, option, value, bad):
    import bigseg.measure

    def no_work(*args, **kwargs):
        raise AssertionError("measured before the options were checked")

    monkeypatch.setattr(bigseg.measure, "summary", no_work)  # was: the whole summary pass, then `of`/`phase`
    out = bigseg_cli("measure", labels, option, value, "--no-progress", check=False)
    assert out.returncode == 2, out.stderr
    assert f"`{option}`" in out.stderr and bad in out.stderr, out.stderr


def test_an_option_given_twice_with_two_values_is_said(tmp_path, bigseg_cli):
    """`--voxel-size 0.5 ... --voxel-size 2` (a script's default and an override, a pasted
    line) was taken as 2 without a word; the last is still taken (the override), and said."""
    import bigseg

    src = tmp_path / "scan.npy"
    np.save(src, np.zeros((4, 6, 6), np.uint16))
    out = bigseg_cli("ingest", src, tmp_path / "a.ome.zarr", "--voxel-size", "0.5", "--unit", "um",
                     "--voxel-size=2", "--no-progress")
    assert ("bigseg ingest: warning: --voxel-size given 2 times, as --voxel-size 0.5 and --voxel-size 2: the last, "
            "2, is taken") in out.stderr
    assert bigseg.open_volume(tmp_path / "a.ome.zarr").attrs["voxel_size"] == (2.0, 2.0, 2.0)
    # the same value twice is one value: no word
    out = bigseg_cli("ingest", src, tmp_path / "b.ome.zarr", "--voxel-size", "0.5", "--voxel-size", "0.5",
                     "--no-progress")
    assert "given 2 times" not in out.stderr
    assert bigseg.open_volume(tmp_path / "b.ome.zarr").attrs["voxel_size"] == (0.5, 0.5, 0.5)


def test_options_given_once_leave_no_trace_in_the_parsed_arguments(monkeypatch):
    """What records the options given is no argument of the command (its resume keys are made
    of every argument): `main` removes it after parsing."""
    import bigseg.cli.cmd_ingest as cmd
    from bigseg.cli import _GIVEN, main

    seen = {}
    monkeypatch.setattr(cmd, "run", lambda args: seen.update(vars(args)) or 0)
    assert main(["ingest", "a.npy", "b.ome.zarr", "--voxel-size", "2"]) == 0
    assert seen["voxel_size"] == "2" and _GIVEN not in seen


def test_synth_refuses_a_unit_without_a_voxel_size(tmp_path, bigseg_cli):
    """`--unit um` alone made voxels of 1 um without a word (the help: default 1 voxel), where
    `measure` refuses the same; now refused by name before any work."""
    out = bigseg_cli("synth", tmp_path / "s.ome.zarr", "--shape", "8", "--unit", "um", "--no-progress", check=False)
    assert out.returncode == 2 and "`--unit` only with --voxel-size" in out.stderr, out.stderr
    assert not (tmp_path / "s.ome.zarr").exists()


def test_a_folder_of_two_scans_slices_is_warned_about(tmp_path):
    """recon_0000.tif ... beside recon_old_0000.tif ... (or a 'slice (copy).tif') were stacked as
    one volume of twice the planes without a word (the gap check reads one name pattern only)."""
    import tifffile

    import bigseg

    folder = tmp_path / "scan"
    folder.mkdir()
    for z in range(3):
        tifffile.imwrite(folder / f"recon_{z:04d}.tif", np.full((4, 5), z, np.uint16))
        tifffile.imwrite(folder / f"recon_old_{z:04d}.tif", np.full((4, 5), 9, np.uint16))
    with pytest.warns(UserWarning, match=r"named in 2 patterns .*'recon_#.tif' \(3 files.*'recon_old_#.tif'.*"
                                         r"one volume of 6 planes"):
        vol = bigseg.ingest(folder, tmp_path / "a.ome.zarr", progress=False)
    assert vol.shape == (6, 4, 5)
    with warnings.catch_warnings():  # one scan's slices, by a glob, or numbered without zero padding: no warning
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=bigseg.errors.UncalibratedWarning)  # (but their 1 nm voxels)
        one_scan = bigseg.ingest(str(folder / "recon_[0-9]*.tif"), tmp_path / "b.ome.zarr", progress=False)
        assert one_scan.shape == (3, 4, 5)
        one = tmp_path / "one"
        one.mkdir()
        for z in range(12):
            tifffile.imwrite(one / f"img_{z + 1}.tif", np.full((4, 5), z, np.uint16))
        assert bigseg.ingest(one, tmp_path / "c.ome.zarr", progress=False).values[:, 0, 0].tolist() == list(range(12))


def test_values_starting_with_a_dash_are_taken(tmp_path, bigseg_cli):
    """`--times -30,0,30` (scans before the current was switched on) and `--crop -4:,:,:` (the
    last slices) failed with argparse's "argument --times: expected one argument"."""
    import bigseg

    for i in range(3):
        np.save(tmp_path / f"scan{i}.npy", np.full((6, 5, 4), i, np.uint16))
    scans = [tmp_path / f"scan{i}.npy" for i in range(3)]
    bigseg_cli("ingest", *scans, tmp_path / "series.ome.zarr", "--times", "-30,0,30", "--no-progress")
    assert bigseg.open_volume(tmp_path / "series.ome.zarr").coords["t"].values.tolist() == [-30, 0, 30]
    bigseg_cli("ingest", scans[0], tmp_path / "last.ome.zarr", "--crop", "-4:,:,:", "--no-progress")
    assert bigseg.open_volume(tmp_path / "last.ome.zarr").shape == (4, 5, 4)
    out = bigseg_cli("ingest", scans[0], tmp_path / "x.ome.zarr", "--crop", "--overwrite", check=False)
    assert out.returncode == 2 and "argument --crop: expected one argument" in out.stderr  # the value forgotten


def test_blank_times_are_refused_not_taken_as_steps(tmp_path, bigseg_cli):
    """`--times ''` (an unset shell variable) was taken as no times: steps 0, 1, 2 without a word."""
    for i in range(2):
        np.save(tmp_path / f"scan{i}.npy", np.full((4, 5, 6), i, np.uint8))
    scans = [tmp_path / f"scan{i}.npy" for i in range(2)]
    out = bigseg_cli("ingest", *scans, tmp_path / "s.ome.zarr", "--times", "", check=False)
    assert out.returncode == 2 and "`--times`" in out.stderr and not (tmp_path / "s.ome.zarr").exists()
    out = bigseg_cli("run", *scans, "--out", tmp_path / "run", "--times", "", "--model", "threshold", check=False)
    assert out.returncode == 2 and "Expected `--times` to be comma-separated numbers. Got ''" in out.stderr
    out = bigseg_cli("synth", tmp_path / "x.ome.zarr", "--shape", "8", "--bits", "12", check=False)
    assert out.returncode == 2 and "invalid choice: 12 (choose from 8, 16)" in out.stderr
