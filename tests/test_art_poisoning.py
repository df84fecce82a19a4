"""Tests of the poisoning attacks (plugins ``backdoor-poisoning``, ``feature-space-poisoning``,
``svm-poisoning``) and detectors (``poison-detectors``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.art.bridge import FEATURE_LAYER, FeatureTap, feature_classifier
from harness.contracts.categories import answered_categories
from harness.run.evaluators.poisoning import attack_success, detection_scores
from harness.testing import (
    check_attack_spec,
    check_defense_spec,
    corner_backdoor,
    tiny_classifier,
    tiny_context,
    tiny_image_data,
    trained_tiny_classifier,
)
from harness.util.errors import UsageError
from harness_plugins import (
    backdoor_poisoning,
    feature_space_poisoning,
    poison_detectors,
    svm_poisoning,
)

PLUGINS = (backdoor_poisoning, feature_space_poisoning, svm_poisoning, poison_detectors)
ATTACKS = ["backdoor", "clean-label-backdoor", "bullseye-polytope", "feature-collision"]
DETECTORS = ["spectral-signature", "activation-clustering", "strip", "neural-cleanse"]


@pytest.fixture
def registry(harness_plugin):
    """The registry with the plugin modules registered in-process (no entry points, so the
    test does not depend on whether they are installed as entry points too)."""
    for module in PLUGINS[:-1]:
        harness_plugin(module, entry_points=False)
    return harness_plugin(PLUGINS[-1], entry_points=False)


def _attack(registry, name: str, **given):
    """The attack ``name`` built with ``given`` over its declared defaults."""
    spec = registry.attack(name)
    return spec.build(spec.resolve_options(given))


def _detector(registry, name: str, **given):
    """The detector ``name`` built with ``given`` over its declared defaults."""
    spec = registry.defense(name)
    return spec.build(spec.resolve_options(given))


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_contract(registry, name):
    spec = registry.attack(name)
    assert spec.category == "poisoning" and spec.survey_table == "Table 3" and not spec.bounded
    check_attack_spec(spec, ctx=tiny_context(), options=dict(spec.smoke_options))


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_contract(registry, name):
    spec = registry.defense(name)
    assert spec.stage == "poisoning-detection" and answered_categories(spec) == {"poisoning"}
    check_defense_spec(spec, options=dict(spec.smoke_options))


@pytest.mark.parametrize("name", [*ATTACKS, "svm-poisoning", *DETECTORS])
def test_options_are_declared_and_config_holds_only_fixed_declarations(registry, name):
    spec = registry.attack(name) if name in registry.names("attack") else \
        registry.defense(name)
    assert not spec.options.passthrough and len(spec.options)
    assert set(spec.config) in ({"art_class"}, {"implementation"})
    assert not set(spec.config) & set(spec.options.names())


def test_adversarial_embedding_is_listed_as_not_provided(registry):
    assert "Keras" in backdoor_poisoning.NOT_PROVIDED["adversarial-embedding"]
    with pytest.raises(UsageError):
        registry.attack("adversarial-embedding")


def test_feature_tap_exposes_the_head_input_as_last_art_layer():
    model = tiny_classifier()
    x = tiny_image_data().x_test[:5]
    classifier = feature_classifier(model, (1, 8, 8), 3, torch.device("cpu"))
    assert classifier.layer_names[-1] == FEATURE_LAYER
    got = classifier.get_activations(x.numpy(), len(classifier.layer_names) - 1, 8)
    expected = model[:-1](x).detach().numpy()  # everything before the last nn.Linear
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not model[-1]._forward_pre_hooks, "the tap must not leave hooks on the model"
    with pytest.raises(UsageError, match="nn.Linear"):
        FeatureTap(nn.Sequential(nn.Flatten()))


def test_trigger_is_arts_pattern_and_scales():
    from art.attacks.poisoning.perturbations import add_pattern_bd

    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(backdoor_poisoning.Trigger()(x),
                                  add_pattern_bd(x, channels_first=True))
    big = backdoor_poisoning.Trigger().mask(224, 224)  # 8x8 blocks, two blocks from the corner
    assert big.sum() == 4 * 8 * 8 and big[208:216, 208:216].all()
    assert not big[-8:].any() and not big[:, -8:].any()


def test_backdoor_poisons_the_rate_with_the_target_label(registry):
    ctx = tiny_context()
    data = ctx.data
    p = _attack(registry, "backdoor", rate=0.25, target=1).poison(ctx)
    idx = p.is_poison.nonzero().flatten()
    assert len(idx) == round(0.25 * len(data.x_train))
    assert (p.y_train[idx] == 1).all() and (data.y_train[idx] != 1).all()
    mask = torch.from_numpy(backdoor_poisoning.Trigger().mask(8, 8))
    assert (p.x_train[idx][:, :, mask] == 1).all()
    assert torch.equal(p.x_train[~p.is_poison], data.x_train[~p.is_poison])
    assert torch.equal(p.y_train[~p.is_poison], data.y_train[~p.is_poison])
    assert len(p.x_eval) == int((data.y_test != 1).sum()) and (p.y_eval == 1).all()
    assert (p.x_eval[:, :, mask] == 1).all() and p.targeted


def test_backdoor_succeeds_after_training(registry):
    # 10x10 images: the trigger does not overlap any class's square of tiny_image_data
    ctx = tiny_context(tiny_image_data(size=10))
    p = _attack(registry, "backdoor").poison(ctx)
    victim = ctx.new_model()
    ctx.train(victim, p.x_train, p.y_train, "poisoned")
    assert attack_success(ctx.clean_model(), p) < 0.2
    assert attack_success(victim, p) > 0.9


def test_clean_label_backdoor_keeps_labels_and_budget(registry):
    ctx = tiny_context()
    data = ctx.data
    p = _attack(registry, "clean-label-backdoor", max_iter=5, eps=0.05).poison(ctx)
    assert torch.equal(p.y_train, data.y_train)
    assert p.is_poison.any() and (data.y_train[p.is_poison] == 0).all()
    outside = ~torch.from_numpy(backdoor_poisoning.Trigger().mask(8, 8))
    delta = (p.x_train - data.x_train)[:, :, outside]
    assert float(delta.abs().max()) <= 0.05 + 1e-6
    assert float(delta[p.is_poison].abs().max()) > 0.01, "PGD did not perturb the poisons"


@pytest.mark.parametrize("name", ["bullseye-polytope", "feature-collision"])
def test_feature_space_poisons_are_clean_label_and_bounded(registry, name):
    ctx = tiny_context()
    data = ctx.data
    p = _attack(registry, name, max_iter=30 if name == "bullseye-polytope" else 10,
                n_poison=3, eps=0.08, target_class=2).poison(ctx)
    assert torch.equal(p.y_train, data.y_train), "clean-label: labels must stay"
    assert int(p.is_poison.sum()) == 3 and (data.y_train[p.is_poison] == 0).all()
    assert float((p.x_train - data.x_train).abs().max()) <= 0.08 + 1e-6
    assert torch.equal(p.x_train[~p.is_poison], data.x_train[~p.is_poison])
    assert len(p.x_eval) == 1 and p.y_eval.tolist() == [0]
    target = int(p.details["target_index"])
    assert torch.equal(p.x_eval[0], data.x_test[target]) and int(data.y_test[target]) == 2
    assert p.details["feature_gap_after"] < p.details["feature_gap_before"]


def test_bullseye_poisons_depend_on_the_target():
    # ART 1.20.1's BullseyePolytopeAttackPyTorch returns the same poisons for any target
    tap = FeatureTap(trained_tiny_classifier()).eval()
    data = tiny_image_data()
    bases = data.x_train[data.y_train == 0][:3]
    a, b = (feature_space_poisoning.bullseye_polytope(tap, data.x_test[i:i + 1], bases, 0.1,
                                                      20, 0.04)
            for i in (1, 2))  # targets of classes 1 and 2
    assert not torch.allclose(a, b)


def test_attack_options_are_checked(registry):
    with pytest.raises(UsageError, match="no option 'rat'"):
        _attack(registry, "backdoor", rat=0.1)
    with pytest.raises(UsageError, match="'rate'.*out of range"):
        _attack(registry, "backdoor", rate=1.5)
    with pytest.raises(UsageError, match="'trigger_scale'"):
        _attack(registry, "backdoor", trigger_scale=0)
    with pytest.raises(UsageError, match="'n_poison'"):
        _attack(registry, "feature-collision", n_poison=0)
    with pytest.raises(UsageError, match="'max_iter'"):
        _attack(registry, "svm-poisoning", max_iter=1)
    with pytest.raises(UsageError, match="pp_poison must be below 1"):
        _attack(registry, "clean-label-backdoor", pp_poison=1)
    with pytest.raises(UsageError, match="classes"):
        _attack(registry, "svm-poisoning", classes=[1])
    # checks that need the data: class indices against the number of classes
    with pytest.raises(UsageError, match="target must be a class index"):
        _attack(registry, "backdoor", target=7).poison(tiny_context())
    with pytest.raises(UsageError, match="differ"):
        _attack(registry, "bullseye-polytope", target_class=1, base_class=1).poison(
            tiny_context())
    with pytest.raises(UsageError, match="base_class must be a class index"):
        _attack(registry, "feature-collision", base_class=3).poison(tiny_context())


def _svm_context(harness_plugin):
    """A tiny context whose victim is the ``svm`` model of harness_plugins.sklearn_models."""
    sklearn_models = pytest.importorskip(
        "harness_plugins.sklearn_models",
        reason="harness_plugins.sklearn_models (the svm model) is not importable")
    from harness.contracts.data import ModelInput

    spec = harness_plugin(sklearn_models, entry_points=False).model("svm")
    options = spec.resolve_options({})
    return tiny_context(new_model=lambda: spec.build(ModelInput(1, 8, 8, 3), None, options),
                        fit=spec.fit)


def test_svm_poisoning_contract_and_construction(registry, harness_plugin):
    ctx = _svm_context(harness_plugin)
    assert type(ctx.clean_model()).__name__ == "SklearnLinear"
    spec = registry.attack("svm-poisoning")
    assert spec.needs == {"svm"}
    options = {**spec.smoke_options, "classes": [1, 2]}
    p = check_attack_spec(spec, ctx=ctx, options=options)
    n, n_poison = len(ctx.data.x_train), options["n_poison"]
    assert torch.equal(p.x_train[:n], ctx.data.x_train)
    assert torch.equal(p.y_train[:n], ctx.data.y_train)
    assert p.is_poison[n:].all() and not p.is_poison[:n].any()
    assert len(p.x_train) == n + n_poison
    assert set(p.y_train[n:].tolist()) <= {1, 2} and p.details["mean_l2_moved"] > 0
    assert not p.targeted and set(p.y_eval.tolist()) == {1, 2}
    assert len(p.x_eval) == int(((ctx.data.y_test == 1) | (ctx.data.y_test == 2)).sum())


def _poisoned_victim():
    ctx = tiny_context()
    p = corner_backdoor(ctx.data)
    victim = ctx.new_model()
    ctx.train(victim, p.x_train, p.y_train, "poisoned victim")
    return ctx, p, victim.eval()


def test_spectral_signature_flags_poisons_of_the_target_class(registry):
    ctx, p, victim = _poisoned_victim()
    flags = _detector(registry, "spectral-signature", expected_pp_poison=0.25).detect(
        victim, p.x_train, p.y_train, ctx)
    in_target = flags & (p.y_train == 0)
    assert in_target.any() and bool((p.is_poison[in_target]).all())
    assert detection_scores(flags, p.is_poison)["recall"] > 0.9


def test_activation_clustering_finds_a_blatant_trigger(registry):
    ctx, p, victim = _poisoned_victim()
    flags = _detector(registry, "activation-clustering").detect(victim, p.x_train, p.y_train,
                                                                 ctx)
    assert detection_scores(flags, p.is_poison)["recall"] > 0.8


class _WiredBackdoor(nn.Module):
    """A trained tiny classifier with a hard-wired backdoor: a bright 2x2 corner means 0."""

    def __init__(self):
        super().__init__()
        self.base = trained_tiny_classifier()

    def forward(self, x):
        out = self.base(x)
        bright = (x[:, :, -2:, -2:].mean((1, 2, 3)) > 0.45).float()
        return out + 100.0 * bright[:, None] * torch.eye(out.shape[1])[0]


def test_strip_flags_low_entropy_inputs(registry):
    ctx = tiny_context()
    p = corner_backdoor(ctx.data)
    model = _WiredBackdoor().eval()
    strip = _detector(registry, "strip")
    h = strip.entropies(model, p.x_train, ctx.data.x_test, torch.Generator().manual_seed(0))
    assert float(h[p.is_poison].max()) < 0.01 < float(h[~p.is_poison].min())
    scores = detection_scores(strip.detect(model, p.x_train, p.y_train, ctx), p.is_poison)
    assert scores["recall"] == 1.0 and scores["precision"] > 0.6


def test_neural_cleanse_finds_the_infected_class_and_its_poisons(registry):
    ctx, p, victim = _poisoned_victim()
    # On 8x8 images the 2x2 trigger is 6% of the image: at the default L1 cost (1e-3) the
    # reversed mask of this victim settles on one trigger pixel plus two of class 0's own,
    # and blanking it flips only 1 of 19 poisons (measured); a lighter cost recovers the
    # whole trigger. Real-size images keep the default.
    flags = _detector(registry, "neural-cleanse", steps=150, init_cost=1e-4).detect(
        victim, p.x_train, p.y_train, ctx)
    scores = detection_scores(flags, p.is_poison)
    assert scores["recall"] > 0.8 and scores["precision"] > 0.8
    norms = torch.tensor([1.0, 10.0, 11.0, 9.0, 10.5])
    assert poison_detectors.NeuralCleanse.infected(norms, 2.0).tolist() == [
        True, False, False, False, False]


def test_detector_options_are_checked(registry):
    with pytest.raises(UsageError, match="no option 'samples'. Did you mean: num_samples"):
        _detector(registry, "strip", samples=3)
    with pytest.raises(UsageError, match="expected_pp_poison"):
        _detector(registry, "spectral-signature", expected_pp_poison=2)
    with pytest.raises(UsageError, match="false_acceptance_rate must be below 1"):
        _detector(registry, "strip", false_acceptance_rate=1)
    with pytest.raises(UsageError, match="'cluster_analysis'.*one of"):
        _detector(registry, "activation-clustering", cluster_analysis="largest")
    with pytest.raises(UsageError, match="'nb_clusters'"):
        _detector(registry, "activation-clustering", nb_clusters=1)
    ctx, p, victim = _poisoned_victim()
    with pytest.raises(UsageError, match="nb_dims"):
        _detector(registry, "activation-clustering", nb_dims=60).detect(victim, p.x_train,
                                                                         p.y_train, ctx)
