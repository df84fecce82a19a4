"""Choosing the run's device, naming it, synchronizing before timing GPU work, and the GPU
speed options (mixed precision, cuDNN's autotuner)."""

from __future__ import annotations

import platform
from typing import Any

import torch

from harness.util.errors import UsageError


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise UsageError(f"invalid --device '{spec}': use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for, but torch sees no CUDA device "
                             "(use --device auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible")
    elif device.type != "cpu":
        raise UsageError(f"unsupported --device '{spec}': use auto, cpu, cuda or cuda:N")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after this measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """A human name for the hardware: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


AMP_TORCH_DTYPES = {"bf16": torch.bfloat16}


def autocast_forward(model: torch.nn.Module, amp: str, device: torch.device) -> torch.nn.Module:
    """``model`` computing its forward pass under ``torch.autocast`` in ``amp`` precision
    (``"bf16"``) on ``device``'s type, its floating-point output cast back to float32 (losses,
    predictions and attacks see float32 logits; gradients flow through the cast).

    Done with forward hooks, so the model keeps its class, parameter names and state dict
    (cached weights load as they are) and every caller (training, the harness's attacks,
    ART's) gets mixed precision without knowing of it. Returns ``model``."""
    dtype = AMP_TORCH_DTYPES[amp]
    open_contexts: list[Any] = []

    def enter(_module: torch.nn.Module, _args: Any) -> None:
        context = torch.autocast(device.type, dtype=dtype)
        context.__enter__()
        open_contexts.append(context)

    def leave(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
        open_contexts.pop().__exit__(None, None, None)
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            return output.float()
        return output

    model.register_forward_pre_hook(enter)
    model.register_forward_hook(leave, always_call=True)
    return model


def use_cudnn_benchmark(device: torch.device, enabled: bool) -> None:
    """Let cuDNN time its convolution algorithms and keep the fastest per input shape
    (``--cudnn-benchmark``; only on CUDA). The chosen algorithms may differ between runs, so
    the numbers may differ in their last digits: the option is part of the cache keys."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = enabled
