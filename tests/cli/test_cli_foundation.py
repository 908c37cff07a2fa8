"""The CLI: --help everywhere, ingest, info, cluster, errors (a process where the entry point, a
pipe or the terminal's encoding is the point; in this process otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigseg.cli import main
from bigseg.errors import InputError

BIGSEG = str(Path(sys.executable).with_name("bigseg"))


def run(*args, check=True, timeout=120):
    out = subprocess.run([BIGSEG, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and out.returncode:
        raise AssertionError(f"bigseg {args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def test_help_on_every_subcommand(capsys):
    top = run("--help").stdout  # the installed entry point, once
    assert run("segment", "--help").stdout.startswith("usage: bigseg segment")
    from bigseg.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    names = sorted(sub.choices)
    assert {"ingest", "info", "cluster", "demo"} <= set(names)
    for name in names:  # the rest in this process (the same parser; a process each cost ~15 s)
        assert name in top
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0, name
        assert capsys.readouterr().out.startswith("usage: bigseg " + name), name



def test_every_option_has_help_with_its_default():
    """`bigseg X --help` is a script writer's reference: every option says what it does and, where
    it has a default value, what that is (train's --epochs, --batch-size, --seed had no help)."""
    import argparse

    from bigseg.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = []
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            said = action.help or ""
            if not said or (isinstance(action, argparse._StoreAction) and action.default not in (None, False)
                            and "default" not in said):
                missing.append(f"{name} {action.option_strings[-1]}")
    assert not missing, missing


def test_parser_loads_no_heavy_package():
    """Every command's start (``bigseg --help`` too) builds the whole parser: no command module
    may load the measure kernels (numba, scikit-image: ~0.5 s), the report, torch or matplotlib
    at import; each command imports what it runs when it runs."""
    code = ("import sys\nfrom bigseg.cli import build_parser\nbuild_parser()\n"
            "print([m for m in ('bigseg.measure', 'bigseg.report', 'numba', 'skimage', 'torch', 'matplotlib') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_helps_defaults_are_the_functions_own():
    """Defaults a help states without importing the function's module (it would load numba)."""
    from bigseg.baselines._forest import DEFAULT_SIGMAS
    from bigseg.cli import build_parser

    seg = build_parser()._subparsers._group_actions[0].choices["segment"]
    sigmas = next(a for a in seg._actions if "--sigmas" in a.option_strings)
    assert f"(default {','.join(map(str, DEFAULT_SIGMAS))})" in sigmas.help

def test_ingest_then_info(tmp_path, odd_volume, bigseg_cli):
    np.save(tmp_path / "v.npy", odd_volume)
    out = bigseg_cli("ingest", tmp_path / "v.npy", tmp_path / "v.ome.zarr", "--chunks", "10,17,30", "--voxel-size", "2,1,1",
              "--unit", "um", "--levels", "2")
    assert "wrote" in out.stdout and "(37, 53, 71)" in out.stdout
    assert "no voxel size" not in out.stderr
    bare = bigseg_cli("ingest", tmp_path / "v.npy", tmp_path / "b.ome.zarr")  # no voxel size anywhere: said so
    assert "no voxel size" in bare.stderr and "--voxel-size" in bare.stderr
    import tifffile  # a calibrated TIFF: its own voxel size, no note; --unit converts it

    tifffile.imwrite(tmp_path / "ij.tif", odd_volume[:4], imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 1.0, "unit": "micron"})
    cal = bigseg_cli("ingest", tmp_path / "ij.tif", tmp_path / "c.ome.zarr", "--unit", "nm")
    assert "voxel size 1000 x 500 x 500 nm" in cal.stdout and "no voxel size" not in cal.stderr
    bigseg_cli("ingest", tmp_path / "v.npy", tmp_path / "crop.ome.zarr", "--crop", "1:5,:,10:-10")
    assert "cropped     z 1:5, y 0:53, x 10:61 of the source" in bigseg_cli("info", tmp_path / "crop.ome.zarr").stdout
    text = bigseg_cli("info", tmp_path / "v.ome.zarr").stdout
    assert "37 x 53 x 71" in text and "10 x 17 x 30" in text and "2 x 1 x 1 um" in text and "uint16" in text
    info = json.loads(bigseg_cli("info", tmp_path / "v.ome.zarr", "--json").stdout)
    assert info["levels"] == 2 and info["bytes_on_disk"] > 0
    # like with like: the full resolution's bytes against its uncompressed size; the store in all beside
    assert 0 < info["bytes_on_disk_level0"] < info["bytes_on_disk"]  # level 1 and the metadata on top
    assert "uncompressed); " in text and "full resolution" in text and "the whole store" in text
    assert info["intensity"]["max"] <= odd_volume.max() and info["intensity"]["min"] >= odd_volume.min()


def test_errors_are_one_line_and_exit_2(tmp_path, bigseg_cli):
    out = bigseg_cli("ingest", tmp_path / "missing", tmp_path / "o.ome.zarr", check=False)
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.uint8))
    out = bigseg_cli("ingest", tmp_path / "v.npy", tmp_path / "o.ome.zarr", "--chunks", "0", check=False)
    assert out.returncode == 2 and "`--chunks`" in out.stderr
    assert not (tmp_path / "o.ome.zarr").exists()


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore")
def test_cluster_prints_dashboard_and_stops():
    out = run("cluster", "--workers", "1", "--duration", "1", timeout=90)
    assert "dashboard   http://127.0.0.1:" in out.stdout
    assert "scheduler   tcp://127.0.0.1:" in out.stdout


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore")
def test_cluster_on_a_port_of_ones_choosing(capsys):
    """Scripts name a fixed address (README: --cluster tcp://127.0.0.1:8786): was a new free port at
    every start, with no option to choose it; a port in use is refused by name (was distributed's
    "Cluster failed to start" traceback)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        assert main(["cluster", "--workers", "1", "--port", str(port), "--duration", "0.5"]) == 2
        assert f"`--port` to be a free port on 127.0.0.1. Got {port}" in capsys.readouterr().err
    assert main(["cluster", "--workers", "1", "--port", str(port), "--duration", "0.5"]) == 0
    assert f"scheduler   tcp://127.0.0.1:{port}\n" in capsys.readouterr().out


@pytest.mark.timeout(180)
@pytest.mark.filterwarnings("ignore")
def test_cluster_dashboard_on_a_port_of_ones_choosing(capsys):
    """An SSH tunnel names the dashboard's port (``ssh -L 8787:localhost:8787``): it was a new free
    one at every start, and ``connect("local", dashboard_address=...)`` or ``processes=False``
    a TypeError (given twice)."""
    import socket

    import bigseg

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        assert main(["cluster", "--workers", "1", "--dashboard-port", str(port), "--duration", "0.5"]) == 2
        err = capsys.readouterr().err
        assert f"`--dashboard-port` to be a free port on 127.0.0.1. Got {port}" in err and "--cluster" not in err
    assert main(["cluster", "--workers", "1", "--dashboard-port", str(port), "--duration", "0.5"]) == 0
    assert f"dashboard   http://127.0.0.1:{port}/status\n" in capsys.readouterr().out
    assert main(["cluster", "--port", str(port), "--dashboard-port", str(port), "--duration", "0.5"]) == 2
    assert "`--dashboard-port` to differ from `--port`" in capsys.readouterr().err
    with bigseg.connect("local", n_workers=1, dashboard_address=f"127.0.0.1:{port}", processes=False,
                        quiet=True) as client:
        assert client.dashboard_link == f"http://127.0.0.1:{port}/status"
        assert client.run_on_scheduler(os.getpid) == os.getpid()  # threads of this process
    with pytest.raises(InputError, match="`dashboard_address` with dashboard=False"):
        bigseg.connect("local", dashboard=False, dashboard_address=":0")


def test_cluster_port_of_a_stopped_cluster_is_free():
    """`bigseg cluster --port P` started again right after a cluster on P stopped was refused for a
    minute ("Address already in use; a scheduler already there ..."): its connections left P in
    TIME_WAIT, which the scheduler's own bind (SO_REUSEADDR) does not mind."""
    import socket

    from bigseg.cli.cmd_cluster import _free

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a scheduler's (tornado's) socket
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's side closes first: P in TIME_WAIT
        client.close()
    assert _free(port) == port


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore")
def test_cluster_other_machines_reach(capsys):
    """A workstation's cluster for other machines' scripts: it listened on 127.0.0.1 only, and
    ``connect("local", host=...)`` was a TypeError (host given twice)."""
    assert main(["cluster", "--host", "no-such-host.invalid", "--duration", "0.5"]) == 2
    assert "Expected `--host` to be an address of this machine" in capsys.readouterr().err
    for v6 in ("::1", "[::1]"):  # ::1 is this machine's: refused as IPv6, not as "not an address of this machine"
        assert main(["cluster", "--host", v6, "--dashboard-port", "8799", "--duration", "0.5"]) == 2
        err = capsys.readouterr().err
        assert "Expected `--host` to be an IPv4 address of this machine or its name" in err and repr(v6) in err, err
    assert main(["cluster", "--workers", "1", "--host", "0.0.0.0", "--duration", "0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scheduler   tcp://") and "0.0.0.0" not in out.splitlines()[0]


def test_info_on_sources_before_ingest(tmp_path, odd_volume, capsys, bigseg_cli):
    import h5py

    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f.create_dataset("exchange/data", data=odd_volume).attrs["element_size_um"] = [1.0, 0.5, 0.5]
        f.create_dataset("exchange/theta", data=np.arange(5.0))
    text = bigseg_cli("info", tmp_path / "scan.h5").stdout
    assert "(HDF5)" in text and "37 x 53 x 71" in text and "uint16" in text and "1 x 0.5 x 0.5 um" in text
    assert "* /exchange/data" in text and "/exchange/theta  5  float64" in text and "bigseg ingest" in text
    np.save(tmp_path / "v.npy", odd_volume)
    info = json.loads(bigseg_cli("info", tmp_path / "v.npy", "--json").stdout)
    assert info["format"] == "NumPy .npy" and info["shape"] == [37, 53, 71] and info["voxel_size"] is None
    np.save(tmp_path / "slice.npy", odd_volume[0])  # 2D: ingest refuses it, so info does not offer it
    flat = bigseg_cli("info", tmp_path / "slice.npy").stdout
    assert "bigseg ingest" not in flat and "2D, where ingest takes 3D (z, y, x) or 4D" in flat
    np.save(tmp_path / "field.npy", odd_volume.astype(np.complex64))  # ingest refuses it: info did offer it
    field = bigseg_cli("info", tmp_path / "field.npy").stdout
    assert "bigseg ingest" not in field and "complex64 values, where ingest takes numbers" in field
    np.save(tmp_path / "records.npy", np.zeros(odd_volume.shape, [("a", "<i4"), ("b", "<f4")]))  # was a TypeError
    records = bigseg_cli("info", tmp_path / "records.npy").stdout
    assert "bigseg ingest" not in records and "values, where ingest takes numbers" in records
    out = bigseg_cli("info", tmp_path / "scan.h5", "--dataset", "/nope", check=False)
    assert out.returncode == 2 and "/exchange/theta" in out.stderr  # the datasets present are listed
    odd_volume.astype("<u2").tofile(tmp_path / "scan.raw")  # raw: described with the layout ingest would take
    assert main(["info", str(tmp_path / "scan.raw"), "--shape", "37,53,71", "--dtype", "<u2", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["format"] == "raw binary" and raw["shape"] == [37, 53, 71] and raw["dtype"] == "uint16"
    assert main(["info", str(tmp_path / "scan.raw"), "--shape", "37,53,71", "--dtype", "<u2"]) == 0
    assert "DEST.ome.zarr --shape 37,53,71 --dtype '<u2'` converts it" in capsys.readouterr().out  # all ingest needs
    assert main(["info", str(tmp_path / "scan.raw")]) == 2
    assert "--shape Z,Y,X --dtype '<u2', --offset for a header, with ingest or info" in capsys.readouterr().err
    np.save(tmp_path / "v2.npy", odd_volume)
    bigseg_zarr = tmp_path / "v2.ome.zarr"
    assert main(["ingest", str(tmp_path / "v2.npy"), str(bigseg_zarr), "--no-progress"]) == 0
    assert main(["info", str(bigseg_zarr), "--dataset", "/a"]) == 2  # was ignored
    assert "`--dataset` only for an HDF5 or raw binary source" in capsys.readouterr().err


def test_an_output_that_would_replace_its_input_is_refused_before_any_work(tmp_path, capsys):
    import numpy as np

    from bigseg import Pipeline
    from bigseg.io import open_volume, save_labels, save_volume

    src = tmp_path / "s.ome.zarr"
    save_volume(np.random.default_rng(0).random((6, 7, 8), dtype=np.float32), src, progress=False)
    save_labels(np.zeros((6, 7, 8), np.uint8), src, name="truth", phases=["pore", "cbd", "active"], progress=False)
    for argv, option in ((["segment", str(src), "--method", "threshold", "--out", str(src), "--overwrite"], "`--out`"),
                         (["filter", str(src), str(tmp_path / "." / "s.ome.zarr"), "--median", "3", "--overwrite"],
                          "`dest`"),
                         (["ingest", str(src), str(src), "--overwrite"], "`dest`"),
                         (["export", str(src), str(src), "--overwrite"], "`dest`")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert option in err and "replace the input" in err
    inside = src / "0" / "foo.npy"  # a file dropped into the input store (was written there)
    assert main(["export", str(src), str(inside)]) == 2
    assert "`dest` to be outside the input" in capsys.readouterr().err and not inside.exists()
    assert open_volume(src).dtype == np.float32 and open_volume(src / "labels" / "truth").shape == (6, 7, 8)
    assert main(["segment", str(src / "labels" / "truth"), "--method", "threshold", "--name", "x"]) == 2
    assert "not a label image" in capsys.readouterr().err
    assert not (src / "labels" / "truth" / "labels").exists()
    out = tmp_path / "run"
    save_volume(np.ones((6, 7, 8), np.float32), out / "image.ome.zarr", progress=False)  # an earlier run's image
    with pytest.raises(InputError, match="`dest`.*write over"):
        Pipeline().run(str(out / "image.ome.zarr"), out)
    assert float(open_volume(out / "image.ome.zarr").min()) == 1.0


def test_an_output_that_is_its_input_by_another_name_is_refused(tmp_path, capsys, monkeypatch):
    """macOS and Windows file systems ignore case (APFS also Unicode normalisation), and one
    folder can be reached through two mounts: ``S.OME.ZARR`` is the input ``s.ome.zarr`` there,
    which resolving the names does not tell (was: the filtered scan replaced the raw one). A
    case-insensitive file system is simulated by its answer to "the same file?"."""
    import os

    from bigseg import Pipeline
    from bigseg.io import open_volume, save_volume

    samefile = os.path.samefile
    monkeypatch.setattr(os.path, "samefile", lambda a, b: os.fspath(a).casefold() == os.fspath(b).casefold()
                        or samefile(a, b))
    src = tmp_path / "s.ome.zarr"
    save_volume(np.random.default_rng(0).random((6, 7, 8), dtype=np.float32), src, progress=False)
    assert main(["filter", str(src), str(tmp_path / "S.OME.ZARR"), "--median", "3", "--overwrite"]) == 2
    assert "`dest` to be another place than the input" in capsys.readouterr().err
    assert main(["export", str(src), str(tmp_path / "S.ome.zarr" / "0" / "x.npy")]) == 2  # inside the input
    assert "`dest` to be outside the input" in capsys.readouterr().err
    save_volume(np.ones((6, 7, 8), np.float32), tmp_path / "run" / "image.ome.zarr", progress=False)  # an earlier run's
    run_src = tmp_path / "run" / "Image.ome.zarr"  # that image by another name (a second store on Linux)
    save_volume(np.ones((6, 7, 8), np.float32), run_src, progress=False)
    with pytest.raises(InputError, match="`dest`.*write over"):
        Pipeline().run(str(run_src), tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.ome.zarr"]
    assert float(open_volume(run_src).min()) == 1.0


@pytest.mark.parametrize("argv, says", [
    (["--voxel-size", "abc"], "`--voxel-size` to be one or three comma-separated numbers"),
    (["--chunks", "8,x,8"], "`--chunks` to be one or three comma-separated whole numbers"),
    (["--dtype", "foo"], "`--dtype` to be a NumPy dtype"),
    (["--levels", "5"], "`--levels` at most 4 for shape (9, 10, 11)"),
])
def test_bad_option_values_are_named_not_tracebacks(tmp_path, capsys, argv, says):
    src = tmp_path / "v.npy"
    np.save(src, np.zeros((9, 10, 11), np.uint16))
    assert main(["ingest", str(src), str(tmp_path / "v.ome.zarr"), *argv]) == 2
    assert says in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]  # nothing started


def test_options_that_cannot_work_are_named_before_any_work(tmp_path, capsys):
    from bigseg import synth
    from bigseg.io import save_labels, save_volume

    truth = synth.electrode((16, 20, 24), seed=1).compute()
    img = save_volume(synth.xct(truth, seed=1).compute(), tmp_path / "s.ome.zarr", progress=False)
    save_labels(truth, img, name="truth", progress=False)
    lab = str(tmp_path / "s.ome.zarr" / "labels" / "truth")
    cases = [
        (["compare", lab, lab, "--netcdf", str(tmp_path)], "`--netcdf` to name a file"),
        (["compare", lab, lab, "--netcdf", str(tmp_path / "a.txt")], "`--netcdf` to end in .nc"),
        (["bench", "--size", "16", "--workdir", str(tmp_path / "s.ome.zarr" / "zarr.json")], "`--workdir` to be a folder"),
        (["cluster", "--memory-limit", "lots"], "`--memory-limit` to be a size such as '4GiB'"),
        (["cluster", "--memory-limit", "50MiB"], "`--memory-limit` to be at least 1.00 GiB per worker"),
        (["measure", lab, "--workers", "2"], "`--workers` only with --cluster"),
        (["measure", lab, "--workers", "1", "--cluster", "tcp://127.0.0.1:8786"],  # was ignored
         "`--workers` only with a cluster bigseg starts (local, local-cuda, slurm)"),
        (["segment", img, "--method", "random-forest", "--labels", lab, "--sigmas", "a,b"], "`--sigmas`"),
        (["measure", lab, "--memory-limit", "4GiB"], "`--memory-limit` only with --cluster"),
        (["run", img, "--out", str(tmp_path / "r"), "--memory-limit", "4GiB", "--cluster", "tcp://127.0.0.1:8786"],
         "`--memory-limit` only with a cluster bigseg starts"),
        (["run", img, "--out", str(tmp_path / "r"), "--memory-limit", "4GiB", "--cluster", "slurm"],
         "`--memory-limit` only with a local cluster: a SLURM job's memory is `slurm.memory`"),
        (["segment", img, "--method", "threshold", "--cluster", "local", "--memory-limit", "300MiB"],
         "`--memory-limit` to be at least 1.00 GiB per worker"),
    ]
    from bigseg.runtime import gpu_count

    if gpu_count() == 0:  # no dask-cuda or no GPU: refused naming the option (was `cluster`)
        cases.append((["cluster", "--kind", "local-cuda", "--duration", "1"], "`--kind`='local-cuda' needs"))
    for args, message in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.zarr"]
    (tmp_path / "there.tif").write_bytes(b"")
    for args in (["export", img, str(tmp_path / "there.tif")], ["ingest", str(tmp_path / "there.tif"), img]):
        capsys.readouterr()
        assert main(args) == 2
        assert "`dest` to be a new location, or --overwrite" in capsys.readouterr().err  # the option, not overwrite=True


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    from bigseg import synth
    from bigseg.io import save_labels, save_volume

    truth = synth.electrode((16, 20, 24), seed=1).compute()
    save_labels(truth, save_volume(truth, tmp_path / "s.ome.zarr", progress=False), name="truth", progress=False)
    proc = subprocess.run(f"{BIGSEG} measure {tmp_path / 's.ome.zarr'}/labels/truth --no-progress | head -c 1",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("args, message", [
    (["segment", "x.ome.zarr", "--method", "random-forest", "--trees", "0"], "argument --trees: expected a positive whole"),
    (["measure", "x.ome.zarr", "--radial", "-2"], "argument --radial: expected a positive number, got '-2'"),
    (["segment", "x.ome.zarr", "--method", "threshold", "--fov-margin", "-1"], "argument --fov-margin: expected a number >= 0"),
])
def test_option_values_are_checked_as_the_options_they_are(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_model_file_is_named_by_its_option(tmp_path, capsys):
    from bigseg.io import save_volume

    img = save_volume(np.zeros((8, 8, 8), np.float32), tmp_path / "i.ome.zarr", progress=False)
    assert main(["segment", img, "--model", str(tmp_path / "nope.pt")]) == 2
    assert "`--model` to be 'default' or an existing checkpoint file" in capsys.readouterr().err


def test_version_is_the_installed_one(bigseg_cli):
    import importlib.metadata

    import bigseg

    assert bigseg.__version__ == importlib.metadata.version("bigseg")
    assert bigseg_cli("--version").stdout.strip() == f"bigseg {bigseg.__version__}"


@pytest.mark.slow
def test_output_without_unicode_in_the_terminal(tmp_path):
    """A terminal or batch log that cannot show µ, ² or ³ (C/Latin-1 locale, PYTHONIOENCODING=ascii)
    gets them spelt out instead of a UnicodeEncodeError (the demo failed so after all its work)."""
    import os

    from bigseg.io import save_labels, save_volume

    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    out = subprocess.run([BIGSEG, "bench", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "SIZE^3" in out.stdout
    lab = np.zeros((8, 10, 12), np.uint8)
    lab[:, :, 6:] = 2
    image = tmp_path / "s.ome.zarr"
    save_volume(lab.astype(np.float32), image, voxel_size=2, unit="um", progress=False)
    save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    out = subprocess.run([BIGSEG, "measure", str(image), "--no-progress"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "area [um^2]" in out.stdout and "per volume [mm^-1]" in out.stdout and "\\x" not in out.stdout


def test_unknown_option_said_by_the_command_with_the_one_meant(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", "scan.ome.zarr", "--model", "default", "--overlp", "0.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bigseg segment: error: unrecognized arguments: --overlp 0.5 (--overlp: did you mean --overlap?)" in err
    assert "see bigseg segment --help" in err and "usage: bigseg segment" in err
    with pytest.raises(SystemExit):
        main(["info", "a.ome.zarr", "b.ome.zarr"])
    err = capsys.readouterr().err
    assert "bigseg info: error: unrecognized arguments: b.ome.zarr; see bigseg info --help" in err


def test_a_mistyped_command_is_said_with_the_one_meant(capsys):
    """`bigseg segmnt` listed all 15 commands without picking out the one meant."""
    with pytest.raises(SystemExit) as exc:
        main(["segmnt", "scan.ome.zarr", "--model", "default"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bigseg: error: argument COMMAND: invalid choice: 'segmnt' (did you mean segment?); see bigseg --help" in err
    with pytest.raises(SystemExit):
        main(["hepl"])
    assert "invalid choice: 'hepl'; see bigseg --help" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    # was "one of the arguments --model --method is required": the option typed not named
    (["segment", "scan.ome.zarr", "--modle", "default"], "bigseg segment: error: unrecognized arguments: --modle "
                                                         "(--modle: did you mean --model?); see bigseg segment --help"),
    # was "the following arguments are required: --out"
    (["run", "scan_tiffs", "--otu", "results"], "bigseg run: error: unrecognized arguments: --otu (--otu: did you "
                                                "mean --out?)"),
    (["train", "a.ome.zarr", "b.npy", "--ouptut=m.pt"], "(--ouptut: did you mean --output?)"),
])
def test_a_mistyped_option_is_said_not_the_required_one_it_hides(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "required" not in err, err


def test_the_top_level_help_shows_a_first_scan_and_the_exit_codes(capsys):
    """`bigseg --help` listed the commands with no example of using them nor the exit codes a
    script tests (both only in the README)."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "bigseg ingest scan_tiffs/ scan.ome.zarr --voxel-size 50 --unit nm" in out
    assert "bigseg run scan_tiffs/ --out results/" in out
    assert "2 a bad argument or input" in out and "130 Ctrl-C" in out
    examples = out[out.index("a first scan"):]
    assert max(map(len, examples.splitlines())) <= 80  # a terminal's width (not wrapped by argparse)


def test_the_environments_cluster_is_where_run_and_watch_compute(tmp_path, monkeypatch):
    """config.py documents BIGSEG_CLUSTER=tcp://10.0.0.5:8786 (and README BIGSEG_CONFIG=path.yaml);
    was: without --config `bigseg run` and `watch` dropped the environment's cluster and computed
    in threads of this process, without a word. --cluster still comes first."""
    from bigseg.cli import build_parser
    from bigseg.cli._common import pipeline_config

    parser = build_parser()
    monkeypatch.delenv("BIGSEG_CONFIG", raising=False)
    monkeypatch.delenv("BIGSEG_CLUSTER", raising=False)
    assert pipeline_config(parser.parse_args(["run", "x.npy", "--out", str(tmp_path / "o")]))[1] is None  # threads
    monkeypatch.setenv("BIGSEG_CLUSTER", "tcp://10.0.0.5:8786")
    assert pipeline_config(parser.parse_args(["run", "x.npy", "--out", str(tmp_path / "o")]))[1] == "tcp://10.0.0.5:8786"
    assert pipeline_config(parser.parse_args(["watch", "in", "--out", str(tmp_path / "o")]))[1] == "tcp://10.0.0.5:8786"
    assert pipeline_config(parser.parse_args(["run", "x.npy", "--out", str(tmp_path / "o"),
                                              "--cluster", "threads"]))[1] is None
    monkeypatch.delenv("BIGSEG_CLUSTER")
    (tmp_path / "site.yaml").write_text("cluster: slurm\n")
    monkeypatch.setenv("BIGSEG_CONFIG", str(tmp_path / "site.yaml"))
    assert pipeline_config(parser.parse_args(["run", "x.npy", "--out", str(tmp_path / "o")]))[1] == "slurm"


def test_info_json_is_strict_json(tmp_path, capsys):
    """`info --json` is read by scripts (jq, other languages): an image's statistics that are NaN
    (all of it NaN) are null, not Python's invalid ``NaN``."""
    from bigseg import save_volume

    save_volume(np.full((8, 8, 8), np.nan, np.float32), tmp_path / "nan.ome.zarr", chunks=4)
    assert main(["info", str(tmp_path / "nan.ome.zarr"), "--json"]) == 0
    out = capsys.readouterr().out

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    info = json.loads(out, parse_constant=refuse)
    assert info["intensity"]["mean"] is None and info["shape"] == [8, 8, 8]


def test_train_takes_autocast_as_segment_and_bench_name_it():
    """One concept, one flag: train's reduced precision was only `--amp` (no choices listed),
    segment's and bench's `--autocast {auto,bf16,fp16,off}`."""
    from bigseg.cli import build_parser

    parser = build_parser()
    for flag in ("--amp", "--autocast"):
        args = parser.parse_args(["train", "img.ome.zarr", "lab.ome.zarr", "-o", "m.pt", flag, "off"])
        assert args.amp == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "img.ome.zarr", "lab.ome.zarr", "-o", "m.pt", "--autocast", "half"])


def test_an_abbreviated_option_is_argparse_s_to_take_not_said_as_mistyped(capsys):
    """An option's unambiguous prefix (``--mod`` for ``--model``) is argparse's to take: where the
    command line fails for another reason (here the source left out) that reason is said, not the
    abbreviation as an unrecognised option."""
    with pytest.raises(SystemExit) as exc:
        main(["segment", "--mod", "default"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: source" in err and "unrecognized" not in err, err


def test_a_command_with_two_letters_swapped_is_said_with_the_one_meant(capsys):
    """difflib's 0.6 likeness: a transposition (`segmnet`, 0.86 alike) or a letter left out of a
    short name (`segmt`) still finds the command meant."""
    for typed in ("segmnet", "segmt"):
        with pytest.raises(SystemExit):
            main([typed, "scan.ome.zarr"])
        assert f"invalid choice: '{typed}' (did you mean segment?)" in capsys.readouterr().err
