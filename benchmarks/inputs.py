"""What the benchmarks build and share: a snapshot file and an evaluation set made with the package's
own stages, and the settings they run with."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from inductionheads import corpus, evalset, snapshots
from inductionheads.model import Transformer

PHASE = {
    "icl_smoothing": 3,
    "window_slope_fraction": 0.25,
    "window_valley_fraction": 0.5,
    "min_icl_drop": 0.05,
    "window_fraction": 0.5,
    "max_window_span": 0.5,
    "plateau_fraction": 0.25,
}
EVALUATION = {
    "n_contexts": 256,
    "context_length": 256,
    "icl_early": 50,
    "icl_late": 245,
    "icl_window": 10,
    "seed": 0,
}
HEAD_SCORES = {
    "n_sequences": 10,
    "repeat_length": 25,
    "n_repeats": 4,
    "exclude_frequency_fraction": 0.04,
    "seed": 0,
}
CORPUS = {
    "source": "stdlib",
    "max_documents": 120,
    "max_document_bytes": 40000,
    "heldout_fraction": 0.2,
    "vocab_size": 512,
    "seed": 0,
}


def make_inputs(root: Path, spec: dict, n_snapshots: int, vocab_size: int = 512) -> tuple[Path, Path]:
    """A snapshot file of `n_snapshots` random initialisations of `spec` and an evaluation set of
    contexts of the spec's context length; a BPE vocabulary above 512 is trained on the whole standard
    library (a slice of it has too few distinct merges)."""
    tokens = root / "tokens.h5"
    settings = {**CORPUS, "vocab_size": vocab_size}
    if vocab_size > CORPUS["vocab_size"]:
        del settings["max_documents"], settings["max_document_bytes"]
    corpus.build(tokens, root / "tokenizer.json", settings)
    with h5py.File(tokens, "r") as f:
        vocab = int(f.attrs["vocab_size"])
    T = spec["context_length"]
    evaluation = {**EVALUATION, "context_length": T, "icl_late": T - 1 - EVALUATION["icl_window"]}
    evalset.build(tokens, root / "evalset.h5", {"evaluation": evaluation, "head_scores": HEAD_SCORES})

    def state(i):
        torch.manual_seed(i)  # random output projections too: every head has an output to measure
        return Transformer({**spec, "output_init": "normal"}, vocab).state_dict()

    steps = np.arange(n_snapshots) * 100
    snapshots.write(root / "snapshots.h5", spec, vocab, steps, 4096, np.zeros(1), state)
    return root / "snapshots.h5", root / "evalset.h5"
