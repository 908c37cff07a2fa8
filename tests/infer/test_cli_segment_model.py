"""``bigseg segment --model default|PATH``: labels equal the API's, probabilities on request,
bad models refused before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

from bigseg import models, synth
from bigseg.cli import main
from bigseg.infer import segment
from bigseg.io import open_volume, save_volume


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    truth = synth.electrode((20, 40, 44), seed=11, chunks=(20, 40, 44))
    image = synth.xct(truth, seed=11, preset="nano-ct-absorption").compute()
    path = tmp_path_factory.mktemp("segm") / "scan.ome.zarr"
    save_volume(image, path, chunks=(7, 19, 23), progress=False)
    return truth.values, path


def test_segment_default_model_equals_api(scan, capsys):
    truth, path = scan
    assert main(["segment", str(path), "--model", "default", "--name", "net", "--probabilities"]) == 0
    assert "(model default" in capsys.readouterr().out
    lab = open_volume(path / "labels" / "net")
    assert lab.attrs["phases"] == ["pore", "cbd", "active"] and lab.dtype == np.uint8
    ref = segment(open_volume(path), "default")["labels"].values
    np.testing.assert_array_equal(lab.values, ref)
    prob = open_volume(path / "labels" / "net_probabilities")
    assert prob.shape == (3, *truth.shape)
    assert prob.dims == ("phase", "z", "y", "x") and list(prob.phase.values) == ["pore", "cbd", "active"]
    assert prob.attrs["probabilities_of"] == "net"  # as predict gives them: a phase is picked by name
    np.testing.assert_array_equal(prob.sel(phase="cbd").values, prob.values[1])
    np.testing.assert_allclose(np.asarray(prob.values, np.float32).sum(0), 1, atol=5e-3)
    assert open_volume(path / "labels" / "net_uncertainty").attrs["uncertainty_of"] == "net"
    unc = np.asarray(open_volume(path / "labels" / "net_uncertainty").values, np.float32)
    assert unc.shape == truth.shape and 0 <= unc.min() and unc.max() <= np.log(3) + 1e-2
    # better than chance on every phase of the exact truth
    for k in range(3):
        inter = np.count_nonzero((lab.values == k) & (truth == k))
        union = np.count_nonzero((lab.values == k) | (truth == k))
        assert inter / union > 0.2


def test_segment_killed_after_placing_its_labels_is_finished_by_the_same_command(scan, monkeypatch, capsys):
    """Killed after the labels were placed but before the probabilities and uncertainty said whose
    they are: the same command again was refused as "exists" (the siblings nobody's, the float16
    scratch left behind); now it takes them up from the scratch and finishes."""
    from bigseg.infer import _write

    truth, path = scan
    argv = ["segment", str(path), "--model", "default", "--name", "killed", "--probabilities", "--no-progress"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(_write, "add_bigseg_attrs", killed)
        assert main(argv) == 130
    assert (path / "labels" / "killed").is_dir()
    assert "probabilities_of" not in open_volume(path / "labels" / "killed_probabilities").attrs
    assert main(argv) == 0
    assert open_volume(path / "labels" / "killed_probabilities").attrs["probabilities_of"] == "killed"
    assert open_volume(path / "labels" / "killed_uncertainty").attrs["uncertainty_of"] == "killed"
    assert not [q.name for q in (path / "labels").iterdir() if q.name.startswith(".killed")]
    assert main(argv) == 2 and "which exists" in capsys.readouterr().err  # finished: refused again


def test_segment_checkpoint_path_and_out(scan, tmp_path):
    _, path = scan
    ck = tmp_path / "m.pt"
    models.save(models.load("default"), ck)
    out = tmp_path / "lab.ome.zarr"
    assert main(["segment", str(path), "--model", str(ck), "--out", str(out)]) == 0
    # (the default model's labels computed here: another test's labels/net may be on another xdist worker)
    np.testing.assert_array_equal(open_volume(out).values, segment(open_volume(path), "default")["labels"].values)


def test_segment_bad_model_refused_before_work(scan, tmp_path, capsys):
    _, path = scan
    assert main(["segment", str(path), "--model", str(tmp_path / "missing.pt"), "--name", "bad"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert not (path / "labels" / "bad").exists()
    assert main(["segment", str(path), "--model", "default", "--probabilities", "--out", str(tmp_path / "o.zarr")]) == 2
    assert "`--probabilities` without --out" in capsys.readouterr().err and not (tmp_path / "o.zarr").exists()
    with pytest.raises(SystemExit):  # --model and --method are exclusive
        main(["segment", str(path), "--model", "default", "--method", "threshold"])


def test_model_patch_is_capped_at_a_small_volume():
    from bigseg.infer import predict

    m = models.load("default")
    own = tuple(m.patch)
    small = tuple(p - 4 * (k + 1) for k, p in enumerate(own))  # every axis shorter than the patch
    shape = small if m.ndim == 3 else (3, *small)
    x = np.random.default_rng(3).random(shape).astype(np.float32)
    ds = predict(x, m, probabilities=True)
    ref = predict(x, m, patch=small, probabilities=True)
    np.testing.assert_array_equal(ds["probabilities"].values, ref["probabilities"].values)
    # an explicit larger patch is capped too: zero padding would skew the instance norms
    np.testing.assert_array_equal(predict(x, m, patch=own, probabilities=True)["probabilities"].values,
                                  ref["probabilities"].values)
    # a plain torch module keeps the patch it is given: MONAI-style zero padding
    import torch

    padded = predict(x, torch.nn.Sequential(m).eval(), patch=own, probabilities=True)
    assert not np.allclose(padded["probabilities"].values, ref["probabilities"].values)


@pytest.mark.slow
def test_segment_bf16_autocast_agrees_with_float32(scan):
    _, path = scan
    assert main(["segment", str(path), "--model", "default", "--name", "fp32", "--autocast", "off"]) == 0
    assert main(["segment", str(path), "--model", "default", "--name", "bf16", "--autocast", "bf16"]) == 0
    a = open_volume(path / "labels" / "fp32").values
    b = open_volume(path / "labels" / "bf16").values
    assert (a == b).mean() > 0.99  # bf16 rounding moves a few interface voxels only


def test_segment_draws_the_labels_beside_the_image_on_request(scan, tmp_path, capsys):
    """`bigseg segment` wrote labels only: a person checking them needed Python or `bigseg run`.
    `--plot` draws the central slices with the labels beside them, checked before any work
    (suffix, an existing file), and does not change what an interrupted run resumes from."""
    import matplotlib.image as mpimg

    _, path = scan
    fig = tmp_path / "seg.png"
    assert main(["segment", str(path), "--method", "threshold", "--name", "plotted", "--plot", str(fig),
                 "--no-progress"]) == 0
    assert f"figure {fig}" in capsys.readouterr().out
    img = mpimg.imread(fig)
    assert img.ndim == 3 and img.shape[0] > 200 and img[..., :3].std() > 0.05  # drawn, not blank
    for bad, said in ((tmp_path / "seg.txt", "to end in .png"), (fig, "which exists")):
        assert main(["segment", str(path), "--method", "threshold", "--name", "again", "--plot", str(bad),
                     "--no-progress"]) == 2
        assert said in capsys.readouterr().err and not (path / "labels" / "again").exists()
    from bigseg.cli import _GIVEN, build_parser
    from bigseg.cli._common import command_key

    parser = build_parser()
    keys = set()
    for extra in ([], ["--plot", str(fig)]):
        args = parser.parse_args(["segment", str(path), "--method", "threshold", *extra])
        vars(args).pop(_GIVEN)  # (as main does)
        keys.add(command_key(args, "segment"))
    assert len(keys) == 1  # a figure asked for or not: the same labels, resumed alike


def test_a_segment_resume_key_leaves_out_how_its_errors_name_the_options(tmp_path):
    """segment's ``api_aliases`` (random_forest's ``n_estimators`` said as --trees) is how its
    refusals name the options, not what the labels are made from: its resume key is the one it
    had before segment had any (a run interrupted then resumes as the same labels)."""
    from bigseg.cli import _GIVEN, build_parser
    from bigseg.cli._common import command_key

    args = build_parser().parse_args(["segment", str(tmp_path / "scan.ome.zarr"), "--method", "random-forest",
                                      "--labels", str(tmp_path / "l.npy"), "--trees", "10"])
    vars(args).pop(_GIVEN)  # (as main does)
    assert args.api_aliases == {"n_estimators": "trees"}
    with_aliases = command_key(args, "segment")
    del args.api_aliases
    assert command_key(args, "segment") == with_aliases


def test_how_a_segment_runs_is_no_part_of_its_resume_key(scan, monkeypatch):
    """The options typed (kept while parsing, to warn of one given twice) leave the arguments before
    the command runs: a run resumed with --cluster or --workers named (how it runs, not what it
    makes) has the resume key of the run it resumes."""
    from bigseg.cli import cmd_segment

    _, path = scan
    real, keys = cmd_segment.command_key, []
    monkeypatch.setattr(cmd_segment, "command_key", lambda *a, **k: keys.append(real(*a, **k)) or keys[-1])
    for how in ([], ["--cluster", "threads", "--overwrite"]):
        assert main(["segment", str(path), "--method", "threshold", "--name", "keyed", *how, "--no-progress"]) == 0
    assert len(keys) == 2 and keys[0] == keys[1] and "given" not in keys[0]
