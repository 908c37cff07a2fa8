"""Small ``parse_*`` helpers that validate public arguments and return normalised values.

Each one raises :class:`bigseg.errors.InputError` with a message naming the argument and the
value, e.g. "Expected `overlap` in [0, 1). Got 1.2 instead."
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from .errors import InputError

__all__ = [
    "parse_positive_int",
    "parse_positive_float",
    "parse_nonnegative_int",
    "parse_in_range",
    "parse_choice",
    "parse_tuple",
    "parse_chunks",
    "parse_voxel_size",
    "parse_phases",
    "parse_region",
    "parse_dtype",
    "parse_flag",
    "parse_axis",
    "parse_path",
]

T = TypeVar("T")


def _fail(name: str, expected: str, value: Any, exc: type[Exception] = InputError) -> Exception:
    return exc(f"Expected `{name}` {expected}. Got {value!r} instead.")


def _is_int(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def parse_positive_int(name: str, value: Any, *, most: int | None = None) -> int:
    """Return ``value`` as an ``int`` > 0 (and at most ``most``, where given)."""
    if not _is_int(value) or value <= 0:
        raise _fail(name, "to be a positive integer", value)
    return _at_most(name, value, most)


def parse_nonnegative_int(name: str, value: Any, *, most: int | None = None) -> int:
    """Return ``value`` as an ``int`` >= 0 (and at most ``most``, where given)."""
    if not _is_int(value) or value < 0:
        raise _fail(name, "to be a non-negative integer", value)
    return _at_most(name, value, most)


def _at_most(name: str, value: Any, most: int | None) -> int:
    """``int(value)``, refused above ``most``: a count far beyond any meaningful one (``epochs=10**12``)
    was accepted at the call, then hung or failed in the work it started."""
    if most is not None and value > most:
        raise _fail(name, f"to be at most {most:,}", value)
    return int(value)


def parse_path(name: str, value: Any) -> Any:
    """Return ``value`` as a :class:`pathlib.Path`: a ``str`` or ``os.PathLike``, not empty (``5``
    raised Python's TypeError, naming no argument; ``""`` is the working directory)."""
    import os
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise _fail(name, "to be a path (str or os.PathLike)", value)
    return Path(value)


def parse_flag(name: str, value: Any) -> bool:
    """Return ``value`` as a ``bool``: only ``True`` or ``False`` (NumPy's too), never a truthy
    stand-in (``overwrite="no"`` would replace a user's data; ``1`` may mean a count)."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise _fail(name, "to be True or False", value)
    return bool(value)


#: the spatial axes of a volume, in its axis order
AXES = ("z", "y", "x")


def parse_axis(name: str, value: Any, *, what: str = "") -> int:
    """A spatial axis, ``"z"``/``"y"``/``"x"`` or 0/1/2 (the volume's axis order), → 0/1/2 (``what``
    it is, for the message): the same two spellings for every function taking one."""
    if _is_int(value) and 0 <= int(value) < 3:
        return int(value)
    if isinstance(value, str) and value in AXES:
        return AXES.index(value)
    raise _fail(name, "to be 'z', 'y' or 'x' (or 0, 1 or 2)" + (f", {what}" if what else ""), value)


def parse_dtype(name: str, value: Any) -> Any:
    """Return ``value`` as a NumPy dtype (``'uint16'``, ``'<u2'``, ``np.float32``...)."""
    import numpy as np

    try:
        return np.dtype(value)
    except (TypeError, ValueError):
        raise _fail(name, "to be a NumPy dtype such as 'uint16', 'float32' or '<u2'", value) from None


def _float(value: Any) -> float:
    """``float(value)`` for a number; text (``"0.5"``, which ``float`` would read) is refused."""
    if isinstance(value, (str, bytes)):
        raise TypeError(value)
    return float(value)


def parse_finite_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite ``float`` (not text, nor a bool)."""
    try:
        f = _float(value)
    except (TypeError, ValueError):
        raise _fail(name, "to be a finite number", value) from None
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not math.isfinite(f):
        raise _fail(name, "to be a finite number", value)
    return f


def parse_positive_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite ``float`` > 0."""
    try:
        f = _float(value)
    except (TypeError, ValueError):
        raise _fail(name, "to be a positive number", value) from None
    if isinstance(value, bool) or not math.isfinite(f) or f <= 0:
        raise _fail(name, "to be a positive finite number", value)
    return f


def parse_in_range(
    name: str, value: Any, low: float, high: float, *, closed: str = "left"
) -> float:
    """Return ``value`` as a float inside ``[low, high)`` (``closed`` = left|right|both|neither)."""
    try:
        f = _float(value)
    except (TypeError, ValueError):
        raise _fail(name, f"to be a number in {_interval(low, high, closed)}", value) from None
    lo_ok = f >= low if closed in ("left", "both") else f > low
    hi_ok = f <= high if closed in ("right", "both") else f < high
    if isinstance(value, bool) or not (lo_ok and hi_ok):
        raise _fail(name, f"in {_interval(low, high, closed)}", value)
    return f


def _interval(low: float, high: float, closed: str) -> str:
    left = "[" if closed in ("left", "both") else "("
    right = "]" if closed in ("right", "both") else ")"
    return f"{left}{low:g}, {high:g}{right}"


def parse_choice(name: str, value: Any, choices: Iterable[T]) -> T:
    """Return ``value`` if it is one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise _fail(name, f"to be one of {options}", value)
    return value


def parse_tuple(name: str, value: Any, ndim: int, parse_item, *, what: str | None = None) -> tuple:
    """Broadcast a scalar to ``ndim`` items or check a sequence's length, parsing each item
    (``what`` they must be, for the message; default positive integers or positive values, by
    ``parse_item``)."""
    if what is None:  # (a median's size=3.0 was told to hold "3 positive values")
        what = "positive integers" if parse_item is parse_positive_int else "positive values"
    if isinstance(value, (str, bytes)):
        raise _fail(name, f"to be a number or a sequence of {ndim} numbers", value)
    if isinstance(value, Sequence) or hasattr(value, "__len__"):
        items = list(value)
        if len(items) != ndim:
            raise _fail(name, f"to have {ndim} values (one per axis)", value)
    else:
        items = [value] * ndim
    out = []
    for item in items:
        try:
            out.append(parse_item(name, item))
        except InputError:
            raise _fail(name, f"to hold {ndim} {what}", value) from None
    return tuple(out)


def whole_numbers(value: Any, ndim: int) -> tuple[int, ...] | None:
    """``value`` (an int, broadcast to ``ndim``, or a sequence) as a tuple of ints when every item
    is a whole number (64.0 too), else None: a string is never read digit by digit ("64" as
    (6, 4)), 32.5 is not 32, ``True`` is not 1. The length is the caller's to check."""
    if _is_int(value):
        return (int(value),) * ndim
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__iter__"):
        return None
    try:
        items = list(value)
        if any(isinstance(v, (str, bytes, bool)) or float(v) != int(v) for v in items):
            return None
        return tuple(int(v) for v in items)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_chunks(value: Any, ndim: int, *, name: str = "chunks") -> tuple[int, ...]:
    """Chunk edge lengths: an int for every axis or one int per axis, each > 0."""
    if value is None:
        raise _fail(name, "to be a positive integer or one per axis", value)
    return parse_tuple(name, value, ndim, parse_positive_int)


def parse_voxel_size(value: Any, *, name: str = "voxel_size") -> tuple[float, float, float]:
    """Voxel edge lengths (z, y, x): one positive number (isotropic) or three."""
    return parse_tuple(name, value, 3, parse_positive_float)  # type: ignore[return-value]


def parse_phases(value: Any, *, name: str = "phases") -> list[str]:
    """Phase names indexed by label value: a non-empty list of distinct non-empty strings."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _fail(name, "to be a list of phase names", value)
    names = list(value)
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise _fail(name, "to be a non-empty list of distinct phase names", value)
    if len(names) > 255:
        raise _fail(name, "to have at most 255 phases (255 is reserved for 'unlabelled')", value)
    return names


def parse_shells_spec(name: str, value: Any) -> tuple[str, str, float]:
    """``"AROUND:OF:MAX"`` (e.g. ``"active:cbd:10"``) → (around, of, max_distance) for
    :func:`bigseg.measure.shells`; the phases are checked against the labels there."""
    parts = value.split(":") if isinstance(value, str) else []
    try:
        around, of, top = parts
        dist = float(top)
    except ValueError:
        raise InputError(f"Expected `{name}` as AROUND:OF:MAX, e.g. active:cbd:10. Got {value!r} instead.") from None
    if not (around and of) or not dist > 0:
        raise InputError(f"Expected `{name}` as AROUND:OF:MAX with a positive MAX, e.g. active:cbd:10. "
                         f"Got {value!r} instead.")
    return around, of, dist


def parse_region(name: str, value: Any, shape: Sequence[int]) -> tuple[slice, ...]:
    """A box inside an array of ``shape``: one ``[start, stop)`` per axis, as ``"z0:z1,y0:y1,x0:x1"``
    (an empty bound or ``":"`` = the whole axis; negative = from the end) or a sequence of
    ``slice`` / ``(start, stop)`` / ``None`` items. Returns plain slices with
    ``0 <= start < stop <= n`` (a box reaching outside the array is refused, not clipped)."""
    items: list[Any]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise _fail(name, f"to be {len(shape)} ranges such as '10:200,0:512,:'", value)
    if len(items) != len(shape):
        raise _fail(name, f"to give one range per axis ({len(shape)})", value)
    out = []
    for item, n in zip(items, shape):
        bounds: Any
        if item is None or item == "" or item == ":":
            bounds = (None, None)
        elif isinstance(item, slice):
            if item.step not in (None, 1):
                raise _fail(name, "to use no steps", value)
            bounds = (item.start, item.stop)
        elif isinstance(item, str):
            parts = item.split(":")
            if len(parts) != 2:
                raise _fail(name, "to give each range as start:stop", value)
            try:
                bounds = tuple(int(p) if p.strip() else None for p in parts)
            except ValueError:
                raise _fail(name, "to give each range as start:stop with integers", value) from None
        elif isinstance(item, Sequence) and len(item) == 2:
            bounds = tuple(item)
        else:
            raise _fail(name, "to give each range as start:stop, (start, stop), a slice or None", value)
        if not all(b is None or _is_int(b) for b in bounds):
            raise _fail(name, "to give integer bounds", value)
        a, b = (0 if bounds[0] is None else int(bounds[0])), (n if bounds[1] is None else int(bounds[1]))
        a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
        if not 0 <= a < b <= n:
            raise _fail(name, f"to select a non-empty box inside the shape {tuple(shape)}", value)
        out.append(slice(a, b))
    return tuple(out)
