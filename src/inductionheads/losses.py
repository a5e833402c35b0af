"""Per-token losses of every snapshot on the fixed held-out contexts, and the in-context learning score.

Stored per model (methods.md §4): the full loss matrix [snapshot, example, i] (float16, gzip), its
mean over examples [snapshot, i] and the random-token vector [snapshot, example] (float32), and the
ICL score with its standard error [snapshot]. Column i-1 holds L_i, the loss of token i.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from . import h5io
from .model import Transformer, per_token_losses
from .snapshots import SnapshotReader

STAGE = "losses"
log = logging.getLogger(__name__)


@torch.no_grad()
def context_losses(model: Transformer, contexts: torch.Tensor, batch_size: int) -> np.ndarray:
    """[example, T-1] per-token losses, float32."""
    out = [per_token_losses(model(chunk), chunk) for chunk in contexts.split(batch_size)]
    return torch.cat(out).numpy()


def icl_score(losses: np.ndarray, early: int, late: int, window: int = 0) -> tuple[float, float]:
    """Mean over examples of L_late - L_early, and its standard error. `losses` is [example, T-1].

    With `window` > 0, L_early and L_late are each example's mean loss over tokens early ± window and
    late ± window: the same quantity with far less variance per example (window 0 is the paper's).
    """
    lo, hi = early - 1 - window, late - 1 + window
    if lo < 0 or hi >= losses.shape[1]:
        raise ValueError(f"ICL tokens {early} and {late} ± {window} fall outside 1..{losses.shape[1]}")
    width = 2 * window + 1
    early_loss = losses[:, lo : lo + width].astype(np.float64).mean(1)
    late_loss = losses[:, hi - width + 1 : hi + 1].astype(np.float64).mean(1)
    diff = late_loss - early_loss
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def dloss_dlog_index(mean_loss: np.ndarray, n_bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """d Loss / d ln(i) of context-index-averaged losses [..., T-1].

    Losses are averaged in log-spaced bins of i (single indices are noisy), then differentiated
    against the mean ln(i) of each bin. Returns (bin centres in i, derivative [..., bins]).
    """
    n = mean_loss.shape[-1]
    index = np.arange(1, n + 1)
    edges = np.unique(np.round(np.geomspace(1, n + 1, n_bins + 1)).astype(int))
    binned, centres = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        binned.append(mean_loss[..., lo - 1 : hi - 1].mean(-1))
        centres.append(np.log(index[lo - 1 : hi - 1]).mean())
    binned, centres = np.stack(binned, -1), np.array(centres)
    return np.exp(centres), np.gradient(binned, centres, axis=-1)


def run(
    snapshots_path: str | Path,
    evalset_path: str | Path,
    out_path: str | Path,
    batch_size: int,
    threads: int = 1,
) -> None:
    torch.set_num_threads(threads)
    with h5io.open_input(evalset_path, "evalset") as f:
        contexts = torch.from_numpy(h5io.read(f, "contexts"))
        random_index = h5io.read(f, "random_index")
        early, late = int(f.attrs["icl_early"]), int(f.attrs["icl_late"])
        window = int(f.attrs["icl_window"])
        eval_hash = str(f.attrs["config_hash"])
    with SnapshotReader(snapshots_path) as snaps:
        if int(contexts.max()) >= snaps.vocab_size:
            raise ValueError(f"{evalset_path}: token ids exceed the vocabulary of {snapshots_path}")
        S, (N, T) = len(snaps), contexts.shape
        with h5io.atomic_writer(
            out_path,
            STAGE,
            snaps.config_hash,
            evalset_hash=eval_hash,
            icl_early=early,
            icl_late=late,
            model=snaps.spec["name"],
        ) as f:
            h5io.write(f, "steps", snaps.steps, ("snapshot",), units="optimizer steps")
            h5io.write(f, "tokens_seen", snaps.tokens_seen, ("snapshot",), units="tokens")
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
            for s, (step, model) in enumerate(snaps):
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
