"""The corruption category: every corruption at every severity scored per cell, seeded so a
cell gives the same numbers twice, checked before it is scored, and the corruption error
relative to the undefended model (mCE) derived on the page; a third-party suite takes part
like the built-in one."""

from __future__ import annotations

import json

import pytest
import torch

from harness import AttackSpec, PluginInfo, hookimpl, options
from harness.cli import main
from harness.contracts.corruption import with_relative_error
from harness.planning import loading
from harness.testing.records import make_record


class Darken:
    """A suite of two corruptions: darkening by 0.2 x severity, and Gaussian noise of 0.1 x
    severity drawn from the generator (or, ``broken``, noise that leaves [0, 1])."""

    def __init__(self, broken: bool = False):
        self.broken = broken

    def corruptions(self, image_shape):
        return ("darken", "noise")

    def severities(self, name):
        return (1, 2, 3)

    def corrupt(self, name, x, severity, generator):
        if name == "darken":
            return x * (1 - 0.2 * severity)
        noise = 0.1 * severity * torch.randn(x.shape, generator=generator,
                                             device=generator.device)
        return x + noise if self.broken else (x + noise).clamp(0, 1)


class Plugin:
    broken = False

    @hookimpl
    def harness_register_attacks(self, register):
        register(AttackSpec(
            name="darken", description="darkening and noise", build=lambda o: Darken(
                self.broken), category="corruption", threat_model="black-box", norm="none",
            bounded=False, needs=frozenset({"labels"}), options=options()))


def _bench(tmp_path, name: str, plugin: Plugin, *extra: str) -> int:
    info = PluginInfo(name="darken", distribution="<in-process>", version="0")
    loading.TEST_PLUGINS.append((info, plugin))
    try:
        return main(["bench", "--dataset", "digits", "--attack", "darken", "--n-train", "1000",
                     "--epochs", "4", "--n-test", "60", "--quiet", "--format", "markdown",
                     "--db", str(tmp_path / f"{name}.sqlite"),
                     "--json", str(tmp_path / f"{name}.json"), *extra])
    finally:
        loading.TEST_PLUGINS.pop()


def _records(tmp_path, name: str) -> dict[str, dict]:
    return {r["defense"]: r for r in json.loads((tmp_path / f"{name}.json").read_text())[
        "records"]}


def test_every_corruption_and_severity_is_scored_the_same_twice_and_mce_is_derived(
        tmp_path, capsys):
    assert _bench(tmp_path, "one", Plugin(), "--defense", "none,advtrain") == 0
    out = capsys.readouterr().out
    assert _bench(tmp_path, "two", Plugin(), "--defense", "none,advtrain", "--no-cache") == 0
    one, two = _records(tmp_path, "one"), _records(tmp_path, "two")
    assert one["none"]["metrics"] == two["none"]["metrics"]
    m = one["none"]["metrics"]
    for name in ("darken", "noise"):
        levels = [m[f"corruption_acc@{name}/{s}"] for s in (1, 2, 3)]
        assert m[f"corruption_acc@{name}"] == pytest.approx(sum(levels) / 3)
    assert m["mean_corruption_acc"] == pytest.approx(
        (m["corruption_acc@darken"] + m["corruption_acc@noise"]) / 2)
    assert m["corruption_acc@noise/3"] < m["clean_acc"]
    assert set(one["none"]["examples"]["images"]) == {
        f"{n}/{s}" for n in ("darken", "noise") for s in (1, 2, 3)}
    assert "### Common corruptions" in out and "corruption error vs undefended" in out
    row = next(line for line in out.splitlines()
               if line.startswith("| paper-cnn | none ") and "darken" in line)
    assert [c.strip() for c in row.split("|")][6] == "100.00%"   # the undefended model: itself


def test_mce_is_the_mean_ratio_of_summed_errors_to_the_undefended_models():
    def record(defense, accs):
        metrics = {f"corruption_acc@{c}/{s}": a for c, levels in accs.items()
                   for s, a in enumerate(levels, 1)}
        return make_record(cell_key=defense, train_key=defense, run_id="r", dataset="d",
                           model="m", defense=defense, attack="darken", eps=None,
                           category="corruption", status="ok",
                           defense_roles=("baseline",) if defense == "none" else (),
                           metrics=metrics)

    none = record("none", {"a": [0.9, 0.7], "b": [0.5, 0.5]})     # errors 0.4 and 1.0
    other = record("x", {"a": [0.95, 0.85], "b": [0.5, 0.7]})     # errors 0.2 and 0.8
    derived = {r.defense: r.metrics.get("mce") for r in with_relative_error([none, other])}
    assert derived["none"] == pytest.approx(1.0)
    assert derived["x"] == pytest.approx((0.2 / 0.4 + 0.8 / 1.0) / 2)


def test_a_corruption_leaving_the_valid_range_fails_its_cell_naming_it(tmp_path, capsys):
    plugin = Plugin()
    plugin.broken = True
    assert _bench(tmp_path, "bad", plugin, "--defense", "none") == 1
    record = _records(tmp_path, "bad")["none"]
    assert record["status"] == "failed"
    assert "corruption 'noise' at severity 1 of 'darken' returned values outside [0, 1]" in \
        record["error"]


def test_the_summary_rows_and_claims_carry_the_corruption_and_certified_numbers(tmp_path):
    from harness.contracts.records import ResultSet
    from harness.report.claims import claims
    from harness.report.leaderboard import summary_section
    from harness.report.summary import headline_block

    def evasion(attack, roles, robust):
        return make_record(cell_key=f"none/{attack}", train_key="t", run_id="r",
                           dataset="mnist", model="m", defense="none", attack=attack, eps=0.1,
                           status="ok", attack_roles=roles, defense_roles=("baseline",),
                           clean_acc=0.99, robust_acc=robust, n_test=1000,
                           config={"training": {"dataset_eps": 0.1}})

    records = [
        evasion("fgsm", ("reference", "single-step"), 0.8),
        evasion("pgd", ("iterative", "reference"), 0.6),
        make_record(cell_key="none/corruptions", train_key="t", run_id="r", dataset="mnist",
                    model="m", defense="none", attack="corruptions", eps=None,
                    category="corruption", status="ok", defense_roles=("baseline",),
                    clean_acc=0.99, mean_corruption_acc=0.8123, n_test=1000),
        make_record(cell_key="none/smoothing", train_key="t", run_id="r", dataset="mnist",
                    model="m", defense="none", attack="smoothing", eps=None,
                    category="certification", status="ok", defense_roles=("baseline",),
                    **{"certified_acc@0.5": 0.5, "smoothed_acc": 0.9}, n_test=500),
        make_record(cell_key="other/smoothing", train_key="u", run_id="r", dataset="mnist",
                    model="m", defense="other", attack="smoothing", eps=None,
                    category="certification", status="ok",
                    **{"certified_acc@0.5": 0.7, "smoothed_acc": 0.9}, n_test=500),
    ]
    page = "\n".join(summary_section(records, {}))
    header = next(line for line in page.splitlines() if line.startswith("| rank"))
    assert "| corruption acc " in header and "| certified r=0.5 " in header
    row = next(line for line in page.splitlines() if "| none " in line)
    assert "81.23% ±2.4" in row and "50.00% ±4.4" in row
    terminal = "\n".join(headline_block(records, {}, 120))
    assert "corruption acc" in terminal and "81.2±2.4" in terminal
    (claim,) = claims(ResultSet(records), {}).values()
    assert claim["corruptions_acc"] == "81.23" and claim["certified_acc_r0.5"] == "50.00"
    assert claim["corruptions_acc_interval"] == ["78.69", "83.53"]
    broken = {"none/smoothing": "V"}                 # a withheld cell gives no number
    assert "certified" not in "\n".join(summary_section(records, broken)).split("\n")[4]
