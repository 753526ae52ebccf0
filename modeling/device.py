"""Which device and precision a phase runs on.

We use ``torch.autocast`` directly instead of ``accelerate.Accelerator``: the Accelerator keeps
process-wide state whose mixed-precision setting cannot change between phases of one process
(a bf16 teacher pass, then an fp32 benchmark), and autocast is the two lines we need from it.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["pick_device", "bf16_supported", "autocast", "device_kind"]


def pick_device(device: str = "auto") -> torch.device:
    """``'auto'`` picks CUDA, then Apple MPS, then CPU; anything else is passed to ``torch.device``."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_kind(device: torch.device) -> str:
    """A short name for pricing: ``'cpu'``, ``'mps'`` or the CUDA device name (``'NVIDIA H100 80GB HBM3'``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def bf16_supported(device: torch.device) -> bool:
    """True when bf16 autocast runs natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` in {'auto', 'bf16', 'fp32'}; 'auto' means bf16 where supported."""
    if precision not in {"auto", "bf16", "fp32"}:
        raise ValueError(f"The 'precision' parameter must be one of 'auto', 'bf16', 'fp32'. Got {precision!r} instead.")
    use_bf16 = precision == "bf16" or (precision == "auto" and bf16_supported(device))
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
