"""Figures and the HTML report (fixed phase colours in every figure)."""

from ._agreement import agreement_figure
from ._html import connectivity_table, read_metrics, run_summary, thickness_table, write_report
from ._metrics import metrics_figure
from ._particles import particle_figure
from ._profile import profile_figure
from ._rve import rve_figure
from ._series import series_figure
from ._shells import shells_figure
from ._slices import fov_figure, label_rgba, orthoslices, timeslices
from ._thickness import thickness_figure

__all__ = ["agreement_figure", "fov_figure", "orthoslices", "timeslices", "label_rgba", "particle_figure", "metrics_figure", "profile_figure", "rve_figure", "series_figure", "shells_figure", "thickness_figure", "write_report", "read_metrics", "run_summary", "connectivity_table", "thickness_table"]
