"""Check a published claim with harness: two model files, two claimed robust accuracies.

1. ``hidden.pt``: a TorchScript model that hides its gradients. A real network (paper-cnn
   trained by harness on the 8x8 digits) sits behind an input quantization (``round``), whose
   gradient is zero everywhere, so FGSM and PGD find nothing and the model "keeps" its clean
   accuracy. Its claim (the PGD accuracy it shows) is marked unreliable: PGD at eps 0.5 leaves
   it far above chance (flag C) and the black-box Square attack, which needs no gradient, takes
   the worst case far below the claim.
2. ``honest.pt``: paper-cnn trained by harness with fast adversarial training (``fbf``),
   exported to TorchScript; its claim, a little under what PGD leaves, holds.

Run: python examples/your-model/claims_demo.py [FOLDER]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from harness import evaluate

ATTACKS = ["fgsm", "pgd", "square"]


class QuantizedInput(nn.Module):
    """``net`` after rounding each pixel to ``levels`` + 1 grey levels: the rounding's gradient
    is zero, so a gradient attack sees a flat loss."""

    def __init__(self, net: nn.Module, levels: int = 4):
        super().__init__()
        self.net = net
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * self.levels) / self.levels)


def trained_paper_cnn(defense: str, home: Path) -> nn.Module:
    """paper-cnn trained by harness on digits with ``defense`` (through the command line's
    cache under ``home``), loaded back as a plain module."""
    from harness import DataOptions, ModelInput, load_registry

    evaluate("paper-cnn", defenses=[defense], attacks=["fgsm"], checks=False, store=None,
             home=home, progress=False)
    registry = load_registry()
    spec = registry.model("paper-cnn")
    data = registry.dataset("digits").load(DataOptions())
    net = spec.build(ModelInput(*data.image_shape, data.num_classes), None,
                     spec.resolve_options({}))
    weights = _cached_weights(home, defense)
    from safetensors.torch import load_file

    net.load_state_dict(load_file(str(weights)))
    return net.eval()


def _cached_weights(home: Path, defense: str) -> Path:
    import json

    for info in sorted((home / "models").glob("*.json")):
        fields = json.loads(info.read_text()).get("key_fields", {})
        if fields.get("defense") == defense and fields.get("model") == "paper-cnn":
            return info.with_suffix(".safetensors")
    raise FileNotFoundError(f"no cached paper-cnn/{defense} under {home}")


def make_files(folder: Path, home: Path) -> tuple[Path, Path]:
    """``hidden.pt`` and ``honest.pt`` in ``folder`` (TorchScript)."""
    hidden = folder / "hidden.pt"
    torch.jit.script(QuantizedInput(trained_paper_cnn("none", home))).save(str(hidden))
    honest = folder / "honest.pt"
    torch.jit.script(trained_paper_cnn("fbf", home)).save(str(honest))
    return hidden, honest


def check_claims(hidden: Path, honest: Path, home: Path) -> dict[str, dict]:
    """Evaluate both files against their claims; return each one's claim."""
    out = {}
    for path, reported in ((hidden, 0.95), (honest, 0.70)):
        results = evaluate(path, attacks=ATTACKS, reported=reported, store=None, home=home,
                           label=path.stem, progress=False)
        (claim,) = results.claims().values()
        out[path.stem] = claim
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        files = make_files(where, where / "home")
        for name, claim in check_claims(*files, where / "home").items():
            verdict = "UNRELIABLE" if claim["unreliable"] else "holds"
            print(f"{name}: reported {claim['reported']}%, worst case "
                  f"{claim['worst_case_acc']}% -> {verdict}")
            for reason in claim["unreliable_reason"] or []:
                print(f"  - {reason}")
