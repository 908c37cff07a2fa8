"""`overwrite` replaces an earlier output of the same kind, never a folder of other data or a source file."""

from __future__ import annotations

import numpy as np
import pytest

import bigseg
from bigseg.cli import main
from bigseg.errors import InputError, LabelsReplacedWarning, OutputExistsError
from bigseg.io import export, open_volume


@pytest.fixture()
def place(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("keep me")
    np.save(tmp_path / "scan.npy", np.arange(512, dtype=np.uint16).reshape(8, 8, 8))
    return tmp_path


def _intact(place):
    assert (place / "data" / "notes.txt").read_text() == "keep me"
    assert np.load(place / "scan.npy").sum() == np.arange(512).sum()


def test_save_volume_and_ingest_refuse_to_delete_other_data(place):
    vol = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(OutputExistsError, match="`path`.*no zarr store.*does not delete"):
        bigseg.save_volume(vol, place / "data", overwrite=True, progress=False)
    with pytest.raises(OutputExistsError, match="`path`.*a file"):
        bigseg.save_volume(vol, place / "scan.npy", overwrite=True, progress=False)
    with pytest.raises(InputError, match="`dest` to be another place than the input"):  # the source itself
        bigseg.ingest(place / "scan.npy", place / "scan.npy", overwrite=True, progress=False)
    _intact(place)


def test_an_earlier_output_or_an_empty_folder_is_replaced(place):
    (place / "empty").mkdir()
    bigseg.save_volume(np.zeros((8, 8, 8), np.float32), place / "empty", overwrite=True, progress=False)
    bigseg.ingest(place / "scan.npy", place / "empty", overwrite=True, progress=False)
    assert int(open_volume(place / "empty").values.max()) == 511
    export(open_volume(place / "empty"), place / "slices", progress=False)
    export(open_volume(place / "empty"), place / "slices", overwrite=True, progress=False)
    assert len(list((place / "slices").iterdir())) == 8


def test_replacing_an_image_says_which_label_images_went_with_it(tmp_path):
    """A filtered copy saved over its own source replaced its segmentation silently."""
    image = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(np.arange(512, dtype=np.float32).reshape(8, 8, 8), image, progress=False)
    bigseg.save_labels(np.zeros((8, 8, 8), np.uint8), image, phases=["pore"], progress=False)
    with pytest.warns(LabelsReplacedWarning, match=r"scan\.ome\.zarr.*\(segmentation\).*save_labels") as got:
        bigseg.save_volume(open_volume(image) + 1, image, overwrite=True, progress=False)
    assert got[0].filename == __file__  # pointed at the caller's line
    assert float(open_volume(image).values.min()) == 1.0 and not (image / "labels").exists()
    bigseg.save_volume(open_volume(image) * 2, image, overwrite=True, progress=False)  # no labels: nothing to say


def test_the_command_line_tells_bigsegs_warnings_as_its_own(tmp_path, capsys):
    """A warning pointed at the caller's line (warn_caller) read "<frozen runpy>:88:
    LabelsReplacedWarning: ..." on the command line: the first line outside bigseg was runpy's."""
    image = tmp_path / "scan.ome.zarr"
    np.save(tmp_path / "scan.npy", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    bigseg.save_volume(np.load(tmp_path / "scan.npy"), image, progress=False)
    bigseg.save_labels(np.zeros((8, 8, 8), np.uint8), image, phases=["pore"], progress=False)
    assert main(["ingest", str(tmp_path / "scan.npy"), str(image), "--overwrite", "--voxel-size", "1"]) == 0
    err = capsys.readouterr().err
    assert "bigseg ingest: warning: " in err and "label images saved into it (segmentation)" in err
    assert "LabelsReplacedWarning" not in err and __file__ not in err


def test_export_refuses_a_folder_of_other_files_and_a_folder_for_a_file(place):
    vol = bigseg.ingest(place / "scan.npy", place / "s.ome.zarr", progress=False)
    with pytest.raises(OutputExistsError, match="other files than TIFF slices \\(notes.txt\\)"):
        export(vol, place / "data", format="tiff-slices", overwrite=True, progress=False)
    with pytest.raises(OutputExistsError, match="a folder"):
        export(vol, place / "data", format="npy", overwrite=True, progress=False)
    _intact(place)


@pytest.mark.parametrize("argv", [["synth", "{data}", "--shape", "8", "--overwrite"],
                                  ["ingest", "{npy}", "{data}", "--overwrite"],
                                  ["export", "{img}", "{data}", "--overwrite"]], ids=lambda a: a[0])
def test_cli_refuses_before_any_work(place, argv, capsys):
    bigseg.ingest(place / "scan.npy", place / "s.ome.zarr", progress=False)
    args = [a.format(data=place / "data", npy=place / "scan.npy", img=place / "s.ome.zarr") for a in argv]
    assert main(args + ["--no-progress"]) != 0
    assert "--overwrite does not delete it" in capsys.readouterr().err
    _intact(place)


def test_export_overwrite_keeps_a_folder_of_someone_elses_tiff_slices(place, capsys):
    """A scan's own reconstructed slices (recon_0000.tif, ...) named as DEST by a slip are no
    earlier export (whose slices are DEST_00000.tif, ...): --overwrite refuses, they stay."""
    import tifffile

    scan = place / "scan_tiffs"
    scan.mkdir()
    for z in range(3):
        tifffile.imwrite(scan / f"recon_{z:04d}.tif", np.full((8, 8), z, np.uint16))
    bigseg.ingest(place / "scan.npy", place / "s.ome.zarr", progress=False)
    with pytest.raises(OutputExistsError, match="no export to it wrote \\(recon_0000.tif"):
        export(open_volume(place / "s.ome.zarr"), scan, overwrite=True, progress=False)
    assert main(["export", str(place / "s.ome.zarr"), str(scan), "--overwrite", "--no-progress"]) != 0
    assert "--overwrite does not delete it" in capsys.readouterr().err
    assert sorted(f.name for f in scan.iterdir()) == ["recon_0000.tif", "recon_0001.tif", "recon_0002.tif"]
    assert int(tifffile.imread(scan / "recon_0002.tif").max()) == 2
    export(open_volume(place / "s.ome.zarr"), place / "again", progress=False)  # an earlier export: replaced
    export(open_volume(place / "s.ome.zarr"), place / "again", overwrite=True, progress=False)
    assert len(list((place / "again").iterdir())) == 8


def test_export_overwrite_replaces_an_earlier_export_a_file_browser_looked_into(place):
    """Finder's .DS_Store (Explorer's Thumbs.db) in an earlier export's slices folder made it "a
    folder holding other files than TIFF slices": --overwrite was refused."""
    vol = bigseg.ingest(place / "scan.npy", place / "s.ome.zarr", progress=False)
    export(vol, place / "slices", progress=False)
    (place / "slices" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (place / "slices" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    export(vol, place / "slices", overwrite=True, progress=False)
    assert len(list((place / "slices").iterdir())) == 8
    (place / "new").mkdir()
    (place / "new" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # an "empty" folder made in Finder
    export(vol, place / "new", overwrite=True, progress=False)
    (place / "slices" / "notes.txt").write_text("mine")  # other data still refuses
    with pytest.raises(OutputExistsError, match=r"other files than TIFF slices \(notes.txt\)"):
        export(vol, place / "slices", overwrite=True, progress=False)


@pytest.mark.parametrize("flag", ["no", "False", 0, None])
def test_overwrite_is_true_or_false_not_a_truthy_stand_in(tmp_path, flag):
    """`overwrite="no"` (a config or an environment variable's string) replaced the existing store
    and `0` or None were read as "no" by chance: refused before any work, naming the argument."""
    from bigseg import models

    vol = np.arange(512, dtype=np.uint16).reshape(8, 8, 8)
    path = bigseg.save_volume(vol, tmp_path / "a.ome.zarr", progress=False)
    model = models.save(models.create("unet3d", channels=(4, 8)), tmp_path / "m.pt")
    writes = {"save_volume": lambda: bigseg.save_volume(vol * 0, path, overwrite=flag, progress=False),
              "save_labels": lambda: bigseg.save_labels(vol.astype(np.uint8) % 3, path, phases=["a", "b", "c"], overwrite=flag,
                                                       progress=False),
              "ingest": lambda: bigseg.ingest(path, tmp_path / "b.ome.zarr", overwrite=flag, progress=False),
              "export": lambda: export(vol, tmp_path / "c.npy", overwrite=flag, progress=False),
              "models.save": lambda: models.save(models.load(model), model, overwrite=flag)}
    for write in writes.values():
        with pytest.raises(InputError, match=f"Expected `overwrite` to be True or False. Got {flag!r}"):
            write()
    assert int(open_volume(path).sum()) == int(vol.sum())
    assert not (tmp_path / "b.ome.zarr").exists() and not (tmp_path / "c.npy").exists()
    with pytest.raises(InputError, match="Expected `half` to be True or False"):
        models.save(models.load(model), tmp_path / "h.pt", half="yes")
