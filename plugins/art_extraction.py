"""Plugin ``art-extraction``: the survey's model-extraction attacks (Table 5) that ART ships.

Each attack gets the trained victim as a black box and returns how well it was stolen.

The attacker's data is unlabelled test images: the test set is shuffled with a seed derived
from the run's (the same shuffle for every extraction attack); the first ``pool_fraction`` of
it (default half) is the attacker's query pool and the rest is where the stolen model is
judged (at most ``ctx.n_test`` of those images), so the thief is never scored on an image it
queried. Every attack reports ``thief_acc`` (the stolen model's accuracy on the evaluation
images), ``victim_acc`` (the victim's, on the same images), ``agreement`` (the share of them
where both predict the same label) and ``queries`` (images the victim was asked about, counted
by :class:`harness.run.evaluators.scoring.QueryCounter`).

- ``copycat``: ART's CopycatCNN (Correia-Silva et al. 2018). The victim labels ``nb_stolen``
  pool images (at most the pool); a fresh model of the victim's architecture
  (``ctx.new_model()``) is trained on them with Adam for ``nb_epochs``.
- ``knockoff``: ART's KnockoffNets (Orekondy et al. 2019). Its default random strategy is
  the same procedure as CopycatCNN in ART; ``use_probability=true`` trains on the victim's
  softmax scores instead of its labels; ``sampling_strategy=adaptive`` picks pool images
  (with replacement, so ``nb_stolen`` may exceed the pool) by a gradient bandit over the
  pool's own classes (the attacker's labels of its own data, here the test labels) with
  rewards from the victim's logits, one query and one thief update at a time.
- ``functionally-equivalent``: ART's FunctionallyEquivalentExtraction (Jagielski et al.
  2020): recovers the weights of a network with one hidden ReLU layer from its logits alone,
  by finding each hidden unit's kink on a random line through input space and probing second
  differences there. It queries arbitrary real-valued inputs (far outside [0, 1]), mostly
  one at a time, on a float64 copy of the victim on the CPU. Its cost grows with the square
  of the hidden width h (the line searched is [-h^2, h^2]) plus 8 h queries per input
  feature: on 8x8 digits (64 inputs, 10 classes) on one shared CPU core, about 11k queries
  and 2 s at width 16, 26k and 3 s at 32, 69k and 7 s at 64, 205k and 12 s per line at 128
  (20 s when the first line misses a kink and a second is searched), 674k and 40 s at 256.
  Victims wider than ``max_hidden`` (default 128) are refused before anything runs. Besides
  the three accuracy metrics it reports ``logit_max_error`` and ``fidelity_l2`` (the largest
  logit difference and the mean L2 distance between the extracted and the true logits on the
  evaluation images; about 1e-7 to 1e-4 on digits) and ``attempts`` (lines searched).

  ART's implementation as shipped does not finish on a trained network, so this plugin
  changes it:

  * the victim answers in float64 (ART's PyTorchClassifier rounds logits to float32, which
    drowns the finite differences);
  * the critical-point search counts slopes as equal by ``|m1 - m2| <= rel * |m1|`` (ART
    divides by m1: 0/0 on a stretch of the line where every hidden unit is off, after which
    it halves its step forever), stops a bisection that shrinks below float resolution, and
    accepts a kink only strictly inside its interval with the slopes beside it matching the
    interval's ends (ART accepts a point on the interval's edge, a kink's width off, or one
    of two kinks and skips the other);
  * ``delta_init_value``/``delta_sign`` default to 1e-5/2e-5 (ART: 0.1/0.02), so the second
    differences see only the kink they probe;
  * the last layer, a linear least-squares problem, is solved in closed form on the pool
    images, two points beside each kink and ``features + 1`` random points, with an extra
    linear term: ART's sign recovery is determined only when h is at most the number of
    input features, and a unit with the wrong sign differs from the true one by a linear
    function (relu(z) - relu(-z) = z). The extracted network carries that term as 2K more
    hidden units, so it is a two-layer ReLU network that computes the victim's function.

  A line on which the search fails (a unit's kink outside [-h^2, h^2], or too faint to
  see) is replaced by a new one, ``restarts`` times; ``max_queries`` bounds the whole attack.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import (
    AttackObject,
    AttackSpec,
    HarnessError,
    MetricSpec,
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
    import numpy as np
    import torch

SURVEY_TABLE = "Table 5"


_POOL_FRACTION = positive("pool_fraction", 0.5,
                          "share of the test set that is the attacker's query pool, in (0, 1); "
                          "the rest is where the stolen model is judged", high=1)
_THIEF_OPTIONS = (
    count("nb_stolen", 1000, "pool images the victim is asked about"), _POOL_FRACTION,
    count("nb_epochs", 50, "epochs of the thief's training"),
    positive("lr", 1e-3, "the thief's Adam learning rate"),
    count("batch_size_fit", 32, "the thief's training batch size"),
    count("batch_size_query", 256, "images per query of the victim"),
    Option(name="use_probability", type="bool", default=False,
           help="train on the victim's softmax scores instead of its labels"),
)
COPYCAT_OPTIONS: OptionSchema = options(*_THIEF_OPTIONS)
KNOCKOFF_OPTIONS: OptionSchema = options(
    *_THIEF_OPTIONS,
    Option(name="sampling_strategy", type="str", default="random",
           choices=("random", "adaptive"),
           help="random pool images, or a gradient bandit over the pool's classes"),
    Option(name="reward", type="str", default="all", choices=("cert", "div", "loss", "all"),
           help="the adaptive strategy's reward"),
)
FEE_OPTIONS: OptionSchema = options(
    _POOL_FRACTION,
    Option(name="num_neurons", type="int", default=None, nullable=True, min=1,
           help="hidden units to extract (null: the victim's hidden width)"),
    count("max_hidden", 128, "widest victim attacked (the search grows with its square)"),
    count("restarts", 2, "new random lines after a failed critical-point search", low=0),
    count("max_queries", 4_000_000, "queries after which the attack gives up"),
    positive("delta_0", 1.0, "first step of the critical-point search"),
    positive("fraction_true", 0.3, "share of the logits that must agree"),
    positive("rel_diff_slope", 1e-5, "relative tolerance of equal slopes"),
    positive("rel_diff_value", 1e-6, "relative tolerance of equal values"),
    positive("delta_init_value", 1e-5, "step of the second differences (weights)"),
    positive("delta_sign", 2e-5, "step of the second differences (signs)"),
)
EXTRACTION_METRICS = (
    MetricSpec(name="victim_acc", label="victim acc", format="percent"),
    MetricSpec(name="thief_acc", label="stolen model acc", format="percent"),
    MetricSpec(name="agreement", label="agreement", format="percent"),
    MetricSpec(name="queries", label="queries", format="number", digits=0),
)


# --- shared glue -------------------------------------------------------------------------

@dataclass(frozen=True)
class ExtractionSplit:
    """The attacker's query pool and the disjoint images the stolen model is judged on."""

    x_pool: torch.Tensor
    y_pool: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor


def check_pool_fraction(owner: str, pool_fraction: float) -> None:
    """A :class:`UsageError` unless ``pool_fraction`` is in (0, 1) (the schema's bound is
    inclusive; a pool of the whole test set leaves nothing to judge the thief on)."""
    if not (isinstance(pool_fraction, int | float) and 0 < pool_fraction < 1):
        raise UsageError(f"{owner}: option 'pool_fraction' must be in (0, 1); got "
                         f"{pool_fraction!r}")


def split_test_set(ctx, pool_fraction: float) -> ExtractionSplit:
    """Seeded shuffle of the test set: the first ``pool_fraction`` is the query pool, the rest
    (at most ``ctx.n_test`` images) the evaluation set. The shuffle is the same for every
    extraction attack of a run, so they are judged on the same images. ``y_pool`` is for the
    attacker's own use only (KnockoffNets' adaptive strategy); no attack trains on it."""
    import torch

    check_pool_fraction("the extraction split", pool_fraction)
    x, y = ctx.data.x_test, ctx.data.y_test
    n_pool = int(round(len(x) * pool_fraction))
    if n_pool < 1 or n_pool >= len(x):
        raise UsageError(f"pool_fraction={pool_fraction} leaves no pool or no evaluation "
                         f"images of the {len(x)} test images")
    shuffle = torch.Generator().manual_seed(derive_seed(ctx.seed, "extraction", "pool"))
    order = torch.randperm(len(x), generator=shuffle).to(x.device)
    pool, held = order[:n_pool], order[n_pool:]
    if ctx.n_test is not None:
        held = held[:ctx.n_test]
    return ExtractionSplit(x[pool], y[pool], x[held], y[held])


def extraction_metrics(victim: torch.nn.Module, thief_labels: torch.Tensor,
                       split: ExtractionSplit, queries: int) -> dict[str, float]:
    """``thief_acc``, ``victim_acc``, ``agreement`` on the evaluation images, and ``queries``."""
    from harness import predict

    y = split.y_eval
    victim_labels = predict(victim, split.x_eval).to(y.device)
    thief_labels = thief_labels.to(y.device)
    return {
        "thief_acc": float((thief_labels == y).float().mean()),
        "victim_acc": float((victim_labels == y).float().mean()),
        "agreement": float((thief_labels == victim_labels).float().mean()),
        "queries": float(queries),
    }


# --- Copycat CNN and Knockoff Nets ---------------------------------------------------------

class ThiefTrainingAttack:
    """CopycatCNN or KnockoffNets: label pool images with the victim, train a thief on them."""

    def __init__(self, name: str, art_name: str, resolved: ResolvedOptions,
                 sampling: tuple[str, str] | None = None):
        """``sampling``: KnockoffNets' ``(sampling_strategy, reward)``; None for CopycatCNN,
        which has neither."""
        self.name = name
        self.art_name = art_name
        self.sampling = sampling
        self.adaptive = sampling is not None and sampling[0] == "adaptive"
        check_pool_fraction(f"attack {name}", resolved.pool_fraction)
        if self.adaptive and resolved.use_probability:
            raise UsageError(f"attack {name}: use_probability needs sampling_strategy=random "
                             "(ART's adaptive strategy trains on labels only)")
        self.options = resolved

    def run(self, victim: torch.nn.Module, ctx) -> dict[str, float]:
        """Steal ``victim`` with ART and measure the thief on the held-out test images."""
        import art.attacks.extraction as extraction
        import numpy as np
        import torch

        from harness import QueryCounter, art_classifier, predict, seeded, to_numpy

        o = self.options
        split = split_test_set(ctx, o.pool_fraction)
        shape = tuple(split.x_pool.shape[1:])
        k = ctx.data.num_classes
        counter = QueryCounter(victim).eval()
        oracle = art_classifier(counter, shape, k, ctx.device,
                                probabilities=o.use_probability)
        adaptive = self.adaptive
        # The random strategies query each pool image at most once; the adaptive one samples
        # the pool with replacement, so its budget may exceed the pool.
        nb_stolen = o.nb_stolen if adaptive else min(o.nb_stolen, len(split.x_pool))
        kwargs = {"batch_size_fit": o.batch_size_fit, "batch_size_query": o.batch_size_query,
                  "nb_epochs": o.nb_epochs, "nb_stolen": nb_stolen,
                  "use_probability": o.use_probability}
        if self.sampling is not None:
            kwargs.update(sampling_strategy=self.sampling[0], reward=self.sampling[1],
                          verbose=False)
        with seeded(derive_seed(ctx.seed, self.name, "attack"), ctx.device):
            # a fresh initialization, not the victim's initial weights
            thief = ctx.new_model(derive_seed(ctx.seed, self.name, "thief-init"))
            thief_clf = art_classifier(
                thief, shape, k, ctx.device,
                optimizer=torch.optim.Adam(thief.parameters(), lr=o.lr))
            attack = getattr(extraction, self.art_name)(oracle, **kwargs)
            y = None
            if adaptive:  # the attacker's own labels of its pool, as contiguous action ids
                y = np.unique(split.y_pool.cpu().numpy(), return_inverse=True)[1]
            attack.extract(to_numpy(split.x_pool), y=y, thieved_classifier=thief_clf)
        thief.eval()
        return extraction_metrics(victim, predict(thief, split.x_eval), split, counter.images)


def build_copycat(resolved: ResolvedOptions) -> ThiefTrainingAttack:
    """The ``copycat`` attack with the resolved options (:data:`COPYCAT_OPTIONS`)."""
    return ThiefTrainingAttack("copycat", "CopycatCNN", resolved)


def build_knockoff(resolved: ResolvedOptions) -> ThiefTrainingAttack:
    """The ``knockoff`` attack with the resolved options (:data:`KNOCKOFF_OPTIONS`)."""
    return ThiefTrainingAttack("knockoff", "KnockoffNets", resolved,
                               (resolved.sampling_strategy, resolved.reward))


# --- Functionally equivalent extraction -----------------------------------------------------

class _SearchStalled(Exception):
    """The critical-point bisection shrank its step to nothing without finding the kink."""


class _QueryBudgetSpent(Exception):
    """The attack asked the victim about more inputs than ``max_queries``."""


def hidden_width(model: torch.nn.Module) -> int:
    """The hidden width of a two-layer ReLU network (the first ``nn.Linear``'s outputs).

    A clear error when the model is not two linear layers (plus parameter-free modules).
    """
    from torch import nn

    weighted = [m for m in model.modules()
                if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    linears = [m for m in weighted if isinstance(m, nn.Linear)]
    if len(linears) != 2 or len(weighted) != 2:
        kinds = ", ".join(type(m).__name__ for m in weighted) or "none"
        raise UsageError("functionally-equivalent needs a two-layer ReLU network (Flatten -> "
                         "Linear -> ReLU -> Linear, e.g. the mlp model); this model's "
                         f"weighted layers are: {kinds}")
    return int(linears[0].out_features)


@functools.cache
def _fee_critical_point_search(self: Any, delta_0: float, fraction_true: float,
                               rel_diff_slope: float, rel_diff_value: float) -> None:
    """ART's search along u + t v, t in [-h^2, h^2], with these fixes.

    Slopes count as equal when ``|m1 - m2| <= rel * |m1|`` (ART divides by m1, which
    is 0/0 where every hidden unit is off); a candidate must lie more than epsilon
    inside its interval (on the edge it is the point where ART measured a slope
    across the kink, not the kink), and the slopes just beside it must equal those
    at the interval's ends (else the interval holds another kink, which ART skips);
    a bisection that shrinks below float resolution raises :class:`_SearchStalled`
    instead of spinning forever. Each step reuses y(t_1), y(t_2): 4 queries, not 6.
    """
    import numpy as np

    h_square = float(self.num_neurons) ** 2
    need = fraction_true * self.num_classes

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.sum(np.abs(a - b) <= rel_diff_slope * np.abs(a)) > need)

    t_current = -h_square
    while t_current < h_square:
        delta = delta_0
        while True:
            if delta < 1e-9 * max(1.0, abs(t_current)):
                raise _SearchStalled(f"the bisection stalled at t={t_current:g}")
            epsilon = delta / 10
            t_1, t_2 = t_current, t_current + delta
            y_1, y_2 = self._o_l(self._get_x(t_1)), self._o_l(self._get_x(t_2))
            m_1 = (self._o_l(self._get_x(t_1 + epsilon)) - y_1) / epsilon
            m_2 = (y_2 - self._o_l(self._get_x(t_2 - epsilon))) / epsilon
            if same(m_1, m_2):
                t_current = t_2  # no kink in [t_1, t_2]
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (y_2 - y_1 - (t_2 - t_1) * m_2) / (m_1 - m_2)
            t_hat, y_hat = t_1 + ratio, y_1 + m_1 * ratio
            finite = np.isfinite(t_hat)
            if not finite.any():
                delta /= 2
                continue
            t_mean = float(np.mean(t_hat[finite]))
            y = self._o_l(self._get_x(t_mean))
            m_x_1 = (self._o_l(self._get_x(t_mean + epsilon)) - y) / epsilon
            m_x_2 = (y - self._o_l(self._get_x(t_mean - epsilon))) / epsilon
            margin = 1.001 * epsilon
            if (np.sum(np.abs(y_hat - y) < rel_diff_value * np.abs(y)) > need
                    and t_1 + margin < t_mean < t_2 - margin
                    and np.sum(np.abs(m_x_1 - m_x_2) > rel_diff_slope * np.abs(m_x_1))
                    > need
                    and same(m_1, m_x_2) and same(m_x_1, m_2)):
                self.critical_points.append(self._get_x(t_mean))
                t_current = t_2
                break
            delta /= 2
    if len(self.critical_points) != self.num_neurons:
        raise AssertionError(
            f"found {len(self.critical_points)} critical points for "
            f"{self.num_neurons} hidden neurons")


def _fee_last_layer_extraction(self: Any, x: Any, ftol: float) -> None:
    """Second layer by linear least squares, with a linear term for wrong signs.

    Fitted on the victim's logits for ``x``, two points beside each critical point
    (so every hidden unit is on somewhere) and ``features + 1`` random points. ART's
    sign recovery is determined only when the hidden width is at most the input
    size; a unit with the wrong sign differs from the true one by a linear function
    (relu(z) - relu(-z) = z), which the linear term absorbs. The extracted network
    carries that term as 2K more hidden units: a x = relu(a x) - relu(-a x).
    """
    import numpy as np

    beside = [p + s * self.vector_v for p in self.critical_points for s in (-0.5, 0.5)]
    spread = np.random.normal(0, 1, (self.num_features + 1, self.num_features))
    x = np.vstack([x, *beside, spread])
    logits = self._o_l(x)
    hidden = np.maximum(x @ self.w_0 + self.b_0.T, 0.0)
    design = np.hstack([hidden, x, np.ones((len(x), 1))])
    solution = np.linalg.lstsq(design, logits, rcond=None)[0]
    h, k = self.w_0.shape[1], self.num_classes
    linear = solution[h:-1]
    self.w_0 = np.hstack([self.w_0, linear, -linear])
    self.b_0 = np.vstack([self.b_0, np.zeros((2 * k, 1))])
    self.w_1 = np.vstack([solution[:h], np.eye(k), -np.eye(k)])
    self.b_1 = solution[-1].reshape(k, 1)


def _fee_class() -> type:
    """ART's FunctionallyEquivalentExtraction with the fixes the module docstring lists."""
    from art.attacks.extraction import FunctionallyEquivalentExtraction

    class FixedFunctionallyEquivalentExtraction(FunctionallyEquivalentExtraction):
        """ART's attack; critical-point search and last layer replaced (see module doc)."""

        # The extracted network's layers, as ART's extract() sets them.
        w_0: np.ndarray
        b_0: np.ndarray
        w_1: np.ndarray
        b_1: np.ndarray

        _critical_point_search = _fee_critical_point_search
        _last_layer_extraction = _fee_last_layer_extraction

    return FixedFunctionallyEquivalentExtraction


@functools.cache
def _oracle_class() -> type:
    """ART's black-box neural-network estimator, answering in float64 (ART's rounds)."""
    import numpy as np
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    class Float64Oracle(BlackBoxClassifierNeuralNetwork):
        """The victim's logits in float64 for flat float64 inputs."""

        def predict(self, x: np.ndarray, batch_size: int = 128, **kwargs) -> np.ndarray:
            """Logits of the victim for ``x`` (N, features), float64."""
            return self._predict_fn(np.asarray(x, dtype=np.float64))

    return Float64Oracle


class FunctionallyEquivalentAttack:
    """Recover a two-layer ReLU victim's weights from its logits (ART, with fixes)."""

    def __init__(self, resolved: ResolvedOptions):
        check_pool_fraction("attack functionally-equivalent", resolved.pool_fraction)
        self.options = resolved

    def run(self, victim: torch.nn.Module, ctx) -> dict[str, float]:
        """Extract the victim, then compare the extracted network with it on held-out images."""
        import numpy as np
        import torch

        from harness import QueryCounter

        o = self.options
        width = self._width(victim)
        split = split_test_set(ctx, o.pool_fraction)
        image_shape = tuple(split.x_pool.shape[1:])
        exact = copy.deepcopy(victim).to(device="cpu", dtype=torch.float64).eval()
        counter = QueryCounter(exact)
        limit = o.max_queries

        @torch.no_grad()
        def ask(x: np.ndarray) -> np.ndarray:
            if counter.images + len(x) > limit:
                raise _QueryBudgetSpent
            images = torch.from_numpy(x).reshape(len(x), *image_shape)
            return counter(images).numpy()

        oracle = _oracle_class()(ask, input_shape=(math.prod(image_shape),),
                                 nb_classes=ctx.data.num_classes)
        x_pool = split.x_pool.detach().cpu().double().reshape(len(split.x_pool), -1).numpy()
        seed = derive_seed(ctx.seed, "functionally-equivalent", "attack")
        extracted, failures = self._extract(oracle, width, x_pool, seed)
        x_eval = split.x_eval.detach().cpu().double().reshape(len(split.x_eval), -1).numpy()
        stolen = np.asarray(extracted.predict(x_eval), dtype=np.float64)
        with torch.no_grad():
            truth = exact(split.x_eval.detach().cpu().double()).numpy()
        metrics = extraction_metrics(victim, torch.from_numpy(stolen.argmax(1)), split,
                                     counter.images)
        difference = stolen - truth
        metrics["logit_max_error"] = float(np.abs(difference).max())
        metrics["fidelity_l2"] = float(np.linalg.norm(difference, axis=1).mean())
        metrics["attempts"] = float(len(failures) + 1)
        return metrics

    def _width(self, victim: torch.nn.Module) -> int:
        """The hidden width to extract (the victim's unless ``num_neurons`` says), refused
        above ``max_hidden``."""
        o = self.options
        width = hidden_width(victim) if o.num_neurons is None else o.num_neurons
        if width > o.max_hidden:
            raise UsageError(
                f"functionally-equivalent: the victim has {width} hidden neurons, more than "
                f"max_hidden={o.max_hidden}; its search grows with the width squared "
                "(about 12-20 s at 128 on 8x8 digits, 40 s at 256). Train a narrower victim "
                f"with --model-opt mlp.hidden={o.max_hidden} (or less), or allow this one "
                f"with --attack-opt functionally-equivalent.max_hidden={width}")
        return width

    def _extract(self, oracle: Any, width: int, x_pool: Any, seed: int) -> tuple[Any, list[str]]:
        """The extracted network, from the first random line whose search succeeds (up to
        ``restarts`` more), and the failures before it."""
        import numpy as np
        import torch

        from harness import seeded

        o = self.options
        extract_args = {"delta_0": o.delta_0, "fraction_true": o.fraction_true,
                        "rel_diff_slope": o.rel_diff_slope, "rel_diff_value": o.rel_diff_value,
                        "delta_init_value": o.delta_init_value, "delta_sign": o.delta_sign}
        failures: list[str] = []
        n_features = x_pool.shape[1]
        with seeded(seed, torch.device("cpu")):
            line = np.random.default_rng(seed)
            for _ in range(o.restarts + 1):
                attack = _fee_class()(oracle, num_neurons=width)
                attack.vector_u = line.normal(size=(1, n_features))
                attack.vector_v = line.normal(size=(1, n_features))
                try:
                    return attack.extract(x_pool, **extract_args), failures
                except (AssertionError, _SearchStalled) as exc:
                    failures.append(str(exc))
                except _QueryBudgetSpent:
                    raise HarnessError(
                        f"functionally-equivalent: spent max_queries={o.max_queries} "
                        "queries without finishing; raise --attack-opt "
                        "functionally-equivalent.max_queries or use a narrower victim"
                    ) from None
        raise HarnessError(
            f"functionally-equivalent: the critical-point search failed on each of "
            f"{len(failures)} random lines ({'; '.join(failures)}); try more "
            "--attack-opt functionally-equivalent.restarts or another --seed")


def build_fee(resolved: ResolvedOptions) -> FunctionallyEquivalentAttack:
    """The ``functionally-equivalent`` attack with the resolved options (:data:`FEE_OPTIONS`)."""
    return FunctionallyEquivalentAttack(resolved)


def _extraction_spec(name: str, description: str,
                     build: Callable[[ResolvedOptions], AttackObject], needs: frozenset[str],
                     art_class: str, schema: OptionSchema,
                     smoke_options: Mapping[str, Any] | None = None) -> AttackSpec:
    """The spec of one extraction attack: black-box, unbounded, of the survey's Table 5,
    reporting :data:`EXTRACTION_METRICS`."""
    return AttackSpec(
        name=name, description=description, build=build, needs=needs,
        config={"art_class": art_class}, options=schema, metrics=EXTRACTION_METRICS,
        smoke_options=dict(smoke_options or {}), category="extraction",
        survey_table=SURVEY_TABLE, bounded=False, norm="none", threat_model="black-box")


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``copycat``, ``knockoff`` and ``functionally-equivalent``."""
    register(_extraction_spec(
        "copycat", "Copycat CNN (ART): train a fresh copy of the victim on its labels for "
                   "unlabelled pool images",
        build_copycat, frozenset({"labels"}), "CopycatCNN", COPYCAT_OPTIONS,
        smoke_options={"nb_stolen": 16, "nb_epochs": 1}))
    register(_extraction_spec(
        "knockoff", "Knockoff Nets (ART): steal with random or adaptively sampled pool queries",
        build_knockoff, frozenset({"labels"}), "KnockoffNets", KNOCKOFF_OPTIONS,
        smoke_options={"nb_stolen": 16, "nb_epochs": 1}))
    register(_extraction_spec(
        "functionally-equivalent", "Functionally equivalent extraction (ART, fixed): recover "
                                   "a two-layer ReLU net's weights from its logits (hidden "
                                   "width <= 128)",
        build_fee, frozenset({"two-layer-relu", "scores"}), "FunctionallyEquivalentExtraction",
        FEE_OPTIONS))
