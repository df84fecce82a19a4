"""The stage between a run and its renderers: the checks run once here, and every renderer
(the markdown page, the terminal summary, the JSON file, stderr) reads the same result.

The declared metrics and the report plugins come from the registry, so any plugin's metric
and figure renders without a core edit. Records of an older results file, which did not
carry their attacks' roles, get them from the registry by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.contracts.metrics import MetricSpec
from harness.contracts.records import Result, ResultSet
from harness.contracts.specs import ReportSpec
from harness.planning.registry import Registry
from harness.report.checks import Flag, codes_by_cell, run_checks
from harness.report.leaderboard import page_metrics, render


def declared_metrics(registry: Registry) -> list[MetricSpec]:
    """The metrics the attacks and defenses declared, in registration order."""
    out: list[MetricSpec] = []
    for attack in registry.attacks.values():
        out.extend(attack.metrics)
    for defense in registry.defenses.values():
        out.extend(defense.metrics)
    return out


def reports_of(registry: Registry) -> list[ReportSpec]:
    """The registered report plugins, in registration order."""
    return list(registry.reports.values())


def with_roles(results: ResultSet, registry: Registry) -> ResultSet:
    """Records that carry no roles (written before roles existed) get the roles the
    registry's spec of the same name declares now."""
    attacks, defenses = registry.attacks, registry.defenses

    def fill(r: Result) -> Result:
        changes = {}
        attack, defense = attacks.get(r.attack), defenses.get(r.defense)
        if not r.attack_roles and attack is not None and attack.roles:
            changes["attack_roles"] = tuple(sorted(attack.roles))
        if not r.defense_roles and defense is not None and defense.roles:
            changes["defense_roles"] = tuple(sorted(defense.roles))
        return r.replace(**changes) if changes else r

    return ResultSet([fill(r) for r in results.records], results.runs)


@dataclass
class Report:
    """Results with their checks done, ready for every renderer."""

    results: ResultSet
    flags: list[Flag] = field(default_factory=list)
    metrics: Mapping[str, MetricSpec] = field(default_factory=page_metrics)
    reports: Sequence[ReportSpec] = ()

    @classmethod
    def of(cls, results: ResultSet, registry: Registry) -> Report:
        """Run the checks over ``results`` (once) and collect what renders them."""
        return cls(results, run_checks(results.records),
                   page_metrics(declared_metrics(registry)), reports_of(registry))

    @property
    def flags_by_cell(self) -> dict[str, str]:
        """Cell key -> its flag codes, e.g. ``'ME'``."""
        return codes_by_cell(self.flags)

    def markdown(self, figures_stem: str | None = None) -> str:
        """The leaderboard page."""
        return render(self.results, flags=self.flags_by_cell, metrics=self.metrics,
                      reports=self.reports, figures_stem=figures_stem)

    def summary(self, width: int = 100) -> str:
        """The compact terminal summary."""
        from harness.report.summary import summary

        return summary(self.results, self.flags_by_cell, width=width, metrics=self.metrics)

    def draw(self, stem: str, folder: Path) -> list[Path]:
        """Draw the page's figures beside it; return the paths written."""
        from harness.report.figures import draw_all

        return draw_all(self.reports, self.results, stem, folder)
