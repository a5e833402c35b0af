"""The training loop: AdamW, linear warmup then constant or cosine LR, snapshots at linear intervals.

One seed fixes the initialisation and the data order. Batches are random windows of the training
token stream (documents separated by BOS).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import device as devices
from . import h5io
from . import snapshots as snapshot_file
from .config import OPTIONAL_MODEL_SETTINGS, digest
from .cross_entropy import mean_next_token_loss
from .model import Transformer, per_token_losses
from .schedule import snapshot_steps

log = logging.getLogger(__name__)


def lr_at(step: int, spec: dict[str, Any]) -> float:
    """Learning rate for optimizer step `step` (0-based)."""
    lr, warmup, total = spec["lr"], spec["warmup_steps"], spec["steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if spec["lr_schedule"] == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


def batch_starts(n_tokens: int, context: int, batch: int, steps: int, seed: int) -> np.ndarray:
    """Start offsets of every training window, [steps, batch], fixed by the seed."""
    if n_tokens <= context:
        raise ValueError(f"training split has {n_tokens} tokens, fewer than one context of {context}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_tokens - context + 1, size=(steps, batch))


def make_optimizer(model: Transformer, spec: dict[str, Any]) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorm weights or alpha_smear)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": spec["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec["lr"])


def training_loss(model: Transformer, device: torch.device, loss_chunk_tokens: int | None = None):
    """The function batch [B, T] -> mean next-token loss that training minimizes, compiled on CUDA.

    By default the measurement stages' exact float32 per-token losses, averaged. With
    `loss_chunk_tokens`, the unembedding and cross-entropy run fused, that many tokens at a time
    (cross_entropy.py): the same loss up to float rounding, without float32 log-probabilities over the
    vocabulary for the whole batch (gigabytes at the paper's vocabulary)."""
    if loss_chunk_tokens is None:
        forward = devices.compiled(model, device)
        return lambda batch: per_token_losses(forward(batch), batch).mean()
    hidden = devices.compiled(model.hidden, device)
    return lambda batch: mean_next_token_loss(hidden(batch), model.W_U, model.b_U, batch, loss_chunk_tokens)


def train_step(
    model: Transformer,
    loss_of,
    opt: torch.optim.Optimizer,
    batch: torch.Tensor,
    lr: float,
    grad_clip: float,
    precision: str = "float32",
    micro_batch_size: int | None = None,
) -> torch.Tensor:
    """One optimizer step on `batch` [B, T]; `loss_of` is the model's `training_loss`, `precision`
    float32 or bfloat16 (autocast). With `micro_batch_size` below B the gradient is accumulated over
    micro-batches of that many sequences, each loss weighted by its share of the batch, so the update is
    the one-batch update (up to float rounding) in the memory of one micro-batch. Returns the mean
    training loss; a non-finite loss is returned before any update, leaving the model as it was."""
    for group in opt.param_groups:
        group["lr"] = lr
    parts = batch.split(micro_batch_size or len(batch))
    opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=batch.device)
    for part in parts:
        with devices.autocast(batch.device, precision):
            loss = loss_of(part)
        if len(parts) > 1:
            loss = loss * (len(part) / len(batch))
        if not torch.isfinite(loss):
            opt.zero_grad(set_to_none=True)
            return loss.detach()
        loss.backward()
        total += loss.detach()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return total


class Checkpoints:
    """Resume state beside the output (`<out>.resume/`), which Snakemake never deletes: one file per
    snapshot taken so far and, with the newest, the optimizer state and the loss curve, so a killed
    job continues from its last snapshot. Files are written under a temporary name and renamed.

    Files on disk are untrusted: the run's fingerprint is compared (as text) before any state is
    loaded, and states load with `weights_only=True`, which unpickles tensors and plain containers only,
    never code."""

    def __init__(self, out_path: Path, fingerprint: str):
        self.dir = out_path.with_name(out_path.name + ".resume")
        self.fingerprint = fingerprint

    def _save(self, obj: Any, name: str) -> None:
        with h5io.atomic_path(self.dir / name) as tmp:
            try:
                torch.save(obj, tmp)
            except (OSError, RuntimeError) as exc:  # a full disk: torch reports only a stream error
                written = tmp.stat().st_size if tmp.exists() else 0
                raise h5io.write_failure(self.dir / name, exc, written, _nbytes(obj)) from exc

    def save(self, index: int, step: int, model, opt, losses: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
        self._save(weights, f"snapshot_{index:05d}.pt")
        state = {
            "index": index,
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "losses": torch.from_numpy(losses[:step].copy()),
        }
        self._save(state, "state.pt")
        with h5io.atomic_path(self.dir / "fingerprint") as tmp:
            tmp.write_text(self.fingerprint)

    def load(self) -> dict | None:
        """The newest resume state if it belongs to this training run, else None (and a fresh start)."""
        path = self.dir / "state.pt"
        if not path.exists():
            return None
        marker = self.dir / "fingerprint"
        if not marker.is_file() or marker.read_text() != self.fingerprint:
            log.info("resume state %s belongs to other settings: starting over", path)
            return None
        try:
            state = torch.load(path, weights_only=True)
            state["losses"] = state["losses"].numpy()
        except Exception as exc:  # cut short, or not a plain state: cannot be trusted
            log.warning("ignoring unreadable resume state %s (%s): starting over", path, exc)
            return None
        return state

    def snapshot(self, index: int) -> dict[str, torch.Tensor]:
        return torch.load(self.dir / f"snapshot_{index:05d}.pt", weights_only=True)

    def clear(self) -> None:
        if self.dir.exists():
            for f in self.dir.iterdir():
                f.unlink()
            self.dir.rmdir()


def _nbytes(obj: Any) -> int:
    """Bytes of the tensors in a nested state."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_nbytes(v) for v in obj)
    return 0


def train(
    tokens: str | Path,
    snapshots: str | Path,
    settings: dict[str, Any],
    *,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
) -> None:
    """Train one model (`settings`: its spec, config.run_spec) and write its snapshot file (weights at
    every snapshot step, loss curve).

    `device`: auto (CUDA when present), cpu or cuda; compiled on CUDA. The arithmetic is the spec's
    `precision` (auto: bfloat16 autocast on CUDA, float32 on CPU), recorded in the snapshot file.
    Resumes from `<snapshots>.resume/` when an earlier run of the same settings was interrupted; the
    result is bit-identical to an uninterrupted run on CPU (the data order depends only on the seed).
    """
    torch.set_num_threads(threads)
    device = devices.pick(device)
    spec, out_path = settings, Path(snapshots)
    precision = devices.training_precision(device, spec.get("precision", "auto"))
    with h5io.open_input(tokens, "corpus") as f:
        stream = h5io.read(f, "train")  # stored uint16/int32: int64 only per batch (paper scale: GBs)
        vocab = int(f.attrs["vocab_size"])
        tokens_fingerprint = str(f.attrs["integrity"])
    torch.manual_seed(spec["seed"])
    model = Transformer(spec, vocab).to(device)
    loss_chunk_tokens = spec.get("loss_chunk_tokens", OPTIONAL_MODEL_SETTINGS["loss_chunk_tokens"])
    loss_of = training_loss(model, device, loss_chunk_tokens)
    opt = make_optimizer(model, spec)
    T, B, n_steps = spec["context_length"], spec["batch_size"], spec["steps"]
    starts = batch_starts(len(stream), T, B, n_steps, spec["seed"])
    offsets = np.arange(T)
    snap_steps = snapshot_steps(n_steps, spec["n_snapshots"], spec.get("log_snapshots", 0))
    losses = np.zeros(n_steps, dtype=np.float32)
    divergence_ratio = spec.get("divergence_ratio", OPTIONAL_MODEL_SETTINGS["divergence_ratio"])
    micro_batch_size = spec.get("micro_batch_size", OPTIONAL_MODEL_SETTINGS["micro_batch_size"])

    run = {"spec": spec, "tokens": tokens_fingerprint, "device": device.type, "precision": precision}
    checkpoints = Checkpoints(out_path, digest(run))
    state = checkpoints.load()
    if state is None:
        checkpoints.clear()
        checkpoints.save(0, 0, model, opt, losses)
        first_step, next_snap = 0, 1
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        first_step, next_snap = state["step"], state["index"] + 1
        losses[:first_step] = state["losses"]
        log.info("resuming %s from step %d (snapshot %d)", spec["name"], first_step, state["index"])

    t0 = time.perf_counter()
    bar = tqdm(
        total=n_steps,
        initial=first_step,
        desc=f"train {spec['name']}",
        file=sys.stderr,
        disable=not progress,
        mininterval=2.0,
        unit="step",
    )
    model.train()
    for step in range(first_step, n_steps):
        batch = torch.from_numpy(stream[starts[step, :, None] + offsets].astype(np.int64)).to(device)
        loss = train_step(
            model, loss_of, opt, batch, lr_at(step, spec), spec["grad_clip"], precision, micro_batch_size
        )
        losses[step] = loss.item()
        limit = divergence_ratio * losses[0]
        if not np.isfinite(losses[step]) or losses[step] > limit:
            kept = snap_steps[next_snap - 1]
            what = (
                f"above {limit:.3f} (divergence_ratio x the first step's loss): the run diverged"
                if np.isfinite(losses[step])
                else "not a number"
            )
            raise FloatingPointError(
                f"model {spec['name']}: training loss is {losses[step]:.6g} at step {step}, {what}; stopped. "
                "Lower the config key lr, or raise divergence_ratio. The last good snapshot "
                f"(step {kept}) and the snapshots before it are kept in {checkpoints.dir}"
            )
        if next_snap < len(snap_steps) and step + 1 == snap_steps[next_snap]:
            checkpoints.save(next_snap, step + 1, model, opt, losses)
            next_snap += 1
            log.info(
                "step %d/%d loss %.4f (%.1f steps/s)",
                step + 1,
                n_steps,
                losses[step],
                (step + 1 - first_step) / (time.perf_counter() - t0),
            )
        bar.update(1)
        bar.set_postfix(loss=f"{losses[step]:.3f}", refresh=False)
    bar.close()

    snapshot_file.write(
        out_path,
        spec,
        vocab,
        snap_steps,
        B * T,
        losses,
        checkpoints.snapshot,
        device=device.type,
        precision=precision,
    )
    checkpoints.clear()
    log.info(
        "trained %s: %d steps (%d in this run) in %.0f s, final loss %.4f",
        spec["name"],
        n_steps,
        n_steps - first_step,
        time.perf_counter() - t0,
        losses[-5:].mean(),
    )
