"""Per-token losses of every snapshot on the fixed held-out contexts, and the in-context learning score.

Stored per model (docs/methods.md §4): the full loss matrix [snapshot, example, i] (float16, gzip), its
mean over examples [snapshot, i] and the random-token vector [snapshot, example] (float32), and the
ICL score with its standard error [snapshot]. Column i-1 holds L_i, the loss of token i.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import h5io
from .icl import icl_score
from .model import Transformer, per_token_losses
from .snapshots import ShardedJob

STAGE = "losses"
log = logging.getLogger(__name__)


@torch.no_grad()
def context_losses(model: Transformer, contexts: torch.Tensor, batch_size: int) -> np.ndarray:
    """[example, T-1] per-token losses, float32 (computed on the model's device)."""
    device = model.W_E.device
    out = [per_token_losses(model(chunk), chunk).cpu() for chunk in contexts.to(device).split(batch_size)]
    return torch.cat(out).numpy()


def run(
    snapshots: str | Path,
    evalset: str | Path,
    losses: str | Path,
    settings: dict[str, Any],
    *,
    threads: int = 1,
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
) -> None:
    """Losses of the snapshots of `shard` (index, count) on `device` (auto: CUDA when present), in
    batches of settings["batch_size"] contexts."""
    with ShardedJob(snapshots, shard, threads, device) as job, h5io.open_input(evalset, "evalset") as f:
        contexts = torch.from_numpy(h5io.read(f, "contexts"))
        random_index = h5io.read(f, "random_index")
        early, late, window = (int(f.attrs[k]) for k in ("icl_early", "icl_late", "icl_window"))
        eval_hash = str(f.attrs["config_hash"])
        snaps, todo = job.snaps, job.todo
        if int(contexts.max()) >= snaps.vocab_size:
            raise ValueError(f"{evalset}: token ids exceed the vocabulary of {snapshots}")
        S, (N, T) = len(todo), contexts.shape
        with job.writer(losses, STAGE, eval_hash, icl_early=early, icl_late=late, icl_window=window) as out:
            h5io.write(out, "steps", snaps.steps[todo], ("snapshot",), units="optimizer steps")
            h5io.write(out, "tokens_seen", snaps.tokens_seen[todo], ("snapshot",), units="tokens")
            full = out.create_dataset(
                "per_token_loss",
                shape=(S, N, T - 1),
                dtype="float16",
                chunks=(1, N, T - 1),
                compression="gzip",
                shuffle=True,
            )
            full.attrs["axes"] = '["snapshot", "example", "context_index_minus_1"]'
            full.attrs["units"] = "nats"
            mean = np.zeros((S, T - 1), np.float32)
            random_token = np.zeros((S, N), np.float32)
            icl = np.zeros((S, 2), np.float64)
            for s, (step, model) in enumerate(snaps.iterate(todo, job.device)):
                measured = context_losses(model, contexts, settings["batch_size"])
                full[s] = measured.astype(np.float16)
                mean[s] = measured.mean(0)
                random_token[s] = measured[np.arange(N), random_index - 1]
                icl[s] = icl_score(measured, early, late, window)
                log.info("step %d: loss %.4f, ICL %.4f ± %.4f", step, mean[s].mean(), *icl[s])
            h5io.write(out, "mean_loss", mean, ("snapshot", "context_index_minus_1"), units="nats")
            h5io.write(out, "random_token_loss", random_token, ("snapshot", "example"), units="nats")
            h5io.write(out, "icl_score", icl[:, 0], ("snapshot",), units="nats")
            h5io.write(out, "icl_score_se", icl[:, 1], ("snapshot",), units="nats")
