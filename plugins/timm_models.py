"""Built-in model family ``timm:<name>``: any timm architecture, sized to the dataset.

``timm:resnet18`` is built with the dataset's channels and classes, and its input
standardization inside the model. Random initialization by default. Pretrained weights only
when asked for, with ``--model-opt timm:NAME.pretrained=true`` (needs the network or timm's
cache) or ``pretrained=/path/to/weights.safetensors`` (a local file; ``.pth``/``.bin`` files are
read with ``torch.load(weights_only=True)``, never by unpickling objects). timm adapts the first
convolution to the dataset's channels; a checkpoint's classifier is kept when it has the
dataset's number of classes and dropped (freshly initialized) otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import (
    HarnessError,
    ModelSpec,
    Option,
    ResolvedOptions,
    UsageError,
    fraction,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    from torch import nn

    from harness import ModelInput

OPTIONS = options(
    Option(name="pretrained", type="json", default=False,
           help="false (random init), true (timm's weights: network or cache) or the path of "
                "a local weights file"),
    fraction("drop_rate", 0.0, "dropout before the classifier, in [0, 1)"),
    Option(name="img_size", type="int", default=None, nullable=True, min=1,
           help="input size for architectures that fix one (null: the architecture's)"),
)


def list_variants() -> list[str]:
    """Every architecture timm knows."""
    import timm

    return timm.list_models()


def _classifier_outputs(path: Path, name: str) -> int | None:
    """How many classes the checkpoint's classifier has (None if it cannot be told)."""
    import torch
    from timm.models import get_pretrained_cfg_value

    key = f"{get_pretrained_cfg_value(name, 'classifier') or 'fc'}.weight"
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return f.get_slice(key).get_shape()[0] if key in f.keys() else None
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        return None
    state = loaded.get("state_dict", loaded.get("model", loaded))
    return int(state[key].shape[0]) if isinstance(state, dict) and key in state else None


def _pretrained_kwargs(name: str, pretrained: Any, num_classes: int) -> dict[str, Any]:
    if pretrained in (False, None):
        return {"pretrained": False}
    if pretrained is True:
        return {"pretrained": True}
    if not isinstance(pretrained, str):
        raise UsageError(f"model timm:{name}: option 'pretrained' must be true, false or the "
                         f"path of a local weights file; got {pretrained!r}")
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise UsageError(f"timm:{name}.pretrained='{pretrained}': no such file; pass true (needs "
                         "network or timm's cache) or the path of a local weights file")
    overlay: dict[str, Any] = {"file": str(path)}
    if _classifier_outputs(path, name) == num_classes:  # a head for this dataset: keep it
        overlay["num_classes"] = num_classes
    return {"pretrained": True, "pretrained_cfg_overlay": overlay}


def build(model_input: ModelInput, variant: str | None, resolved: ResolvedOptions
          ) -> nn.Module:
    """Build ``timm:<variant>`` for ``model_input`` with the ``resolved`` options."""
    import timm
    from torch import nn

    from harness import Standardize

    if not variant:
        raise UsageError("model timm needs an architecture: timm:<name>, e.g. timm:resnet18")
    o = resolved
    if o.drop_rate >= 1:
        raise UsageError(f"model timm:{variant}: option 'drop_rate' must be below 1; got "
                         f"{o.drop_rate!r}")
    kwargs: dict[str, Any] = _pretrained_kwargs(variant, o.pretrained, model_input.num_classes)
    kwargs.update(num_classes=model_input.num_classes, in_chans=model_input.channels,
                  drop_rate=o.drop_rate)
    if o.img_size is not None:
        kwargs["img_size"] = o.img_size
    try:
        net = timm.create_model(variant, **kwargs)
    except Exception as exc:
        if kwargs["pretrained"]:
            raise HarnessError(
                f"pretrained weights for timm:{variant} could not be loaded "
                f"({type(exc).__name__}: {exc}). Offline, pass a local file: --model-opt "
                f"timm:{variant}.pretrained=/path/to/weights.safetensors") from exc
        raise
    mean, std = model_input.mean, model_input.std
    if kwargs["pretrained"]:
        cfg: Mapping[str, Any] = getattr(net, "pretrained_cfg", None) or {}
        if len(cfg.get("mean", ())) == model_input.channels:
            mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if mean is None or std is None:
        return net
    return nn.Sequential(Standardize(mean, std), net)


@hookimpl
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register the ``timm`` family."""
    register(ModelSpec(
        name="timm",
        description="Any timm architecture as timm:<name>, sized to the dataset; random init "
                    "unless pretrained weights are asked for",
        build=build,
        takes_variant=True,
        list_variants=list_variants,
        options=OPTIONS,
    ))
