from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from bigseg import models
from bigseg.cli import main
from bigseg.errors import InputError
from bigseg.train import make_pair


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_train")
    img, lab = make_pair((10, 40, 40), electrode={"seed": 9, "radius": (5, 1)}, preset="lab-micro-ct", physics={}, seed=9)
    raw = (img * 1000 + 200).astype(np.uint16)  # any dtype: training normalises it
    sparse = np.full_like(lab, 255)
    for z in (1, 4, 7, 9):
        sparse[z, 5:30, 5:35] = lab[z, 5:30, 5:35]
    np.save(d / "img.npy", raw)
    np.save(d / "lab.npy", sparse)
    return d


def test_cli_train_sparse_labels_writes_checkpoint_and_report(files, capsys):
    out = files / "m.pt"
    rc = main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(out), "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-size", "2", "--patch", "32", "--kernels", "4", "--growth", "1",
               "--threads", "1", "--report", str(files / "r.json"), "--no-progress"])
    assert rc == 0
    m = models.load(out)
    assert m.arch == "lrcsnet" and m.patch == (32, 32) and m.arch_kwargs == {"kernels": 4, "growth": 1.0}
    assert m.provenance["epochs"] == 2 and m.provenance["lr"] == 1e-4 and m.provenance["lr_decay"] == 0.3
    rep = json.loads((files / "r.json").read_text())
    assert rep["provenance"]["data"]["labelled_slices"] == 4
    out_text, err = capsys.readouterr()
    assert "wrote" in out_text and err == ""  # --no-progress: nothing on stderr, the epochs still logged
    assert "epoch 1: loss" in out_text and "epoch 2: loss" in out_text and "IoU pore=" in out_text
    # refuses to overwrite, then fine-tunes the written model
    assert main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(out)]) == 2
    capsys.readouterr()
    for extra, said in ((["--presets", "lab-micro-ct"], "`--presets` only with --synthetic"),  # were ignored
                        (["--data-workers", "2"], "`--data-workers` only with --synthetic"),
                        (["--init", str(out), "--kernels", "64"], "no `arch_kwargs` other than the `--init` model's")):
        assert main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(files / "x.pt"), *extra]) == 2
        assert said in capsys.readouterr().err, extra
    assert not (files / "x.pt").exists()
    from bigseg.train._train import parse_common  # the init model's own layer options (a list in the file) pass

    kw = dict(arch=None, epochs=1, lr=1e-4, lr_decay=0.3, batch_size=2, patch=None, patience=None, seed=0,
              device="cpu", amp=None, augment=True, max_minutes=None, steps_per_epoch=1)
    parse_common(init=str(out), arch_kwargs={"kernels": 4, "growth": 1, "kernel_size": 5}, **kw)  # 5: the default
    with pytest.raises(InputError, match="`arch_kwargs`"):
        parse_common(init=str(out), arch_kwargs={"kernel_size": 3}, **kw)
    assert main(["train", "--synthetic", "-o", str(files / "x.pt"), "--batches-per-volume", "0", "--epochs", "1"]) == 2
    assert "`--batches-per-volume` to be a positive integer. Got 0" in capsys.readouterr().err  # was taken as 6
    for threads in ("0", "-1"):  # 0 was ignored, -1 a traceback from torch
        with pytest.raises(SystemExit):
            main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(files / "x.pt"), "--threads", threads])
        assert f"argument --threads: expected a positive whole number, got '{threads}'" in capsys.readouterr().err
    assert not (files / "x.pt").exists()
    # a run cut by --max-minutes says so where it says what it wrote (it read as if every epoch had run)
    assert main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(files / "mm.pt"), "--epochs", "50",
                 "--steps-per-epoch", "20", "--batch-size", "2", "--max-minutes", "0.0001", "--patience", "0",
                 "--no-progress"]) == 0
    assert "epochs (of 50 asked: --max-minutes 0.0001 reached)" in capsys.readouterr().out
    out2 = files / "ft.pt"
    rc = main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(out2), "--init", str(out), "--epochs", "1",
               "--steps-per-epoch", "1", "--batch-size", "2", "--lr", "1e-12", "--threads", "1", "--no-progress"])
    assert rc == 0
    ft = models.load(out2)
    assert ft.provenance["init"] == m.checkpoint_key()
    torch.testing.assert_close(ft.net.enc1.weight, m.net.enc1.weight, atol=1e-7, rtol=0)


def test_cli_train_no_progress_logs_each_epoch_as_it_ends(files, capsys, monkeypatch):
    """A batch job stopped in its third epoch (wall time) has the first two in its log: they were
    printed only once training had finished."""
    import bigseg.train._loop as loop

    real, calls = loop.dice_ce_loss, []

    def killed_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt  # (as a job's end would stop it)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "dice_ce_loss", killed_in_epoch_3)
    loop._log.isEnabledFor(logging.INFO)  # as a run without the CLI's printer leaves the logger's cache
    assert main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(files / "killed.pt"), "--epochs",
                 "5", "--steps-per-epoch", "1", "--batch-size", "2", "--patch", "32", "--kernels", "4", "--growth", "1",
                 "--threads", "1", "--no-progress"]) == 130
    out_text, _ = capsys.readouterr()
    assert "epoch 1: loss" in out_text and "epoch 2: loss" in out_text and "IoU pore=" in out_text
    assert not (files / "killed.pt").exists()
    assert not logging.getLogger("bigseg.train").handlers  # the CLI's printer is gone with its run


def test_cli_train_annotations_counted_from_1(files, capsys):
    sparse = np.load(files / "lab.npy")
    np.save(files / "napari.npy", np.where(sparse == 255, 0, sparse + 1).astype(np.uint8))
    args = ["train", str(files / "img.npy"), str(files / "napari.npy"), "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "2", "--patch", "32", "--kernels", "4", "--growth", "1", "--threads", "1", "--no-progress"]
    assert main(args + ["-o", str(files / "n.pt")]) == 2
    assert "--unlabelled 0" in capsys.readouterr().err
    assert main(args + ["-o", str(files / "n.pt"), "--unlabelled", "0"]) == 0
    assert models.load(files / "n.pt").provenance["data"]["labelled_voxels"] == int((sparse != 255).sum())
    # inside a field of view only: the annotations beyond the circle count for nothing
    assert main(args + ["-o", str(files / "f.pt"), "--unlabelled", "0", "--fov", "cylinder"]) == 0
    yy, xx = np.ogrid[: sparse.shape[1], : sparse.shape[2]]
    inside = (yy - (sparse.shape[1] - 1) / 2) ** 2 + (xx - (sparse.shape[2] - 1) / 2) ** 2 <= (min(sparse.shape[1:]) / 2) ** 2
    assert (sparse[:, ~inside] != 255).any()
    data = models.load(files / "f.pt").provenance["data"]
    assert data["labelled_voxels"] == int((sparse[:, inside] != 255).sum()) and data["fov"]["spec"] == "cylinder"


def test_cli_train_synthetic_and_errors(files, capsys):
    out = files / "syn.pt"
    rc = main(["train", "--synthetic", "-o", str(out), "--presets", "lab-micro-ct", "--shape", "4,40,40", "--patch", "32",
               "--kernels", "4", "--growth", "1", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
               "--threads", "1", "--half", "--no-progress", "--radius-range", "6,9"])
    assert rc == 0
    m = models.load(out)
    assert m.provenance["data"]["kind"] == "synthetic"
    assert m.provenance["data"]["radius_range"] == [6.0, 9.0]
    assert "lab-micro-ct" in m.provenance["scores"]["validation_iou_by_preset"]
    capsys.readouterr()
    assert main(["train", "-o", str(files / "x.pt")]) == 2
    assert "image" in capsys.readouterr().err
    assert main(["train", str(files / "img.npy"), "-o", str(files / "x.pt"), "--synthetic"]) == 2
    assert main(["train", "--synthetic", "-o", str(files / "x.pt"), "--presets", "nope"]) == 2
    for bad in ("small,big", "9,6", "0.5,4"):
        capsys.readouterr()
        assert main(["train", "--synthetic", "-o", str(files / "x.pt"), "--radius-range", bad]) == 2
        assert "radius" in capsys.readouterr().err
    assert not (files / "x.pt").exists()
    # one number is a cube; output files checked before any training
    rc = main(["train", "--synthetic", "-o", str(files / "cube.pt"), "--presets", "lab-micro-ct", "--shape", "32",
               "--patch", "32", "--kernels", "4", "--growth", "1", "--epochs", "1", "--steps-per-epoch", "1",
               "--batch-size", "1", "--threads", "1", "--no-progress"])
    assert rc == 0 and models.load(files / "cube.pt").provenance["data"]["kind"] == "synthetic"
    (files / "folder").mkdir()
    for args, option in ((["-o", str(files / "folder")], "--output"),
                         (["-o", str(files / "y.pt"), "--report", str(files / "folder")], "--report")):
        capsys.readouterr()
        assert main(["train", "--synthetic", *args, "--epochs", "1"]) == 2
        assert f"`{option}` to name a file" in capsys.readouterr().err
    assert not (files / "y.pt").exists()


def test_cli_train_takes_the_annotations_an_image_holds(files, tmp_path, capsys):
    """`bigseg train scan.ome.zarr scan.ome.zarr`: the labels are the image's label image (its only
    one), not its grey values read again; several are refused, naming them."""
    import bigseg

    img = bigseg.save_volume(np.load(files / "img.npy"), tmp_path / "s.ome.zarr", progress=False)
    bigseg.save_labels(np.load(files / "lab.npy"), img, name="annotations", phases=["pore", "cbd", "active"],
                       progress=False)
    args = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--patch", "32", "--kernels", "4",
            "--growth", "1", "--threads", "1", "--no-progress"]
    assert main(["train", img, img, "-o", str(tmp_path / "m.pt"), *args]) == 0
    assert f"training labels {img}/labels/annotations" in capsys.readouterr().out
    assert models.load(tmp_path / "m.pt").provenance["data"]["labelled_slices"] == 4
    bigseg.save_labels(np.load(files / "lab.npy"), img, name="other", phases=["pore", "cbd", "active"], progress=False)
    assert main(["train", img, img, "-o", str(tmp_path / "n.pt"), *args]) == 2
    assert "holds 2 (annotations, other)" in capsys.readouterr().err


def test_cli_train_draws_its_curves(files, tmp_path, capsys, monkeypatch):
    from bigseg.train import _report

    png = tmp_path / "curves.png"
    titles = []
    draw = _report.plot_history
    monkeypatch.setattr(_report, "plot_history", lambda *a, **kw: (titles.append(kw["title"]), draw(*a, **kw)))
    assert main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(tmp_path / "m.pt"), "--epochs", "2",
                 "--steps-per-epoch", "1", "--batch-size", "2", "--patch", "32", "--kernels", "4", "--growth", "1",
                 "--threads", "1", "--no-progress", "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and f"training curves: {png}" in capsys.readouterr().out
    assert titles[0].startswith("img.npy with lab.npy: ")  # the figure names what it was trained on
    assert main(["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(tmp_path / "n.pt"),
                 "--plot", str(tmp_path / "curves.txt")]) == 2  # refused before any training
    assert "`--plot`" in capsys.readouterr().err and not (tmp_path / "n.pt").exists()


@pytest.mark.parametrize("extra", [["--val-fraction", "0.3"], ["--axis", "1"], ["--unlabelled", "0"],
                                   ["--fov-margin", "2"]])
def test_cli_train_refuses_options_of_labels_with_synthetic(tmp_path, capsys, extra):
    """These options of training on labels were silently ignored with --synthetic."""
    assert main(["train", "--synthetic", "-o", str(tmp_path / "m.pt"), "--epochs", "1", *extra]) == 2
    assert f"Expected `{extra[0]}` only when training on IMAGE and LABELS, not with --synthetic" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_cli_train_resume_goes_on_with_a_stopped_run(files, tmp_path, capsys):
    args = ["train", str(files / "img.npy"), str(files / "lab.npy"), "--steps-per-epoch", "2", "--batch-size", "2",
            "--patch", "32", "--kernels", "4", "--growth", "1", "--threads", "1", "--no-progress", "--patience", "0"]
    assert main([*args, "-o", str(tmp_path / "whole.pt"), "--epochs", "3", "--checkpoint-dir", str(tmp_path / "w")]) == 0
    ck = str(tmp_path / "ck")
    assert main([*args, "-o", str(tmp_path / "part.pt"), "--epochs", "1", "--checkpoint-dir", ck]) == 0
    capsys.readouterr()
    # the same command again with --resume: the stopped run's own -o is replaced (was refused without --overwrite)
    assert main([*args, "-o", str(tmp_path / "part.pt"), "--epochs", "3", "--checkpoint-dir", ck, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: loss" in out and "epoch 3: loss" in out and "3 epochs, resumed after epoch 1 (" in out  # the whole run's
    whole, resumed = models.load(tmp_path / "whole.pt"), models.load(tmp_path / "part.pt")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert main([*args, "-o", str(tmp_path / "x.pt"), "--epochs", "3", "--resume"]) == 2
    assert "Expected `--checkpoint-dir` with `--resume`" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "x.pt"), "--epochs", "4", "--lr", "0.01", "--checkpoint-dir", ck,
                 "--resume"]) == 2
    assert "Got --lr 0.01 where it had 0.0001" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_cli_train_phases_names_labels_in_another_order(files, tmp_path, capsys):
    """A TIFF/.npy stack states no phase names: --phases says its order, and a fine-tune re-indexes
    labels of the init's phases in another order to its own (the same model as labels in its order);
    the hint for values past the phases names the option (was `phases`, which the command lacked)."""
    init = models.create("lrcsnet", phases=["pore", "cbd", "active"], patch=(32, 32), kernels=4, growth=1)
    models.save(init, tmp_path / "init.pt")
    sparse = np.load(files / "lab.npy")
    perm = np.array([1, 2, 0], np.uint8)  # value 0 active, 1 pore, 2 cbd
    np.save(tmp_path / "other.npy", np.where(sparse == 255, 255, perm[np.minimum(sparse, 2)]).astype(np.uint8))
    args = [str(files / "img.npy"), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
            "--init", str(tmp_path / "init.pt"), "--threads", "1", "--no-progress"]
    assert main(["train", *args[:1], str(files / "lab.npy"), *args[1:], "-o", str(tmp_path / "a.pt")]) == 0
    assert main(["train", *args[:1], str(tmp_path / "other.npy"), *args[1:], "-o", str(tmp_path / "b.pt"),
                 "--phases", "active,pore,cbd"]) == 0
    a, b = models.load(tmp_path / "a.pt"), models.load(tmp_path / "b.pt")
    assert b.phases == ["pore", "cbd", "active"]
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    four = sparse.copy()
    four[1, 0, 0] = 3
    np.save(tmp_path / "four.npy", four)
    assert main(["train", str(files / "img.npy"), str(tmp_path / "four.npy"), "-o", str(tmp_path / "c.pt"),
                 "--epochs", "1", "--no-progress"]) == 2
    assert "pass `--phases` with a name for each of the 4 values" in capsys.readouterr().err


def test_cli_train_stopped_says_how_to_go_on(files, tmp_path, capsys, monkeypatch):
    """Ctrl-C or SIGTERM in a later epoch: the line says where the finished epochs are and that it
    goes on with --resume (SIGTERM said "the same command resumes": it starts over, replacing them)."""
    import bigseg.train._loop as loop

    real, calls = loop.dice_ce_loss, []

    def stopped_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise stop
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "dice_ce_loss", stopped_in_epoch_3)
    args = ["train", str(files / "img.npy"), str(files / "lab.npy"), "-o", str(tmp_path / "m.pt"), "--epochs", "5",
            "--steps-per-epoch", "1", "--batch-size", "2", "--patch", "32", "--kernels", "4", "--growth", "1",
            "--threads", "1", "--no-progress"]
    stop = KeyboardInterrupt()
    assert main([*args, "--checkpoint-dir", str(tmp_path / "ck")]) == 130
    err = capsys.readouterr().err
    assert "interrupted; the epochs it finished are kept in" in err and "resume.pt" in err and "--resume" in err
    calls.clear()
    stop = SystemExit(143)  # (as terminate_as_exit raises it on SIGTERM)
    with pytest.raises(SystemExit):
        main([*args, "--checkpoint-dir", str(tmp_path / "ck2")])
    err = capsys.readouterr().err
    assert "terminated (SIGTERM); the epochs it finished are kept in" in err and "the same command resumes" not in err
    calls.clear()
    stop = KeyboardInterrupt()
    assert main(args) == 130
    assert "nothing of the run is kept (give --checkpoint-dir" in capsys.readouterr().err


def test_cli_train_says_when_nothing_is_held_back_for_validation(files, tmp_path, capsys):
    """Labels in one row of one slice: the split held nothing back and the run went on unvalidated
    (scores null, early stopping on the training loss) without a word."""
    sparse = np.load(files / "lab.npy")
    one = np.full_like(sparse, 255)
    one[4, 10, 5:35] = sparse[4, 10, 5:35]
    np.save(tmp_path / "row.npy", one)
    assert main(["train", str(files / "img.npy"), str(tmp_path / "row.npy"), "-o", str(tmp_path / "m.pt"), "--epochs",
                 "1", "--steps-per-epoch", "1", "--batch-size", "2", "--patch", "32", "--kernels", "4", "--growth",
                 "1", "--threads", "1", "--no-progress"]) == 0
    assert "No labelled voxel could be held back for validation (`--val-fraction`" in capsys.readouterr().err
