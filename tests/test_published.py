"""Every published leaderboard page is exactly what its committed JSON results render to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.contracts.records import ResultSet
from harness.planning.loading import load_registry
from harness.report.reporting import Report

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
# Pages that are not rendered from results (the index; the throughput page has its own
# generator and test, tests/test_throughput_page.py).
OTHER_PAGES = {"README", "throughput"}
PAGES = sorted(p for p in LEADERBOARDS.glob("*.md") if p.stem not in OTHER_PAGES)


def _results(*stems: str) -> ResultSet:
    """The committed results of the pages ``stems`` (every page when none is given), merged."""
    paths = [LEADERBOARDS / f"{s}.json" for s in stems] or [p.with_suffix(".json") for p in PAGES]
    merged = ResultSet()
    for path in paths:
        part = ResultSet.from_json(path.read_text())
        merged.records += part.records
        merged.runs.update(part.runs)
    return merged


def test_there_are_published_pages():
    assert {p.stem for p in PAGES} >= {"digits", "digits-all", "mnist", "fashion-mnist"}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_matches_its_results(page):
    results = ResultSet.from_json(page.with_suffix(".json").read_text())
    report = Report.of(results, load_registry())
    assert report.markdown(figures_stem=page.stem) == page.read_text()
    # a cell that failed or could not run is published with its reason
    assert all(r.ok or r.error for r in results.records)
    assert sum(r.status == "failed" for r in results.records) <= 1
    assert {r.run_id for r in results.records} <= set(results.runs)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_harness_leaderboard_rebuilds_the_page(page, tmp_path, capsys):
    out = tmp_path / page.name
    assert main(["leaderboard", "--results", str(page.with_suffix(".json")),
                 "--out", str(out)]) == 0
    assert out.read_bytes() == page.read_bytes()
    # every embedded figure is drawn, and the committed one is there beside the page
    for name in re.findall(r"\]\(([^)]+\.png)\)", page.read_text()):
        assert (tmp_path / name).stat().st_size > 5000
        assert (LEADERBOARDS / name).is_file(), f"{name} is embedded but not committed"


def test_readme_paper_comparison_is_what_the_committed_results_give():
    from harness_plugins.paper_report import comparison

    readme = (LEADERBOARDS / "README.md").read_text()
    start, end = "<!-- paper-comparison:start -->\n", "<!-- paper-comparison:end -->"
    assert start in readme and end in readme
    published = readme[readme.index(start) + len(start):readme.index(end)].strip()
    assert published == comparison(_results()).strip()


def test_issue_bars_on_real_data():
    cell = {(r.dataset, r.model, r.defense, r.attack, r.eps): r
            for r in _results("mnist", "fashion-mnist").records if r.ok}
    assert cell[("mnist", "paper-cnn", "none", "fgsm", 0.1)].clean_acc >= 0.99
    assert cell[("mnist", "paper-cnn", "advtrain", "fgsm", 0.1)].robust_acc >= 0.95
    assert cell[("fashion-mnist", "paper-cnn", "none", "fgsm", 0.1)].clean_acc >= 0.91
    assert cell[("fashion-mnist", "paper-cnn", "advtrain", "fgsm", 0.1)].robust_acc > 0.8182
    for ds in ("mnist", "fashion-mnist"):
        for attack in ("pgd", "autoattack", "art-autoattack"):
            assert (ds, "paper-cnn", "advtrain", attack, 0.1) in cell


@pytest.mark.parametrize(("stem", "defended"), [("mnist", {"advtrain", "fbf", "madry-pgd"}),
                                               ("fashion-mnist", {"advtrain", "fbf", "madry-pgd"})])
def test_page_has_the_standard_autoattack_the_worst_case_and_adaptive_rows(stem, defended):
    from harness.contracts.outcomes import worst_cases

    results = _results(stem)
    ok = [r for r in results.records if r.ok and r.model == "paper-cnn"]
    standard = {r.defense: r for r in ok if r.attack == "autoattack" and r.eps == 0.1}
    art = {r.defense: r for r in ok if r.attack == "art-autoattack" and r.eps == 0.1}
    assert {"none", *defended} <= set(standard)
    assert {"none", "advtrain"} <= set(art)
    assert all(r.n_test >= 1000 for r in standard.values())
    for defense in set(standard) & set(art):       # the same images: never weaker than ART's
        assert standard[defense].robust_acc <= art[defense].robust_acc + 0.005
    worst = {(w.defense, w.eps): w for w in worst_cases(ok)}
    assert worst[("fbf", 0.1)].robust_acc <= standard["fbf"].robust_acc
    assert {r.defense for r in ok if r.adaptive == "bpda"} == {
        "feature-squeezing", "spatial-smoothing", "jpeg"}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_published_commands_name_no_absolute_path_of_the_machine_that_ran_them(page):
    results = ResultSet.from_json(page.with_suffix(".json").read_text())
    for meta in results.runs.values():
        absolute = [t for t in str(meta.get("command", "")).split() if t.startswith("/")]
        assert not absolute, f"{page.name}: {absolute} (use ../shared/data, relative paths)"


def test_imagenette_page_has_the_papers_imagenet_row_in_kind():
    """Issue 12: none, advtrain and fbf with FGSM, PGD (all 3,925 validation images) and the
    standard AutoAttack at eps 0.03, 4/255 beside it, a timm model trained from scratch, the
    image size and the peak memory in every record, colour examples with class names."""
    ok = [r for r in _results("imagenette").records if r.ok and r.dataset == "imagenette"]
    cell = {(r.model, r.defense, r.attack, round(r.eps, 4)): r for r in ok}
    for defense in ("none", "advtrain", "fbf"):
        for attack in ("fgsm", "pgd"):
            for eps in (0.03, round(4 / 255, 4)):
                assert cell[("paper-cnn", defense, attack, eps)].n_test == 3925
        assert cell[("paper-cnn", defense, "autoattack", 0.03)].n_test >= 500
    assert any(m.startswith("timm:") and (m, "none", "pgd", 0.03) in cell for m, *_ in cell)
    for r in ok:
        assert r.config["image_shape"] == [3, 64, 64]
        assert r.config["peak_memory_mib"]["host"] > 0
    shown = cell[("paper-cnn", "none", "fgsm", 0.03)].examples
    assert shown["shape"][1] == 3 and "tench" in shown["class_names"]


def test_mnist_page_has_both_defenses_trained_at_eps_03_with_autoattack():
    """Issue 10: `fbf` (Wong et al.'s MNIST recipe) and `madry-pgd` trained at eps 0.3, each
    with FGSM, PGD, PGD 50x10 and the standard AutoAttack on at least 1,000 images; `fbf` keeps
    Wong et al.'s clean accuracy (98%), `madry-pgd` the 85% AutoAttack goal with PGD-10 on all
    10,000 images."""
    ok = [r for r in _results("mnist").records if r.ok and r.model == "paper-cnn"
          and r.eps == 0.3 and r.config["training"].get("defense_options", {}).get("eps") == 0.3]
    attacks = {(r.defense, r.attack) for r in ok}
    for defense in ("fbf", "madry-pgd"):
        assert {(defense, a) for a in ("fgsm", "pgd", "autoattack")} <= attacks
        aa = next(r for r in ok if (r.defense, r.attack) == (defense, "autoattack"))
        assert aa.n_test >= 1000
    fbf = [r for r in ok if r.defense == "fbf"]
    assert all(r.config["training"]["defense_options"]["lr_max"] == 0.005 for r in fbf)
    assert min(r.clean_acc for r in fbf) >= 0.98
    madry = {r.attack: r for r in ok if r.defense == "madry-pgd" and not r.config["attack_options"]}
    assert madry["autoattack"].robust_acc >= 0.85 and madry["pgd"].n_test == 10000
