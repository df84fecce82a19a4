"""The speed options a GPU user expects, exercised on the CPU: ``--amp bf16`` (autocast by
forward hooks, part of the cache keys), ``--cudnn-benchmark`` (part of the keys); these and the
early-stopping options refused before any work when their values are bad."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.cli import main
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig, make_plan
from harness.results.store import ResultStore
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.testing import tiny_image_data, trained_tiny_classifier
from harness.util.devices import autocast_forward


def test_autocast_forward_keeps_the_state_dict_and_returns_float32_logits():
    data = tiny_image_data()
    plain = trained_tiny_classifier()
    amp = autocast_forward(copy.deepcopy(plain), "bf16", torch.device("cpu"))
    assert list(amp.state_dict()) == list(plain.state_dict())
    out = amp(data.x_test)
    assert out.dtype == torch.float32
    reference = plain(data.x_test)
    assert not torch.equal(out, reference)                 # computed in bfloat16 ...
    assert torch.allclose(out, reference, atol=0.1, rtol=0.05)    # ... close to float32
    x = data.x_test.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(amp(x), data.y_test).backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0
    assert copy.deepcopy(amp)(data.x_test).dtype == torch.float32


def test_amp_and_cudnn_benchmark_are_part_of_the_keys_only_when_set():
    registry = load_registry()
    base = dict(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm",),
                defenses=("none",), device="cpu")
    plain = make_plan(BenchConfig(**base), registry)
    amp = make_plan(BenchConfig(**base, amp="bf16"), registry)
    tuned = make_plan(BenchConfig(**base, cudnn_benchmark=True), registry)
    assert "amp" not in plain.jobs[0].key_fields and plain.jobs[0].amp is None
    assert amp.jobs[0].key_fields["amp"] == "bf16" and amp.jobs[0].amp == "bf16"
    keys = {p.jobs[0].key for p in (plain, amp, tuned)}
    cells = {p.cells[0].key for p in (plain, amp, tuned)}
    assert len(keys) == 3 and len(cells) == 3


def test_a_bf16_run_trains_and_scores_in_mixed_precision(isolated_home):
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm",),
                         defenses=("none",), n_train=200, n_test=50, epochs=2, device="cpu",
                         amp="bf16", checks=False)
    outcome = Runner(config, load_registry(), ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "models"), show_progress=False).run()
    (record,) = outcome.records
    assert record.status == "ok", record.error
    assert record.config["training"]["amp"] == "bf16"
    assert 0 <= record.robust_acc <= record.clean_acc <= 1


def test_an_unknown_amp_precision_is_refused_before_any_work(isolated_home, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--amp", "fp8", "--quiet"])
    assert stop.value.code == 2
    assert "--amp" in capsys.readouterr().err
    assert not (isolated_home / "results.sqlite").exists()


def test_early_stopping_options_are_checked_before_any_work(isolated_home, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--early-stop-on", "adversarial", "--quiet"])
    assert stop.value.code == 2
    assert main(["bench", "--early-stop-on", "robust", "--early-stop-eps", "3",
                 "--quiet"]) == 2
    assert "--early-stop-eps 3 is out of range" in capsys.readouterr().err
    assert not (isolated_home / "results.sqlite").exists()
