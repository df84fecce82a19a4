"""Models supplied trained (harness.planning.supplied): files evaluated as they are, cell for cell
the
same as the harness's own model, and every bad file or contract refused before any work."""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.cli import main

ATTACKS = "fgsm,pgd"


def bench(home: Path, *args: str, out: Path | None = None) -> int:
    argv = ["bench", "--attack", ATTACKS, "--no-checks", "--quiet", "--format", "json",
            "--db", str(home / "results.sqlite"), *args]
    if out is not None:
        argv += ["--json", str(out)]
    return main(argv)


def records(path: Path) -> list[dict]:
    return [r for r in json.loads(path.read_text())["records"] if r["status"] == "ok"]


def numbers(recs: list[dict]) -> dict[tuple, tuple]:
    """(attack, eps) -> (clean, robust, per-image outcomes) of the given records."""
    return {(r["attack"], r["eps"]): (r["metrics"]["clean_acc"], r["metrics"]["robust_acc"],
                                      r["outcomes"]["correct"])
            for r in recs}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """paper-cnn trained by the harness on digits: its own cells and its weights file."""
    home = tmp_path_factory.mktemp("trained-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(home))
        out = home / "own.json"
        assert bench(home, "--defense", "none", out=out) == 0
    (weights,) = (home / "models").glob("*.safetensors")
    return home, records(out), weights


def paper_cnn(weights: Path) -> nn.Module:
    from harness.contracts.data import ModelInput
    from harness.planning.loading import load_registry

    spec = load_registry().model("paper-cnn")
    net = spec.build(ModelInput(1, 8, 8, 10), None, spec.resolve_options({}))
    net.load_state_dict(load_file(str(weights)))
    return net.eval()


def test_every_file_kind_gives_the_harness_own_numbers_cell_for_cell(trained, tmp_path):
    home, own, weights = trained
    net = paper_cnn(weights)
    x = torch.rand(4, 1, 8, 8)
    torch.jit.script(net).save(str(tmp_path / "m.pt"))
    torch.jit.trace(net, x).save(str(tmp_path / "traced.pt"))
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    torch.onnx.export(net, (x,), str(tmp_path / "m.onnx"), input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    save_file(net.state_dict(), str(tmp_path / "m.safetensors"))
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    names = [f"torchscript:{tmp_path / 'm.pt'}", f"torchscript:{tmp_path / 'traced.pt'}",
             f"export:{tmp_path / 'm.pt2'}", f"onnx:{tmp_path / 'm.onnx'}",
             f"paper-cnn@{tmp_path / 'm.safetensors'}", f"paper-cnn@{tmp_path / 'sd.pth'}"]
    out = tmp_path / "supplied.json"
    assert bench(home, "--model", ",".join(names), out=out) == 0
    supplied = records(out)
    expected = numbers(own)
    for name in ("torchscript:m.pt", "torchscript:traced.pt", "export:m.pt2", "onnx:m.onnx",
                 "paper-cnn@m.safetensors", "paper-cnn@sd.pth"):
        mine = [r for r in supplied if r["model"] == name]
        assert {r["defense"] for r in mine} == {"supplied"}
        assert numbers(mine) == expected, name
        sha = mine[0]["config"]["training"]["supplied"]["sha256"]
        assert len(sha) == 64 and "train_seconds" not in mine[0]["timings"]
        assert mine[0]["config"]["load_seconds"] >= 0


def test_the_same_file_reuses_its_cells_and_a_changed_file_is_a_new_model(trained, tmp_path):
    home, _, weights = trained
    net = paper_cnn(weights)
    path = tmp_path / "m.pt"
    torch.jit.script(net).save(str(path))
    first, second, third = (tmp_path / f"{i}.json" for i in range(3))
    assert bench(home, "--model", f"torchscript:{path}", out=first) == 0
    assert bench(home, "--model", f"torchscript:{path}", out=second) == 0
    keys = lambda p: sorted(r["cell_key"] for r in records(p))  # noqa: E731
    runs = lambda p: {r["run_id"] for r in records(p)}  # noqa: E731
    assert keys(first) == keys(second) and runs(first) == runs(second)
    with torch.no_grad():
        net[0].bias.add_(0.01) if isinstance(net, nn.Sequential) else \
            next(net.parameters()).add_(0.01)
    torch.jit.script(net).save(str(path))
    assert bench(home, "--model", f"torchscript:{path}", out=third) == 0
    assert not set(keys(third)) & set(keys(first))


def test_input_transformations_compose_in_front_and_training_defenses_are_refused(
        trained, tmp_path, capsys):
    home, _, weights = trained
    path = tmp_path / "m.safetensors"
    save_file(paper_cnn(weights).state_dict(), str(path))
    name = f"paper-cnn@{path}"
    capsys.readouterr()
    assert bench(home, "--model", name, "--defense", "advtrain") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "advtrain is a training defense" in err
    assert "supplied trained" in err
    out = tmp_path / "mixed.json"
    assert bench(home, "--model", f"{name},paper-cnn", "--defense", "feature-squeezing",
                 "--attack", "fgsm,backdoor", out=out) == 0
    data = json.loads(out.read_text())["records"]
    mine = [r for r in data if r["model"] == "paper-cnn@m.safetensors"]
    squeezed = [r for r in mine if r["defense"] == "feature-squeezing" and r["status"] == "ok"]
    assert {r["adaptive"] for r in squeezed} == {None, "bpda"}
    poisoned = [r for r in mine if r["attack"] == "backdoor"]
    assert poisoned and all(r["status"] == "n/a" for r in poisoned)
    assert "trains its own victims" in poisoned[0]["error"]


class _Marker:
    """Unpickling this object would create a file: the proof that nothing was unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _stored(home: Path) -> int:
    db = home / "results.sqlite"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
        return conn.execute("select count(*) from results").fetchone()[0] \
            if "results" in tables else 0


def _refused(home: Path, capsys, *args: str) -> str:
    before = _stored(home)
    capsys.readouterr()
    assert bench(home, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: error: ") and err.count("\n") == 1, err
    assert _stored(home) == before
    return err


class _Net(nn.Module):
    """A wrapper whose forward is given as a function of the inner network."""

    def __init__(self, inner: nn.Module, kind: str):
        super().__init__()
        self.inner = inner
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "nan":
            return self.inner(x) * float("nan")
        if self.kind == "detached":
            return self.inner(x.detach() + 0)
        if self.kind == "five":
            return self.inner(x)[:, :5]
        return self.inner(x)


def test_bad_files_and_contracts_are_one_line_exit_2_nothing_stored(trained, tmp_path, capsys):
    home, _, weights = trained
    net = paper_cnn(weights)
    marker = tmp_path / "UNPICKLED"
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"w": _Marker(marker)}, handle)
    torch.save({"model": _Marker(marker)}, tmp_path / "evil.pt")
    torch.jit.script(net).save(str(tmp_path / "good.pt"))
    whole = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    for kind in ("nan", "detached", "five"):
        torch.jit.script(_Net(net, kind)).save(str(tmp_path / f"{kind}.pt"))
    wide = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    torch.jit.script(wide).save(str(tmp_path / "cifar.pt"))

    cases = {
        f"torchscript:{tmp_path / 'missing.pt'}": "does not exist",
        f"torchscript:{tmp_path / 'evil.pth'}": "not a readable TorchScript",
        f"torchscript:{tmp_path / 'evil.pt'}": "pickled Python object",
        f"paper-cnn@{tmp_path / 'evil.pt'}": "pickled Python objects",
        f"paper-cnn@{tmp_path / 'evil.pth'}": "not a",
        f"torchscript:{tmp_path / 'cut.pt'}": "truncated",
        f"torchscript:{tmp_path / 'five.pt'}": "returns 5 class scores, but digits has 10",
        f"torchscript:{tmp_path / 'cifar.pt'}": "must take the dataset's image shape",
        f"torchscript:{tmp_path / 'nan.pt'}": "non-finite logits",
        f"torchscript:{tmp_path / 'detached.pt'}": "is not differentiable",
    }
    for name, expected in cases.items():
        assert expected in _refused(home, capsys, "--model", name), name
    assert not marker.exists()
    # black-box attacks need no gradient: the detached model is evaluated
    assert bench(home, "--model", f"torchscript:{tmp_path / 'detached.pt'}", "--attack",
                 "random-noise") == 0


def test_a_model_expecting_standardized_images_gets_the_line_that_declares_it(
        trained, tmp_path, capsys):
    from harness.contracts.data import DataOptions
    from harness.planning.loading import load_registry
    from harness.run.supplied_models import CHECK_IMAGES

    home, _, weights = trained
    data = load_registry().dataset("digits").load(DataOptions())
    x = data.x_test[:CHECK_IMAGES]
    mean, std = x.mean().item(), x.std().item()

    class ExpectsStandardized(nn.Module):
        """paper-cnn behind the inverse of the dataset's standardization: it takes
        (x - mean) / std, as a model trained on standardized images does."""

        def __init__(self, inner: nn.Module, mean: float, std: float):
            super().__init__()
            self.inner, self.mean, self.std = inner, mean, std

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.inner(z * self.std + self.mean)

    path = tmp_path / "standardized.pt"
    torch.jit.script(ExpectsStandardized(paper_cnn(weights), mean, std)).save(str(path))
    err = _refused(home, capsys, "--model", f"torchscript:{path}")
    assert "expects normalized input" in err and ".mean=[" in err and ".std=[" in err
    # declared as the message says, the model is evaluated
    flag = err.split("declare it with ")[1].split(" (or")[0]
    opts = [a for part in flag.split("--model-opt ") if (a := part.strip())]
    args = [x for opt in opts for x in ("--model-opt", opt)]
    assert bench(home, "--model", f"torchscript:{path}", *args) == 0


def test_an_onnx_file_with_shared_initializers_converts(tmp_path):
    """Exporters share one tensor between layers through Identity nodes (equal zero biases);
    onnx2torch reads layer weights from initializers only: the loader inlines them."""
    import onnx

    from harness_plugins.model_files import load_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(), nn.Linear(256, 10)).eval()
    with torch.no_grad():
        net[0].bias.zero_()
        net[2].bias.zero_()
    x = torch.rand(3, 1, 8, 8)
    path = tmp_path / "shared.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["x"], dynamic_axes={"x": {0: "batch"}},
                      dynamo=False)
    assert any(n.op_type == "Identity" for n in onnx.load(str(path)).graph.node)
    converted = load_onnx(None, str(path), {})
    with torch.no_grad():
        assert torch.allclose(converted(x), net(x), atol=1e-6)


def test_inference_and_extraction_run_on_a_supplied_model(trained, tmp_path):
    home, _, weights = trained
    path = tmp_path / "m.pt"
    torch.jit.script(paper_cnn(weights)).save(str(path))
    out = tmp_path / "other.json"
    assert bench(home, "--model", f"torchscript:{path}", "--attack",
                 "membership-inference,copycat", "--attack-opt", "copycat.nb_epochs=1",
                 out=out) == 0
    done = {r["attack"]: r for r in records(out)}
    assert set(done) == {"membership-inference", "copycat"}
    assert 0 <= done["copycat"]["metrics"]["agreement"] <= 1


def test_a_supplied_model_is_never_shipped_between_workers(trained, tmp_path):
    """Executors without a shared folder ship trained weights with the job's outcome; a
    supplied model is read from its file by each worker instead (nothing is cached to ship)."""
    from harness.planning.plan import BenchConfig
    from harness.planning.setup import WorkSetup
    from harness.run.work import train_job, worker_for

    _, _, weights = trained
    path = tmp_path / "m.pt"
    torch.jit.script(paper_cnn(weights)).save(str(path))
    setup = WorkSetup(BenchConfig(models=(f"torchscript:{path}",), attacks=("fgsm",),
                                  defenses=("none",),
                                  checks=False), tmp_path / "home")
    (job,) = worker_for(setup).plan.jobs
    outcome = train_job(setup, job.key, ship=True)
    assert outcome.error is None and outcome.weights is None
    assert outcome.info is not None and outcome.info["supplied"]["sha256"]


def test_names_and_options_a_user_hands_over_are_checked_and_shown_safely(trained, tmp_path,
                                                                          capsys):
    home, _, weights = trained
    net = paper_cnn(weights)
    odd = tmp_path / "we|ird\nname.pt"
    torch.jit.script(net).save(str(odd))
    name = f"torchscript:{odd}"
    err = _refused(home, capsys, "--model", name, "--model-opt", f"{name}.lable=x")
    assert "has no option 'lable'. Did you mean: label?" in err
    err = _refused(home, capsys, "--model", name, "--model-opt", f"{name}.label=a|b")
    assert "must be one line of printable characters" in err
    err = _refused(home, capsys, "--model", f"paper-cnn@{odd}")
    assert "it is a TorchScript archive: give it as --model torchscript:PATH" in err
    out = tmp_path / "odd.json"
    assert bench(home, "--model", name, out=out) == 0
    assert {r["model"] for r in records(out)} == {"torchscript:we_ird_name.pt"}
