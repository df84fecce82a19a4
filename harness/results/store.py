"""The results database (SQLite): every cell with the run metadata that produced it."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contracts.record_upgrade import LEGACY_FIELDS
from harness.contracts.records import OK, Result, ResultSet
from harness.util.errors import HarnessError, UsageError
from harness.util.files import folder_problem

# Result fields stored as JSON text.
JSON_COLUMNS = frozenset({"attack_roles", "defense_roles", "metrics", "timings", "examples",
                          "outcomes", "config"})
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


RUN_COLUMNS: tuple[str, ...] = ("run_id", "started_at", "finished_at", "metadata")
# The tables and index this module creates, one statement each (run in one transaction).
SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    metadata TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    """ + ",\n    ".join(_column(f) for f in dataclasses.fields(Result)) + """
)""",
    "CREATE INDEX IF NOT EXISTS results_cell ON results(cell_key, status)",
)
# Tables of ours: the two above and SQLite's own counter of AUTOINCREMENT ids.
OUR_TABLES = frozenset({"runs", "results", "sqlite_sequence"})
BUSY_TIMEOUT_S = 30.0


class StoreError(HarnessError):
    """The results database cannot be used (not ours, damaged, read-only) or a write failed;
    the message names the file."""


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
        """The connection, opened (and the file created) on first use, not before. Waits up
        to :data:`BUSY_TIMEOUT_S` for another writer's lock."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            conn.row_factory = sqlite3.Row
            try:
                self._set_up(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @classmethod
    def _set_up(cls, conn: sqlite3.Connection) -> None:
        """Create the tables and migrate an older harness's in ONE transaction: all of it
        happens, or (on any error) none of it. A current database is only read (so a
        read-only one can be rendered)."""
        if cls._current(conn):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA:
                conn.execute(statement)
            cls._migrate(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    @staticmethod
    def _current(conn: sqlite3.Connection) -> bool:
        """Whether ``conn``'s database has this schema already (nothing to create or migrate)."""
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not {"runs", "results", "results_cell"} <= names:
            return False
        info = {row[1]: row for row in conn.execute("PRAGMA table_info(results)")}
        return set(RESULT_COLUMNS) <= set(info) and not info["eps"][3]

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring a database written by an older harness to the current schema, keeping rows
        (inside :meth:`_set_up`'s transaction): every row is read, brought to the current
        record by :mod:`harness.contracts.record_upgrade` and written again, ids kept."""
        info = {row[1]: row for row in conn.execute("PRAGMA table_info(results)")}
        if set(RESULT_COLUMNS) <= set(info) and not info["eps"][3]:
            return
        conn.execute("ALTER TABLE results RENAME TO results_old")
        conn.execute("DROP INDEX IF EXISTS results_cell")
        for statement in SCHEMA:
            conn.execute(statement)
        insert = (f"INSERT INTO results(id, {', '.join(RESULT_COLUMNS)}) "
                  f"VALUES (?, {', '.join('?' for _ in RESULT_COLUMNS)})")
        for row in conn.execute("SELECT * FROM results_old ORDER BY id").fetchall():
            values = _decoded(row)
            stored = _encoded(Result.from_dict(values))
            conn.execute(insert, [values["id"], *(stored[c] for c in RESULT_COLUMNS)])
        conn.execute("DROP TABLE results_old")

    def check(self, *, write: bool = True) -> None:
        """Find any problem with the database before work starts: raise :class:`UsageError`
        (one line naming the file) when it is a folder, not a SQLite file, fails SQLite's
        integrity check, holds tables that are not ours (another program's: never altered),
        or (``write``) cannot be written. A file that does not exist yet is fine when its
        folder can hold it. Alters nothing."""
        path = self.path
        if path.is_dir():
            raise UsageError(f"results database {path} is a folder, not a database file")
        if not path.exists():
            if write:
                self._check_creatable()
            return
        try:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                self._check_contents(conn)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"results database {path} cannot be read: {exc} (is it a "
                             "harness results database?)") from None
        if write:
            self._check_writable()

    def _check_contents(self, conn: sqlite3.Connection) -> None:
        names = [row[0] for row in
                 conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {name: {row[0] for row in
                         conn.execute("SELECT name FROM pragma_table_info(?)", (name,))}
                  for name in names}
        verdict = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if verdict != ["ok"]:
            lines = [line for text in verdict for line in text.splitlines()
                     if line and not line.startswith("***")]
            more = f" and {len(lines) - 1} more problems" if len(lines) > 1 else ""
            raise UsageError(f"results database {self.path} fails SQLite's integrity check "
                             f"({lines[0] if lines else verdict}{more}); restore it from a "
                             "copy, or pass another --db")
        foreign = sorted(set(tables) - OUR_TABLES)
        ours_results = {"id", *_REQUIRED} <= tables.get("results", {"id", *_REQUIRED}) \
            <= {"id", *RESULT_COLUMNS, *LEGACY_FIELDS}
        ours_runs = tables.get("runs", set(RUN_COLUMNS)) == set(RUN_COLUMNS)
        if foreign or not ours_results or not ours_runs:
            what = (f"tables {', '.join(foreign)}" if foreign else
                    "a 'results' table" if not ours_results else "a 'runs' table")
            raise UsageError(f"{self.path} is not a harness results database: it holds {what} "
                             "of another program; it is left as it is: pass another --db")

    def _check_creatable(self) -> None:
        problem = folder_problem(self.path.parent)
        if problem:
            raise UsageError(f"cannot create the results database {self.path}: {problem}")

    def _check_writable(self) -> None:
        problem = None
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            problem = "read-only (SQLite needs the file and its folder writable)"
        else:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.rollback()
                finally:
                    conn.close()
            except sqlite3.OperationalError as exc:
                problem = str(exc)
        if problem:
            raise UsageError(f"results database {self.path} cannot be written: {problem}")

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

    def add_result(self, record: Result) -> StoredRecord | None:
        """Store one cell's record, atomically with respect to other processes writing the
        same database: in one ``BEGIN IMMEDIATE`` transaction, an ok record whose cell is
        stored ok already is not inserted, and that stored record (with its run's metadata)
        is returned instead, so the store never holds two ok records of one ``cell_key``
        (two ``harness bench`` sharing cells). Failed and n/a records are always inserted (a
        retry after a failure is legitimate). Returns None when ``record`` was inserted."""
        return self._insert(record, replace=False)

    def replace_result(self, record: Result) -> None:
        """Store one cell's record like :meth:`add_result`, but an ok record replaces (deletes)
        the stored ok records of its cell in the same transaction (``--no-cache``)."""
        self._insert(record, replace=True)

    def _insert(self, record: Result, *, replace: bool) -> StoredRecord | None:
        """The one transaction of :meth:`add_result` and :meth:`replace_result`."""
        row = _encoded(record)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if record.status == OK:
                if replace:
                    conn.execute("DELETE FROM results WHERE cell_key = ? AND status = ?",
                                 (record.cell_key, OK))
                else:
                    stored = self.latest_ok(record.cell_key)
                    if stored is not None:
                        conn.rollback()
                        return stored
            conn.execute(
                f"INSERT INTO results({', '.join(RESULT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in RESULT_COLUMNS)})",
                [row[c] for c in RESULT_COLUMNS],
            )
            conn.commit()
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        return None

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
        """The newest record per distinct cell shown on a page, with run metadata: per
        (dataset, model, defense, attack, eps, trained model, attack options given, adaptive
        or not); a re-run with another seed or subset replaces the older record."""
        rows = self.conn.execute(
            "SELECT * FROM results WHERE id IN (SELECT MAX(id) FROM results "
            "GROUP BY dataset, model, defense, attack, eps, train_key, adaptive, "
            "json_extract(config, '$.attack_options')) ORDER BY id").fetchall()
        return self._results(rows)

    def _results(self, rows: Iterable[sqlite3.Row]) -> ResultSet:
        out = ResultSet()
        for row in rows:
            record = Result.from_dict(_decoded(row))
            out.records.append(record)
            if record.run_id not in out.runs:
                meta = self.conn.execute("SELECT metadata FROM runs WHERE run_id = ?",
                                         (record.run_id,)).fetchone()
                out.runs[record.run_id] = json.loads(meta[0]) if meta else {}
        return out


def _encoded(record: Result) -> dict[str, Any]:
    """``record`` as a row: the mapping and tuple fields as JSON text."""
    row = record.as_dict()
    for name in JSON_COLUMNS:
        value = row.get(name)
        row[name] = json.dumps(value, sort_keys=True) if value is not None else None
    return row


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    """A row as the mapping :meth:`Result.from_dict` reads (any schema this harness wrote)."""
    values = dict(row)
    for name in JSON_COLUMNS:
        raw = values.get(name)
        values[name] = json.loads(raw) if raw else None
    return values
