"""The art-extraction plugin: Copycat CNN, Knockoff Nets and functionally equivalent extraction."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from harness.planning.loading import load_registry
from harness.run.evaluators.scoring import QueryCounter
from harness.testing import check_attack_spec, tiny_context, tiny_image_data
from harness.util.errors import HarnessError, UsageError
from harness_plugins import art_extraction

NAMES = ("copycat", "knockoff", "functionally-equivalent")
METRICS = {"thief_acc", "victim_acc", "agreement", "queries"}
SPECS = {name: load_registry().attack(name) for name in NAMES}


def built(name: str, **options):
    """The attack ``name`` as the runner builds it: options resolved by its spec."""
    spec = SPECS[name]
    return spec.build(spec.resolve_options(options))


def two_layer_relu(hidden: int = 8, features: int = 64, classes: int = 3) -> nn.Module:
    """Flatten -> Linear -> ReLU -> Linear, the shape of the mlp model."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


@pytest.fixture(scope="module")
def cnn_setup():
    """The tiny conv victim trained on 128 test images' worth of tiny data (pool 64, eval 64)."""
    ctx = tiny_context(tiny_image_data(n_test=128))
    return ctx, ctx.clean_model()


@pytest.fixture(scope="module")
def mlp_setup():
    """A trained two-layer ReLU victim (hidden width 8) and its context."""
    ctx = tiny_context(tiny_image_data(n_test=128), new_model=two_layer_relu)
    return ctx, ctx.clean_model()


def test_specs_are_registered_as_table_5_extraction_attacks(harness_plugin):
    registry = harness_plugin(art_extraction, entry_points=False)
    for name in NAMES:
        spec = registry.attack(name)
        assert spec.category == "extraction" and spec.survey_table == "Table 5"
        assert not spec.bounded and spec.norm == "none" and spec.threat_model == "black-box"
        assert spec.config["art_class"] and "pool_fraction" in spec.key_config()
        assert [m.name for m in spec.metrics] == ["victim_acc", "thief_acc", "agreement",
                                                  "queries"]
        assert [m.label for m in spec.metrics] == ["victim acc", "stolen model acc",
                                                   "agreement", "queries"]
    assert registry.attack("functionally-equivalent").needs == {"two-layer-relu", "scores"}
    assert registry.attack("copycat").needs == {"labels"}
    # The cache key is the ART class and the declared defaults, as before options were typed.
    assert registry.attack("copycat").key_config() == {
        "art_class": "CopycatCNN", "nb_stolen": 1000, "pool_fraction": 0.5, "nb_epochs": 50,
        "lr": 1e-3, "batch_size_fit": 32, "batch_size_query": 256, "use_probability": False}
    assert registry.attack("copycat").metrics[3].render(50.0) == "50"


def test_pool_and_evaluation_images_are_disjoint_and_capped_by_n_test():
    ctx = tiny_context(tiny_image_data(n_test=40), n_test=7)
    split = art_extraction.split_test_set(ctx, 0.5)
    assert len(split.x_pool) == 20 and len(split.x_eval) == 7
    pool = {tuple(x.flatten().tolist()) for x in split.x_pool}
    assert not any(tuple(x.flatten().tolist()) in pool for x in split.x_eval)
    again = art_extraction.split_test_set(ctx, 0.5)
    assert torch.equal(split.x_eval, again.x_eval)  # seeded by the run's seed
    with pytest.raises(UsageError, match="pool_fraction"):
        art_extraction.split_test_set(ctx, 1.0)


def test_copycat_steals_the_victim_and_counts_its_queries(harness_plugin, cnn_setup):
    registry = harness_plugin(art_extraction, entry_points=False)
    ctx, victim = cnn_setup
    counted = QueryCounter(victim).eval()
    metrics = check_attack_spec(registry.attack("copycat"), ctx=ctx, model=counted,
                                options={"nb_stolen": 50})
    assert set(metrics) == METRICS
    assert metrics["victim_acc"] > 0.9
    assert metrics["agreement"] > 0.8, metrics  # chance is about 1/3
    assert metrics["thief_acc"] > 0.8
    # The attack asked about its 50 images; the 64 evaluation images are the plugin's own.
    assert metrics["queries"] == 50
    assert counted.images == 50 + 64
    again = built("copycat", nb_stolen=50).run(victim, ctx)
    assert again == metrics  # seeded: the same pool, thief and training


def test_copycat_budget_is_capped_by_the_pool(cnn_setup):
    ctx, victim = cnn_setup
    metrics = built("copycat", nb_stolen=1000, nb_epochs=2).run(victim, ctx)
    assert metrics["queries"] == 64


def test_knockoff_random_and_adaptive(harness_plugin, cnn_setup):
    registry = harness_plugin(art_extraction, entry_points=False)
    ctx, victim = cnn_setup
    spec = registry.attack("knockoff")
    soft = check_attack_spec(spec, ctx=ctx, model=victim, options={"use_probability": True})
    assert soft["queries"] == 64 and soft["agreement"] > 0.8, soft
    counted = QueryCounter(victim).eval()
    adaptive = check_attack_spec(spec, ctx=ctx, model=counted, options={
        "sampling_strategy": "adaptive", "nb_stolen": 80, "nb_epochs": 20})
    # Adaptive sampling draws from the 64-image pool with replacement, one query at a time.
    assert adaptive["queries"] == 80 and counted.images == 80 + 64
    assert adaptive["agreement"] > 0.8, adaptive


def test_options_are_checked():
    with pytest.raises(UsageError, match="no option 'epochs'"):
        built("copycat", epochs=3)
    with pytest.raises(UsageError, match="sampling_strategy"):
        built("knockoff", sampling_strategy="greedy")
    with pytest.raises(UsageError, match="use_probability needs sampling_strategy=random"):
        built("knockoff", sampling_strategy="adaptive", use_probability=True)
    with pytest.raises(UsageError, match="option 'nb_stolen' must be an integer >= 1"):
        built("copycat", nb_stolen=0)
    with pytest.raises(UsageError, match="restarts"):
        built("functionally-equivalent", restarts=-1)
    with pytest.raises(UsageError, match="pool_fraction"):
        built("copycat", pool_fraction=1.0)


def test_functionally_equivalent_extraction_recovers_the_network(harness_plugin, mlp_setup):
    registry = harness_plugin(art_extraction, entry_points=False)
    ctx, victim = mlp_setup
    metrics = check_attack_spec(registry.attack("functionally-equivalent"), ctx=ctx,
                                model=victim)
    assert METRICS <= set(metrics)
    assert metrics["victim_acc"] > 0.9
    assert metrics["agreement"] > 0.9 and metrics["thief_acc"] == metrics["victim_acc"]
    assert metrics["logit_max_error"] < 1e-3, metrics  # the same function, not a look-alike
    assert 0 < metrics["queries"] <= art_extraction.FEE_OPTIONS.defaults()["max_queries"]


def test_functionally_equivalent_stops_at_its_query_budget(mlp_setup):
    ctx, victim = mlp_setup
    with pytest.raises(HarnessError, match="max_queries=300"):
        built("functionally-equivalent", max_queries=300).run(victim, ctx)


def test_functionally_equivalent_refuses_a_too_wide_victim_at_once():
    wide = two_layer_relu(hidden=200).eval()
    ctx = tiny_context(new_model=lambda: two_layer_relu(hidden=200))
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match=r"--model-opt mlp\.hidden=128"):
        built("functionally-equivalent").run(wide, ctx)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(UsageError, match="two-layer ReLU network"):
        built("functionally-equivalent").run(nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 4), nn.ReLU(),
            nn.Linear(4, 3)), ctx)


def test_critical_point_search_crosses_a_flat_stretch_of_the_line():
    """Where every hidden unit is off the logits are constant: ART's own search divides 0 by
    0 there and halves its step forever; the plugin's finds every kink exactly."""
    rng = np.random.default_rng(0)
    w0, w1, b1 = rng.normal(size=(3, 6)), rng.normal(size=(3, 3)), rng.normal(size=3)
    b0 = -np.ones(3)  # at x = 0 every unit is off
    v = np.sign(w0.sum(0)) + 0.5
    kinks = np.sort(1.0 / (w0 @ v))  # w0 (t v) + b0 = 0
    assert np.all((kinks > 0) & (kinks < 9))  # in the search range [-9, 9], and all units
    # are off from -9 to the first kink: the logits are constant (b1) there
    asked = [0]

    def logits(x: np.ndarray) -> np.ndarray:
        asked[0] += len(x)
        assert asked[0] < 200_000, "the search does not end"
        return np.maximum(x @ w0.T + b0, 0.0) @ w1.T + b1

    oracle = art_extraction._oracle_class()(logits, input_shape=(6,), nb_classes=3)
    attack = art_extraction._fee_class()(oracle, num_neurons=3)
    attack.vector_u, attack.vector_v = np.zeros((1, 6)), v[None]
    x = rng.normal(size=(50, 6))
    extracted = attack.extract(x, delta_0=1.0, delta_init_value=1e-5, delta_sign=2e-5)
    found = np.sort([float(p[0] @ v / (v @ v)) for p in attack.critical_points])
    assert np.allclose(found, kinks, atol=1e-6)
    probe = rng.normal(size=(100, 6)) * 3
    assert np.allclose(extracted.predict(probe), logits(probe), atol=1e-3)


def test_extraction_is_exact_for_a_network_wider_than_its_input():
    """ART's sign recovery is underdetermined when the hidden layer is wider than the input
    (its own last layer is then off by logits of about 10 here); the linear term repairs it."""
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=(10, 6)), rng.normal(size=10)
    w1, b1 = rng.normal(size=(3, 10)), rng.normal(size=3)

    def logits(x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ w0.T + b0, 0.0) @ w1.T + b1

    oracle = art_extraction._oracle_class()(logits, input_shape=(6,), nb_classes=3)
    attack = art_extraction._fee_class()(oracle, num_neurons=10)
    line = np.random.default_rng(1)
    attack.vector_u, attack.vector_v = line.normal(size=(1, 6)), line.normal(size=(1, 6))
    extracted = attack.extract(rng.normal(size=(100, 6)), delta_0=1.0, delta_init_value=1e-5,
                               delta_sign=2e-5)
    probe = rng.normal(size=(500, 6)) * 3
    assert np.abs(extracted.predict(probe) - logits(probe)).max() < 1e-4
