"""The README's main job, `harness bench --attack fgsm --defense advtrain`, with its defaults."""

from __future__ import annotations

from harness.cli import main
from harness.contracts.records import ResultSet


def test_advtrain_beats_the_undefended_model_against_fgsm_on_digits(tmp_path, capsys):
    out = tmp_path / "cells.json"
    assert main(["bench", "--attack", "fgsm", "--defense", "advtrain", "--quiet",
                 "--json", str(out)]) == 0
    results = ResultSet.from_json(out.read_text())
    cells = results.records
    assert len(results.runs) == 1 and all(r.ok for r in cells)
    # each record says its process's peak memory: this process held torch and the data
    assert all(r.config["peak_memory_mib"]["host"] > 50 for r in cells)
    assert all(r.config["image_shape"] == [1, 8, 8] for r in cells)
    records = {r.defense: r for r in cells if r.attack == "fgsm"}
    assert set(records) == {"none", "advtrain"}
    # the automatic large-eps check: PGD at eps 0.5 takes both models to about chance
    checks = {r.defense: r for r in cells if r.attack == "pgd"}
    assert {r.eps for r in checks.values()} == {0.5} and set(checks) == {"none", "advtrain"}
    assert all(r.config["check"] for r in checks.values())
    assert all(r.robust_acc <= 0.2 for r in checks.values())
    for r in records.values():
        assert r.dataset == "digits" and r.eps == 0.1 and r.n_test == 360
        assert r.clean_acc > 0.9
    assert records["advtrain"].robust_acc > records["none"].robust_acc + 0.05
    table = capsys.readouterr().out  # piped: the full markdown page
    assert table.startswith("# Adversarial robustness leaderboard\n")
    assert table.index("| advtrain") < table.index("| none")  # ranked first
    assert "| checks" not in table                               # no check failed
    assert "- peak memory of the largest process: host " in table
