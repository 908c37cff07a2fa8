"""What report.html tells a reader who did not run it (QA: report reader). Before, its "written
... by bigseg" line gave the run's bigseg version (run.json) beside the time the page was written,
so a report rewritten by another version (`bigseg report RUN`) named the wrong writer; the page
did not say what was done to the scan before it was labelled (filters, the alignment that made
a series' volume smaller than its scans, the model's inference settings), nor, under a field of
view, that the numbers were measured inside it only (`bigseg info` said so); its "Over time"
table gave as fractions of 1 the coverages and percolating shares that the tables above give in %,
and its "Interfaces" table a "% of voxels" without saying which (those on the interface)."""

from __future__ import annotations

import json
import re

import numpy as np
import xarray as xr

from bigseg._version import version
from bigseg.report._html import write_report


def _run_folder(path, **info):
    ds = xr.Dataset({"volume_fraction": (("phase",), [0.4, 0.6])}, coords={"phase": ["pore", "active"]},
                    attrs={"shape": "[8, 8, 8]", "voxel_size": "[1, 1, 1]", "unit": "nm"})
    (path / "metrics.json").write_text(json.dumps(ds.to_dict()))
    (path / "run.json").write_text(json.dumps({"source": "scan.h5", "model": "default", "bigseg": "0.0.1", **info}))
    return write_report(path, finished=True).read_text()


def test_the_page_names_its_own_writer_and_the_run_its_computer(tmp_path):
    page = _run_folder(tmp_path, environment={"bigseg": "0.0.1", "packages": {}, "machine": {}},
                       date="2020-01-01T00:00:00Z")
    assert f"UTC by bigseg {version()}</p>" in page  # was "by bigseg 0.0.1": the run's, not the page's
    assert "2020-01-01T00:00:00Z by bigseg 0.0.1" in page  # what computed the numbers, still said


def test_the_processing_before_the_labels_is_said(tmp_path):
    config = {"filters": {"align": True, "normalize": True, "median": 3, "gaussian": 1.1,
                          "unsharp": {"radius": 6, "amount": 0.6, "axes": "2d"}},
              "predict": {"model": "default", "overlap": 0.25, "blend": "gaussian", "tta": True, "patch": None}}
    page = _run_folder(tmp_path, config=config, alignment_shifts=[[0, 0, 0], [1.0, -2.5, 0.4]])
    assert ("<td>processing</td><td>scans aligned (shifts up to 2.5 voxels, each scan&#x27;s in run.json) → median 3 "
            "→ gaussian σ 1.1 → unsharp (radius 6, amount 0.6, per z slice) → normalised for the model → model: "
            "overlap 0.25, gaussian blending, TTA</td>") in page
    config = {"filters": {"align": False, "normalize": True, "median": None}, "predict": {"model": "threshold"}}
    page = _run_folder(tmp_path, config=config)
    assert "<td>processing</td><td>threshold (classical, no model)</td>" in page  # no normalisation: no model


def test_a_field_of_view_says_the_numbers_are_from_inside_it(tmp_path):
    page = _run_folder(tmp_path, fov={"fov": "auto", "found": True, "inside_fraction": 0.785, "margin": 0})
    assert "auto: 78.5 % of the cross-section; every number below measured inside it only" in page


def test_the_over_time_table_says_its_shares_are_fractions(tmp_path):
    ds = xr.Dataset({"volume_fraction": (("t", "phase"), np.full((2, 2), 0.5))},
                    coords={"t": [0.0, 1.0], "phase": ["pore", "active"]},
                    attrs={"shape": "[8, 8, 8]", "voxel_size": "[1, 1, 1]", "unit": "nm"})
    (tmp_path / "metrics.json").write_text(json.dumps(ds.to_dict()))
    (tmp_path / "evolution.csv").write_text("t,fraction_pore,percolating_pore\n0,0.5,0.99\n1,0.5,0.98\n")
    page = write_report(tmp_path, finished=True).read_text()
    assert "percolating shares and phase changes here as fractions of 1 (the Interfaces and Connectivity" in page


def test_the_interface_table_says_which_voxels_its_percentage_counts(tmp_path):
    from bigseg import measure, synth

    ds = measure.summary(synth.electrode((12, 12, 12), seed=1).compute())
    ds.attrs.update(shape="[12, 12, 12]", voxel_size="[1, 1, 1]")
    (tmp_path / "metrics.json").write_text(json.dumps(ds.to_dict(), default=str))
    page = write_report(tmp_path, finished=True).read_text()
    assert "<th>% of voxels on the interface</th>" in page


def test_a_run_record_of_other_types_is_named_not_a_traceback(tmp_path, capsys):
    """A run.json edited by hand or received (`model: 5`, `config: "x"`, a temporal window "x", a
    package list of no mapping) ended `bigseg report` and `bigseg info` in a TypeError or
    AttributeError traceback (exit 1, "a bug"); now a one-line refusal naming the file and value."""
    import pytest

    from bigseg.cli import main
    from bigseg.errors import VolumeFormatError

    _run_folder(tmp_path)
    for key, value in (("model", 5), ("config", "x"), ("timings_s", 5),
                       ("config", {"predict": {"temporal": "x"}}), ("environment", {"packages": 5})):
        (tmp_path / "run.json").write_text(json.dumps({"source": "scan.h5", "model": "default", key: value}))
        inner = value if not isinstance(value, dict) else next(iter(value.values()))
        inner = inner if not isinstance(inner, dict) else next(iter(inner.values()))
        with pytest.raises(VolumeFormatError, match=r"run.json', which cannot be read \(ValueError: `[\w.]+` is "
                                                     + repr(inner).replace("'", "'?")):
            write_report(tmp_path)
        for command in ("report", "info"):
            assert main([command, str(tmp_path)]) == 2
            assert "run.json', which cannot be read" in capsys.readouterr().err


def test_a_run_record_of_other_types_inside_its_mappings_is_named_not_a_traceback(tmp_path, capsys):
    """A step's seconds that are no number, or a field of view of another shape, still ended `bigseg
    info` and `bigseg report` in a ValueError/TypeError traceback (the types were checked one level
    deep only, and `fov` not at all)."""
    import pytest

    from bigseg.cli import main
    from bigseg.errors import VolumeFormatError

    _run_folder(tmp_path)
    for extra, named in (({"timings_s": {"ingest": "x"}}, "`timings_s.ingest` is 'x'"),
                         ({"timings_s": {"ingest": None}}, "`timings_s.ingest` is None"),
                         ({"fov": 5}, "`fov` is 5"),
                         ({"fov": {"fov": "auto", "inside_fraction": "most"}}, "`fov.inside_fraction` is 'most'"),
                         ({"particles_left_out": [4]}, "`particles_left_out` is [4]"),
                         ({"particles_left_out": {"particles": "4"}}, "`particles_left_out.particles` is '4'")):
        (tmp_path / "run.json").write_text(json.dumps({"source": "scan.h5", "model": "default", **extra}))
        with pytest.raises(VolumeFormatError, match=re.escape(named)):
            write_report(tmp_path)
        for command in ("report", "info"):
            assert main([command, str(tmp_path)]) == 2
            assert "run.json', which cannot be read" in capsys.readouterr().err
    (tmp_path / "run.json").write_text(json.dumps({"source": "scan.h5", "model": "default", "timings_s": {"ingest": 1.5},
                                                   "fov": {"fov": "auto", "inside_fraction": 0.8}}))
    assert "ingest" in write_report(tmp_path, finished=True).read_text()
