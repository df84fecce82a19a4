"""Throughput of harness's attacks, evasion cells and training epochs beside ART and torchattacks.

The published page ``leaderboards/throughput.md`` comes from these two commands, run from the
repository root on a quiet machine (nothing else running)::

    HARNESS_BENCH_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_throughput.py \
        --benchmark-enable --benchmark-min-rounds=10 \
        --benchmark-json leaderboards/throughput.json
    .venv/bin/python benchmarks/throughput_page.py leaderboards/throughput.json \
        --json-out leaderboards/throughput.json --out leaderboards/throughput.md

(the second normalizes the JSON in place: no host name, no timestamps). On a GPU machine the
suite measures on CUDA (``HARNESS_BENCH_DEVICE=cpu`` keeps it on the CPU). torchattacks is
installed with ``.venv/bin/pip install --no-deps -c constraints.txt torchattacks==3.5.1``
(its metadata pins requests~=2.25.1, which it never imports); without it, its rows are
skipped.

Two settings: ``paper-cnn`` on MNIST-sized input (1x28x28, 10 classes, batch 256) and
``timm:resnet18`` on CIFAR-sized input (3x32x32, 10 classes, batch 64), both built through
the registry as the runner builds them, with random weights. In each: the floor (one
forward and backward pass with respect to the input, parameters frozen: what one gradient
step of an attack costs at least), then FGSM and PGD-10 natively, through torchattacks and
through ART (harness's bridge). On the MNIST-sized setting also the standard AutoAttack
through the harness beside its reference code called directly, whole evasion cells as the
runner evaluates them (FGSM and PGD-10 on 1,024 images) and one training epoch (2,048 images)
of ``none``, ``advtrain`` (Algorithm 2), ``art-advtrain``, ``fbf``, ``madry-pgd`` (ART) and
``pgd-at`` (the same PGD-7 training, native), and randomized smoothing's CERTIFY per
certified image; in both settings the corruption sweep per test image (every corruption of
the ``corruptions`` suite at every severity).

Each benchmark records in ``extra_info`` its setting, kind (floor, attack, cell, epoch),
implementation, images per call and gradient steps per image, which the page uses for
images/s and ratios to the floor. The suite is not part of the default test run (it is not
cheap even with ``--benchmark-disable``); ``tests/test_throughput_page.py`` tests the page.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from harness.art.declarations import ArtEvasion
from harness.contracts.data import DataOptions, ImageData, ModelInput
from harness.contracts.hookspecs import hookimpl
from harness.contracts.options import Option
from harness.contracts.records import OK
from harness.contracts.specs import DatasetSpec, PluginInfo
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig, Cell
from harness.planning.registry import Registry
from harness.run.provider import TrainedModel
from harness.run.work import Worker, WorkSetup
from harness.train.loop import TrainContext, TrainData, TrainSettings


@dataclass(frozen=True)
class Setting:
    """A model on an input size: the registry's model and the dataset it is sized for."""

    id: str
    label: str
    model: str
    dataset: str
    shape: tuple[int, int, int]
    classes: int
    batch: int


MNIST = Setting("mnist", "paper-cnn on MNIST-sized input (1x28x28, 10 classes), batch 256",
                "paper-cnn", "mnist", (1, 28, 28), 10, 256)
CIFAR = Setting("cifar", "timm resnet18 on CIFAR-sized input (3x32x32, 10 classes), batch 64",
                "timm:resnet18", "cifar10", (3, 32, 32), 10, 64)
SETTINGS = (MNIST, CIFAR)

PGD_STEPS = 10
CELL_IMAGES = 1024
EPOCH_IMAGES = 2048
EPOCH_VALIDATION = 256
RANDOM_DATASET = "throughput-random-mnist-sized"

# ART's PGD through the bridge, as the native pgd: Linf, one random start, 10 steps of
# 2.5 * eps / 10 (harness registers no ART PGD evasion attack of its own).
ART_PGD = ArtEvasion(
    name="art-pgd", art_name="ProjectedGradientDescent", survey_table="Table 1",
    description="ART's ProjectedGradientDescent (Linf), random start, 10 steps of 2.5*eps/10",
    threat_model="white-box", norm="inf", needs=frozenset({"gradients"}), bounded=True,
    eps_args=lambda eps: {"eps": eps, "eps_step": 2.5 * eps / PGD_STEPS},
    options=(Option(name="max_iter", type="int", default=PGD_STEPS, min=1, help="steps"),
             Option(name="num_random_init", type="int", default=1, min=0,
                    help="random starts"),
             Option(name="batch_size", type="int", default=256, min=1,
                    help="images per batch of model calls")),
)


@dataclass
class Workload:
    """One setting's model (eval mode, on the device), a batch of images, labels and eps."""

    setting: Setting
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    eps: float


def build_model(registry: Registry, setting: Setting, device: torch.device,
                seed: int = 0) -> torch.nn.Module:
    """``setting``'s model as the runner builds it (declared default options, the dataset's
    channels, classes, mean and std), with random weights from ``seed``, in eval mode."""
    spec, variant = registry.model_variant(setting.model)
    dataset = registry.dataset(setting.dataset)
    c, h, w = setting.shape
    torch.manual_seed(seed)
    model = spec.build(ModelInput(c, h, w, setting.classes, dataset.mean, dataset.std), variant,
                       spec.resolve_options({}))
    return model.to(device).eval()


def random_images(n: int, setting: Setting, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniform random images of ``setting``'s shape and random labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *setting.shape), generator=g)
    return x, torch.randint(0, setting.classes, (n,), generator=g)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Every installed plugin, loaded strictly as ``harness bench`` loads them."""
    return load_registry()


@pytest.fixture(scope="module", params=SETTINGS, ids=[s.id for s in SETTINGS])
def workload(request: pytest.FixtureRequest, registry: Registry, bench_env: Any) -> Workload:
    """The setting's model and one batch on the suite's device."""
    setting: Setting = request.param
    x, y = random_images(setting.batch, setting, seed=1)
    device = bench_env.device
    return Workload(setting, build_model(registry, setting, device), x.to(device), y.to(device),
                    registry.dataset(setting.dataset).default_eps)


def about(w: Workload, key: str, label: str, kind: str, implementation: str,
          steps: int) -> dict[str, Any]:
    """The ``measure`` keywords of a benchmark on one batch of ``w``."""
    return {"setting": w.setting.id, "setting_label": w.setting.label, "key": key,
            "label": label, "kind": kind, "implementation": implementation,
            "images": len(w.x), "steps": steps}


def assert_within_budget(x_adv: torch.Tensor, w: Workload) -> None:
    """The examples have the batch's shape, lie in [0, 1] and within eps of it (Linf)."""
    assert x_adv.shape == w.x.shape
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv.to(w.x.device) - w.x).abs().max()) <= w.eps + 1e-5


def test_floor(measure: Any, workload: Workload) -> None:
    """One forward and backward pass with respect to the input, parameters frozen."""
    w = workload
    model = copy.deepcopy(w.model).requires_grad_(False)

    def gradient() -> torch.Tensor:
        x = w.x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), w.y)
        (grad,) = torch.autograd.grad(loss, x)
        return grad

    grad = measure(gradient, **about(w, "floor", "forward+backward w.r.t. the input (floor)",
                                     "floor", "torch", steps=1))
    assert grad.shape == w.x.shape and bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_native(measure: Any, workload: Workload, registry: Registry, name: str) -> None:
    """The built-in ``fgsm`` and ``pgd`` (PGD-10) at their declared defaults."""
    w = workload
    spec = registry.attack(name)
    params = spec.resolve_options({})
    attack = spec.build(params)
    steps = 1 if name == "fgsm" else int(params["steps"])
    x_adv = measure(lambda: attack.perturb(w.model, w.x, w.y, w.eps),
                    **about(w, name, _label(name), "attack", "native", steps))
    assert_within_budget(x_adv, w)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_torchattacks(measure: Any, workload: Workload, name: str) -> None:
    """torchattacks' FGSM and PGD (Linf, random start, 10 steps of 2.5 * eps / 10)."""
    torchattacks = pytest.importorskip("torchattacks")
    w = workload
    if name == "fgsm":
        attack, steps = torchattacks.FGSM(w.model, eps=w.eps), 1
    else:
        attack = torchattacks.PGD(w.model, eps=w.eps, alpha=2.5 * w.eps / PGD_STEPS,
                                  steps=PGD_STEPS, random_start=True)
        steps = PGD_STEPS
    x_adv = measure(lambda: attack(w.x, w.y),
                    **about(w, name, _label(name), "attack", "torchattacks", steps))
    assert_within_budget(x_adv, w)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_art(measure: Any, workload: Workload, registry: Registry, name: str) -> None:
    """ART's FastGradientMethod (``art-fgsm``) and ProjectedGradientDescent through harness's
    bridge, the whole batch per ART call."""
    w = workload
    spec = registry.attack("art-fgsm") if name == "fgsm" else ART_PGD.spec()
    attack = spec.build(spec.resolve_options({"batch_size": w.setting.batch}))
    steps = 1 if name == "fgsm" else PGD_STEPS
    x_adv = measure(lambda: attack.perturb(w.model, w.x, w.y, w.eps),
                    **about(w, name, _label(name), "attack", "ART", steps))
    assert_within_budget(x_adv, w)


AUTOATTACK_IMAGES = 64


@pytest.mark.parametrize("implementation", ["native", "reference"])
def test_autoattack(measure: Any, workload: Workload, registry: Registry,
                    implementation: str) -> None:
    """The standard AutoAttack on :data:`AUTOATTACK_IMAGES` images the model classifies
    correctly (labelled with its own predictions, so every image is attacked): the
    harness's ``autoattack`` (``native``: the plugin, attack by attack on the images still
    standing) beside the reference code called directly (``reference``:
    ``pyautoattack.AutoAttack(version="standard").run_standard_evaluation``). AutoAttack's
    number of gradient steps depends on the images, so there is no floor ratio; the goal
    compares the two."""
    pyautoattack = pytest.importorskip("pyautoattack")
    w = workload
    if w.setting.id != MNIST.id:
        pytest.skip("measured on the MNIST-sized setting")
    x = w.x[:AUTOATTACK_IMAGES]
    with torch.no_grad():
        y = w.model(x).argmax(1)
    if implementation == "native":
        spec = registry.attack("autoattack")
        attack = spec.build(spec.resolve_options({}))

        def run() -> torch.Tensor:
            return attack.perturb(w.model, x, y, w.eps)
    else:
        def run() -> torch.Tensor:
            aa = pyautoattack.AutoAttack(w.model, norm="Linf", eps=w.eps, version="standard",
                                         seed=0, device=x.device)
            aa.verbose = False
            return aa.run_standard_evaluation(x, y, batch_size=len(x))[0]

    x_adv = measure(run, setting=w.setting.id, setting_label=w.setting.label,
                    key="autoattack", label=f"standard AutoAttack, {AUTOATTACK_IMAGES} images",
                    kind="attack", implementation=implementation, images=len(x), steps=0)
    assert x_adv.shape == x.shape


CERTIFY_IMAGES = 8
CERTIFY_DRAWS = 1_000
CORRUPTION_IMAGES = 64


def test_certify(measure: Any, workload: Workload, registry: Registry) -> None:
    """Randomized smoothing's CERTIFY (the built-in ``smoothing``: n0 = 100 draws to pick the
    class, n = :data:`CERTIFY_DRAWS` to bound it, batches of 1,000) on
    :data:`CERTIFY_IMAGES` images: the cost of a certified image, (n0 + n) forward passes of
    the base model, no backward pass."""
    w = workload
    if w.setting.id != MNIST.id:
        pytest.skip("measured on the MNIST-sized setting")
    spec = registry.attack("smoothing")
    certifier = spec.build(spec.resolve_options({"n": CERTIFY_DRAWS}))
    x = w.x[:CERTIFY_IMAGES]
    found = measure(lambda: certifier.certify(w.model, x), setting=w.setting.id,
                    setting_label=w.setting.label, key="certify",
                    label=f"randomized smoothing CERTIFY (n0 100, n {CERTIFY_DRAWS:,}), "
                          "per certified image", kind="certify", implementation="native",
                    images=len(x), steps=0)
    assert found.prediction.shape == (len(x),)


def test_corruption_sweep(measure: Any, workload: Workload, registry: Registry) -> None:
    """The built-in ``corruptions`` suite, every corruption at every severity, on
    :data:`CORRUPTION_IMAGES` images (MNIST-C's 15 on the grayscale setting, the 14 -C
    families at 5 severities on the colour one): the cost of the sweep per test image,
    without the model's forward passes."""
    w = workload
    spec = registry.attack("corruptions")
    suite = spec.build(spec.resolve_options({}))
    x = w.x[:CORRUPTION_IMAGES]
    names = list(suite.corruptions(w.setting.shape))
    settings = [(name, s) for name in names for s in suite.severities(name)]

    def sweep() -> int:
        generator = torch.Generator(device=x.device).manual_seed(0)
        for name, severity in settings:
            suite.corrupt(name, x, severity, generator)
        return len(settings)

    done = measure(sweep, setting=w.setting.id, setting_label=w.setting.label,
                   key="corruptions", label=f"corruption sweep ({len(settings)} corruption "
                   "and severity pairs), per test image", kind="corruptions",
                   implementation="native", images=len(x), steps=0)
    assert done == len(settings)


def _label(name: str) -> str:
    return {"fgsm": "FGSM", "pgd": f"PGD-{PGD_STEPS}"}[name]


class RandomMnistSized:
    """An in-process plugin: a dataset of uniform random MNIST-sized images (the cells'
    timing does not depend on what the images show)."""

    @staticmethod
    def load(options: DataOptions) -> ImageData:
        """512 training and :data:`CELL_IMAGES` test images with random labels."""
        x_train, y_train = random_images(512, MNIST, seed=2)
        x_test, y_test = random_images(CELL_IMAGES, MNIST, seed=3)
        return ImageData(x_train, y_train, x_test, y_test, num_classes=MNIST.classes)

    @hookimpl
    def harness_register_datasets(self, register: Any) -> None:
        """Register the random dataset."""
        register(DatasetSpec(name=RANDOM_DATASET, load=self.load, default_eps=0.1,
                             description="Uniform random MNIST-sized images (benchmarks)"))


@dataclass
class CellRun:
    """A runner's worker with a plan of one model and its fgsm and pgd cells."""

    worker: Worker
    trained: TrainedModel

    def cell(self, attack: str) -> Cell:
        """The plan's cell of ``attack``."""
        return next(c for c in self.worker.plan.cells if c.attack.name == attack)


@pytest.fixture(scope="module")
def cell_run(tmp_path_factory: pytest.TempPathFactory, bench_env: Any) -> Iterator[CellRun]:
    """paper-cnn trained for one epoch on the random dataset by the runner's worker, which
    then evaluates its cells (attack batch 256, as the floor's)."""
    info = PluginInfo(name="throughput-random-data", distribution="<in-process>", version="0")
    registry = load_registry(extra_plugins=[(info, RandomMnistSized())])
    config = BenchConfig(datasets=(RANDOM_DATASET,), models=(MNIST.model,),
                         defenses=("none",), attacks=("fgsm", "pgd"), eps=(0.1,),
                         n_test=CELL_IMAGES, epochs=1, device=bench_env.device.type,
                         attack_batch_size=MNIST.batch, checks=False)
    home: Path = tmp_path_factory.mktemp("harness-home")
    worker = Worker(WorkSetup(config, home=home), registry=registry)
    yield CellRun(worker, worker.trained(worker.plan.jobs[0]))


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_cell(measure: Any, cell_run: CellRun, name: str) -> None:
    """One whole evasion cell as the runner evaluates it (attack, scoring, stored examples
    and their check); the model's clean predictions are shared by its cells, so the
    warm-up round pays them."""
    cell = cell_run.cell(name)
    steps = 1 if name == "fgsm" else int(cell.attack_params["steps"])
    result = measure(lambda: cell_run.worker.evaluate(cell, cell_run.trained),
                     setting=MNIST.id, setting_label=MNIST.label, key=f"cell-{name}",
                     label=f"evasion cell, {_label(name)}, {CELL_IMAGES:,} images",
                     kind="cell", implementation="native", images=CELL_IMAGES, steps=steps)
    assert result.status == OK, result.error
    assert result.n_test == CELL_IMAGES


EPOCHS = {"none": ("clean (Algorithm 1)", "native"),
          "advtrain": ("Algorithm 2 (FGSM pairs)", "native"),
          "art-advtrain": ("AdversarialTrainer (FGSM, ratio 0.5)", "ART"),
          "fbf": ("fast is better than free", "ART"),
          "madry-pgd": ("Madry PGD-7", "ART"),
          "pgd-at": ("Madry PGD-7", "native")}


@pytest.fixture(scope="module")
def train_data(bench_env: Any) -> TrainData:
    """:data:`EPOCH_IMAGES` random MNIST-sized training images and a validation part."""
    x, y = random_images(EPOCH_IMAGES + EPOCH_VALIDATION, MNIST, seed=4)
    fraction = EPOCH_VALIDATION / (EPOCH_IMAGES + EPOCH_VALIDATION)
    data = TrainData.from_tensors(x.to(bench_env.device), y.to(bench_env.device),
                                  MNIST.classes, fraction, seed=0)
    assert len(data.x) == EPOCH_IMAGES
    return data


@pytest.mark.parametrize("name", list(EPOCHS))
def test_epoch(measure: Any, registry: Registry, train_data: TrainData, bench_env: Any,
               name: str) -> None:
    """One training epoch of the defense ``name`` through the harness's loop (its validation
    pass included) on a fresh paper-cnn (built outside the timing)."""
    spec = registry.defense(name)
    defense = spec.build(spec.resolve_options({}, dataset_eps=0.1))
    ctx = TrainContext(settings=TrainSettings(epochs=1, patience=1, seed=0),
                       device=bench_env.device, dataset_eps=0.1, show_progress=False)

    def fresh_model() -> tuple[tuple[torch.nn.Module], dict[str, Any]]:
        return (build_model(registry, MNIST, bench_env.device),), {}

    label, implementation = EPOCHS[name]
    report = measure(lambda model: defense.train(model, train_data, ctx), setup=fresh_model,
                     setting=MNIST.id, setting_label=MNIST.label, key=f"epoch-{name}",
                     label=f"training epoch: {name}, {label}", kind="epoch",
                     implementation=implementation, images=EPOCH_IMAGES, steps=1)
    assert report.epochs_run == 1 and report.images == EPOCH_IMAGES
