"""Rows and fitted plain-text layout of ``harness list`` and ``harness plugins``.

The rows are what ``--json`` prints; the layouts keep every line within the terminal width
(long names and descriptions end in "…"), so the default listings read in a normal terminal
and the wide tables stay one flag away (``--long``, ``--verbose``). :func:`fit_table` and
:func:`clip` are the shared layout, also used by the terminal summary of ``harness bench``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from harness.contracts.categories import answered_categories
from harness.contracts.options import Option
from harness.contracts.specs import ATTACK_CATEGORIES, DEFENSE_STAGES
from harness.planning.registry import Registry

ELLIPSIS = "…"
GAP = "  "
#: The narrowest a truncated column gets (a few letters and the ellipsis).
MIN_COLUMN = 4
#: The narrowest the wrapped "registered" column of ``harness plugins --verbose`` gets.
MIN_REGISTERED = 24
UNDECLARED_NOTE = "(options not declared; checked by the plugin)"
PASSTHROUGH_NOTE = "(other options are passed through to the wrapped library and checked there)"


def terminal_width() -> int:
    """The terminal's width in columns (``$COLUMNS`` first; 100 when unknown)."""
    return shutil.get_terminal_size((100, 24)).columns


def one_line(text: Any) -> str:
    """``text`` as one line: every run of whitespace (newlines too) becomes one space."""
    return " ".join(str(text).split())


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in "…" when it was longer."""
    if len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def fit_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, *,
              shrink: Iterable[int], right: Iterable[int] = (), rule: bool = True) -> list[str]:
    """Aligned plain-text lines of ``rows`` under ``headers``, none wider than ``width``.

    When the natural table is wider, the columns listed in ``shrink`` give up characters,
    the widest first (their cells then end in "…"); the others keep their width. ``right``
    lists the right-aligned columns; ``rule`` adds a line of dashes under the headers.
    """
    cells = [[one_line(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    shrinkable = [i for i in shrink if i < len(widths)]
    while sum(widths) + len(GAP) * (len(widths) - 1) > width:
        candidates = [i for i in shrinkable if widths[i] > MIN_COLUMN]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: (widths[i], -i))
        widths[widest] -= 1
    aligned = set(right)

    def line(values: Sequence[str]) -> str:
        parts = [clip(v, w).rjust(w) if i in aligned else clip(v, w).ljust(w)
                 for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return clip(GAP.join(parts).rstrip(), width)

    out = [line(list(headers))]
    if rule:
        out.append(clip(GAP.join("-" * w for w in widths), width))
    return out + [line(row) for row in cells]


# ---------------------------------------------------------------- rows (what --json prints)


def option_row(option: Option) -> dict[str, Any]:
    """One declared option as JSON: name, type, default (and its value on named datasets),
    help and what a value must be."""
    return {"name": option.name, "type": option.type, "default": option.default,
            "per_dataset": dict(option.per_dataset), "help": option.help,
            "describe": option.describe()}


def spec_row(kind: str, spec: Any) -> dict[str, Any]:
    """Everything ``harness list KIND --json`` says about one spec."""
    shown = spec.name
    if getattr(spec, "takes_variant", False):
        shown = f"{spec.name}:PATH" if getattr(spec, "supplied", False) else f"{spec.name}:<name>"
    row = {"name": shown,
           "description": spec.description,
           "plugin": spec.plugin.name if spec.plugin else None}
    if kind == "attack":
        row.update(category=spec.category, threat_model=spec.threat_model, norm=spec.norm,
                   bounded=spec.bounded, needs=sorted(spec.needs), targeted=spec.targeted,
                   default_eps=spec.default_eps, budget_images=spec.budget_images,
                   survey_table=spec.survey_table, limits=spec.limits)
    elif kind == "defense":
        answers = ["(reference)"] if spec.baseline else sorted(answered_categories(spec))
        row.update(stage=spec.stage, baseline=spec.baseline, answers=answers,
                   needs=sorted(spec.needs))
    elif kind == "model":
        row.update(offers=sorted(spec.offers),
                   group=SUPPLIED_GROUP if spec.supplied else TRAINED_GROUP)
    elif kind == "dataset":
        row.update(default_eps=spec.default_eps, source=spec.source)
    if kind in ("attack", "defense"):
        row["roles"] = sorted(spec.roles)
    if kind != "dataset":
        row["options"] = [option_row(o) for o in spec.options]
        if kind == "model" and spec.supplied:   # the core's options of every supplied model
            from harness.planning.supplied import SUPPLIED_OPTIONS

            row["options"] += [option_row(o) for o in SUPPLIED_OPTIONS]
        row["options_declared"] = bool(len(spec.options)) or not spec.options.passthrough
        row["options_passthrough"] = spec.options.passthrough
    return row


def spec_rows(registry: Registry, kind: str) -> list[dict[str, Any]]:
    """The rows of every registered spec of ``kind``, by name."""
    return [spec_row(kind, registry.specs[kind][name]) for name in registry.names(kind)]


def plugin_rows(registry: Registry) -> list[dict[str, Any]]:
    """Each loaded plugin (by name): distribution, version, entry point, what it registered."""
    return [{"plugin": name, "distribution": record.info.distribution,
             "version": record.info.version, "entry_point": record.info.entry_point,
             "registered": {k: sorted(v) for k, v in sorted(record.registered.items())}}
            for name, record in sorted(registry.plugins.items())]


# ---------------------------------------------------------------- harness list KIND

#: The field rows are grouped by, and the order of the groups.
TRAINED_GROUP = "trained by the harness; ARCH@FILE evaluates your weights for ARCH as they are"
SUPPLIED_GROUP = "model files, evaluated as they are: KIND:PATH (label, mean, std options)"
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "attack": ("category", ATTACK_CATEGORIES),
    "defense": ("stage", DEFENSE_STAGES),
    "model": ("group", (TRAINED_GROUP, SUPPLIED_GROUP)),
}
LONG_COLUMNS: dict[str, list[str]] = {
    "attack": ["category", "threat_model", "norm", "needs", "survey_table", "roles", "limits"],
    "defense": ["stage", "answers", "roles"],
    "model": ["offers"],
    "dataset": ["default_eps"],
}


def _groups(kind: str, rows: list[dict[str, Any]]) -> list[tuple[str | None, list[dict]]]:
    if kind not in GROUPS:
        return [(None, rows)]
    field, order = GROUPS[kind]
    found = {row[field] for row in rows}
    names = [g for g in order if g in found] + sorted(found - set(order))
    return [(g, [row for row in rows if row[field] == g]) for g in names]


def short_listing(kind: str, rows: list[dict[str, Any]], width: int) -> list[str]:
    """``name  description`` per spec, grouped by category (attacks) or stage (defenses)
    under a header line each, every line at most ``width`` characters."""
    grouped = _groups(kind, rows)
    indent = "  " if grouped[0][0] is not None else ""
    name_width = min(max((len(r["name"]) for r in rows), default=0), max(width // 3, 8))
    lines = []
    for group, members in grouped:
        if group is not None:
            lines.append(clip(f"{group} ({len(members)})", width))
        for row in members:
            name = clip(row["name"], name_width).ljust(name_width)
            room = width - len(indent) - name_width - len(GAP)
            description = clip(one_line(row["description"]), room)
            lines.append(f"{indent}{name}{GAP}{description}".rstrip())
    lines.append(clip("more: --long (every column), --options (declared options), --json",
                      width))
    return lines


def long_listing(kind: str, rows: list[dict[str, Any]]) -> str:
    """Every column, one row per spec, as wide as it needs (``--long``)."""
    from tabulate import tabulate

    columns = ["name", "description", *LONG_COLUMNS[kind]]
    table = [[", ".join(r[c]) if isinstance(r[c], list) else r[c] for c in columns]
             for r in rows]
    return tabulate(table, headers=columns, tablefmt="simple")


def _shown_default(value: Any) -> str:
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _default_text(option: dict[str, Any]) -> str:
    """``1 (digits 3, mnist 5)``: the default, and its value on the datasets that have one."""
    named = ", ".join(f"{d} {_shown_default(v)}" for d, v in option.get("per_dataset", {}).items())
    return _shown_default(option["default"]) + (f" ({named})" if named else "")


def options_listing(rows: list[dict[str, Any]], width: int) -> list[str]:
    """Each spec's declared options (name, what a value must be, default, help) under the
    spec's name and plugin, every line at most ``width`` characters."""
    lines: list[str] = []
    for row in rows:
        lines.append(clip(f"{row['name']}  (plugin {row['plugin'] or 'unknown'})", width))
        if not row["options_declared"]:
            lines.append(clip(f"  {UNDECLARED_NOTE}", width))
            continue
        if not row["options"]:
            lines.append("  (no options)")
            continue
        table = [[o["name"], o["describe"], _default_text(o), o["help"]] for o in row["options"]]
        if row.get("options_passthrough"):
            lines.append(clip(f"  {PASSTHROUGH_NOTE}", width))
        body = fit_table(["option", "value", "default", "help"], table, width - 2,
                         shrink=(3, 1, 2, 0), rule=False)
        lines += [f"  {line}".rstrip() for line in body]
    return lines


# ---------------------------------------------------------------- harness plugins


def plugin_counts(registry: Registry) -> list[str]:
    """One line per kind (``attacks: 31 (7 plugins)``), then the plugins and load errors."""
    lines = []
    for kind in registry.specs:
        owners = [r for r in registry.plugins.values() if r.registered.get(kind)]
        count = len(registry.specs[kind])
        lines.append(f"{kind}s: {count} ({len(owners)} plugin{'s' * (len(owners) != 1)})")
    distributions = {r.info.distribution for r in registry.plugins.values()}
    errors = len(registry.load_errors)
    lines.append(f"{len(registry.plugins)} plugins from {len(distributions)} "
                 f"distribution{'s' * (len(distributions) != 1)}; "
                 f"{errors} load error{'s' * (errors != 1)}")
    lines.append("more: --verbose (each plugin), --json")
    return lines


def plugin_table(rows: list[dict[str, Any]], width: int) -> list[str]:
    """The per-plugin table (``--verbose``): plugin, distribution, version and what it
    registered, the last column wrapped onto further lines to stay within ``width``."""
    headers = ["plugin", "distribution", "version", "registered"]
    fixed = [[r["plugin"], r["distribution"], r["version"]] for r in rows]
    widths = [max([len(h), *(len(f[i]) for f in fixed)]) for i, h in enumerate(headers[:3])]
    while width - sum(widths) - 3 * len(GAP) < MIN_REGISTERED and max(widths) > MIN_COLUMN:
        widths[widths.index(max(widths))] -= 1  # plugin and distribution names give way
    room = max(width - sum(widths) - 3 * len(GAP), MIN_REGISTERED)

    def line(values: Sequence[str], last: str) -> str:
        left = GAP.join(clip(v, w).ljust(w) for v, w in zip(values, widths, strict=True))
        return clip(f"{left}{GAP}{last}".rstrip(), width)

    out = [line(headers[:3], headers[3]), line(["-" * w for w in widths], "-" * room)]
    blank = [""] * 3
    for values, row in zip(fixed, rows, strict=True):
        text = "; ".join(f"{k}s: {', '.join(v)}" for k, v in row["registered"].items())
        wrapped = textwrap.wrap(text, room, break_on_hyphens=False) or [""]
        out.append(line(values, wrapped[0]))
        out += [line(blank, more) for more in wrapped[1:]]
    return out
