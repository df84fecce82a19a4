"""Figures of a leaderboard page: planned and drawn by report plugins, embedded by the core.

A report plugin (:class:`harness.contracts.specs.ReportSpec`) plans its figures from the results
alone
(file names and captions depend only on them, so the markdown that embeds them is
deterministic) and draws them with matplotlib beside the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Figure:
    """One picture of a page: file name, caption, what to draw (the report's own ``kind``),
    and the attack ``category`` whose section of the dataset shows it (None: the first
    section, the evasion table's)."""

    filename: str
    caption: str
    kind: str
    dataset: str | None = None
    model: str | None = None
    eps: float | None = None
    category: str | None = None


def markdown(figure: Figure) -> list[str]:
    """The markdown lines that embed ``figure``."""
    return [f"![{figure.caption}]({figure.filename})", "", f"*{figure.caption}.*", ""]
