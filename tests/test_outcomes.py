"""Per-image outcomes in every evasion record, and the per-image worst case over attacks."""

from __future__ import annotations

import pytest

from harness.contracts.outcomes import Outcomes, encode, worst_cases
from harness.contracts.records import Result, ResultSet
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig
from harness.results.results_file import results_json
from harness.results.store import ResultStore
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.testing.records import make_record


def cell(attack: str, positions, correct, *, eps=0.1, defense="none", adaptive=None,
         **extra) -> Result:
    return make_record(cell_key=f"{attack}-{eps}-{defense}-{adaptive}", train_key="t", run_id="r",
                  dataset="d", model="m", defense=defense, attack=attack, eps=eps,
                  status="ok", robust_acc=sum(correct) / len(correct), n_test=len(correct),
                  adaptive=adaptive, outcomes=encode(positions, correct), **extra)


def test_outcomes_round_trip_through_records_and_json():
    record = cell("fgsm", [0, 3, 4, 9], [True, False, True, True])
    again = ResultSet.from_json(results_json(ResultSet([record]))).records[0]
    o = Outcomes.of(again)
    assert o is not None
    assert o.seen == 0b1000011001 and o.correct == 0b1000010001


def test_worst_case_is_the_images_no_attack_broke_over_the_images_all_saw():
    records = [
        cell("fgsm", range(8), [1, 1, 1, 1, 0, 1, 1, 1]),
        cell("pgd", range(8), [1, 1, 0, 1, 0, 1, 1, 0]),
        # a slower attack on the first 4 images only: the worst case is over those 4
        cell("autoattack", range(4), [1, 0, 0, 1]),
        cell("pgd", range(8), [0] * 8, eps=0.3),                 # another eps: its own group
        cell("pgd", range(8), [0] * 8, config={"check": True}),  # the check cell: not counted
    ]
    by = {w.eps: w for w in worst_cases(records)}
    w = by[0.1]
    assert w.n == 4 and w.robust_acc == 2 / 4               # images 0 and 3 survive all three
    assert w.attacks == ("fgsm", "pgd", "autoattack")
    # image 1 only autoattack broke; image 2 both pgd and autoattack: nobody's alone
    assert w.sole_breaks == {"fgsm": 0, "pgd": 0, "autoattack": 1}
    assert by[0.3].robust_acc == 0 and by[0.3].n == 8


def test_adaptive_cells_are_their_own_attacks_and_old_records_are_named():
    old = make_record(cell_key="old", train_key="t", run_id="r", dataset="d", model="m",
                 defense="jpeg", attack="square", eps=0.1, status="ok", robust_acc=0.5)
    records = [cell("pgd", range(4), [1, 1, 1, 1], defense="jpeg"),
               cell("pgd", range(4), [1, 0, 1, 0], defense="jpeg", adaptive="bpda"), old]
    (w,) = worst_cases(records)
    assert w.attacks == ("pgd", "pgd [bpda]") and w.robust_acc == 0.5
    assert w.sole_breaks == {"pgd": 0, "pgd [bpda]": 2} and w.uncounted == ("square",)


def test_smaller_subsets_take_their_images_from_larger_ones_and_keep_their_positions():
    from harness.testing import tiny_image_data

    data = tiny_image_data(n_test=50)
    run = data.subset(None, 30, seed=0)
    small, large = run.subset(None, 10, seed=5), run.subset(None, 20, seed=5)
    assert set(small.test_positions.tolist()) <= set(large.test_positions.tolist()) \
        <= set(run.test_positions.tolist())
    for sub in (run, small, large):       # the positions name the very images
        assert (data.x_test[sub.test_positions] == sub.x_test).all()


def test_runner_records_outcomes_that_match_each_cells_robust_accuracy(isolated_home):
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm", "pgd"),
                         defenses=("none",), n_train=200, n_test=60, epochs=2, device="cpu",
                         checks=False)
    outcome = Runner(config, load_registry(), ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "models"), show_progress=False).run()
    for r in outcome.records:
        o = Outcomes.of(r)
        assert o is not None and o.seen.bit_count() == r.n_test == 60
        assert o.correct.bit_count() / r.n_test == pytest.approx(r.robust_acc)
    (w,) = worst_cases(outcome.records)
    assert w.n == 60
    assert w.robust_acc <= min(r.robust_acc for r in outcome.records)
