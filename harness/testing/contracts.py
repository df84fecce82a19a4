"""The contract checks: a spec's declared fields checked as registration checks them, its
factory run on tiny inputs, and what the runner relies on asserted."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch
from torch import nn

from harness.contracts.categories import category_of, not_built, stage_of
from harness.contracts.context import AttackContext, PoisonedSet
from harness.contracts.data import DataOptions, ImageData, ModelInput, to_float
from harness.contracts.options import ResolvedOptions
from harness.contracts.specs import (
    LP_NORMS,
    Attack,
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    InputTransformation,
    ModelAttack,
    ModelSpec,
    PoisonDetector,
    PoisoningAttack,
    Spec,
    TrainingDefense,
)
from harness.planning.registry import KINDS
from harness.planning.spec_checks import spec_problems
from harness.testing.tiny import (
    corner_backdoor,
    reaching_bounds,
    tiny_classifier,
    tiny_context,
    tiny_image_data,
    trained_tiny_classifier,
)
from harness.train.loop import TrainContext, TrainData, TrainReport, TrainSettings
from harness.util.errors import DatasetNotFoundError


def _check_common(spec: Spec, kind: type) -> None:
    assert isinstance(spec, kind), f"expected {kind.__name__}, got {type(spec).__name__}"
    assert spec.name and spec.name == spec.name.strip() and "," not in spec.name, spec.name
    assert spec.name != "all", "'all' is reserved on the command line"
    problems = spec_problems(KIND_NAMES[kind], spec)
    assert not problems, f"{spec.name}: " + "; ".join(problems)


KIND_NAMES: dict[type, str] = {spec_type: name for name, spec_type in KINDS.items()}


#: The eps the tiny data and contexts declare as their dataset's.
TINY_DATASET_EPS = 0.1


def _options(spec: ModelSpec | AttackSpec | DefenseSpec,
             options: Mapping[str, Any] | None) -> ResolvedOptions:
    """What ``build`` gets: ``options`` (None: the spec's smoke_options) over the defaults,
    options declared ``dataset_eps`` left null set to the tiny data's eps (0.1)."""
    return spec.resolve_options(spec.smoke_options if options is None else options,
                                dataset_eps=TINY_DATASET_EPS)


def check_dataset_spec(spec: DatasetSpec, options: DataOptions | None = None) -> ImageData:
    """Check a dataset spec's declared fields, load it and check the data.

    The fields are checked as registration checks them (a one-line description, a callable
    ``load``, ``default_eps`` in (0, 1], ``mean`` and ``std`` together, one positive value
    per channel). Then ``spec.load(options)`` runs; with ``options=None`` it loads with
    ``DataOptions()`` (``$HARNESS_DATA``, else ``./data``, no download) and **skips the
    test** (``pytest.skip`` with the loader's message) when that raises
    :class:`~harness.util.errors.DatasetNotFoundError`: a dataset whose files are not on this
    machine. Pass ``options`` to load from a given root; a missing dataset then fails.
    The data must be float32 images in [0, 1] (or uint8 ones: 255 times those) of one
    shape, int64 labels in ``range(num_classes)``, non-empty train and test sets, and
    ``mean``/``std`` (when declared) must have one value per channel.
    """
    _check_common(spec, DatasetSpec)
    if options is None:
        try:
            data = spec.load(DataOptions())
        except DatasetNotFoundError as exc:
            message = str(exc)
            pytest.skip(message if spec.name in message else f"{spec.name}: {message}")
    else:
        data = spec.load(options)
    assert isinstance(data, ImageData), f"{spec.name}: load() must return an ImageData"
    assert isinstance(data.num_classes, int) and data.num_classes >= 2, \
        f"{spec.name}: num_classes must be an integer >= 2, got {data.num_classes!r}"
    assert not data.class_names or len(data.class_names) == data.num_classes, \
        f"{spec.name}: class_names must name every class (or be empty)"
    assert len(data.x_train) > 0 and len(data.x_test) > 0, f"{spec.name}: an empty split"
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype in (torch.float32, torch.uint8), \
            f"{spec.name}: images must be float32 in [0, 1] or uint8"
        if x.dtype == torch.float32:
            assert float(x.min()) >= 0 and float(x.max()) <= 1, \
                f"{spec.name}: pixels not in [0, 1]"
        assert y.dtype == torch.int64, f"{spec.name}: labels must be int64"
        assert int(y.min()) >= 0 and int(y.max()) < data.num_classes, \
            f"{spec.name}: a label outside range(num_classes)"
    if spec.mean is not None:
        assert len(spec.mean) == data.image_shape[0], \
            f"{spec.name}: mean has {len(spec.mean)} values for {data.image_shape[0]} channels"
    return data


def check_model_spec(spec: ModelSpec, variant: str | None = None,
                     model_input: ModelInput | None = None, *,
                     options: Mapping[str, Any] | None = None) -> nn.Module:
    """Build the model, run a forward and backward pass, check shapes and gradients.

    ``variant`` is required exactly when the family takes one. ``model_input`` defaults to
    1x8x8 images and 10 classes. ``options`` are given to ``build`` over the declared
    defaults (None: the spec's ``smoke_options``; ``{}``: the defaults alone).
    """
    _check_common(spec, ModelSpec)
    assert spec.takes_variant == (variant is not None), \
        f"{spec.name}: pass a variant exactly when the family takes one"
    mi = model_input or ModelInput(1, 8, 8, 10)
    torch.manual_seed(0)
    model = spec.build(mi, variant, _options(spec, options))
    assert isinstance(model, nn.Module)
    x = torch.rand(2, mi.channels, mi.height, mi.width, requires_grad=True)
    model.eval()
    out = model(x)
    assert out.shape == (2, mi.num_classes), f"{spec.name}: logits shape {tuple(out.shape)}"
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), \
        f"{spec.name}: no gradient reaches the input"
    return model


#: The eps of the evasion contract unless given: large, so that an attack that forgets to
#: clamp to [0, 1] leaves it on the contract's images (which reach exactly 0 and 1).
CONTRACT_EPS = 0.3


def check_attack_spec(spec: AttackSpec, eps: float = CONTRACT_EPS, *,
                      ctx: AttackContext | None = None,
                      model: nn.Module | None = None,
                      options: Mapping[str, Any] | None = None) -> Any:
    """Run the attack on tiny inputs and check what the runner relies on.

    Evasion: attack a tiny trained classifier on 16 test images stretched so that their
    pixels reach exactly 0 and 1 (:func:`reaching_bounds`), at a large ``eps``
    (:data:`CONTRACT_EPS`, 0.3), so an attack that forgets to clamp fails; check the type,
    shape and dtype (float32 in, float32 out), range, budget (a bounded attack gets ``eps``
    and must stay within it in its norm; an unbounded one gets None), and that inputs and
    weights are kept. Every failure says how many images were used; ``x_adv`` is returned.
    Poisoning: check the :class:`PoisonedSet` against the tiny training set. Inference and
    extraction: check the metrics are finite numbers. ``ctx`` and ``model`` replace the tiny
    context and victim (e.g. for attacks that need an scikit-learn model). ``options`` are
    given to ``build`` over the declared defaults (None: the spec's ``smoke_options``, the
    tiny budgets; ``{}``: the declared defaults). The declared fields are checked first, as
    registration checks them.
    """
    _check_common(spec, AttackSpec)
    contract = CONTRACTS[category_of(spec).name]
    return contract(spec, _options(spec, options), eps=eps, ctx=ctx, model=model)


def model_attack_contract(spec: AttackSpec, resolved: ResolvedOptions, *, eps: float,
                          ctx: AttackContext | None, model: nn.Module | None) -> Any:
    """Inference and extraction: finite numeric metrics, the victim's weights kept."""
    ctx = ctx or tiny_context()
    victim = model if model is not None else ctx.clean_model()
    before = {k: v.clone() for k, v in victim.state_dict().items()}
    attack = spec.build(resolved)
    assert isinstance(attack, ModelAttack), not_built(attack, ModelAttack, f"attack {spec.name}")
    metrics = attack.run(victim, ctx)
    assert isinstance(metrics, dict) and metrics, f"{spec.name}: no metrics returned"
    for key, value in metrics.items():
        assert isinstance(key, str) and isinstance(value, int | float), (key, value)
        assert math.isfinite(value), f"{spec.name}: metric {key} is {value}"
    assert all(torch.equal(v, victim.state_dict()[k]) for k, v in before.items()), \
        f"{spec.name}: the attack changed the victim's weights"
    return metrics


def _evasion_images(ctx: AttackContext | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The contract's test images (:func:`reaching_bounds` of the first 16 of the tiny data
    or ``ctx``'s) and their labels."""
    data = ctx.data if ctx is not None else tiny_image_data()
    return reaching_bounds(to_float(data.x_test[:16])), data.y_test[:16]


def _check_adversarial(where: str, spec: AttackSpec, x: torch.Tensor, x_adv: Any,
                       eps: float) -> None:
    """What the evaluator will verify of ``x_adv``, with messages prefixed by ``where``."""
    assert isinstance(x_adv, torch.Tensor), \
        f"{where}: perturb() returned a {type(x_adv).__name__}, not a tensor"
    assert x_adv.shape == x.shape, \
        f"{where}: perturb() returned shape {tuple(x_adv.shape)} for {tuple(x.shape)}"
    assert x_adv.dtype == x.dtype, \
        (f"{where}: perturb() returned {x_adv.dtype} images for {x.dtype} ones; return the "
         f"input's dtype (x_adv.to(x.dtype)): the harness scores and stores them as {x.dtype}")
    low, high = float(x_adv.min()), float(x_adv.max())
    assert low >= 0 and high <= 1, \
        (f"{where}: left [0, 1] (min {low:.4g}, max {high:.4g}); clamp the adversarial "
         "images to [0, 1] after every step")
    delta = (x_adv - x).flatten(1)
    bound = {"inf": delta.abs().amax(1), "2": delta.norm(dim=1), "1": delta.abs().sum(1),
             "0": (delta != 0).sum(1).float()}.get(spec.norm, delta.abs().amax(1))
    if spec.bounded and spec.norm in LP_NORMS:
        assert float(bound.max()) <= eps * (1 + 1e-5) + 1e-6, \
            f"{where}: perturbation {float(bound.max())} exceeds eps {eps} in L{spec.norm}"


def evasion_contract(spec: AttackSpec, resolved: ResolvedOptions, *, eps: float,
                     ctx: AttackContext | None, model: nn.Module | None) -> Any:
    """Evasion: on 16 test images whose pixels reach exactly 0 and 1, at ``eps``: a tensor of
    the input's shape and dtype, in [0, 1], within eps in the attack's norm when bounded;
    input and weights kept. Every message says how many images it used."""
    model = model if model is not None else trained_tiny_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _evasion_images(ctx)
    where = (f"{spec.name} (evasion contract: {len(x)} test images with pixels at exactly 0 "
             f"and 1, eps {eps if spec.bounded else 'None (unbounded)'})")
    x_copy = x.clone()
    attack = spec.build(resolved)
    assert isinstance(attack, Attack), not_built(attack, Attack, f"attack {spec.name}")
    x_adv = attack.perturb(model, x, y, eps if spec.bounded else None)
    assert torch.equal(x, x_copy), f"{where}: the attack modified its input in place"
    _check_adversarial(where, spec, x, x_adv, eps)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), \
        f"{where}: the attack changed the model's weights"
    return x_adv


def poisoning_contract(spec: AttackSpec, resolved: ResolvedOptions, *, eps: float,
                       ctx: AttackContext | None, model: nn.Module | None) -> PoisonedSet:
    """Poisoning: a PoisonedSet mixing clean and poisoned samples in [0, 1], data kept."""
    ctx = ctx or tiny_context()
    data = ctx.data
    x_before = data.x_train.clone()
    attack = spec.build(resolved)
    assert isinstance(attack, PoisoningAttack), \
        not_built(attack, PoisoningAttack, f"attack {spec.name}")
    poisoned = attack.poison(ctx)
    assert isinstance(poisoned, PoisonedSet), f"{spec.name}: poison() must return a PoisonedSet"
    assert torch.equal(data.x_train, x_before), f"{spec.name}: modified the clean data in place"
    assert poisoned.x_train.shape[1:] == data.x_train.shape[1:]
    assert poisoned.x_eval.shape[1:] == data.x_train.shape[1:]
    for x in (poisoned.x_train, poisoned.x_eval):
        assert float(x.min()) >= 0 and float(x.max()) <= 1, f"{spec.name}: left [0, 1]"
    assert poisoned.y_train.dtype == torch.int64 and poisoned.y_eval.dtype == torch.int64
    assert 0 < int(poisoned.is_poison.sum()) < len(poisoned.is_poison), \
        f"{spec.name}: the poisoned set must mix clean and poisoned samples"
    assert len(poisoned.x_eval) > 0, f"{spec.name}: no inputs to measure the attack on"
    return poisoned


def certification_contract(spec: AttackSpec, resolved: ResolvedOptions, *, eps: float,
                           ctx: AttackContext | None, model: nn.Module | None) -> Any:
    """Certification: on 8 test images of a tiny trained classifier, certificates that pass
    the evaluator's check (classes in [-1, classes), radii in [0, max_radius()], 0 where it
    abstains), PREDICT classes of the same kind, a differentiable smoothed classifier giving
    log-probabilities; input and weights kept."""
    from harness.contracts.certification import Certifier, check_certificates

    model = model if model is not None else trained_tiny_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = ctx.data if ctx is not None else tiny_image_data()
    x, k = to_float(data.x_test[:8]), data.num_classes
    x_copy = x.clone()
    certifier = spec.build(resolved)
    assert isinstance(certifier, Certifier), \
        not_built(certifier, Certifier, f"attack {spec.name}")
    cap = float(certifier.max_radius())
    assert math.isfinite(cap) and cap > 0, f"{spec.name}: max_radius() is {cap}"
    found = check_certificates(spec.name, certifier.certify(model, x), len(x), k, cap)
    predicted = certifier.predict(model, x)
    assert predicted.dtype == torch.int64 and predicted.shape == (len(x),), \
        f"{spec.name}: predict() must return {len(x)} int64 classes"
    assert int(predicted.min()) >= -1 and int(predicted.max()) < k
    x_grad = x.clone().requires_grad_(True)
    log_probs = certifier.smoothed(model)(x_grad)
    assert log_probs.shape == (len(x), k), f"{spec.name}: smoothed() gave {log_probs.shape}"
    (grad,) = torch.autograd.grad(log_probs.logsumexp(1).sum() + log_probs[:, 0].sum(), x_grad)
    assert torch.isfinite(grad).all(), f"{spec.name}: smoothed() is not differentiable"
    assert torch.equal(x, x_copy), f"{spec.name}: the certifier modified its input in place"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), \
        f"{spec.name}: the certifier changed the model's weights"
    return found


def corruption_contract(spec: AttackSpec, resolved: ResolvedOptions, *, eps: float,
                        ctx: AttackContext | None, model: nn.Module | None) -> Any:
    """Corruption: on 4 test images, every corruption the suite names for their shape at
    every severity passes the evaluator's check (shape, dtype, [0, 1]), leaves its input as
    it was, and gives the same images for generators seeded alike; returns them by
    ``name/severity``."""
    from harness.contracts.corruption import Corruptions, check_corrupted

    data = ctx.data if ctx is not None else tiny_image_data()
    x = to_float(data.x_test[:4])
    x_copy = x.clone()
    suite = spec.build(resolved)
    assert isinstance(suite, Corruptions), not_built(suite, Corruptions, f"attack {spec.name}")
    c, h, w = data.image_shape
    names = list(suite.corruptions((c, h, w)))
    assert names, f"{spec.name}: no corruption for images of shape {(c, h, w)}"
    out = {}
    for name in names:
        for severity in suite.severities(name):
            made = [check_corrupted(spec.name, name, severity, x, suite.corrupt(
                name, x, severity, torch.Generator().manual_seed(7))) for _ in range(2)]
            assert torch.equal(made[0], made[1]), \
                f"{spec.name}: {name} at severity {severity} differs for the same seed"
            out[f"{name}/{severity}"] = made[0]
    assert torch.equal(x, x_copy), f"{spec.name}: the suite modified its input in place"
    return out


def check_defense_spec(spec: DefenseSpec, *, options: Mapping[str, Any] | None = None,
                       ctx: AttackContext | None = None,
                       poisoned: PoisonedSet | None = None) -> Any:
    """Run the defense on tiny inputs and check what the runner relies on.

    Training: train a tiny classifier and check it learned and reported honestly.
    Input transformation: check shape, range and that the input is kept. Poisoning
    detection: run it on ``poisoned`` (default: a tiny set with a bright-corner trigger on a
    fifth of the samples) and check the mask's shape and type. ``options`` are given to
    ``build`` over the declared defaults (None: the spec's ``smoke_options``; ``{}``: the
    declared defaults). The declared fields are checked first, as registration checks them.
    """
    _check_common(spec, DefenseSpec)
    contract = STAGE_CONTRACTS[stage_of(spec).name]
    return contract(spec, _options(spec, options), ctx=ctx, poisoned=poisoned)


def transformation_contract(spec: DefenseSpec, resolved: ResolvedOptions, *,
                            ctx: AttackContext | None, poisoned: PoisonedSet | None) -> Any:
    """Input transformations: shape, dtype, range; the input kept."""
    x = tiny_image_data().x_test[:8]
    x_copy = x.clone()
    transformation = spec.build(resolved)
    assert isinstance(transformation, InputTransformation), \
        not_built(transformation, InputTransformation, f"defense {spec.name}")
    out = transformation.transform(x)
    assert torch.equal(x, x_copy), f"{spec.name}: the transformation modified its input"
    assert out.shape == x.shape and out.dtype == x.dtype, f"{spec.name}: shape or dtype"
    assert float(out.min()) >= 0 and float(out.max()) <= 1, f"{spec.name}: left [0, 1]"
    return out


def detector_contract(spec: DefenseSpec, resolved: ResolvedOptions, *,
                      ctx: AttackContext | None, poisoned: PoisonedSet | None) -> Any:
    """Poisoning detectors: one boolean flag per training sample."""
    ctx = ctx or tiny_context()
    poisoned = poisoned or corner_backdoor(ctx.data)
    victim = ctx.new_model()
    ctx.train(victim, poisoned.x_train, poisoned.y_train, "poisoned victim")
    victim.eval()
    detector = spec.build(resolved)
    assert isinstance(detector, PoisonDetector), \
        not_built(detector, PoisonDetector, f"defense {spec.name}")
    flagged = detector.detect(victim, poisoned.x_train, poisoned.y_train, ctx)
    assert isinstance(flagged, torch.Tensor) and flagged.dtype == torch.bool, \
        f"{spec.name}: detect() must return a boolean tensor"
    assert flagged.shape == (len(poisoned.x_train),), f"{spec.name}: one flag per sample"
    return flagged


def training_contract(spec: DefenseSpec, resolved: ResolvedOptions, *,
                      ctx: AttackContext | None, poisoned: PoisonedSet | None) -> Any:
    """Training defenses: the weights change, the report is honest."""
    data = tiny_image_data()
    model = tiny_classifier(num_classes=data.num_classes)
    before = [p.detach().clone() for p in model.parameters()]
    settings = TrainSettings(epochs=3, batch_size=32, lr=1e-2, patience=3, seed=0)
    train_ctx = TrainContext(settings=settings, device=torch.device("cpu"), dataset_eps=0.1,
                             show_progress=False)
    defense = spec.build(resolved)
    assert isinstance(defense, TrainingDefense), \
        not_built(defense, TrainingDefense, f"defense {spec.name}")
    report = defense.train(model, TrainData.split(data, 0.1, 0), train_ctx)
    assert isinstance(report, TrainReport)
    assert 1 <= report.epochs_run <= settings.epochs
    assert report.seconds > 0 and report.images > 0 and math.isfinite(report.images_per_s)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), \
        f"{spec.name}: training left the weights unchanged"
    return report


#: The contract check of each attack category, by name (a test keeps it in step with
#: :data:`harness.contracts.categories.CATEGORIES`).
CONTRACTS: dict[str, Callable[..., Any]] = {
    "evasion": evasion_contract,
    "poisoning": poisoning_contract,
    "inference": model_attack_contract,
    "extraction": model_attack_contract,
    "certification": certification_contract,
    "corruption": corruption_contract,
}
#: The contract check of each defense stage, by name.
STAGE_CONTRACTS: dict[str, Callable[..., Any]] = {
    "training": training_contract,
    "input-transformation": transformation_contract,
    "poisoning-detection": detector_contract,
}
