"""The per-token-loss stage streams snapshots: its peak memory does not grow with the snapshot count."""

import json
import tracemalloc

import numpy as np
import torch

from inductionheads import h5io, losses
from inductionheads.model import Transformer

SPEC = dict(name="mem", family="attention-only", n_layers=1, d_model=64, n_heads=2, context_length=32)
VOCAB = 2000  # W_E and W_U: 1 MB per snapshot, so holding all snapshots would show


def snapshot_file(path, n_snapshots):
    state = Transformer(SPEC, VOCAB).state_dict()
    with h5io.atomic_writer(path, "train", "x", spec=SPEC, vocab_size=VOCAB, tokens_per_step=1) as f:
        h5io.write(f, "steps", np.arange(n_snapshots), ("snapshot",))
        h5io.write(f, "tokens_seen", np.arange(n_snapshots), ("snapshot",))
        h5io.write(f, "train_loss", np.zeros(n_snapshots), ("step",))
        for name, tensor in state.items():
            stacked = np.broadcast_to(tensor.numpy(), (n_snapshots, *tensor.shape))
            h5io.write(f, f"params/{name}", stacked, ("snapshot",) + ("x",) * tensor.dim())


def peak_bytes(tmp_path, n_snapshots):
    snaps = tmp_path / f"s{n_snapshots}.h5"
    snapshot_file(snaps, n_snapshots)
    tracemalloc.start()
    losses.run(snaps, tmp_path / "evalset.h5", tmp_path / f"l{n_snapshots}.h5", {"batch_size": 8})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_peak_memory_does_not_grow_with_snapshots(tmp_path):
    rng = np.random.default_rng(0)
    with h5io.atomic_writer(
        tmp_path / "evalset.h5", "evalset", "x", icl_early=5, icl_late=20, icl_window=1
    ) as f:
        h5io.write(f, "contexts", rng.integers(0, VOCAB, size=(16, 32)), ("example", "position"))
        h5io.write(f, "random_index", rng.integers(1, 32, size=16), ("example",))
    torch.set_num_threads(1)
    few, many = peak_bytes(tmp_path, 5), peak_bytes(tmp_path, 100)
    per_snapshot = 2 * VOCAB * SPEC["d_model"] * 4
    assert many < few + 10 * per_snapshot, (few, many)  # holding all 100 would add 100 snapshots
    with h5io.open_input(tmp_path / "l100.h5", "losses") as f:
        assert json.loads(f["mean_loss"].attrs["axes"]) == ["snapshot", "context_index_minus_1"]
