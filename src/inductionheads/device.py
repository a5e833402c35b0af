"""Where a job runs: every job picks its own device, so the same rule runs on a CPU laptop and on a GPU
node of a cluster without a setting.

Training on a GPU runs under bfloat16 autocast and `torch.compile` by default (both pay off only there:
on CPU, bfloat16 matmuls are slower and compiling costs more than it saves at these sizes); a model's
`precision` setting overrides the arithmetic on any device. Measurements stay in float32 on every
device: ablation effects are differences of a few hundredths of a nat, which bfloat16's three
significant digits would drown.
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


PRECISIONS = ("auto", "float32", "bfloat16")


def training_precision(device: torch.device, requested: str = "auto") -> str:
    """The arithmetic training runs in: `requested`, or for `auto` bfloat16 on CUDA and float32 on CPU
    (where bfloat16 matmuls are slower, and no faster anywhere without bfloat16 instructions)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision '{requested}' is not one of {PRECISIONS}")
    if requested == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    return requested


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for `precision` bfloat16 (parameters and optimizer state stay float32), on CUDA
    or CPU alike, so a GPU run's numerics can be reproduced on a CPU; nothing for float32."""
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`torch.compile`d on CUDA (the parameters are shared with `model`); `model` itself on CPU."""
    return torch.compile(model) if device.type == "cuda" else model
