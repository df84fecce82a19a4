"""Evasion cells scored in chunks (``--chunk-images``): an interrupted cell resumes from the
chunks it finished and gives the numbers and examples of an uninterrupted run; a damaged
chunk is attacked again; the chunk size is part of the cell's key."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from harness.cli import main
from harness.run.evaluators import evasion

COMMAND = ["bench", "--dataset", "digits", "--model", "paper-cnn", "--defense", "none",
           "--attack", "pgd", "--attack-opt", "pgd.steps=3", "--eps", "0.1",
           "--n-train", "200", "--n-test", "70", "--epochs", "1", "--no-checks", "--quiet",
           "--format", "json"]


def _bench(tmp_path, name: str, *extra: str) -> int:
    return main([*COMMAND, "--db", str(tmp_path / f"{name}.sqlite"),
                 "--json", str(tmp_path / f"{name}.json"), *extra])


def _record(tmp_path, name: str) -> dict:
    (record,) = json.loads((tmp_path / f"{name}.json").read_text())["records"]
    return record


def _examples(home, record: dict) -> torch.Tensor:
    return load_file(str(home / "adversarial" / f"{record['cell_key']}.safetensors"))["x_adv"]


def _interrupt_after(monkeypatch, chunks: int) -> list[int]:
    """Make the ``chunks + 1``-th chunk's attack raise KeyboardInterrupt (Ctrl-C)."""
    calls: list[int] = []
    real = evasion.evaluate_attack

    def attack(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) > chunks:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evasion, "evaluate_attack", attack)
    return calls


def test_an_interrupted_cell_resumes_with_the_numbers_of_an_uninterrupted_run(
        tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    assert _bench(tmp_path, "whole", "--chunk-images", "30") == 0
    whole = _record(tmp_path, "whole")
    assert whole["config"]["chunks"] == {"images": 30, "count": 3, "resumed": 0,
                                         "commits": whole["config"]["chunks"]["commits"]}
    assert not (home / "adversarial" / "chunks" / whole["cell_key"]).exists()
    x_whole = _examples(home, whole)

    other = tmp_path / "other"                  # the same cell in a fresh home, interrupted
    monkeypatch.setenv("HARNESS_HOME", str(other))
    calls = _interrupt_after(monkeypatch, 2)
    assert _bench(tmp_path, "cut", "--chunk-images", "30") == 130
    assert calls == [30, 30, 10]
    folder = other / "adversarial" / "chunks" / whole["cell_key"]
    assert sorted(p.name for p in folder.iterdir()) == ["0-30.safetensors",
                                                        "30-60.safetensors"]
    monkeypatch.undo()
    monkeypatch.setenv("HARNESS_HOME", str(other))
    calls = _interrupt_after(monkeypatch, 10)   # counts the chunks attacked on resuming
    assert _bench(tmp_path, "resumed", "--chunk-images", "30") == 0
    assert calls == [10]                        # only the chunk that was not finished
    resumed = _record(tmp_path, "resumed")
    assert resumed["cell_key"] == whole["cell_key"]
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["outcomes"] == whole["outcomes"]
    assert resumed["config"]["chunks"]["resumed"] == 2
    assert torch.equal(_examples(other, resumed), x_whole)
    assert not folder.exists()


def test_a_damaged_chunk_is_attacked_again_and_said_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    _interrupt_after(monkeypatch, 1)
    assert _bench(tmp_path, "cut", "--chunk-images", "40") == 130
    (chunk,) = (tmp_path / "home" / "adversarial" / "chunks").glob("*/0-40.safetensors")
    chunk.write_bytes(chunk.read_bytes()[:100])
    monkeypatch.undo()
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    capsys.readouterr()
    assert _bench(tmp_path, "again", "--chunk-images", "40") == 0
    err = capsys.readouterr().err
    assert f"chunk 0-40 of cell {chunk.parent.name} is attacked again: it cannot be read" in err
    assert _record(tmp_path, "again")["config"]["chunks"]["resumed"] == 0


def test_the_chunk_size_is_part_of_the_cell_key_and_must_be_positive(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    assert _bench(tmp_path, "plain") == 0
    assert _bench(tmp_path, "chunked", "--chunk-images", "35") == 0
    plain, chunked = _record(tmp_path, "plain"), _record(tmp_path, "chunked")
    assert plain["cell_key"] != chunked["cell_key"]
    assert "chunks" not in plain["config"]
    capsys.readouterr()
    assert _bench(tmp_path, "zero", "--chunk-images", "0") == 2
    assert "--chunk-images must be a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("chunk", [7, 64])
def test_chunks_of_any_size_cover_every_image_once(tmp_path, monkeypatch, chunk):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    assert _bench(tmp_path, "c", "--chunk-images", str(chunk)) == 0
    record = _record(tmp_path, "c")
    assert record["metrics"]["n_test"] == 70
    assert record["config"]["chunks"]["count"] == -(-70 // chunk)
