"""Plugin ``autoattack``: the standard AutoAttack of Croce & Hein (2020), run by its reference code.

``autoattack`` (Linf) and ``autoattack-l2`` (L2) run ``version='standard'`` of the reference
implementation (``pyautoattack``, a packaging of fra31/auto-attack) through its own evaluation
loop: APGD-CE, then APGD-T (targeted DLR loss), FAB-T and Square with 5,000 queries, each on the
images the previous ones left correctly classified; 100 iterations and one restart each. This
is the number papers cite as "AutoAttack", and nothing of it is an option: the cheaper ensemble
ART ships (APGD-CE, APGD-DLR, Square with 1,000 queries) is ``art-autoattack``.

With fewer than 10 classes the targeted attacks aim at the other K - 1 classes (the reference
aims at 9); APGD-T's targeted DLR loss needs 4 classes, so with 2 or 3 it is left out.
The attack's seed is derived from its ``seed`` option and its name; the reference code reseeds
torch's global generator before each attack, so it runs on a forked generator and the run's
own stream is as it was afterwards.

The reference loop is run one attack at a time (``attacks_to_run`` of one, on the images the
previous ones left correctly classified, as the loop itself does; each attack reseeds, so the
examples are the same as one call's), which gives the robust accuracy after each attack: the
metrics ``after_apgd-ce`` ... ``after_square`` of every cell, the last one its robust accuracy.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from harness import (
    ENSEMBLE,
    ITERATIVE,
    REFERENCE,
    AttackSpec,
    HarnessError,
    MetricSpec,
    Norm,
    ResolvedOptions,
    UsageError,
    count,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch

DISTRIBUTION = "pyautoattack"
# The attacks of version='standard', in the order the reference runs them.
STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
# The reference's number of target classes (for 10 classes and more).
TARGET_CLASSES = 9
# Classes the targeted DLR loss of APGD-T needs (it reads the 4th largest logit).
APGD_T_MIN_CLASSES = 4
# Test images it is run on unless --n-test says otherwise (thousands of queries an image);
# --attack-batch-size sets how many go through the reference's loop at once.
BUDGET_IMAGES = 1000
NORMS = {"inf": "Linf", "2": "L2"}

OPTIONS = options(
    count("seed", 0, "seed of the random starts and Square's draws (derived per attack name)",
          low=0),
)


def _quiet_logger() -> logging.Logger:
    """A logger that drops everything: the reference logs its checks as warnings (zero
    gradients, fewer than 10 classes), which the harness's own checks cover."""
    logger = logging.Logger(DISTRIBUTION)
    logger.disabled = True
    return logger


@contextlib.contextmanager
def _trace_kept() -> Iterator[None]:
    """The reference's check for dynamic defenses calls ``sys.settrace(None)``, which would
    switch off a debugger's or coverage's tracing: the trace function is put back after."""
    trace = sys.gettrace()
    try:
        yield
    finally:
        sys.settrace(trace)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the block, then in the mode it was in."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


class StandardAutoAttack:
    """The standard AutoAttack in ``norm`` ("inf" or "2") with the reference's own loop."""

    def __init__(self, name: str, norm: str, seed: int):
        from harness import derive_seed

        self.name, self.norm = name, norm
        self.seed = derive_seed(seed, name)
        # Over every perturb call: the images seen, and those left correctly classified after
        # each attack (the clean check counts as the first).
        self._seen = 0
        self._left: dict[str, int] = {}

    def attacks(self, classes: int) -> list[str]:
        """The attacks run on a model with ``classes`` classes, in order."""
        return [a for a in STANDARD_ATTACKS
                if a != "apgd-t" or classes >= APGD_T_MIN_CLASSES]

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """Adversarial examples within ``eps`` in the attack's norm (the image itself where
        every attack failed); the model's weights get no gradients."""
        import torch
        from pyautoattack import AutoAttack

        from harness import frozen

        if eps is None:
            raise UsageError(f"{self.name} needs an eps")
        devices = [x.device] if x.device.type == "cuda" else []
        x, y = x.detach(), y.detach()
        with (_eval_mode(model), frozen(model), _trace_kept(),
              torch.random.fork_rng(devices=devices)):
            with torch.no_grad():
                logits = model(x)
            classes = int(logits.shape[-1])
            aa = AutoAttack(model, norm=NORMS[self.norm], eps=eps, seed=self.seed,
                            version="standard", device=x.device)
            aa.verbose = False
            aa.logger = aa.apgd.logger = aa.apgd_targeted.logger = _quiet_logger()
            aa.apgd_targeted.n_target_classes = min(TARGET_CLASSES, classes - 1)
            aa.fab.n_target_classes = min(TARGET_CLASSES, classes - 1)
            x_adv = x.clone()
            left = torch.nonzero(logits.argmax(1) == y).flatten()
            for attack in self.attacks(classes):
                if len(left):
                    aa.attacks_to_run = [attack]
                    adv, labels = aa.run_standard_evaluation(x[left], y[left],
                                                             batch_size=len(x))
                    broken = labels != y[left]
                    x_adv[left[broken]] = adv[broken]
                    left = left[~broken]
                self._left[attack] = self._left.get(attack, 0) + len(left)
        self._seen += len(x)
        return x_adv.detach()

    def metrics(self) -> dict[str, float]:
        """The robust accuracy after each attack, over every image :meth:`perturb` saw."""
        return {f"after_{attack}": left / self._seen for attack, left in self._left.items()
                if self._seen}


def _builder(name: str, norm: str) -> Callable[[ResolvedOptions], StandardAutoAttack]:
    """The ``build`` of the spec ``name``: the attack with the resolved ``seed``."""

    def build(resolved: ResolvedOptions) -> StandardAutoAttack:
        """The standard AutoAttack; a clear error when its reference code is missing."""
        try:
            import pyautoattack  # noqa: F401
        except ImportError as exc:
            raise HarnessError(f"{name} runs the reference AutoAttack: pip install "
                               f"{DISTRIBUTION}") from exc
        return StandardAutoAttack(name, norm, resolved.seed)

    return build


def _reference_version() -> str:
    """The installed version of the reference code (part of every cell's key)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "not installed"


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``autoattack`` (Linf) and ``autoattack-l2``."""
    config = {"implementation": f"{DISTRIBUTION} {_reference_version()}",
              "version": "standard", "attacks": ", ".join(STANDARD_ATTACKS),
              "iterations": 100, "square_queries": 5000, "restarts": 1}
    # The checks read the roles without the norm (an iterative attack far from chance at eps
    # 0.5 is flagged), which holds for Linf budgets only: the L2 one declares none.
    roles = {"autoattack": frozenset({ITERATIVE, ENSEMBLE, REFERENCE}),
             "autoattack-l2": frozenset[str]()}
    metrics = tuple(
        MetricSpec(name=f"after_{attack}", label=f"after {attack.upper()}", format="percent",
                   higher_is_better=True,
                   description=f"the standard AutoAttack's robust accuracy once its "
                               f"attacks up to {attack.upper()} have run")
        for attack in STANDARD_ATTACKS)
    variants: tuple[tuple[str, Norm, str], ...] = (("autoattack", "inf", "Linf"),
                                                  ("autoattack-l2", "2", "L2"))
    for name, norm, label in variants:
        register(AttackSpec(
            name=name,
            description=f"Standard AutoAttack (Croce & Hein), {label}, reference code: "
                        "APGD-CE, APGD-T, FAB-T, Square with 5,000 queries",
            build=_builder(name, norm),
            threat_model="white-box",
            norm=norm,
            survey_table="beside Tables 1-2",
            roles=roles[name],
            limits=("" if norm == "inf" else "an L2 budget: at a dataset's default eps (a Linf "
                    "one, 0.1 on digits and MNIST) its ball is tiny and it turns almost "
                    "nothing; give the L2 radii with --eps (e.g. 0.5 to 2 on MNIST)"),
            budget_images=BUDGET_IMAGES,
            options=OPTIONS,
            config=config,
            metrics=metrics,
        ))
