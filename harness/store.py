"""The results database (SQLite): every cell with the run metadata that produced it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.records import Result, ResultSet

# Result fields stored as JSON text.
JSON_COLUMNS = frozenset({"attack_roles", "defense_roles", "metrics", "examples", "config"})
_SQL_TYPES = {"str": "TEXT", "float | None": "REAL", "int | None": "INTEGER",
              "str | None": "TEXT"}
_REQUIRED = {"cell_key", "train_key", "run_id", "dataset", "model", "defense", "attack",
             "status", "created_at", "config"}
RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Result))


def _column(f: dataclasses.Field) -> str:
    kind = "TEXT" if f.name in JSON_COLUMNS else _SQL_TYPES.get(str(f.type), "TEXT")
    if f.name == "run_id":
        return f"{f.name} TEXT NOT NULL REFERENCES runs(run_id)"
    return f"{f.name} {kind}" + (" NOT NULL" if f.name in _REQUIRED else "")


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    """ + ",\n    ".join(_column(f) for f in dataclasses.fields(Result)) + """
);
CREATE INDEX IF NOT EXISTS results_cell ON results(cell_key, status);
"""


@dataclass(frozen=True)
class StoredRecord:
    """A record read back from the store, with the metadata of the run that wrote it."""

    record: Result
    metadata: dict[str, Any]


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

    def add_result(self, record: Result) -> None:
        """Store one cell's record."""
        row = record.as_dict()
        for name in JSON_COLUMNS:
            value = row.get(name)
            row[name] = json.dumps(value, sort_keys=True) if value is not None else None
        with self.conn:
            self.conn.execute(
                f"INSERT INTO results({', '.join(RESULT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in RESULT_COLUMNS)})",
                [row[c] for c in RESULT_COLUMNS],
            )

    def latest_ok(self, cell_key: str) -> StoredRecord | None:
        """The newest successful record of ``cell_key``, with its run's metadata, or None
        (a database not created yet holds nothing, and is not created by asking)."""
        if self._conn is None and not self.path.exists():
            return None
        row = self.conn.execute(
            "SELECT * FROM results WHERE cell_key = ? AND status = 'ok' ORDER BY id DESC LIMIT 1",
            (cell_key,)).fetchone()
        if row is None:
            return None
        found = self._results([row])
        return StoredRecord(found.records[0], dict(found.runs[found.records[0].run_id]))

    def latest_records(self) -> ResultSet:
        """The newest record per (dataset, model, defense, attack, eps), with run metadata."""
        rows = self.conn.execute(
            "SELECT * FROM results WHERE id IN (SELECT MAX(id) FROM results "
            "GROUP BY dataset, model, defense, attack, eps) ORDER BY id").fetchall()
        return self._results(rows)

    def _results(self, rows: Iterable[sqlite3.Row]) -> ResultSet:
        out = ResultSet()
        for row in rows:
            values = dict(row)
            values.pop("id", None)
            for name in JSON_COLUMNS:
                raw = values.get(name)
                values[name] = json.loads(raw) if raw else None
            record = Result.from_dict(values)
            out.records.append(record)
            if record.run_id not in out.runs:
                meta = self.conn.execute("SELECT metadata FROM runs WHERE run_id = ?",
                                         (record.run_id,)).fetchone()
                out.runs[record.run_id] = json.loads(meta[0]) if meta else {}
        return out
