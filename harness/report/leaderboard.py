"""Renders result records as leaderboard markdown: per dataset, one table per attack category.

Evasion tables are ranked by robust accuracy within each eps; poisoning, inference and
extraction tables carry the metrics of their threat; pairings that cannot work are listed
under "Not applicable" with the reason.

Deterministic: the same records give byte-identical markdown (no clock, no machine state;
everything shown comes from the records and the metadata stored with them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from tabulate import tabulate

from harness.contracts.categories import CATEGORIES, STAGES, Category
from harness.contracts.figures import Figure, markdown
from harness.contracts.metrics import (
    CERTIFICATION_METRICS,
    CORE_METRICS,
    CORRUPTION_METRICS,
    EVASION_METRICS,
    HARNESS_METRICS,
    TIMING_METRICS,
    TRAILING_METRICS,
    MetricSpec,
    metric_table,
    render_metric,
)
from harness.contracts.outcomes import attack_label
from harness.contracts.provenance import named_by, provided_name
from harness.contracts.records import Result, ResultSet
from harness.contracts.specs import ReportSpec
from harness.report.checks import LEGEND, WITHHELD, flags_by_cell
from harness.report.figures import plan_figures
from harness.report.headline import (
    HeadlineRow,
    beyond_labels,
    column_names,
    defense_label,
    headline_rows,
)
from harness.report.provenance_section import footer


def eps_text(value: float | None) -> str:
    """``0.1``, or ``unbounded`` for an attack without eps."""
    return "unbounded" if value is None else f"{value:g}"


def _defense(record: Result) -> str:
    stage = STAGES.get(record.defense_stage)
    return defense_label(record) + (stage.marker if stage is not None else "")


def _status(record: Result) -> str:
    if record.status == "ok":
        return "ok"
    error = (record.error or "").replace("|", "/").replace("\n", " ")
    return f"FAILED: {error[:160]}"


# The identity columns of the evasion table; its metric columns are the evasion category's
# declared ``columns``, each rendered by its MetricSpec.
IDENTITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"), ("defense", "defense_label"), ("attack", "attack"), ("eps", "eps"))


def _sort_key(record: Result) -> tuple:
    robust = record.robust_acc if record.ok else None
    eps = record.eps
    return (eps is None, eps if eps is not None else 0.0, not record.ok,
            -(robust if robust is not None else -1.0), record.model, record.defense,
            record.attack)


def _identity_value(record: Result, key: str) -> str:
    if key == "model":
        return provided_name(record.model, record, "model")
    if key == "defense_label":
        return _defense(record)
    if key == "attack":
        return attack_label(record)
    return eps_text(record.eps)


SUMMARY_NOTE = (
    "One row per model and defense at the dataset's eps: clean accuracy, robust accuracy "
    "under the reference single-step, iterative and ensemble attacks, and the worst case: the "
    "share of the n test images that every attack of the run at that eps (all the cells of "
    "the tables below) left correctly classified; n is the number of images all those attacks "
    "saw. Each accuracy is followed by half the width of its 95% Wilson interval for the "
    "images it was measured on (±, in points). Rank: a row is ranked only when the reference "
    "ensemble (the standard AutoAttack) ran on it at that eps, through the defense (BPDA, with "
    "EoT when randomized) for an input transformation; ranked rows come first, best worst "
    "case first, and a row whose worst-case interval overlaps the one above shares its rank "
    "(=): their order is not a difference. For an input transformation (†) the attack "
    "columns show the adaptive attacks ([bpda]: crafted through the transformation). Train s: "
    "training time of the model; img/s: the iterative attack's incidental throughput.")


def rank_text(row: HeadlineRow) -> str:
    """The row's rank, or why it is not ranked."""
    return row.rank if row.not_ranked is None else f"not ranked: {row.not_ranked}"


def _headline_cells(row: HeadlineRow, beyond: list[str]) -> list[str]:
    worst = row.worst
    robust = HARNESS_METRICS["robust_acc"].render
    return [rank_text(row), row.dataset, row.model, row.defense + ("†" if row.adaptive else ""),
            eps_text(row.eps), render_metric("clean_acc", row.clean_acc, row.clean_n),
            *[robust(a, n) for a, n in row.measured()],
            robust(worst.robust_acc, worst.n) if worst else "",
            render_metric("n_test", worst.n) if worst else "",
            *[robust(*row.beside(label)) for label in beyond], row.flags,
            render_metric("train_seconds", row.train_seconds),
            render_metric("attack_images_per_s", row.images_per_s)]


def summary_section(records: list[Result], flags: Mapping[str, str]) -> list[str]:
    """The page's opening summary: :func:`harness.report.headline.headline_rows` as a table (no
    section when no cell is at its dataset's eps)."""
    rows = headline_rows(records, flags)
    if not rows:
        return []
    counted = [r for r in records if r.ok and r.robust_acc is not None
               and not r.config.get("check")]
    names = column_names(counted)
    beyond = [label for label in beyond_labels(records) if any(r.beside(label)[0] is not None
                                                               for r in rows)]
    headers = ["rank", "dataset", "model", "defense", "eps", "clean", *names, "worst case", "n",
               *beyond, "flags", "train s", f"{names[1]} img/s"]
    table = tabulate([_headline_cells(r, beyond) for r in rows], headers=headers,
                     tablefmt="github", disable_numparse=True)
    return ["## Summary", "", SUMMARY_NOTE, "", table, ""]


def dataset_table(records: list[Result], flags: Mapping[str, str],
                  metrics: Mapping[str, MetricSpec] = HARNESS_METRICS) -> str:
    """A markdown table of one dataset's evasion records: by eps, each ranked by robust
    accuracy; the metric columns are the evasion category's, rendered by ``metrics``.

    Metric columns that no record has (e.g. medians in results from an older harness) are
    left out; the checks column appears when some cell of the page has a flag.
    """
    category = CATEGORIES["evasion"]
    specs = [metrics.get(name, HARNESS_METRICS[name]) for name in category.columns
             if name in category.always or _has_value(records, name)]
    rows = []
    rank, last_eps = 0, object()
    for r in sorted(records, key=_sort_key):
        rank = rank + 1 if r.eps == last_eps else 1
        last_eps = r.eps
        check = [flags.get(r.cell_key, "")] if flags else []
        rows.append([rank, *[_identity_value(r, key) for _, key in IDENTITY_COLUMNS],
                     *[m.render(r.value(m.name)) for m in specs], *check, _status(r)])
    headers = ["rank", *[h for h, _ in IDENTITY_COLUMNS], *[m.label for m in specs],
               *(["checks"] if flags else []), "status"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def checks_legend(records: list[Result], flags: Mapping[str, str]) -> str:
    """What each flag raised in ``records`` means ('' when none was raised)."""
    codes = sorted({c for r in records for c in flags.get(r.cell_key, "")})
    return "\n".join(f"- **{c}**: {LEGEND[c]}" for c in codes)


def _has_value(records: list[Result], key: str) -> bool:
    for r in records:
        v = r.value(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v):
            return True
    return False


def category_table(records: list[Result], category: str,
                   metrics: Mapping[str, MetricSpec],
                   flags: Mapping[str, str] | None = None) -> str:
    """A markdown table of one dataset's records of a non-evasion ``category``, with a checks
    column when ``flags`` (cell key -> codes) has any of them; a cell flagged with a code of
    :data:`WITHHELD` shows no numbers but its n."""
    given = flags or {}
    flags = {r.cell_key: given[r.cell_key] for r in records if r.cell_key in given}
    metrics = _described(records, CATEGORIES[category], metrics)
    keys = list(CATEGORIES[category].columns or ("clean_acc",))
    trailing = {m.name for m in TRAILING_METRICS}
    present = {k for r in records for k in r.metrics}
    extra = sorted((present & set(metrics)) - set(keys) - trailing, key=list(metrics).index)
    keys = [k for k in keys + extra if _has_value(records, k)]
    keys += [m.name for m in TRAILING_METRICS if m.name not in keys
             and m.name not in CATEGORIES[category].columns and _has_value(records, m.name)]
    details = CATEGORIES[category].details and any(set(r.metrics) - set(metrics)
                                                   for r in records)
    rows = []
    for r in sorted(records, key=lambda r: (r.model, r.attack, not r.has_baseline_defense(),
                                            r.defense)):
        cells = [provided_name(getattr(r, kind), r, kind) for kind in ("model", "defense",
                                                                       "attack")]
        withheld = bool(WITHHELD & set(flags.get(r.cell_key, "")))
        cells += ["" if withheld and k != "n_test" else metrics[k].render(r.value(k))
                  for k in keys]
        if details:
            cells.append("" if withheld else _details(r, metrics))
        rows.append([*cells, *([flags.get(r.cell_key, "")] if flags else []), _status(r)])
    headers = ["model", "defense", "attack", *[metrics[k].label for k in keys],
               *(["details"] if details else []), *(["checks"] if flags else []), "status"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _described(records: list[Result], category: Category,
               metrics: Mapping[str, MetricSpec]) -> Mapping[str, MetricSpec]:
    """``metrics`` with the specs ``category`` gives for its records' undeclared names."""
    if category.describe is None:
        return metrics
    found = {k: category.describe(k) for r in records for k in r.metrics if k not in metrics}
    return {**metrics, **{k: spec for k, spec in sorted(found.items()) if spec is not None}}


def _details(record: Result, metrics: Mapping[str, MetricSpec]) -> str:
    """The record's metrics the leaderboard has no column for, as ``name=value``."""
    m = record.metrics
    return "; ".join(f"{k}={m[k]:.4g}" if isinstance(m[k], float) else f"{k}={m[k]}"
                     for k in sorted(m) if k not in metrics)


def not_applicable_table(records: list[Result], all_records: list[Result]) -> str:
    """The pairings left out, grouped by model, defense and reason."""
    per_category: dict[str, set[str]] = {}
    for r in all_records:
        per_category.setdefault(r.category, set()).add(provided_name(r.attack, r, "attack"))
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for r in records:
        key = (provided_name(r.model, r, "model"), provided_name(r.defense, r, "defense"),
               r.category, r.error or "")
        groups.setdefault(key, []).append(provided_name(r.attack, r, "attack"))
    rows = []
    for (model, defense, category, reason), attacks in sorted(groups.items()):
        names = sorted(set(attacks))
        everyone = per_category.get(category, set())
        what = (f"all {len(names)} {category} attacks" if len(names) > 1
                and set(names) == everyone else ", ".join(names))
        rows.append([model, defense, what, reason.replace("|", "/")])
    return tabulate(rows, headers=["model", "defense", "attacks", "why not"],
                    tablefmt="github", disable_numparse=True)


TRANSFORMATION_NOTE = ("† input transformation: evaluated against non-adaptive attacks, "
                       "crafted on the undefended model, then classified through the "
                       "transformation.")
ADAPTIVE_NOTE = ("† input transformation: each attack runs twice, crafted on the undefended "
                 "model and then classified through the transformation (non-adaptive, the "
                 "plain attack name), and crafted on the whole pipeline (adaptive: [bpda], "
                 "the backward pass through the transformation taken as the identity or its "
                 "declared approximation; [bpda+eot], gradients of the logits averaged over "
                 "random draws of a randomized transformation).")


def attack_metrics_table(records: list[Result], metrics: Mapping[str, MetricSpec]) -> list[str]:
    """The evasion cells whose attack reported declared numbers of its own (e.g. the robust
    accuracy after each attack of an ensemble), one row each, with what each number means
    (no part when no cell has one)."""
    core = set(HARNESS_METRICS)
    keys = [k for k in metrics if k not in core and any(k in r.metrics for r in records)]
    if not keys:
        return []
    rows = [[provided_name(r.model, r, "model"), _defense(r), attack_label(r), eps_text(r.eps),
             render_metric("n_test", r.n_test or None), render_metric("robust_acc", r.robust_acc),
             *[metrics[k].render(r.metrics.get(k)) for k in keys]]
            for r in sorted(records, key=_sort_key) if r.ok and set(keys) & set(r.metrics)]
    headers = ["model", "defense", "attack", "eps", "n test", "robust acc",
               *[metrics[k].label for k in keys]]
    meaning = [f"- **{metrics[k].label}**: {metrics[k].description}" for k in keys
               if metrics[k].description]
    return ["Numbers the attacks measured themselves:", "",
            tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), "",
            *([*meaning, ""] if meaning else [])]


def dataset_section(records: list[Result], flags: Mapping[str, str],
                    metrics: Mapping[str, MetricSpec], figures: Sequence[Figure] = ()
                    ) -> list[str]:
    """The markdown parts of one dataset: a table per category (the evasion table followed
    by ``figures``), then the n/a pairings."""
    parts: list[str] = []
    applicable = [r for r in records if r.status != "n/a"]
    skipped = [r for r in records if r.status == "n/a"]
    shown = {r.category for r in applicable}
    first = next((name for name in CATEGORIES if name in shown), None)
    for name, category in CATEGORIES.items():
        rows = [r for r in applicable if r.category == name]
        if not rows:
            continue
        if category.derive is not None:
            rows = category.derive(rows)
        parts += [f"### {category.title}", ""]
        if category.per_eps:
            page_flags = {r.cell_key: flags[r.cell_key] for r in rows if r.cell_key in flags}
            parts += [dataset_table(rows, page_flags, metrics), ""]
            legend = checks_legend(rows, flags)
            if legend:
                parts += ["Checks that failed (flags in the checks column):", "", legend, ""]
            parts += attack_metrics_table(rows, metrics)
            for figure in figures:
                if (figure.category or first) == name:
                    parts += markdown(figure)
            if any(STAGES[r.defense_stage].marker for r in rows if r.defense_stage in STAGES):
                adaptive = any(r.adaptive for r in rows)
                parts += [ADAPTIVE_NOTE if adaptive else TRANSFORMATION_NOTE, ""]
        else:
            parts += [category.note, "", category_table(rows, name, metrics, flags), ""]
            for figure in figures:
                if (figure.category or first) == name:
                    parts += markdown(figure)
            legend = checks_legend(rows, flags)
            if legend:
                parts += ["Checks that failed (flags in the checks column):", "", legend, ""]
    if skipped:
        parts += ["### Not applicable", "", "Pairings the plan left out, and why.", "",
                  not_applicable_table(skipped, records), ""]
    return parts


def page_metrics(declared: Iterable[MetricSpec] = ()) -> dict[str, MetricSpec]:
    """The metric table of a page: the evaluators' metrics, then ``declared`` (the plugins'),
    then the trailing ones (n test, seconds) and the timings."""
    return metric_table(EVASION_METRICS, CORE_METRICS, CERTIFICATION_METRICS,
                        CORRUPTION_METRICS, declared, TRAILING_METRICS, TIMING_METRICS)


INTRO = ("Accuracies are on the test images (n test); robust acc is the accuracy on the "
         "adversarial examples, attack success the share of correctly classified images the "
         "attack turns wrong. eps is in pixel units of [0, 1]. Throughput: training images "
         "(each original image once per epoch) and attacked test images per second, on the "
         "hardware below; these are incidental timings of a single run, taken while other "
         "work shared the machine, not comparable between cells: the throughput measured "
         "side by side with ART and torchattacks is on the harness's page "
         "leaderboards/throughput.md.")


def render(results: ResultSet, *, flags: Mapping[str, str] | None = None,
           metrics: Mapping[str, MetricSpec] | None = None, reports: Sequence[ReportSpec] = (),
           title: str = "Adversarial robustness leaderboard",
           figures_stem: str | None = None) -> str:
    """The whole leaderboard page for ``results``.

    ``flags`` are the checks' flags (computed here when not given); ``metrics`` the declared
    metrics (default: the evaluators' only). With ``figures_stem`` the page embeds the
    figures the ``reports`` plan for that stem (the page's file name without ``.md``), which
    :func:`harness.contracts.figures.draw_all` draws beside the page.
    """
    records = results.records
    flags = flags_by_cell(records) if flags is None else flags
    metrics = metrics if metrics is not None else page_metrics()
    by_dataset: dict[str, list[Result]] = {}
    for r in records:
        by_dataset.setdefault(r.dataset, []).append(r)
    parts = [f"# {title}", ""]
    if not records:
        parts += ["No results yet: run `harness bench`.", ""]
        return "\n".join(parts)
    figures = plan_figures(reports, results, figures_stem) if figures_stem else {}
    parts += [INTRO, "", *summary_section(records, flags)]
    for figure in figures.get(None, []):
        parts += markdown(figure)
    for dataset in sorted(by_dataset):
        parts += [f"## {named_by(dataset, by_dataset[dataset], 'dataset')}", "",
                  *dataset_section(by_dataset[dataset], flags, metrics,
                                   figures.get(dataset, []))]
    parts += ["## Provenance", "", footer(results), ""]
    return "\n".join(parts)
