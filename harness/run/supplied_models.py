"""Supplied models read and checked: files loaded without unpickling, state dicts fitted to
their architecture, and the input contract checked on the dataset before any attack
(:func:`check_contract`: output shape, class count, finite logits, a normalization mismatch,
an input gradient where an attack needs one). What identifies a supplied model is
:mod:`harness.planning.supplied`."""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from harness.contracts.data import ImageData


from harness.planning.supplied import PICKLE_ADVICE, ModelContractError, SuppliedModel


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: safetensors, or a torch state dict read with
    ``weights_only=True`` (a file with Python objects is refused, never unpickled)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ModelContractError(f"{what}: {str(path)!r} is not a readable safetensors file "
                                     f"({type(exc).__name__}: {exc}); is it truncated?") from None
    try:
        with warnings.catch_warnings():    # the refusal below says what torch warns about
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike
        raise ModelContractError(f"{what}: {str(path)!r} is not a state dict of tensors "
                                 f"({_load_problem(exc)}); {PICKLE_ADVICE}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise ModelContractError(f"{what}: {str(path)!r} holds no state dict (a mapping of names "
                                 f"to tensors); {PICKLE_ADVICE}")
    return dict(state)


def _load_problem(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "TorchScript" in text:
        return "it is a TorchScript archive: give it as --model torchscript:PATH"
    if "Unsupported global" in str(exc):
        return "it holds pickled Python objects"
    if isinstance(exc, zipfile.BadZipFile) or "zip" in text.lower() or "EOF" in text:
        return f"truncated or not a torch file: {text[:120]}"
    if "Weights only load failed" in text or "Unsupported operand" in str(exc):
        return "not a torch state-dict file"
    return text[:160]


def apply_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor],
                     what: str) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch is one line naming the first keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected),
                                     ("wrong shape", wrong)) if keys]
        raise ModelContractError(f"{what}: the weights do not fit the architecture ("
                                 f"{'; '.join(parts)}); were they saved from this architecture "
                                 "with the dataset's class count and image size?")
    model.load_state_dict(dict(state), strict=True)


def module_sha256(model: torch.nn.Module) -> str:
    """The SHA-256 of a module's class, structure and tensors: a Python object's identity."""
    import torch

    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def reinitialize(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its parameters initialized afresh, in place (for attacks that train a
    copy of the architecture, e.g. model extraction): each layer's own ``reset_parameters``,
    else He-uniform weights, unit scales and zero biases."""
    import math

    import torch

    with torch.no_grad():
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for name, param in module.named_parameters(recurse=False):
                if param.dim() > 1:
                    torch.nn.init.kaiming_uniform_(param, a=math.sqrt(5))
                elif "weight" in name:
                    param.fill_(1.0)
                else:
                    param.zero_()
    return model


# ---------------------------------------------------------------- the input contract


@dataclass(frozen=True)
class Contract:
    """What the contract check measured on the dataset's test images."""

    n_images: int
    clean_acc: float
    differentiable: bool


CHECK_IMAGES = 512
# A model that classifies the same images standardized this much better (absolute accuracy)
# than as pixels in [0, 1] expects normalized input: near chance on [0, 1] images is the
# usual sign, a smaller but large gap the silent one (a few points on the robust numbers).
NORMALIZATION_GAIN = 0.10


def check_contract(model: torch.nn.Module, data: ImageData, label: str, dataset: str, *,
                   needs_gradients: bool, mean: tuple[float, ...] | None = None,
                   std: tuple[float, ...] | None = None, asked: str = "") -> Contract:
    """Check ``model`` (eval mode, on the data's device) on up to :data:`CHECK_IMAGES` test
    images of ``data``; a :class:`ModelContractError` names the first broken rule and how to
    fix it. ``mean``/``std``: the dataset's declared statistics (else measured here) for the
    normalization hint."""
    import torch

    from harness.contracts.data import to_float

    x = to_float(data.x_test[:CHECK_IMAGES])
    y = data.y_test[:CHECK_IMAGES]
    shape = tuple(x.shape[1:])
    logits = _forward(model, x, label, dataset, shape)
    if logits.dim() != 2 or logits.shape[0] != len(x):
        raise ModelContractError(
            f"model {label} returned a tensor of shape {tuple(logits.shape)} for {len(x)} "
            f"images of {dataset}: it must return logits of shape (N, classes)")
    if logits.shape[1] != data.num_classes:
        raise ModelContractError(
            f"model {label} returns {logits.shape[1]} class scores, but {dataset} has "
            f"{data.num_classes} classes: give a model trained for the {data.num_classes} "
            f"classes of {dataset}")
    if not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(dim=1).sum())
        raise ModelContractError(
            f"model {label} returns non-finite logits (NaN or inf) for {bad} of {len(x)} "
            f"images of {dataset}: the harness scores only finite logits; check the model's "
            "weights and its input range (images in [0, 1])")
    acc = float((logits.argmax(1) == y).float().mean())
    _check_normalization(model, x, y, acc, label, dataset, data.num_classes, mean, std,
                         asked or label)
    problem = _gradient_problem(model, x[:8], y[:8])
    if needs_gradients and problem is not None:
        raise ModelContractError(
            f"model {label} is not differentiable ({problem}), "
            "and a gradient attack of this run needs its input gradient: export the model "
            "without torch.no_grad/detach in forward, or run only attacks that need no "
            "gradient (harness list attacks --long shows what each needs)")
    return Contract(len(x), acc, problem is None)


def _forward(model: torch.nn.Module, x: torch.Tensor, label: str, dataset: str,
             shape: tuple[int, ...]) -> torch.Tensor:
    import torch

    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 - whatever the model raises is the message
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelContractError(
            f"model {label} fails on {dataset}'s images (N, {', '.join(map(str, shape))}) in "
            f"[0, 1]: {type(exc).__name__}: {first}; the model must take the dataset's image "
            "shape (is it for another dataset or image size?)") from None
    if not isinstance(out, torch.Tensor):
        raise ModelContractError(f"model {label} returned {type(out).__name__}, not a tensor "
                                 "of logits")
    return out.float()


def _check_normalization(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, acc: float,
                         label: str, dataset: str, classes: int,
                         mean: tuple[float, ...] | None, std: tuple[float, ...] | None,
                         asked: str) -> None:
    """Refuse a model that does far better on standardized images than on [0, 1] ones (near
    chance on those, typically): the silent normalization mismatch."""
    import torch

    chance = 1.0 / classes
    if acc >= 1 - NORMALIZATION_GAIN:
        return
    if mean is None or std is None:
        mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
        std = tuple(max(float(v), 1e-3) for v in x.std(dim=(0, 2, 3)))
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    try:
        with torch.no_grad():
            standardized = float((model((x - m) / s).argmax(1) == y).float().mean())
    except Exception:  # noqa: BLE001 - no hint then; the model ran on [0, 1] images
        return
    if standardized >= max(2 * chance, acc + NORMALIZATION_GAIN):
        shown = lambda v: "[" + ",".join(f"{a:.4g}" for a in v) + "]"  # noqa: E731
        raise ModelContractError(
            f"model {label} reaches {acc:.1%} on {dataset}'s images in [0, 1] (chance "
            f"{chance:.0%}) but {standardized:.1%} on the same images standardized: it expects "
            f"normalized input; declare it with --model-opt {asked}.mean={shown(mean)} "
            f"--model-opt {asked}.std={shown(std)} (or mean=/std= in harness.evaluate), and "
            "the harness puts the normalization inside the model")


def _gradient_problem(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Why no input gradient comes out of ``model`` at ``x``, or None."""
    import torch

    x = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            if not loss.requires_grad:
                return "its output carries no gradient (computed without autograd)"
            (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    except Exception as exc:  # noqa: BLE001
        return f"backward fails: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    if grad is None:
        return "its output does not depend on the input through autograd"
    return None


def load_supplied(job: Any, model_input: Any) -> torch.nn.Module:
    """The supplied model of the training job ``job``
    (:class:`harness.planning.plan.TrainingJob`), in
    eval mode on the CPU: the file kind's ``build`` (it loads the file), or the architecture
    with the weights file loaded into it; with ``mean``/``std``, standardization in front."""
    import torch

    from harness.contracts.models import Standardize

    supplied: SuppliedModel = job.supplied
    what = f"model {supplied.label}"
    if supplied.weights_for is not None:
        model = job.model.build(model_input, job.variant, job.model_params)
        apply_state_dict(model, load_state_dict(Path(supplied.path or ""), what), what)
    else:
        model = job.model.build(model_input, job.variant, job.model_params)
    if not isinstance(model, torch.nn.Module):
        raise ModelContractError(f"{what}: loading gave {type(model).__name__}, not a torch "
                                 "module")
    if supplied.mean is not None and supplied.std is not None:
        if len(supplied.mean) != model_input.channels:
            raise ModelContractError(
                f"{what}: mean has {len(supplied.mean)} values, the images "
                f"{model_input.channels} channel(s)")
        model = torch.nn.Sequential(Standardize(supplied.mean, supplied.std), model)
    return model.eval()
