"""harness.evaluate: the Python door agrees with `harness bench` cell for cell, refuses what the
command line refuses with the same message, and the examples of the README and docs run."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import harness
from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "your-model"


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    """The README example's CNN, trained for a few steps on the digits' training split."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from evaluate_your_model import train_small_cnn
    finally:
        sys.path.remove(str(EXAMPLES))
    return train_small_cnn(steps=150)


def test_evaluate_and_bench_agree_cell_for_cell(model, tmp_path, isolated_home, capsys):
    path = tmp_path / "m.pt"
    torch.jit.script(model).save(str(path))
    db = tmp_path / "results.sqlite"
    out = tmp_path / "cli.json"
    assert main(["bench", "--model", f"torchscript:{path}", "--attack", "fgsm,pgd", "--quiet",
                 "--db", str(db), "--json", str(out), "--format", "json"]) == 0
    cli = {r["cell_key"]: r for r in json.loads(out.read_text())["records"]}
    api = harness.evaluate(path, attacks=["fgsm", "pgd"], store=db, progress=False)
    assert {r.cell_key for r in api.records} == set(cli)
    for record in api.records:
        assert record.robust_acc == cli[record.cell_key]["metrics"]["robust_acc"]
        assert record.run_id == cli[record.cell_key]["run_id"]     # reused, not recomputed
    # the module itself, without a file: the same numbers (its own key: no file, no SHA of one)
    direct = harness.evaluate(model, attacks=["fgsm", "pgd"], store=None, progress=False)
    by_cell = lambda rs: {(r.attack, r.eps): (r.clean_acc, r.robust_acc)  # noqa: E731
                          for r in rs if r.ok}
    assert by_cell(direct.records) == by_cell(api.records)
    assert direct.rows[0].model == "Sequential" and direct.rows[0].defense == "supplied"
    page = direct.to_markdown()
    assert "| digits" in page
    assert "- supplied models, evaluated as they are: Sequential (SHA-256 " in page
    assert direct.worst and direct.worst[0].n == 360


def test_a_refused_model_raises_the_command_lines_message_and_stores_nothing(tmp_path, capsys):
    db = tmp_path / "results.sqlite"
    five = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.raises(harness.EvaluationError) as caught:
        harness.evaluate(five, store=db, progress=False)
    path = tmp_path / "five.pt"
    torch.jit.script(five).save(str(path))
    capsys.readouterr()
    assert main(["bench", "--model", f"torchscript:{path}", "--db", str(db), "--quiet"]) == 2
    cli = capsys.readouterr().err
    assert str(caught.value).replace("Sequential", "M") in cli.replace(f"torchscript:{path.name}",
                                                                       "M")
    assert isinstance(caught.value, harness.UsageError)
    from test_supplied import _stored

    assert _stored(tmp_path) == 0
    with pytest.raises(harness.UsageError, match="save it"):
        harness.evaluate(five, executor="local", store=None)
    with pytest.raises(harness.UsageError, match="training defense"):
        harness.evaluate(small_cnn(), defenses=["advtrain"], store=None, progress=False)


def test_the_readme_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (example,) = [b for b in blocks if "harness.evaluate(" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert isinstance(results, harness.ResultSet) and results.rows


def test_the_docs_example_script_runs(capsys):
    runpy.run_path(str(EXAMPLES / "evaluate_your_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "my-cnn: clean" in out and "worst case" in out


def test_a_gradient_hiding_model_is_unreliable_and_an_honest_one_holds(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import claims_demo
    finally:
        sys.path.remove(str(EXAMPLES))
    home = tmp_path / "home"
    hidden, honest = claims_demo.make_files(tmp_path, home)
    claims = claims_demo.check_claims(hidden, honest, home)
    assert claims["hidden"]["unreliable"] is True
    reasons = " ".join(claims["hidden"]["unreliable_reason"])
    assert "flag C" in reasons and "below the reported 95.00%" in reasons
    assert claims["hidden"]["supplied"]["sha256"]
    assert claims["honest"]["unreliable"] is False
    assert claims["honest"]["unreliable_reason"] is None
    assert float(claims["honest"]["worst_case_acc"]) >= 70.0
