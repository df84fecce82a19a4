"""Plugin ``art-inference``: the survey's inference attacks (Table 4) that ART ships.

Each attack runs once against the trained victim and returns its metrics (no eps):

- ``membership-inference``: ART's ``MembershipInferenceBlackBox``. Members are a sample of
  ``n_samples`` training images, non-members as many test images (both capped by the
  smaller set); the attack model is trained on half of each and scored on the other half
  (accuracy, which is balanced, ROC AUC of its membership probabilities, TPR - FPR). The
  attack model is ART's default network trained 100 epochs at learning rate 1e-3 (ART's
  1e-4 underfits a few hundred rows: AUC 0.85 instead of 0.90 against a memorizing victim).
  Members are drawn from ``ctx.members``, the images the victim was actually fitted on (the
  runner leaves out the validation split it uses only to pick the best epoch).
- ``model-inversion``: ART's ``MIFace`` (Fredrikson et al., 2015): gradient ascent on the
  victim's softmax probability of each class from a constant start image (``start``, default
  0: ART's blank image), one image per class; scored by the victim's confidence in the
  intended class and by the L2 distance of each reconstruction to the mean training image of
  its class, next to the distance of the overall mean training image (what an attacker gets
  without the model) and of the start image. ART 1.20's stopping rule keeps an image going
  while its cost 1 - p is at most ``threshold``, so in practice every image takes
  ``max_iter`` steps: that is the budget (200: about 5 s for paper-cnn on digits).
- ``database-reconstruction``: ART's ``DatabaseReconstruction``, a self-contained
  experiment: a clone of the victim's scikit-learn estimator (its hyperparameters) is
  trained on ``n_rows`` training rows; the attacker knows the clone and all rows but one and
  looks for the missing row (and its label) whose refit reproduces the clone's weights.
  ART estimates every gradient of that objective by refitting the model d + 1 times (finite
  differences), so the rows are the images average-pooled to at most ``max_features``
  features (4x4 for digits and MNIST), the clone is fitted to ``fit_tol`` (the attack
  assumes exact training), and the finite-difference step is ``fd_step`` (ART's L-BFGS uses
  scipy's 1e-8, near the refit's own solver error: with it, 2 of 4 digits trials stalled at
  the start). By default the search over labels is budgeted
  (``search="screened"``: every label gets ``screen_iter`` L-BFGS iterations of ART's
  objective from the mean known row, the ``keep_labels`` best continue up to ``maxfun``
  evaluations); ``search="art"`` runs ART's own ``reconstruct`` (every label to
  convergence, from a known row, with scipy's step: several minutes per row). About 1,400
  refits, 30-50 s per trial on one core for digits or MNIST; 6 of 6 trials on digits found
  the row (L2 < 0.001, baseline 0.45-0.9) and its label. ART supports LogisticRegression and
  GaussianNB, so of the harness models it runs on ``logreg``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from harness import (
    AttackObject,
    AttackSpec,
    MetricSpec,
    Option,
    OptionSchema,
    ResolvedOptions,
    ThreatModel,
    UsageError,
    derive_seed,
    fraction,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch

MI_OPTIONS = options(
    Option(name="attack_model_type", type="str", default="nn",
           choices=("nn", "rf", "gb", "lr", "dt", "knn", "svm"),
           help="ART's attack model: a network, random forest, gradient boosting, logistic "
                "regression, decision tree, nearest neighbours or SVM"),
    Option(name="input_type", type="str", default="prediction", choices=("prediction", "loss"),
           help="what the attack model sees: the victim's probabilities or its loss"),
    Option(name="n_samples", type="int", default=500, min=1,
           help="members (and as many non-members) drawn; half train the attack model"),
    Option(name="epochs", type="int", default=100, min=1, help="epochs of the nn attack model"),
    Option(name="learning_rate", type="float", default=1e-3, min=0, min_exclusive=True,
           help="learning rate of the nn attack model"),
)
INVERSION_OPTIONS = options(
    Option(name="max_iter", type="int", default=200, min=1, help="gradient-ascent steps"),
    Option(name="window_length", type="int", default=100, min=1,
           help="steps over which ART's stopping rule looks for progress"),
    Option(name="threshold", type="float", default=0.99, min=0, min_exclusive=True,
           help="ART's stopping threshold on the cost 1 - p"),
    Option(name="learning_rate", type="float", default=0.1, min=0, min_exclusive=True,
           help="gradient-ascent step size"),
    fraction("start", 0.0, "the start image's constant pixel value"),
)
RECONSTRUCTION_OPTIONS = options(
    Option(name="n_rows", type="int", default=100, min=1,
           help="training rows of the clone (two or more per class)"),
    Option(name="max_features", type="int", default=16, min=1,
           help="features per row: images are average-pooled down to at most this many"),
    Option(name="trials", type="int", default=1, min=1, help="rows reconstructed, each afresh"),
    Option(name="search", type="str", default="screened", choices=("screened", "art"),
           help="screened: budgeted search over labels; art: ART's own reconstruct"),
    Option(name="screen_iter", type="int", default=4, min=1,
           help="L-BFGS iterations every label gets in the screening"),
    Option(name="keep_labels", type="int", default=1, min=1,
           help="labels that go on after the screening"),
    Option(name="maxfun", type="int", default=300, min=1,
           help="objective evaluations of each label that goes on"),
    Option(name="fit_tol", type="float", default=1e-8, min=0, min_exclusive=True,
           help="the clone's solver tolerance"),
    Option(name="fd_step", type="float", default=1e-4, min=0, min_exclusive=True,
           help="finite-difference step of L-BFGS's gradient estimates"),
)

MI_METRICS = (
    MetricSpec(name="mi_accuracy", label="membership accuracy", format="percent"),
    MetricSpec(name="mi_auc", label="membership AUC", format="number", digits=3),
    MetricSpec(name="mi_advantage", label="membership advantage", format="number", digits=3),
    MetricSpec(name="n_members", label="members", format="number", digits=0),
)
INVERSION_METRICS = (
    MetricSpec(name="inversion_confidence", label="inversion confidence", format="percent"),
    MetricSpec(name="inversion_accuracy", label="classes reached", format="percent"),
    MetricSpec(name="inversion_distance", label="inversion L2 to class mean",
               format="number", digits=3),
    MetricSpec(name="inversion_baseline_distance", label="overall mean's L2 to class mean",
               format="number", digits=3),
    MetricSpec(name="inversion_start_distance", label="start image's L2 to class mean",
               format="number", digits=3),
)
RECONSTRUCTION_METRICS = (
    MetricSpec(name="reconstruction_l2", label="reconstruction L2", format="number", digits=3),
    MetricSpec(name="baseline_l2", label="baseline L2", format="number", digits=3),
    MetricSpec(name="label_correct", label="label recovered", format="percent"),
)


def _generator(ctx, *names: str) -> torch.Generator:
    """A CPU generator seeded from the run's seed and ``names``."""
    import torch

    return torch.Generator().manual_seed(derive_seed(ctx.seed, *names))


class MembershipInference:
    """ART's MembershipInferenceBlackBox on training (member) vs test (non-member) images."""

    def __init__(self, resolved: ResolvedOptions):
        self.options = resolved

    def run(self, model: torch.nn.Module, ctx) -> dict[str, float]:
        """Train the attack model on half of the members and non-members, score the rest."""
        import numpy as np
        import torch
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
        from sklearn.metrics import roc_auc_score

        from harness import art_classifier, one_hot, seeded, to_numpy

        o, data = self.options, ctx.data
        # The images the victim was fitted on (its validation split left out), when known.
        x_mem, y_mem = ctx.members if ctx.members is not None else (data.x_train, data.y_train)
        n = min(o.n_samples, len(x_mem), len(data.x_test))
        if n < 4:
            raise UsageError("membership-inference needs at least 4 training and 4 test images")
        g = _generator(ctx, "membership-inference", "samples")
        members = torch.randperm(len(x_mem), generator=g)[:n].to(x_mem.device)
        others = torch.randperm(len(data.x_test), generator=g)[:n].to(data.x_test.device)
        x_in, y_in = to_numpy(x_mem[members]), y_mem[members]
        x_out, y_out = to_numpy(data.x_test[others]), data.y_test[others]
        k = data.num_classes
        y_in, y_out = one_hot(y_in, k), one_hot(y_out, k)
        half = n // 2
        classifier = art_classifier(model, tuple(data.image_shape), k, ctx.device,
                                    probabilities=o.input_type == "prediction")
        attack = MembershipInferenceBlackBox(
            classifier, input_type=o.input_type, attack_model_type=o.attack_model_type,
            nn_model_epochs=o.epochs, nn_model_learning_rate=o.learning_rate)
        seed = derive_seed(ctx.seed, "membership-inference", "attack-model")
        if attack.attack_model is not None and "random_state" in attack.attack_model.get_params():
            attack.attack_model.set_params(random_state=seed)
        with seeded(seed, ctx.device):
            attack.fit(x=x_in[:half], y=y_in[:half], test_x=x_out[:half], test_y=y_out[:half])
        p_in = attack.infer(x_in[half:], y_in[half:], probabilities=True).reshape(-1)
        p_out = attack.infer(x_out[half:], y_out[half:], probabilities=True).reshape(-1)
        truth = np.concatenate([np.ones(len(p_in)), np.zeros(len(p_out))])
        scores = np.concatenate([p_in, p_out]).astype(np.float64)
        tpr, fpr = float((p_in > 0.5).mean()), float((p_out > 0.5).mean())
        return {
            "mi_accuracy": (tpr + 1 - fpr) / 2,
            "mi_auc": float(roc_auc_score(truth, scores)),
            "mi_advantage": tpr - fpr,
            "n_members": float(len(p_in)),
        }


class ModelInversion:
    """ART's MIFace: one reconstruction per class from a constant start image."""

    def __init__(self, resolved: ResolvedOptions):
        self.options = resolved

    def run(self, model: torch.nn.Module, ctx) -> dict[str, float]:
        """Invert every class; compare the reconstructions with the class mean images."""
        import numpy as np
        import torch
        from art.attacks.inference.model_inversion import MIFace

        from harness import art_classifier, to_tensor

        o, data = self.options, ctx.data
        k, shape = data.num_classes, tuple(data.image_shape)
        classifier = art_classifier(model, shape, k, ctx.device, probabilities=True)
        attack = MIFace(classifier, max_iter=o.max_iter, window_length=o.window_length,
                        threshold=o.threshold, learning_rate=o.learning_rate,
                        batch_size=k, verbose=False)
        start = np.full((k, *shape), o.start, dtype=np.float32)
        inverted = attack.infer(start.copy(), np.arange(k))
        x_inv = to_tensor(inverted, data.x_train)
        classes = torch.arange(k, device=ctx.device)
        with torch.no_grad():
            probs = model(x_inv).softmax(1)
        x_train, y_train = data.x_train, data.y_train
        overall = x_train.mean(0)
        present = [c for c in range(k) if bool((y_train == c).any())]
        x_start = torch.from_numpy(start[0]).to(ctx.device)
        dist, base, from_start = [], [], []
        for c in present:
            class_mean = x_train[y_train == c].mean(0)
            dist.append(float((x_inv[c] - class_mean).norm()))
            base.append(float((overall - class_mean).norm()))
            from_start.append(float((x_start - class_mean).norm()))
        return {
            "inversion_confidence": float(probs[classes, classes].mean()),
            "inversion_accuracy": float((probs.argmax(1) == classes).float().mean()),
            "inversion_distance": float(np.mean(dist)),
            "inversion_baseline_distance": float(np.mean(base)),
            "inversion_start_distance": float(np.mean(from_start)),
        }


def pooled_rows(x: torch.Tensor, max_features: int) -> torch.Tensor:
    """Images ``x`` (N,C,H,W) average-pooled to the largest square side s with
    C*s*s <= ``max_features`` (and s <= the image side), flattened to (N, C*s*s)."""
    import torch

    c, h, w = x.shape[1:]
    side = min(h, w)
    while side > 1 and c * side * side > max_features:
        side -= 1
    if c * side * side > max_features:
        raise UsageError(f"database-reconstruction.max_features={max_features} is below the "
                         f"{c} channels of one pixel; raise it")
    return torch.nn.functional.adaptive_avg_pool2d(x.float(), side).flatten(1)


class DatabaseReconstruction:
    """ART's DatabaseReconstruction on a clone of the victim trained on ``n_rows`` rows."""

    def __init__(self, resolved: ResolvedOptions):
        self.options = resolved

    def _rows(self, ctx, trial: int):
        """``n_rows`` (at most the training set) seeded training rows, two or more of every
        class, the missing one first."""
        import torch

        data = ctx.data
        y_all = data.y_train.cpu()
        k, n = data.num_classes, min(self.options.n_rows, len(y_all))
        present = [c for c in range(k) if bool((y_all == c).any())]
        if n < 2 * len(present):
            raise UsageError(f"database-reconstruction.n_rows must be at least "
                             f"{2 * len(present)} (two rows per class), and so must the "
                             f"training set; got {n}")
        g = _generator(ctx, "database-reconstruction", "rows", str(trial))
        order = torch.randperm(len(y_all), generator=g)
        picked: list[int] = []
        for c in present:  # two rows of every class, so the known rows keep every class
            picked += order[y_all[order] == c][:2].tolist()
        rest = order[~torch.isin(order, torch.tensor(picked))][:n - len(picked)].tolist()
        idx = torch.tensor(picked + rest)
        idx = idx[torch.randperm(len(idx), generator=g)]
        x = pooled_rows(data.x_train[idx.to(data.x_train.device)].cpu(),
                        self.options.max_features)
        return x.double().numpy(), y_all[idx].numpy()

    def run(self, model: torch.nn.Module, ctx) -> dict[str, float]:
        """Reconstruct the missing row ``trials`` times; mean distances and label hits."""
        import numpy as np

        estimator = getattr(model, "sklearn_estimator", None)
        if estimator is None:
            raise UsageError("database-reconstruction needs a scikit-learn model "
                             "(--model logreg)")
        victim = estimator()
        from sklearn.linear_model import LogisticRegression

        if not isinstance(victim, LogisticRegression):
            raise UsageError(f"database-reconstruction supports LogisticRegression (ART "
                             f"supports LogisticRegression and GaussianNB), not "
                             f"{type(victim).__name__}: use --model logreg")
        o = self.options
        params = {**victim.get_params(), "tol": o.fit_tol,
                  "max_iter": max(10_000, victim.get_params()["max_iter"]),
                  "warm_start": False,
                  "random_state": derive_seed(ctx.seed, "database-reconstruction", "clone")}
        results = []
        for trial in range(o.trials):
            x, y = self._rows(ctx, trial)
            results.append(self._one(LogisticRegression(**params), x, y))
        l2, base, hit = (np.array(v, dtype=np.float64) for v in zip(*results, strict=True))
        return {
            "reconstruction_l2": float(l2.mean()),
            "baseline_l2": float(base.mean()),
            "label_correct": float(hit.mean()),
            "n_rows": float(len(x)),
            "n_features": float(x.shape[1]),
        }

    def _one(self, clone, x, y) -> tuple[float, float, float]:
        """Fit the private model on all rows; reconstruct row 0 from the others."""
        import warnings

        import numpy as np
        from art.attacks.inference.reconstruction import DatabaseReconstruction as ArtDR
        from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            private = ScikitlearnLogisticRegression(clone.fit(x, y))
            attack = ArtDR(private)
            known_x, known_y = x[1:], y[1:]
            if self.options.search == "art":
                x_rec, y_rec = attack.reconstruct(known_x, known_y)
                guess, label = x_rec[0], int(np.argmax(y_rec[0]))
            else:
                guess, label = self._screened(attack, known_x, known_y)
        start = known_x.mean(0)
        return (float(np.linalg.norm(guess - x[0])), float(np.linalg.norm(start - x[0])),
                float(label == int(y[0])))

    def _screened(self, attack, known_x, known_y):
        """ART's objective minimized by L-BFGS (bounds [0, 1], from the mean known row) for
        every label for ``screen_iter`` iterations; the ``keep_labels`` best go on."""
        import numpy as np
        from scipy.optimize import fmin_l_bfgs_b

        o = self.options
        start = known_x.mean(0)
        bounds = [(0.0, 1.0)] * len(start)

        def search(label: int, x0, **budget):
            args = (label, known_x, known_y, attack.estimator, attack.estimator, attack.params)
            x_opt, f, _ = fmin_l_bfgs_b(attack.objective, x0, args=args, approx_grad=True,
                                        epsilon=o.fd_step, factr=100, pgtol=1e-10,
                                        bounds=bounds, **budget)
            return float(f), x_opt

        labels = np.unique(known_y)
        screened = {int(c): search(int(c), start, maxiter=o.screen_iter) for c in labels}
        best = sorted(screened, key=lambda c: screened[c][0])[:o.keep_labels]
        final = {c: search(c, screened[c][1], maxfun=o.maxfun) for c in best}
        label = min(final, key=lambda c: final[c][0])
        return final[label][1], label


def _mi_build(resolved: ResolvedOptions) -> MembershipInference:
    """``membership-inference`` with the resolved options."""
    return MembershipInference(resolved)


def _inversion_build(resolved: ResolvedOptions) -> ModelInversion:
    """``model-inversion`` with the resolved options."""
    return ModelInversion(resolved)


def _reconstruction_build(resolved: ResolvedOptions) -> DatabaseReconstruction:
    """``database-reconstruction`` with the resolved options."""
    return DatabaseReconstruction(resolved)


def _inference_spec(name: str, description: str,
                    build: Callable[[ResolvedOptions], AttackObject], threat_model: ThreatModel,
                    needs: frozenset[str], art_class: str, schema: OptionSchema,
                    metrics: tuple[MetricSpec, ...], smoke_options: Mapping[str, Any]
                    ) -> AttackSpec:
    """The spec of one inference attack: unbounded, of the survey's Table 4."""
    return AttackSpec(
        name=name, description=description, build=build, threat_model=threat_model,
        needs=needs, config={"art_class": art_class}, options=schema, metrics=metrics,
        smoke_options=smoke_options, category="inference", survey_table="Table 4",
        bounded=False, norm="none")


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``membership-inference``, ``model-inversion`` and ``database-reconstruction``."""
    register(_inference_spec(
        "membership-inference",
        "ART MembershipInferenceBlackBox: train vs test images, from the scores",
        _mi_build, "black-box", frozenset({"scores"}), "MembershipInferenceBlackBox",
        MI_OPTIONS, MI_METRICS, {"n_samples": 16, "epochs": 2}))
    register(_inference_spec(
        "model-inversion",
        "ART MIFace (Fredrikson et al.): one image per class by gradient ascent",
        _inversion_build, "white-box", frozenset({"gradients"}), "MIFace", INVERSION_OPTIONS,
        INVERSION_METRICS, {"max_iter": 5, "window_length": 5}))
    register(_inference_spec(
        "database-reconstruction",
        "ART DatabaseReconstruction: the one unknown training row of a logreg",
        _reconstruction_build, "white-box", frozenset({"sklearn", "logreg"}),
        "DatabaseReconstruction", RECONSTRUCTION_OPTIONS, RECONSTRUCTION_METRICS,
        {"n_rows": 8, "max_features": 4, "screen_iter": 1, "maxfun": 20}))
