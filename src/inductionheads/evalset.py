"""The fixed measurement inputs of an experiment, shared by every snapshot of every model.

- `contexts` [example, position]: held-out windows for per-token losses (docs/methods.md §4), with one
  fixed random context index per example (`random_index`) for the random-token loss vector;
- `repeated` [sequence, position]: BOS + r repeated n times, r random tokens (docs/methods.md §5), drawn
  from the vocabulary minus BOS and the most and least frequent training tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import h5io
from .config import digest

STAGE = "evalset"


def allowed_random_tokens(counts: np.ndarray, exclude_fraction: float, bos_id: int = 0) -> np.ndarray:
    """Token ids ranked by training frequency, minus the top and bottom `exclude_fraction`, minus BOS."""
    order = np.argsort(-counts, kind="stable")
    order = order[order != bos_id]
    cut = int(round(len(order) * exclude_fraction))
    kept = order[cut : len(order) - cut]
    return np.sort(kept)


def repeated_sequences(
    allowed: np.ndarray, n_sequences: int, repeat_length: int, n_repeats: int, seed: int, bos_id: int = 0
) -> np.ndarray:
    """BOS + r * n_repeats; r drawn without replacement, so a token's offset in r is unique."""
    if len(allowed) < repeat_length:
        raise ValueError(f"only {len(allowed)} tokens remain after the frequency cut; need {repeat_length}")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_sequences):
        r = rng.choice(allowed, size=repeat_length, replace=False)
        rows.append(np.concatenate([[bos_id], np.tile(r, n_repeats)]))
    return np.stack(rows).astype(np.int64)


def heldout_contexts(heldout: np.ndarray, n_contexts: int, length: int, seed: int) -> np.ndarray:
    if len(heldout) < length:
        raise ValueError(f"held-out split has {len(heldout)} tokens, fewer than one context of {length}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(heldout) - length + 1, size=n_contexts)
    return np.stack([heldout[s : s + length] for s in starts]).astype(np.int64)


def build(tokens: str | Path, evalset: str | Path, settings: dict[str, Any]) -> None:
    """The held-out contexts and random-token vector (settings["evaluation"]) and the repeated
    random sequences (settings["head_scores"])."""
    evaluation, heads = settings["evaluation"], settings["head_scores"]
    with h5io.open_input(tokens, "corpus") as f:
        heldout = h5io.read(f, "heldout").astype(np.int64)
        counts = h5io.read(f, "train_token_counts")
        vocab = int(f.attrs["vocab_size"])
        bos_id = int(f.attrs["bos_id"])
    T, N = evaluation["context_length"], evaluation["n_contexts"]
    contexts = heldout_contexts(heldout, N, T, evaluation["seed"])
    rng = np.random.default_rng(evaluation["seed"] + 1)
    random_index = rng.integers(1, T, size=N)  # a 1-based context index i: the loss of token i
    allowed = allowed_random_tokens(counts, heads["exclude_frequency_fraction"], bos_id)
    repeated = repeated_sequences(
        allowed, heads["n_sequences"], heads["repeat_length"], heads["n_repeats"], heads["seed"], bos_id
    )
    with h5io.atomic_writer(
        evalset,
        STAGE,
        digest(settings),
        vocab_size=vocab,
        bos_id=bos_id,
        repeat_length=heads["repeat_length"],
        n_repeats=heads["n_repeats"],
        icl_early=evaluation["icl_early"],
        icl_late=evaluation["icl_late"],
        icl_window=evaluation["icl_window"],
    ) as f:
        h5io.write(f, "contexts", contexts, ("example", "position"), units="token id")
        h5io.write(f, "random_index", random_index, ("example",), units="context index i (1-based)")
        h5io.write(f, "repeated", repeated, ("sequence", "position"), units="token id")
        h5io.write(f, "allowed_tokens", allowed, ("token",), units="token id")
