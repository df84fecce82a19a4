"""The ART bridge: art-fgsm equals the native fgsm, declarations, budgets, metrics, store."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from harness.data import ModelInput
from harness.errors import UsageError
from harness.evaluation import evaluate_attack
from harness.leaderboard import render
from harness.plan import BenchConfig, make_plan
from harness.plugins import load_registry
from harness.store import ResultStore
from harness.testing import tiny_image_data, trained_tiny_classifier
from harness_plugins import paper_cnn
from harness_plugins.art_evasion import DECLARATIONS
from harness_plugins.fgsm import fgsm

REGISTRY = load_registry()

SURVEY_ATTACKS = {  # issue: every evasion attack of the survey that ART ships, plus AutoAttack
    "cw-l2", "cw-linf", "deepfool", "ifgsm", "universal", "targeted-universal", "jsma",
    "newtonfool", "ead", "brendel-bethge", "wasserstein", "shadow", "boundary", "pixel",
    "threshold", "zoo", "spatial", "simba", "hopskipjump", "square", "autoattack", "art-fgsm",
}


def test_every_survey_evasion_attack_is_registered_from_the_art_plugin():
    assert {d.name for d in DECLARATIONS} == SURVEY_ATTACKS
    for name in SURVEY_ATTACKS:
        spec = REGISTRY.attack(name)
        assert spec.plugin.name == "art-evasion"
        assert spec.survey_table
        assert spec.needs <= {"gradients", "scores", "labels"} and spec.needs


def test_black_box_attacks_need_no_gradients():
    for d in DECLARATIONS:
        assert (d.threat_model == "black-box") == ("gradients" not in d.needs), d.name


def test_art_fgsm_gives_the_same_examples_as_the_native_fgsm():
    data = tiny_image_data(n_test=64)
    torch.manual_seed(0)
    model = paper_cnn.build(ModelInput(1, 8, 8, 3), None, {}).eval()
    attack = REGISTRY.attack("art-fgsm").build({})
    x, y = data.x_test, data.y_test
    ours = fgsm(model, x, y, 0.1)
    theirs = attack.perturb(model, x, y, 0.1)
    assert float((ours - x).abs().max()) == pytest.approx(0.1, abs=1e-6)
    assert torch.equal(ours, theirs)


def test_art_options_pass_through_and_unknown_ones_are_named():
    attack = REGISTRY.attack("cw-l2").build({"max_iter": 3})
    assert attack.kwargs["max_iter"] == 3 and attack.kwargs["binary_search_steps"] == 5
    with pytest.raises(UsageError, match="cw-l2 .CarliniL2Method. has no option 'max_iters'"):
        REGISTRY.attack("cw-l2").build({"max_iters": 3})


def test_unbounded_attacks_get_one_cell_without_eps_and_their_image_budget():
    config = BenchConfig(attacks=("fgsm", "cw-l2", "square"), defenses=("none",),
                         eps=(0.05, 0.1))
    cells = make_plan(config, REGISTRY).cells
    by_attack: dict[str, list] = {}
    for c in cells:
        by_attack.setdefault(c.attack.name, []).append(c)
    assert [c.eps for c in by_attack["fgsm"]] == [0.05, 0.1]
    assert [c.eps for c in by_attack["cw-l2"]] == [None]
    assert [c.n_test for c in by_attack["cw-l2"]] == [100]
    assert [c.n_test for c in by_attack["square"]] == [100, 100]
    assert by_attack["fgsm"][0].n_test is None
    overridden = make_plan(BenchConfig(attacks=("cw-l2",), n_test=30), REGISTRY).cells
    assert {c.n_test for c in overridden} == {30}


def test_queries_and_successful_perturbation_medians():
    model = trained_tiny_classifier()
    data = tiny_image_data()
    x, y = data.x_test[:16], data.y_test[:16]
    one_step = evaluate_attack(model, REGISTRY.attack("fgsm").build({}), x, y, 0.5,
                               show_progress=False)
    assert one_step.queries_per_image == 1.0
    ten = evaluate_attack(model, REGISTRY.attack("pgd").build({}), x, y, 0.5,
                          show_progress=False)
    assert ten.queries_per_image == 10.0
    deepfool = evaluate_attack(model, REGISTRY.attack("deepfool").build({}), x, y, None,
                               show_progress=False)
    assert deepfool.attack_success_rate > 0.5
    assert 0 < deepfool.median_l2 < 8 and 0 < deepfool.median_linf <= 1
    assert 0 < deepfool.median_l0 <= 64


def test_unbounded_rows_render_after_the_bounded_ones():
    base = {"dataset": "digits", "model": "m", "defense": "none", "status": "ok",
            "clean_acc": 0.9, "n_test": 10, "metadata": {}}
    text = render([{**base, "attack": "cw-l2", "eps": None, "robust_acc": 0.0,
                    "median_l2": 1.5},
                   {**base, "attack": "fgsm", "eps": 0.1, "robust_acc": 0.5}])
    assert text.index("| fgsm") < text.index("| cw-l2")
    assert "unbounded" in text and "median L2 (successful)" in text


def test_a_database_from_the_first_schema_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL,
                           finished_at TEXT, metadata TEXT NOT NULL);
        CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, cell_key TEXT NOT NULL,
            train_key TEXT NOT NULL, run_id TEXT NOT NULL, dataset TEXT NOT NULL,
            model TEXT NOT NULL, defense TEXT NOT NULL, attack TEXT NOT NULL,
            eps REAL NOT NULL, status TEXT NOT NULL, error TEXT, clean_acc REAL,
            robust_acc REAL, attack_success_rate REAL, mean_linf REAL, mean_l2 REAL,
            n_test INTEGER, train_seconds REAL, train_images_per_s REAL, attack_seconds REAL,
            attack_images_per_s REAL, threat_model TEXT, norm TEXT, created_at TEXT NOT NULL,
            config TEXT NOT NULL);
        INSERT INTO runs VALUES ('r1', 't', NULL, '{}');
        INSERT INTO results(cell_key, train_key, run_id, dataset, model, defense, attack, eps,
            status, robust_acc, created_at, config)
            VALUES ('c1', 't1', 'r1', 'digits', 'm', 'none', 'fgsm', 0.1, 'ok', 0.5, 't', '{}');
    """)
    conn.commit()
    conn.close()
    store = ResultStore(path)
    assert store.latest_ok("c1")["robust_acc"] == 0.5
    store.add_result({"cell_key": "c2", "train_key": "t1", "run_id": "r1", "dataset": "digits",
                      "model": "m", "defense": "none", "attack": "cw-l2", "eps": None,
                      "status": "ok", "median_l2": 1.25, "created_at": "t", "config": {}})
    assert store.latest_ok("c2")["median_l2"] == 1.25 and store.latest_ok("c2")["eps"] is None
