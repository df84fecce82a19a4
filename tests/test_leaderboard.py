"""Leaderboard markdown: ranking, failures shown, provenance footer, byte-for-byte determinism."""

from __future__ import annotations

import json
import random

from harness.contracts.records import Result, ResultSet
from harness.report.leaderboard import render
from harness.results.results_file import results_json
from harness.testing.records import make_record

META = {"harness": "0.1.0", "git_commit": "abc123", "device": "cpu", "device_name": "CPU x",
        "python": "3.11.7", "libraries": {"torch": "2.14.1", "timm": "1.0.31"},
        "plugins": {"fgsm": "robustness-harness 0.1.0"}, "seed": 0,
        "timestamp": "2026-11-21T10:00:00+00:00", "command": "harness bench"}
ROLES = {"fgsm": ("reference", "single-step"), "pgd": ("iterative", "reference")}


def _record(defense, attack, robust, status="ok", dataset="digits", error=None) -> Result:
    return make_record(cell_key=f"{dataset}/{defense}/{attack}", train_key=f"{dataset}/{defense}",
                  run_id="run-1", dataset=dataset, model="paper-cnn", defense=defense,
                  attack=attack, eps=0.1, status=status, error=error,
                  attack_roles=ROLES[attack],
                  defense_roles=("baseline",) if defense == "none" else (),
                  clean_acc=0.97, robust_acc=robust, attack_success_rate=0.2, mean_linf=0.1,
                  mean_l2=0.7, n_test=360, train_images_per_s=12000.0,
                  attack_images_per_s=40000.0)


RECORDS = [
    _record("none", "fgsm", 0.65),
    _record("advtrain", "fgsm", 0.80),
    _record("advtrain", "pgd", 0.70),
    _record("none", "pgd", None, status="failed", error="RuntimeError: boom | here"),
    _record("none", "fgsm", 0.9, dataset="mnist"),
]
RESULTS = ResultSet(RECORDS, {"run-1": META})


def test_rows_are_ranked_by_robust_accuracy_and_failures_last():
    text = render(RESULTS)
    digits = text.split("## digits")[1].split("## mnist")[0]
    rows = [line for line in digits.splitlines() if line.startswith("| ") and "paper-cnn" in line]
    assert [r.split("|")[3].strip() + "/" + r.split("|")[4].strip() for r in rows] == [
        "advtrain/fgsm", "advtrain/pgd", "none/fgsm", "none/pgd"]
    assert "80.00%" in rows[0] and "FAILED: RuntimeError: boom / here" in rows[3]


def test_one_table_per_dataset_and_provenance_footer():
    text = render(RESULTS)
    assert text.index("## digits") < text.index("## mnist") < text.index("## Provenance")
    for fact in ("abc123", "CPU x", "torch: 2.14.1", "fgsm: robustness-harness 0.1.0",
                 "12,000", "40,000"):
        assert fact in text


def test_footer_states_the_largest_peak_memory_a_cell_recorded():
    assert "peak memory" not in render(RESULTS)  # records from before it was recorded
    records = [RECORDS[0].replace(config={"peak_memory_mib": {"host": 3072.0, "gpu": 512.0}}),
               RECORDS[1].replace(config={"peak_memory_mib": {"host": 1024.0}}), RECORDS[2]]
    text = render(ResultSet(records, {"run-1": META}))
    assert "- peak memory of the largest process: host 3.0 GiB (largest resident set), GPU " \
           "0.5 GiB (tensors)" in text


def test_footer_separates_summed_compute_from_the_runs_wall_time():
    assert "- wall time" not in render(RESULTS)  # records that do not say when they were stored
    timed = [r.replace(created_at=f"2026-11-21T10:{minute:02d}:00+00:00",
                       timings={**r.timings, "train_seconds": 600.0, "attack_seconds": 60.0})
             for r, minute in zip(RECORDS[:3], (5, 20, 30), strict=True)]
    second = timed[2].replace(run_id="run-2", created_at="2026-11-21T12:07:00+00:00")
    text = render(ResultSet([*timed[:2], second], {"run-1": META, "run-2": {
        **META, "timestamp": "2026-11-21T12:00:00+00:00"}}))
    # two models of 10 min and three cells of 1 min, on workers that ran side by side
    assert "- measured compute: 23.0 min: training 20.0 min (2 models), attacks and defenses " \
           "3.0 min (3 cells), summed over parallel workers" in text
    assert "- wall time: 27.0 min over 2 runs (each from its start to its last stored cell)" \
        in text                                                  # 20 min + 7 min


def test_same_results_give_identical_bytes_in_any_order():
    shuffled = RECORDS[:]
    random.Random(3).shuffle(shuffled)
    assert render(ResultSet(shuffled, {"run-1": META})) == render(RESULTS)


def test_results_file_and_older_list_of_records_render_the_same_page():
    again = ResultSet.from_json(results_json(RESULTS))
    assert again == RESULTS and render(again) == render(RESULTS)
    legacy = [{**r.as_dict(), "metadata": META} for r in RECORDS]
    assert render(ResultSet.from_json(json.dumps(legacy))) == render(RESULTS)
