"""Training: schedules, snapshot layout, determinism, and that the loop learns."""

import h5py
import numpy as np
import pytest

from inductionheads import h5io
from inductionheads.schedule import snapshot_steps
from inductionheads.snapshots import SnapshotReader
from inductionheads.train import lr_at, train

SPEC = dict(
    name="tiny", family="attention-only", n_layers=2, d_model=16, n_heads=2, context_length=32,
    batch_size=4, steps=60, n_snapshots=3, lr=0.01, warmup_steps=5, lr_schedule="constant",
    weight_decay=0.0, grad_clip=0.0, seed=0,
)  # fmt: skip


def test_lr_schedules():
    spec = dict(lr=1.0, warmup_steps=10, steps=110, lr_schedule="constant")
    assert lr_at(0, spec) == pytest.approx(0.1) and lr_at(9, spec) == 1.0 and lr_at(100, spec) == 1.0
    spec["lr_schedule"] = "cosine"
    assert lr_at(10, spec) == pytest.approx(1.0) and lr_at(110, spec) == pytest.approx(0.1)
    assert lr_at(60, spec) == pytest.approx(0.55)


def test_snapshot_steps_are_linear_from_zero():
    assert snapshot_steps(10_000, 200)[:3].tolist() == [0, 50, 100]
    assert len(snapshot_steps(10_000, 200)) == 201 and snapshot_steps(10_000, 200)[-1] == 10_000
    assert snapshot_steps(7, 3).tolist() == [0, 2, 5, 7]


def test_log_snapshots_add_early_steps_to_the_linear_grid():
    steps = snapshot_steps(1000, 20, log_snapshots=8)
    linear = set(range(0, 1001, 50))
    assert linear <= set(steps.tolist())
    early = sorted(set(steps.tolist()) - linear)
    # geometric from 1 to 1000: 1, 3, 7, 19, 52, 139, 373, and 1000, which the linear grid has
    assert early == [1, 3, 7, 19, 52, 139, 373]
    assert (np.diff(steps) > 0).all() and steps[0] == 0 and steps[-1] == 1000


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """A stream where each token mostly determines the next (a noisy permutation): quickly learnable."""
    rng = np.random.default_rng(0)
    successor = rng.permutation(np.arange(1, 40))
    stream = [1]
    for _ in range(5000):
        nxt = successor[stream[-1] - 1] if rng.random() < 0.9 else rng.integers(1, 40)
        stream.append(int(nxt))
    stream = np.array(stream)
    path = tmp_path_factory.mktemp("tok") / "tokens.h5"
    with h5io.atomic_writer(path, "corpus", "test", vocab_size=40, bos_id=0) as f:
        h5io.write(f, "train", stream, ("token",))
    return path


def test_training_writes_snapshots_learns_and_is_deterministic(tokens, tmp_path):
    train(tokens, tmp_path / "a.h5", SPEC, progress=False)
    train(tokens, tmp_path / "b.h5", SPEC, progress=False)
    with SnapshotReader(tmp_path / "a.h5") as snaps:
        assert snaps.steps.tolist() == [0, 20, 40, 60]
        assert snaps.tokens_seen.tolist() == [0, 20 * 128, 40 * 128, 60 * 128]
        assert snaps.spec == SPEC
        loss = snaps.train_loss()
        assert loss[0] > 3.5 and loss[-10:].mean() < 2.5  # untrained: about uniform guessing, ln 39 = 3.66
        W_Q = snaps.model(-1).blocks[0].attn.W_Q
        assert W_Q.shape == (2, 16, 8)
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        for name in a["params"]:
            assert np.array_equal(a["params"][name][:], b["params"][name][:]), name
        assert np.array_equal(a["train_loss"][:], b["train_loss"][:])
        assert a["params/blocks.0.attn.W_O"].attrs["axes"] == '["snapshot", "head", "d_head", "d_model"]'


def test_training_precision_is_a_setting_recorded_with_the_snapshots(tokens, tmp_path):
    """`precision: bfloat16` trains under bfloat16 autocast on any device (on a CPU, to reproduce a GPU
    run's arithmetic); parameters and snapshots stay float32, and the file says which precision ran."""
    runs = {}
    for precision in ("auto", "float32", "bfloat16"):
        out = tmp_path / f"{precision}.h5"
        train(tokens, out, {**SPEC, "steps": 20, "precision": precision}, progress=False)
        with h5py.File(out, "r") as f:
            runs[precision] = (f.attrs["precision"], f["params/W_E"].dtype, f["train_loss"][:])
    assert runs["auto"][0] == runs["float32"][0] == "float32"  # auto on a CPU
    assert runs["bfloat16"][0] == "bfloat16" and runs["bfloat16"][1] == np.float32
    assert np.array_equal(runs["auto"][2], runs["float32"][2])
    # the same run in bfloat16 arithmetic: close, not equal
    assert not np.array_equal(runs["bfloat16"][2], runs["float32"][2])
    assert np.allclose(runs["bfloat16"][2], runs["float32"][2], atol=0.1)


def test_log_snapshots_are_taken(tokens, tmp_path):
    train(tokens, tmp_path / "log.h5", {**SPEC, "log_snapshots": 4}, progress=False)
    with SnapshotReader(tmp_path / "log.h5") as snaps:
        assert snaps.steps.tolist() == snapshot_steps(60, 3, 4).tolist() == [0, 1, 4, 15, 20, 40, 60]


@pytest.mark.parametrize("family", ["attention-only", "with-mlp"])
def test_micro_batches_give_the_one_batch_update(family):
    """The accumulated gradient equals the one-batch gradient, and so does the update (SGD, where the
    update is linear in the gradient; Adam's sign-like steps would amplify float rounding in near-zero
    gradients)."""
    import torch

    from inductionheads.model import Transformer
    from inductionheads.train import train_step, training_loss

    spec = {**SPEC, "family": family, "batch_size": 6, "output_init": "normal"}
    batch = torch.from_numpy(np.random.default_rng(1).integers(0, 40, size=(6, 32)))
    results = []
    for micro in (None, 2, 4):  # one batch; three equal parts; a part of 4 and a part of 2
        torch.manual_seed(0)
        model = Transformer(spec, 40)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loss_of = training_loss(model, torch.device("cpu"))
        loss = float(train_step(model, loss_of, opt, batch, 0.5, 1.0, micro_batch_size=micro))
        grads = {k: p.grad.clone() for k, p in model.named_parameters()}
        results.append((loss, grads, {k: v.detach().clone() for k, v in model.state_dict().items()}))
    (one_loss, one_grads, one), *accumulated = results
    for loss, grads, state in accumulated:
        assert loss == pytest.approx(one_loss, rel=1e-6)
        for name in one_grads:
            torch.testing.assert_close(grads[name], one_grads[name], rtol=1e-4, atol=1e-7, msg=name)
        for name in one:
            torch.testing.assert_close(state[name], one[name], rtol=1e-5, atol=1e-7, msg=name)
    torch.manual_seed(0)
    start = Transformer(spec, 40).state_dict()
    assert any(not torch.equal(start[k], one[k]) for k in one)  # it is an update


def test_a_run_with_micro_batches_trains_like_one_without(tokens, tmp_path):
    train(tokens, tmp_path / "one.h5", SPEC, progress=False)
    train(tokens, tmp_path / "micro.h5", {**SPEC, "micro_batch_size": 3}, progress=False)
    with SnapshotReader(tmp_path / "one.h5") as a, SnapshotReader(tmp_path / "micro.h5") as b:
        np.testing.assert_allclose(b.train_loss(), a.train_loss(), rtol=1e-4, atol=1e-5)


def test_a_run_with_the_chunked_loss_trains_like_one_with_the_exact_loss(tokens, tmp_path):
    """loss_chunk_tokens 7 splits each step's 4 x 31 predicted tokens unevenly (and across sequences);
    with micro-batches of 3 on top, the loss curve still follows the exact whole-batch run."""
    train(tokens, tmp_path / "exact.h5", SPEC, progress=False)
    for settings in ({"loss_chunk_tokens": 7}, {"loss_chunk_tokens": 7, "micro_batch_size": 3}):
        train(tokens, tmp_path / "chunked.h5", {**SPEC, **settings}, progress=False)
        with SnapshotReader(tmp_path / "exact.h5") as a, SnapshotReader(tmp_path / "chunked.h5") as b:
            np.testing.assert_allclose(b.train_loss(), a.train_loss(), rtol=1e-4, atol=1e-5)
            assert b.spec["loss_chunk_tokens"] == 7
