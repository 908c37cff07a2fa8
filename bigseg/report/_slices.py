"""Orthogonal slices of a tomogram beside its labels, in the fixed phase colours."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._parse import _fail, _is_int, parse_nonnegative_int
from ..errors import InputError
from ..io import UNLABELLED, as_volume, phase_colour
from ..io._volume import time_unit
from ._figure import figure_doc, finish, pyplot
from ._units import quantity_text, scale_bar, time_at, time_text, voxel_text

__all__ = ["orthoslices", "timeslices", "label_rgba", "fov_figure"]


def label_rgba(labels: np.ndarray, phases: list[str]) -> np.ndarray:
    """(…, 4) float RGBA image of integer labels with each phase's fixed colour
    (:func:`bigseg.io.phase_colour`); 255 (unlabelled) is transparent grey.

    Parameters
    ----------
    labels : integer label array (values 0..len(phases)-1 and 255), any shape.
    phases : phase names by label value (their colours by name, else by value).

    Returns
    -------
    float64 array of shape ``labels.shape + (4,)``, values in [0, 1].
    """
    lut = np.zeros((256, 4), dtype=np.float64)
    for i, name in enumerate(phases):
        lut[i] = np.asarray(phase_colour(name, i)) / 255.0
    lut[UNLABELLED] = np.asarray(phase_colour("unlabelled", UNLABELLED)) / 255.0
    return lut[np.asarray(labels).astype(np.uint8)]


_THIN = 0.2  # an image shown less high than this share of its width is a sliver: its scale bar goes below it


def _add_scale_bar(ax: Any, pixels: int, voxel: float, unit: str, *, height: float | None = None) -> None:
    """A scale bar (white on a dark box, lower right) on an image ``pixels`` wide whose pixels
    are ``voxel`` ``unit`` wide along the horizontal axis. ``height``: the image's shown height
    as a share of its width; a sliver (a few slices of a thin volume) gets the bar below it,
    where it covers neither the image nor its title."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length, label = scale_bar(pixels * voxel, unit)
    below = height is not None and height < _THIN
    where = ({"loc": "upper right", "bbox_to_anchor": (1.0, 0.0), "bbox_transform": ax.transAxes, "borderpad": 0.2}
             if below else {"loc": "lower right"})
    bar = AnchoredSizeBar(ax.transData, length / voxel, label, pad=0.3, sep=3, color="white", frameon=True,
                          size_vertical=max(pixels / 100, 0.5),
                          fontproperties={"size": 8}, **where)
    bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")
    ax.add_artist(bar)


def _legend_handles(slices: Any, phases: list[str]) -> list:
    """Legend patches of every phase of ``phases`` in order, in their fixed colours, whichever
    ``slices`` (label arrays) hold, so that the legend is the same beside every slice drawn (it
    listed the phases present in the slices: another legend for each); then of values beyond
    ``phases`` and of the unlabelled voxels (255: outside the field of view, not annotated), when
    ``slices`` hold any."""
    from matplotlib.patches import Patch

    present = set(np.unique(np.concatenate([np.ravel(s) for s in slices])).tolist())
    values = list(range(len(phases))) + sorted(v for v in present - {UNLABELLED} if v >= len(phases))
    handles = [Patch(color=np.asarray(phase_colour(phases[i] if i < len(phases) else f"phase{i}", i)) / 255,
                     label=phases[i] if i < len(phases) else str(i)) for i in values]
    if UNLABELLED in present:  # drawn transparent: say what the blank is
        handles.append(Patch(facecolor="white", edgecolor="0.5", label="unlabelled"))
    return handles


def _position(vol: Any, dim: str, index: int) -> str:
    """``": 800 nm"``: where slice ``index`` along ``dim`` lies in physical units (its coordinate,
    so a cropped volume's slice reads in the source's frame); ``""`` where that says nothing more
    than the index (no voxel size, no offset)."""
    if dim not in getattr(vol, "coords", {}):
        return ""
    value = float(vol[dim].values[index])
    unit = str(vol.attrs.get("unit", "voxel"))
    if unit == "voxel" and value == index:
        return ""
    return f": {quantity_text(value, unit)}"


def _time_step(t: Any, nt: int) -> int:
    """``t`` as the index of one of a series' ``nt`` steps (negative counts from the end); a
    step the series lacks, or one that is no integer, is refused (was wrapped round: t=5 of
    3 steps showed step 2; t=1.5 showed step 1)."""
    if not _is_int(t) or not -nt <= t < nt:
        raise _fail("t", f"to be a time step of the series' {nt} (an integer in [{-nt}, {nt}))", t)
    return int(t) % nt


def _slices(vol, t: int | None, index: tuple[int, int, int]):
    data = vol.data if vol.ndim == 3 else vol.data[t]
    z, y, x = index
    import dask

    return dask.compute(data[z], data[:, y], data[:, :, x])


@figure_doc
def orthoslices(
    image: Any,
    labels: Any = None,
    *,
    path: str | os.PathLike | None = None,
    index: tuple[int, int, int] | None = None,
    t: int = -1,
    phases: list[str] | None = None,
    title: str | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    dpi: int = 110,
    before: Any = None,
):
    """Figure of the three orthogonal central slices (xy, xz, yz) of a volume, with the labels'
    slices beside them in the fixed phase colours and a legend.

    Only the six slices are read (never the whole volume).

    Parameters
    ----------
    image : DataArray / dask / NumPy, (z, y, x) or (t, z, y, x) grey values; may be None when
        only ``labels`` are shown
    labels : same shape, integer labels, optional
    {path}
    index : (z, y, x) voxel indices of the slices; default the centre
    t : time step of a series (negative counts from the end; default -1, the last)
    phases : phase names; default ``labels.attrs["phases"]`` or pore/cbd/active
    title : text above the line saying which slices are shown; default None: that line only.
    percentiles : (low, high) in [0, 100]: grey window of the image from these percentiles of
        the shown slices (default (0.5, 99.5))
    dpi : resolution of the written file, dots per inch (default 110).
    before : grey values of the same shape before a filter made ``image``: drawn above it, in the
        image's grey window (what the filter changed shows as it is), or in its own where the two
        windows share less than half the narrower one (other units: raw counts normalised to [0, 1])

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    plt = pyplot(path)

    if image is None and labels is None:
        raise InputError("Expected `image` or `labels`. Got None for both instead.")
    if before is not None and image is None:
        raise InputError("Expected `image` with `before` (the grey values after the filter). Got None instead.")
    vols = []
    ref = None
    for name, v in (("image", image), ("labels", labels), ("before", before)):
        if v is None:
            vols.append(None)
            continue
        vol = as_volume(v, name=name, allow_series=True)
        if ref is not None and tuple(vol.shape) != tuple(ref.shape):
            raise InputError(f"Expected `{name}` to have the image's shape {ref.shape}. Got {vol.shape} instead.")
        ref = vol if ref is None else ref
        vols.append(vol)
    shape3 = ref.shape[-3:]
    if ref.ndim == 4:
        t = _time_step(t, ref.shape[0])
    if index is None:
        index = tuple(s // 2 for s in shape3)
    if not isinstance(index, (tuple, list, np.ndarray)):  # (a bare 5 was a TypeError: 'int' object is not iterable)
        raise _fail("index", "to be (z, y, x)", index)
    index = tuple(parse_nonnegative_int("index", i) for i in index)  # (int(i) first let 2.7 through as 2)
    if len(index) != 3 or any(i >= s for i, s in zip(index, shape3)):
        raise InputError(f"Expected `index` to be (z, y, x) inside {shape3}. Got {index!r} instead.")
    vs = ref.attrs.get("voxel_size", (1.0, 1.0, 1.0))
    unit = ref.attrs.get("unit", "voxel")
    rows = [(kind, v) for kind, v in (("before", vols[2]), ("image", vols[0]), ("labels", vols[1])) if v is not None]
    window = None  # the image's grey window, for the row before it too

    def grey_window(slices: Any) -> np.ndarray:  # a NaN fill outside a field of view is no grey value
        return np.nanpercentile(np.concatenate([np.ravel(s).astype(np.float64) for s in slices]), percentiles)

    fig, axes = plt.subplots(len(rows), 3, figsize=(12.5, 4.3 * len(rows) + 0.4), squeeze=False,
                             gridspec_kw={"wspace": 0.06, "hspace": 0.12})
    names = ["xy (z = {}{})", "xz (y = {}{})", "yz (x = {}{})"]
    # physical aspect: xy plane (y rows, x cols), xz (z rows, x cols), yz (z rows, y cols)
    aspects = [vs[1] / vs[2], vs[0] / vs[2], vs[0] / vs[1]]
    for r, (kind, vol) in enumerate(rows):
        is_labels = kind == "labels"
        sl = _slices(vol, t if vol.ndim == 4 else None, index)
        if is_labels:
            ph = phases or vol.attrs.get("phases") or ["pore", "cbd", "active"]
            imgs = [label_rgba(s, ph) for s in sl]
            for c in range(3):
                axes[r, c].imshow(imgs[c], interpolation="nearest", aspect=aspects[c])
            axes[r, 2].legend(handles=_legend_handles(sl, ph), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                              frameon=False)
        else:
            own = grey_window(sl)
            if window is None:
                window = own if kind == "image" else grey_window(_slices(vols[0], t if vol.ndim == 4 else None, index))
            shared = (min(own[1], window[1]) - max(own[0], window[0])  # half the narrower window in common
                      >= 0.5 * min(own[1] - own[0], window[1] - window[0]))
            lo, hi = window if kind == "image" or shared else own
            for c in range(3):
                im = axes[r, c].imshow(sl[c], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect=aspects[c])
            # the bar as high as the row's highest slice (an inset of a sliver would be a sliver)
            for ax in axes[r]:
                ax.apply_aspect()
            boxes = [ax.get_position() for ax in axes[r]]
            tall = max(boxes, key=lambda b: b.height)
            cax = fig.add_axes((boxes[2].x1 + 0.01, tall.y0, 0.012, tall.height))
            bar = fig.colorbar(im, cax=cax)
            bar.set_label(f"grey value (window: {percentiles[0]:g}–{percentiles[1]:g}th percentile"
                          f"{' after' if kind == 'before' and shared else ''})", fontsize=8)
        for c in range(3):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[c].format(index[c], _position(ref, "zyx"[c], index[c])), fontsize=10)
                horizontal = 1 if c == 2 else 2  # x across the xy and xz planes, y across yz
                vertical = 1 if c == 0 else 0
                _add_scale_bar(ax, shape3[horizontal], float(vs[horizontal]), unit,
                               height=shape3[vertical] * aspects[c] / shape3[horizontal])
        axes[r, 0].set_ylabel(kind if kind != "image" else "after" if vols[2] is not None else "tomogram", fontsize=11)
    size = (f"voxels of {voxel_text(vs, unit)}" if unit != "voxel"
            else "voxels (no voxel size: lengths in voxels)")
    sub = f"{'x'.join(str(s) for s in shape3)} {size}" + (f", t = {time_at(ref.t, t)}" if ref.ndim == 4 and "t" in ref.coords
                                                                     else f", time step {t}" if ref.ndim == 4 else "")
    return finish(fig, path, title=f"{title}\n{sub}" if title else sub, dpi=dpi, tight=True, fontsize=11)


_PLANES = {"xy": 0, "xz": 1, "yz": 2}


@figure_doc
def timeslices(
    image: Any,
    labels: Any = None,
    *,
    path: str | os.PathLike | None = None,
    plane: str = "xy",
    index: int | None = None,
    steps: int = 8,
    phases: list[str] | None = None,
    title: str | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    dpi: int = 110,
):
    """The same slice at every time step of a (t, z, y, x) series, side by side: the tomogram
    (one grey window for all steps, so brightness changes show) above its labels.

    Parameters
    ----------
    image, labels : (t, z, y, x) series (either may be None, not both); same shape
    {path}
    plane : ``"xy"`` (default), ``"xz"`` or ``"yz"``
    index : voxel index of the slice along the plane's normal axis (default the centre)
    steps : at most this many time steps, evenly spaced, first and last included (default 8)
    phases : phase names; default ``labels.attrs["phases"]`` or pore/cbd/active
    title : text before the line saying which slice and steps are shown; default None: that
        line only.
    percentiles : (low, high) in [0, 100]: one grey window for every step, from these
        percentiles of the shown slices (default (0.5, 99.5))
    dpi : resolution of the written file, dots per inch (default 110).

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given). Only the shown slices are read.
    """
    import dask

    from .._parse import parse_choice, parse_positive_int

    plt = pyplot(path)

    plane = parse_choice("plane", plane, list(_PLANES))
    steps = parse_positive_int("steps", steps)
    vols = [as_volume(v, name=n, ndim=4) if v is not None else None for n, v in (("image", image), ("labels", labels))]
    shown = [v for v in vols if v is not None]
    if not shown:
        raise InputError("Expected `image` or `labels`. Got None for both instead.")
    ref = shown[0]
    if len(shown) == 2 and tuple(shown[1].shape) != tuple(ref.shape):
        raise InputError(f"Expected `labels` to have the image's shape {ref.shape}. Got {shown[1].shape} instead.")
    axis = _PLANES[plane]
    n_axis = ref.shape[1 + axis]
    index = n_axis // 2 if index is None else parse_nonnegative_int("index", index)
    if index >= n_axis:
        raise InputError(f"Expected `index` in [0, {n_axis}) for plane {plane!r}. Got {index} instead.")
    nt = ref.shape[0]
    ts = sorted(set(np.linspace(0, nt - 1, min(steps, nt)).round().astype(int).tolist()))
    cut = [slice(None)] * 3
    cut[axis] = index
    slices = [dask.compute(*[v.data[(t, *cut)] for t in ts]) if v is not None else None for v in vols]
    vs = ref.attrs.get("voxel_size", (1.0, 1.0, 1.0))
    rows_cols = [a for a in range(3) if a != axis]
    aspect = vs[rows_cols[0]] / vs[rows_cols[1]]
    tall = ref.shape[1 + rows_cols[0]] * aspect / ref.shape[1 + rows_cols[1]]  # a slice's height / width as drawn
    # each row as high as its slices are drawn (flat xz rows of a thin volume: was 2.5 in of white)
    row = 2.1 * min(max(tall, 0.4 if slices[0] is not None else 0.15), 1.6) + 0.4  # (room for the grey bar's label)
    fig, axes = plt.subplots(len(shown), len(ts), figsize=(2.4 * len(ts) + 0.8, row * len(shown) + 0.6),
                             squeeze=False, constrained_layout=True)
    tvals = ref.coords["t"].values if "t" in ref.coords else np.arange(nt)
    unit = time_unit(ref.coords["t"]) if "t" in ref.coords else ""
    r = 0
    if slices[0] is not None:
        lo, hi = np.nanpercentile(np.concatenate([np.ravel(s).astype(np.float64) for s in slices[0]]), percentiles)
        for c, s in enumerate(slices[0]):
            im = axes[r, c].imshow(s, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
        # the one window of every step: what a brightness change between steps is in grey values; as
        # high as the slices (its width a share of one slice's: was a share of the row's, so a bar 20
        # times as long sat twice as high as 3 flat xz slices, or shrank to a stub beside one step),
        # at least as high as its label on two lines
        bar = fig.colorbar(im, ax=axes[r, :], fraction=0.06 / len(ts), aspect=max(tall, 0.5) / 0.06, pad=0.01)
        bar.set_label(f"grey value (window:\n{percentiles[0]:g}–{percentiles[1]:g}th percentile)", fontsize=8)
        bar.ax.tick_params(labelsize=8)
        axes[r, 0].set_ylabel("tomogram")
        r += 1
    if slices[1] is not None:
        ph = phases or vols[1].attrs.get("phases") or ["pore", "cbd", "active"]
        for c, s in enumerate(slices[1]):
            axes[r, c].imshow(label_rgba(s, ph), interpolation="nearest", aspect=aspect)
        axes[r, 0].set_ylabel("labels")
        axes[r, -1].legend(handles=_legend_handles(slices[1], ph), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                           frameon=False, fontsize="small")
    horizontal = rows_cols[1]
    _add_scale_bar(axes[0, 0], ref.shape[1 + horizontal], float(vs[horizontal]), ref.attrs.get("unit", "voxel"),
                   height=ref.shape[1 + rows_cols[0]] * aspect / ref.shape[1 + horizontal])
    for c, t in enumerate(ts):
        axes[0, c].set_title(f"t = {time_text(tvals[t], unit)}", fontsize=10)
        for ax in axes[:, c]:
            ax.set_xticks([])
            ax.set_yticks([])
    normal = "zyx"[axis]
    sub = f"{plane} slice at {normal} = {index}{_position(ref, normal, index)}, {len(ts)} of {nt} time steps"
    return finish(fig, path, title=f"{title}: {sub}" if title else sub, dpi=dpi, fontsize=11)


@figure_doc
def fov_figure(image: Any, fov: Any, *, path: str | os.PathLike | None = None, t: int = -1,
               title: str | None = None, percentiles: tuple[float, float] = (0.5, 99.5), dpi: int = 110):
    """The middle xy slice of a tomogram with its field of view (:func:`bigseg.io.fov_mask`)
    outlined and the voxels outside it dimmed; the grey window comes from the voxels inside.
    Only that slice is read.

    Parameters
    ----------
    image : grey volume (z, y, x) or series (t, z, y, x).
    fov : the (y, x) boolean mask, True inside (:func:`bigseg.io.fov_mask`'s DataArray, whose
        ``attrs`` name the field of view, or an array).
    {path}
    t : time step of a series (negative counts from the end; default -1, the last).
    title : text above the line saying which field of view is shown; default None: that line only.
    percentiles : (low, high) in [0, 100]: the grey window from these percentiles of the voxels
        inside (default (0.5, 99.5)).
    dpi : resolution of the written file, dots per inch (default 110).

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    vol = as_volume(image, name="image", allow_series=True)
    inside = np.asarray(fov.values if hasattr(fov, "values") else fov, dtype=bool)
    if inside.shape != tuple(vol.shape[-2:]):
        raise InputError(f"Expected `fov` to have the image's (y, x) shape {tuple(vol.shape[-2:])}. "
                         f"Got {inside.shape} instead.")
    data = vol.data if vol.ndim == 3 else vol.data[_time_step(t, vol.shape[0])]
    z = data.shape[0] // 2
    sl = np.asarray(data[z].compute() if hasattr(data[z], "compute") else data[z], np.float64)
    vals = sl[inside & np.isfinite(sl)]
    lo, hi = np.percentile(vals, percentiles) if vals.size else (0.0, 1.0)
    plt = pyplot(path)
    vs = vol.attrs.get("voxel_size", (1.0, 1.0, 1.0))
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    im = ax.imshow(np.nan_to_num(sl, nan=lo), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                   aspect=vs[1] / vs[2])
    bar = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)  # the window in grey values, as the other slices
    bar.set_label(f"grey value (window: {percentiles[0]:g}–{percentiles[1]:g}th percentile inside)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    ax.imshow(np.where(inside, np.nan, 1.0), cmap="Reds", vmin=0, vmax=3, alpha=0.45, interpolation="nearest",
              aspect=vs[1] / vs[2])
    if not inside.all():
        ax.contour(inside.astype(float), levels=[0.5], colors=["tab:red"], linewidths=1.2)
    _add_scale_bar(ax, sl.shape[1], float(vs[2]), vol.attrs.get("unit", "voxel"))
    ax.set_xticks([])
    ax.set_yticks([])
    attrs = getattr(fov, "attrs", {})
    sub = (f"field of view {attrs.get('fov', 'mask')!r}: {100 * inside.mean():.1f} % of the cross-section"
           f"{'' if attrs.get('found', True) else ' (no fill found: all of it)'}; xy slice z = {z}")
    return finish(fig, path, title=f"{title}\n{sub}" if title else sub, dpi=dpi, tight=True, fontsize=10)
