"""The compact terminal summary ``harness bench`` prints: a few narrow blocks, never wider
than the terminal; the full table and the provenance stay in the markdown and JSON files.

Blocks, in order: the pages' summary rows (one per model and defense at the dataset's eps,
with the worst case over attacks); one row per evasion cell (accuracies, the change against
the baseline defense, flags); the automatic check cells; the poisoning, inference and
extraction cells with their main numbers; a line of n/a pairings and one of failures; a short
footer (throughput, training time, device, version). Deterministic: the same records, flags and
width give the same text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.contracts.categories import CATEGORIES, reports_robust_accuracy
from harness.contracts.metrics import HARNESS_METRICS, MetricSpec, render_metric
from harness.contracts.outcomes import attack_label
from harness.contracts.provenance import provided_name
from harness.contracts.records import FAILED, NOT_APPLICABLE, Result, ResultSet
from harness.contracts.roles import BASELINE
from harness.report.headline import beyond_labels, column_names, defense_label, headline_rows
from harness.report.leaderboard import eps_text
from harness.report.listing import clip, fit_table, one_line
from harness.report.provenance_section import distinct

#: How many failures the summary names (the rest are counted).
LISTED_FAILURES = 3
ERROR_CHARS = 60
# Short names of the numbers a category's summary shows.
SHORT = {"clean_acc": "clean", "attack_success_rate": "success"}
NAME_COLUMNS = (0, 1, 2, 3)  # dataset, model, defense, attack: shortened to fit


def percent(value: float | None, n: int | None = None) -> str:
    """An accuracy as every renderer shows it (the ``robust_acc`` metric's format), with half
    its 95% interval when measured on ``n`` images."""
    return render_metric("robust_acc", value, n)


def _number(name: str, value: Any, metrics: Mapping[str, MetricSpec]) -> str:
    """A plugin's metric through its declaration; an undeclared one to 4 significant digits."""
    if name in metrics:
        return metrics[name].render(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def is_check(record: Result) -> bool:
    """Whether ``record`` is an automatic check cell (the large-eps cell), not an asked one."""
    return bool(record.config.get("check"))


def _names(record: Result) -> list[str]:
    """The record's model, defense and attack as rows show them (a spec of another
    distribution than the harness's own with that distribution,
    :mod:`harness.contracts.provenance`)."""
    return [provided_name(getattr(record, kind), record, kind)
            for kind in ("model", "defense", "attack")]


def _is_baseline(record: Result) -> bool:
    return BASELINE in record.defense_roles


def _order(record: Result) -> tuple:
    return (record.dataset, record.model, not _is_baseline(record), record.defense,
            record.attack, record.eps is None, record.eps or 0.0, record.adaptive or "")


def _cell(record: Result) -> tuple:
    return (record.dataset, record.model, record.attack, record.eps)


def baselines(records: list[Result]) -> dict[tuple, Result]:
    """The baseline defense's ok record per (dataset, model, attack, eps)."""
    return {_cell(r): r for r in sorted(records, key=_order) if r.ok and _is_baseline(r)}


def delta(record: Result, reference: Mapping[tuple, Result]) -> str:
    """Robust accuracy minus the baseline defense's, in points ('' for the baseline itself
    or when there is none)."""
    base = reference.get(_cell(record))
    if (base is None or _is_baseline(record) or base.robust_acc is None
            or record.robust_acc is None):
        return ""
    return f"{100 * (record.robust_acc - base.robust_acc):+.2f}"


def evasion_block(records: list[Result], flags: Mapping[str, str], width: int) -> list[str]:
    """One row per evasion cell: names, eps, clean and robust accuracy, Δ, flags."""
    reference = baselines(records)
    rows = [[r.dataset, provided_name(r.model, r, "model"), defense_label(r), attack_label(r),
             eps_text(r.eps),
             percent(r.clean_acc), percent(r.robust_acc), delta(r, reference),
             flags.get(r.cell_key, "")] for r in records]
    headers = ["dataset", "model", "defense", "attack", "eps", "clean", "robust", "Δ base",
               "flags"]
    return fit_table(headers, rows, width, shrink=(*NAME_COLUMNS, 8), right=(4, 5, 6, 7))


def headline_block(records: list[Result], flags: Mapping[str, str], width: int) -> list[str]:
    """The pages' summary rows (:mod:`harness.report.headline`): per model and defense at the
    dataset's eps, the rank (``n/r``: not ranked, the reasons below the table), clean and
    reference-attack accuracies with half their 95% intervals, worst case, n, flags."""
    rows = headline_rows(records, flags)
    if not rows:
        return []
    names = column_names([r for r in records if not r.config.get("check")])
    beyond = [label for label in beyond_labels(records)
              if any(h.beside(label)[0] is not None for h in rows)]
    short = HARNESS_METRICS["robust_acc"].short
    table = [[h.rank or "n/r", h.dataset, h.model, h.defense + ("†" if h.adaptive else ""),
              eps_text(h.eps), short(h.clean_acc, h.clean_n),
              *[short(a, n) for a, n in h.measured()],
              short(h.worst.robust_acc, h.worst.n) if h.worst else "",
              render_metric("n_test", h.worst.n) if h.worst else "",
              *[short(*h.beside(label)) for label in beyond], h.flags] for h in rows]
    headers = ["rank", "dataset", "model", "defense", "eps", "clean", *names, "worst", "n",
               *beyond, "flags"]
    right = tuple(range(5, 11 + len(beyond)))
    reasons = sorted({h.not_ranked for h in rows if h.not_ranked})
    why = [clip(f"accuracies in %, ± half the 95% interval"
                f"{'; n/r: not ranked, ' + '; '.join(reasons) if reasons else ''}", width)]
    return [clip("Summary (at each dataset's eps; worst case over every attack):", width),
            *fit_table(headers, table, width, shrink=(2, 3, 4, 11 + len(beyond)), right=right),
            *why]


def check_block(records: list[Result], flags: Mapping[str, str], width: int) -> list[str]:
    """The automatic check cells: names, eps, robust accuracy, flags."""
    rows = [[r.dataset, *_names(r), eps_text(r.eps), percent(r.robust_acc),
             flags.get(r.cell_key, "")] for r in records]
    headers = ["dataset", "model", "defense", "attack", "eps", "robust", "flags"]
    body = fit_table(headers, rows, width, shrink=(*NAME_COLUMNS, 6), right=(4, 5))
    return [clip("Checks (automatic cells, not asked for):", width), *body]


def main_numbers(record: Result, metrics: Mapping[str, MetricSpec] = HARNESS_METRICS) -> str:
    """The numbers the record's category declares for the summary (poisoning: clean accuracy
    and attack success), else the record's first two metrics of its attack's own (each
    rendered by its declaration in ``metrics``)."""
    category = CATEGORIES.get(record.category)
    spec = {**HARNESS_METRICS, **metrics}
    if category is not None and category.summary:
        return ", ".join(f"{SHORT.get(n, n)} {_number(n, record.value(n), spec)}"
                         for n in category.summary)
    own = [(k, v) for k, v in record.metrics.items() if k not in HARNESS_METRICS][:2]
    return ", ".join(f"{name} {_number(name, value, metrics)}" for name, value in own)


def other_block(records: list[Result], flags: Mapping[str, str], width: int,
                metrics: Mapping[str, MetricSpec] = HARNESS_METRICS) -> list[str]:
    """Poisoning, inference and extraction cells with their main numbers."""
    rows = [[r.dataset, *_names(r), r.category, main_numbers(r, metrics),
             flags.get(r.cell_key, "")] for r in records]
    headers = ["dataset", "model", "defense", "attack", "category", "result", "flags"]
    return fit_table(headers, rows, width, shrink=(*NAME_COLUMNS, 5, 6))


def _where(record: Result) -> str:
    names = "/".join((record.dataset, record.model, record.defense, record.attack))
    return names if record.eps is None else f"{names} eps {record.eps:g}"


def _error(record: Result) -> str:
    return clip(one_line(record.error or "no message"), ERROR_CHARS)


def status_lines(records: list[Result], width: int) -> list[str]:
    """A line counting the n/a pairings, and the failures with the first few named."""
    lines = []
    skipped = sum(1 for r in records if r.status == NOT_APPLICABLE)
    if skipped:
        lines.append(clip(f"{skipped} pairing{'s' * (skipped != 1)} n/a (see the markdown "
                          "page's 'Not applicable')", width))
    failed = sorted((r for r in records if r.status == FAILED), key=_order)
    if len(failed) == 1:
        lines.append(clip(f"1 failed: {_where(failed[0])}: {_error(failed[0])}", width))
    elif failed:
        lines.append(f"{len(failed)} failed:")
        lines += [clip(f"  {_where(r)}: {_error(r)}", width) for r in failed[:LISTED_FAILURES]]
        if len(failed) > LISTED_FAILURES:
            lines.append(f"  and {len(failed) - LISTED_FAILURES} more (status column of "
                         "--format markdown)")
    return lines


def _short_commit(commit: Any) -> str | None:
    if not commit:
        return None
    text = str(commit)
    return text[:7] + ("+dirty" if text.endswith("+dirty") else "")


def footer(results: ResultSet, records: list[Result], width: int) -> list[str]:
    """Attack throughput and training time; device and version; where the details are."""
    timed = [(r.n_test, r.attack_seconds) for r in records
             if r.ok and reports_robust_accuracy(r.category)
             and r.n_test is not None and r.attack_seconds is not None]
    images = sum(n for n, _ in timed)
    seconds = sum(s for _, s in timed)
    trained: dict[str, float] = {}
    for r in sorted(records, key=_order):
        if r.status != NOT_APPLICABLE and r.train_key and r.train_seconds is not None:
            trained.setdefault(r.train_key, r.train_seconds)
    speed = (f"attacks {images / seconds:,.0f} images/s ({images:,} images in "
             f"{seconds:.1f} s)" if seconds > 0 else "attacks: no timed evasion cell")
    models = len(trained)
    metas = [results.metadata(r) for r in records]
    return [
        clip(f"{speed}; training {sum(trained.values()):.1f} s ({models} "
             f"model{'s' * (models != 1)})", width),
        clip(f"device {distinct([m.get('device_name') for m in metas])}; harness "
             f"{distinct([m.get('harness') for m in metas])} (git "
             f"{distinct([_short_commit(m.get('git_commit')) for m in metas])})", width),
        clip("full table: --format markdown; JSON: --json FILE", width),
    ]


def summary(results: ResultSet, flags: Mapping[str, str], *, width: int = 100,
            metrics: Mapping[str, MetricSpec] = HARNESS_METRICS) -> str:
    """The terminal summary of ``results``: no line wider than ``width``.

    ``flags`` maps a cell key to its flag codes (from the automatic checks); cells without
    flags may be missing from it. ``metrics``: the declared metrics the numbers render by.
    """
    records = sorted(results.records, key=_order)
    done = [r for r in records if r.ok]
    evasion = [r for r in done if reports_robust_accuracy(r.category) and not is_check(r)]
    checks = [r for r in done if is_check(r)]
    others = [r for r in done if not reports_robust_accuracy(r.category) and not is_check(r)]
    blocks: list[list[str]] = []
    headline = headline_block(evasion, flags, width)
    if headline:
        blocks.append(headline)
    if evasion:
        blocks.append(evasion_block(evasion, flags, width))
    if checks:
        blocks.append(check_block(checks, flags, width))
    if others:
        blocks.append(other_block(others, flags, width, metrics))
    flagged = sum(1 for r in done if flags.get(r.cell_key))
    notes = status_lines(records, width)
    if flagged:
        notes.append(clip(f"{flagged} flagged cell{'s' * (flagged != 1)}: the legend is under "
                          "the markdown table", width))
    if not done:
        notes.insert(0, "no cell produced numbers")
    if notes:
        blocks.append(notes)
    blocks.append(footer(results, records, width))
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"
