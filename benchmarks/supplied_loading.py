"""How long reading a supplied model takes: timm's resnet18 (10 classes) saved as TorchScript,
a torch.export archive, ONNX and safetensors, each read back as ``harness bench --model`` reads
it (SHA-256, then load), best of 3, side by side in one process; and the largest difference of
its logits from the TorchScript file's.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/supplied_loading.py [FOLDER]
(docs/your-model.md quotes one run).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

from harness.contracts.data import ModelInput
from harness.planning.loading import load_registry
from harness.planning.model_choice import choose_model
from harness.planning.plan import BenchConfig, make_plan
from harness.run.supplied_models import load_supplied


def save_all(folder: Path) -> list[str]:
    """resnet18 in each file kind under ``folder``; the ``--model`` names that read them."""
    model = timm.create_model("resnet18", num_classes=10).eval()
    x = torch.rand(2, 3, 224, 224)
    torch.jit.script(model).save(str(folder / "r18.pt"))
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: batch},)),
                      str(folder / "r18.pt2"))
    torch.onnx.export(model, (x,), str(folder / "r18.onnx"), input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "r18.safetensors"))
    return [f"torchscript:{folder / 'r18.pt'}", f"export:{folder / 'r18.pt2'}",
            f"onnx:{folder / 'r18.onnx'}", f"timm:resnet18@{folder / 'r18.safetensors'}"]


def main(folder: Path) -> None:
    """Print one line per file kind."""
    registry = load_registry()
    x = torch.rand(4, 3, 224, 224)
    reference = None
    for name in save_all(folder):
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            choose_model(name, {}, registry)          # the SHA-256 of the file
            t1 = time.perf_counter()
            config = BenchConfig(models=(name,), defenses=("none",), checks=False)
            (job,) = make_plan(config, registry).jobs
            model = load_supplied(job, ModelInput(3, 224, 224, 10))
            t2 = time.perf_counter()
            if best is None or (t2 - t0) < sum(best):
                best = (t1 - t0, t2 - t1)
        with torch.no_grad():
            logits = model(x)
        reference = logits if reference is None else reference
        gap = float((logits - reference).abs().max())
        print(f"{name.split(':')[0].split('@')[0]:12s} sha256 {best[0]:.3f} s, load "
              f"{best[1]:.3f} s, max |logit - torchscript's| {gap:.1e}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(scratch))
