"""Determinism: the same settings and seed give identical HDF5 contents with the same thread count;
with another thread count, results agree within the tolerance docs/reliability.md states."""

import h5py
import numpy as np
import pytest
import torch

from inductionheads import h5io, head_scores, losses
from inductionheads.train import train

SPEC = dict(
    name="det", family="attention-only", n_layers=2, d_model=32, n_heads=4, context_length=64,
    batch_size=8, steps=100, n_snapshots=2, lr=0.003, warmup_steps=10, lr_schedule="constant",
    weight_decay=0.05, grad_clip=0.0, seed=0,
)  # fmt: skip
TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # across thread counts; docs/reliability.md


def datasets(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("det") / "tokens.h5"
    with h5io.atomic_writer(path, "corpus", "test", vocab_size=50, bos_id=0) as f:
        h5io.write(f, "train", rng.integers(1, 50, size=20000), ("token",))
    return path


def test_training_across_thread_counts(tokens, tmp_path):
    for name, threads in [("a", 1), ("b", 1), ("c", 2)]:
        train(tokens, tmp_path / f"{name}.h5", SPEC, threads=threads, progress=False)
    a, b, c = (datasets(tmp_path / f"{n}.h5") for n in "abc")
    for key in a:
        assert np.array_equal(a[key], b[key]), key
        assert np.allclose(a[key], c[key], **TOLERANCE), key


@pytest.mark.parametrize("stage", ["losses", "head_scores"])
def test_measurements_across_thread_counts(smoke_results, tmp_path, stage):
    model_dir = smoke_results / "models" / "attn2" / "seed0"
    args = (model_dir / "snapshots.h5", smoke_results / "evalset.h5")
    for name, threads in [("a", 1), ("b", 1), ("c", 2)]:
        if stage == "losses":
            losses.run(*args, tmp_path / f"{name}.h5", {"batch_size": 16}, threads=threads)
        else:
            head_scores.run(*args, tmp_path / f"{name}.h5", {"prev_token_contexts": 4}, threads=threads)
    a, b, c = (datasets(tmp_path / f"{n}.h5") for n in "abc")
    stored = datasets(model_dir / f"{stage}.h5")
    for key in a:
        # equal_nan: the QK trace is NaN in layer 1 by definition
        assert np.array_equal(a[key], b[key], equal_nan=True), key
        assert np.array_equal(a[key], stored[key], equal_nan=True), key  # the workflow's run, one thread
        assert np.allclose(
            a[key].astype(np.float64), c[key].astype(np.float64), equal_nan=True, **TOLERANCE
        ), key
