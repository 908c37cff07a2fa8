"""API errors re-worded in the command's terms: options the user gave, hints, the source."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from bigseg.cli import main
from bigseg.cli._terms import in_cli_terms


def parser():
    p = argparse.ArgumentParser(prog="bigseg x")
    p.add_argument("source")
    p.add_argument("--nan-policy", default="raise")
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--patch", default=None)
    p.add_argument("--fov", default=None)
    p.add_argument("--config", default=None)
    return p


def test_options_given_hints_and_the_source_are_named_as_typed():
    p = parser()
    args = p.parse_args(["scan.ome.zarr", "--overlap", "1.5"])
    say = in_cli_terms("Expected `overlap` in [0, 1). Got 1.5 instead.", p, args)
    assert say == "Expected `--overlap` in [0, 1). Got 1.5 instead."
    say = in_cli_terms("Expected `vol` finite; pass fov='auto' (--fov auto), or nan_policy='propagate'.", p, args)
    assert say == "Expected `source` finite; pass --fov auto, or --nan-policy propagate."
    assert in_cli_terms("pass patch=(32, 32).", p, args) == "pass --patch 32,32."
    assert in_cli_terms("(fov='auto', --fov auto)", p, args) == "(--fov auto)"
    # a call to type in Python (a hint for another tool) is left as it is: was "LocalCluster(--patch 4GiB)"
    assert in_cli_terms("start them again (LocalCluster(patch='4GiB')).", p, args) == \
        "start them again (LocalCluster(patch='4GiB'))."
    # every keyword of such a call (the second was rewritten: "LocalCluster(n_workers=2, --patch 4GiB)")
    assert in_cli_terms("LocalCluster(n_workers=2, patch='4GiB', x=(1, 2)) or patch=(32, 32)", p, args) == \
        "LocalCluster(n_workers=2, patch='4GiB', x=(1, 2)) or --patch 32,32"
    assert in_cli_terms("or pass `patch` (3 numbers)", p, args) == "or pass `--patch` (3 numbers)"  # a hint
    assert in_cli_terms("Expected `data` finite.", p, args) == "Expected `source` finite."
    # `path` is the source only where the message quotes the source
    assert in_cli_terms("Expected `path` to exist. Got 'scan.ome.zarr'.", p, args).startswith("Expected `source`")
    assert in_cli_terms("Expected `path` to exist. Got 'other'.", p, args).startswith("Expected `path`")


def test_a_hint_for_another_commands_option_keeps_its_command_line_spelling():
    """filter's NaN advice (segment with fov='auto', --fov auto): filter has no --fov, and its
    message said both spellings."""
    p = argparse.ArgumentParser(prog="bigseg filter")
    p.add_argument("source")
    p.add_argument("--nan-policy", default="raise")
    args = p.parse_args(["scan.ome.zarr"])
    say = in_cli_terms("filter with nan_policy='propagate' and segment inside it (fov='auto', --fov auto).", p, args)
    assert say == "filter with --nan-policy propagate and segment inside it (--fov auto)."


def test_an_option_left_at_its_default_keeps_the_api_name_where_a_config_file_may_have_set_it():
    # the value came from elsewhere (a --config file), not from an option the user typed
    p = parser()
    args = p.parse_args(["scan.ome.zarr", "--config", "run.yaml"])
    assert in_cli_terms("Expected `overlap` in [0, 1).", p, args) == "Expected `overlap` in [0, 1)."
    assert in_cli_terms("Expected `phases` named.", p, args) == "Expected `phases` named."  # no such option
    # without a --config file the option is the only way to give it: named so even when not typed
    # (train's "Expected `checkpoint_dir` with `resume`" said --resume, and checkpoint_dir unchanged)
    args = p.parse_args(["scan.ome.zarr"])
    assert in_cli_terms("Expected `overlap` in [0, 1).", p, args) == "Expected `--overlap` in [0, 1)."
    assert in_cli_terms("Expected `phases` named.", p, args) == "Expected `phases` named."
    # typed too, but with a --config file whose value is the one said: the file's key is named
    args = p.parse_args(["scan.ome.zarr", "--fov", "auto", "--config", "run.yaml"])
    assert in_cli_terms("Expected `fov` in the volume. Got 5 instead.", p, args) == \
        "Expected `fov` in the volume. Got 5 instead."
    assert in_cli_terms("Expected `fov` in the volume. Got 'auto' instead.", p, args) == \
        "Expected `--fov` in the volume. Got 'auto' instead."
    # without a --config file the typed option is the one, whatever the message says after "Got"
    args = p.parse_args(["scan.ome.zarr", "--fov", "auto"])
    assert in_cli_terms("Expected `fov` to have 3 values. Got 2: ['a', 'b'].", p, args).startswith("Expected `--fov`")


def test_filter_nan_error_names_the_source_and_the_option(tmp_path, capsys):
    from bigseg.io import save_volume

    a = np.random.default_rng(0).random((8, 12, 12), dtype=np.float32)
    a[2, 3, 4] = np.nan
    src = save_volume(a, tmp_path / "nan.ome.zarr", progress=False)
    assert main(["filter", str(src), str(tmp_path / "out.ome.zarr"), "--gaussian", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Expected `source` to hold finite values only" in err and "--nan-policy propagate" in err, err
    assert "`vol`" not in err and not (tmp_path / "out.ome.zarr").exists()


def test_segment_refuses_a_missing_gpu_before_reading_the_data(tmp_path, capsys):
    import torch

    from bigseg.io import save_volume

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    src = save_volume(np.random.default_rng(0).random((8, 12, 12), dtype=np.float32), tmp_path / "s.ome.zarr",
                      progress=False)
    assert main(["segment", str(src), "--model", "default", "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "`--device` 'cuda' only where PyTorch sees a CUDA GPU" in err and "use --device cpu" in err, err
    assert "histogram" not in err and "value range" not in err  # no pass over the data before the refusal
    assert not (tmp_path / "o").exists()


def test_an_option_standing_for_an_api_parameter_of_another_name(tmp_path, capsys):
    from bigseg.io import save_volume

    src = save_volume(np.zeros((6, 8, 8), np.float32), tmp_path / "s.ome.zarr", progress=False)
    assert main(["filter", str(src), str(tmp_path / "o.ome.zarr"), "--median", "0", "--no-progress"]) == 2
    assert "Expected `--median` to hold 3 positive integers" in capsys.readouterr().err
    assert main(["filter", str(src), str(tmp_path / "o.ome.zarr"), "--gaussian", "-1", "--no-progress"]) == 2
    assert "Expected `--gaussian` to be a positive number" in capsys.readouterr().err


def test_the_input_is_named_by_the_commands_own_first_argument(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "Expected `path` to contain TIFF slices" in err and "`source`" not in err


def test_a_relative_source_quoted_absolute_is_still_named_as_the_argument(tmp_path, monkeypatch, capsys):
    """Was: `bigseg export missing.zarr out.tif` said "Expected `path` ...": the library quotes
    the absolute path, which the renaming did not recognise as the typed argument."""
    from bigseg.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", "missing.zarr", "out.tif"]) == 2
    err = capsys.readouterr().err
    assert "Expected `source` to be an existing" in err and "`path`" not in err
