"""A self-contained HTML report of a pipeline run: volume, metrics, particles, timings and figures."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._parse import parse_path
from .._version import version
from ..config import CLASSICAL_MODELS
from ..errors import InputError, VolumeFormatError
from ..io._volume import is_step_index, phase_named, time_unit
from ..runtime._files import write_text
from ._particles import series_split
from ._units import along_z, readable, readable_evolution, time_text, voxel_text

__all__ = ["write_report", "read_metrics", "connectivity_table", "thickness_table"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.2em 0.8em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; } .note { color: #666; font-size: 0.9em; }
.warn { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 0.8em; }
"""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "—" if not np.isfinite(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metrics_section(ds) -> str:
    d = ds.isel(t=-1) if "t" in ds.dims else ds
    last = _last_step(ds.t.values[-1], time_unit(ds.t)) if "t" in ds.dims else ""
    phases = [str(p) for p in d.phase.values]
    cols = ["phase", "volume fraction"] + [c for c in ("iou", "dice", "precision", "recall") if c in d]
    rows = [[p, float(d.volume_fraction.values[i])] + [float(d[c].values[i]) for c in cols[2:]]
            for i, p in enumerate(phases)]
    out = f"<h2>Phases{last}</h2>" + _table([{"iou": "IoU", "dice": "Dice"}.get(c, c) for c in cols], rows)
    if "accuracy" in d:
        out += f"<p>overall accuracy {float(d.accuracy.values):.4f} (read with the per-phase IoU: majority-class trap)</p>"
    if "faces" in d:
        from ..measure import evolution

        pairs = [(i, j) for i in range(len(phases)) for j in range(i + 1, len(phases))]
        scale, unit = readable([d.area.values[i, j] for i, j in pairs], d.area.attrs.get("units", ""))
        per_volume = evolution(ds).iloc[-1]  # area / the (last) volume: the specific interface area
        spec = [float(per_volume[f"specific_area_{phases[i]}_{phases[j]}"]) for i, j in pairs]
        spec_scale, spec_unit = readable(spec, f"1/{ds.attrs.get('unit', '')}")
        rows = []
        for (i, j), a in zip(pairs, spec):
            rows.append([f"{phases[i]}–{phases[j]}", int(d.faces.values[i, j]),
                         100 * float(d.voxel_fraction.values[i, j]), float(d.area.values[i, j]) * scale,
                         a * spec_scale]
                        + ([100 * float(d.coverage.values[i, j]), 100 * float(d.coverage.values[j, i])]
                           if "coverage" in d else []))
        head = ["pair", "shared faces", "% of voxels on the interface", f"area [{unit}]", f"area per volume [{spec_unit}]"]
        if "coverage" in d:
            head += ["% of the first's surface", "% of the second's surface"]
        out += f"<h2>Interfaces{last}</h2>" + _table(head, rows)
        from ..measure._metrics import FACES_CAVEAT

        method = str(ds.attrs.get("method", d.area.attrs.get("method", "")))
        caveat = f" ({FACES_CAVEAT}, measure.interfaces: crofton)" if method == "faces" else ""
        out += f"<p class='note'>area method: {html.escape(method + caveat)}</p>"
    if "volume_fraction_profile" in d:
        out += _profile_section(d["volume_fraction_profile"], last)
    if "connectivity_percolating" in d:
        names = ("percolating", "isolated", "unknown", "largest", "components")
        conn = d[[f"connectivity_{c}" for c in names]].rename({f"connectivity_{c}": c for c in names})
        head, rows, note = connectivity_table(conn, str(ds.attrs.get("connectivity_axis", "")))
        out += (f"<h2>Connectivity along {html.escape(str(ds.attrs.get('connectivity_axis', '')))}{last}</h2>"
                + _table(head, rows) + f"<p class='note'>{html.escape(note)}</p>")
    if "thickness_d50" in d:
        names = {f"thickness_{q}": q for q in ("d10", "d50", "d90", "beyond")} | {"thickness_mean": "mean_thickness"}
        th = d[list(names)].rename(names).rename(thickness_phase="phase")
        out += (f"<h2>Local thickness{last}</h2>"
                + _table(*thickness_table(th, str(d["thickness_d50"].attrs.get("units", ds.attrs.get("unit", "")))))
                + "<p class='note'>the diameter of the largest ball inside the phase that holds each voxel "
                  "(balls on voxel centres, diameters in whole voxels; for the pore phase its pore size "
                  "distribution), volume-weighted: thickness.png, metrics.nc (thickness_*)</p>")
    if "shell_fraction" in d:
        sh = d["shell_fraction"]
        scale, unit = readable(d.shell_distance.values, sh.attrs.get("distance_units", ""))
        rows = [[f"{float(r) * scale:.4g}", float(v)] for r, v in zip(d.shell_distance.values, sh.values)]
        out += (f"<h2>{html.escape(str(sh.attrs.get('long_name', 'shells')))}{last}</h2>"
                + _table([f"distance [{unit}] (outer radius)", "fraction"], rows))
    if "rve_relative_std" in ds:  # the whole (or last) volume's sub-cubes
        r = ds["rve_relative_std"]
        edges = ds["cube_edge_physical"].values
        scale, unit = readable(edges, ds["cube_edge_physical"].attrs.get("units", ds.attrs.get("unit", "")))
        vs = [float(v) for v in ds.attrs.get("voxel_size", [1.0, 1.0, 1.0])]
        rows = [[int(k), f"{float(e) * scale:.4g}", int(n)] + [float(v) for v in r.values[i]]
                for i, (k, e, n) in enumerate(zip(ds["cube_edge"].values, edges, ds["rve_cubes"].values))]
        rows.append(["first edge within the tolerance", "", ""] + [
            f"{float(v) * vs[0] * scale:.4g}" if v == v else "not reached" for v in ds["rve_size"].values])
        out += (f"<h2>Representative volume element{last}</h2>"
                + _table(["cube edge [voxels]", f"edge{along_z(vs)} [{unit}]", "cubes"] + [f"std / mean {p}" for p in phases],
                         rows)
                + f"<p class='note'>scatter of each phase's fraction over non-overlapping sub-cubes (tolerance "
                  f"{html.escape(str(ds.attrs.get('rve_tolerance', '')))}): rve.png</p>")
    if "tortuosity" in d:
        rows = [[i, float(a), float(b), float(c)] for i, (a, b, c) in enumerate(
            zip(d.tortuosity.values, d.tortuosity_D_eff.values, d.tortuosity_porosity.values))]
        out += (f"<h2>Transport{last}</h2>"
                + _table(["sub-volume", "tortuosity factor τ", "D_eff / D_0",
                          "porosity" if _is_pore(ds, ds.attrs.get("tortuosity_phase", "pore")) else "volume fraction"],
                         rows)
                + f"<p class='note'>{html.escape(str(ds.attrs.get('tortuosity_phase', '')))} phase along "
                  f"{html.escape(str(ds.attrs.get('tortuosity_axis', '')))} (TauFactor; sub-volumes solved "
                  "independently)</p>")
    return out


def connectivity_table(conn, axis: str) -> tuple[list[str], list[list[Any]], str]:
    """Header, rows (one per phase, in %) and a note saying what the classes are, of one
    frame's :func:`bigseg.measure.connectivity`.

    Parameters
    ----------
    conn : one frame (no ``t``) of the Dataset of :func:`bigseg.measure.connectivity`.
    axis : the axis it was measured along (``"z"``, ``"y"`` or ``"x"``), named in the note.
    """
    head = ["phase", "percolating %", "isolated %", "unknown %", "largest component %", "components"]
    rows = [[str(p)] + [100 * float(conn[c].values[i]) for c in ("percolating", "isolated", "unknown", "largest")]
            + [int(conn["components"].values[i])] for i, p in enumerate(conn.phase.values)]
    note = (f"shares of each phase's voxels in 6-connected components that touch both faces normal to {axis} "
            "(percolating), no face of the volume and no edge of the field of view (isolated: cut off in the "
            "sample), or its edge without spanning it (unknown: they may connect outside the volume)")
    return head, rows, note


def thickness_table(th, unit: str) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (one per phase: d10, median, d90, mean in the unit that reads best, % at
    the largest diameter) of one frame's :func:`bigseg.measure.thickness`.

    Parameters
    ----------
    th : one frame (no ``t``) of the Dataset of :func:`bigseg.measure.thickness` (its ``d10``,
        ``d50``, ``d90``, ``mean_thickness`` and ``beyond`` over ``phase`` are read).
    unit : the length unit of its values (e.g. its ``attrs["unit"]``), scaled to read best.
    """
    qs = ("d10", "d50", "d90", "mean_thickness")
    scale, shown = readable(np.concatenate([th[q].values for q in qs]), unit)
    head = ["phase", f"d10 [{shown}]", f"median [{shown}]", f"d90 [{shown}]", f"mean [{shown}]",
            "% at the largest diameter"]
    rows = [[str(p)] + [float(th[q].values[i]) * scale for q in qs] + [100 * float(th["beyond"].values[i])]
            for i, p in enumerate(th.phase.values)]
    return head, rows


def _profile_section(prof, last: str) -> str:
    """Lowest and highest fraction of each phase along the profile's axis, and where."""
    import numpy as np

    axis = str(prof.attrs.get("axis", prof.dims[-1]))
    scale, unit = readable(prof[axis].values, prof[axis].attrs.get("units", ""))
    pos = prof[axis].values * scale
    rows = []
    for i, ph in enumerate(prof.phase.values):
        y = prof.values[i]
        if not np.isfinite(y).any():
            continue
        lo, hi = int(np.nanargmin(y)), int(np.nanargmax(y))
        rows.append([str(ph), float(y[lo]), float(pos[lo]), float(y[hi]), float(pos[hi])])
    step = int(prof.attrs.get("step", 1))
    return (f"<h2>Along {html.escape(axis)}{last}</h2>"
            + _table(["phase", "lowest fraction", f"at {axis} [{unit}]", "highest fraction", f"at {axis} [{unit}]"], rows)
            + f"<p class='note'>volume fractions slice by slice{f' (bins of {step} slices)' if step > 1 else ''}: "
              "profile.png, metrics.nc (volume_fraction_profile)</p>")


def _particles_section(table) -> str:
    last, split = "", None
    if "t" in table and len(table):  # a series: the last time step here, every step under "Over time"
        last = _last_step(table["t"].iloc[-1], table.attrs.get("time_unit", ""))
        split = series_split(table)  # the groups of the whole series (they stay the same over time)
        table = table[table["t"] == table["t"].iloc[-1]]
    inside = table[~table["touches_border"].astype(bool)]
    unit = table.attrs.get("unit", "")
    method = table.attrs.get("surface_area_method")
    rows = []
    from ..measure._groups import contact_column, contact_median

    cbd = contact_column(table.columns, "cbd") or "contact_cbd"  # ("CBD" too)
    for col, label, power in (("equivalent_diameter", "equivalent diameter", 1), ("volume", "volume", 3),
                              ("sphericity", f"sphericity{f' ({method} areas)' if method else ''}", 0),
                              ("aspect_ratio", "aspect ratio (major / minor axis)", 0),
                              ("detachment", "detachment (pore contact)", 0),
                              (cbd, "CBD contact", 0), ("contact_particle", "particle contact", 0)):
        if col in inside and inside[col].notna().any():
            q = inside[col].quantile([0.1, 0.5, 0.9])
            stats = [float(inside[col].mean()), float(q[0.1]), float(q[0.5]), float(q[0.9])]
            if power and unit:
                scale, shown = readable(stats, f"{unit}^{power}")
                stats, label = [s * scale for s in stats], f"{label} [{shown}]"
            rows.append([label] + stats)
        if col == "equivalent_diameter" and len(inside):  # the size distribution by volume: D[4,3], D10, D50, D90
            from ..measure import size_distribution

            by_volume = size_distribution(inside.drop(columns=["t"], errors="ignore")).loc["volume"]
            stats = [float(by_volume[c]) for c in ("mean", "d10", "d50", "d90")]
            scale, shown = readable(stats, unit) if unit else (1.0, "")
            rows.append([f"equivalent diameter by volume (D[4,3], D10, D50, D90){f' [{shown}]' if unit else ''}"]
                        + [v * scale for v in stats])
    if len(inside):
        out = (f"<h2>Particles{last}</h2>"
               f"<p>{len(table)} particles, {len(inside)} inside the volume (statistics below; "
               f"{len(table) - len(inside)} touch the border and are truncated).</p>"
               + _table(["quantity", "mean", "10 %", "median", "90 %"], rows))
    elif len(table):  # no statistics to show: said, not an empty table announced as below
        out = (f"<h2>Particles{last}</h2><p>{len(table)} particles, none inside the volume: every one touches "
               "the border and is truncated, so no size or shape statistics.</p>")
    else:  # (was "0 particles, none inside the volume: every one touches the border")
        phase = table.attrs.get("phase")
        out = (f"<h2>Particles{last}</h2><p>No particles: the segmentation holds no voxel of "
               f"{html.escape(repr(str(phase))) if phase else 'the particles&#x27; phase'}.</p>")
    smallest = int(table.attrs.get("min_voxels") or 1)
    left = table.attrs.get("small_particles")  # how many (a run.json of an earlier bigseg has no count)
    said = (f"{'' if left is None else f'{int(left)} '}particles of fewer than {smallest} voxels left out"
            + ("" if left is None else f", {int(table.attrs.get('small_voxels', 0))} voxels of the phase"
               + (" over every time step" if "t" in table else "")))
    out += (f"<p class='note'>one row per particle: particles.csv"
            f"{f' ({said}: measure.min_voxels)' if smallest > 1 else ''}</p>")
    if len(inside) and "detachment" in inside:
        from ..measure import size_groups

        g = size_groups(inside.drop(columns=["t"], errors="ignore"), threshold=split)  # a series: its last step
        scale, unit = readable(g["diameter_max"].to_numpy(), unit)
        shown = contact_median(g, "cbd")  # ("contact_CBD_median"; CBD particles have none: no column of NaN)
        rows = [[name, int(r["particles"]), f"{r['diameter_min'] * scale:.4g}–{r['diameter_max'] * scale:.4g}",
                 float(r["detachment_median"]), f"{r['detachment_p10']:.3f}–{r['detachment_p90']:.3f}"]
                + ([float(r[shown])] if shown else [])
                for name, r in g.iterrows() if r["particles"]]
        median = "the median over every time step" if split is not None else "the median"
        out += (f"<h3>Detachment by size (split at {g.attrs['threshold'] * scale:.4g} {html.escape(unit)}, {median})</h3>"
                + _table(["group", "particles", f"diameter [{unit}]", "detachment median", "detachment 10–90 %"]
                         + (["CBD contact median"] if shown else []), rows))
    return out


def _crop_text(info: dict) -> str | None:
    """The crop of a run (its run.json's configuration) as the user gives it: ``"2:28,:,5:-5"``."""
    crop = (info.get("config") or {}).get("crop")
    return None if not crop else crop if isinstance(crop, str) else ",".join(map(str, crop))


def _last_step(t: Any, unit: str) -> str:
    """What a section of a series' last time step says of it: `` (last time step, t = 60 min)``,
    as HTML (the unit is the store's text: escaped)."""
    return f" (last time step, t = {html.escape(time_text(t, unit))})"


def _evolution_section(ev, unit: str, t_unit: str = "", area_method: str = "") -> str:
    """The table of evolution.csv, lengths and specific areas in a readable unit (the file keeps
    the data's unit); its ``t`` column with the times' unit (``t_unit``); the method of the
    interface areas (``area_method``) said."""
    ev = readable_evolution(ev, unit)
    if t_unit:
        ev = ev.rename(columns={"t": f"t [{t_unit}]"})
    areas = f"; interface areas by {html.escape(area_method)}" if area_method else ""
    return ("<h2>Over time</h2>" + _table([str(c) for c in ev.columns], ev.values.tolist())
            + "<p class='note'>evolution.csv (in the data's unit, " + html.escape(unit)
            + f"){areas}; particle medians over the particles inside the volume; fractions, coverages, "
              "percolating shares and phase changes here as fractions of 1 (the Interfaces and Connectivity tables above "
              "give them in %)</p>")


#: What each figure of a run folder shows: its image's text alternative (a screen reader, a page
#: read without its images), not its file name (WCAG 2 failure F30).
_FIGURE_TEXT = {
    "slices.png": "orthogonal central slices (xy, xz, yz) of the tomogram above its labels in the phase colours",
    "metrics.png": "bar charts of the volume fraction of each phase, the interface area of each phase pair "
                   "and, against a reference, each phase's IoU",
    "particles.png": "histograms of the particles' equivalent diameter, sphericity, contact fractions and "
                     "aspect ratio, and detachment against size",
    "profile.png": "volume fraction of each phase slice by slice along the profile's axis",
    "radial.png": "volume fraction of each phase against the distance from the axis of the field of view",
    "fov.png": "middle xy slice of the tomogram with the field of view outlined",
    "rve.png": "scatter (std / mean) of each phase's fraction over sub-cubes against the cube edge",
    "shells.png": "fraction of a phase in shells at growing distance from another phase",
    "thickness.png": "distribution of each phase's local thickness and its cumulative share",
    "evolution.png": "curves over time of the volume fractions, interfaces, scores, connectivity and particles",
    "slices_over_time.png": "the same slice of the tomogram and its labels at each time step",
}


def _is_pore(ds, name: Any) -> bool:
    """Whether the phase ``name`` is the pore of the metrics ``ds``: the phase named pore, in other
    case where it is the only one (:func:`bigseg.io._volume.phase_named`; "Pore" beside "pore" is not)."""
    phases = [str(p) for p in ds["phase"].values] if "phase" in ds.coords else [str(name)]
    return phase_named(phases, "pore") == str(name)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = _FIGURE_TEXT.get(path.name, f"figure {path.stem.replace('_', ' ')}")
    return f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'>" \
           f"<figcaption class='note'>{html.escape(path.name)}</figcaption></figure>"


def read_metrics(run: str | os.PathLike):
    """The metrics Dataset a pipeline run wrote (``metrics.nc``, else ``metrics.json``), with the
    list-valued attributes the pipeline stored as JSON text (``voxel_size``, ``shape``) decoded;
    a ``metrics.nc`` of ``bigseg measure --netcdf`` or ``to_netcdf`` (netCDF4 or netCDF3) reads
    the same, its array attributes as lists.

    Parameters
    ----------
    run : the ``dest`` folder of :meth:`bigseg.Pipeline.run`.
    """
    import xarray as xr

    run = Path(run)
    nc, js = run / "metrics.nc", run / "metrics.json"
    if not run.is_dir() or not (nc.exists() or js.exists()):
        raise InputError(f"Expected `run` to be a pipeline output folder holding metrics.nc or metrics.json. "
                         f"Got {str(run)!r} instead.")
    try:
        if nc.exists():  # the engine by the file's format: netCDF4 (as bigseg writes it) or netCDF3 (scipy)
            with xr.open_dataset(nc) as f:
                ds = f.load()
        else:
            ds = xr.Dataset.from_dict(json.loads(js.read_text()))
            # NaN and infinities are null in the JSON (strict JSON): a number list holding one reads
            # as objects, back to floats with NaN
            nulls = {name: var.copy(data=var.values.astype(np.float64)) for name, var in ds.variables.items()
                     if var.dtype == object and all(v is None or isinstance(v, (int, float)) for v in var.values.ravel())}
            ds = ds.assign_coords({k: v for k, v in nulls.items() if k in ds.coords}).assign(
                {k: v for k, v in nulls.items() if k not in ds.coords})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # a file cut short (a run killed
        # while writing it), or edited into JSON of no Dataset ("[]": AttributeError)
        raise _unreadable(run, nc if nc.exists() else js, exc) from None
    # the pipeline stored list-valued attributes (voxel_size, shape, ...) as JSON text: decode them;
    # `bigseg measure --netcdf` (and to_netcdf) as arrays: the same lists
    for attrs in [ds.attrs] + [v.attrs for v in ds.variables.values()]:
        for key, value in list(attrs.items()):
            if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
                attrs[key] = value.tolist()
            # (but the run's `config`: a mapping stays JSON text, as a netCDF attribute must be)
            if isinstance(value, str) and value[:1] in "[{" and key != "config":
                try:
                    attrs[key] = json.loads(value)
                except ValueError:
                    pass
    return ds


def _unreadable(run: Path, path: Path, exc: BaseException) -> VolumeFormatError:
    return VolumeFormatError(f"Expected the run folder {str(run)!r} to hold the files a pipeline run wrote. Got {str(path)!r}, "
                             f"which cannot be read ({type(exc).__name__}: {exc}): a run stopped while writing it? "
                             "Run it again (`bigseg run` resumes) to write it anew.")


def scans_title(scans: Any) -> str:
    """A series given as its scans' paths, as a title names it: how many, the first and last."""
    return f"{len(scans)} scans, {Path(str(scans[0])).name} … {Path(str(scans[-1])).name}"


#: what the values of a run record that the report and ``info`` read are (dotted: inside a mapping), and
#: which may be null: a run.json edited by hand, or received, with others ended them in a traceback
_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str, list), "model": (str,), "bigseg": (str,), "model_key": (str, type(None)),
    "model_training": (dict, type(None)), "config": (dict,), "parameters": (dict,), "computed_on": (dict,),
    "voxel_size": (list,), "unit": (str,), "voxel_size_from": (str,), "date": (str,), "environment": (dict,),
    "timings_s": (dict,), "config.filters": (dict,), "config.predict": (dict,), "config.measure": (dict,),
    "config.crop": (str, list, type(None)), "config.predict.temporal": (int,), "environment.packages": (dict,),
    "environment.machine": (dict,), "environment.git_commit": (str, type(None)),
    "timings_s.*": (int, float), "fov": (dict,), "fov.inside_fraction": (int, float),  # (*: each value)
    "particles_left_out": (dict,), "particles_left_out.*": (int,),
}


def _run_info(run: Path) -> dict[str, Any]:
    """``run.json`` of a run folder (``{}`` when there is none), its values of the types a run
    writes (:data:`_RECORD_TYPES`), else refused naming the file and the value."""
    path = run / "run.json"
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict):  # (edited: valid JSON, no record; read on as one, a traceback)
            raise ValueError(f"a JSON {type(info).__name__}, not an object")
        for key, types in _RECORD_TYPES.items():
            *outer, last = key.split(".")
            where = info
            for part in outer:
                where = where.get(part) if isinstance(where, dict) else None
            if not isinstance(where, dict):
                continue
            for name in (where if last == "*" else [last] if last in where else []):
                if not isinstance(where[name], types):
                    raise ValueError(f"`{'.'.join([*outer, name])}` is {where[name]!r}, not "
                                     f"{' or '.join(_JSON_NAMES[t] for t in types)}")
    except (OSError, ValueError) as exc:
        raise _unreadable(run, path, exc) from None
    return info


_JSON_NAMES = {str: "text", list: "a list", dict: "a mapping", int: "an integer", float: "a number",
               type(None): "null"}


def provenance_text(info: dict[str, Any]) -> str:
    """One line of a run's record (run.json): when, bigseg's version and commit, the key libraries,
    the machine."""
    env = info.get("environment") or {}
    pk = env.get("packages") or {}
    libs = ", ".join(f"{k} {pk[k]}" for k in ("numpy", "scipy", "scikit-image", "torch", "dask", "zarr") if pk.get(k))
    commit = f" (commit {env['git_commit'][:12]}{'+dirty' if env['git_commit'].endswith('+dirty') else ''})" \
        if env.get("git_commit") else ""
    m = env.get("machine") or {}
    return (f"{info.get('date', '')} by bigseg {env.get('bigseg')}{commit}, Python {env.get('python')}; {libs}; "
            f"on {m.get('host')} ({m.get('processor')}, {m.get('cpus')} CPUs{', ' + m['gpu'] if m.get('gpu') else ''})")


def processing_text(info: dict[str, Any]) -> str | None:
    """The steps between the source and the labels as a run's configuration (run.json) set them, in
    the pipeline's order: ``"median 3 → normalised for the model → model: overlap 0.5, gaussian
    blending, no TTA"``; ``None`` for a record without a configuration."""
    cfg = info.get("config") or {}
    f, p = cfg.get("filters") or {}, cfg.get("predict") or {}
    if not f and not p:
        return None
    steps = []
    if f.get("align"):  # a series moved onto one scan: the shifts say how far (and why the shape is smaller)
        moved = [max(abs(float(v)) for v in s) for s in info.get("alignment_shifts") or []]
        steps.append("scans aligned" + (f" (shifts up to {max(moved):.3g} voxels, each scan's in run.json)" if moved else ""))
    if f.get("median"):
        steps.append(f"median {f['median']}")
    if f.get("gaussian"):
        steps.append(f"gaussian σ {f['gaussian']:g}")
    if f.get("unsharp"):
        u = f["unsharp"] if isinstance(f["unsharp"], dict) else {}
        steps.append(f"unsharp (radius {u.get('radius', 6)}, amount {u.get('amount', 0.6)}"
                     f"{', per z slice' if u.get('axes') == '2d' else ''})")
    if p.get("model") in CLASSICAL_MODELS:
        steps.append(f"{p['model']} (classical, no model)")
    elif p:
        if f.get("normalize"):
            steps.append("normalised for the model")
        steps.append(f"model: overlap {p.get('overlap')}, {p.get('blend')} blending, "
                     f"{'TTA' if p.get('tta') else 'no TTA'}" + (f", patch {p['patch']}" if p.get("patch") else ""))
    return " → ".join(steps) or None


def run_summary(run: str | os.PathLike) -> dict[str, Any]:
    """What a pipeline run folder holds, as plain values: source, model, bigseg version, shape,
    voxel size, volume fractions (and IoU against the truth, and each phase's percolating share;
    the last scan of a series), particle count (the last scan's; ``particle_rows``: every
    step's rows of a series), timings, the folder's images and figures, and its report.

    Parameters
    ----------
    run : the ``dest`` folder of :meth:`bigseg.Pipeline.run`.
    """
    run = Path(run)
    ds = read_metrics(run)
    info = _run_info(run)
    d = ds.isel(t=-1) if "t" in ds.dims else ds
    phases = [str(p) for p in d.phase.values]
    out: dict[str, Any] = {
        "run": str(run), "source": info.get("source"), "model": info.get("model"), "bigseg": info.get("bigseg"),
        "model_key": info.get("model_key"), "date": info.get("date"), "environment": info.get("environment"),
        "shape": ds.attrs.get("shape"), "voxel_size": ds.attrs.get("voxel_size"), "unit": ds.attrs.get("unit"),
        "steps": int(ds.sizes["t"]) if "t" in ds.dims else None, "crop": _crop_text(info),
        "volume_fraction": dict(zip(phases, map(float, d.volume_fraction.values))),
    }
    if "iou" in d:
        out["iou"] = dict(zip(phases, map(float, d.iou.values)))
        if info.get("truth"):  # against what
            out["truth"] = info["truth"]
    if "connectivity_percolating" in d:
        out["percolating"] = dict(zip(phases, map(float, d.connectivity_percolating.values)))
        out["percolating_axis"] = str(ds.attrs.get("connectivity_axis", ""))
    if "fov" in info:
        out["fov"] = info["fov"]
    if info.get("voxel_size_assumed"):  # 1 unit in name only: the source stated none, none was given
        out["voxel_size_assumed"] = True
    if info.get("voxel_size_from"):  # given, read from the source, or assumed
        out["voxel_size_from"] = info["voxel_size_from"]
    if isinstance(info.get("config"), dict) and info.get("source") not in (None, "array"):
        # the documented way to reproduce it: the recorded settings (defaults included) on the same source
        import shlex

        src = info["source"] if isinstance(info["source"], list) else [info["source"]]
        # where it ran is not taken from the record (config.WHERE_KEYS): a kind bigseg starts, said in the line
        # (an address, someone's scheduler, is left for the reader to give)
        cluster = info["config"].get("cluster")
        out["rerun"] = " ".join(["bigseg run", *map(shlex.quote, map(str, src)), "--out NEW_FOLDER --config",
                                 shlex.quote(os.path.abspath(run / "run.json")),  # (from any folder, as the source)
                                 # (a truth file is recorded by its absolute path; an array's is "an array", no --truth)
                                 *(["--truth", shlex.quote(str(info["truth"]))]
                                   if os.path.isabs(str(info.get("truth") or "")) else []),
                                 *(["--cluster", cluster] if cluster in ("threads", "local-cuda", "slurm") else [])])
    if _temporal(info):
        out["temporal"] = _temporal(info)
    if (run / "particles.csv").exists():  # a series: the last step's, as the fractions (every step's rows beside)
        from ..measure import read_table

        table = read_table(run / "particles.csv")
        out["particles"] = int((table["t"] == table["t"].iloc[-1]).sum()) if "t" in table and len(table) else len(table)
        if "t" in table:
            out["particle_rows"] = len(table)
    out["timings_s"] = info.get("timings_s", {})
    out["images"] = sorted(str(p) for p in run.glob("*.ome.zarr"))
    out["figures"] = sorted(str(p) for p in run.glob("*.png"))
    out["report"] = str(run / "report.html") if (run / "report.html").exists() else None
    return out


def _temporal(info: dict[str, Any]) -> int:
    """``predict.temporal`` of a run (0 when absent)."""
    return int(((info.get("config") or {}).get("predict") or {}).get("temporal") or 0)


def write_report(run: str | os.PathLike, *, path: str | os.PathLike | None = None, title: str | None = None,
                 finished: bool = False, record: dict[str, Any] | None = None) -> Path:
    """Write ``report.html`` (one self-contained file, figures embedded) for a pipeline run folder.

    Parameters
    ----------
    run : the ``dest`` folder of :meth:`bigseg.Pipeline.run` (``metrics.nc`` or ``metrics.json``,
        optional ``particles.csv``, ``run.json`` and PNG figures).
    path : where to write (default ``run/report.html``).
    title : the page's heading and title; default None: "bigseg report: " and the run's source.
    finished : the run writing its own report as its last step (else the folder's state is read:
        a run that is not done gets a banner saying so, with the stages it got through).
    record : the run's record as ``run.json`` will hold it (default: the folder's ``run.json``): a run
        writes its report before ``run.json``, which marks it done.

    Returns
    -------
    The path of the report.
    """
    run = parse_path("run", run)
    if path is not None:
        parse_path("path", path)
    ds = read_metrics(run)
    info = _run_info(run) if record is None else record
    source = info.get("source", run.name)
    if isinstance(source, list):  # the scans of a series: first and last, not a Python list
        source = scans_title(source) if len(source) > 1 else str(source[0]) if source else run.name
    heading = title or f"bigseg report: {source}"
    parts = [f"<h1>{html.escape(heading)}</h1>",
             f"<p class='note'>written {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
             f" by bigseg {html.escape(version())}</p>"]  # this page's writer (the run's own: "computed" below)
    if not finished:
        from ..pipeline import run_state

        state = run_state(run)
        if state["state"] != "done":
            after = html.escape(", ".join(state["stages"]) or "no stage")
            # running: written as a run again starts (a kill then runs nothing that could rewrite it), so the
            # page cannot know whether that run is still going: `bigseg info` does
            what = (f"<b>Unfinished run</b> (finished stages: {after}; a run started here: "
                    "`bigseg info` says whether it is still running or was stopped)" if state["state"] == "running"
                    else f"<b>{state['state'].capitalize()} run</b> (stopped after {after})")
            parts.append(f"<p class='warn'>{what}: this page shows what the folder holds now; figures, particles and "
                         "timings may be missing or left from an earlier run. Run it again to resume.</p>")
    vol = [["shape (z, y, x)", ds.attrs.get("shape", "")]]
    if "t" in ds.dims:  # a series: its scans, and the times they were given
        steps = ds["t"].values
        vol.append(["scans (t)", f"{len(steps)}" + ("" if is_step_index(ds.t) else
                                                   f", at t = {', '.join(f'{v:g}' for v in steps)}"
                                                   + (f" {time_unit(ds.t)}" if time_unit(ds.t) else ""))])
    vs = ds.attrs.get("voxel_size")
    vol.append(["voxel size", (voxel_text(vs, ds.attrs.get("unit", "")) if vs is not None and len(vs) == 3 else "")
                + (" — assumed, not measured: the source states no voxel size and none was given, so every length, "
                   "area and volume below counts voxels under this unit's name" if info.get("voxel_size_assumed") else "")])
    if "model" in info:
        used = (info.get("parameters") or {}).get(info["model"])  # a classical segmenter's options (k-means' seed)
        vol.append(["segmentation", info["model"] + (f" (weights {info['model_key']})" if info.get("model_key") else "")
                    + (" (" + ", ".join(f"{k} {v}" for k, v in used.items()) + ")" if used else "")])
    if processing_text(info):  # what was done to the scan before it was labelled (all of it in run.json's config)
        vol.append(["processing", processing_text(info)])
    if info.get("environment"):  # what computed it: to reproduce and cite the numbers (all of it in run.json)
        vol.append(["computed", provenance_text(info)])
    if _crop_text(info):  # a box of the source: positions (profiles, centroids) are in its frame, slice indices the box's
        vol.append(["cropped from the source", _crop_text(info)])
    if "truth" in info:  # what the IoU/Dice are against
        vol.append(["reference labels (scores)", info["truth"]])
    if "fov" in info:  # measured inside the field of view only
        f = info["fov"]
        vol.append(["field of view", f"{f['fov']}: {100 * float(f['inside_fraction']):.1f} % of the cross-section"
                    + (f", margin {f['margin']:g} voxels" if f.get("margin") else "")
                    + ("" if f.get("found", True) else " (no fill found: all of it)")
                    + "; every number below measured inside it only"])
    if _temporal(info):
        vol.append(["time window", f"each scan's probabilities averaged with those of {_temporal(info)} scan(s) "
                                   "before and after it"])
    parts.append("<h2>Volume</h2>" + _table(["property", "value"], vol))
    parts.append(_metrics_section(ds))
    if (run / "particles.csv").exists():
        from ..measure import read_table

        table = read_table(run / "particles.csv")
        table.attrs["unit"] = ds.attrs.get("unit", "")
        area = (info.get("config") or {}).get("measure", {}).get("particle_area")
        if area:  # the particles' surface areas (and sphericities) as the run measured them
            table.attrs["surface_area_method"] = area
        phase = (info.get("config") or {}).get("measure", {}).get("phase")
        if phase:  # whose particles (said where there are none)
            table.attrs["phase"] = phase
        smallest = (info.get("config") or {}).get("measure", {}).get("min_voxels")
        if isinstance(smallest, int) and smallest > 1:  # smaller ones left out of the table
            table.attrs["min_voxels"] = smallest
            left = info.get("particles_left_out") or {}  # how many (a run.json of an earlier bigseg: not said)
            table.attrs.update({f"small_{k}": v for k, v in left.items() if k in ("particles", "voxels")})
        if "t" in ds.dims and time_unit(ds.t):
            table.attrs["time_unit"] = time_unit(ds.t)
        parts.append(_particles_section(table))
    if (run / "evolution.csv").exists():
        from ..measure import read_table

        parts.append(_evolution_section(read_table(run / "evolution.csv"), str(ds.attrs.get("unit", "")),
                                        time_unit(ds.t) if "t" in ds.dims else "",
                                        str(ds["area"].attrs.get("method", "")) if "area" in ds else ""))
    if info.get("timings_s"):
        rows = [[k, float(v)] for k, v in info["timings_s"].items()]
        parts.append("<h2>Timings</h2>" + _table(["stage", "seconds"], rows))
    figures = sorted(run.glob("*.png"))
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(_image(f) for f in figures))
    out = Path(path) if path is not None else run / "report.html"
    write_text(out, f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(heading)}</title>"
                    f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    return out

