"""Input transformations get adaptive cells beside the non-adaptive ones: the plan adds them
(own keys), the evaluator crafts them on the whole pipeline (BPDA), the records, checks, pages
and the summary rows tell them apart."""

from __future__ import annotations

import torch

from harness.contracts.records import ResultSet
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig, make_plan
from harness.report.checks import flags_by_cell
from harness.report.headline import headline_rows
from harness.report.leaderboard import render
from harness.results.store import ResultStore
from harness.run.adversarial import AdversarialStore
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner

CONFIG = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm", "pgd"),
                     defenses=("none", "spatial-smoothing"), n_train=200, n_test=40, epochs=2,
                     device="cpu", checks=False, eps=(0.1, 0.2))


def test_the_plan_adds_an_adaptive_cell_per_transformation_cell_with_its_own_key():
    plan = make_plan(CONFIG, load_registry())
    modes = {(c.defense.name, c.attack.name, c.eps): [] for c in plan.cells}
    for c in plan.cells:
        modes[(c.defense.name, c.attack.name, c.eps)].append(c.adaptive)
    assert all(m == [None] for (d, _, _), m in modes.items() if d == "none")
    assert all(m == [None, "bpda"] for (d, _, _), m in modes.items()
               if d == "spatial-smoothing")
    assert len({c.key for c in plan.cells}) == len(plan.cells) == 12
    assert len(plan.jobs) == 1      # both run on the undefended model


def by_key(outcome) -> dict:
    return {r.cell_key: r for r in outcome.records}


def test_adaptive_cells_are_crafted_on_the_pipeline_and_shown_apart(isolated_home):
    store = ResultStore(isolated_home / "r.sqlite")
    outcome = Runner(CONFIG, load_registry(), store, ModelCache(isolated_home / "models"),
                     show_progress=False).run()
    by = {(r.defense, r.attack, r.eps, r.adaptive): r for r in outcome.records}
    # `harness leaderboard --db` shows both kinds of cell
    assert {r.cell_key for r in store.latest_records().records} == set(by_key(outcome))
    assert all(r.ok for r in outcome.records)
    plain = by[("spatial-smoothing", "pgd", 0.1, None)]
    adaptive = by[("spatial-smoothing", "pgd", 0.1, "bpda")]
    assert plain.clean_acc == adaptive.clean_acc
    store = AdversarialStore(isolated_home / "adversarial")
    x_plain, _ = store.load(plain.cell_key, torch.device("cpu"))
    x_adaptive, _ = store.load(adaptive.cell_key, torch.device("cpu"))
    assert not torch.equal(x_plain, x_adaptive)        # crafted on another model
    # the pipeline's FGSM through BPDA is the undefended FGSM only if smoothing were identity
    flags = flags_by_cell(outcome.records)
    rows = {(h.defense, h.eps): h for h in headline_rows(outcome.records, flags)}
    smoothing = rows[("spatial-smoothing", 0.1)]
    assert smoothing.adaptive and smoothing.attacks[1] == adaptive.robust_acc
    assert smoothing.worst is not None and smoothing.worst.n == 40
    assert smoothing.worst.robust_acc <= min(plain.robust_acc, adaptive.robust_acc)
    assert ("spatial-smoothing", 0.2) not in rows        # only the dataset's eps
    page = render(ResultSet(outcome.records, {"": {}}))
    assert "| pgd [bpda] " in page and "## Summary" in page
    assert page.index("## Summary") < page.index("### Evasion")
