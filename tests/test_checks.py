"""The automatic evaluation checks, and the stored adversarial examples they rely on."""

from __future__ import annotations

import torch

from harness.contracts.hookspecs import hookimpl
from harness.contracts.records import Result, ResultSet
from harness.contracts.roles import ITERATIVE
from harness.contracts.specs import AttackSpec
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig
from harness.report.checks import LEGEND, flags_by_cell, run_checks
from harness.report.leaderboard import render
from harness.results.store import ResultStore
from harness.run.adversarial import AdversarialStore, decode
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.testing.records import make_record

#: The attack roles the built-ins declare.
ROLES = {"fgsm": ("reference", "single-step"), "pgd": ("iterative", "reference"),
         "square": ("black-box",), "autoattack": ("ensemble", "iterative", "reference"),
         "art-autoattack": ("ensemble", "iterative"), "ifgsm": ("iterative",), "shadow": ()}


def cell(attack, eps, robust, defense="none", clean=0.95, n=1000, **metrics) -> Result:
    """An ok evasion record of d/m, with the roles the built-in ``attack`` declares."""
    return make_record(cell_key=f"{defense}/{attack}/{eps}", train_key=f"train-{defense}",
                  run_id="run", dataset="d", model="m", defense=defense, attack=attack,
                  eps=eps, status="ok", attack_roles=ROLES[attack],
                  defense_roles=("baseline",) if defense == "none" else (),
                  clean_acc=clean, robust_acc=robust, n_test=n, metrics=metrics)


def test_sound_results_raise_no_flag():
    records = [cell("fgsm", 0.1, 0.60), cell("pgd", 0.1, 0.40), cell("fgsm", 0.2, 0.30),
               cell("pgd", 0.2, 0.10), cell("square", 0.1, 0.55, n=100),
               cell("pgd", 0.5, 0.0, num_classes=10, stored_robust_acc=0.0)]
    assert run_checks(records) == []


def test_each_check_flags_the_cell_at_fault():
    records = [
        cell("fgsm", 0.1, 0.50), cell("pgd", 0.1, 0.60),                      # P
        cell("fgsm", 0.1, 0.98, defense="adv", clean=0.97),                   # L and M
        cell("pgd", 0.1, 0.10, defense="adv"),
        cell("fgsm", 0.2, 0.70),                                              # E (0.5 -> 0.7)
        cell("square", 0.1, 0.05, defense="adv", n=100),                      # B
        cell("pgd", 0.5, 0.45, num_classes=10, stored_robust_acc=0.40),       # C and S
        cell("pgd", 0.1, 0.0, defense="diverged", clean=0.12, num_classes=10),  # T
        cell("pgd", 0.1, 0.40, defense="ens"),                                # A (10 points)
        cell("autoattack", 0.1, 0.30, defense="ens"),
        cell("shadow", 0.1, 0.90, clean=0.95, attack_success_rate=0.05),  # W, and on every
        cell("shadow", 0.1, 0.91, defense="adv", attack_success_rate=0.04),  # defense's cell
        make_record(cell_key="none/smoothing", train_key="train-none", run_id="run",  # V
                    dataset="d", model="m", defense="none", attack="smoothing", eps=None,
                    category="certification", status="ok", defense_roles=("baseline",),
                    smoothed_acc=0.9, certificates_checked=20, certificates_broken=2,
                    n_test=100),
        make_record(cell_key="adv/smoothing", train_key="train-adv", run_id="run", dataset="d",
                    model="m", defense="adv", attack="smoothing", eps=None,
                    category="certification", status="ok", smoothed_acc=0.9,
                    certificates_checked=20, certificates_broken=0, n_test=100),
    ]
    flags = flags_by_cell(records)
    assert flags["none/pgd/0.1"] == "P"
    assert flags["adv/fgsm/0.1"] == "LM"
    assert flags["none/fgsm/0.2"] == "E"
    assert flags["adv/square/0.1"] == "B"
    assert flags["none/pgd/0.5"] == "CS"
    assert flags["diverged/pgd/0.1"] == "T"
    assert flags["ens/pgd/0.1"] == "A" and "ens/autoattack/0.1" not in flags
    assert flags["none/shadow/0.1"] == flags["adv/shadow/0.1"] == "W"
    assert flags["none/smoothing"] == "V" and "adv/smoothing" not in flags
    assert set("".join(flags.values())) == set(LEGEND)


def test_an_attack_that_fails_on_the_undefended_model_is_too_weak_everywhere():
    # 10% success on the undefended model is enough; just under it is not; other options are
    # another attack
    strong = [cell("shadow", 0.1, 0.80, attack_success_rate=0.10),
              cell("shadow", 0.1, 0.93, defense="adv")]
    assert flags_by_cell(strong) == {}
    weak = [cell("shadow", 0.1, 0.86, attack_success_rate=0.0999),
            cell("shadow", 0.1, 0.93, defense="adv"), cell("shadow", 0.2, 0.5, defense="adv")]
    assert flags_by_cell(weak) == {"none/shadow/0.1": "W", "adv/shadow/0.1": "W"}


def test_checks_ask_for_roles_not_names():
    # the same numbers under other names flag the same cells; without roles, only E and S
    renamed = {"fgsm": "one-step", "pgd": "many-steps", "square": "queries"}
    records = [cell("fgsm", 0.1, 0.50), cell("pgd", 0.1, 0.60),
               cell("square", 0.1, 0.05, n=100),
               cell("pgd", 0.5, 0.45, num_classes=10, stored_robust_acc=0.40)]
    named = [r.replace(attack=renamed[r.attack],
                       cell_key=r.cell_key.replace(r.attack, renamed[r.attack]))
             for r in records]
    assert flags_by_cell(named) == {"none/many-steps/0.1": "P", "none/queries/0.1": "B",
                                    "none/many-steps/0.5": "CS"}
    assert flags_by_cell(r.replace(attack_roles=()) for r in records) == {"none/pgd/0.5": "S"}
    # an ensemble is iterative for C and B, but not the single-step attack's counterpart
    ensemble = [cell("fgsm", 0.1, 0.50), cell("autoattack", 0.1, 0.60),
                cell("art-autoattack", 0.1, 0.65)]
    assert flags_by_cell(ensemble) == {}


def test_pgd_far_above_the_ensemble_is_flagged_on_the_pgd_cell():
    # 9.9 points below PGD is the ensemble doing its job; 10 points is PGD overstating,
    # unless so few images were attacked that 10 points are sampling noise
    assert flags_by_cell([cell("pgd", 0.1, 0.599), cell("autoattack", 0.1, 0.50)]) == {}
    assert flags_by_cell([cell("pgd", 0.1, 0.8, n=10), cell("autoattack", 0.1, 0.6, n=10)]) \
        == {}
    records = [cell("pgd", 0.1, 0.85), cell("autoattack", 0.1, 0.64, n=1000),
               cell("art-autoattack", 0.1, 0.78)]
    flags = run_checks(records)
    assert [(f.cell_key, f.code) for f in flags] == [("none/pgd/0.1", "A")]
    assert "pgd 85.00% vs autoattack 64.00%" in flags[0].message
    # two ensembles are not compared with each other, and a non-ensemble needs the role
    assert flags_by_cell([cell("autoattack", 0.1, 0.3), cell("art-autoattack", 0.1, 0.6)]) \
        == {}


def test_tolerance_allows_sampling_noise_between_different_image_counts():
    # Square on 100 images 2 points below PGD on 1000 is within two standard errors
    records = [cell("pgd", 0.1, 0.50), cell("square", 0.1, 0.48, n=100)]
    assert flags_by_cell(records) == {}


def test_flags_and_legend_appear_on_the_page():
    records = [cell("fgsm", 0.1, 0.98, clean=0.97), cell("pgd", 0.1, 0.10)]
    page = render(ResultSet(records, {"run": {}}))
    assert "| checks" in page and "| LM " in page
    assert LEGEND["M"] in page and LEGEND["L"] in page and LEGEND["P"] not in page


def test_runner_stores_adversarial_examples_and_rechecks_them(isolated_home):
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm",),
                         defenses=("none",), n_train=200, n_test=50, epochs=2, device="cpu")
    outcome = Runner(config, load_registry(), ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "models"), show_progress=False).run()
    by = {(r.attack, r.eps): r for r in outcome.records}
    assert set(by) == {("fgsm", 0.1), ("pgd", 0.5)}     # the large-eps check cell is added
    assert by[("pgd", 0.5)].config["check"] is True
    fgsm = by[("fgsm", 0.1)]
    assert fgsm.attack_roles == ROLES["fgsm"] and fgsm.defense_roles == ("baseline",)
    assert fgsm.metrics["stored_robust_acc"] == fgsm.robust_acc
    x_adv, y = AdversarialStore(isolated_home / "adversarial").load(fgsm.cell_key,
                                                                   torch.device("cpu"))
    assert x_adv.shape == (50, 1, 8, 8) and len(y) == 50
    assert float((x_adv - x_adv.clamp(0, 1)).abs().max()) == 0
    shown = fgsm.examples
    assert shown["shape"] == [4, 1, 8, 8] and len(shown["pred_adv"]) == 4
    x, adv = decode(shown, "x"), decode(shown, "x_adv")
    assert 0.05 < abs(adv - x).max() <= 0.1 + 1 / 255      # the eps-0.1 perturbation, 8-bit
    stored = ResultStore(isolated_home / "r.sqlite").latest_ok(fgsm.cell_key)
    assert stored is not None and stored.record.examples == shown
    assert stored.record == fgsm.replace(examples=stored.record.examples)


class Unchanged:
    """An "iterative" attack that returns the images as they are: weaker than FGSM."""

    def perturb(self, model, x, y, eps):
        return x.clone()


class MyPgdPlugin:
    @hookimpl
    def harness_register_attacks(self, register):
        register(AttackSpec(name="my-pgd", description="declares the iterative role, does "
                                                        "nothing",
                            build=lambda options: Unchanged(), threat_model="white-box",
                            norm="inf", roles=frozenset({ITERATIVE})))


def test_a_third_party_iterative_attack_takes_part_in_the_checks(isolated_home,
                                                                 harness_plugin):
    registry = harness_plugin(MyPgdPlugin(), name="my-pgd-plugin")
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",),
                         attacks=("fgsm", "my-pgd"), defenses=("none",), n_train=300,
                         n_test=100, epochs=3, device="cpu", checks=False)
    outcome = Runner(config, registry, ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "models"), show_progress=False).run()
    by = {r.attack: r for r in outcome.records}
    assert set(by) == {"fgsm", "my-pgd"} and not outcome.failed
    mine, fgsm = by["my-pgd"], by["fgsm"]
    assert mine.attack_roles == (ITERATIVE,)
    assert mine.robust_acc == mine.clean_acc > fgsm.robust_acc + 0.05
    flags = flags_by_cell(outcome.records)
    assert flags.get(mine.cell_key) == "PW"    # it does nothing: too weak to measure anything
    assert fgsm.cell_key not in flags
