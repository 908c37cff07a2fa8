"""What every figure function shares: pyplot with a file-friendly backend, and the finish."""

from __future__ import annotations

import functools
import os
from typing import Any


#: The ``path`` line of every figure function's Parameters (``{path}`` in its docstring, :func:`figure_doc`)
PATH_DOC = """path : the file the figure is written to, its format by the extension (e.g. ``.png``,
        ``.pdf``; replaced whole or not at all), the figure then closed; default None: not
        written, the figure returned open (drawn once in a notebook)."""


def figure_doc(func: Any) -> Any:
    """``func`` with ``{path}`` in its docstring replaced by :data:`PATH_DOC` (unchanged otherwise)."""
    if func.__doc__:  # (python -OO strips it)
        func.__doc__ = func.__doc__.replace("{path}", PATH_DOC)
    return func


def pyplot(path: str | os.PathLike | None) -> Any:
    """``matplotlib.pyplot``, on the Agg backend when the figure goes to a file (``path``) and
    no backend was chosen yet (so that scripts and workers without a display can draw)."""
    import matplotlib

    if path is not None and matplotlib.get_backend(auto_select=False) is None:
        matplotlib.use("Agg")  # (a chosen one stays: ``use(..., force=False)`` would switch it too)
    import matplotlib.pyplot as plt

    return plt


def _label_value(name: str, index: int, phases: Any) -> int:
    """The label value a phase is drawn as: its name's place in ``phases`` (the label image's
    phase names; or as shells, thickness and particles keep them in ``attrs``,
    :func:`bigseg.measure._metrics.phases_attr`) when given and holding it, else ``index``."""
    from ..measure._metrics import phases_of_attr

    names = (phases_of_attr(phases) or []) if phases is not None else []
    return names.index(str(name)) if str(name) in names else int(index)


def phase_rgb(name: str, index: int = 0, phases: Any = None) -> tuple[float, float, float]:
    """The (r, g, b) colour (0-1) of a phase in every figure: the fixed colour of its name
    (:func:`bigseg.io.phase_colour`), else the colour of its label value, as the label slices
    and the OME-Zarr metadata draw it. That value is the name's place in ``phases`` (the label
    image's phase names) when given and holding it, else ``index``: a figure that draws a
    subset of the phases (shells, thickness, particles) passes the whole list, so that a phase
    not named pore / cbd / active has one colour everywhere."""
    from ..io import phase_colour

    return tuple(c / 255 for c in phase_colour(str(name), _label_value(name, index, phases))[:3])


#: Markers of the phases' curves, so that curves told apart by colour are told apart without it
#: too (grey-scale print, colour-vision deficiencies): by name, else by label value.
_MARKERS = {"pore": "o", "cbd": "s", "active": "^", "particle": "^"}
_EXTRA_MARKERS = ("D", "v", "P", "X")


def phase_marker(name: str, index: int = 0, phases: Any = None) -> str:
    """The matplotlib marker of a phase's curves in every figure (``"o"`` pore, ``"s"`` cbd,
    ``"^"`` active), chosen as :func:`phase_rgb` chooses its colour."""
    from ..io._volume import phase_named

    known = phase_named(_MARKERS, str(name))  # (in any case, as its colour)
    if known is not None:
        return _MARKERS[known]
    return _EXTRA_MARKERS[_label_value(name, index, phases) % len(_EXTRA_MARKERS)]


def finish(fig: Any, path: str | os.PathLike | None, *, title: str | None = None, dpi: int = 110,
           tight: bool = False, **title_kw: Any) -> Any:
    """Add the title; write ``path`` (PNG by extension; whole or not at all, see
    :func:`bigseg.runtime._files.replacing`) and close the figure when given. Returns the figure."""
    if title:
        fig.suptitle(title, **title_kw)
    if path is not None:
        import matplotlib.pyplot as plt

        from ..runtime._files import replacing

        try:  # whole or not at all: a process killed mid-write leaves no PNG cut short (an earlier one stays)
            with replacing(path) as tmp:  # (the hidden name keeps the suffix: the format)
                _save(fig, tmp, dpi=dpi, tight=tight)
        finally:
            plt.close(fig)
    fig._ipython_display_ = functools.partial(_display_once, fig)  # (a figure stays picklable)
    return fig


def _save(fig: Any, path: str | os.PathLike, *, dpi: float, tight: bool) -> None:
    """``fig.savefig(path, dpi=dpi)`` (``bbox_inches="tight"`` when ``tight``), the same image, with
    the figure drawn once: ``savefig`` with a layout engine (constrained layout) or a tight box
    first draws the whole figure without output to lay it out or to measure it, then draws it
    again, and that first drawing took about a fifth of a figure's time. Here the layout runs, or
    the box is measured, on the renderer the PNG is drawn on (at ``dpi``, as ``savefig`` does
    it), and ``savefig`` then only draws. A PNG drawn by pyplot's Agg canvas only; anything else
    (another format or backend) goes through ``savefig`` as it is."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    pad = matplotlib.rcParams["savefig.pad_inches"]
    engine = fig.get_layout_engine()
    if (not os.fspath(path).lower().endswith(".png") or type(fig.canvas) is not FigureCanvasAgg
            or getattr(fig.canvas, "device_pixel_ratio", 1) != 1 or (tight and isinstance(pad, str))
            or matplotlib.rcParams["savefig.bbox"] == "tight" or (engine is None and not tight)
            or matplotlib.rcParams["figure.constrained_layout.use"] or matplotlib.rcParams["figure.autolayout"]):
        fig.savefig(os.fspath(path), dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
        return
    shown = fig.dpi
    try:
        fig.set_dpi(dpi)  # (the figure's dpi while it is saved: its renderer's size and the text's)
        renderer = fig.canvas.get_renderer()
        if engine is not None and fig.axes:
            try:
                engine.execute(fig)  # as Figure.draw lays it out before it draws
            except ValueError:  # (Figure.draw goes on without the layout too)
                pass
        box = fig.get_tightbbox(renderer).padded(pad) if tight else None
    finally:
        fig.set_dpi(shown)
    fig.set_layout_engine(None)  # laid out: savefig draws once (None is no engine: rc asks for none, above)
    try:
        fig.savefig(os.fspath(path), dpi=dpi, **({"bbox_inches": box} if tight else {}))
    finally:
        fig.set_layout_engine(engine)  # (a figure shown or saved again lays itself out as before)


def _display_once(fig: Any) -> None:
    """A figure shown in a notebook (a cell's last line, or drawn by the backend at the end of
    the cell): taken from pyplot and drawn here as a PNG, once (as the cell's value it was drawn
    a second time by the backend; assigning it was the way round)."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    plt.close(fig)  # (nothing left for the backend to draw at the end of the cell)
    png = io.BytesIO()
    fig.savefig(png, format="png", bbox_inches="tight")
    display(Image(png.getvalue()))
