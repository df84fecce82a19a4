"""Damaged cache entries, unusable result stores and unwritable outputs: each found, named in
one line and handled (moved aside and retrained, refused before any work, or the run stopped
with what is stored), never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading

import pytest
import torch
from safetensors.torch import save_model

from harness.cli import main
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig, make_plan
from harness.results import store as store_module
from harness.results.store import ResultStore, StoreError
from harness.run import runner as runner_module
from harness.run.model_cache import ModelCache, sha256_of
from harness.run.runner import Runner
from harness.util.errors import UsageError
from harness.util.files import folder_problem, output_problem

TINY = dict(datasets=("digits",), models=("paper-cnn",), defenses=("none",),
            attacks=("fgsm",), n_train=200, n_test=40, epochs=2, device="cpu", checks=False)
TINY_ARGS = ["bench", "--dataset", "digits", "--model", "paper-cnn", "--defense", "none",
             "--attack", "fgsm", "--n-train", "200", "--n-test", "40", "--epochs", "2",
             "--device", "cpu", "--no-checks", "--quiet", "--format", "markdown"]


def _runner(home, cache=None, **overrides):
    config = BenchConfig(**{**TINY, **overrides})
    return Runner(config, load_registry(), ResultStore(home / "results.sqlite"),
                  cache or ModelCache(home / "models"), show_progress=False)


def _key(**overrides) -> str:
    return make_plan(BenchConfig(**{**TINY, **overrides}), load_registry()).jobs[0].key


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory):
    """A models folder holding the tiny job's finished weights (trained once per module)."""
    home = tmp_path_factory.mktemp("template")
    outcome = _runner(home).run()
    assert [r.status for r in outcome.records] == ["ok"]
    return home / "models"


@pytest.fixture
def cached(isolated_home, trained_models):
    """``HARNESS_HOME`` with the trained models copied in and no stored results: the next
    run loads the model from the cache."""
    shutil.copytree(trained_models, isolated_home / "models")
    return ModelCache(isolated_home / "models"), _key()


def _without_checksum(cache: ModelCache, key: str) -> None:
    info = json.loads(cache.info_path(key).read_text())
    del info["sha256"]
    cache.info_path(key).write_text(json.dumps(info))


def _damage(kind: str, cache: ModelCache, key: str) -> str:
    """Damage ``key``'s entry the way ``kind`` says; return the damaged file's name."""
    weights, info = cache.weights_path(key), cache.info_path(key)
    size = weights.stat().st_size
    if kind == "random bytes":
        weights.write_bytes(os.urandom(size))
    elif kind == "random bytes, no checksum":
        weights.write_bytes(os.urandom(size))
        _without_checksum(cache, key)
    elif kind == "truncated":
        weights.write_bytes(weights.read_bytes()[: size // 2])
    elif kind == "zero bytes":
        weights.write_bytes(b"")
    elif kind == "zeroed on disk":
        weights.write_bytes(bytes(size))
    elif kind == "wrong shapes":     # a valid file, checksum updated, of another model
        save_model(torch.nn.Linear(3, 2), str(weights))
        meta = json.loads(info.read_text())
        meta["sha256"] = sha256_of(weights)
        info.write_text(json.dumps(meta))
    elif kind == "corrupt sidecar":
        info.write_text("{ not json")
        return info.name
    return weights.name


DAMAGE = ["random bytes", "random bytes, no checksum", "truncated", "zero bytes",
          "zeroed on disk", "wrong shapes", "corrupt sidecar"]


def test_save_records_the_weights_checksum(cached):
    cache, key = cached
    info = json.loads(cache.info_path(key).read_text())
    assert info["sha256"] == sha256_of(cache.weights_path(key))


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_cached_model_is_moved_aside_and_retrained(cached, isolated_home, capfd,
                                                             kind):
    cache, key = cached
    name = _damage(kind, cache, key)
    outcome = _runner(isolated_home).run()
    assert [r.status for r in outcome.records] == ["ok"]
    err = capfd.readouterr().err
    line = next(x for x in err.splitlines() if "is damaged" in x)
    assert line.startswith(f"harness: cached model {key} (")
    assert f"moved to {cache.root / 'damaged'}/, retraining" in line
    assert (cache.root / "damaged" / name).exists()
    info = json.loads(cache.info_path(key).read_text())     # retrained and cached anew
    assert info["sha256"] == sha256_of(cache.weights_path(key))
    assert info["epochs_run"] == 2


def test_a_sidecar_without_checksum_is_accepted_with_a_note(cached, isolated_home, capfd):
    cache, key = cached
    _without_checksum(cache, key)
    before = cache.weights_path(key).stat().st_mtime_ns
    outcome = _runner(isolated_home).run()
    assert [r.status for r in outcome.records] == ["ok"]
    assert "has no checksum" in capfd.readouterr().err
    assert cache.weights_path(key).stat().st_mtime_ns == before    # loaded, not retrained
    assert not (cache.root / "damaged").exists()


def test_refuse_damaged_fails_the_jobs_cells_naming_the_file(cached, isolated_home, capsys):
    cache, key = cached
    _damage("zeroed on disk", cache, key)
    code = main([*TINY_ARGS, "--refuse-damaged"])
    out, err = capsys.readouterr()
    assert code == 1
    stored = ResultStore(isolated_home / "results.sqlite").latest_records().records
    assert [r.status for r in stored] == ["failed"]
    assert str(cache.weights_path(key)) in stored[0].error
    assert "--refuse-damaged" in stored[0].error
    assert cache.weights_path(key).exists() and not (cache.root / "damaged").exists()


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", b"PK\x03\x04broken"])
def test_a_damaged_training_state_is_moved_aside_and_training_restarts(isolated_home, capfd,
                                                                       content):
    cache, key = ModelCache(isolated_home / "models"), _key()
    cache.root.mkdir(parents=True)
    cache.partial_path(key).write_bytes(content)
    outcome = _runner(isolated_home).run()
    assert [r.status for r in outcome.records] == ["ok"]
    err = capfd.readouterr().err
    assert f"training state {cache.partial_path(key)} is damaged" in err
    assert "training restarts from epoch 0" in err
    assert (cache.root / "damaged" / cache.partial_path(key).name).read_bytes() == content
    assert json.loads(cache.info_path(key).read_text())["epochs_run"] == 2


def test_refuse_damaged_refuses_a_damaged_training_state(isolated_home):
    cache, key = ModelCache(isolated_home / "models", refuse_damaged=True), _key()
    cache.root.mkdir(parents=True)
    cache.partial_path(key).write_bytes(b"garbage")
    outcome = _runner(isolated_home, cache=cache).run()
    assert [r.status for r in outcome.records] == ["failed"]
    assert f"training state {cache.partial_path(key)} is damaged" in outcome.records[0].error
    assert cache.partial_path(key).exists()


# --- the results store ------------------------------------------------------------------

def _bench_refused(args, capsys, home) -> str:
    """Run ``harness bench`` expecting a refusal before any work; return its one line."""
    code = main([*TINY_ARGS, *args])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list((home / "models").glob("*.safetensors"))     # nothing was trained
    return err.strip()


def test_a_file_that_is_not_sqlite_is_refused_before_work(isolated_home, tmp_path, capsys):
    db = tmp_path / "random.sqlite"
    db.write_bytes(os.urandom(4096))
    line = _bench_refused(["--db", str(db)], capsys, isolated_home)
    assert str(db) in line and "cannot be read" in line


def test_a_folder_given_as_db_is_refused(isolated_home, tmp_path, capsys):
    line = _bench_refused(["--db", str(tmp_path)], capsys, isolated_home)
    assert "is a folder" in line


def test_a_db_in_an_unwritable_place_is_refused(isolated_home, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _bench_refused(["--db", str(blocker / "results.sqlite")], capsys, isolated_home)
    assert "cannot create the results database" in line


def test_a_read_only_db_is_refused(isolated_home, tmp_path, capsys):
    db = tmp_path / "ro" / "results.sqlite"
    ResultStore(db).conn.close()
    db.chmod(0o444)
    db.parent.chmod(0o555)
    try:
        if os.access(db, os.W_OK):
            pytest.skip("permissions are not enforced for this user (root)")
        line = _bench_refused(["--db", str(db)], capsys, isolated_home)
        assert "cannot be written" in line
    finally:
        db.parent.chmod(0o755)


@pytest.mark.parametrize("schema", [
    "CREATE TABLE results (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)",
    "CREATE TABLE runs (run_id TEXT, owner TEXT)",
    "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)",
])
def test_another_programs_database_is_refused_and_left_alone(isolated_home, tmp_path, capsys,
                                                              schema):
    db = tmp_path / "theirs.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(schema)
    before = db.read_bytes()
    line = _bench_refused(["--db", str(db)], capsys, isolated_home)
    assert "is not a harness results database" in line
    assert db.read_bytes() == before
    code = main(["leaderboard", "--db", str(db)])
    assert code == 2 and db.read_bytes() == before


def _corrupt_database(path) -> None:
    store = ResultStore(path)
    store.conn.execute("INSERT INTO runs VALUES ('r', 't', NULL, '{}')")
    store.conn.executemany(
        "INSERT INTO results(cell_key, train_key, run_id, dataset, model, defense, attack, "
        "status, created_at, config) VALUES (?, 't', 'r', 'd', 'm', 'n', 'a', 'ok', 't', '{}')",
        [(f"cell{i:06d}",) for i in range(3000)])
    store.conn.commit()
    store.close()
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    for page in (pages - 3, pages - 2):
        data[page * 4096 + 100: page * 4096 + 300] = b"\x07" * 200
    path.write_bytes(bytes(data))


def test_a_database_failing_the_integrity_check_is_refused(isolated_home, tmp_path, capsys):
    db = tmp_path / "corrupt.sqlite"
    _corrupt_database(db)
    line = _bench_refused(["--db", str(db)], capsys, isolated_home)
    assert "fails SQLite's integrity check" in line
    assert main(["leaderboard", "--db", str(db)]) == 2


def _older_schema(conn: sqlite3.Connection, *, config_required: bool) -> None:
    """The runs and results tables of an older harness (fewer result columns)."""
    conn.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, "
                 "finished_at TEXT, metadata TEXT NOT NULL)")
    conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "cell_key TEXT NOT NULL, train_key TEXT NOT NULL, run_id TEXT NOT NULL, "
                 "dataset TEXT NOT NULL, model TEXT NOT NULL, defense TEXT NOT NULL, "
                 "attack TEXT NOT NULL, eps REAL NOT NULL, status TEXT NOT NULL, "
                 f"created_at TEXT{' NOT NULL' * config_required}, config TEXT"
                 f"{' NOT NULL' * config_required})")


def test_an_older_harness_schema_is_ours_and_migrated(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:
        _older_schema(conn, config_required=True)
    ResultStore(db).check()
    store = ResultStore(db)
    columns = {row[1] for row in store.conn.execute("PRAGMA table_info(results)")}
    assert set(store_module.RESULT_COLUMNS) <= columns


def test_a_failed_migration_changes_nothing(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:     # an older schema whose row breaks a NOT NULL now
        _older_schema(conn, config_required=False)
        conn.execute("INSERT INTO results(cell_key, train_key, run_id, dataset, model, "
                     "defense, attack, eps, status) "
                     "VALUES ('c', 't', 'r', 'd', 'm', 'n', 'a', 0.1, 'ok')")
    before = db.read_bytes()
    with pytest.raises(sqlite3.IntegrityError):
        ResultStore(db).start_run({"timestamp": "t"})
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "results_old" not in names and "results" in names


def test_a_write_waits_for_another_writers_lock_then_succeeds(isolated_home, monkeypatch):
    monkeypatch.setattr(runner_module, "STORE_RETRY_S", 0.2)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.1)
    db = isolated_home / "results.sqlite"
    ResultStore(db).conn.close()
    other = sqlite3.connect(db, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")           # another process writing: we must wait
    threading.Timer(0.5, other.rollback).start()
    outcome = _runner(isolated_home).run()
    other.close()
    assert [r.status for r in outcome.records] == ["ok"]
    assert len(ResultStore(db).latest_records().records) == 1


def test_a_lock_that_never_ends_stops_the_run_with_one_line(isolated_home, monkeypatch):
    monkeypatch.setattr(runner_module, "STORE_RETRY_S", 0.01)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
    db = isolated_home / "results.sqlite"
    ResultStore(db).conn.close()
    other = sqlite3.connect(db)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as info:
            _runner(isolated_home).run()
    finally:
        other.rollback()
        other.close()
    message = str(info.value)
    assert "database is locked" in message and "0 cells of this run are stored" in message
    assert "run the same command again to resume" in message and "\n" not in message


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_resumes(isolated_home, monkeypatch,
                                                               capsys):
    real = ResultStore.add_result
    written = []

    def fills_up(self, record):
        if len(written) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, record)
        written.append(record.cell_key)

    monkeypatch.setattr(ResultStore, "add_result", fills_up)
    args = [*TINY_ARGS, "--attack", "fgsm,pgd", "--eps", "0.05,0.1"]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and "database or disk is full" in err
    assert "2 cells of this run are stored" in err and "resume" in err
    stored = ResultStore(isolated_home / "results.sqlite").latest_records().records
    assert sorted(r.cell_key for r in stored) == sorted(written)
    monkeypatch.setattr(ResultStore, "add_result", real)
    assert main(args) == 0
    stored = ResultStore(isolated_home / "results.sqlite").latest_records().records
    assert len(stored) == 4 and all(r.status == "ok" for r in stored)


# --- outputs ----------------------------------------------------------------------------

def test_output_paths_are_checked_before_any_work(isolated_home, tmp_path, capsys):
    assert "is a folder" in _bench_refused(["--out", str(tmp_path)], capsys, isolated_home)
    line = _bench_refused(["--json", str(tmp_path / "missing" / "r.json")], capsys,
                          isolated_home)
    assert "does not exist" in line and line.startswith("harness: error: --json")


def test_an_unusable_harness_home_is_refused(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("HARNESS_HOME", str(blocker / "home"))
    line = _bench_refused([], capsys, blocker / "home")
    assert "HARNESS_HOME" in line and "cannot be used" in line


def test_a_read_only_harness_home_is_refused(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    try:
        if os.access(home, os.W_OK):
            pytest.skip("permissions are not enforced for this user (root)")
        monkeypatch.setenv("HARNESS_HOME", str(home))
        assert "cannot be used" in _bench_refused([], capsys, home)
    finally:
        home.chmod(0o755)


def test_the_write_helpers_name_the_problem(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "not a folder" in folder_problem(blocker)
    assert "not a folder" in folder_problem(blocker / "sub")
    assert folder_problem(tmp_path / "new" / "deep") is None and not (tmp_path / "new").exists()
    assert output_problem(tmp_path / "out.md") is None
    assert not list(tmp_path.glob("*.tmp"))


def test_an_output_that_fails_at_the_end_says_how_to_render(isolated_home, tmp_path,
                                                            monkeypatch, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    real_run = Runner.run

    def run_then_lose_the_folder(self):
        outcome = real_run(self)
        folder.rmdir()
        return outcome

    monkeypatch.setattr(Runner, "run", run_then_lose_the_folder)
    code = main([*TINY_ARGS, "--out", str(folder / "board.md"),
                 "--json", str(folder / "r.json")])
    out, err = capsys.readouterr()
    db = isolated_home / "results.sqlite"
    assert code == 1 and "Traceback" not in err
    assert f"could not write {folder / 'board.md'}" in err
    assert f"harness leaderboard --db {db} --out FILE" in err
    assert f"harness leaderboard --db {db} --save-results FILE" in err
    assert len(ResultStore(db).latest_records().records) == 1


@pytest.mark.parametrize("text", ["not json", '{"format": 2, "records": [1, 2]}',
                                  '[{"dataset": "digits"}]', "[1]", '"a string"'])
def test_leaderboard_on_a_malformed_results_file_is_one_line(tmp_path, capsys, text):
    path = tmp_path / "r.json"
    path.write_text(text)
    code = main(["leaderboard", "--results", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err


def test_leaderboard_on_a_bad_database_is_one_line(tmp_path, capsys):
    db = tmp_path / "random.sqlite"
    db.write_bytes(os.urandom(2048))
    assert main(["leaderboard", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(db) in err
    with pytest.raises(UsageError):
        ResultStore(db).check(write=False)
