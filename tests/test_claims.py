"""Claims in RobustBench's model_info shape: measured from the results, human fields kept,
checked against the reported number, and the committed claims what the committed results
give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import roles
from harness.cli import main
from harness.contracts.outcomes import encode
from harness.contracts.records import Result, ResultSet
from harness.report.checks import LEGEND, flags_by_cell
from harness.report.claims import (
    HUMAN_FIELDS,
    MARGIN_POINTS,
    MASKING_CODES,
    claim_path,
    claims,
    write_claims,
)
from harness.testing.records import make_record
from harness.util.errors import UsageError

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
CLAIMS = LEADERBOARDS / "claims"
# RobustBench's model_info fields (its optional "footnote" only when someone wrote one).
ROBUSTBENCH_FIELDS = {"link", "name", "authors", "additional_data", "number_forward_passes",
                      "dataset", "venue", "architecture", "eps", "clean_acc", "reported",
                      "autoattack_acc", "external", "unreliable"}
KEY = ("d", "m", "none")


def cell(attack: str, correct: list[int], *, roles_=(), eps: float = 0.1, model: str = "m",
         outcomes: bool = True, **extra) -> Result:
    """An ok evasion cell of model ``model`` at the dataset's eps 0.1: ``correct[i]`` whether
    test image i stayed correctly classified."""
    return make_record(cell_key=f"{model}-{attack}-{eps}", train_key=f"t-{model}", run_id="r",
                  dataset="d", model=model, defense="none", attack=attack, eps=eps,
                  status="ok", clean_acc=1.0, robust_acc=sum(correct) / len(correct),
                  n_test=len(correct), norm="inf", attack_roles=tuple(roles_),
                  outcomes=encode(range(len(correct)), map(bool, correct)) if outcomes else None,
                  train_seconds=12.34, attack_images_per_s=100.0,
                  config={"seed": 0, "training": {"dataset_eps": 0.1}}, **extra)


FGSM = (roles.SINGLE_STEP, roles.REFERENCE)
PGD = (roles.ITERATIVE, roles.REFERENCE)
STANDARD = (roles.ITERATIVE, roles.ENSEMBLE, roles.REFERENCE)
OTHER_ENSEMBLE = (roles.ITERATIVE, roles.ENSEMBLE)


def results(*records: Result) -> ResultSet:
    meta = {"harness": "0.1.0", "seed": 0, "plugins": {"pgd": "robustness-harness 0.1.0"}}
    return ResultSet(list(records), {"r": meta})


def the_claim(rs: ResultSet, reported: str | None = None) -> dict:
    human = {KEY: {"reported": reported}} if reported is not None else {}
    return claims(rs, flags_by_cell(rs.records), human)[KEY]


# 10 images; FGSM leaves 9, PGD 8, the standard AutoAttack 7; together they leave 5
TEN = results(cell("fgsm", [1] * 9 + [0], roles_=FGSM),
              cell("pgd", [1] * 8 + [0, 0], roles_=PGD),
              cell("aa", [0, 0, 0] + [1] * 7, roles_=STANDARD))
# 1,000 images (a pattern of ten, a hundred times): FGSM leaves 80%, PGD and the standard
# AutoAttack 70% (no check fires), together they leave 60%
THOUSAND = results(cell("fgsm", ([0] + [1] * 8 + [0]) * 100, roles_=FGSM),
                   cell("pgd", ([0, 0] + [1] * 7 + [0]) * 100, roles_=PGD),
                   cell("aa", ([0, 0, 0] + [1] * 7) * 100, roles_=STANDARD))


def test_a_claim_has_every_robustbench_field_and_the_measured_ones():
    c = the_claim(TEN)
    assert ROBUSTBENCH_FIELDS <= set(c)
    assert c["dataset"] == "d" and c["architecture"] == "m" and c["defense"] == "none"
    assert (c["eps"], c["threat_model"], c["number_forward_passes"]) == ("0.1", "Linf", 1)
    assert c["clean_acc"] == "100.00"
    assert c["autoattack_acc"] == "70.00" and c["autoattack_footnote"] is None
    assert c["attacks"] == {"aa": "70.00", "fgsm": "90.00", "pgd": "80.00"}
    assert (c["worst_case_acc"], c["n"]) == ("50.00", 10)   # images 0-2, 8, 9 broken
    assert c["cell_keys"] == ["m-aa-0.1", "m-fgsm-0.1", "m-pgd-0.1"]
    assert (c["train_key"], c["harness_version"], c["seed"]) == ("t-m", "0.1.0", 0)
    assert c["plugins"] == {"pgd": "robustness-harness 0.1.0"}
    assert (c["images_per_s"], c["train_seconds"]) == (100.0, 12.3)
    # PGD 10 points above the standard AutoAttack, but one image of ten is sampling noise
    assert c["flags"] == {"codes": "", "legend": {}}
    # a claim nobody wrote has the human defaults and is measured, not checked
    printable = {"name": "m with none", "link": "", "venue": ""}    # never null on a page
    assert {k: c.get(k) for k in HUMAN_FIELDS} == {**HUMAN_FIELDS, **printable}
    assert "footnote" not in c     # RobustBench's template prints a footnote that is there
    assert (c["unreliable"], c["unreliable_reason"]) == (False, None)


def test_autoattack_acc_is_only_the_standard_autoattack():
    rs = results(cell("fgsm", [1] * 10, roles_=FGSM), cell("pgd", [1] * 9 + [0], roles_=PGD),
                 cell("ens", [1] * 5 + [0] * 5, roles_=OTHER_ENSEMBLE))
    c = the_claim(rs)
    assert c["autoattack_acc"] is None
    assert "ens" in c["autoattack_footnote"] and "50.00%" in c["autoattack_footnote"]
    assert c["attacks"]["ens"] == "50.00"
    none = the_claim(results(cell("pgd", [1] * 10, roles_=PGD)))
    assert none["autoattack_acc"] is None and "no ensemble" in none["autoattack_footnote"]


def test_reported_far_above_the_worst_case_is_unreliable_with_the_reason():
    c = the_claim(THOUSAND, reported="80.00")    # worst case 60%, the standard AutoAttack 70%
    assert c["unreliable"] is True
    worst, standard = c["unreliable_reason"]
    assert "worst case over 1000 images is 60.00%, 20.00 points below the reported 80.00%" \
        in worst
    assert "standard AutoAttack (aa, 1000 images) is 70.00%" in standard
    assert "95% interval of the measured number ends at 62.99%" in worst


def test_reported_within_the_margin_is_not_unreliable():
    assert MARGIN_POINTS == 5.0
    c = the_claim(THOUSAND, reported="65.00")
    assert (c["unreliable"], c["unreliable_reason"]) == (False, None)
    # just over the margin, and above the worst case's interval (56.93-62.99%): unreliable
    assert the_claim(THOUSAND, reported="65.01")["unreliable"] is True


def test_a_gap_within_the_sampling_noise_is_not_a_reason():
    # on 10 images the standard AutoAttack's 70% has the 95% interval 39.68-89.22%: a
    # reported 80% is 10 points above it, but within the noise; the worst case's 50%
    # (23.66-76.34%) is not
    c = the_claim(TEN, reported="80.00")
    (reason,) = c["unreliable_reason"]
    assert "worst case over 10 images is 50.00%" in reason and "76.34%" in reason
    assert the_claim(TEN, reported="76.00")["unreliable"] is False


def test_intervals_are_wilsons_computed_by_hand():
    # Wilson: center (p + z^2/2n) / (1 + z^2/n), half z / (1 + z^2/n) * sqrt(p(1-p)/n +
    # z^2/4n^2), z = 1.96: p = 0.6, n = 1000 gives 0.59962 -+ 0.030308
    c = the_claim(THOUSAND)
    assert c["worst_case_acc_interval"] == ["56.93", "62.99"]
    assert c["autoattack_acc_interval"] == ["67.09", "72.76"]    # p = 0.7, n = 1000
    assert c["clean_acc_interval"] == ["99.62", "100.00"]        # p = 1: the upper end is 1
    assert the_claim(TEN)["worst_case_acc_interval"] == ["23.66", "76.34"]


def test_without_worst_case_or_standard_autoattack_the_lowest_attack_decides():
    rs = results(cell("fgsm", ([1] * 10 + [0] * 10) * 100, roles_=FGSM, outcomes=False),
                 cell("pgd", ([1] * 7 + [0] * 13) * 100, roles_=PGD, outcomes=False),
                 cell("ens", ([1] * 6 + [0] * 14) * 100, roles_=OTHER_ENSEMBLE, outcomes=False))
    c = the_claim(rs, reported="60.00")
    assert c["worst_case_acc"] is None and c["n"] is None
    (reason,) = c["unreliable_reason"]
    assert "lowest robust accuracy among the attacks, ens (2000 images), is 30.00%" in reason
    assert the_claim(rs, reported="34.00")["unreliable"] is False


@pytest.mark.parametrize("code", MASKING_CODES)
def test_the_masking_codes_are_the_checks_masking_flags(code):
    assert "mask" in LEGEND[code] or "leaking" in LEGEND[code]


def test_masking_flags_make_a_claim_unreliable_even_within_the_margin():
    # FGSM 95% vs PGD 70% at another eps: the checks raise M on FGSM there
    rs = results(*TEN.records, cell("fgsm", [1] * 19 + [0], roles_=FGSM, eps=0.2),
                 cell("pgd", [1] * 14 + [0] * 6, roles_=PGD, eps=0.2))
    c = the_claim(rs, reported="50.00")
    assert c["flags"]["codes"] == "M" and "M" in c["flags"]["legend"]
    (reason,) = c["unreliable_reason"]
    assert reason.startswith("flag M on fgsm at eps 0.2: FGSM leaves at least 20 points")
    # the same flags on a claim nobody reported a number for: measured, not checked
    assert the_claim(rs)["unreliable"] is False


def test_a_model_trained_at_another_eps_is_its_own_claim_with_its_cells_and_flags():
    """``--defense-opt NAME.eps=0.3`` trains another model: its claim (labelled with the eps)
    holds its own cells at 0.3, and its flags stay out of the claim at the dataset's eps."""
    def at_03(r: Result) -> Result:
        training = {"dataset_eps": 0.1, "defense_options": {"eps": 0.3}}
        return r.replace(train_key="t-03", cell_key="03" + r.cell_key,
                         config={"seed": 0, "training": training})

    trained = [at_03(cell("fgsm", [1] * 19 + [0], roles_=FGSM, eps=0.3)),
               at_03(cell("pgd", [1] * 14 + [0] * 6, roles_=PGD, eps=0.3)),
               at_03(cell("aa", [1] * 12 + [0] * 8, roles_=STANDARD, eps=0.3))]
    rs = results(*TEN.records, *trained)
    found = claims(rs, flags_by_cell(rs.records), {})
    c = found[("d", "m", "none (trained at eps 0.3)")]
    assert (c["eps"], c["autoattack_acc"], c["train_key"]) == ("0.3", "60.00", "t-03")
    assert c["cell_keys"] == sorted(r.cell_key for r in trained)
    assert c["flags"]["codes"] == "M"
    assert found[KEY]["flags"]["codes"] == "" and found[KEY]["train_key"] == "t-m"


def test_a_bad_reported_number_is_a_usage_error():
    with pytest.raises(UsageError, match="percent string"):
        the_claim(TEN, reported="high")
    with pytest.raises(UsageError, match="percent string"):
        the_claim(TEN, reported="180")


def test_human_fields_survive_regeneration_and_measured_ones_are_recomputed(tmp_path):
    rs = results(*TEN.records, *(r.replace(model="timm:x", cell_key="x" + r.cell_key)
                                 for r in TEN.records))
    done = write_claims(rs, flags_by_cell(rs.records), tmp_path)
    path = claim_path(tmp_path, "d", "timm:x", "none", eps="0.1", threat_model="Linf",
                      ranked=True)
    where = tmp_path / "eps-0.1" / "d" / "Linf"
    assert path == where / "timm_x--none.json" and sorted(done.written) == sorted(
        [path, where / "m--none.json"])
    data = json.loads(path.read_text())
    assert data["architecture"] == "timm:x"
    human = {"link": "https://example.org/paper", "name": "A paper", "authors": "A. Author",
             "venue": "arXiv, 2025", "reported": "90.00", "footnote": "FGSM, Table 3",
             "additional_data": True, "external": "42.00"}
    data.update(human, clean_acc="1.00", unreliable=False)
    path.write_text(json.dumps(data))
    write_claims(rs, flags_by_cell(rs.records), tmp_path)
    again = json.loads(path.read_text())
    assert {k: again[k] for k in human} == human
    assert again["clean_acc"] == "100.00" and again["unreliable"] is True


def test_regeneration_is_byte_identical_and_leaves_other_claims_alone(tmp_path):
    flags = flags_by_cell(TEN.records)
    other = tmp_path / "cifar10" / "paper-cnn--advtrain.json"
    other.parent.mkdir()
    other.write_text('{"reported": "71.17"}\n')
    first = write_claims(TEN, flags, tmp_path)
    mine = tmp_path / "eps-0.1" / "d" / "Linf" / "m--none.json"
    text = mine.read_bytes()
    assert text.endswith(b"}\n") and first.untouched == [other]
    second = write_claims(TEN, flags, tmp_path)
    assert second.written == [] and second.unchanged == first.written
    assert mine.read_bytes() == text
    assert other.read_text() == '{"reported": "71.17"}\n'


def test_a_file_that_holds_another_claim_is_refused(tmp_path):
    path = claim_path(tmp_path, *KEY, eps="0.1", threat_model="Linf", ranked=True)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"dataset": "d", "architecture": "m:", "defense": "none"}))
    with pytest.raises(UsageError, match="is the claim of d/m:/none"):
        write_claims(TEN, {}, tmp_path)


def test_a_claim_moves_with_its_ranking_and_from_the_old_layout_keeping_its_human_fields(
        tmp_path):
    flags = flags_by_cell(TEN.records)
    old = tmp_path / "d" / "m--none.json"             # 0.2's layout: folder/dataset/
    old.parent.mkdir()
    old.write_text(json.dumps({"name": "A paper", "reported": "90.00"}))
    write_claims(TEN, flags, tmp_path)
    ranked = claim_path(tmp_path, *KEY, eps="0.1", threat_model="Linf", ranked=True)
    assert not old.exists() and not old.parent.exists()
    claim = json.loads(ranked.read_text())
    assert (claim["name"], claim["reported"], claim["ranked"]) == ("A paper", "90.00", True)
    # without the standard AutoAttack the row is not ranked: the claim moves beside
    unranked = results(*(r for r in TEN.records if r.attack != "aa"))
    write_claims(unranked, flags_by_cell(unranked.records), tmp_path)
    moved = claim_path(tmp_path, *KEY, eps="0.1", threat_model="Linf", ranked=False)
    assert not ranked.exists() and moved.parent.name == "not-ranked"
    claim = json.loads(moved.read_text())
    assert (claim["name"], claim["ranked"]) == ("A paper", False)
    assert claim["not_ranked_reason"] == "no reference ensemble"


MODEL_INFO = sorted(CLAIMS.glob("eps-*/*/*")) if CLAIMS.is_dir() else []


def robustbench_table(folder: Path) -> list[list[str]]:
    """What RobustBench's leaderboard generator (robustbench/leaderboard/template.py and its
    leaderboard.html.j2) does with a ``model_info/<dataset>/<threat model>`` folder: every
    ``*.json`` directly in it, sorted by ``float(autoattack_acc)``, highest first, each
    printed as rank, name (with the footnote when the key is there), link, clean and robust
    accuracy with ``%``, extra data, architecture and venue (None printed as "None")."""
    models = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    models.sort(key=lambda m: float(m["autoattack_acc"]), reverse=True)
    rows = []
    for rank, m in enumerate(models, 1):
        name = str(m["name"]) + (f" {m['footnote']}" if "footnote" in m else "")
        rows.append([str(rank), name, str(m["link"]), f"{m['clean_acc']}%",
                     f"{m['autoattack_acc']}%", "yes" if m["additional_data"] else "no",
                     str(m["architecture"]), str(m["venue"])])
    return rows


@pytest.mark.parametrize("folder", MODEL_INFO,
                         ids=[str(p.relative_to(CLAIMS)) for p in MODEL_INFO])
def test_each_ranked_claims_folder_goes_through_robustbenchs_generator(folder):
    rows = robustbench_table(folder)        # raises on a null autoattack_acc
    assert rows and all("None" not in cell for row in rows for cell in row), rows
    ranked = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert all(c["ranked"] and c["eps"] == folder.parts[-3][len("eps-"):] for c in ranked)
    for c in (json.loads(p.read_text()) for p in folder.glob("not-ranked/*.json")):
        assert c["ranked"] is False and c["not_ranked_reason"]


def test_the_paper_claims_are_shipped_and_unreliable():
    from harness_plugins.paper_report import PAPER

    for dataset in ("mnist", "fashion-mnist"):
        eps, _, fgsm, adv = PAPER[dataset]
        for defense, reported in (("advtrain", adv), ("none", fgsm)):
            path = claim_path(CLAIMS, dataset, "paper-cnn", defense, eps=f"{eps:g}",
                              threat_model="Linf", ranked=True)
            c = json.loads(path.read_text())
            assert c["reported"] == f"{reported:.2f}" and c["eps"] == f"{eps:g}"
            assert c["name"].startswith("Adversarial Machine Learning")
            assert c["unreliable"] is True and c["unreliable_reason"]


CLAIMED = sorted({p.relative_to(CLAIMS).parts[1] for p in CLAIMS.glob("eps-*/**/*.json")}
                 ) if CLAIMS.is_dir() else []


@pytest.mark.parametrize("dataset", CLAIMED)
def test_committed_claims_are_what_the_committed_results_give(dataset, tmp_path, capsys):
    """leaderboards/claims/eps-*/<dataset>/ is regenerated from leaderboards/<dataset>.json."""
    copy = tmp_path / "claims"
    shutil.copytree(CLAIMS, copy)
    page = LEADERBOARDS / f"{dataset}.json"
    assert main(["leaderboard", "--results", str(page), "--claims", str(copy)]) == 0
    out = capsys.readouterr()
    assert out.out == ""                     # --claims without --out prints no page
    assert " 0 written" in out.err
    committed = sorted(p.relative_to(CLAIMS) for p in CLAIMS.glob("**/*.json"))
    assert sorted(p.relative_to(copy) for p in copy.glob("**/*.json")) == committed
    for name in committed:
        assert (copy / name).read_bytes() == (CLAIMS / name).read_bytes(), name
