"""How much of the held-out evaluation text the training text already holds, and how much of it repeats
inside its own context (docs/methods.md §4).

Held-out documents are split from training by file, but a corpus whose files copy one another (a
library of model files written from one template) puts the held-out text in the training text anyway.
A model can then predict it from memory, in its weights, and in-context learning buys little: such a
corpus tests memorization. The report shows both fractions so a reader can tell.

n-grams are compared by a 64-bit polynomial hash: the expected number of false matches is held-out
n-grams × training n-grams / 2^64, under 0.01 at the paper's scale. The training tokens are scanned in
chunks against the held-out n-grams, so memory grows with the evaluation set, not the corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import h5io
from .config import digest

STAGE = "overlap"
NGRAM_LENGTHS = (2, 8, 16)  # a bigram (an induction head's cue), a line's worth, a longer copy
_BASE = np.uint64(0x100000001B3)
_CHUNK = 1 << 24  # training tokens hashed at a time


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """The hash of every n-gram of a 1-d token array, in order: [len - n + 1] uint64."""
    t = np.asarray(tokens).astype(np.uint64)
    count = len(t) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    h = np.zeros(count, np.uint64)
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64 is the hash
        for k in range(n):
            h = h * _BASE + t[k : k + count]
    return h


def found_in_training(training: np.ndarray, contexts: np.ndarray, n: int) -> float:
    """Fraction of the contexts' n-grams (every window of n tokens, counted with multiplicity) that
    occur anywhere in the training tokens."""
    ends = np.concatenate([ngram_hashes(c, n) for c in contexts])
    if len(ends) == 0:
        return float("nan")
    wanted = np.unique(ends)
    seen = np.zeros(len(wanted), bool)
    for start in range(0, max(len(training) - n + 1, 0), _CHUNK):
        h = ngram_hashes(training[start : start + _CHUNK + n - 1], n)
        at = np.minimum(np.searchsorted(wanted, h), len(wanted) - 1)
        seen[at[wanted[at] == h]] = True
    return float(seen[np.searchsorted(wanted, ends)].mean())


def repeated_in_context(contexts: np.ndarray, n: int) -> float:
    """Fraction of the contexts' n-grams that occurred earlier in the same context: what an induction
    head can copy."""
    repeats = total = 0
    for c in contexts:
        h = ngram_hashes(c, n)
        _, first = np.unique(h, return_index=True)
        repeats += len(h) - len(first)
        total += len(h)
    return repeats / total if total else float("nan")


def run(tokens: str | Path, evalset: str | Path, overlap: str | Path) -> None:
    """Both fractions for the evaluation contexts, at each n of `NGRAM_LENGTHS`."""
    with h5io.open_input(evalset, "evalset") as f:
        contexts = h5io.read(f, "contexts")
        evalset_hash = str(f.attrs["config_hash"])
    with h5io.open_input(tokens, "corpus") as f:
        training = h5io.read(f, "train")
        tokens_hash = str(f.attrs["config_hash"])
    lengths = np.asarray(NGRAM_LENGTHS, np.int64)
    in_training = [found_in_training(training, contexts, int(n)) for n in lengths]
    in_context = [repeated_in_context(contexts, int(n)) for n in lengths]
    source = digest({"tokens": tokens_hash, "evalset": evalset_hash})  # both inputs it reads
    with h5io.atomic_writer(overlap, STAGE, source, training_tokens=len(training)) as f:
        h5io.write(f, "ngram_length", lengths, ("n",), units="tokens")
        h5io.write(f, "found_in_training", np.asarray(in_training), ("n",), units="fraction of n-grams")
        h5io.write(f, "repeated_in_context", np.asarray(in_context), ("n",), units="fraction of n-grams")


def read(path: str | Path) -> dict[int, dict[str, float]]:
    """{n: {"found_in_training": ..., "repeated_in_context": ...}}."""
    with h5io.open_input(path, STAGE) as f:
        lengths = h5io.read(f, "ngram_length")
        found, repeated = h5io.read(f, "found_in_training"), h5io.read(f, "repeated_in_context")
    return {
        int(n): {"found_in_training": float(a), "repeated_in_context": float(b)}
        for n, a, b in zip(lengths, found, repeated, strict=True)
    }
