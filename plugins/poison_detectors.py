"""Plugin ``poison-detectors``: detectors of poisoned training samples (stage
"poisoning-detection").

Each returns one flag per training sample of the poisoned set, given the victim trained on it;
the runner scores the flags against the truth, drops the flagged samples and retrains.

- ``spectral-signature`` (Tran et al. 2018, ART ``SpectralSignatureDefense``): per class, the
  samples whose penultimate features correlate most with the top singular vector.
- ``activation-clustering`` (Chen et al. 2019, ART ``ActivationDefence``): per class, 2-means
  on the penultimate features reduced to 10 dimensions by PCA; the smaller cluster is flagged.
- ``strip`` (Gao et al. 2019): run-time entropy test applied to the training set. Native:
  ART 1.20.1's ``STRIPMixin`` computes ``entropy(predictions, axis=0)``, i.e. across the
  superimposed copies for each class rather than across classes for each copy; on a digits
  backdoor it flagged 5 of 1437 samples, none of them poisoned (see :class:`Strip`).
- ``neural-cleanse`` (Wang et al. 2019): native PyTorch (ART's ``NeuralCleanse`` supports
  only Keras); see :class:`NeuralCleanse` for the per-sample rule.

The penultimate features come from :class:`harness.art.bridge.FeatureTap`: ART's two
detectors read the classifier's last layer, which on our models would otherwise be the
logits. torch, ART and scikit-learn are imported only when a detector runs, so registering
the plugin stays cheap.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from harness import (
    DefenseObject,
    DefenseSpec,
    Option,
    OptionSchema,
    ResolvedOptions,
    UsageError,
    count,
    derive_seed,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness import AttackContext


def _flags(is_clean: list[int], like: torch.Tensor) -> torch.Tensor:
    """ART's ``is_clean_lst`` (1 = clean) as a boolean mask (True = flagged) on ``like``'s
    device."""
    import torch

    return (torch.as_tensor(is_clean, dtype=torch.int64) == 0).to(like.device)


def _clean_reference(ctx: AttackContext, n: int) -> torch.Tensor:
    """The defender's held-out clean images: ``n`` test images (the run's seeded shuffle).

    They only calibrate a threshold or serve as the images a detector superimposes or
    stamps; nothing is trained on them.
    """
    return ctx.test_subset(n)[0]


def _generator(ctx: AttackContext, name: str, purpose: str) -> torch.Generator:
    """A CPU generator for ``purpose`` of the detector ``name``, seeded from the run's seed."""
    import torch

    return torch.Generator().manual_seed(derive_seed(ctx.seed, name, purpose))


# --------------------------------------------------------------------------- ART detectors

SPECTRAL_OPTIONS = options(
    positive("expected_pp_poison", 0.1, "the share of poisons the defender assumes", high=1),
    positive("eps_multiplier", 1.5, "flag eps_multiplier x expected_pp_poison of every "
                                     "class"),
    count("batch_size", 128, "images per forward pass"),
)


class SpectralSignature:
    """ART's SpectralSignatureDefense on the victim's penultimate features.

    In every class, the samples whose score (projection on the top singular vector of the
    centred features) is above the ``1 - eps_multiplier * expected_pp_poison`` quantile are
    flagged, so with the defaults 15% of every class (Tran et al. remove 1.5 times the
    poison rate they assume). ART 1.20.1 projects the uncentred features on that vector
    (Tran et al.: the centred ones); used as ART ships it. ``options`` are resolved (every
    key of :data:`SPECTRAL_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.pp = options.expected_pp_poison
        self.mult = options.eps_multiplier
        self.batch_size = options.batch_size

    def detect(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: AttackContext) -> torch.Tensor:
        """Flags of the samples with the largest spectral scores in their class."""
        from art.defences.detector.poison import SpectralSignatureDefense

        from harness import feature_classifier, one_hot, to_numpy

        k = ctx.data.num_classes
        defence = SpectralSignatureDefense(
            feature_classifier(model, tuple(x.shape[1:]), k, ctx.device), to_numpy(x),
            one_hot(y, k), expected_pp_poison=self.pp, batch_size=self.batch_size,
            eps_multiplier=self.mult)
        _, is_clean = defence.detect_poison()
        return _flags(is_clean, x)


ACTIVATION_OPTIONS = options(
    count("nb_clusters", 2, "KMeans clusters per class", low=2),
    count("nb_dims", 10, "dimensions the features are reduced to"),
    Option(name="reduce", type="str", default="PCA", choices=("PCA", "FastICA", "TSNE"),
           help="ART's dimension reduction"),
    Option(name="cluster_analysis", type="str", default="smaller",
           choices=("smaller", "distance", "relative-size", "silhouette-scores"),
           help="ART's rule for which clusters are poisonous"),
)


class ActivationClustering:
    """ART's ActivationDefence on the victim's penultimate features.

    Per class: PCA to ``nb_dims``, KMeans into ``nb_clusters`` (NumPy's generator seeded with
    the run's seed); with "smaller" analysis the smaller cluster of *every* class is flagged
    (ART's "relative-size", "distance" and "silhouette-scores" are the alternatives).
    ``options`` are resolved (every key of :data:`ACTIVATION_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.o = options

    def detect(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: AttackContext) -> torch.Tensor:
        """Flags of the samples in the clusters ART's analysis calls poisonous."""
        import torch
        from art.defences.detector.poison import ActivationDefence

        from harness import feature_classifier, numpy_seed, one_hot, to_numpy

        k = ctx.data.num_classes
        smallest = int(torch.bincount(y.cpu(), minlength=k).min())
        if smallest <= self.o.nb_dims:
            raise UsageError(f"activation-clustering: a class has {smallest} training samples, "
                             f"not more than nb_dims={self.o.nb_dims} (PCA needs more)")
        defence = ActivationDefence(feature_classifier(model, tuple(x.shape[1:]), k, ctx.device),
                                    to_numpy(x), one_hot(y, k))
        defence.set_params(**self.o)
        with numpy_seed(derive_seed(ctx.seed, "activation-clustering", "KMeans")):
            _, is_clean = defence.detect_poison()
        return _flags(is_clean, x)


# --------------------------------------------------------------------------- STRIP

STRIP_OPTIONS = options(
    count("num_samples", 20, "clean images each input is superimposed on"),
    positive("false_acceptance_rate", 0.01, "below 1: the quantile of the clean entropies' "
                                            "normal fit taken as the threshold", high=1),
    count("n_clean", 200, "held-out clean test images (the defender's)", low=2),
    positive("alpha", 0.5, "weight of the input in a superimposition", high=1),
    count("batch_size", 1024, "superimposed images per forward pass"),
)


class Strip:
    """STRIP (Gao et al. 2019) scored on the training set.

    STRIP is a run-time test: superimpose an input on ``num_samples`` clean images drawn at
    random (``alpha * x + (1 - alpha) * x_clean``, ART's ``combine_images``) and take the
    mean over the copies of the Shannon entropy (bits) of the victim's softmax; a trigger
    keeps the prediction fixed, so a triggered input has low entropy. The threshold is ART's
    rule: fit a normal distribution to the entropies of the clean images themselves (each
    superimposed on images of the same set, as ART does) and take its
    ``false_acceptance_rate`` quantile. Here the test is applied to every training sample and
    the ones at or below the threshold are flagged. The clean images are ``n_clean`` held-out
    test images (the defender's clean set; seeded draws). Native, because ART 1.20.1's
    entropy runs over the wrong axis (module docstring). ``options`` are resolved (every key
    of :data:`STRIP_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.num_samples = options.num_samples
        self.far = options.false_acceptance_rate
        if self.far >= 1:
            raise UsageError(f"strip.false_acceptance_rate must be below 1, got {self.far}")
        self.n_clean = options.n_clean
        self.alpha = options.alpha
        self.batch_size = options.batch_size

    def entropies(self, model: nn.Module, x: torch.Tensor, clean: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
        """Mean entropy over ``num_samples`` superimpositions of each image of ``x``."""
        import torch
        import torch.nn.functional as F

        model.eval()
        out = []
        per_batch = max(1, self.batch_size // self.num_samples)
        with torch.no_grad():
            for i in range(0, len(x), per_batch):
                xb = x[i:i + per_batch]
                pick = torch.randint(len(clean), (len(xb), self.num_samples),
                                     generator=generator)
                blended = (self.alpha * xb[:, None]
                           + (1 - self.alpha) * clean[pick.to(clean.device)])
                logp = F.log_softmax(model(blended.flatten(0, 1)).float(), dim=1)
                h = -(logp.exp() * logp).sum(1) / math.log(2)
                out.append(h.view(len(xb), self.num_samples).mean(1))
        return torch.cat(out)

    def detect(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: AttackContext) -> torch.Tensor:
        """Flags of the training samples whose STRIP entropy is at or below the threshold."""
        clean = _clean_reference(ctx, self.n_clean).to(x.device)
        g = _generator(ctx, "strip", "superimposed images")
        reference = self.entropies(model, clean, clean, g).double().cpu().tolist()
        mean = statistics.fmean(reference)
        std = statistics.pstdev(reference, mean)
        threshold = statistics.NormalDist(mean, max(std, 1e-12)).inv_cdf(self.far)
        return self.entropies(model, x, clean, g).to(x.device) <= threshold


# --------------------------------------------------------------------------- Neural Cleanse

NEURAL_CLEANSE_OPTIONS = options(
    count("steps", 300, "Adam steps per class"),
    positive("lr", 0.1, "Adam's learning rate"),
    positive("init_cost", 1e-3, "initial weight of the mask's L1 norm"),
    Option(name="cost_multiplier", type="float", default=1.5, min=1, min_exclusive=True,
           help="the cost is multiplied or divided by this every patience steps"),
    count("patience", 10, "steps between cost updates"),
    positive("success_threshold", 0.99, "share of clean images a trigger must flip",
             high=1),
    positive("anomaly_threshold", 2.0, "anomaly index above which a class is infected"),
    count("n_clean", 200, "held-out clean test images (the defender's)"),
    count("batch_size", 64, "clean images per step"),
)


class NeuralCleanse:
    """Neural Cleanse (Wang et al. 2019), native PyTorch, as a training-set detector.

    1. Reverse-engineer a trigger for every class c: a mask m (H x W, sigmoid-parametrized)
       and pattern p (C x H x W) such that ``(1 - m) * x + m * p`` is classified as c for the
       held-out clean images x (``n_clean`` test images); Adam on cross-entropy
       + ``cost`` x ||m||_1 for ``steps`` minibatches; the cost is multiplied or divided by
       ``cost_multiplier`` every ``patience`` steps depending on whether the window's success
       rate reached ``success_threshold`` (the paper's schedule); the smallest-L1 mask that
       reached it is kept (else the last one).
    2. Anomaly index of class c: ``(median - |m_c|) / (1.4826 * MAD)`` over the classes' mask
       norms; classes whose index exceeds ``anomaly_threshold`` (2 in the paper) and whose
       norm is below the median are infected.
    3. Per-sample rule (ours: the paper mitigates rather than lists samples): a training
       sample labelled with an infected class is flagged when the victim stops predicting
       that label once the reversed trigger's region is blanked, ``(1 - m) * x + m * mean``
       (mean: the clean images' mean). A poisoned sample shows another class underneath
       its trigger; a genuine one keeps its label. No infected class: nothing is flagged.

    ``options`` are resolved (every key of :data:`NEURAL_CLEANSE_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.steps = options.steps
        self.lr = options.lr
        self.init_cost = options.init_cost
        self.multiplier = options.cost_multiplier
        self.patience = options.patience
        self.success = options.success_threshold
        self.anomaly = options.anomaly_threshold
        self.n_clean = options.n_clean
        self.batch_size = options.batch_size

    def reverse_trigger(self, model: nn.Module, clean: torch.Tensor, target: int,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The smallest mask (1,1,H,W) and its pattern (1,C,H,W) found that flip ``clean``
        to ``target``."""
        import torch
        import torch.nn.functional as F

        _, c, h, w = clean.shape
        mask_param = torch.zeros(1, 1, h, w, device=clean.device, requires_grad=True)
        pattern_param = torch.zeros(1, c, h, w, device=clean.device, requires_grad=True)
        opt = torch.optim.Adam([mask_param, pattern_param], lr=self.lr, betas=(0.5, 0.9))
        labels = torch.full((len(clean),), target, dtype=torch.int64, device=clean.device)
        cost, hits, seen = self.init_cost, 0.0, 0
        best: tuple[float, torch.Tensor, torch.Tensor] | None = None
        for step in range(self.steps):
            idx = torch.randint(len(clean), (min(self.batch_size, len(clean)),),
                                generator=generator).to(clean.device)
            mask, pattern = torch.sigmoid(mask_param), torch.sigmoid(pattern_param)
            logits = model((1 - mask) * clean[idx] + mask * pattern)
            norm = mask.sum()
            loss = F.cross_entropy(logits, labels[idx]) + cost * norm
            opt.zero_grad()
            loss.backward()
            opt.step()
            success = float((logits.argmax(1) == target).float().mean())
            hits, seen = hits + success, seen + 1
            if success >= self.success and (best is None or float(norm.detach()) < best[0]):
                best = (float(norm.detach()), mask.detach().clone(), pattern.detach().clone())
            if (step + 1) % self.patience == 0:
                cost = cost * self.multiplier if hits / seen >= self.success \
                    else cost / self.multiplier
                hits, seen = 0, 0
        if best is None:
            best = (0.0, torch.sigmoid(mask_param).detach(), torch.sigmoid(pattern_param).detach())
        return best[1], best[2]

    @staticmethod
    def infected(norms: torch.Tensor, threshold: float) -> torch.Tensor:
        """Boolean per class: anomaly index above ``threshold`` with a norm below the median."""
        median = norms.median()
        mad = 1.4826 * (norms - median).abs().median()
        index = (median - norms) / mad.clamp_min(1e-12)
        return (index > threshold) & (norms < median)

    def detect(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: AttackContext) -> torch.Tensor:
        """Flags of the infected classes' samples whose label goes once the trigger is gone."""
        import torch

        from harness import frozen, predicted_labels

        model.eval()
        clean = _clean_reference(ctx, self.n_clean).to(x.device)
        g = _generator(ctx, "neural-cleanse", "clean minibatches")
        k = ctx.data.num_classes
        masks = []
        with frozen(model):
            for target in range(k):
                masks.append(self.reverse_trigger(model, clean, target, g)[0])
        norms = torch.stack([m.sum() for m in masks]).cpu()
        flagged = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        fill = clean.mean(0, keepdim=True)
        for target in self.infected(norms, self.anomaly).nonzero().flatten().tolist():
            rows = (y == target).nonzero().flatten()
            if not len(rows):
                continue
            mask = masks[target]
            blanked = (1 - mask) * x[rows] + mask * fill
            flagged[rows] = predicted_labels(model, blanked) != target
        return flagged


# --------------------------------------------------------------------------- registration


def _detector(name: str, description: str, build: Callable[[ResolvedOptions], DefenseObject],
              needs: frozenset[str], schema: OptionSchema, config: Mapping[str, Any],
              smoke_options: Mapping[str, Any] | None = None) -> DefenseSpec:
    """The spec of one poisoning detector (stage "poisoning-detection")."""
    return DefenseSpec(name=name, description=description, build=build,
                       stage="poisoning-detection", needs=needs, options=schema,
                       config=config, smoke_options=dict(smoke_options or {}))


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register the poisoning detectors."""
    register(_detector(
        "spectral-signature", "Spectral signatures (ART): per class, flag the top outliers "
                              "along the features' top singular vector",
        SpectralSignature, frozenset({"activations"}), SPECTRAL_OPTIONS,
        {"art_class": "SpectralSignatureDefense"}))
    register(_detector(
        "activation-clustering", "Activation clustering (ART): per class, 2-means on PCA'd "
                                 "features; flag the smaller cluster",
        ActivationClustering, frozenset({"activations"}), ACTIVATION_OPTIONS,
        {"art_class": "ActivationDefence"}))
    register(_detector(
        "strip", "STRIP (native; ART's entropy is over the wrong axis): flag training samples "
                 "whose superimpositions keep a low entropy",
        Strip, frozenset({"scores"}), STRIP_OPTIONS, {"implementation": "native"}))
    register(_detector(
        "neural-cleanse", "Neural Cleanse (native PyTorch): reverse triggers, MAD outlier "
                          "classes, flag samples that lose their label without the trigger",
        NeuralCleanse, frozenset({"gradients"}), NEURAL_CLEANSE_OPTIONS,
        {"implementation": "native"}, smoke_options={"steps": 20}))
