"""The standard AutoAttack plugin: at least as strong as ART's ensemble, within its budget,
deterministic, and named in its records and in the paper report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.contracts.records import Result, ResultSet
from harness.contracts.roles import ENSEMBLE, ITERATIVE, REFERENCE
from harness.planning.loading import load_registry
from harness.report.leaderboard import page_metrics, render
from harness.report.reporting import declared_metrics
from harness.run.evaluators.scoring import QueryCounter
from harness.testing import tiny_image_data, trained_tiny_classifier
from harness.testing.records import make_record

REGISTRY = load_registry(strict=True)
# Where the tiny classifier is neither intact nor broken by every attack (Linf; L2).
EPS_LINF, EPS_L2 = 0.2, 1.0


def attack(name: str, **given):
    spec = REGISTRY.attack(name)
    return spec.build(spec.resolve_options(given))


def robust(model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(x_adv).argmax(1) == y).sum())


@pytest.fixture(scope="module")
def tiny():
    data = tiny_image_data()
    return trained_tiny_classifier(), data.x_test, data.y_test


@pytest.fixture(scope="module")
def standard(tiny):
    """The standard AutoAttack's examples at EPS_LINF, seed 0, the draw from torch's global
    generator right after it (seeded with 5 before), and the attack's metrics."""
    model, x, y = tiny
    torch.manual_seed(5)
    aa = attack("autoattack")
    x_adv = aa.perturb(model, x, y, EPS_LINF)
    return x_adv, torch.rand(4), aa.metrics()


def test_standard_is_at_least_as_strong_as_arts_ensemble(tiny, standard):
    model, x, y = tiny
    x_adv, _, _ = standard
    art_adv = attack("art-autoattack").perturb(model, x, y, EPS_LINF)
    ours, art = robust(model, x_adv, y), robust(model, art_adv, y)
    assert ours < len(x), "the standard AutoAttack broke no image: the eps is too small"
    assert ours <= art + 1, (ours, art)


def test_linf_examples_stay_within_the_budget_and_the_image_range(tiny, standard):
    _, x, _ = tiny
    x_adv, _, _ = standard
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert float((x_adv - x).abs().amax()) <= EPS_LINF * (1 + 1e-5) + 1e-6


def test_a_seed_gives_the_same_examples_and_leaves_the_global_generator_alone(tiny, standard):
    model, x, y = tiny
    first, draw, _ = standard
    torch.manual_seed(5)
    assert torch.equal(attack("autoattack", seed=0).perturb(model, x, y, EPS_LINF), first)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(4), draw), "the reference's reseeding leaked out"
    assert not torch.equal(attack("autoattack", seed=1).perturb(model, x, y, EPS_LINF), first)


def test_one_attack_at_a_time_gives_the_examples_of_the_reference_loop(tiny, standard):
    """perturb runs the reference loop one attack at a time, on the images the previous ones
    left; one call of the loop with the four attacks gives the same examples."""
    from pyautoattack import AutoAttack

    from harness.art.bridge import frozen

    model, x, y = tiny
    classes = int(model(x[:1]).shape[-1])
    plugin = attack("autoattack")
    reference = AutoAttack(model, norm="Linf", eps=EPS_LINF, seed=plugin.seed,
                           version="standard", device=x.device)
    reference.verbose = False
    reference.apgd_targeted.n_target_classes = reference.fab.n_target_classes = classes - 1
    reference.attacks_to_run = plugin.attacks(classes)
    with torch.random.fork_rng(), frozen(model):
        x_ref, _ = reference.run_standard_evaluation(x, y, batch_size=len(x))
    assert torch.equal(standard[0], x_ref)


def test_the_robust_accuracy_after_each_attack(tiny, standard):
    model, x, y = tiny
    x_adv, _, metrics = standard
    classes = int(model(x[:1]).shape[-1])
    assert list(metrics) == [f"after_{a}" for a in attack("autoattack").attacks(classes)]
    after = list(metrics.values())
    assert after == sorted(after, reverse=True)       # each attack only takes images away
    assert after[0] < robust(model, x, y) / len(x)    # APGD-CE breaks some
    assert after[-1] == robust(model, x_adv, y) / len(x)
    # over several calls (the evaluator's batches) the counts add up
    aa, half = attack("autoattack"), len(x) // 2
    parts = [aa.perturb(model, x[:half], y[:half], EPS_LINF),
             aa.perturb(model, x[half:], y[half:], EPS_LINF)]
    assert aa.metrics()["after_square"] == robust(model, torch.cat(parts), y) / len(x)
    assert attack("autoattack").metrics() == {}


def test_l2_stays_within_its_budget_through_the_query_counter(tiny):
    model, x, y = tiny
    counter = QueryCounter(model).eval()
    x_adv = attack("autoattack-l2").perturb(counter, x, y, EPS_L2)
    assert 0 < robust(model, x_adv, y) < len(x)
    assert float((x_adv - x).flatten(1).norm(dim=1).max()) <= EPS_L2 * (1 + 1e-5) + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert counter.images > 1000 * len(x), "Square's queries went past the counter"
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert not model.training


def test_apgd_t_needs_four_classes_and_the_rest_is_the_standard():
    aa = attack("autoattack")
    assert aa.attacks(10) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa.attacks(4) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa.attacks(3) == ["apgd-ce", "fab-t", "square"]


def test_declarations():
    linf, l2 = REGISTRY.attack("autoattack"), REGISTRY.attack("autoattack-l2")
    assert (linf.norm, l2.norm) == ("inf", "2") and linf.bounded and l2.bounded
    assert linf.roles == {ITERATIVE, ENSEMBLE, REFERENCE}
    assert ENSEMBLE in REGISTRY.attack("art-autoattack").roles
    assert REFERENCE not in REGISTRY.attack("art-autoattack").roles
    # the standard is fixed: the seed is the only option
    assert linf.options.defaults() == {"seed": 0} == l2.options.defaults()
    assert linf.budget_images == 1000


def test_the_record_names_what_ran(tmp_path: Path, capsys):
    out = tmp_path / "run.json"
    assert main(["bench", "--dataset", "digits", "--model", "paper-cnn", "--defense", "none",
                 "--n-train", "300", "--n-test", "10", "--epochs", "1", "--device", "cpu",
                 "--attack", "autoattack", "--eps", "0.1", "--no-checks", "--quiet",
                 "--attack-batch-size", "4", "--json", str(out)]) == 0
    capsys.readouterr()
    (record,) = json.loads(out.read_text())["records"]
    assert record["status"] == "ok" and record["attack"] == "autoattack"
    config = record["config"]["attack_config"]
    assert config["version"] == "standard"
    assert config["attacks"] == "apgd-ce, apgd-t, fab-t, square"
    assert (config["square_queries"], config["iterations"], config["restarts"]) == (5000, 100, 1)
    assert config["implementation"].startswith("pyautoattack ")
    assert config["seed"] == 0
    # the robust accuracy after each attack, over the cell's three batches, on the page
    after = [record["metrics"][f"after_{a}"] for a in ("apgd-ce", "apgd-t", "fab-t", "square")]
    assert after == sorted(after, reverse=True) and after[-1] == record["metrics"]["robust_acc"]
    assert after[0] <= record["metrics"]["clean_acc"]
    page = render(ResultSet.from_json(out.read_text()),
                  metrics=page_metrics(declared_metrics(REGISTRY)))
    assert "| after APGD-CE " in page and "- **after SQUARE**: " in page


def mnist_cell(attack: str, defense: str, robust: float) -> Result:
    return make_record(cell_key=f"{defense}/{attack}", train_key=defense, run_id="run",
                  dataset="mnist", model="paper-cnn", defense=defense, attack=attack, eps=0.1,
                  status="ok", clean_acc=0.99, robust_acc=robust, n_test=1000)


def test_the_paper_report_prefers_the_standard_and_names_arts_ensemble():
    text = REGISTRY.reports["paper"].text
    assert text is not None
    both = text(ResultSet([mnist_cell("art-autoattack", "none", 0.52),
                           mnist_cell("autoattack", "none", 0.47)]))
    assert "| 47.00% (n=1000) " in both and "52.00%" not in both
    assert "art-autoattack" not in both
    art_only = text(ResultSet([mnist_cell("art-autoattack", "advtrain", 0.61)]))
    assert "| 61.00% (n=1000; art-autoattack) " in art_only
    assert "ART's 3-attack ensemble" in art_only
