"""Threat-aware planning and running: every attack category, every defense stage, and n/a.

The plugins here are small but real: a 1-bit input squeezer, a corner-trigger backdoor, a
detector that flags bright corners, and a loss-threshold membership inference.
"""

from __future__ import annotations

import torch

from harness.contracts.context import PoisonedSet
from harness.contracts.hookspecs import hookimpl
from harness.contracts.options import options
from harness.contracts.specs import AttackSpec, DefenseSpec, ModelSpec, PluginInfo
from harness.planning.plan import BenchConfig, make_plan
from harness.report.leaderboard import render
from harness.results.store import ResultStore
from harness.run.evaluators.scoring import predict
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.testing import check_attack_spec, check_defense_spec, corner_backdoor

SMALL = dict(datasets=("digits",), models=("paper-cnn",), n_train=400, n_test=120, epochs=8,
             device="cpu", checks=False)


class OneBit:
    def transform(self, x):
        return (x > 0.5).to(x.dtype)


class CornerBackdoor:
    def poison(self, ctx):
        return corner_backdoor(ctx.data, rate=0.15, target=0)


class BrightCorner:
    def detect(self, model, x, y, ctx):
        return x[:, :, -2:, -2:].flatten(1).mean(1) > 0.95


class LossThresholdMembership:
    def run(self, model, ctx):
        n = min(len(ctx.data.x_train), len(ctx.data.x_test))
        with torch.no_grad():
            loss_in = torch.nn.functional.cross_entropy(
                model(ctx.data.x_train[:n]), ctx.data.y_train[:n], reduction="none")
            loss_out = torch.nn.functional.cross_entropy(
                model(ctx.data.x_test[:n]), ctx.data.y_test[:n], reduction="none")
        threshold = torch.cat([loss_in, loss_out]).median()
        correct = (loss_in <= threshold).sum() + (loss_out > threshold).sum()
        return {"mi_accuracy": float(correct) / (2 * n), "n_members": float(n)}


class CategoryPlugins:
    @hookimpl
    def harness_register_defenses(self, register):
        register(DefenseSpec(name="one-bit", description="pixels rounded to 0 or 1",
                             build=lambda o: OneBit(), stage="input-transformation"))
        register(DefenseSpec(name="bright-corner", description="flags bright corners",
                             build=lambda o: BrightCorner(), stage="poisoning-detection"))

    @hookimpl
    def harness_register_attacks(self, register):
        register(AttackSpec(name="corner-backdoor", description="corner trigger, target 0",
                            build=lambda o: CornerBackdoor(), threat_model="black-box",
                            norm="none", category="poisoning", bounded=False,
                            needs=frozenset()))
        register(AttackSpec(name="loss-mi", description="loss-threshold membership",
                            build=lambda o: LossThresholdMembership(),
                            threat_model="black-box", norm="none", category="inference",
                            bounded=False, needs=frozenset({"scores"})))
        register(AttackSpec(name="needs-svm", description="an attack only an SVM can take",
                            build=lambda o: LossThresholdMembership(),
                            threat_model="white-box", norm="none", category="inference",
                            bounded=False, needs=frozenset({"svm"})))

    @hookimpl
    def harness_register_models(self, register):
        register(ModelSpec(name="frozen-linear", description="a linear model with no loop",
                           build=lambda mi, v, o: torch.nn.Sequential(
                               torch.nn.Flatten(),
                               torch.nn.Linear(mi.channels * mi.height * mi.width,
                                               mi.num_classes)),
                           offers=frozenset({"gradients", "scores", "labels"})))


ALL_KINDS = dict(attacks=("fgsm", "corner-backdoor", "loss-mi", "needs-svm"),
                 defenses=("advtrain", "one-bit", "bright-corner"))


def test_the_plan_runs_only_the_pairings_that_make_sense(harness_plugin):
    registry = harness_plugin(CategoryPlugins(), name="categories")
    plan = make_plan(BenchConfig(**{**SMALL, **ALL_KINDS}), registry)
    ran = {(c.defense.name, c.attack.name) for c in plan.cells}
    assert ran == {("none", "fgsm"), ("none", "corner-backdoor"), ("none", "loss-mi"),
                   ("advtrain", "fgsm"), ("advtrain", "loss-mi"), ("one-bit", "fgsm"),
                   ("bright-corner", "corner-backdoor")}
    reasons = {(s.defense.name, s.attack.name): s.reason for s in plan.skipped}
    assert set(reasons) | ran == {(d, a) for d in ("none", "advtrain", "one-bit",
                                                   "bright-corner")
                                  for a in ALL_KINDS["attacks"]}
    assert "poisoning detector" in reasons[("bright-corner", "fgsm")]
    assert "input transformation" in reasons[("one-bit", "loss-mi")]
    assert "training defense against evasion" in reasons[("advtrain", "corner-backdoor")]
    assert "offers no 'svm'" in reasons[("none", "needs-svm")]
    # the undefended model serves the transformation, the detector and the poisoning cells
    assert [j.defense.name for j in plan.jobs] == ["none", "advtrain"]
    by_job = {j.defense.name: {(c.defense.name, c.attack.name) for c in plan.cells_of(j)}
              for j in plan.jobs}
    assert ("one-bit", "fgsm") in by_job["none"]
    assert ("bright-corner", "corner-backdoor") in by_job["none"]


def test_training_defenses_are_na_for_a_model_without_a_training_loop(harness_plugin):
    registry = harness_plugin(CategoryPlugins(), name="categories")
    plan = make_plan(BenchConfig(**{**SMALL, "models": ("frozen-linear",),
                                    "attacks": ("fgsm",), "defenses": ("advtrain",)}), registry)
    assert [(c.defense.name, c.attack.name) for c in plan.cells] == [("none", "fgsm")]
    assert "offers no 'training-loop'" in plan.skipped[0].reason


def test_every_category_runs_end_to_end(isolated_home, harness_plugin):
    registry = harness_plugin(CategoryPlugins(), name="categories")
    config = BenchConfig(**{**SMALL, **ALL_KINDS})
    outcome = Runner(config, registry, ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "models"), show_progress=False).run()
    assert not outcome.failed, [r.error for r in outcome.failed]
    cell = {(r.defense, r.attack): r for r in outcome.records}
    assert cell[("bright-corner", "fgsm")].status == "n/a"
    assert len(outcome.not_applicable) == 16 - 7
    assert all(r.run_id == outcome.run_id for r in outcome.records)
    assert set(outcome.results.runs) == {outcome.run_id}

    squeezed, plain = cell[("one-bit", "fgsm")], cell[("none", "fgsm")]
    assert squeezed.defense_stage == "input-transformation"
    assert squeezed.clean_acc != plain.clean_acc      # judged through the transform
    assert plain.defense_roles == ("baseline",)

    backdoor = cell[("none", "corner-backdoor")]
    assert backdoor.category == "poisoning"
    assert abs(backdoor.metrics["poison_rate"] - 0.15) < 0.01
    assert backdoor.attack_success_rate > 0.8             # a blatant trigger is learned
    detected = cell[("bright-corner", "corner-backdoor")]
    assert detected.metrics["recall"] == 1.0 and detected.metrics["precision"] > 0.9
    assert detected.metrics["attack_success_after"] < 0.3
    assert detected.attack_success_rate == backdoor.attack_success_rate  # same victim

    mi = cell[("none", "loss-mi")]
    assert mi.category == "inference" and 0 <= mi.metrics["mi_accuracy"] <= 1

    page = render(outcome.results)
    for heading in ("### Evasion", "### Poisoning", "### Inference", "### Not applicable"):
        assert heading in page
    assert "one-bit\u2020" in page and "non-adaptive" in page
    assert "offers no 'svm'" in page

    # a re-run reuses every stored cell and stores the n/a pairings again
    again = Runner(config, registry, ResultStore(isolated_home / "r.sqlite"),
                   ModelCache(isolated_home / "models"), show_progress=False).run()
    assert {r.run_id for r in again.records if r.ok} == {outcome.run_id}
    assert set(again.results.runs) == {outcome.run_id, again.run_id}


def test_store_round_trips_metrics_and_category(isolated_home, harness_plugin):
    registry = harness_plugin(CategoryPlugins(), name="categories")
    config = BenchConfig(**{**SMALL, "attacks": ("loss-mi",), "defenses": ("none",)})
    store = ResultStore(isolated_home / "r.sqlite")
    outcome = Runner(config, registry, store, ModelCache(isolated_home / "models"),
                     show_progress=False).run()
    stored = store.latest_records()
    (record,) = [r for r in stored.records if r.ok]
    assert record.category == "inference" and set(record.metrics) == {
        "mi_accuracy", "n_members", "clean_acc", "n_test"}
    assert record == next(r for r in outcome.records if r.ok)
    assert stored.metadata(record) == outcome.metadata


def test_contract_checks_cover_every_stage_and_category(harness_plugin):
    registry = harness_plugin(CategoryPlugins(), name="categories")
    assert check_defense_spec(registry.defense("one-bit")).unique().tolist() in ([0.0, 1.0],
                                                                               [0.0], [1.0])
    flags = check_defense_spec(registry.defense("bright-corner"))
    assert flags.any()
    poisoned = check_attack_spec(registry.attack("corner-backdoor"))
    assert isinstance(poisoned, PoisonedSet) and 0.1 < poisoned.rate < 0.2
    assert "mi_accuracy" in check_attack_spec(registry.attack("loss-mi"))


def test_attack_success_counts_what_the_attacker_wants():
    from harness.run.evaluators.poisoning import attack_success, detection_scores

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        model[1].bias.zero_()
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 1.0, 0, 0]]).view(3, 1, 2, 2)
    assert predict(model, x).tolist() == [0, 1, 1]
    s = PoisonedSet(x, torch.zeros(3, dtype=torch.long), torch.tensor([True, False, False]),
                    x, torch.tensor([1, 1, 1]), targeted=True)
    assert abs(attack_success(model, s) - 2 / 3) < 1e-9
    s.targeted = False
    assert abs(attack_success(model, s) - 1 / 3) < 1e-9
    scores = detection_scores(torch.tensor([True, True, False]), s.is_poison)
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0
    assert abs(scores["f1"] - 2 / 3) < 1e-9


def test_every_category_and_stage_has_its_evaluator_and_contract_check():
    from harness.contracts.categories import CATEGORIES, STAGES
    from harness.run.evaluators import EVALUATORS
    from harness.testing.contracts import CONTRACTS, STAGE_CONTRACTS

    assert set(EVALUATORS) == set(CATEGORIES) == set(CONTRACTS)
    assert set(STAGE_CONTRACTS) == set(STAGES)


def test_an_object_that_is_not_its_categorys_protocol_is_refused_before_any_work(tmp_path,
                                                                               capsys):
    """A plugin whose build returns something without ``perturb`` is named, exit 2, before
    any model is trained (the check of what a spec's build returns)."""
    from harness.cli import main
    from harness.planning import loading

    class NotAnAttack:
        def attack(self, model, x, y, eps):
            return x

    class Plugin:
        @staticmethod
        @hookimpl
        def harness_register_attacks(register):
            register(AttackSpec(name="not-an-attack", description="returns no attack",
                                build=lambda o: NotAnAttack(), threat_model="white-box",
                                norm="inf", options=options()))

    info = PluginInfo(name="not-an-attack", distribution="<in-process>", version="0")
    loading.TEST_PLUGINS.append((info, Plugin()))
    try:
        code = main(["bench", "--attack", "not-an-attack", "--defense", "none", "--quiet",
                     "--no-checks", "--db", str(tmp_path / "r.sqlite")])
    finally:
        loading.TEST_PLUGINS.pop()
    err = capsys.readouterr().err
    assert code == 2
    assert ("attack not-an-attack: build returned NotAnAttack, which does not implement Attack "
            "(it needs perturb)") in err
    assert not (tmp_path / "harness-home" / "models").exists() or \
        not list((tmp_path / "harness-home" / "models").glob("*.safetensors"))
