"""Per-token losses of every snapshot on the fixed held-out contexts, and the in-context learning score.

Stored per model (docs/methods.md §4): the full loss matrix [snapshot, example, i] (float16, gzip), its
mean over examples [snapshot, i] and the random-token vector [snapshot, example] (float32), and the
ICL score with its standard error [snapshot]. Column i-1 holds L_i, the loss of token i.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from . import device as devices
from . import h5io
from .icl import icl_score
from .model import Transformer, per_token_losses
from .snapshots import SnapshotReader, shard_positions

STAGE = "losses"
log = logging.getLogger(__name__)


@torch.no_grad()
def context_losses(model: Transformer, contexts: torch.Tensor, batch_size: int) -> np.ndarray:
    """[example, T-1] per-token losses, float32 (computed on the model's device)."""
    device = model.W_E.device
    out = [per_token_losses(model(chunk), chunk).cpu() for chunk in contexts.to(device).split(batch_size)]
    return torch.cat(out).numpy()


def run(
    snapshots_path: str | Path,
    evalset_path: str | Path,
    out_path: str | Path,
    batch_size: int,
    threads: int = 1,
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
) -> None:
    """Losses of the snapshots of `shard` (index, count) on `device` (auto: CUDA when present)."""
    torch.set_num_threads(threads)
    device = devices.pick(device)
    with h5io.open_input(evalset_path, "evalset") as f:
        contexts = torch.from_numpy(h5io.read(f, "contexts"))
        random_index = h5io.read(f, "random_index")
        early, late = int(f.attrs["icl_early"]), int(f.attrs["icl_late"])
        window = int(f.attrs["icl_window"])
        eval_hash = str(f.attrs["config_hash"])
    with SnapshotReader(snapshots_path) as snaps:
        if int(contexts.max()) >= snaps.vocab_size:
            raise ValueError(f"{evalset_path}: token ids exceed the vocabulary of {snapshots_path}")
        todo = shard_positions(np.arange(len(snaps)), shard, str(snapshots_path))
        S, (N, T) = len(todo), contexts.shape
        with h5io.atomic_writer(
            out_path,
            STAGE,
            snaps.config_hash,
            evalset_hash=eval_hash,
            icl_early=early,
            icl_late=late,
            model=snaps.spec["name"],
            seed=snaps.seed,
            shard=h5io.shard_label(*shard),
        ) as f:
            h5io.write(f, "steps", snaps.steps[todo], ("snapshot",), units="optimizer steps")
            h5io.write(f, "tokens_seen", snaps.tokens_seen[todo], ("snapshot",), units="tokens")
            full = f.create_dataset(
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
            for s, (step, model) in enumerate(snaps.iterate(todo, device)):
                losses = context_losses(model, contexts, batch_size)
                full[s] = losses.astype(np.float16)
                mean[s] = losses.mean(0)
                random_token[s] = losses[np.arange(N), random_index - 1]
                icl[s] = icl_score(losses, early, late, window)
                log.info("step %d: loss %.4f, ICL %.4f ± %.4f", step, mean[s].mean(), *icl[s])
            h5io.write(f, "mean_loss", mean, ("snapshot", "context_index_minus_1"), units="nats")
            h5io.write(f, "random_token_loss", random_token, ("snapshot", "example"), units="nats")
            h5io.write(f, "icl_score", icl[:, 0], ("snapshot",), units="nats")
            h5io.write(f, "icl_score_se", icl[:, 1], ("snapshot",), units="nats")
