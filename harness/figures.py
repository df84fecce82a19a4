"""Figures of a leaderboard page: planned and drawn by report plugins, embedded by the core.

A report plugin (:class:`harness.specs.ReportSpec`) plans its figures from the results alone
(file names and captions depend only on them, so the markdown that embeds them is
deterministic) and draws them with matplotlib beside the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.records import ResultSet
    from harness.specs import ReportSpec


@dataclass(frozen=True)
class Figure:
    """One picture of a page: file name, caption, what to draw (the report's own ``kind``)."""

    filename: str
    caption: str
    kind: str
    dataset: str | None = None
    model: str | None = None
    eps: float | None = None


def markdown(figure: Figure) -> list[str]:
    """The markdown lines that embed ``figure``."""
    return [f"![{figure.caption}]({figure.filename})", "", f"*{figure.caption}.*", ""]


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
