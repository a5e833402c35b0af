"""The held-out text against the training text: the hashed, chunked scan against naive loops over
tuples, and the two ends of the scale."""

import numpy as np
import pytest

from inductionheads import h5io, overlap


def naive_found(training, contexts, n):
    seen = {tuple(training[i : i + n]) for i in range(len(training) - n + 1)}
    grams = [tuple(c[i : i + n]) for c in contexts for i in range(len(c) - n + 1)]
    return sum(g in seen for g in grams) / len(grams)


def naive_repeated(contexts, n):
    repeats = total = 0
    for c in contexts:
        earlier = set()
        for i in range(len(c) - n + 1):
            g = tuple(c[i : i + n])
            repeats += g in earlier
            earlier.add(g)
            total += 1
    return repeats / total


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_both_fractions_equal_naive_loops_across_chunk_boundaries(monkeypatch, n):
    monkeypatch.setattr(overlap, "_CHUNK", 7)  # many chunks: an n-gram across a boundary must count
    rng = np.random.default_rng(n)
    training = rng.integers(0, 4, 400).astype(np.uint16)  # a small vocabulary: many n-grams repeat
    contexts = rng.integers(0, 4, (6, 30))
    contexts[0, :12] = training[100:112]  # one stretch copied from training
    found = overlap.found_in_training(training, contexts, n)
    assert found == pytest.approx(naive_found(training, contexts, n))
    assert overlap.repeated_in_context(contexts, n) == pytest.approx(naive_repeated(contexts, n))


def test_held_out_text_copied_from_training_is_all_found_and_unrelated_text_none():
    rng = np.random.default_rng(0)
    training = rng.integers(0, 50, 5000)
    copied = np.stack([training[s : s + 64] for s in (0, 999, 4936)])
    assert overlap.found_in_training(training, copied, 16) == 1.0
    unrelated = rng.integers(50, 100, (3, 64))  # tokens training never holds
    assert overlap.found_in_training(training, unrelated, 2) == 0.0


def test_a_context_that_repeats_itself_counts_each_repeat_once():
    r = np.arange(10)
    # 29 bigrams, 10 of them distinct
    assert overlap.repeated_in_context(np.tile(r, 3)[None], 2) == pytest.approx(19 / 29)
    assert overlap.repeated_in_context(r[None], 2) == 0.0


def test_the_stage_writes_both_fractions_by_n(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 30, 2000).astype(np.uint16)
    contexts = np.stack([train[:40], rng.integers(0, 30, 40)])
    with h5io.atomic_writer(tmp_path / "tokens.h5", "corpus", "c", vocab_size=30, bos_id=0) as f:
        h5io.write(f, "train", train, ("token",), units="token id")
    with h5io.atomic_writer(tmp_path / "evalset.h5", "evalset", "e") as f:
        h5io.write(f, "contexts", contexts, ("example", "position"), units="token id")
    overlap.run(tmp_path / "tokens.h5", tmp_path / "evalset.h5", tmp_path / "overlap.h5")
    got = overlap.read(tmp_path / "overlap.h5")
    assert list(got) == list(overlap.NGRAM_LENGTHS)
    for n, v in got.items():
        assert v["found_in_training"] == pytest.approx(naive_found(train, contexts, n))
        assert v["repeated_in_context"] == pytest.approx(naive_repeated(contexts, n))
    # the recorded config hash covers both inputs: another corpus gives another hash
    with h5io.atomic_writer(tmp_path / "other.h5", "corpus", "d", vocab_size=30, bos_id=0) as f:
        h5io.write(f, "train", train, ("token",), units="token id")
    overlap.run(tmp_path / "other.h5", tmp_path / "evalset.h5", tmp_path / "overlap2.h5")
    with (
        h5io.open_input(tmp_path / "overlap.h5", "overlap") as a,
        h5io.open_input(tmp_path / "overlap2.h5", "overlap") as b,
    ):
        assert a.attrs["config_hash"] != b.attrs["config_hash"]
