"""Built-in supplied-model kinds: a trained classifier from a file, evaluated as it is.

- ``torchscript:PATH``: a TorchScript archive (``torch.jit.script(model).save(PATH)`` or
  ``torch.jit.trace``), read with ``torch.jit.load``: code and tensors, no pickled objects.
- ``export:PATH``: a ``torch.export`` archive (``torch.export.save``), read with
  ``torch.export.load``; export it with a dynamic batch dimension.
- ``onnx:PATH``: an ONNX model converted to a differentiable torch module by onnx2torch
  (``pip install 'robustness-harness[onnx]'``).

A registered architecture with a weights file is the core's ``ARCH@FILE``
(``paper-cnn@m.safetensors``), not a kind of its own. Every supplied model takes images in
[0, 1] of the dataset's shape and returns logits; ``--model-opt KIND:PATH.mean=[...]`` and
``.std=[...]`` put a normalization in front of one that expects standardized images, and
``.label=NAME`` names its row (see ``harness.planning.supplied``). A plain pickle
(``torch.save(model)``)
is refused with how to convert it: no file is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness import PICKLE_ADVICE, ModelContractError, ModelSpec, hookimpl, options

OFFERS = frozenset({"gradients", "scores", "labels"})
NO_OPTIONS = options()


def _problem(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def load_torchscript(model_input: Any, variant: str | None, resolved: Mapping[str, Any]):
    """The TorchScript module in the file ``variant`` (CPU)."""
    import warnings

    import torch

    path = Path(variant or "")
    try:
        with warnings.catch_warnings():     # torch 2.9+ calls TorchScript deprecated
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError for every kind
        text = str(exc)
        if "constants.pkl" in text or "data.pkl" in text or "code/" in text:
            raise ModelContractError(
                f"model file {str(path)!r} is a pickled Python object, not a "
                f"TorchScript archive; {PICKLE_ADVICE}") from None
        raise ModelContractError(
            f"model file {str(path)!r} is not a readable TorchScript archive "
            f"({_problem(exc)}); is it truncated? save it with torch.jit.script(model)"
            ".save(PATH)") from None


def load_export(model_input: Any, variant: str | None, resolved: Mapping[str, Any]):
    """The module of the ``torch.export`` archive in the file ``variant`` (CPU)."""
    import torch

    path = Path(variant or "")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ModelContractError(
            f"model file {str(path)!r} is not a readable torch.export archive "
            f"({_problem(exc)}); save one with torch.export.save(torch.export.export(model, "
            "(x,), dynamic_shapes=...), PATH)") from None
    static = _static_batch(program)
    if static is not None:
        raise ModelContractError(
            f"model file {str(path)!r} was exported for batches of exactly {static} images; "
            "the harness attacks batches of any size: export it with a dynamic batch, "
            "dynamic_shapes=({0: torch.export.Dim('batch')},)")
    return exported_module(program.module())


def exported_module(graph_module: Any) -> Any:
    """An exported program's module wrapped: the module itself refuses ``train()`` and
    ``eval()`` (it was exported in one mode for good), so the wrapper records the mode only
    and calls it as it is."""
    from torch import nn

    class ExportedModule(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.graph_module = inner

        def forward(self, x):
            return self.graph_module(x)

        def train(self, mode: bool = True):
            self.training = mode
            return self

    return ExportedModule(graph_module)


def _static_batch(program: Any) -> int | None:
    """The fixed batch size of an exported program's first input, or None when dynamic."""
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in inputs:
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is not None and len(shape) and isinstance(shape[0], int):
                return int(shape[0])
            return None
    return None


def load_onnx(model_input: Any, variant: str | None, resolved: Mapping[str, Any]):
    """The ONNX model in the file ``variant`` as a differentiable torch module (onnx2torch)."""
    path = Path(variant or "")
    try:
        import onnx
        from onnx2torch import convert
    except ImportError:
        raise ModelContractError(
            f"model file {str(path)!r}: reading ONNX needs onnx and onnx2torch: pip install "
            "'robustness-harness[onnx]'") from None
    try:
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
    except Exception as exc:  # noqa: BLE001
        raise ModelContractError(
            f"model file {str(path)!r} is not a valid ONNX model ({_problem(exc)}); is "
            "it truncated?") from None
    try:
        return convert(_without_identity_initializers(graph))
    except Exception as exc:  # noqa: BLE001
        raise ModelContractError(
            f"model file {str(path)!r}: onnx2torch cannot convert it ({_problem(exc)})") from None


def _without_identity_initializers(graph: Any) -> Any:
    """``graph`` with each ``Identity`` of an initializer replaced by a copy of the initializer
    under the output's name: exporters share one tensor between layers that way (zero biases
    after batch-norm folding), and onnx2torch reads a layer's weights from initializers only."""
    import copy

    model = copy.deepcopy(graph)
    tensors = {t.name: t for t in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and len(node.input) == 1 and node.input[0] in tensors:
            twin = copy.deepcopy(tensors[node.input[0]])
            twin.name = node.output[0]
            model.graph.initializer.append(twin)
            tensors[twin.name] = twin
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


_KINDS = (
    ("torchscript", load_torchscript, (".pt", ".pth", ".ts", ".jit"),
     "A TorchScript file, evaluated as it is: --model torchscript:PATH"),
    ("export", load_export, (".pt2",),
     "A torch.export archive (.pt2, dynamic batch), evaluated as it is: --model export:PATH"),
    ("onnx", load_onnx, (".onnx",),
     "An ONNX file through onnx2torch ([onnx] extra), evaluated as it is: --model onnx:PATH"),
)


@hookimpl
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register the supplied-model file kinds ``torchscript``, ``export`` and ``onnx``."""
    for name, load, suffixes, description in _KINDS:
        register(ModelSpec(name=name, description=description, build=load, supplied=True,
                           takes_variant=True, offers=OFFERS, options=NO_OPTIONS,
                           suffixes=suffixes))
