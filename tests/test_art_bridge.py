"""The ART bridge: art-fgsm equals the native fgsm, declarations, options, roles, budgets,
the classifier builder, one classifier per cell with frozen weights (the same examples as a
fresh classifier per batch), metrics, store."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from harness.art.bridge import FEATURE_LAYER, art_classifier, feature_classifier, one_hot
from harness.art.declarations import ArtEvasion
from harness.contracts.data import ModelInput
from harness.contracts.records import ResultSet
from harness.contracts.roles import BLACK_BOX, ENSEMBLE, ITERATIVE, REFERENCE, SINGLE_STEP
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig, make_plan
from harness.report.leaderboard import render
from harness.results.store import ResultStore
from harness.run.evaluators.scoring import QueryCounter, evaluate_attack
from harness.testing import tiny_image_data, trained_tiny_classifier
from harness.testing.records import make_record
from harness.util.errors import UsageError
from harness.util.seeds import seed_globals
from harness_plugins import paper_cnn
from harness_plugins.art_evasion import DECLARATIONS
from harness_plugins.fgsm import fgsm

REGISTRY = load_registry()

SURVEY_ATTACKS = {  # issue: every evasion attack of the survey that ART ships, plus its AutoAttack
    "cw-l2", "cw-linf", "deepfool", "ifgsm", "universal", "targeted-universal", "jsma",
    "newtonfool", "ead", "brendel-bethge", "wasserstein", "shadow", "boundary", "pixel",
    "threshold", "zoo", "spatial", "simba", "hopskipjump", "square", "art-autoattack", "art-fgsm",
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


def built(name: str, **options):
    """The attack ``name`` as the runner builds it: options resolved by its spec."""
    spec = REGISTRY.attack(name)
    return spec.build(spec.resolve_options(options))


def test_roles():
    roles = {name: REGISTRY.attack(name).roles for name in ("fgsm", "pgd", "ifgsm",
                                                             "art-autoattack", "square", "cw-l2")}
    assert roles == {"fgsm": {SINGLE_STEP, REFERENCE}, "pgd": {ITERATIVE, REFERENCE},
                     "ifgsm": {ITERATIVE}, "art-autoattack": {ITERATIVE, ENSEMBLE},
                     "square": {BLACK_BOX}, "cw-l2": set()}


def test_art_fgsm_gives_the_same_examples_as_the_native_fgsm():
    data = tiny_image_data(n_test=64)
    torch.manual_seed(0)
    model = paper_cnn.build(ModelInput(1, 8, 8, 3), None,
                            paper_cnn.OPTIONS.resolve("model paper-cnn", {})).eval()
    attack = built("art-fgsm")
    x, y = data.x_test, data.y_test
    ours = fgsm(model, x, y, 0.1)
    theirs = attack.perturb(model, x, y, 0.1)
    assert float((ours - x).abs().max()) == pytest.approx(0.1, abs=1e-6)
    assert torch.equal(ours, theirs)


# ART's PGD with a random start, declared here: the random draws must stay where they were.
RANDOM_PGD = ArtEvasion(
    name="random-start-pgd", art_name="ProjectedGradientDescent", survey_table="-",
    description="ART's Linf PGD from a random start", threat_model="white-box", norm="inf",
    needs=frozenset({"gradients"}), bounded=True,
    eps_args=lambda eps: {"eps": eps, "eps_step": eps / 4})


def per_batch_reference(attack, model, x, y, eps, batch):
    """The examples the bridge gave before it kept ART's objects for a cell: a new classifier
    and ART attack for every batch, on the model with trainable weights."""
    d, out = attack.declaration, []
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        classifier = art_classifier(model, tuple(x.shape[1:]), 3, x.device,
                                    probabilities=d.probabilities)
        kwargs = {**d.eps_args(eps), **attack.kwargs} if d.bounded else dict(attack.kwargs)
        if d.estimator_args is not None:
            kwargs = {**d.estimator_args(classifier, eps, attack.own), **kwargs}
        labels = (yb + 1) % 3 if d.targeted else yb
        adv = attack.cls(classifier, **kwargs).generate(xb.numpy(), y=one_hot(labels, 3))
        out.append(torch.from_numpy(adv).clamp(0, 1))
    return torch.cat(out)


@pytest.mark.parametrize("name, options", [
    ("art-fgsm", {}), ("random-start-pgd", {"max_iter": 3, "num_random_init": 1}),
    ("square", {"max_iter": 20}), ("spatial", {}),
    ("art-autoattack", {"apgd_iter": 2, "square_iter": 5}),
])
def test_one_classifier_per_cell_gives_the_examples_of_one_per_batch(name, options):
    model = trained_tiny_classifier()
    model.zero_grad(set_to_none=True)
    data = tiny_image_data()
    x, y, eps, batch = data.x_test[:12], data.y_test[:12], 0.1, 4
    spec = RANDOM_PGD.spec() if name == RANDOM_PGD.name else REGISTRY.attack(name)
    seed_globals(0, "reference")
    expected = per_batch_reference(spec.build(spec.resolve_options(options)), model, x, y,
                                   eps if spec.bounded else None, batch)
    model.zero_grad(set_to_none=True)
    list(model.parameters())[-1].requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    attack = spec.build(spec.resolve_options(options))
    counter = QueryCounter(model).eval()
    seed_globals(0, "reference")
    ours = torch.cat([attack.perturb(counter, x[i:i + batch], y[i:i + batch],
                                     eps if spec.bounded else None)
                      for i in range(0, len(x), batch)])
    assert torch.equal(ours, expected)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())  # no weight gradients computed
    if name == "art-fgsm":  # one image (the number of classes) for the cell, then ART's own
        assert counter.images == len(x) + 1


def test_art_options_are_declared_and_others_pass_through_to_art():
    spec = REGISTRY.attack("cw-l2")
    assert spec.options.passthrough
    # The cache key is the ART class and the declared defaults, as before options were typed.
    assert spec.key_config() == {"art_class": "CarliniL2Method", "max_iter": 30,
                                 "binary_search_steps": 5, "learning_rate": 0.05,
                                 "initial_const": 1.0, "batch_size": 128}
    attack = built("cw-l2", max_iter=3, confidence=0.5)  # confidence: an undeclared ART argument
    assert attack.kwargs["max_iter"] == 3 and attack.kwargs["binary_search_steps"] == 5
    assert attack.kwargs["confidence"] == 0.5 and attack.kwargs["verbose"] is False
    with pytest.raises(UsageError, match="cw-l2 .CarliniL2Method. has no option 'max_iters'. "
                                         "Did you mean: max_iter"):
        built("cw-l2", max_iters=3)
    with pytest.raises(UsageError, match="option 'max_iter' must be an integer >= 1"):
        spec.resolve_options({"max_iter": 0})


def test_art_autoattack_budget_options_are_the_harness_own():
    attack = built("art-autoattack", apgd_iter=7)
    assert attack.own == {"apgd_iter": 7, "square_iter": 1000}
    assert "apgd_iter" not in attack.kwargs and attack.kwargs["batch_size"] == 128
    model = trained_tiny_classifier()
    x, y = tiny_image_data().x_test[:4], tiny_image_data().y_test[:4]
    x_adv = built("art-autoattack", apgd_iter=2, square_iter=2).perturb(model, x, y, 0.1)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6


def test_every_smoke_budget_is_valid_for_its_schema():
    for name in REGISTRY.names("attack"):
        spec = REGISTRY.attack(name)
        spec.resolve_options(spec.smoke_options)


def test_art_classifier_scales_softmaxes_trains_and_taps_features():
    model = trained_tiny_classifier()
    x = tiny_image_data().x_test[:8]
    with torch.no_grad():
        logits = model(x)
    cpu = torch.device("cpu")
    plain = art_classifier(model, (1, 8, 8), 3, cpu)
    scaled = art_classifier(model, (1, 8, 8), 3, cpu, temperature=2.0, probabilities=True)
    assert torch.allclose(torch.from_numpy(plain.predict(x.numpy())), logits, atol=1e-5)
    assert torch.allclose(torch.from_numpy(scaled.predict(x.numpy())),
                          (logits / 2).softmax(1), atol=1e-5)
    net = paper_cnn.build(ModelInput(1, 8, 8, 3), None,
                          paper_cnn.OPTIONS.resolve("model paper-cnn", {}))
    before = [p.clone() for p in net.parameters()]
    trainer = art_classifier(net, (1, 8, 8), 3, cpu, loss=torch.nn.CrossEntropyLoss(),
                             optimizer=torch.optim.Adam(net.parameters(), lr=1e-2))
    y = torch.nn.functional.one_hot(tiny_image_data().y_test[:8], 3).float().numpy()
    trainer.fit(x.numpy(), y, nb_epochs=1, batch_size=8, verbose=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    tapped = feature_classifier(model, (1, 8, 8), 3, cpu)
    assert tapped.layer_names[-1] == FEATURE_LAYER
    with pytest.raises(ValueError, match="feature_tap"):
        art_classifier(model, (1, 8, 8), 3, cpu, feature_tap=True, probabilities=True)


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
    one_step = evaluate_attack(model, built("fgsm"), x, y, 0.5, show_progress=False)
    assert one_step.queries_per_image == 1.0
    ten = evaluate_attack(model, built("pgd"), x, y, 0.5, show_progress=False)
    assert ten.queries_per_image == 10.0
    deepfool = evaluate_attack(model, built("deepfool"), x, y, None, show_progress=False)
    assert deepfool.attack_success_rate > 0.5
    assert 0 < deepfool.median_l2 < 8 and 0 < deepfool.median_linf <= 1
    assert 0 < deepfool.median_l0 <= 64


def test_unbounded_rows_render_after_the_bounded_ones():
    base = {"train_key": "t", "run_id": "r1", "dataset": "digits", "model": "m",
            "defense": "none", "status": "ok", "clean_acc": 0.9, "n_test": 10}
    text = render(ResultSet([
        make_record(cell_key="c1", attack="cw-l2", eps=None, robust_acc=0.0, median_l2=1.5, **base),
        make_record(cell_key="c2", attack="fgsm", eps=0.1, robust_acc=0.5, **base)], {"r1": {}}))
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
    assert store.latest_ok("c1").record.robust_acc == 0.5
    store.add_result(make_record(cell_key="c2", train_key="t1", run_id="r1", dataset="digits",
                            model="m", defense="none", attack="cw-l2", eps=None, status="ok",
                            median_l2=1.25, created_at="t"))
    stored = store.latest_ok("c2").record
    assert stored.value("median_l2") == 1.25 and stored.eps is None
