"""``bigseg segment --method ...`` writes a label image with phase names."""

from __future__ import annotations

import numpy as np
import pytest

from bigseg.cli import main
from bigseg.io import open_volume, save_labels, save_volume

from ._phantom import iou, phantom


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    truth, grey = phantom((32, 36, 40), seed=2)
    path = tmp_path_factory.mktemp("seg") / "img.ome.zarr"
    save_volume(grey, path, chunks=(11, 17, 20), progress=False)
    return truth, path


@pytest.mark.parametrize("method", ["threshold", "kmeans", "watershed"])
def test_segment_cli_methods(image, method, capsys):
    truth, path = image
    assert main(["segment", str(path), "--method", method, "--name", method]) == 0
    assert "volume fractions\n  pore" in capsys.readouterr().out
    lab = open_volume(path / "labels" / method)
    assert lab.attrs["phases"] == ["pore", "cbd", "active"]
    assert iou(truth, lab.values, 2) > 0.5
    if method == "threshold":  # again: refused before the passes over the data (no bars), naming --name
        assert main(["segment", str(path), "--method", method, "--name", method]) == 2
        err = capsys.readouterr().err
        assert "`--name` to be a new location, or --overwrite" in err and "histogram" not in err


def test_segment_stopped_while_drawing_its_plot_says_its_output_is_complete(image, tmp_path, monkeypatch, capsys):
    """Stopped (Ctrl-C, a kill) after its labels were written, while drawing --plot: the same
    command again was refused as "exists", as if only --overwrite (segmenting anew) would do. It
    says the labels are complete and how to draw the figure alone."""
    import re

    import bigseg.report

    truth, path = image
    fig = tmp_path / "seg.png"
    argv = ["segment", str(path), "--method", "threshold", "--name", "plotted", "--plot", str(fig)]

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(bigseg.report, "orthoslices", stopped)
        assert main(argv) == 130
    assert open_volume(path / "labels" / "plotted").attrs["phases"] and not fig.exists()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "which exists. It is complete" in err and "only the figure is missing" in err
    exec(re.search(r'python -c "(.*)"', err).group(1))  # as said: the figure, from the labels there
    assert fig.stat().st_size > 0
    assert main(["segment", str(path), "--method", "threshold", "--name", "plotted"]) == 2  # no --plot: as before
    assert "complete" not in capsys.readouterr().err


def test_segment_with_plot_calls_only_a_label_image_complete(image, tmp_path, capsys):
    """With --plot, an existing output said to be complete (only its figure missing) is a label
    image; something else there (an image written under labels/, no label image) is refused as
    before, without that word."""
    _, path = image
    save_volume(open_volume(path), path / "labels" / "grey", progress=False)
    argv = ["segment", str(path), "--method", "threshold", "--name", "grey", "--plot", str(tmp_path / "g.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "which exists" in err and "complete" not in err and "only the figure" not in err


def test_segment_cli_random_forest_and_out(image, tmp_path, capsys):
    truth, path = image
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[10, ::2, ::2] = truth[10, ::2, ::2]
    sparse[25, ::2, ::2] = truth[25, ::2, ::2]
    save_labels(sparse, path, name="sparse", phases=["pore", "cbd", "active"], progress=False)
    out = tmp_path / "rf.ome.zarr"
    assert main(["segment", str(path), "--method", "random-forest", "--labels", str(path / "labels" / "sparse"),
                 "--trees", "20", "--sigmas", "0.7,1.6", "--out", str(out)]) == 0
    lab = open_volume(out)
    assert lab.dtype == np.uint8 and iou(truth, lab.values, 1) > 0.6
    assert main(["segment", str(path), "--method", "random-forest"]) == 2
    assert "--labels" in capsys.readouterr().err
    # the same annotations exported by napari/ilastik (0 = not annotated, classes 1, 2, 3)
    exported = np.where(sparse == 255, 0, sparse + 1).astype(np.uint8)
    save_labels(exported, path, name="exported", phases=["none", "pore", "cbd", "active"], progress=False)
    out2 = tmp_path / "rf2.ome.zarr"
    assert main(["segment", str(path), "--method", "random-forest", "--labels", str(path / "labels" / "exported"),
                 "--unlabelled", "0", "--phases", "pore,cbd,active", "--trees", "20", "--sigmas", "0.7,1.6",
                 "--out", str(out2)]) == 0
    np.testing.assert_array_equal(open_volume(out2).values, lab.values)
    # the image holds several label images: which trains must be named, not guessed
    capsys.readouterr()
    assert main(["segment", str(path), "--method", "random-forest", "--labels", str(path), "--out",
                 str(tmp_path / "rf3.ome.zarr")]) == 2
    assert "`--labels` to name one label image" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--model", "default", "--classes", "4"], "`--classes` only with --method threshold or --method kmeans or"),
    (["--model", "default", "--classes", "3"], "`--classes` only with"),  # given as its default value: still given
    (["--method", "threshold", "--seed", "0"], "`--seed` only with --method kmeans or --method random-forest"),
    (["--method", "threshold", "--tta"], "`--tta` only with --model. Got --tta with --method threshold"),
    (["--method", "kmeans", "--probabilities"], "`--probabilities` only with --model (a model's softmax per phase). "
                                                "Got --probabilities with --method kmeans"),
    (["--method", "kmeans", "--window", "generous"], "`--window` only with --method watershed"),
    (["--method", "threshold", "--trees", "5"], "`--trees` only with --method random-forest"),
    (["--method", "threshold", "--fov-margin", "3"], "`--fov-margin` only with --fov"),
])
def test_options_the_chosen_segmentation_would_not_use_are_refused(image, args, message, capsys):
    _, path = image
    assert main(["segment", str(path), *args, "--name", "unused"]) == 2
    assert message in capsys.readouterr().err
    assert not (path / "labels" / "unused").exists()


def test_phases_rename_a_models_phases(image, tmp_path):
    _, path = image
    out = tmp_path / "named.ome.zarr"
    assert main(["segment", str(path), "--model", "default", "--phases", "void,binder,nmc", "--out", str(out),
                 "--no-progress"]) == 0
    assert open_volume(out).attrs["phases"] == ["void", "binder", "nmc"]


def test_segment_cli_inside_a_field_of_view(tmp_path, capsys):
    truth, grey = phantom((16, 36, 40), seed=4)
    yy, xx = np.ogrid[:36, :40]
    inside = (yy - 17.5) ** 2 + (xx - 19.5) ** 2 <= 17 ** 2
    path = tmp_path / "rec.ome.zarr"
    save_volume(np.where(inside, grey, 0).astype(np.float32), path, chunks=(8, 17, 20), progress=False)
    assert main(["segment", str(path), "--method", "threshold", "--fov", "auto", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"field of view auto: {100 * inside.mean():.1f} % of the cross-section" in out
    lab = open_volume(path / "labels" / "segmentation").values
    assert (lab[:, ~inside] == 255).all() and iou(truth[:, inside], lab[:, inside], 2) > 0.7
    assert main(["segment", str(path), "--model", "default", "--fov", "cylinder", "--fov-margin", "2",
                 "--name", "model", "--no-progress"]) == 0
    lab = open_volume(path / "labels" / "model").values
    assert (lab[:, ~inside] == 255).all() and (lab[:, 17, 19] < 3).all()
    assert main(["segment", str(path), "--method", "threshold", "--fov", "sphere", "--name", "x"]) == 2
    assert "`--fov` to be 'auto'" in capsys.readouterr().err
    assert not (path / "labels" / "x").exists()


def test_plane_picks_the_planes_a_2d_model_sees(image, tmp_path, capsys):
    import torch

    from bigseg import models
    from bigseg.infer import segment

    _, path = image
    torch.manual_seed(1)
    m = models.create("lrcsnet", patch=(16, 16), kernels=4)
    last = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight *= 200  # an untrained net's logits barely move: make the planes tell apart
    ckpt = models.save(m, tmp_path / "flat.pt")
    assert main(["segment", str(path), "--model", ckpt, "--plane", "y", "--probabilities", "--name", "y",
                 "--no-progress"]) == 0
    got = open_volume(path / "labels" / "y_probabilities").values
    kw = dict(probabilities=True)
    want = segment(open_volume(path), models.load(ckpt), plane="y", **kw)["probabilities"].values
    np.testing.assert_allclose(got, want, atol=2e-3)  # stored as float16
    other = segment(open_volume(path), models.load(ckpt), **kw)["probabilities"].values  # the z planes
    assert np.abs(got - other).max() > 0.05
    capsys.readouterr()
    assert main(["segment", str(path), "--model", "default", "--plane", "x", "--name", "unused"]) == 2
    assert "`--plane` None with a 3D model" in capsys.readouterr().err
    assert not (path / "labels" / "unused").exists()


def test_segment_cli_names_too_many_trees_by_its_option(image, tmp_path, capsys):
    """random_forest's cap on n_estimators was said as "Expected `n_estimators` ..." on the
    command line, an argument `bigseg segment` has not: said as --trees, and the resume key of a
    command is not changed by how its errors name its options."""
    from bigseg.baselines._forest import MAX_ESTIMATORS

    truth, path = image
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[10, ::2, ::2] = truth[10, ::2, ::2]
    np.save(tmp_path / "sparse.npy", sparse)
    assert main(["segment", str(path), "--method", "random-forest", "--labels", str(tmp_path / "sparse.npy"),
                 "--trees", str(MAX_ESTIMATORS + 1), "--out", str(tmp_path / "rf.ome.zarr"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"Expected `--trees` to be at most {MAX_ESTIMATORS:,}. Got {MAX_ESTIMATORS + 1}" in err, err
    assert not (tmp_path / "rf.ome.zarr").exists()


def test_segment_of_a_bioformats2raw_store_checks_the_labels_of_its_image(image, tmp_path, capsys):
    """A bioformats2raw store keeps its image at 0/: the labels go to 0/labels/NAME, where the
    command's check of an existing output (and its lock) now look (they looked at STORE/labels)."""
    import zarr

    _, path = image
    root = zarr.open_group(str(tmp_path / "b2r.zarr"), mode="w")
    root.attrs["bioformats2raw.layout"] = 3
    save_volume(open_volume(path), tmp_path / "b2r.zarr" / "0", progress=False)
    argv = ["segment", str(tmp_path / "b2r.zarr"), "--method", "threshold", "--no-progress"]
    assert main(argv) == 0
    assert (tmp_path / "b2r.zarr" / "0" / "labels" / "segmentation").is_dir()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no label image 'segmentation' yet" in err and str(tmp_path / "b2r.zarr" / "0" / "labels") in err
