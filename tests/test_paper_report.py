"""The paper report's Tables I-III: Imagenette stands in for ImageNet, named as what it is."""

from __future__ import annotations

from dataclasses import replace

from harness.contracts.records import Result, ResultSet
from harness.testing.records import make_record
from harness_plugins.paper_report import IMAGENETTE_NOTE, comparison


def _cell(dataset: str, defense: str, attack: str, robust: float, size: int = 64) -> Result:
    return make_record(cell_key=f"{dataset}/{defense}/{attack}", train_key=f"{dataset}/{defense}",
                  run_id="run", dataset=dataset, model="paper-cnn", defense=defense,
                  attack=attack, eps=0.03, status="ok", clean_acc=0.78, robust_acc=robust,
                  n_test=3925, config={"image_shape": [3, size, size]})


def test_imagenette_fills_the_imagenet_row_with_its_size_and_a_caveat():
    text = comparison(ResultSet([_cell("imagenette", "none", "fgsm", 0.21),
                                 _cell("imagenette", "advtrain", "fgsm", 0.55)]))
    row = "| ImageNet (Imagenette: 10 classes, 64 px) "
    assert text.count(row) == 3  # Tables I, II and III
    assert "| 78.00% (n=3925) " in text and "| 21.00% (n=3925) " in text
    assert "| 55.00% (n=3925) " in text
    assert IMAGENETTE_NOTE in text
    assert "- ImageNet:" not in text  # not listed as missing


def test_real_imagenet_keeps_its_row_and_no_caveat():
    text = comparison(ResultSet([_cell("imagenet", "none", "fgsm", 0.3),
                                 _cell("imagenette", "none", "fgsm", 0.21)]))
    assert "| ImageNet " in text and "Imagenette: 10 classes" not in text
    assert IMAGENETTE_NOTE not in text


def test_without_either_the_row_says_how_to_reproduce():
    text = comparison(ResultSet([]))
    assert "Imagenette" not in text and "- ImageNet: `harness bench --dataset imagenet" in text


def test_the_figures_are_drawn_at_the_datasets_own_eps():
    """Imagenette ran FGSM at 4/255 and at its own 0.03: the bars and the examples (the
    paper's Fig. 1 and 3) show 0.03, the eps its records were trained and named for."""
    from harness_plugins.paper_report import plan_figures

    rows = []
    for eps in (4 / 255, 0.03):
        for defense in ("none", "advtrain"):
            cell = _cell("imagenette", defense, "fgsm", 0.2)
            rows.append(replace(cell, eps=eps, cell_key=f"{defense}{eps}",
                                examples={"shape": [4, 3, 64, 64]},
                                config={"training": {"dataset_eps": 0.03}}))
    figures = plan_figures(ResultSet(rows), "page")
    assert [f.eps for f in figures["imagenette"] if f.kind == "examples"] == [0.03]
    assert "imagenette eps 0.03)" in figures[None][0].caption
