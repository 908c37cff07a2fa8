"""What every figure function shares: pyplot with a file-friendly backend, and the finish."""

from __future__ import annotations

import os
from typing import Any


def pyplot(path: str | os.PathLike | None) -> Any:
    """``matplotlib.pyplot``, on the Agg backend when the figure goes to a file (``path``) and
    no backend was chosen yet (so that scripts and workers without a display can draw)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def finish(fig: Any, path: str | os.PathLike | None, *, title: str | None = None, dpi: int = 110,
           tight: bool = False, **title_kw: Any) -> Any:
    """Add the title; write ``path`` (PNG by extension) and close the figure when given.
    Returns the figure."""
    if title:
        fig.suptitle(title, **title_kw)
    if path is not None:
        import matplotlib.pyplot as plt

        fig.savefig(os.fspath(path), dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
        plt.close(fig)
    return fig
