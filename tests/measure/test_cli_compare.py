"""`bigseg compare`: agreement of several label images of one image, against NumPy counts."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from bigseg.cli import main
from bigseg.io import save_labels, save_volume

from ._measure_ref import make_labels


def test_compare_label_images_with_and_without_truth(tmp_path, capsys):
    truth = make_labels((20, 22, 18), seed=3)
    rng = np.random.default_rng(4)
    segs = {"user_a": truth.copy(), "user_b": np.roll(truth, 1, 0), "otsu": truth.copy()}
    segs["user_a"][rng.random(truth.shape) < 0.05] = 1
    segs["otsu"][truth == 1] = 0  # the threshold misses the CBD
    image = tmp_path / "scan.ome.zarr"
    save_volume(truth.astype(np.float32), image, chunks=(7, 9, 18), progress=False)
    for name, lab in {**segs, "truth": truth}.items():
        save_labels(lab, image, name=name, phases=["pore", "cbd", "active"], chunks=(9, 7, 10), progress=False)
    csv, png = tmp_path / "c.csv", tmp_path / "c.png"
    assert main(["compare", "user_a", "user_b", "otsu", "--image", str(image), "--truth", str(image / "labels" / "truth"),
                 "--csv", str(csv), "--plot", str(png), "--no-progress"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(csv, index_col="segmentation")
    n = truth.size
    for name, lab in segs.items():
        np.testing.assert_allclose(table.loc[name, ["fraction_pore", "fraction_cbd", "fraction_active"]],
                                   np.bincount(lab.ravel(), minlength=3) / n)
        inter = ((lab == 1) & (truth == 1)).sum()
        np.testing.assert_allclose(table.loc[name, "iou_cbd"], inter / ((lab == 1) | (truth == 1)).sum())
    assert table.loc["otsu", "iou_cbd"] == 0.0
    names = list(segs)
    diffs = [100 * (segs[a] != segs[b]).mean() for a, b in itertools.combinations(names, 2)]
    assert f"mean over the 3 pair(s): {np.mean(diffs):.2f} %" in out
    fr = np.array([np.bincount(segs[k].ravel(), minlength=3) / n for k in names])
    std_row = [line for line in out.splitlines() if line.startswith("std (n - 1)")][0]
    np.testing.assert_allclose([float(v) for v in std_row.split()[-3:]], fr.std(axis=0, ddof=1), atol=6e-5)
    assert png.read_bytes()[:4] == b"\x89PNG"
    # label images given by path; the same name in two images is told apart by the image
    other = tmp_path / "other.ome.zarr"
    save_volume(truth.astype(np.float32), other, progress=False)
    save_labels(segs["otsu"], other, name="user_a", phases=["pore", "cbd", "active"], progress=False)
    assert main(["compare", str(image / "labels" / "user_a"), str(other / "labels" / "user_a"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    # named by what differs (the image), each name's label image said once
    assert "\n  scan.ome.zarr   " in out and f"{image / 'labels' / 'user_a'}\n" in out
    assert "\nother.ome.zarr " in out and "\nscan.ome.zarr " in out


def test_compare_refuses_one_label_image_and_other_shapes(tmp_path, capsys):
    lab = make_labels((10, 12, 8), seed=1)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    save_labels(lab, image, name="a", phases=["pore", "cbd", "active"], progress=False)
    small = tmp_path / "small.ome.zarr"
    save_volume(lab[:5].astype(np.float32), small, progress=False)
    save_labels(lab[:5], small, name="b", phases=["pore", "cbd", "active"], progress=False)
    assert main(["compare", "a", "--image", str(image)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["compare", "a", str(image / "labels" / "a"), "--image", str(image)]) == 2  # was a perfect "pair"
    assert "each label image once in `labels`" in capsys.readouterr().err
    assert main(["compare", str(image / "labels" / "a"), str(small / "labels" / "b")]) == 2
    assert f"Expected {str(small / 'labels' / 'b')!r} to have the shape of" in capsys.readouterr().err
    # label images that name their phases otherwise: value 1 is not the same phase in both
    save_labels((lab > 0).astype(np.uint8), image, name="two", phases=["pore", "solid"], progress=False)
    assert main(["compare", "a", "two", "--image", str(image), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "['pore', 'cbd', 'active'] in" in err and "['pore', 'solid'] in" in err and "--phases" in err
    assert main(["compare", "two", "a", "--image", str(image), "--no-progress"]) == 2  # in either order
    assert main(["compare", str(image), "a", "--image", str(image), "--no-progress"]) == 2
    assert "or NAME with --image IMAGE" in capsys.readouterr().err


def test_segmentations_are_named_apart_by_as_many_folders_as_it_takes(tmp_path):
    from pathlib import Path

    from bigseg.cli.cmd_compare import _names

    runs = [tmp_path / run / "image.ome.zarr" / "labels" / "segmentation" for run in ("default", "threshold")]
    assert _names(runs) == ["default", "threshold"]  # the folders they share left out
    assert _names([runs[0], tmp_path / "image.ome.zarr" / "labels" / "manual"]) == ["segmentation", "manual"]
    assert _names([Path("a.ome.zarr/labels/x"), Path("b.ome.zarr/labels/x")]) == ["a.ome.zarr", "b.ome.zarr"]
    deep = [tmp_path / r / "image.ome.zarr" / "labels" / n for r, n in (("r1", "seg"), ("r2", "seg"), ("r1", "truth"))]
    assert _names(deep) == ["r1/seg", "r2/seg", "r1/truth"]
    assert _names([runs[0], runs[0]]) == [str(runs[0])] * 2


def test_compare_says_which_pairs_its_mean_leaves_out(tmp_path, capsys):
    """Two label images of disjoint halves (255 elsewhere) share no labelled voxel: the mean is
    over the other pairs, and the printout says so (it said 'mean over the 3 pair(s): nan %')."""
    lab = make_labels((12, 10, 16), seed=5)
    left, right = lab.copy(), lab.copy()
    left[..., 8:] = 255
    right[..., :8] = 255
    paths = []
    for name, a in {"left": left, "right": right, "whole": lab}.items():
        np.save(tmp_path / f"{name}.npy", a)
        paths.append(str(tmp_path / f"{name}.npy"))
    assert main(["compare", *paths, "--no-progress"]) == 0
    out = capsys.readouterr().out
    want = 100 * np.mean([(left[..., :8] != lab[..., :8]).mean(), (right[..., 8:] != lab[..., 8:]).mean()])
    assert f"mean over the 2 pair(s) (1 pair(s) without a labelled voxel in common left out): {want:.2f} %" in out


def test_compare_says_how_few_voxels_a_sparse_truth_scores(tmp_path, capsys):
    """A reference of sparse annotations scores only its labelled voxels: `compare` says how many,
    as `measure` does, and `agreement` keeps the truth's `support` by phase (a forest read 0.99
    IoU on its own 200 training voxels as if over the whole volume)."""
    from bigseg import measure

    lab = make_labels((12, 20, 20), seed=4)
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    for name, seg in {"a": lab, "b": np.roll(lab, 1, 1)}.items():
        save_labels(seg, image, name=name, phases=["pore", "cbd", "active"], progress=False)
    sparse = np.full_like(lab, 255)
    sparse[3, :10] = lab[3, :10]  # 200 of 4800 voxels
    np.save(tmp_path / "sparse.npy", sparse)
    assert main(["compare", "a", "b", "--image", str(image), "--truth", str(tmp_path / "sparse.npy"),
                 "--no-progress"]) == 0
    assert "(IoU: scores over the truth's 200 labelled voxels, 4.17 % of the volume" in capsys.readouterr().out
    ds = measure.agreement([lab, np.roll(lab, 1, 1)], truth=sparse)
    np.testing.assert_array_equal(ds.support.values, np.bincount(lab[3, :10].ravel(), minlength=3))
    assert ds.support.dims == ("phase",) and ds.support.attrs["units"] == "voxel"
    np.save(tmp_path / "dense.npy", lab)
    assert main(["compare", "a", "b", "--image", str(image), "--truth", str(tmp_path / "dense.npy"),
                 "--no-progress"]) == 0
    assert "labelled voxels" not in capsys.readouterr().out


def test_compare_reads_a_truth_named_inside_the_image_as_the_labels_are(tmp_path, capsys):
    # `--image X a b --truth truth` said "'truth', which does not exist": only a path was read
    lab = make_labels((12, 20, 20), seed=4)
    assert set(np.unique(lab)) == {0, 1, 2}
    image = tmp_path / "scan.ome.zarr"
    save_volume(lab.astype(np.float32), image, progress=False)
    for name, seg in {"a": lab, "b": np.roll(lab, 1, 2), "truth": lab}.items():
        save_labels(seg, image, name=name, phases=["pore", "cbd", "active"], progress=False)
    assert main(["compare", "a", "b", "--image", str(image), "--truth", "truth", "--csv", str(tmp_path / "c.csv"),
                 "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "c.csv", index_col="segmentation")
    assert list(table.loc["a", ["iou_pore", "iou_cbd", "iou_active"]]) == [1.0, 1.0, 1.0]
    assert table.loc["b", "iou_cbd"] < 1.0


def test_compare_reads_the_labels_of_a_bioformats2raw_store_s_image(tmp_path, capsys):
    """--image of a bioformats2raw store: its label images are in 0/labels (were looked for in
    STORE/labels: "does not exist")."""
    import zarr

    lab = make_labels((12, 20, 20), seed=4)
    store = tmp_path / "b2r.zarr"
    zarr.open_group(str(store), mode="w").attrs["bioformats2raw.layout"] = 3
    save_volume(lab.astype(np.float32), store / "0", progress=False)
    for name, seg in {"a": lab, "b": np.roll(lab, 1, 2), "truth": lab}.items():
        save_labels(seg, store, name=name, phases=["pore", "cbd", "active"], progress=False)
    assert (store / "0" / "labels" / "a").is_dir()
    assert main(["compare", "a", "b", "--image", str(store), "--truth", "truth", "--csv", str(tmp_path / "c.csv"),
                 "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "c.csv", index_col="segmentation")
    assert list(table.loc["a", ["iou_pore", "iou_cbd", "iou_active"]]) == [1.0, 1.0, 1.0]
