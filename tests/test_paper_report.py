"""The paper report's Tables I-III: Imagenette stands in for ImageNet, named as what it is."""

from __future__ import annotations

from harness.records import Result, ResultSet
from harness_plugins.paper_report import IMAGENETTE_NOTE, comparison


def _cell(dataset: str, defense: str, attack: str, robust: float, size: int = 64) -> Result:
    return Result(cell_key=f"{dataset}/{defense}/{attack}", train_key=f"{dataset}/{defense}",
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
