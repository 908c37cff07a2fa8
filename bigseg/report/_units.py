"""Physical quantities shown in a readable unit: 319 µm², not 3.188e+08 nm^2.

The measurements keep the unit of the voxel size (``nm``, ``nm^2``, ``1/nm``: what the data
files say); figures and report tables pick, per quantity, the length unit among nm, µm, mm and m
in which its values read as plain numbers (0.1 to 10 000), and write the unit with superscripts.
A quantity not in a known length unit (``voxel``) is shown as it is.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..io._calibration import convert_length, normalise_unit, ome_tiff_unit

__all__ = ["readable", "pretty", "scale_bar", "voxel_text", "readable_evolution", "time_text"]

_SCALE = ("nm", "um", "mm", "m")  # the units a quantity may be shown in
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_LOW, _HIGH = 0.1, 1e4  # values read as plain numbers in this range


def _parse(units: Any) -> tuple[str, int] | None:
    """``("nm", 2)`` for ``"nm^2"`` / ``"nm²"``, ``("nm", -1)`` for ``"1/nm"`` / ``"nm^-1"``;
    ``None`` when ``units`` is not a power of a length unit bigseg knows."""
    text = str(units or "").strip().replace("**", "^")
    inverse = text.startswith("1/")
    text = text[2:].strip() if inverse else text
    m = re.fullmatch(r"(.+?)(?:\^?(-?\d+)|([²³]))?", text)
    if not m:
        return None
    short = normalise_unit(m.group(1))
    if short is None:
        return None
    power = int(m.group(2)) if m.group(2) else {"²": 2, "³": 3}.get(m.group(3) or "", 1)
    return short, -power if inverse else power


def pretty(units: Any) -> str:
    """``units`` as a person writes it: ``"um^2"`` -> ``"µm²"``, ``"1/nm"`` -> ``"nm⁻¹"``,
    ``"voxel^2"`` -> ``"voxel²"``, ``"1/voxel"`` -> ``"voxel⁻¹"``; anything else unchanged."""
    parsed = _parse(units)
    if parsed is None:
        inverse = re.fullmatch(r"1/\s*([A-Za-z]+)", str(units or "").strip())  # (was "1/voxel" on an axis)
        if inverse:
            return f"{inverse.group(1)}⁻¹"
        m = re.fullmatch(r"([A-Za-z]+)\^(-?\d+)", str(units or ""))
        return f"{m.group(1)}{m.group(2).translate(_SUPERSCRIPT)}" if m else str(units or "")
    short, power = parsed
    symbol = ome_tiff_unit(short)  # µm, Å, nm, ...: the symbols of the unit table
    return symbol + ("" if power == 1 else str(power).translate(_SUPERSCRIPT))


def readable(values: Any, units: Any, *, low: float = _LOW, high: float = _HIGH) -> tuple[float, str]:
    """``(factor, label)``: ``values`` (in ``units``) times ``factor`` read as plain numbers in the
    unit ``label`` (e.g. ``3.2e8`` ``"nm^2"`` -> ``(1e-6, "µm²")``). The unit of the data is kept
    when its largest value already reads so; ``(1.0, pretty(units))`` for a unit that is not a
    power of a length (or values that are all zero or not finite). ``low``, ``high``: the range
    the largest value should read in."""
    parsed = _parse(units)
    v = np.abs(np.asarray(values, dtype=np.float64).ravel())
    v = v[np.isfinite(v) & (v > 0)]
    if parsed is None or not v.size:
        return 1.0, pretty(units)
    short, power = parsed
    top = float(v.max())
    options = [(1.0, short)] + [(convert_length((1.0,), short, u)[0] ** power, u) for u in _SCALE if u != short]

    def miss(option: tuple[float, str]) -> float:  # how far (in decades) the largest value reads off the range
        shown = math.log10(top * option[0])
        return max(math.log10(low) - shown, shown - math.log10(high) + 1e-12, 0.0)

    factor, unit = min(options, key=miss)  # the data's own unit first: kept when it reads well
    return factor, pretty(f"{unit}^{power}")


def scale_bar(span: float, units: Any) -> tuple[float, str]:
    """A scale bar for an image ``span`` wide (in ``units``): its length in ``units`` (1, 2 or 5
    times a power of ten, about a fifth of the span, in the unit it reads best in) and its label
    (``"1 µm"``)."""
    factor, _ = readable([span / 5], units, low=1.0, high=1000.0)
    target = span / 5 * factor  # in the unit shown
    decade = 10.0 ** math.floor(math.log10(target))
    shown = max((m * decade for m in (1, 2, 5) if m * decade <= target), default=decade)
    _, label = readable([shown / factor], units, low=1.0, high=1000.0)
    return shown / factor, f"{shown:g} {label}{'s' if label == 'voxel' and shown != 1 else ''}"


def quantity_text(value: float, units: Any) -> str:
    """One value in the unit that reads best: ``4.421e-4`` ``"mm"`` -> ``"442.1 nm"``."""
    scale, shown = readable([value], units)
    return f"{value * scale:.4g} {shown}"


def voxel_text(voxel_size: Any, unit: Any) -> str:
    """``"50 nm"``, or ``"100 × 50 × 50 nm (z × y × x)"`` for anisotropic voxels."""
    vs = [float(v) for v in voxel_size]
    if len(set(vs)) == 1:
        return f"{vs[0]:g} {pretty(unit)}"
    return f"{' × '.join(f'{v:g}' for v in vs)} {pretty(unit)} (z × y × x)"


def readable_evolution(ev: Any, unit: str) -> Any:
    """:func:`bigseg.measure.evolution`'s table with its specific areas (``1/unit``) and median
    diameters (``unit``) in a readable unit, said in their column names (``specific_area_pore_cbd
    [µm⁻¹]``); a copy."""
    ev = ev.copy()
    for kind, units in (("specific_area_", f"1/{unit}"), ("median_equivalent_diameter", unit)):
        cols = [c for c in ev.columns if str(c).startswith(kind)]
        if cols:
            scale, shown = readable(ev[cols].to_numpy(), units)
            ev[cols] = ev[cols] * scale
            ev = ev.rename(columns={c: f"{c} [{shown}]" for c in cols})
    return ev


def along_z(voxel_size: Any) -> str:
    """``" along z"`` where the voxels are not cubes (a sub-cube of N voxels is a box: its edge in
    physical units is the one along z), else ``""``."""
    return "" if len({float(v) for v in (voxel_size if voxel_size is not None else (1.0,))}) == 1 else " along z"


def time_at(t: Any, i: int = -1) -> str:
    """The ``i``-th time of a series' ``t`` coordinate as :func:`time_text` shows it (its unit
    from the coordinate's ``units``)."""
    from ..io._volume import time_unit

    return time_text(t.values[i], time_unit(t))


def at_last_step(obj: Any) -> str:
    """``" (t = 30 min)"``: which step a series' figure, table or line shows (its last), as
    :func:`time_at` says it; ``""`` for a single volume (no ``t`` dimension)."""
    return f" (t = {time_at(obj.t)})" if "t" in getattr(obj, "dims", ()) else ""


def time_text(t: Any, unit: str = "") -> str:
    """A series' time as tables and titles show it, with its unit when it has one (``"30 min"``;
    :func:`bigseg.io._volume.time_unit`)."""
    return f"{float(t):g} {unit}" if unit else f"{t:g}" if isinstance(t, (float, np.floating)) else f"{t}"


def small_particles_text(attrs: Any) -> str:
    """What a particle table's ``min_voxels`` left out (its ``attrs``), as a line says it: ``""`` if nothing."""
    n = int(attrs.get("small_particles") or 0)
    if not n:
        return ""
    return (f"({n} particle(s) smaller than {int(attrs['min_voxels'])} voxels left out: {int(attrs['small_voxels'])} "
            "voxels of the phase in no row)")


def size_distribution_text(sd: Any, unit: str, *, at: str = "") -> str:
    """One line of :func:`bigseg.measure.size_distribution` (a series: its last step, which ``at``
    says, e.g. ``" (t = 30 min)"``): D10, D50, D90 and D[4,3] by volume, in the unit that reads best;
    no particle inside there: said so (was "D10 nan")."""
    if "t" in sd.index.names:
        sd = sd.xs(sd.index.get_level_values("t")[-1], level="t")
    row = sd.loc["volume"]
    if not row["particles"]:
        return f"size distribution{at}: no particle inside the volume"
    values = [float(row[c]) for c in ("d10", "d50", "d90", "mean")]
    scale, shown = readable(values, unit)
    d10, d50, d90, mean = (f"{v * scale:.4g}" for v in values)
    return (f"size distribution by volume (particles inside){at}: D10 {d10}, D50 {d50}, D90 {d90} {shown}; "
            f"D[4,3] {mean} {shown}")
