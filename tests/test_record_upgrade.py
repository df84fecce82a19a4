"""Older results files and database rows reach the current record through one module
(harness.contracts.record_upgrade), and every published results file loads through it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from harness.contracts.metrics import EVASION_METRICS, TIMING_METRICS
from harness.contracts.record_upgrade import LEGACY_FIELDS, RESULTS_FORMAT
from harness.contracts.records import ResultSet
from harness.results.results_file import results_json
from harness.results.store import ResultStore

LEADERBOARDS = Path(__file__).resolve().parent.parent / "leaderboards"
PUBLISHED = sorted(p for p in LEADERBOARDS.glob("*.json") if p.stem != "throughput")

#: A record as format 2 (and the database columns of 0.2 before metrics were declared) wrote it.
FORMAT_2_RECORD = {
    "cell_key": "c1", "train_key": "t1", "run_id": "r1", "dataset": "digits", "model": "m",
    "defense": "none", "attack": "pgd", "eps": 0.1, "status": "ok", "category": "evasion",
    "clean_acc": 0.9, "robust_acc": 0.4, "attack_success_rate": 0.5, "median_l2": None,
    "n_test": 100, "train_seconds": 12.5, "attack_images_per_s": 250.0,
    "metrics": {"num_classes": 10.0}, "config": {"seed": 0}, "created_at": "t"}


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.name)
def test_every_published_results_file_loads_through_the_upgrade(path):
    raw = json.loads(path.read_text())
    results = ResultSet.from_json(path.read_text())
    assert len(results.records) == len(raw["records"])
    evasion_names = {m.name for m in EVASION_METRICS}
    timing_names = {m.name for m in TIMING_METRICS}
    for before, record in zip(raw["records"], results.records, strict=True):
        for name in LEGACY_FIELDS:
            if before.get(name) is not None:
                where = record.timings if name in timing_names else record.metrics
                assert where[name] == before[name], (record.cell_key, name)
        if record.ok and record.category == "evasion":
            assert {"clean_acc", "robust_acc", "n_test"} <= set(record.metrics) & evasion_names
    # Written again in the current format and read back: the same records.
    again = ResultSet.from_json(results_json(results))
    assert again.records == results.records and again.runs == results.runs


def test_the_current_format_has_no_legacy_fields_and_keeps_metrics_and_timings():
    results = ResultSet.from_json(json.dumps({"format": "harness-results/2", "runs": {"r1": {}},
                                              "records": [FORMAT_2_RECORD]}))
    (record,) = results.records
    assert dict(record.metrics) == {"num_classes": 10.0, "clean_acc": 0.9, "robust_acc": 0.4,
                                    "attack_success_rate": 0.5, "n_test": 100}
    assert dict(record.timings) == {"train_seconds": 12.5, "attack_images_per_s": 250.0}
    assert (record.robust_acc, record.n_test, record.train_seconds) == (0.4, 100, 12.5)
    written = json.loads(results_json(results))
    assert written["format"] == RESULTS_FORMAT
    assert not set(LEGACY_FIELDS) & set(written["records"][0])


def test_a_01_results_file_a_list_with_metadata_upgrades():
    old = [{**FORMAT_2_RECORD, "metadata": {"seed": 0}}]
    old[0].pop("category")
    results = ResultSet.from_json(json.dumps(old))
    assert results.runs == {"r1": {"seed": 0}}
    (record,) = results.records
    assert record.category == "evasion" and record.defense_stage == "training"
    assert record.robust_acc == 0.4


def test_a_file_of_another_program_is_refused_with_what_is_expected():
    with pytest.raises(ValueError, match="harness-results/3.*harness-results/2"):
        ResultSet.from_json(json.dumps({"format": "other/1", "records": []}))
    with pytest.raises(ValueError, match="not a list of JSON objects"):
        ResultSet.from_json(json.dumps({"format": RESULTS_FORMAT, "records": [1]}))


def test_a_database_of_format_2_columns_is_migrated_through_the_upgrade(tmp_path):
    path = tmp_path / "old.sqlite"
    columns = [*(k for k in FORMAT_2_RECORD if k != "median_l2"), "attack_roles",
               "defense_roles"]
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, "
                       "finished_at TEXT, metadata TEXT NOT NULL);"
                       "INSERT INTO runs VALUES ('r1', 't', NULL, '{}');")
    conn.execute(f"CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                 f"{', '.join(columns)})")
    row = {**FORMAT_2_RECORD, "metrics": json.dumps(FORMAT_2_RECORD["metrics"]),
           "config": "{}", "attack_roles": '["iterative"]', "defense_roles": "[]"}
    conn.execute(f"INSERT INTO results({', '.join(columns)}) VALUES "
                 f"({', '.join('?' for _ in columns)})", [row[c] for c in columns])
    conn.commit()
    conn.close()
    store = ResultStore(path)
    store.check()                       # legacy columns are ours, not another program's
    record = store.latest_ok("c1").record
    assert record.robust_acc == 0.4 and record.timings["train_seconds"] == 12.5
    assert record.attack_roles == ("iterative",)
    names = {r[1] for r in store.conn.execute("PRAGMA table_info(results)")}
    assert "timings" in names and not set(LEGACY_FIELDS) & names


def test_the_results_file_carries_each_accuracys_interval_and_reading_ignores_it():
    results = ResultSet.from_json(json.dumps({"format": "harness-results/2", "runs": {"r1": {}},
                                              "records": [FORMAT_2_RECORD]}))
    written = json.loads(results_json(results))
    intervals = written["records"][0]["intervals"]
    # Wilson at n = 100: 0.4 -> [0.3094, 0.4980], 0.9 -> [0.8256, 0.9448] (by hand, z = 1.96)
    assert [round(x, 4) for x in intervals["robust_acc"]] == [0.3094, 0.4980]
    assert [round(x, 4) for x in intervals["clean_acc"]] == [0.8256, 0.9448]
    assert set(intervals) == {"clean_acc", "robust_acc", "attack_success_rate"}
    assert ResultSet.from_json(results_json(results)).records == results.records
