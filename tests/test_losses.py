"""Per-token losses and the ICL score against direct forward passes and naive loops."""

import h5py
import numpy as np
import pytest
import torch

from inductionheads.icl import dloss_dlog_index, icl_score
from inductionheads.model import per_token_losses
from inductionheads.snapshots import SnapshotReader


def naive_token_loss(model, context: torch.Tensor, i: int) -> float:
    """-log p(x_i | x_<i) from a forward pass over x_0..x_{i-1} alone (no causal-mask shortcut)."""
    with torch.no_grad():
        logits = model(context[None, :i])[0, -1].double()
    return float(torch.logsumexp(logits, 0) - logits[context[i]])


def test_per_token_losses_match_a_loop_over_targets():
    g = torch.Generator().manual_seed(0)
    logits, tokens = torch.randn(2, 7, 11, generator=g), torch.randint(0, 11, (2, 7), generator=g)
    got = per_token_losses(logits, tokens)
    for b in range(2):
        for i in range(1, 7):
            expected = -torch.log_softmax(logits[b, i - 1], 0)[tokens[b, i]]
            assert got[b, i - 1].item() == pytest.approx(expected.item(), abs=1e-6)


def test_icl_score_and_se_by_hand():
    losses = np.zeros((4, 9), np.float32)
    losses[:, 1] = [5, 6, 7, 8]  # token 2
    losses[:, 7] = [4, 4, 6, 5]  # token 8
    score, se = icl_score(losses, early=2, late=8)
    diff = np.array([-1, -2, -1, -3])
    assert score == pytest.approx(diff.mean())
    assert se == pytest.approx(diff.std(ddof=1) / 2)


def test_icl_score_window_averages_tokens_around_each_index():
    rng = np.random.default_rng(0)
    losses = rng.random((5, 30))
    score, _ = icl_score(losses, early=5, late=20, window=2)
    expected = np.mean([losses[n, 17:22].mean() - losses[n, 2:7].mean() for n in range(5)])
    assert score == pytest.approx(expected)
    with pytest.raises(ValueError, match="outside"):
        icl_score(losses, early=2, late=20, window=2)


def test_dloss_dlog_index_recovers_a_known_slope():
    i = np.arange(1, 512)
    loss = 5.0 - 0.3 * np.log(i)
    _, deriv = dloss_dlog_index(np.stack([loss, 2 * loss]))
    assert np.allclose(deriv[0], -0.3, atol=1e-6)
    assert np.allclose(deriv[1], -0.6, atol=1e-6)


@pytest.mark.parametrize("model_name", ["attn1", "attn2"])
def test_stored_losses_equal_a_fresh_forward_pass(smoke_results, model_name):
    """HDF5 losses of every snapshot equal a fresh forward pass of that snapshot; the stored ICL
    score equals a naive per-example loop of single-context forward passes."""
    model_dir = smoke_results / "models" / model_name / "seed0"
    with h5py.File(smoke_results / "evalset.h5", "r") as f:
        contexts = torch.from_numpy(f["contexts"][:])
        random_index = f["random_index"][:]
        early, late, window = (int(f.attrs[k]) for k in ("icl_early", "icl_late", "icl_window"))
    with h5py.File(model_dir / "losses.h5", "r") as f:
        full, mean = f["per_token_loss"][:].astype(np.float32), f["mean_loss"][:]
        icl, icl_se, random_token = f["icl_score"][:], f["icl_score_se"][:], f["random_token_loss"][:]
        steps = f["steps"][:]
    with SnapshotReader(model_dir / "snapshots.h5") as snaps:
        assert np.array_equal(snaps.steps, steps)
        for s in (0, len(snaps) - 1):
            model = snaps.model(s)
            with torch.no_grad():
                fresh = per_token_losses(model(contexts), contexts).numpy()
            assert np.allclose(full[s], fresh, atol=2e-2, rtol=1e-3)  # float16 storage
            assert np.allclose(mean[s], fresh.mean(0), atol=1e-5)
            assert np.allclose(random_token[s], fresh[np.arange(len(fresh)), random_index - 1], atol=1e-5)
            diffs = []
            for c in contexts:
                late_loss = np.mean(
                    [naive_token_loss(model, c, late + d) for d in range(-window, window + 1)]
                )
                early_loss = np.mean(
                    [naive_token_loss(model, c, early + d) for d in range(-window, window + 1)]
                )
                diffs.append(late_loss - early_loss)
            assert icl[s] == pytest.approx(np.mean(diffs), abs=1e-4)
            assert icl_se[s] == pytest.approx(np.std(diffs, ddof=1) / np.sqrt(len(diffs)), rel=1e-3)
