"""Where a job runs: every job picks its own device, so the same rule runs on a CPU laptop and on a GPU
node of a cluster without a setting.

Training on a GPU runs under bfloat16 autocast and `torch.compile` (both pay off only there: on CPU,
bfloat16 matmuls are slower and compiling costs more than it saves at these sizes). Measurements stay
in float32 on every device: ablation effects are differences of a few hundredths of a nat, which
bfloat16's three significant digits would drown.
"""

from __future__ import annotations

import contextlib

import torch

CHOICES = ("auto", "cpu", "cuda")


def pick(requested: str | None = "auto") -> torch.device:
    """CUDA when present (for `auto`), else CPU; asking for CUDA where there is none is an error."""
    requested = requested or "auto"
    if requested not in CHOICES:
        raise ValueError(f"device '{requested}' is not one of {CHOICES}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for, but torch sees no CUDA device on this node")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def training_precision(device: torch.device) -> str:
    return "bfloat16" if device.type == "cuda" else "float32"


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (parameters and optimizer state stay float32); nothing on CPU."""
    if training_precision(device) == "bfloat16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`torch.compile`d on CUDA (the parameters are shared with `model`); `model` itself on CPU."""
    return torch.compile(model) if device.type == "cuda" else model
