"""Where to run and in which precision: one small helper shared by training and evaluation.

Mixed precision (Micikevicius et al., "Mixed Precision Training", ICLR 2018) runs the
network's matrix products in 16-bit floats. Two 16-bit formats exist:

* **bf16** keeps float32's exponent range, so it needs no loss scaling; GPUs from NVIDIA's
  Ampere generation on (A100, RTX 30xx, L4, H100: compute capability 8.0 and up) run it
  natively. Older GPUs (Colab's T4 is 7.5) can only *emulate* it, slowly, although
  ``torch.cuda.is_bf16_supported()`` still says yes.
* **fp16** runs natively on every CUDA GPU from Volta on, but its small range needs a
  ``GradScaler`` during training.

:func:`autocast_dtype` therefore picks bf16 only where the GPU has it natively, else fp16.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from .config import PRECISIONS


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for CUDA without a GPU fails.

    Raises:
        ValueError: ``cuda`` was asked for on a machine without a CUDA GPU.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA GPU is available; "
                         "use --device cpu (or auto)")
    return device


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` is a CUDA GPU that runs bf16 natively (compute capability >= 8)."""
    if device.type != "cuda":
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means float32.

    ``auto`` is float32 on the CPU, bf16 on GPUs with native bf16 and fp16 (with a
    ``GradScaler`` when training) on older GPUs such as the T4.

    Raises:
        ValueError: unknown precision, or fp16 on a CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA GPU; use fp32 or bf16 on the CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without any)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``; does nothing when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
