"""Adversarial CLI checks: outputs left half-written, inputs written into, files cut short, label
images where a grey image is expected, options that a source or a mode does not use."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def scan(tmp_path):
    """A small OME-Zarr image with its exact labels in labels/truth."""
    from bigseg import synth
    from bigseg.io import save_labels, save_volume

    truth = synth.electrode((16, 20, 24), seed=1).compute()
    img = save_volume(synth.xct(truth, seed=1).compute(), tmp_path / "s.ome.zarr", progress=False)
    save_labels(truth, img, name="truth", progress=False)
    return tmp_path / "s.ome.zarr"


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_synth_stopped_before_its_labels_leaves_no_image(tmp_path, monkeypatch, bigseg_cli):
    import bigseg.io

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C between the image and its truth

    monkeypatch.setattr(bigseg.io, "save_labels", stopped)
    out = bigseg_cli("synth", tmp_path / "s.ome.zarr", "--shape", "8,12,12", "--no-progress", check=False)
    assert out.returncode == 130
    # was: s.ome.zarr, a complete-looking image without labels/truth
    assert not (tmp_path / "s.ome.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_report_and_info_on_a_run_with_a_file_cut_short(tmp_path, bigseg_cli):
    import xarray as xr

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.nc").write_bytes(b"\x89HDF\r\n\x1a\n\x00")  # a run killed while writing it
    for command in ("report", "info"):
        out = bigseg_cli(command, run, check=False)  # was an OSError traceback
        assert out.returncode == 2 and "metrics.nc" in out.stderr and "cannot be read" in out.stderr, out.stderr
    (run / "metrics.nc").unlink()
    ds = xr.Dataset({"volume_fraction": ("phase", [0.5, 0.5])}, coords={"phase": ["pore", "active"]})
    (run / "metrics.json").write_text(json.dumps(ds.to_dict(data="list")))
    (run / "run.json").write_text('{"source": ')
    for command in ("report", "info"):
        out = bigseg_cli(command, run, check=False)  # was a JSONDecodeError traceback
        assert out.returncode == 2 and "run.json" in out.stderr and "cannot be read" in out.stderr, out.stderr
    for what, text in (("run.json", "[]"), ("run.json", "null"), ("metrics.json", "[]")):  # edited: JSON, no record
        (run / "run.json").write_text("{}")
        (run / what).write_text(text)
        for command in ("report", "info"):
            out = bigseg_cli(command, run, check=False)  # was an AttributeError traceback
            assert out.returncode == 2 and what in out.stderr and "cannot be read" in out.stderr, out.stderr
    assert not (run / "report.html").exists()


def test_demo_writes_only_into_a_demo_folder(tmp_path, scan, bigseg_cli):
    (tmp_path / "a.txt").write_text("x")
    out = bigseg_cli("demo", "--out", tmp_path / "a.txt", "--no-progress", check=False)  # was FileExistsError
    assert out.returncode == 2 and "`--out` to be a folder" in out.stderr
    before = _files(scan)
    out = bigseg_cli("demo", "--out", scan, "--no-progress", check=False)  # was written into the store
    assert out.returncode == 2 and "holds other data" in out.stderr
    assert _files(scan) == before
    # options the generator cannot take: refused before a folder is made or "generating" is said
    for argv, message in ((("--size", "0"), "`--size` to be a positive integer"),
                          (("--size", "4"), "`--size` to be at least 8"),
                          (("--seed", "-1"), "`--seed` to be a non-negative integer"),
                          (("--chunks", "0"), "`--chunks` to be a positive integer"),
                          (("--steps", "3", "--size", "5"), "`--size` to be at least 8"),
                          (("--cluster", "bogus"), "`--cluster` to be 'threads' (in this process), 'local'"),  # was after generating
                          (("--steps", "2", "--cluster", "bogus"), "`--cluster` to be 'threads' (in this process), 'local'"),
                          # and before a cluster is started for the demo (were refused once it was, or, a model
                          # that is no model, after the scan was generated)
                          (("--cluster", "local", "--size", "4"), "`--size` to be at least 8"),
                          (("--cluster", "local", "--steps", "9"), "`--steps` in [2, 6]"),
                          (("--cluster", "local", "--steps", "2", "--chunks", "0"), "`--chunks` to be a positive"),
                          (("--cluster", "local", "--model", "bogus"), "an existing checkpoint file. Got 'bogus'")):
        out = bigseg_cli("demo", "--out", tmp_path / "d", *argv, "--no-progress", check=False)
        assert out.returncode == 2 and message in out.stderr and "generating" not in out.stderr, (argv, out.stderr)
        assert "connected to local" not in out.stderr, (argv, out.stderr)
        assert not (tmp_path / "d").exists()


def test_run_and_watch_never_write_into_their_input(tmp_path, scan, bigseg_cli):
    before = _files(scan)
    out = bigseg_cli("run", scan, "--out", scan / "run", "--model", "threshold", "--no-progress", check=False)
    assert out.returncode == 2 and "`--out` to be outside the input" in out.stderr  # was a run inside the store
    assert _files(scan) == before
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "scan.npy", np.zeros((4, 5, 6), np.float32))
    out = bigseg_cli("watch", inbox, "--out", inbox, "--once", "--no-progress", check=False)
    assert out.returncode == 2 and "`--out` to be another folder than `inbox`" in out.stderr
    assert _files(inbox) == ["scan.npy"]


@pytest.mark.parametrize("argv, option", [
    (["filter", "{labels}", "{tmp}/f.ome.zarr", "--median", "3"], "`source`"),
    (["run", "{labels}", "--out", "{tmp}/run", "--model", "threshold"], "`source`"),
    (["train", "{labels}", "{labels}", "-o", "{tmp}/m.pt", "--epochs", "1"], "`image`"),
    (["measure", "{labels}", "--particles", "{tmp}/p.csv", "--intensity", "{labels}"], "`--intensity`"),
])
def test_a_label_image_is_refused_where_a_grey_image_is_expected(tmp_path, scan, bigseg_cli, argv, option):
    labels = str(scan / "labels" / "truth")
    argv = [a.format(labels=labels, tmp=tmp_path) for a in argv]
    out = bigseg_cli(*argv, "--no-progress", check=False)  # each ran on the labels as grey values
    assert out.returncode == 2, out.stdout
    assert f"Expected {option} to be a grey-value image, not a label image" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.zarr"]


def test_options_a_source_does_not_use_are_refused(tmp_path, scan, bigseg_cli):
    np.save(tmp_path / "v.npy", np.zeros((4, 5, 6), np.uint16))
    cases = [  # each was ignored
        (["ingest", scan, tmp_path / "o.ome.zarr", "--shape", "1,2,3"], "Expected `--shape` only for a raw binary file"),
        (["ingest", tmp_path / "v.npy", tmp_path / "o.ome.zarr", "--dataset", "/x"], "Expected `--dataset` only for an HDF5"),
        (["info", tmp_path / "v.npy", "--dataset", "/x"], "Expected `--dataset` only for an HDF5"),
        (["segment", scan, "--method", "threshold", "--out", tmp_path / "o.ome.zarr", "--name", "mine"],
         "Expected `--name` only without --out"),
        # named the configuration's key `fov`, an option the command line does not have
        (["run", scan, "--out", tmp_path / "run", "--model", "threshold", "--fov-margin", "3"],
         "Expected `--fov-margin` only with --fov. Got --fov-margin 3 without it."),
        (["watch", tmp_path, "--out", tmp_path / "w", "--once", "--fov-margin", "3"],
         "Expected `--fov-margin` only with --fov."),
    ]
    for argv, message in cases:
        out = bigseg_cli(*argv, "--no-progress" if argv[0] != "info" else "--no-stats", check=False)
        assert out.returncode == 2 and message in out.stderr, (argv, out.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.zarr", "v.npy"]


def test_measure_max_diameter_checked_before_any_work(scan, bigseg_cli):
    out = bigseg_cli("measure", scan / "labels" / "truth", "--particles", scan.parent / "p.csv",
                     "--max-diameter", "0", check=False)
    assert out.returncode == 2 and "--max-diameter" in out.stderr
    assert "measuring" not in out.stdout  # was refused only after the fractions and interfaces were computed


def test_train_says_how_to_pick_one_of_several_label_images(scan, bigseg_cli):
    from bigseg.io import open_volume, save_labels

    save_labels(open_volume(scan / "labels" / "truth"), scan, name="other", progress=False)
    out = bigseg_cli("train", scan, scan, "-o", scan.parent / "m.pt", check=False)
    assert out.returncode == 2 and "IMAGE/labels/NAME" in out.stderr
    assert "--label" not in out.stderr  # train has no --label option
    # given without anything that uses it: refused by name (it was ignored: the default 40 looked given)
    out = bigseg_cli("measure", scan / "labels" / "truth", "--max-diameter", "12", check=False)
    assert out.returncode == 2 and "`--max-diameter` only with --particles or --particle-labels or --thickness" \
        in out.stderr, out.stderr


def test_warnings_name_the_command_s_arguments(scan, bigseg_cli):
    # a warning said the library's name (`data`) where the command takes `source`, unlike its errors
    out = bigseg_cli("export", scan, scan.parent / "x.tif", "--no-progress")
    assert "bigseg export: warning: `source` has no physical voxel size" in out.stderr, out.stderr
    assert "`data`" not in out.stderr


def test_cluster_sizes_are_said_as_the_option(scan, capsys):
    """`connect(n_workers=)`'s check said `n_workers` to a user who typed --workers."""
    from bigseg.cli import main

    assert main(["run", str(scan), "--out", str(scan.parent / "run"), "--cluster", "local", "--workers", "500"]) == 2
    err = capsys.readouterr().err
    assert "Expected `--workers` to be at most" in err and "n_workers" not in err
    assert not (scan.parent / "run").exists()


def test_segmenting_twice_names_what_the_user_can_do(scan, bigseg_cli):
    """Was: "Expected `--name` to be a new location" though no --name was typed."""
    assert bigseg_cli("segment", scan, "--method", "threshold", "--no-progress").returncode == 0
    again = bigseg_cli("segment", scan, "--method", "threshold", "--no-progress", check=False)
    assert again.returncode == 2
    assert ("label image 'segmentation' yet (the default --name), or --overwrite" in again.stderr
            and "--name NAME writes another beside it" in again.stderr and "`--name`" not in again.stderr)
    typed = bigseg_cli("segment", scan, "--method", "threshold", "--name", "segmentation", check=False)
    assert typed.returncode == 2 and "`--name` to be a new location, or --overwrite" in typed.stderr
    assert bigseg_cli("segment", scan, "--method", "threshold", "--no-progress", "--overwrite").returncode == 0


def test_random_forest_options_are_checked_before_the_field_of_view_pass(scan, bigseg_cli):
    """Was: a missing --labels or a bad --sigmas said only after the --fov pass over the data."""
    for extra, said in (([], "`--labels` (sparse training labels)"),
                        (["--labels", str(scan / "labels" / "truth"), "--sigmas", "a,b"], "`--sigmas`")):
        out = bigseg_cli("segment", scan, "--method", "random-forest", "--fov", "auto", "--name", "rf", *extra,
                         check=False)
        assert out.returncode == 2 and said in out.stderr and "field of view" not in out.stdout


@pytest.fixture
def four_phases(tmp_path):
    """Labels of four phases with long names (a "+" and a space in them), no phase named pore."""
    from bigseg.io import save_labels, save_volume

    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, (12, 12, 12)).astype(np.uint8)
    img = save_volume(lab.astype(np.float32), tmp_path / "f.ome.zarr", progress=False)
    save_labels(lab, img, name="seg", phases=["Pore", "binder+carbon", "NMC811", "Poren-Raum graphite"],
                progress=False)
    return tmp_path / "f.ome.zarr" / "labels" / "seg"


def test_measure_tables_keep_long_phase_names_apart(four_phases, bigseg_cli):
    out = bigseg_cli("measure", four_phases, "--profile", "z", "--rve", "--no-progress").stdout
    # the profile's and the RVE's headers ran together: "Porebinder+carbon    NMC811Poren-Raum graphite"
    heads = [line for line in out.splitlines() if line.startswith(("slices", "cube edge"))]
    assert len(heads) == 2
    for head in heads:
        assert head.endswith("  Pore  binder+carbon    NMC811  Poren-Raum graphite"), head
        rows = out.splitlines()
        assert len(rows[rows.index(head) + 1]) == len(head)  # each value stands under its phase's name
    # the phases' and the interfaces' tables: one column of names as wide as the longest
    phase_rows = [r for r in out.splitlines() if r.split()[:1] in (["Pore"], ["NMC811"]) or r.startswith("Poren-Raum")]
    assert len({len(r) for r in phase_rows}) == 1, phase_rows
    pair_rows = [r for r in out.splitlines() if r.startswith(("Pore-binder+carbon", "binder+carbon-Poren-Raum graphite"))]
    assert len(pair_rows) == 2 and len({len(r) for r in pair_rows}) == 1, pair_rows


def test_compare_table_keeps_long_phase_names_apart(four_phases, bigseg_cli):
    from bigseg.io import open_volume, save_labels

    save_labels(open_volume(four_phases), four_phases.parent.parent, name="other", progress=False)
    out = bigseg_cli("compare", four_phases, four_phases.parent / "other", "--no-progress").stdout.splitlines()
    head = out[out.index("volume fractions:") + 1]
    # was "      Porebinder+carbon     NMC811Poren-Raum graphite"
    assert head.split() == ["Pore", "binder+carbon", "NMC811", "Poren-Raum", "graphite"], head
    assert "Porebinder" not in head and "NMC811Poren" not in head
    assert len(out[out.index("volume fractions:") + 2]) == len(head)  # the values under their names


def test_measure_tortuosity_without_a_pore_phase_is_refused_by_name_before_any_work(four_phases, bigseg_cli):
    out = bigseg_cli("measure", four_phases, "--tortuosity", "z", "--phases", "void,binder+carbon,NMC811,graphite",
                     "--no-progress", check=False)
    assert out.returncode == 2
    assert "`--tortuosity`" in out.stderr and "--phases pore,binder+carbon" in out.stderr, out.stderr
    assert "`phase`" not in out.stderr  # an argument the command does not have
    assert "fraction" not in out.stdout  # refused before the summary's pass


def test_measure_particles_without_a_pore_phase_say_why_no_detachment(tmp_path, bigseg_cli):
    """Was "median detachment nan" and size groups of "nan [nan-nan]": detachment is the contact
    with the phase named pore, which these labels (void / solid) do not have."""
    from bigseg.io import save_labels, save_volume

    lab = np.zeros((16, 16, 16), np.uint8)
    lab[2:6, 2:6, 2:6] = lab[9:14, 8:13, 3:8] = lab[4:8, 9:13, 9:14] = 1  # three particles inside
    img = save_volume(lab.astype(np.float32), tmp_path / "s.ome.zarr", progress=False)
    save_labels(lab, img, name="seg", phases=["void", "solid"], progress=False)
    out = bigseg_cli("measure", tmp_path / "s.ome.zarr" / "labels" / "seg", "--particles", tmp_path / "p.csv",
                     "--particle-phase", "solid", "--no-split", "--no-progress").stdout
    line = next(s for s in out.splitlines() if "solid particles" in s)
    assert "3 solid particles (3 inside the volume)" in line and "no detachment (" in line and "nan" not in line
    assert "by size" not in out and "nan" not in out.lower()


def test_a_phase_named_pore_in_other_case_is_the_pore(four_phases, bigseg_cli, tmp_path):
    """"Pore" (as "CBD", "Active": names as papers write them) was no pore: no detachment,
    tortuosity refused, another colour than pore's in every figure."""
    import pandas as pd

    from bigseg.io import phase_colour
    from bigseg.report._figure import phase_marker

    out = bigseg_cli("measure", four_phases, "--tortuosity", "z", "--particles", tmp_path / "p.csv", "--particle-phase",
                     "nmc811", "--no-split", "--no-progress").stdout
    assert "tortuosity" in out.lower() and "no detachment" not in out, out
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["detachment"].notna().all() and (table["detachment"] == table["contact_Pore"]).all()
    assert "NMC811 particles" in out  # the phase's own name, as the labels give it
    assert phase_colour("Pore", 5) == phase_colour("pore", 0) and phase_colour("CBD", 5) == phase_colour("cbd", 1)
    assert phase_marker("Active", 5) == phase_marker("active") == "^"
    # "pore" and "Pore" both present: each its own; two in other case: neither is guessed
    from bigseg.io._volume import phase_named

    assert phase_named(["pore", "Pore"], "Pore") == "Pore" and phase_named(["Pore", "PORE"], "pore") is None
