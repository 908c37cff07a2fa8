"""Several segmentations of one image side by side: their fractions and how many voxels differ."""

from __future__ import annotations

import os
from typing import Any

from ._figure import figure_doc, finish, phase_rgb, pyplot
from ._units import at_last_step

__all__ = ["agreement_figure", "differing_matrix"]

_HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++", "**", "||"]


def differing_matrix(ds: Any):
    """(segmentation, segmentation) percentage of differing voxels from an
    :func:`bigseg.measure.agreement` Dataset (the last time step of a series); 0 on the diagonal."""
    import numpy as np

    d = ds.isel(t=-1) if "t" in ds.dims else ds
    s = d.sizes["segmentation"]
    mat = np.zeros((s, s))
    for a, b, v in zip(d.pair_a.values, d.pair_b.values, d.differing_fraction.values):
        mat[a, b] = mat[b, a] = 100.0 * v
    return mat


@figure_doc
def agreement_figure(ds: Any, *, path: str | os.PathLike | None = None, title: str | None = None):
    """Left: each phase's volume fraction in every segmentation (hatched per segmentation, the
    phase's fixed colour) with the mean ± standard deviation; then the percentage of voxels
    that differ between each pair and, when the agreement was given a truth, each
    segmentation's IoU per phase against it. ``ds`` is :func:`bigseg.measure.agreement`'s Dataset (its
    ``segmentation`` coordinate may hold names); a series shows its last time step.

    Parameters
    ----------
    ds : the Dataset of :func:`bigseg.measure.agreement`.
    {path}
    title : text above the panels (for a series, the step shown follows it); default None: none.

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import numpy as np
    from matplotlib.patches import Patch

    d = ds.isel(t=-1) if "t" in ds.dims else ds
    names = [str(n) for n in d.segmentation.values]
    phases = [str(p) for p in d.phase.values]
    colours = [phase_rgb(p, i) for i, p in enumerate(phases)]
    s, k = len(names), len(phases)
    scored = "iou" in d  # with a truth: each segmentation's IoU per phase, the numbers it is judged by
    fig, axes = pyplot(path).subplots(1, 3 if scored else 2, figsize=(5 + 1.2 * k + 0.4 * s + (2 + 0.6 * k) * scored,
                                                                   4.2),
                                      constrained_layout=True, gridspec_kw={"width_ratios": [1.4, 1, 0.9][:2 + scored]})
    a1, a2 = axes[:2]
    width = 0.8 / s
    for j in range(s):
        x = np.arange(k) - 0.4 + width * (j + 0.5)
        # the hatch takes the edge colour: light on dark phase colours (pore), then a black outline
        hatch_colours = ["white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.4 else "black" for r, g, b in colours]
        a1.bar(x, d.volume_fraction.values[j], width=width, color=colours, edgecolor=hatch_colours,
               hatch=_HATCHES[j % len(_HATCHES)], linewidth=0)
        a1.bar(x, d.volume_fraction.values[j], width=width, fill=False, edgecolor="black")
    bars = a1.errorbar(np.arange(k), d.fraction_mean.values, yerr=d.fraction_std.values, fmt="o", color="black",
                       capsize=6)
    a1.set_xticks(np.arange(k), phases)
    a1.set_ylabel("volume fraction")
    handles = [Patch(facecolor="white", edgecolor="black", hatch=_HATCHES[j % len(_HATCHES)]) for j in range(s)]
    a1.legend(handles + [bars], names + ["mean ± std"], frameon=False, fontsize="small", loc="upper left",
              bbox_to_anchor=(1.0, 1.0))  # beside the bars, not over them
    a1.set_title("volume fractions")
    mat = differing_matrix(ds)
    top = float(mat.max()) or 1.0  # segmentations all alike: 0 at the bottom of a 0-1 scale (was -0.1 ... 0.1 %)
    im = a2.imshow(mat, cmap="viridis", vmin=0, vmax=top, aspect="auto")  # its whole panel: room for its title
    for i in range(s):
        for j in range(s):
            if i != j:
                a2.text(j, i, f"{mat[i, j]:.1f}", ha="center", va="center",
                        color="white" if mat[i, j] < 0.6 * top else "black", fontsize="small")
    a2.set_xticks(range(s), names, rotation=30, ha="right")
    a2.set_yticks(range(s), names)
    a2.set_title(f"% of voxels differing (mean {100 * float(d.mean_differing_fraction):.1f})")
    fig.colorbar(im, ax=a2, shrink=0.8).set_label("% of voxels differing")
    if scored:
        a3 = axes[2]
        iou = np.asarray(d.iou.transpose("segmentation", "phase").values, dtype=float)
        import matplotlib

        # a phase neither holds (IoU undefined): light grey, "none" (was drawn as an IoU of 0)
        magma = matplotlib.colormaps["magma"].with_extremes(bad="0.85")
        im3 = a3.imshow(np.ma.masked_invalid(iou), cmap=magma, vmin=0, vmax=1, aspect="auto")
        for i in range(s):
            for j in range(k):
                v = iou[i, j]
                a3.text(j, i, f"{v:.3f}" if np.isfinite(v) else "none", ha="center", va="center",
                        color="white" if np.isfinite(v) and v < 0.6 else "black", fontsize="small")
        a3.set_xticks(range(k), phases)
        a3.set_yticks(range(s), names)
        a3.set_title("IoU against the reference")
        fig.colorbar(im3, ax=a3, shrink=0.8).set_label("IoU")  # the scale of the colours (was none)
    last = at_last_step(ds)
    return finish(fig, path, title=(title or "") + last or None, dpi=120)
