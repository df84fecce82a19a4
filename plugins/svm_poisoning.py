"""Plugin ``svm-poisoning``: Biggio et al.'s poisoning of a linear SVM (survey Table 3), by ART.

``svm-poisoning`` (ART ``PoisoningAttackSVM``) is an availability attack: label-flipped
points are moved by gradient ascent on a linear SVM's validation hinge loss and appended to
the training set; it needs the ``svm`` victim. torch, NumPy, ART and scikit-learn are
imported only when the attack runs, so registering the plugin stays cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness import (
    AttackSpec,
    Option,
    ResolvedOptions,
    UsageError,
    count,
    derive_seed,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:

    from harness import AttackContext, PoisonedSet

SVM_OPTIONS = options(
    Option(name="classes", type="int-list", default=[0, 1], min=0,
           help="the two class indices [a, b] of the binary problem"),
    count("n_poison", 10, "poison points appended"),
    positive("step", 0.5, "L2 length of each gradient-ascent step"),
    positive("eps", 1.0, "ART's stopping rule: a point moves on while its step changes the loss "
             "by less than eps"),
    count("max_iter", 20, "gradient-ascent steps per point (ART needs at least 2)", low=2),
    count("n_attacker_train", 200, "at most this many images train the attacker's surrogate"),
    count("n_attacker_val", 100, "at most this many images (and a third of the pair) form "
          "ART's validation set"),
    Option(name="C", type="float", default=None, nullable=True, min=0, min_exclusive=True,
           help="the surrogate's C; null: the victim's, else 1.0"),
)


def _art_linear_svc(c: float) -> Any:
    """ART's ScikitlearnSVC around ``SVC(kernel='linear', C=c)``.

    ``probability=False`` is passed explicitly: scikit-learn 1.9 turned its default into the
    string 'deprecated', which ART reads as true and then calls ``predict_proba``. The
    kernel is set to ``x1 @ x2.T``, the linear kernel scikit-learn computes, without its
    per-call input validation, which ART's element-by-element Q matrices call thousands of
    times per step (5 ms each).
    """
    import numpy as np
    from art.estimators.classification.scikitlearn import ScikitlearnSVC
    from sklearn.svm import SVC

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*probability.*", category=FutureWarning)
        svc = SVC(C=c, kernel="linear", probability=False)
    classifier = ScikitlearnSVC(model=svc, clip_values=(0.0, 1.0))
    classifier._kernel = lambda a, b: np.asarray(a) @ np.asarray(b).T
    return classifier


class SvmPoisoning:
    """Biggio et al.'s SVM poisoning through ART's ``PoisoningAttackSVM`` (an availability
    attack; ART's attack is binary).

    Construction: the training images of the two ``classes`` (a, b) are shuffled (seeded);
    ART's objective (the hinge loss on validation points) uses ``n_attacker_val`` of them
    (at most a third), and the attacker's surrogate, a linear SVC (C: the victim's ``C`` when
    its clean model exposes ``sklearn_estimator()``, else 1.0), is fit to at most
    ``n_attacker_train`` of the others (ART refits it at every step). ``n_poison`` attack
    points start at surrogate-training images (alternating classes) with the flipped label;
    ART moves each by gradient ascent on that loss
    (``step`` in L2, up to ``max_iter`` steps, ART's stopping rule with ``eps``). The points
    are appended to the FULL training set with the labels ART returns (the flipped ones),
    on which the runner retrains the victim (all classes). ``x_eval``: the cell's test images
    of the two classes with their true labels; success = misclassified (untargeted).
    ``options`` are resolved (every key of :data:`SVM_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.o = options
        classes = self.o.classes
        if len(classes) != 2 or classes[0] == classes[1]:
            raise UsageError(f"svm-poisoning.classes must be two different class indices, "
                             f"e.g. [0,1]; got {classes!r}")

    def _c(self, ctx: AttackContext) -> float:
        if self.o.C is not None:
            return float(self.o.C)
        clean = ctx.clean_model()
        estimator = getattr(clean, "sklearn_estimator", None)
        return float(getattr(estimator(), "C", 1.0)) if callable(estimator) else 1.0

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The full training set plus the poison points; the two classes' test images."""
        import numpy as np
        import torch
        from art.attacks.poisoning import PoisoningAttackSVM

        from harness import PoisonedSet, numpy_seed, one_hot, to_numpy, to_tensor

        data = ctx.data
        a, b = self.o.classes
        if max(a, b) >= data.num_classes:
            raise UsageError(f"svm-poisoning.classes must be class indices in "
                             f"0..{data.num_classes - 1}, got {[a, b]}")
        x, y = data.x_train, data.y_train
        pair = ((y == a) | (y == b)).nonzero().flatten().cpu()
        shuffle = torch.Generator().manual_seed(derive_seed(ctx.seed, "svm-poisoning",
                                                            "attacker split"))
        pair = pair[torch.randperm(len(pair), generator=shuffle)]
        n_p = self.o.n_poison
        n_val = min(self.o.n_attacker_val, len(pair) // 3)
        n_tr = min(self.o.n_attacker_train, len(pair) - n_val)
        if n_val < 1 or n_p > n_tr:
            raise UsageError(f"svm-poisoning: classes {a} and {b} have {len(pair)} training "
                             f"images, too few for a surrogate of {n_tr} images, {n_p} of "
                             "them poison starts, and a validation set")
        train, val = pair[:n_tr].numpy(), pair[n_tr:n_tr + n_val].numpy()
        flat = to_numpy(x.flatten(1))
        binary = (y == b).long().cpu().numpy()
        # start points: surrogate-training images, alternating between the two classes
        pools = [list(train[binary[train] == c]) for c in (0, 1)]
        start: list[int] = []
        while len(start) < n_p:
            for pool in pools:
                if pool and len(start) < n_p:
                    start.append(int(pool.pop(0)))
        surrogate = _art_linear_svc(self._c(ctx))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*probability.*",
                                    category=FutureWarning)
            surrogate.fit(flat[train], one_hot(binary[train], 2))
            attack = PoisoningAttackSVM(
                surrogate, step=self.o.step, eps=self.o.eps,
                x_train=flat[train], y_train=one_hot(binary[train], 2), x_val=flat[val],
                y_val=one_hot(binary[val], 2), max_iter=self.o.max_iter, verbose=False)
            with numpy_seed(derive_seed(ctx.seed, "svm-poisoning", "ART poisoning")):
                points, labels = attack.poison(flat[start].copy(),
                                               y=one_hot(1 - binary[start], 2))
        new_y = torch.where(torch.from_numpy(labels.argmax(1)) == 1, b, a).to(y.device)
        x_new = torch.cat([x, to_tensor(points.reshape((-1, *x.shape[1:])), x)])
        y_new = torch.cat([y, new_y])
        is_poison = torch.cat([torch.zeros(len(x), dtype=torch.bool),
                               torch.ones(len(points), dtype=torch.bool)]).to(x.device)
        x_test, y_test = ctx.test_subset()
        keep = (y_test == a) | (y_test == b)
        moved = np.linalg.norm(points - flat[start], axis=1)
        return PoisonedSet(x_new, y_new, is_poison, x_test[keep], y_test[keep],
                           targeted=False,
                           details={"class_a": float(a), "class_b": float(b),
                                    "mean_l2_moved": float(moved.mean())})


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register the SVM poisoning attack of the survey's Table 3."""
    register(AttackSpec(
        name="svm-poisoning", build=SvmPoisoning, threat_model="white-box", norm="none",
        description="SVM poisoning (ART, Biggio et al.): label-flipped points moved to raise "
                    "a linear SVM's error on two classes",
        needs=frozenset({"svm"}), category="poisoning", bounded=False,
        survey_table="Table 3", options=SVM_OPTIONS,
        smoke_options={"n_poison": 2, "max_iter": 2, "n_attacker_train": 30,
                       "n_attacker_val": 10},
        config={"art_class": "PoisoningAttackSVM"}))
