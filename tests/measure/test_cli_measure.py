"""`bigseg measure` on an OME-Zarr label image: table, netCDF, CSV and bar chart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from ._measure_ref import faces_per_axis, make_labels

from bigseg.cli import main
from bigseg.io import save_labels, save_volume
from bigseg.measure import read_table


def test_cli_measure_writes_outputs(tmp_path, capsys):
    lab = make_labels((24, 30, 28), seed=4)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, chunks=(10, 16, 9), voxel_size=(40.0, 50.0, 50.0), unit="nm", progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(10, 16, 9), progress=False)
    truth = tmp_path / "truth.ome.zarr"
    save_volume(lab.astype(np.float32), truth, chunks=12, voxel_size=(40.0, 50.0, 50.0), unit="nm", progress=False)
    save_labels(np.roll(lab, 1, 0), truth, phases=["pore", "cbd", "active"], progress=False)
    nc, csv, png = tmp_path / "m.nc", tmp_path / "m.csv", tmp_path / "m.png"
    rc = main(["measure", str(image), "--truth", str(truth), "--method", "marching_cubes",
               "--netcdf", str(nc), "--csv", str(csv), "--plot", str(png)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "pore-active" in out and "IoU" in out
    ds = xr.open_dataset(nc, engine="h5netcdf").load()
    # printed in a readable unit (the files keep nm), with the area per volume
    from bigseg.report._units import readable

    a = float(ds.area.sel(phase_a="pore", phase_b="active"))
    scale, shown = readable(ds.area.values, "nm^2")  # (tested in tests/report/test_units.py)
    assert shown == "µm²" and a > 1e4  # millions of nm²
    per_volume = a / (lab.size * 40.0 * 50.0 * 50.0) * 1e3
    assert f"area [{shown}]" in out and "per volume [µm⁻¹]" in out
    assert "read curved interfaces high" not in out  # said only of counted faces (here marching cubes)
    line = next(r for r in out.splitlines() if r.startswith("pore-active")).split()
    assert float(line[3]) == float(f"{a * 1e-6:.6g}") and float(line[4]) == float(f"{per_volume:.4g}")
    np.testing.assert_array_equal(ds.faces.values, faces_per_axis(lab, 3).sum(0))
    np.testing.assert_allclose(ds.volume_fraction.values, np.bincount(lab.ravel(), minlength=3) / lab.size)
    assert ds.area.attrs["units"] == "nm^2" and "iou" in ds
    table = pd.read_csv(csv)
    assert {"quantity", "phase", "phase_a", "phase_b", "value", "units"} <= set(table.columns)
    assert set(table.quantity) >= {"volume_fraction", "faces", "area", "iou", "accuracy"}
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_measure_bad_values_exit_code(tmp_path, capsys):
    lab = make_labels((12, 12, 12), seed=1)
    lab[3:6, 3:6, 3:6] = 2
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    rc = main(["measure", str(image), "--phases", "pore,solid"])
    assert rc == 2
    assert "Got 27 voxels with other values (1 distinct: 2)" in capsys.readouterr().err
    for argv, said in ((["--profile-step", "1"], "`--profile-step` only with --profile. Got --profile-step 1 without"),
                       (["--profile-step", "0"], "`--profile-step` only with --profile"),
                       (["--no-split"], "`--no-split` only with --particles or --particle-labels"),
                       (["--min-voxels", "8"], "`--min-voxels` only with --particles or --particle-labels"),
                       (["--particle-phase", "active"], "`--particle-phase` only with --particles"),
                       (["--fov", "auto"], "`--fov` only with --tortuosity or --radial"),
                       (["--tortuosity-phase", "active"], "`--tortuosity-phase` only with --tortuosity")):  # were ignored
        assert main(["measure", str(image), *argv]) == 2
        assert said in capsys.readouterr().err, argv


def test_cli_measure_particles_shells_tortuosity(tmp_path, capsys):
    import bigseg
    from bigseg.measure import particles, shells, tortuosity

    lab = bigseg.synth.electrode((24, 30, 28), radius=(4, 1), seed=2).values
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32) * 0.5, image, chunks=(10, 16, 9), voxel_size=(40.0, 50.0, 50.0), unit="nm",
                progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(10, 16, 9), progress=False)
    csv, nc = tmp_path / "p.csv", tmp_path / "m.nc"
    rc = main(["measure", str(image), "--particles", str(csv), "--max-diameter", "20", "--intensity", str(image),
               "--shells", "active:cbd:4", "--tortuosity", "z", "--netcdf", str(nc)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "active particles" in out and "fraction of cbd by distance from active" in out and "tortuosity" in out
    assert "by size (split at" in out and "  small " in out and "  big " in out
    header = csv.read_text().splitlines()[0].split(",")  # each column with its unit (were bare names)
    assert "volume [nm^3]" in header and "equivalent_diameter [nm]" in header and "sphericity" in header
    table = read_table(csv)
    assert table.attrs["unit"] == "nm" and table.attrs["units"]["volume"] == "nm^3"
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": (40.0, 50.0, 50.0), "unit": "nm"})
    ref = particles(vol, max_diameter=20)
    np.testing.assert_array_equal(table.voxels, ref.voxels)
    np.testing.assert_allclose(table.mean_intensity, 1.0)  # active voxels hold 2 * 0.5
    np.testing.assert_allclose(table.surface_area, ref.surface_area, equal_nan=True)  # marching cubes by default
    assert main(["measure", str(image), "--particles", str(tmp_path / "c.csv"), "--max-diameter", "20",
                 "--particle-area", "crofton", "--no-progress"]) == 0
    np.testing.assert_allclose(read_table(tmp_path / "c.csv").surface_area,
                               particles(vol, max_diameter=20, area_method="crofton").surface_area, equal_nan=True)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    ds = xr.open_dataset(nc, engine="h5netcdf").load()
    np.testing.assert_allclose(ds.shell_fraction.values, shells(vol, around="active", of="cbd", max_distance=4).values)
    assert float(ds.tortuosity.values[0]) == float(tortuosity(vol, axis="z").tau.values[0])
    rc = main(["measure", str(image), "--shells", "active-cbd"])
    assert rc == 2 and "`--shells`" in capsys.readouterr().err
    # the solid's tortuosity (was the pore's only, by CLI and pipeline)
    assert main(["measure", str(image), "--tortuosity", "z", "--tortuosity-phase", "active", "--netcdf",
                 str(tmp_path / "a.nc"), "--no-progress"]) == 0
    assert "tortuosity factor of active along z" in capsys.readouterr().out
    ds = xr.open_dataset(tmp_path / "a.nc", engine="h5netcdf").load()
    ref = tortuosity(vol, phase="active", axis="z")
    assert ds.attrs["tortuosity_phase"] == "active" and float(ds.tortuosity.values[0]) == float(ref.tau.values[0])
    assert float(ref.tau.values[0]) != float(tortuosity(vol, axis="z").tau.values[0])
    assert main(["measure", str(image), "--tortuosity", "z", "--tortuosity-phase", "NMC", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "`--tortuosity-phase` to be one of the phases ['pore', 'cbd', 'active']. Got 'NMC'" in err
    # by label value too, as --particle-phase
    assert main(["measure", str(image), "--tortuosity", "z", "--tortuosity-phase", "2", "--no-progress"]) == 0
    assert "tortuosity factor of active along z" in capsys.readouterr().out
    assert main(["measure", str(image), "--tortuosity", "z", "--tortuosity-phase", "3", "--no-progress"]) == 2
    assert "or a label value below 3. Got '3'" in capsys.readouterr().err


def test_cli_measure_profile_table_csv_and_curves(tmp_path, capsys):
    import bigseg
    from bigseg.measure import profile

    lab = bigseg.synth.electrode((24, 30, 28), radius=(4, 1), seed=2).values
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, chunks=(10, 16, 9), voxel_size=(40.0, 50.0, 50.0), unit="nm",
                progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(10, 16, 9), progress=False)
    csv, png = tmp_path / "m.csv", tmp_path / "m.png"
    rc = main(["measure", str(image), "--profile", "y", "--profile-step", "2", "--csv", str(csv), "--plot", str(png),
               "--shells", "active:cbd:2", "--rve"])
    assert rc == 0
    out = capsys.readouterr().out
    rows = out.split("volume fractions along y:\n")[1].splitlines()
    assert rows[0].split()[:2] == ["slices", "centre"] and rows[1].startswith("0-3 ") and rows[10].split()[0].endswith("-29")
    # every bin in the long table, with its position; the shells keep their distance column
    table = pd.read_csv(csv)
    prof = table[table.quantity == "volume_fraction_profile"]
    ref = profile(xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": (40.0, 50.0, 50.0), "unit": "nm"}),
                  axis="y", step=2)
    np.testing.assert_allclose(prof[prof.phase == "cbd"].value, ref.sel(phase="cbd").values)
    np.testing.assert_allclose(prof[prof.phase == "cbd"]["y [nm]"], ref.y.values)  # bin centres 25, 125, ... nm
    assert list(table[table.quantity == "shell_fraction"]["shell_distance [nm]"]) == [40.0, 80.0]  # edges of 40 nm
    assert (tmp_path / "m_profile.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "m_shells.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "m_rve.png").read_bytes()[:4] == b"\x89PNG" and "representative volume element" in out
    rve = table[table.quantity == "rve_relative_std"]
    np.testing.assert_allclose(sorted(set(rve["cube_edge [voxel]"])), [4.0, 8.0])  # 24 voxels along z: edges 4 and 8
    rc = main(["measure", str(image), "--profile", "y", "--profile-step", "31"])
    assert rc == 2 and "`--profile-step`" in capsys.readouterr().err
    before = csv.read_bytes()  # an existing output: refused before any work (was replaced silently)
    assert main(["measure", str(image), "--csv", str(csv)]) == 2
    assert "`--csv` to name a new file or --overwrite. Got" in capsys.readouterr().err and csv.read_bytes() == before
    assert main(["measure", str(image), "--csv", str(csv), "--overwrite", "--no-progress"]) == 0
    assert csv.read_bytes() != before  # the profile rows are gone: a new table
    # the figures beside --plot of what a new call does not measure go (they stood beside its figure as its own)
    assert main(["measure", str(image), "--plot", str(png), "--rve", "--overwrite", "--no-progress"]) == 0
    assert "removed " in capsys.readouterr().out
    assert (tmp_path / "m_rve.png").exists() and not (tmp_path / "m_profile.png").exists()
    assert not (tmp_path / "m_shells.png").exists()


def test_cli_writes_particle_instance_labels_beside_the_segmentation(tmp_path, capsys):
    import bigseg

    lab = np.zeros((20, 24, 28), np.uint8)
    lab[4:10, 5:12, 5:12] = 2
    lab[12:18, 14:20, 16:24] = 2
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, chunks=(7, 11, 13), progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(7, 11, 13), progress=False)
    csv = tmp_path / "p.csv"
    assert main(["measure", str(image / "labels" / "segmentation"), "--particles", str(csv),
                 "--particle-labels", "particles"]) == 0
    out = capsys.readouterr().out
    assert "particle instance labels" in out
    ids = bigseg.open_volume(image / "labels" / "particles").values
    table = read_table(csv)
    # the size distribution by volume: D10 the smaller particle's diameter (it holds 49.5 % of the volume),
    # D50 and D90 the larger's
    d = np.sort(table.equivalent_diameter.to_numpy())
    assert (f"size distribution by volume (particles inside): D10 {d[0]:.4g}, D50 {d[1]:.4g}, D90 {d[1]:.4g} voxel; "
            f"D[4,3] {(table.volume * table.equivalent_diameter).sum() / table.volume.sum():.4g} voxel") in out
    np.testing.assert_array_equal(np.bincount(ids.ravel())[1:], table.voxels.to_numpy())  # value = the table's id
    # --min-voxels: the smaller particle (6 x 6 x 8 = 288 voxels) out of the table and of the labels
    assert main(["measure", str(image / "labels" / "segmentation"), "--particles", str(csv), "--overwrite",
                 "--particle-labels", "particles", "--min-voxels", "289"]) == 0
    assert "(1 particle(s) smaller than 289 voxels left out: 288 voxels of the phase in no row)" in capsys.readouterr().out
    assert read_table(csv).voxels.tolist() == [294]
    # every particle smaller (none left inside): not said to be for want of a phase named pore (it is named so)
    assert main(["measure", str(image / "labels" / "segmentation"), "--particles", str(csv), "--overwrite",
                 "--min-voxels", "1000"]) == 0
    out = capsys.readouterr().out
    assert "0 active particles (0 inside the volume)" in out and "none is named so" not in out
    assert "no detachment (no particle inside the volume)" in out
    assert np.unique(bigseg.open_volume(image / "labels" / "particles").values).tolist() == [0, 1]
    # an existing label image is not overwritten, unless --overwrite (it was refused even then)
    seg = str(image / "labels" / "segmentation")
    assert main(["measure", seg, "--particle-labels", "particles"]) == 2
    assert "a new label image, or --overwrite" in capsys.readouterr().err
    for extra in ([], ["--particles", str(csv)]):  # the ids alone, and with the table
        lab[4:10, 5:12, 5:12] = 0  # one particle fewer
        save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(7, 11, 13), overwrite=True, progress=False)
        assert main(["measure", seg, "--particle-labels", "particles", "--overwrite", *extra]) == 0
        assert bigseg.open_volume(image / "labels" / "particles").values.max() == 1
        lab[4:10, 5:12, 5:12] = 2
        save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(7, 11, 13), overwrite=True, progress=False)
    capsys.readouterr()
    # never the labels being measured
    assert main(["measure", seg, "--particle-labels", "segmentation", "--overwrite"]) == 2
    assert "another label image than LABELS" in capsys.readouterr().err
    assert (bigseg.open_volume(image / "labels" / "segmentation").values == lab).all()


def test_cli_prints_bigseg_warnings_as_one_line(tmp_path, capsys):
    lab = np.zeros((12, 14, 30), np.uint8)
    lab[3:9, 4:10, 2:28] = 2  # a rod 26 voxels long, across two block borders
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, chunks=(12, 14, 10), progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(12, 14, 10), progress=False)
    assert main(["measure", str(image), "--particles", str(tmp_path / "p.csv"), "--max-diameter", "10",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("bigseg measure: warning: 288 voxel(s) of the phase belong to no particle: the split "
                          "may depend on the chunking. Pass a larger `--max-diameter` (pipeline configuration: "
                          "`measure.max_diameter`).\n")
    assert "warnings.warn" not in err and "measure.particles(" not in err and len(err.strip().splitlines()) == 1
    # with the progress bars (the default) the warning still starts a line of its own
    assert main(["measure", str(image), "--particles", str(tmp_path / "p2.csv"), "--max-diameter", "10"]) == 0
    err = capsys.readouterr().err
    assert "particle split (active)" in err and "\nbigseg measure: warning: 288" in err  # (bars as lines: stderr no tty)


def test_cli_measure_inside_a_field_of_view(tmp_path, capsys):
    """Labels with 255 outside a circle: --radial around its axis, --tortuosity in its box."""
    from bigseg.measure import connectivity, radial_profile, thickness, tortuosity

    lab = make_labels((20, 40, 44), seed=5)
    yy, xx = np.ogrid[:40, :44]
    inside = (yy - 19.5) ** 2 + (xx - 21.5) ** 2 <= 19 ** 2
    lab = np.where(inside, lab, 255).astype(np.uint8)
    image = tmp_path / "rec.ome.zarr"
    save_volume(lab.astype(np.float32), image, chunks=(10, 16, 9), progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], chunks=(10, 16, 9), progress=False)
    nc, png = tmp_path / "m.nc", tmp_path / "m.png"
    assert main(["measure", str(image), "--radial", "3", "--fov", "auto", "--tortuosity", "z", "--netcdf", str(nc),
                 "--plot", str(png), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "volume fractions by distance from the axis at voxel y 19.5, x 21.5" in out  # (indices, not nm)
    assert "inside the field of view" in out and (tmp_path / "m_radial.png").exists()
    ds = xr.open_dataset(nc, engine="h5netcdf").load()
    ref = radial_profile(lab, centre=(19.5, 21.5), step=3)
    np.testing.assert_allclose(ds.volume_fraction_radial.values, ref.values, equal_nan=True)
    np.testing.assert_allclose(ds.tortuosity.values, tortuosity(lab, axis="z", fov="auto").tau.values)
    np.testing.assert_allclose(ds.volume_fraction.values, np.bincount(lab[lab < 3], minlength=3) / (lab < 3).sum())
    # --connectivity: the edge of the field of view is the sample's edge (what reaches it is "unknown");
    # across the cylinder its faces normal to x are unlabelled: no component can span it, said so
    faces = "only 0 % of a face normal to x is labelled"
    assert main(["measure", str(image), "--connectivity", "x", "--netcdf", str(tmp_path / "c.nc"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert faces in err
    with pytest.warns(UserWarning, match=faces):
        ref = connectivity(lab, axis="x")
    assert "connectivity along x:" in out and "percolating %" in out
    table = out.split("connectivity along x:")[1].splitlines()
    row = next(line for line in table if line.startswith("cbd "))
    assert row.split()[1:4] == [f"{100 * float(ref[c].sel(phase='cbd')):.1f}" for c in ("percolating", "isolated", "unknown")]
    ds = xr.open_dataset(tmp_path / "c.nc", engine="h5netcdf").load()
    np.testing.assert_allclose(ds.connectivity_isolated.values, ref.isolated.values)
    assert ds.attrs["connectivity_axis"] == "x"
    # --thickness: each phase's local thickness, printed, stored and drawn
    assert main(["measure", str(image), "--thickness", "pore,active", "--max-diameter", "12", "--netcdf",
                 str(tmp_path / "t.nc"), "--plot", str(tmp_path / "t.png"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    ref = thickness(lab, phase=["pore", "active"], max_diameter=12)
    row = next(line for line in out.split("local thickness")[1].splitlines() if line.startswith("active "))
    assert row.split()[2] == f"{float(ref.d50.sel(phase='active')):.4g}"
    ds = xr.open_dataset(tmp_path / "t.nc", engine="h5netcdf").load()
    np.testing.assert_allclose(ds.thickness_share.values, ref.share.values)
    assert list(ds.thickness_phase.values) == ["pore", "active"] and (tmp_path / "t_thickness.png").exists()


def test_which_label_image_is_measured_is_said_never_guessed(tmp_path, capsys):
    lab = make_labels((12, 14, 16), seed=5)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    phases = ["pore", "cbd", "active"]
    save_labels(np.zeros_like(lab), image, name="truth", phases=phases, progress=False)  # listed first
    save_labels(lab, image, name="otsu", phases=phases, progress=False)
    assert main(["measure", str(image)]) == 2  # two, none called segmentation
    assert "holds 2 (truth, otsu)" in capsys.readouterr().err
    save_labels(lab, image, phases=phases, progress=False)  # "segmentation"
    nc = tmp_path / "new folder" / "m.nc"
    assert main(["measure", str(image), "--netcdf", str(nc)]) == 0
    assert f"measuring {image / 'labels' / 'segmentation'}" in capsys.readouterr().out
    for where in (image, image / "labels"):  # --label NAME from the image or its labels group
        assert main(["measure", str(where), "--label", "otsu", "--no-progress"]) == 0
        assert f"measuring {image / 'labels' / 'otsu'}" in capsys.readouterr().out
    ds = xr.open_dataset(nc, engine="h5netcdf").load()
    np.testing.assert_allclose(ds.volume_fraction.values, np.bincount(lab.ravel(), minlength=3) / lab.size)
    for bad, says in ((["--plot", str(tmp_path / "m.txt")], "`--plot` to end in .png"),
                      (["--particles", str(tmp_path)], "`--particles` to name a file")):
        assert main(["measure", str(image), *bad]) == 2
        assert says in capsys.readouterr().err


def test_cli_measure_says_what_face_counted_areas_are(tmp_path, capsys):
    lab = make_labels((12, 14, 16), seed=2)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, voxel_size=0.5, unit="um", progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    assert main(["measure", str(image), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "read curved interfaces high (a sphere: +50 %)" in out and "--method crofton" in out


def test_cli_measure_refuses_two_outputs_in_one_file(tmp_path, capsys):
    # one option's file would silently replace another's (the particle histograms are drawn
    # beside the table, as NAME.png)
    lab = make_labels((12, 12, 12), seed=1)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    same = str(tmp_path / "same.csv")
    pp = tmp_path / "pp"
    for argv, said in ((["--particles", same, "--csv", same], "`--particles` and `--csv` to write different files"),
                       (["--particles", f"{pp}.csv", "--plot", f"{pp}.png"],
                        "`--plot` and `--particles` to write different files. Got '" + f"{pp}.png' for both "
                        "(--particles: the histograms drawn beside its table)"),
                       (["--plot", str(tmp_path / "m.png"), "--profile", "z", "--particles",
                         str(tmp_path / "m_profile.csv")], "(--plot: the profile figure)")):
        assert main(["measure", str(image), *argv]) == 2
        assert said in capsys.readouterr().err, argv
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob("*.png"))  # refused before any work


def test_cli_measure_and_compare_take_a_label_stacks_voxel_size(tmp_path, capsys):
    # a .npy label stack states no voxel size: said on stderr, and --voxel-size/--unit give it one
    lab = make_labels((12, 14, 16), seed=2)
    stack = tmp_path / "seg.npy"
    np.save(stack, lab)
    nc = tmp_path / "a.nc"
    assert main(["measure", str(stack), "--netcdf", str(nc), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "states no voxel size" in err and "--voxel-size" in err
    assert main(["measure", str(stack), "--voxel-size", "0.5,0.25,0.25", "--unit", "um", "--netcdf",
                 str(tmp_path / "b.nc"), "--no-progress"]) == 0
    assert "states no voxel size" not in capsys.readouterr().err
    a = xr.open_dataset(nc, engine="h5netcdf").load()
    b = xr.open_dataset(tmp_path / "b.nc", engine="h5netcdf").load()
    assert a.area.attrs["units"] == "nm^2" and b.area.attrs["units"] == "um^2"
    faces = faces_per_axis(lab, 3)  # per axis (z, y, x): faces normal to z have area vy*vx
    want = faces[0] * 0.0625 + faces[1] * 0.125 + faces[2] * 0.125
    np.testing.assert_allclose(b.area.values, want)
    np.testing.assert_allclose(b.volume_fraction.values, a.volume_fraction.values)
    # compare takes them too; OME-Zarr images keep their own (refused when none is a stack)
    np.save(tmp_path / "other.npy", np.roll(lab, 1, 0))
    assert main(["compare", str(stack), str(tmp_path / "other.npy"), "--voxel-size", "50", "--no-progress"]) == 0
    assert "states no voxel size" not in capsys.readouterr().err
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    assert main(["measure", str(image), "--voxel-size", "50"]) == 2
    assert "`--voxel-size` only with a TIFF, HDF5 or .npy label stack. Got --voxel-size 50" in capsys.readouterr().err
    assert main(["measure", str(stack), "--unit", "um"]) == 2
    assert "`--unit` only with --voxel-size" in capsys.readouterr().err


def test_series_printouts_say_which_step_they_show(tmp_path, capsys):
    """Was: shells and tortuosity of a series printed without saying they are of its last step
    (connectivity and thickness said "(t = 2)")."""
    from bigseg import synth

    lab = synth.series((16, 20, 20), steps=3, seed=2).compute()
    image = tmp_path / "s.ome.zarr"
    save_volume(lab.values.astype(np.float32), image, progress=False)
    save_labels(lab, image, name="truth", progress=False)
    assert main(["measure", str(image), "--label", "truth", "--shells", "active:cbd:2", "--tortuosity", "z",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fraction of cbd by distance from active [voxel] (t = 2):" in out
    assert "tortuosity factor of pore along z (t = 2): " in out


def test_series_size_lines_say_which_step_they_show(tmp_path, capsys):
    """Was: a series' size distribution by volume and its small/big groups printed those of its last
    step without saying so (read as the whole series': D50 over every scan)."""
    from bigseg import synth
    from bigseg.measure import size_distribution

    lab = synth.series((32, 40, 40), steps=3, seed=2, radius=4).compute()
    image = tmp_path / "s.ome.zarr"
    save_volume(lab.values.astype(np.float32), image, progress=False)
    save_labels(lab, image, name="truth", progress=False)
    csv = tmp_path / "p.csv"
    assert main(["measure", str(image), "--label", "truth", "--particles", str(csv), "--no-progress"]) == 0
    out = capsys.readouterr().out
    table = read_table(csv)
    last = table[(table.t == 2) & ~table.touches_border]
    assert len(last) and len(last) < len(table[~table.touches_border])  # other steps' particles too
    d50 = size_distribution(last.drop(columns="t")).loc["volume", "d50"]
    assert "size distribution by volume (particles inside) (t = 2): D10 " in out
    assert f"D50 {d50:.4g}, " in out
    assert "by size (t = 2) (split at " in out


def test_cbd_particles_print_no_column_of_nan(tmp_path, capsys):
    """Was: "CBD contact median" printed as nan for CBD particles (they have no CBD contact)."""
    from bigseg import synth

    lab = synth.electrode((24, 28, 28), seed=2).compute()
    image = tmp_path / "s.ome.zarr"
    save_volume(lab.values.astype(np.float32), image, progress=False)
    save_labels(lab, image, name="truth", progress=False)
    assert main(["measure", str(image), "--label", "truth", "--particles", str(tmp_path / "c.csv"),
                 "--particle-phase", "cbd", "--no-progress"]) == 0
    block = capsys.readouterr().out.split("by size")[1].split("\n\n")[0]
    assert "CBD contact" not in block and "nan" not in block


def test_cli_measure_sparse_truth_says_what_was_scored(tmp_path, capsys):
    """A truth of sparse annotations (255 = unlabelled, e.g. the slices a model was tuned on) scores
    its labelled voxels only: the table says how many (it read as scores over the whole volume)."""
    lab = make_labels((12, 20, 20), seed=4)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    sparse = np.full_like(lab, 255)
    sparse[3, :10] = lab[3, :10]  # 200 of 4800 voxels
    np.save(tmp_path / "sparse.npy", sparse)
    assert main(["measure", str(image), "--truth", str(tmp_path / "sparse.npy"), "--no-progress"]) == 0
    assert "scores over the truth's 200 labelled voxels, 4.17 % of the volume" in capsys.readouterr().out
    np.save(tmp_path / "dense.npy", lab)
    assert main(["measure", str(image), "--truth", str(tmp_path / "dense.npy"), "--no-progress"]) == 0
    assert "labelled voxels" not in capsys.readouterr().out


def test_cli_measure_prints_and_sizes_phases_as_the_labels_name_them(tmp_path, capsys):
    """Labels naming their phases "Pore", "CBD", "NMC": --shells nmc:cbd:2 prints the shells of
    "CBD" around "NMC" (was the option's spelling), and the size groups keep their CBD contact
    median (was left out: only a column contact_cbd was looked for)."""
    import bigseg

    lab = bigseg.synth.electrode((24, 30, 28), radius=(4, 1), seed=2).values
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    save_labels(lab, image, phases=["Pore", "CBD", "NMC"], progress=False)
    rc = main(["measure", str(image), "--shells", "nmc:cbd:2", "--particles", str(tmp_path / "p.csv"),
               "--particle-phase", "nmc", "--max-diameter", "20", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "fraction of CBD by distance from NMC" in out, out
    assert "CBD contact median" in out, out
