"""`Pipeline.watch` / `bigseg watch`: scans processed as they appear, each once; failures recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr

import bigseg
from bigseg import synth
from bigseg.errors import InputError
from bigseg.pipeline import Pipeline, _scans


@pytest.fixture(scope="module")
def image():
    return synth.xct(synth.electrode((24, 28, 32), seed=4, chunks=16), seed=4).compute().values


@pytest.mark.slow
def test_once_processes_every_scan_and_records_failures(tmp_path, image, capfd):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "scan_a.npy", image)
    (inbox / "scan_b").mkdir()
    for i, sl in enumerate(image):
        tifffile.imwrite(inbox / "scan_b" / f"s_{i:04d}.tif", sl)
    (inbox / "broken.npy").write_bytes(b"not a numpy file")
    (inbox / "scan_c.npy.part").write_bytes(b"still arriving")
    assert sorted(_scans(inbox)) == ["broken", "scan_a", "scan_b"]
    pipe = Pipeline(chunks=16, predict={"model": "threshold"},  # profile, shells and RVE of scans of two sizes
                    measure={"particles": False, "shells": "active:cbd:3", "rve": True})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True)
    assert "(once: the scans there now)" in capfd.readouterr().err
    assert ledger["scan_a"]["state"] == ledger["scan_b"]["state"] == "done"
    assert ledger["broken"]["state"] == "failed" and "broken.npy" in ledger["broken"]["error"]
    for name in ("scan_a", "scan_b"):
        assert (tmp_path / "out" / name / "report.html").exists()
    assert ledger["scan_a"]["volume_fraction"] == pytest.approx(ledger["scan_b"]["volume_fraction"])
    assert not (tmp_path / "out" / "broken").exists()  # refused before any write: no empty run folder
    assert json.loads((tmp_path / "out" / "watch.json").read_text()) == json.loads(json.dumps(ledger))
    # the done scans, in name order, as the steps of one experiment

    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").set_index("t")
    assert list(ev.scan) == ["scan_a", "scan_b"]
    assert ev.loc[0, "fraction_cbd"] == pytest.approx(ledger["scan_a"]["volume_fraction"]["cbd"])
    assert (tmp_path / "out" / "evolution.png").exists()
    from bigseg.cli import main

    capfd.readouterr()
    assert main(["info", str(tmp_path / "out")]) == 0  # the watch's state, its ledger and its evolution, said
    out = capfd.readouterr().out.splitlines()
    assert out[:3] == ["watch       not running (it ended: --once, Ctrl-C or SIGTERM); the same command goes on with new scans",
                       f"ledger      2 scan(s) done, 1 failed: {tmp_path / 'out'}/watch.json",
                       f"evolution   {tmp_path / 'out'}/evolution.csv, {tmp_path / 'out'}/evolution.png"]
    # a second pass does nothing new; a repaired scan is retried
    stamp = (tmp_path / "out" / "scan_a" / "report.html").stat().st_mtime_ns
    np.save(inbox / "broken.npy", image)
    again = pipe.watch(inbox, tmp_path / "out", once=True)
    assert (tmp_path / "out" / "scan_a" / "report.html").stat().st_mtime_ns == stamp
    assert again["broken"]["state"] == "done"
    # a scan replaced after it was done is processed again from the start
    np.save(inbox / "scan_a.npy", image[:20])
    pipe.watch(inbox, tmp_path / "out", once=True)
    assert bigseg.open_volume(tmp_path / "out" / "scan_a" / "image.ome.zarr").shape == (20,) + image.shape[1:]
    # scans of other sizes: each step's specific areas per its own volume
    from bigseg.report import read_metrics

    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").set_index("t")
    m = read_metrics(tmp_path / "out" / "scan_a")
    area = float(m["area"].sel(phase_a="pore", phase_b="active"))
    assert ev.loc[1, "scan"] == "scan_a"  # broken, scan_a, scan_b
    assert ev.loc[1, "specific_area_pore_active"] == pytest.approx(area / (20 * 28 * 32))


@pytest.mark.slow
def test_scans_numbered_without_zeros_follow_their_numbers(tmp_path, image):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in (10, 2, 1):
        np.save(inbox / f"cycle_{i}.npy", image[: 14 + i])  # each step its own depth
    Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False}).watch(
        inbox, tmp_path / "out", once=True, progress=False)

    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").set_index("t")
    assert list(ev.scan) == ["cycle_1", "cycle_2", "cycle_10"]  # was: cycle_1, cycle_10, cycle_2 (text order)
    depth = [bigseg.open_volume(tmp_path / "out" / n / "image.ome.zarr").shape[0] for n in ev.scan]
    assert depth == [15, 16, 24]


@pytest.mark.slow
def test_clock_mtime_gives_minutes_since_the_first_scan(tmp_path, image):
    """Each scan's time in the experiment: minutes since the first scan's file was written, in
    the order they were (watch had the step index only, and in name order)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    start = 1.7e9
    for name, minutes in (("b_first", 0.0), ("a_second", 30.0), ("c_third", 75.0)):
        np.save(inbox / f"{name}.npy", image[:16])
        os.utime(inbox / f"{name}.npy", (start + 60 * minutes, start + 60 * minutes))
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": True})
    pipe.watch(inbox, tmp_path / "out", once=True, clock="mtime", progress=False)
    import pandas as pd

    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").set_index("t")
    assert list(ev.index) == [0.0, 30.0, 75.0] and list(ev.scan) == ["b_first", "a_second", "c_third"]
    parts = pd.concat([pd.read_csv(tmp_path / "out" / n / "particles.csv") for n in ev.scan])
    assert ev["particles"].sum() == len(parts)
    from bigseg.errors import ConfigError

    with pytest.raises(InputError, match="`clock`"):
        pipe.watch(inbox, tmp_path / "out", once=True, clock="ctime")
    with pytest.raises(ConfigError, match=r"`times` and `time_unit` null for watch .*--clock mtime"):
        Pipeline(times=[0, 30], predict={"model": "threshold"}).watch(inbox, tmp_path / "out2", once=True)
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_clashing_names_unsettled_scans_and_other_voxel_sizes(tmp_path, image, capfd):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "x.npy", image)  # x.npy and x.tif would both be out/x: neither is guessed at
    tifffile.imwrite(inbox / "x.tif", image)
    bigseg.export(bigseg.synth.xct(bigseg.synth.electrode((24, 28, 32), seed=4, voxel_size=50, unit="nm"), seed=4),
                  inbox / "scan_10", progress=False)  # TIFF slices of 50 nm
    np.save(inbox / "scan_2.npy", image)  # a .npy states no voxel size: 1 nm
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, settle=3600)  # all of them written just now
    err = capfd.readouterr().err
    assert ledger == {} and "x.npy, x.tif would all write to" in err and "left for the next watch" in err
    future = time.time() + 30  # a clock ahead (NFS, beamline storage): --once still takes it
    os.utime(inbox / "scan_2.npy", (future, future))
    ledger = pipe.watch(inbox, tmp_path / "out", once=True)  # --once takes what is there (settle 0)
    assert sorted(ledger) == ["scan_10", "scan_2"] and "x" not in ledger
    assert "the scans state other voxel sizes" in capfd.readouterr().err
    from bigseg.report import read_metrics

    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").set_index("t")
    for t, (name, vs) in enumerate((("scan_2", 1.0), ("scan_10", 50.0))):  # each per its own voxel volume
        m = read_metrics(tmp_path / "out" / name)
        area = float(m["area"].sel(phase_a="pore", phase_b="cbd"))
        assert ev.loc[t, "scan"] == name
        assert ev.loc[t, "specific_area_pore_cbd"] == pytest.approx(area / (image.size * vs ** 3))


def test_scans_whose_names_differ_in_case_or_normalisation_only_clash(tmp_path):
    """``Scan.npy`` and ``scan.tif`` write to ``out/Scan`` and ``out/scan``: one folder on macOS
    and Windows (and "ä" typed as one character or as "a" and a combining mark, on macOS), where
    the second scan's run replaced the first's results and both were listed done."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("Scan.npy", "scan.tif", "Zelle_\u00e4.npy", "Zelle_a\u0308.h5", "other.npy"):
        (inbox / name).write_bytes(b"")
    found = _scans(inbox)
    assert sorted(found) == ["Scan", "Zelle_a\u0308", "other"]
    assert [p.name for p in found["Scan"]] == ["Scan.npy", "scan.tif"]
    assert sorted(p.name for p in found["Zelle_a\u0308"]) == ["Zelle_a\u0308.h5", "Zelle_\u00e4.npy"]


def test_a_scan_done_with_other_settings_is_processed_again(tmp_path, image, capfd):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "s.npy", image)
    out = tmp_path / "out"
    Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False}).watch(inbox, out, once=True)
    stamp = (out / "s" / "image.ome.zarr" / "zarr.json").stat().st_mtime_ns
    km = Pipeline(chunks=16, predict={"model": "kmeans"}, measure={"particles": False})
    km.watch(inbox, out, once=True)
    assert "processing again: the settings changed" in capfd.readouterr().err
    assert json.loads((out / "s" / "run.json").read_text())["model"] == "kmeans"
    assert (out / "s" / "image.ome.zarr" / "zarr.json").stat().st_mtime_ns == stamp  # its ingest kept
    km.watch(inbox, out, once=True)
    assert "processing" not in capfd.readouterr().err  # the same settings again: nothing to do
    with pytest.warns(UserWarning, match=r"n_workers=3, memory_limit='2GiB' not used: the run computes on the "
                                         r"current scheduler"):  # no cluster started here to size
        Pipeline(chunks=16, predict={"model": "kmeans"}, measure={"particles": False}, n_workers=3,
                 memory_limit="2GiB").watch(inbox, out, once=True)
    assert "processing" not in capfd.readouterr().err  # where it runs is no setting of the results


def test_bad_arguments(tmp_path):
    pipe = Pipeline(predict={"model": "threshold"})
    with pytest.raises(InputError, match="`inbox`"):
        pipe.watch(tmp_path / "nowhere", tmp_path / "out", once=True)
    with pytest.raises(InputError, match="`interval`"):
        pipe.watch(tmp_path, tmp_path / "out", interval=0, once=True)
    from bigseg.errors import ConfigError

    with pytest.raises(ConfigError, match="`measure.phase`"):  # no scan could run with it: refused at once
        Pipeline(measure={"phase": "graphite"}).watch(tmp_path, tmp_path / "out", once=True)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="`out` to be another folder than `inbox`"):  # results among the scans
        pipe.watch(tmp_path, tmp_path / ".", once=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cli_watch_picks_up_a_scan_that_arrives(tmp_path, image, interruptible_bigseg):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    proc = subprocess.Popen([*interruptible_bigseg, "watch", str(inbox), "--out", str(out), "--model", "threshold",
                             "--interval", "0.3", "--settle", "0.5", "--fov", "cylinder"], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "BIGSEG_CHUNKS": "16"})
    try:
        time.sleep(1.0)
        np.save(inbox / "late.npy", image)
        deadline = time.time() + 90
        ledger = out / "watch.json"  # written after the scan's "done" line (report.html comes before it)
        while not (ledger.exists() and "late" in ledger.read_text()) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
        assert (out / "late" / "report.html").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "late: done" in err
    # every scan segmented inside the cylinder its field of view is
    labels = bigseg.open_volume(out / "late" / "image.ome.zarr" / "labels" / "segmentation").values
    inside = bigseg.io.fov_mask(image, "cylinder").values
    assert (labels[:, ~inside] == 255).all() and (labels[:, inside] < 3).all()


def test_info_on_a_folder_of_runs_lists_each(tmp_path, capsys):
    from bigseg.cli import main

    img = np.random.default_rng(2).random((10, 12, 14)).astype(np.float32)
    Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(img, tmp_path / "w" / "a", progress=False)
    (tmp_path / "w" / "b").mkdir()
    (tmp_path / "w" / "b" / "stages.json").write_text('{"ingest": "x"}')  # stopped after its ingest
    (tmp_path / "w" / "watch.json").write_text("{}")
    capsys.readouterr()
    assert main(["info", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"runs in {tmp_path / 'w'} (2;")
    assert out[1].split()[:2] == ["a", "threshold:"] and "pore 0." in out[1] and "report.html" in out[1]
    assert out[2].split()[0] == "b" and "stopped after ingest" in out[2]
    # what the watch's ledger says: a scan that failed (folder or none), runs in number order
    Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(img, tmp_path / "w" / "a10", progress=False)
    Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(img, tmp_path / "w" / "a9", progress=False)
    (tmp_path / "w" / "watch.json").write_text(json.dumps({
        "b": {"state": "failed", "error": "InputError: Expected `fov` ..."},
        "c": {"state": "failed", "error": "InputError: Expected `crop` ..."}}))
    assert main(["info", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out.splitlines()
    # the watch itself: ended, and its ledger's count (was left to guess from the runs)
    assert out[0].startswith("watch       not running (it ended")
    assert out[1] == f"ledger      0 scan(s) done, 2 failed: {tmp_path / 'w'}/watch.json"
    out = out[2:]
    assert "1 failed before any output" in out[0]
    assert [line.split()[0] for line in out[1:]] == ["a", "a9", "a10", "b", "c"]
    assert out[4].split()[1:3] == ["FAILED:", "InputError:"] and "`crop`" in out[5]
    # a watch killed from outside (kill, scancel, timeout: SIGTERM) leaves its lock: said as such,
    # with the scans it did (it read as one run "killed before any stage was done"), also when
    # it was killed before its ledger was first written
    (tmp_path / "w" / ".bigseg.lock").write_text(json.dumps({"pid": 4242, "host": "beamline", "since": "then",
                                                             "command": "bigseg watch in --out w"}))
    for ledger in (True, False):
        if not ledger:
            (tmp_path / "w" / "watch.json").unlink()
        assert main(["info", str(tmp_path / "w")]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("watch       stopped from outside: process 4242 on beamline") and "was killed" in out[0]
        out = out[1 + ledger:]  # (the ledger's line)
        assert out[0].startswith(f"runs in {tmp_path / 'w'} (") and out[1].split()[0] == "a"
    (tmp_path / "w" / ".bigseg.lock").unlink()
    # a labels group of several label images: which one is meant is asked, not guessed
    labels = tmp_path / "w" / "a" / "image.ome.zarr" / "labels"
    assert main(["info", str(labels)]) == 0  # only one there
    bigseg.save_labels(np.zeros((10, 12, 14), np.uint8), labels.parent, name="other", phases=["pore", "cbd", "active"],
                       progress=False)
    assert main(["info", str(labels)]) == 2
    assert "which holds 2 (" in capsys.readouterr().err


def test_info_names_each_run_by_its_folder_on_windows_too(monkeypatch):
    """Windows paths separate by backslashes: each run was listed by its whole path (cut at "/")."""
    from pathlib import PureWindowsPath

    from bigseg.cli import cmd_info

    monkeypatch.setattr(cmd_info, "Path", PureWindowsPath)
    info = {"folder": "C:\\beamline\\out", "runs": [{"run": "C:\\beamline\\out\\scan_1",
                                                       "state": {"state": "incomplete", "stages": ["ingest"]}}]}
    assert cmd_info._runs_lines(info, None)[1].split()[0] == "scan_1"


def test_an_evolution_that_cannot_be_made_does_not_stop_the_watch(tmp_path, image, capfd):
    # a done scan's metrics removed by hand: reading them for evolution.csv raised out of the
    # watch's loop, so the watch died and the scans after it were never processed
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "a.npy", image[:8])
    pipe = Pipeline(predict={"model": "threshold"}, measure={"particles": False})
    pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    for f in ("metrics.json", "metrics.nc"):
        (tmp_path / "out" / "a" / f).unlink(missing_ok=True)
    np.save(inbox / "b.npy", image[:8])
    np.save(inbox / "c.npy", image[:8])
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert ledger["b"]["state"] == ledger["c"]["state"] == "done"
    assert "evolution.csv not written" in capfd.readouterr().err


def test_a_scan_that_vanishes_while_the_inbox_is_read_does_not_stop_the_watch(tmp_path, image, monkeypatch):
    # a beamline writer renaming `x.tif.part` to `x.tif`, or a scan removed by hand, between the
    # listing and the look at its files: the FileNotFoundError stopped the watch
    from bigseg import pipeline

    inbox = tmp_path / "inbox"
    (inbox / "slices").mkdir(parents=True)
    tifffile.imwrite(inbox / "slices" / "s0.tif", image[0])
    tifffile.imwrite(inbox / "slices" / "s1.tif", image[1])
    np.save(inbox / "a.npy", image[:8])
    listed = _scans(inbox)
    ghost = tmp_path / "inbox" / "gone.npy"
    monkeypatch.setattr(pipeline, "_scans", lambda folder: {**listed, "gone": [ghost]})
    real_rglob = type(ghost).rglob

    def rglob_with_a_vanished_slice(self, pattern):  # a slice listed, then removed before its stat
        yield from real_rglob(self, pattern)
        if self.name == "slices":
            yield self / "s2.tif"
            assert not (self / "s2.tif").exists()

    monkeypatch.setattr(type(ghost), "rglob", rglob_with_a_vanished_slice)
    assert pipeline._signature(ghost) is None
    assert pipeline._signature(inbox / "slices")[0] == sum(f.stat().st_size for f in (inbox / "slices").iterdir())
    pipe = Pipeline(predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert ledger["a"]["state"] == "done" and ledger["slices"]["state"] == "done" and "gone" not in ledger


def test_a_series_in_the_inbox_is_done_and_left_out_of_the_evolution(tmp_path, image, capfd):
    # a (t, z, y, x) file among the scans: its fractions over time (tuple keys) made the ledger's
    # json.dumps raise out of the loop, so the watch died, and did so again at every restart
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "scan_1.npy", image[:8])
    np.save(inbox / "scan_2.npy", image[:8])
    np.save(inbox / "scan_3.npy", np.stack([image[:8], image[:8]]))  # two time steps in one file
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert {k: v["state"] for k, v in ledger.items()} == dict.fromkeys(("scan_1", "scan_2", "scan_3"), "done")
    fractions = ledger["scan_3"]["volume_fraction"]
    assert len(fractions["pore"]) == 2 and fractions["pore"][0] == pytest.approx(ledger["scan_1"]["volume_fraction"]["pore"])
    assert json.loads((tmp_path / "out" / "watch.json").read_text()) == json.loads(json.dumps(ledger))
    # the evolution goes on with the single scans (it stopped silently at the series), saying what it leaves out
    assert list(bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").scan) == ["scan_1", "scan_2"]
    assert "evolution.csv leaves out scan_3: a series" in capfd.readouterr().err


def test_an_evolution_that_cannot_be_made_now_is_removed(tmp_path, image, capfd):
    # scan_b replaced by a broken file: one scan done is no evolution, but the earlier
    # evolution.csv (with scan_b as done) stayed, looking current
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "scan_a.npy", image[:8])
    np.save(inbox / "scan_b.npy", image[:8])
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    out = tmp_path / "out"
    pipe.watch(inbox, out, once=True, progress=False)
    assert (out / "evolution.csv").exists() and (out / "evolution.png").exists()
    (inbox / "scan_b.npy").write_bytes(b"overwritten by a detector that crashed")
    ledger = pipe.watch(inbox, out, once=True, progress=False)
    assert ledger["scan_b"]["state"] == "failed"
    assert not (out / "evolution.csv").exists() and not (out / "evolution.png").exists()


def test_scans_written_at_the_same_time_are_not_one_step(tmp_path, image, capfd):
    # with --clock mtime two scans copied in within one timestamp got the same t: evolution.csv
    # showed each with the particles of both (counted twice)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, minutes in (("a", 0.0), ("b", 0.0), ("c", 5.0)):
        np.save(inbox / f"{name}.npy", image[:12] if name == "a" else image[:16])
        os.utime(inbox / f"{name}.npy", (1.7e9 + 60 * minutes, 1.7e9 + 60 * minutes))
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"connectivity": None})
    pipe.watch(inbox, tmp_path / "out", once=True, clock="mtime", progress=False)
    assert "a, b were last written at the same time" in capfd.readouterr().err
    assert not (tmp_path / "out" / "evolution.csv").exists()
    from bigseg.report import read_metrics

    per_scan = [read_metrics(tmp_path / "out" / n) for n in ("a", "b")]
    per_scan = [m.drop_dims([d for d in m.dims if d not in ("phase", "phase_a", "phase_b")]) for m in per_scan]
    metrics = xr.concat(per_scan, dim=pd.Index([0.0, 0.0], name="t"), combine_attrs="override")
    with pytest.raises(InputError, match=r"one time per step. Got t = \[0.0, 0.0\]"):
        bigseg.measure.evolution(metrics)


def test_a_done_scan_whose_results_were_removed_is_done_again(tmp_path, image):
    # a user removing out/scan_b to have it redone: the ledger's "done" skipped it for ever, and
    # evolution.csv went on without that step
    import shutil

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("scan_a", "scan_b", "scan_c"):
        np.save(inbox / f"{name}.npy", image[:8])
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    out = tmp_path / "out"
    pipe.watch(inbox, out, once=True, progress=False)
    shutil.rmtree(out / "scan_b")
    pipe.watch(inbox, out, once=True, progress=False)
    assert (out / "scan_b" / "run.json").exists()
    assert list(bigseg.measure.read_table(out / "evolution.csv").scan) == ["scan_a", "scan_b", "scan_c"]


def test_a_scan_stamped_by_a_clock_ahead_is_taken_once_it_settles(tmp_path, image, monkeypatch):
    # beamline storage whose clock runs an hour ahead: every scan's modification time lay in the
    # future, so `now - mtime < settle` held for an hour and the watch silently took nothing
    import types

    from bigseg import pipeline

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.save(inbox / "scan_0.npy", image[:8])
    ahead = time.time() + 3600
    os.utime(inbox / "scan_0.npy", (ahead, ahead))
    clock = {"now": time.time(), "looks": 0}

    class Stop(Exception):
        pass

    def sleep(seconds):  # each look at the inbox `interval` seconds after the last, without waiting
        clock["now"] += seconds
        clock["looks"] += 1
        if clock["looks"] > 5:
            raise Stop

    monkeypatch.setattr(pipeline, "time", types.SimpleNamespace(time=lambda: clock["now"], sleep=sleep,
                                                                perf_counter=time.perf_counter))
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    with pytest.raises(Stop):  # five looks, 10 s apart, at a scan unchanged throughout: settled after 2
        pipe.watch(inbox, tmp_path / "out", interval=10, settle=15, progress=False)
    assert json.loads((tmp_path / "out" / "watch.json").read_text())["scan_0"]["state"] == "done"


def test_a_watch_started_again_with_another_clock_rewrites_the_evolution(tmp_path, image):
    # `--clock mtime` after a watch in name order, no new scan: evolution.csv kept the steps
    # 0, 1 (t read as minutes) until another scan arrived
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, minutes in (("a", 0.0), ("b", 45.0)):
        np.save(inbox / f"{name}.npy", image[:8])
        os.utime(inbox / f"{name}.npy", (1.7e9 + 60 * minutes, 1.7e9 + 60 * minutes))
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert list(bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").t) == [0, 1]
    pipe.watch(inbox, tmp_path / "out", once=True, clock="mtime", progress=False)
    assert list(bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").t) == [0.0, 45.0]
    assert (tmp_path / "out" / "evolution.csv").read_text().startswith("t [min],scan,")  # steps or minutes: said


def test_the_ledger_names_each_scan_by_its_absolute_path(tmp_path, monkeypatch):
    # a watch started with a relative inbox recorded "inbox/broken.npy": meaningless from any other folder
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "broken.npy").write_bytes(b"not a numpy file")
    monkeypatch.chdir(tmp_path)
    ledger = Pipeline(predict={"model": "threshold"}).watch("inbox", "out", once=True, progress=False)
    assert ledger["broken"]["state"] == "failed"
    assert ledger["broken"]["source"] == str(tmp_path / "inbox" / "broken.npy")
    assert json.loads((tmp_path / "out" / "watch.json").read_text())["broken"]["source"] == str(tmp_path / "inbox" / "broken.npy")


def test_a_done_scan_renamed_is_one_step_of_the_evolution_not_two(tmp_path, image, capfd):
    # scan_9 renamed scan_09 (to sort by name) was a new scan: evolution.csv then counted it twice
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i, name in enumerate(("scan_8", "scan_9")):
        np.save(inbox / f"{name}.npy", image[:8] + i)
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    (inbox / "scan_9.npy").rename(inbox / "scan_09.npy")
    np.save(inbox / "scan_10.npy", image[:8] + 2)
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert ledger["scan_9"]["state"] == "renamed" and ledger["scan_9"]["renamed_to"] == "scan_09"
    assert "[watch] scan_09: the scan scan_9 renamed (same bytes and time, scan_9 gone)" in capfd.readouterr().err
    assert list(bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").scan) == ["scan_8", "scan_09", "scan_10"]
    from bigseg.cli import main

    assert main(["info", str(tmp_path / "out")]) == 0
    assert "  scan_9         its scan renamed scan_09 since" in capfd.readouterr().out


def test_the_watch_says_its_sizing_once_not_per_scan(tmp_path, monkeypatch):
    """`bigseg watch --cluster local --workers N` (or `n_workers` with no cluster): each scan's
    run computes where the watch does; the sizing is neither warned about as unused for every
    scan (it said "the run computes on the current scheduler (threads in this process)" of the
    watch's own cluster, once per scan, into a days-long log) nor, where the watch started the
    cluster, at all."""
    import contextlib
    import warnings

    import bigseg.runtime

    small = synth.xct(synth.electrode((8, 12, 12), seed=1), seed=1).compute().values
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(2):
        np.save(inbox / f"s{i}.npy", small)
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None,
                                                                       "profile": None}, n_workers=1)

    class FakeClient:  # the watch's cluster, started by it (its scans compute here, on threads)
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def as_current(self):
            return contextlib.nullcontext()

    started = []
    monkeypatch.setattr(bigseg.runtime, "connect", lambda *a, **k: started.append(k) or FakeClient())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ledger = pipe.watch(inbox, tmp_path / "out", once=True, client="local", progress=False)
    assert [st["state"] for st in ledger.values()] == ["done", "done"] and started[0]["n_workers"] == 1
    assert not [w for w in seen if "not used" in str(w.message)]
    with warnings.catch_warnings(record=True) as seen:  # no cluster: said once, by the watch
        warnings.simplefilter("always")
        pipe.watch(inbox, tmp_path / "out2", once=True, progress=False)
    assert len([w for w in seen if "n_workers=1 not used" in str(w.message)]) == 1


def test_the_evolution_reads_each_done_scan_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """The evolution is made again after every scan: each done scan's metrics were read again each
    time (0.1-0.25 s each: after 300 scans 30 s per scan, growing for as long as the watch ran).
    A scan's metrics rewritten since are read again."""
    import bigseg.report

    small = synth.xct(synth.electrode((8, 12, 12), seed=1), seed=1).compute().values
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        np.save(inbox / f"s{i}.npy", small)
    reads = []
    real = bigseg.report.read_metrics
    monkeypatch.setattr(bigseg.report, "read_metrics", lambda run: reads.append(os.path.basename(run)) or real(run))
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None,
                                                                       "profile": None})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert [st["state"] for st in ledger.values()] == ["done"] * 3
    assert sorted(reads) == ["s0", "s1", "s2"]  # once each (was s0 three times, s1 twice)
    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv")
    assert list(ev.scan) == ["s0", "s1", "s2"]
    from bigseg.pipeline import _watch_evolution

    cache: dict = {}
    _watch_evolution(tmp_path / "out", ledger, cache=cache)
    reads.clear()
    m = real(tmp_path / "out" / "s1")
    m["volume_fraction"][:] = 0.25  # s1's metrics rewritten (e.g. its run done again)
    (tmp_path / "out" / "s1" / "metrics.nc").unlink()
    m.to_netcdf(tmp_path / "out" / "s1" / "metrics.nc", engine="h5netcdf")
    _watch_evolution(tmp_path / "out", ledger, cache=cache)
    assert reads == ["s1"]
    ev = bigseg.measure.read_table(tmp_path / "out" / "evolution.csv").set_index("scan")
    assert ev.loc["s1", "fraction_cbd"] == pytest.approx(0.25) and ev.loc["s0", "fraction_cbd"] != pytest.approx(0.25)


def test_the_evolution_reads_each_done_scans_particles_once_and_counts_them_as_all_together(tmp_path, monkeypatch):
    """The watch's evolution read every done scan's particles.csv again after each scan (a scan of
    a million particles: ~0.2 GB of text each time, for every scan done): now once while it stays
    as it is, its counts and medians equal to those of the evolution of all the tables together."""
    import inspect

    import bigseg.measure
    from bigseg.pipeline import _watch_evolution

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        np.save(inbox / f"s{i}.npy", synth.xct(synth.electrode((20, 24, 24), seed=i, radius=(3, 0.5)), seed=i).compute().values)
    reads = []
    real = bigseg.measure.read_table

    def read_table(path):  # those of the watch's evolution (each run's report reads its own)
        if any(f.function in ("_write_watch_evolution", "_watch_particles") for f in inspect.stack(0)):
            reads.append(str(path))
        return real(path)

    monkeypatch.setattr(bigseg.measure, "read_table", read_table)
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"connectivity": None, "profile": None})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert [st["state"] for st in ledger.values()] == ["done"] * 3
    tables = [p for p in reads if p.endswith("particles.csv")]
    assert sorted(tables) == [str(tmp_path / "out" / f"s{i}" / "particles.csv") for i in range(3)]  # once each
    ev = real(tmp_path / "out" / "evolution.csv")
    # as the evolution of the scans' metrics and all their tables together
    from bigseg.report import read_metrics

    runs = [tmp_path / "out" / f"s{i}" for i in range(3)]
    ds = xr.concat([read_metrics(r).drop_dims([d for d in read_metrics(r).dims if d not in ("phase", "phase_a", "phase_b")])
                    for r in runs], dim=pd.Index(range(3), name="t"), combine_attrs="override")
    table = pd.concat([real(r / "particles.csv").assign(t=i) for i, r in enumerate(runs)], ignore_index=True)
    want = bigseg.measure.evolution(ds, table)
    assert (want["particles"] > 0).all() and want["particles_inside"].sum() > 0
    for col in [c for c in want.columns if c.startswith(("particles", "median_"))]:
        np.testing.assert_allclose(ev[col].to_numpy(float), want[col].to_numpy(float), err_msg=col)
    assert [c for c in ev.columns if c not in ("t", "scan")] == list(want.columns)
    # a scan's table rewritten since is read again; the others are not
    cache: dict = {}
    _watch_evolution(tmp_path / "out", ledger, cache=cache)
    reads.clear()
    one = real(runs[1] / "particles.csv").iloc[:1]
    bigseg.measure.write_table(one, runs[1] / "particles.csv")
    _watch_evolution(tmp_path / "out", ledger, cache=cache)
    assert reads == [str(runs[1] / "particles.csv")]
    assert real(tmp_path / "out" / "evolution.csv")["particles"].tolist()[1] == 1


def test_a_scan_whose_folder_another_run_writes_is_left_for_a_later_look_not_failed(tmp_path, capfd):
    """`bigseg run SCAN --out OUT/SCAN` started by hand while a watch runs: the watch's run of that
    scan is refused (one writer at a time). It was recorded as failed, and a failed scan is
    retried only when its files change: never done by the watch, left out of its evolution."""
    import threading

    from bigseg.runtime._lock import held

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    np.save(inbox / "s0.npy", synth.xct(synth.electrode((8, 12, 12), seed=1), seed=1).compute().values)
    pipe = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None,
                                                                       "profile": None})
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:  # another writer of OUT/s0 (a thread here: refused as another process is)
        with held(out / "s0", argument="dest", inside=True):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert holding.wait(30)
        ledger = pipe.watch(inbox, out, once=True, progress=False)
    finally:
        release.set()
        thread.join(30)
    assert "s0" not in ledger and "s0: left for the next look" in capfd.readouterr().err
    assert pipe.watch(inbox, out, once=True, progress=False)["s0"]["state"] == "done"


def test_the_evolution_reads_a_rewritten_metrics_json_again(tmp_path):
    """A run that wrote metrics.json only (no netCDF): its rewrite is seen, as metrics.nc's is."""
    from bigseg.pipeline import _watch_metrics

    run = tmp_path / "s0"
    run.mkdir()

    def write(fraction):
        ds = xr.Dataset({"volume_fraction": ("phase", [fraction, 1 - fraction])}, coords={"phase": ["pore", "active"]})
        (run / "metrics.json").write_text(json.dumps(ds.to_dict()))

    cache: dict = {}
    write(0.25)
    assert _watch_metrics(run, cache)[1]["volume_fraction"].values.tolist() == [0.25, 0.75]
    write(0.5)
    os.utime(run / "metrics.json", ns=(time.time_ns() + 10**9,) * 2)  # written later (not within the clock's tick)
    assert _watch_metrics(run, cache)[1]["volume_fraction"].values.tolist() == [0.5, 0.5]


def test_a_done_scans_particle_columns_take_two_evolutions_not_one_per_column(tmp_path, monkeypatch):
    """A done scan's particle columns for the watch's evolution made ``measure.evolution`` of its
    metrics again for every column of the table (inside the list's condition: 23 evolutions per
    scan, half of the 0.24 s per done scan each watch, and each ``--once``, reads): two now."""
    import bigseg.measure
    from bigseg.pipeline import _watch_particles

    labels = synth.electrode((16, 20, 20), seed=2, radius=(3, 0.5))
    metrics = bigseg.measure.summary(labels)
    bigseg.measure.write_table(bigseg.measure.particles(labels, progress=False), tmp_path / "particles.csv")
    calls = []
    real = bigseg.measure.evolution

    def evolution(*args, **kwargs):
        calls.append(len(args) + len(kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(bigseg.measure, "evolution", evolution)
    got = _watch_particles(tmp_path, metrics, None)
    assert len(calls) == 2
    assert "particles" in got.columns and "fraction_pore" not in got.columns and len(got) == 1


def test_the_evolution_keeps_a_scans_particles_whose_table_lacks_a_column(tmp_path):
    """QA review: each done scan's particle columns came from the first scan's table: a later scan
    whose particles.csv lacks one (e.g. written by an older bigseg) raised KeyError, and the watch
    wrote no evolution at all (all the tables together gave NaN there)."""
    from bigseg import measure
    from bigseg.pipeline import _watch_evolution, _write_metrics

    ledger = {}
    for i in range(2):
        lab = synth.electrode((16, 24, 24), seed=i, radius=(2, 0.3))
        run = tmp_path / f"s{i}"
        run.mkdir()
        _write_metrics(measure.summary(lab), run)
        tab = measure.particles(lab, progress=False)
        measure.write_table(tab.drop(columns=["equivalent_diameter"]) if i else tab, run / "particles.csv")
        ledger[f"s{i}"] = {"state": "done", "signature": [1, 100.0 + i]}
    _watch_evolution(tmp_path, ledger)
    ev = measure.read_table(tmp_path / "evolution.csv")
    assert (ev["particles_inside"] > 0).all()
    assert np.isfinite(ev["median_equivalent_diameter"][0]) and np.isnan(ev["median_equivalent_diameter"][1])


def test_a_scan_that_failed_for_want_of_room_is_taken_up_once_there_is_room(tmp_path, monkeypatch, capfd):
    """A scan whose output could not be written (a full disk, a folder made read-only) was recorded
    as failed and never tried again, its files being unchanged, by this watch or the next, though
    the error said "the same command resumes once there is room"; now tried again at each look,
    resuming what was written."""
    import errno

    from zarr.storage import _local

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    np.save(inbox / "s0.npy", synth.xct(synth.electrode((8, 12, 12), seed=1), seed=1).compute().values)
    pipe = Pipeline(chunks=8, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None,
                                                                      "profile": None})
    put, writes = _local._put, []

    def full_after_some(path, value, *args, **kwargs):
        if "/c/" in str(path):  # the blocks
            writes.append(path)
            if len(writes) > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return put(path, value, *args, **kwargs)

    monkeypatch.setattr(_local, "_put", full_after_some)
    state = pipe.watch(inbox, out, once=True, progress=False)["s0"]
    assert state["state"] == "failed" and "room to write `dest`" in state["error"] and state["retry"]
    monkeypatch.setattr(_local, "_put", put)
    capfd.readouterr()
    assert pipe.watch(inbox, out, once=True, progress=False)["s0"]["state"] == "done"
    assert "resuming: 2 of" in capfd.readouterr().err
    assert "retry" not in json.loads((out / "watch.json").read_text())["s0"]


def test_evolution_takes_one_unit_however_spelt(tmp_path, capfd):
    # scans measured in um and in µm (one unit, two spellings): one evolution, not "several units"
    from bigseg.pipeline import _write_watch_evolution

    lab = np.zeros((8, 8, 8), np.uint8)
    lab[:4] = 1
    ledger = {}
    for name, unit in (("scan_a", "um"), ("scan_b", "µm")):
        (tmp_path / name).mkdir()
        vol = bigseg.io.make_volume(lab, voxel_size=0.05, unit=unit, phases=["pore", "active"])
        bigseg.measure.summary(vol).to_netcdf(tmp_path / name / "metrics.nc")
        ledger[name] = {"state": "done", "signature": [1, 0.0]}
    assert _write_watch_evolution(tmp_path, ledger, "order")
    assert "several units" not in capfd.readouterr().err
    ev = bigseg.measure.read_table(tmp_path / "evolution.csv")
    assert list(ev["scan"]) == ["scan_a", "scan_b"]


class _Stop(Exception):
    pass


def _watch_on_a_fake_clock(monkeypatch, tmp_path, run, looks, on_look=None):
    """A watch of an inbox holding one scan, s0.npy, each look 200 s after the last on a fake clock
    (no waiting), its runs ``run(look)`` and, after each look, ``on_look(clock)``; stopped after
    ``looks`` looks. Returns the clock (``now``, ``looks``) and the inbox."""
    import types

    from bigseg import pipeline

    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    if not (inbox / "s0.npy").exists():
        np.save(inbox / "s0.npy", np.zeros((4, 4, 4), np.float32))
    clock = {"now": time.time(), "looks": 0}

    def sleep(seconds):
        clock["now"] += seconds
        clock["looks"] += 1
        if on_look is not None:
            on_look(clock, inbox)
        if clock["looks"] >= looks:
            raise _Stop

    monkeypatch.setattr(pipeline, "time", types.SimpleNamespace(time=lambda: clock["now"], sleep=sleep,
                                                                perf_counter=time.perf_counter))
    pipe = Pipeline(predict={"model": "threshold"})
    monkeypatch.setattr(pipe, "run", lambda source, dest, **kwargs: run(clock["looks"]))
    with pytest.raises(_Stop):
        pipe.watch(inbox, tmp_path / "out", interval=200, settle=0, progress=False)
    return clock


def test_a_scan_without_room_is_tried_again_less_and_less_often(tmp_path, monkeypatch, capfd):
    """A scan whose output could not be written was tried again at every look (30 s by default, two
    log lines each time) for as long as the disk stayed full; now after 2, 4, 8, ... looks, at most
    every 10 minutes, and at each look again once it is done."""
    from bigseg.errors import OutputNotWritableError

    tries = []

    def run(look):
        tries.append(look)
        raise OutputNotWritableError("No room to write `dest`")

    _watch_on_a_fake_clock(monkeypatch, tmp_path, run, 12)
    assert tries == [0, 2, 5, 8, 11]  # waits of 400 s, then 600 s (the most) at 200 s between looks
    err = capfd.readouterr().err
    assert "tried again, resuming, in 400 s)" in err and "in 600 s; failed 2 times in a row)" in err
    assert json.loads((tmp_path / "out" / "watch.json").read_text())["s0"]["retry"]
    tries.clear()
    _watch_on_a_fake_clock(monkeypatch, tmp_path, run, 12)  # a watch started again tries at once
    assert tries[0] == 0


def test_a_scan_named_as_the_watchs_own_outputs_is_left_alone(tmp_path, image, capfd):
    # QA (hostile inputs): `evolution.png.npy` in a shared inbox ran into out/evolution.png, a folder the
    # watch then replaced with its own evolution.png: the scan's results deleted, the ledger saying it done,
    # its folder done again (and deleted again) at each look, and no evolution for the other scans
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("Evolution.PNG.npy", "watch.json.npy", "a.npy"):
        np.save(inbox / name, image[:8])
    pipe = Pipeline(predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert list(ledger) == ["a"] and ledger["a"]["state"] == "done"
    err = capfd.readouterr().err
    assert "Evolution.PNG.npy would write to" in err and "watch.json.npy would write to" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "watch.json"]


def test_a_fifo_or_a_link_to_a_device_in_the_inbox_fails_that_scan_not_the_watch(tmp_path, image):
    # QA (hostile inputs): a FIFO named hang.npy (or a zarr store holding one as a chunk) in the inbox: its
    # read waited for a writer for ever, the watch hung (SIGTERM unheard) and the scans after it never ran;
    # a link to /dev/zero read without end
    inbox = tmp_path / "inbox"
    (inbox / "store.zarr" / "0").mkdir(parents=True)
    os.mkfifo(inbox / "store.zarr" / "0" / "c")
    os.mkfifo(inbox / "hang.npy")
    (inbox / "zero.npy").symlink_to("/dev/zero")
    np.save(inbox / "z.npy", image[:8])
    pipe = Pipeline(predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    ledger = pipe.watch(inbox, tmp_path / "out", once=True, progress=False)
    assert ledger["z"]["state"] == "done"
    for name in ("hang", "zero", "store"):
        assert ledger[name]["state"] == "failed" and "a FIFO, a device or a socket" in ledger[name]["error"]


def test_a_want_of_room_after_another_failure_waits_anew(tmp_path, monkeypatch, capfd):
    # the back-off's count was kept through a failure of another kind: the next want of room waited longer
    from bigseg.errors import OutputNotWritableError

    errors = iter([OutputNotWritableError("No room to write `dest`"), ValueError("a bad scan"),
                   OutputNotWritableError("No room to write `dest`")])

    def replaced(clock, inbox):  # the scan replaced after its failure: taken again
        if clock["looks"] == 3:
            os.utime(inbox / "s0.npy", (clock["now"] - 1, clock["now"] - 1))

    def run(look):
        raise next(errors)

    _watch_on_a_fake_clock(monkeypatch, tmp_path, run, 5, replaced)
    err = capfd.readouterr().err
    assert "a bad scan" in err and err.count("tried again, resuming, in 400 s)") == 2 and "2 times in a row" not in err