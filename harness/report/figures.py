"""Planning and drawing the figures of a page: every report plugin's, beside the page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.contracts.figures import Figure

if TYPE_CHECKING:
    from harness.contracts.records import ResultSet
    from harness.contracts.specs import ReportSpec


def plan_figures(reports: Sequence[ReportSpec], results: ResultSet, stem: str
                 ) -> dict[str | None, list[Figure]]:
    """Every report's figures for the page ``stem``, by dataset (None: page-wide)."""
    out: dict[str | None, list[Figure]] = {}
    for report in reports:
        if report.figures is None:
            continue
        for where, figures in report.figures(results, stem).items():
            out.setdefault(where, []).extend(figures)
    return out


def draw_all(reports: Sequence[ReportSpec], results: ResultSet, stem: str,
             folder: Path) -> list[Path]:
    """Draw every figure of the page ``stem`` into ``folder``; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for report in reports:
        if report.figures is None or report.draw is None:
            continue
        for figures in report.figures(results, stem).values():
            for figure in figures:
                path = Path(folder) / figure.filename
                report.draw(results, figure, path)
                written.append(path)
    return written
