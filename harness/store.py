"""The results database (SQLite): every cell with the run metadata that produced it."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_key TEXT NOT NULL,
    train_key TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    defense TEXT NOT NULL,
    attack TEXT NOT NULL,
    eps REAL,
    status TEXT NOT NULL,
    error TEXT,
    clean_acc REAL,
    robust_acc REAL,
    attack_success_rate REAL,
    mean_linf REAL,
    mean_l2 REAL,
    median_l0 REAL,
    median_l2 REAL,
    median_linf REAL,
    queries_per_image REAL,
    n_test INTEGER,
    train_seconds REAL,
    train_images_per_s REAL,
    attack_seconds REAL,
    attack_images_per_s REAL,
    threat_model TEXT,
    norm TEXT,
    category TEXT,
    defense_stage TEXT,
    metrics TEXT,
    examples TEXT,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_cell ON results(cell_key, status);
"""

RESULT_COLUMNS = (
    "cell_key", "train_key", "run_id", "dataset", "model", "defense", "attack", "eps", "status",
    "error", "clean_acc", "robust_acc", "attack_success_rate", "mean_linf", "mean_l2",
    "median_l0", "median_l2", "median_linf", "queries_per_image", "n_test",
    "train_seconds", "train_images_per_s", "attack_seconds", "attack_images_per_s",
    "threat_model", "norm", "category", "defense_stage", "metrics", "examples",
    "created_at", "config",
)


class ResultStore:
    """A SQLite file of runs and results; every write is committed at once (kill-safe)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, opened (and the file created) on first use, not before."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path)
            self._conn.row_factory = sqlite3.Row
            with self._conn:
                self._conn.executescript(SCHEMA)
                self._migrate(self._conn)
        return self._conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring a database written by an older harness to the current schema, keeping rows."""
        info = {row[1]: row for row in conn.execute("PRAGMA table_info(results)")}
        if set(RESULT_COLUMNS) <= set(info) and not info["eps"][3]:
            return
        kept = [c for c in RESULT_COLUMNS if c in info]
        conn.execute("ALTER TABLE results RENAME TO results_old")
        conn.execute("DROP INDEX IF EXISTS results_cell")
        conn.executescript(SCHEMA)
        conn.execute(f"INSERT INTO results(id, {', '.join(kept)}) "
                     f"SELECT id, {', '.join(kept)} FROM results_old")
        conn.execute("DROP TABLE results_old")

    def close(self) -> None:
        """Close the database."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def start_run(self, metadata: dict[str, Any]) -> str:
        """Record a new run and return its id."""
        run_id = uuid.uuid4().hex[:16]
        with self.conn:
            self.conn.execute("INSERT INTO runs(run_id, started_at, metadata) VALUES (?, ?, ?)",
                              (run_id, metadata["timestamp"], json.dumps(metadata)))
        return run_id

    def finish_run(self, run_id: str, finished_at: str) -> None:
        """Mark a run as finished."""
        with self.conn:
            self.conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?",
                              (finished_at, run_id))

    def add_result(self, record: dict[str, Any]) -> None:
        """Store one cell's record (keys as in ``RESULT_COLUMNS``; ``config`` a dict)."""
        row = {c: record.get(c) for c in RESULT_COLUMNS}
        row["config"] = json.dumps(record.get("config", {}), sort_keys=True)
        row["metrics"] = json.dumps(record.get("metrics") or {}, sort_keys=True)
        row["examples"] = json.dumps(record["examples"]) if record.get("examples") else None
        with self.conn:
            self.conn.execute(
                f"INSERT INTO results({', '.join(RESULT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in RESULT_COLUMNS)})",
                [row[c] for c in RESULT_COLUMNS],
            )

    def latest_ok(self, cell_key: str) -> dict[str, Any] | None:
        """The newest successful record of ``cell_key``, with its run's metadata, or None."""
        row = self.conn.execute(
            "SELECT * FROM results WHERE cell_key = ? AND status = 'ok' ORDER BY id DESC LIMIT 1",
            (cell_key,)).fetchone()
        return self._with_metadata([row])[0] if row else None

    def latest_records(self) -> list[dict[str, Any]]:
        """The newest record per (dataset, model, defense, attack, eps), with run metadata."""
        rows = self.conn.execute(
            "SELECT * FROM results WHERE id IN (SELECT MAX(id) FROM results "
            "GROUP BY dataset, model, defense, attack, eps) ORDER BY id").fetchall()
        return self._with_metadata(rows)

    def _with_metadata(self, rows: Iterable[sqlite3.Row]) -> list[dict[str, Any]]:
        out = []
        cache: dict[str, dict] = {}
        for row in rows:
            record = dict(row)
            record.pop("id", None)
            record["config"] = json.loads(record["config"])
            record["metrics"] = json.loads(record["metrics"] or "{}")
            record["examples"] = json.loads(record["examples"]) if record["examples"] else None
            record["category"] = record["category"] or "evasion"
            record["defense_stage"] = record["defense_stage"] or "training"
            run_id = record["run_id"]
            if run_id not in cache:
                meta = self.conn.execute("SELECT metadata FROM runs WHERE run_id = ?",
                                         (run_id,)).fetchone()
                cache[run_id] = json.loads(meta[0]) if meta else {}
            record["metadata"] = cache[run_id]
            out.append(record)
        return out
