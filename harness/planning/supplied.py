"""Models supplied trained, evaluated as they are: never trained, never cached, never unpickled.

A model is *supplied* when the harness gets it trained: from a file of a registered file kind
(a :class:`harness.contracts.specs.ModelSpec` declaring ``supplied=True``, named
``KIND:PATH``, e.g. ``torchscript:m.pt``), as a registered architecture with a weights file
(``ARCH@FILE``, e.g. ``paper-cnn@m.safetensors``: a safetensors state dict, or a
``.pt``/``.pth`` state dict read with ``torch.load(weights_only=True)``), or from Python
(:func:`harness.evaluate`).

Its identity is what it computes: the file's SHA-256 (or, for a module handed over in Python,
the SHA-256 of its code and weights) is part of its training key, so a changed file is a new
model and the same file reuses the stored cells. It is its own defense column: its cells carry
the synthetic defense :data:`SUPPLIED_DEFENSE` (the reference row that input transformations
sit on); training defenses and poisoning attacks, which would train it, are refused with the
reason. Reading it and checking its input contract before any attack is
:mod:`harness.run.supplied_models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contracts.options import Option, options
from harness.contracts.roles import BASELINE
from harness.contracts.specs import DefenseSpec
from harness.util.errors import UsageError, quoted
from harness.util.files import sha256_of


class ModelContractError(UsageError):
    """A supplied model that cannot be evaluated as it is (missing or unsafe file, wrong class
    count or input shape, non-finite logits, a normalization mismatch, no gradient where an
    attack needs one, a training defense asked of it): one line saying what and how to fix it,
    before any work (exit code 2). :func:`harness.evaluate` raises it with the same message."""


SUPPLIED_NAME = "supplied"


class _AsSupplied:
    """The training defense of a supplied model, which is never called: the provider loads a
    supplied model instead of training it."""

    def train(self, model: Any, data: Any, ctx: Any) -> Any:
        """Refuse: a supplied model is not trained here."""
        raise ModelContractError("a supplied model is evaluated as it is: the harness does "
                                 "not train it")


def _as_supplied(options: Mapping[str, Any]) -> _AsSupplied:
    return _AsSupplied()


#: The defense of a supplied model's own cells: the model as it came (the reference row that
#: input transformations sit on). No job ever trains with it.
SUPPLIED_DEFENSE = DefenseSpec(
    name=SUPPLIED_NAME, stage="training", baseline=True, roles=frozenset({BASELINE}),
    description="the supplied model as it is: trained elsewhere, evaluated without training",
    build=_as_supplied)

#: Options every supplied model takes (``--model-opt KIND:PATH.label=...``), handled by the
#: core whatever plugin loads the file.
SUPPLIED_OPTIONS = options(
    Option(name="label", type="str", default=None, nullable=True,
           help="the row's name (default: the kind and the file's name)"),
    Option(name="mean", type="float-list", default=None, nullable=True,
           help="per-channel mean the model expects its input standardized with; the harness "
                "puts (x - mean) / std inside the model, which then takes pixels in [0, 1]"),
    Option(name="std", type="float-list", default=None, nullable=True,
           help="per-channel std, with mean"),
    Option(name="reported", type="float", default=None, nullable=True, min=0, max=1,
           help="the robust accuracy its authors report (a fraction): its claim is marked "
                "unreliable when AutoAttack or the worst case falls 5 points below it"),
)
SUPPLIED_KEYS = frozenset(o.name for o in SUPPLIED_OPTIONS.options)


@dataclass(frozen=True)
class SuppliedModel:
    """What identifies a supplied model: its row label, where it came from, its SHA-256."""

    label: str
    source: str
    sha256: str
    file: str | None = None
    weights_for: str | None = None      # ARCH@FILE: the architecture the weights are for
    path: str | None = None             # where it was read (not part of the key)
    asked: str = ""                     # the --model name as given, which --model-opt uses
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    reported: float | None = None

    def key_fields(self) -> dict[str, Any]:
        """What of it shapes the numbers, for the training key (the label too: it names the
        stored records)."""
        return {"sha256": self.sha256, "label": self.label, "file": self.file,
                "mean": list(self.mean) if self.mean else None,
                "std": list(self.std) if self.std else None}


def split_weights(name: str) -> tuple[str, Path | None]:
    """``'paper-cnn@w.safetensors'`` -> (``'paper-cnn'``, Path); a name without ``@`` -> (name,
    None)."""
    arch, at, weights = name.partition("@")
    if not at:
        return name, None
    if not arch or not weights:
        raise UsageError(f"--model {quoted(name)}: expected ARCH@WEIGHTS_FILE, e.g. "
                         "paper-cnn@model.safetensors")
    return arch, Path(weights)


def file_sha256(path: Path, what: str) -> str:
    """The SHA-256 of the file ``path`` (a :class:`ModelContractError` when there is none)."""
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise ModelContractError(f"{what}: {str(path)!r} {where}; give the path of a model file")
    try:
        return sha256_of(path)
    except OSError as exc:
        raise ModelContractError(f"{what}: cannot read {str(path)!r}: "
                                 f"{exc.strerror or exc}") from None


def describe_supplied(kind_label: str, path: Path | None, given: Mapping[str, Any],
                      sha256: str, weights_for: str | None = None) -> SuppliedModel:
    """The :class:`SuppliedModel` of ``kind_label`` (``torchscript``, ``paper-cnn@``) read
    from ``path`` with the core options ``given`` (already resolved)."""
    shown = f"{kind_label}{_printable(path.name)}" if path is not None else kind_label
    label = given.get("label")
    if label is not None and (not label.strip() or _printable(label) != label):
        raise ModelContractError(f"model {shown}: label {quoted(label)} must be one line of "
                                 "printable characters without '|' (it names a table row)")
    mean, std = given.get("mean"), given.get("std")
    if (mean is None) != (std is None):
        raise ModelContractError(f"model {shown}: give mean and std together (or neither)")
    if std is not None and mean is not None and (not std or any(s <= 0 for s in std)
                                                 or len(std) != len(mean)):
        raise ModelContractError(f"model {shown}: std must be positive, one value per channel "
                                 "like mean")
    return SuppliedModel(label=label or shown, source=shown, sha256=sha256,
                         file=path.name if path is not None else None, weights_for=weights_for,
                         mean=tuple(mean) if mean else None, std=tuple(std) if std else None,
                         reported=given.get("reported"))


def _printable(text: str) -> str:
    """``text`` as a table cell can hold it: control characters and ``|`` replaced by ``_``."""
    return "".join("_" if ch == "|" or not ch.isprintable() else ch for ch in text)


# ---------------------------------------------------------------- reading files safely


PICKLE_ADVICE = ("the harness never unpickles a file; save the model as TorchScript "
                 "(torch.jit.script(model).save(PATH)), as a torch.export archive "
                 "(torch.export.save(torch.export.export(model, (x,)), PATH)) or as ONNX, then "
                 "--model KIND:PATH (harness list models shows the kinds); or save its state "
                 "dict as safetensors (safetensors.torch.save_file(model.state_dict(), PATH)), "
                 "then --model ARCH@PATH")
