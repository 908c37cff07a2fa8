"""A store received from elsewhere (an external user's OME-Zarr) cannot make bigseg read or write
another store on this machine: pyramid levels, label lists, bioformats2raw series and label names
that lead out of the store ('..', an absolute path, a symbolic link) are refused by name (QA:
facility security review)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import bigseg
from bigseg.errors import InputError, VolumeFormatError


def _stores(tmp_path):
    victim, evil = tmp_path / "victim.ome.zarr", tmp_path / "evil.ome.zarr"
    bigseg.save_volume(np.full((4, 8, 8), 7, np.uint8), victim, chunks=8, progress=False)
    bigseg.save_volume(np.zeros((4, 8, 8), np.uint8), evil, chunks=8, progress=False)
    bigseg.save_labels(np.zeros((4, 8, 8), np.uint8), evil, name="seg", phases=["pore", "active"], progress=False)
    return victim, evil


def _edit(path, fn):
    meta = json.loads((path / "zarr.json").read_text())
    fn(meta["attributes"]["ome"])
    (path / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("where", ["../victim.ome.zarr/0", "absolute"])
def test_a_dataset_path_out_of_the_store_is_refused(tmp_path, where):
    victim, evil = _stores(tmp_path)
    path = str(victim / "0") if where == "absolute" else where
    _edit(evil, lambda ome: ome["multiscales"][0]["datasets"][0].update(path=path))
    with pytest.raises(VolumeFormatError, match=r"level 0's dataset path .* outside it"):
        bigseg.open_volume(evil)


def test_a_level_that_is_a_link_out_of_the_store_is_refused(tmp_path):
    victim, evil = _stores(tmp_path)
    os.rename(evil / "0", tmp_path / "moved")
    os.symlink(victim / "0", evil / "0")
    with pytest.raises(VolumeFormatError, match="outside it"):
        bigseg.open_volume(evil)


def test_a_label_list_or_label_name_out_of_the_labels_group_is_refused(tmp_path):
    victim, evil = _stores(tmp_path)
    with pytest.raises(InputError, match=r"`label` to name a path inside"):
        bigseg.open_volume(evil, label="../../victim.ome.zarr")
    _edit(evil / "labels", lambda ome: ome.update(labels=["../../victim.ome.zarr"]))
    with pytest.raises(VolumeFormatError, match="the labels of .* outside it"):
        bigseg.open_volume(evil / "labels")


def test_labels_written_through_a_link_out_of_the_store_are_refused(tmp_path):
    _, evil = _stores(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.rename(evil / "labels", tmp_path / "labels_moved")
    os.symlink(elsewhere, evil / "labels")
    with pytest.raises(VolumeFormatError, match="not written"):
        bigseg.save_labels(np.zeros((4, 8, 8), np.uint8), evil, name="x", phases=["a", "b"], progress=False)
    assert list(elsewhere.iterdir()) == []


def test_paths_inside_the_store_still_open(tmp_path):
    victim, evil = _stores(tmp_path)
    assert int(bigseg.open_volume(victim).max()) == 7
    assert bigseg.open_volume(evil, label="seg").shape == (4, 8, 8)
    assert bigseg.open_volume(evil / "labels").shape == (4, 8, 8)
    linked = tmp_path / "link.ome.zarr"  # the store itself reached through a link: its own paths
    os.symlink(victim, linked)
    assert int(bigseg.open_volume(linked).max()) == 7


def test_info_shows_terminal_escapes_in_a_store_instead_of_obeying_them(tmp_path, capsys):
    """Names and attributes of a received store go to the terminal as text: an escape sequence in a
    phase name (here one clearing the screen) is shown, not run; --json escapes them itself."""
    from bigseg.cli import main

    store = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(np.zeros((4, 8, 8), np.uint8), store, chunks=8, progress=False)
    bigseg.save_labels(np.zeros((4, 8, 8), np.uint8), store, name="seg", phases=["pore\x1b[2J\r", "active"],
                       progress=False)
    assert main(["info", str(store / "labels" / "seg"), "--no-stats"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "pore\\x1b[2J\\r" in out
    assert main(["info", str(store / "labels" / "seg"), "--no-stats", "--json"]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_every_command_shows_a_received_names_escape_sequences_not_runs_them(tmp_path, capsys):
    """Only `info` passed its output through `printable`: `measure` printed a received label
    image's phase names (escape sequences clearing the screen, setting the window title) raw, and
    a watch its scans' file names; now every command's stdout and stderr, the progress bars' own
    carriage returns and erase-line codes kept."""
    from bigseg.cli import main
    from bigseg.cli._common import printable

    store = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(np.zeros((4, 8, 8), np.uint8), store, chunks=8, progress=False)
    lab = np.zeros((4, 8, 8), np.uint8)
    lab[:, 4:] = 1
    bigseg.save_labels(lab, store, name="seg", phases=["pore\x1b[2J", "active\x1b]0;owned\x07"], progress=False)
    assert main(["measure", str(store / "labels" / "seg"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "pore\\x1b[2J" in out
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # (a name that would move up, erase the line and write a fake one: the bars' own codes, elsewhere escaped)
    np.save(inbox / "scan\x1b[2J\x1b[A\x1b[2K\r\u202e.npy", np.zeros((4, 8, 8), np.float32))
    main(["watch", str(inbox), "--out", str(tmp_path / "w"), "--once", "--model", "threshold"])
    err = capsys.readouterr().err
    assert "[watch] scan\\x1b[2J\\x1b[A\\x1b[2K\\r\\u202e" in err
    assert not any(c in err for c in ("\x1b", "\r", "\u202e"))
    assert printable("\r 50%|#####\x1b[2K\r\x1b[A", bars=True) == "\r 50%|#####\x1b[2K\r\x1b[A"  # the bars' own
    assert printable("\r\x1b[2K") == "\\r\\x1b[2K"  # not elsewhere
