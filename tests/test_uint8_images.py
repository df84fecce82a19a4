"""Datasets held as uint8 (Imagenette, ImageNet): a quarter of float32's memory, converted batch
by batch, and exactly the numbers of the same images held as float."""

from __future__ import annotations

import pytest
import torch

from harness.contracts.data import DataOptions, ImageData, to_float
from harness.contracts.hookspecs import hookimpl
from harness.contracts.specs import DatasetSpec
from harness.planning.plan import BenchConfig
from harness.results.store import ResultStore
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.train.loop import TrainData
from harness_plugins.digits import load_digits


def _digits(as_uint8: bool, options: DataOptions) -> ImageData:
    """The real 8x8 digits at 8 bits: as uint8, or as the exact floats of those bytes."""
    data = load_digits(options)
    x_train, x_test = ((x * 255).round().to(torch.uint8) for x in (data.x_train, data.x_test))
    if not as_uint8:
        x_train, x_test = to_float(x_train), to_float(x_test)
    return ImageData(x_train, data.y_train, x_test, data.y_test, num_classes=10,
                     class_names=data.class_names)


class EightBitDigits:
    """The digits twice: ``digits-u8`` held as uint8, ``digits-f32`` the same values as float."""

    @hookimpl
    def harness_register_datasets(self, register):
        for name, as_uint8 in (("digits-u8", True), ("digits-f32", False)):
            register(DatasetSpec(
                name=name, description=f"8-bit digits ({'uint8' if as_uint8 else 'float'})",
                load=lambda options, as_uint8=as_uint8: _digits(as_uint8, options),
                default_eps=0.1, source="scikit-learn's digits, quantized to 8 bits"))


def test_to_float_is_exact_batch_by_batch():
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    whole = to_float(x)
    assert whole.dtype == torch.float32 and torch.equal(whole, x.float() / 255)
    assert torch.equal(torch.cat([to_float(x[i:i + 3]) for i in range(0, 10, 3)]), whole)
    assert to_float(whole) is whole


def test_held_as_uint8_through_subsets_and_splits():
    data = _digits(True, DataOptions())
    assert data.stored_as_uint8 and data.x_train.element_size() == 1
    small = data.subset(100, 50, seed=0)
    assert small.x_train.dtype == small.x_test.dtype == torch.uint8
    split = TrainData.split(data, 0.1, 0)
    assert split.x.dtype == torch.uint8
    assert torch.equal(split.floats().x, to_float(split.x))
    same = _digits(False, DataOptions())
    assert torch.equal(data.floats().x_train, same.x_train) and same.floats() is same


def test_other_integer_images_are_refused():
    with pytest.raises(ValueError, match="float or uint8"):
        ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.int16), torch.zeros(2, dtype=torch.int64),
                  torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), num_classes=2)


def test_same_numbers_as_float_cell_by_cell(isolated_home, harness_plugin):
    """none and advtrain train from uint8 batches (they declare reads_uint8); fbf (ART, whole
    float arrays) and the membership-inference attack (an AttackContext) get float images:
    every number and every per-image outcome equals the float dataset's."""
    registry = harness_plugin(EightBitDigits(), name="eight-bit-digits")

    def run(dataset: str):
        config = BenchConfig(datasets=(dataset,), models=("paper-cnn",),
                             defenses=("none", "advtrain", "fbf"),
                             attacks=("fgsm", "pgd", "membership-inference"),
                             attack_options={"membership-inference": {"epochs": 3}},
                             n_train=300, n_test=60, epochs=2, device="cpu", checks=False)
        outcome = Runner(config, registry, ResultStore(isolated_home / f"{dataset}.sqlite"),
                         ModelCache(isolated_home / "models"), show_progress=False).run()
        assert not outcome.failed, [r.error for r in outcome.failed]
        return {(r.defense, r.attack): r for r in outcome.records}

    stored, floats = run("digits-u8"), run("digits-f32")
    assert set(stored) == set(floats) and len(stored) >= 7
    for cell, record in stored.items():
        other = floats[cell]
        assert (record.clean_acc, record.robust_acc, record.outcomes) == \
            (other.clean_acc, other.robust_acc, other.outcomes), cell
        assert record.metrics == other.metrics or record.category != "evasion", cell
    assert stored[("none", "membership-inference")].metrics == \
        floats[("none", "membership-inference")].metrics


def test_attack_contexts_share_one_float_copy(tmp_path):
    from harness.run.provider import ModelProvider

    provider = ModelProvider(ModelCache(tmp_path), torch.device("cpu"))
    stored = _digits(True, DataOptions())
    view = provider.floats(stored)
    assert view.x_train.dtype == torch.float32 and provider.floats(stored) is view
    same = _digits(False, DataOptions())
    assert provider.floats(same) is same and torch.equal(view.x_test, same.x_test)
