"""Claims C1-C7 on synthetic results whose truth is known: each passes when the paper's pattern is
there, fails when one ingredient is broken, and is not evaluable when its models are missing."""

import numpy as np
import pytest

from inductionheads import claims
from inductionheads.claims import Model
from inductionheads.phase import describe, find_window

T = dict(
    window_fraction=0.5,
    min_icl_drop=0.05,
    far_less_ratio=0.25,
    induction_prefix_matching=0.3,
    induction_copying=0.05,
    previous_token=0.4,
    bump_rate_ratio=2.0,
    transient_fraction=0.1,
    min_turn_degrees=45,
)
TOKENS = np.linspace(0, 8e6, 41)
STEPS = np.arange(41) * 50


def _sigmoid(centre):
    return 1 / (1 + np.exp(-(TOKENS - centre) / 3e5))


def make(name, family, n_layers, centre=None, layer1_pm=0.01, turn=True, seed=0):
    """A model whose ICL score, loss bump, layer-2 prefix matching and PCA turn all happen at `centre`
    (tokens seen); without a centre, nothing happens."""
    rng = np.random.default_rng(seed)
    step = _sigmoid(centre) if centre else np.zeros_like(TOKENS)
    icl = -0.3 * step + rng.normal(0, 0.005, len(TOKENS))
    window, _, _ = find_window(TOKENS, icl, 3, 0.25, T["min_icl_drop"], T["window_fraction"], 0.5)
    heldout = 3 + 3 * np.exp(-TOKENS / 5e5) - 0.4 * step
    pm = np.full((len(TOKENS), n_layers, 2), 0.01)
    pm[:, 0, 0] = layer1_pm
    if n_layers > 1:
        pm[:, 1, 0] = 0.01 + 0.6 * step
    path = TOKENS / 1e6
    if turn:  # along PC1 until the window, then along PC2
        trajectory = np.stack([path * (1 - step), path * step], 1)
    else:
        trajectory = np.stack([path, 0 * path], 1)
    return Model(
        name, family, n_layers, describe(window, STEPS, TOKENS), icl, TOKENS, heldout, pm, trajectory
    )


def paper_like():
    return [
        make("attn1", "attention-only", 1),
        make("attn2", "attention-only", 2, centre=5e6),
        make("attn3", "attention-only", 3, centre=3e6),
        make("smeared1", "smeared-key", 1, centre=2e6, layer1_pm=0.5),
        make("smeared2", "smeared-key", 2, centre=1.5e6, layer1_pm=0.5),
    ]


def status(models):
    return {c["id"]: c["status"] for c in claims.evaluate(models, T)}


def test_paper_like_results_pass_every_claim_they_can_evaluate():
    got = status(paper_like())
    assert got == {f"C{i}": "pass" for i in (1, 2, 3, 4, 5, 7)} | {"C6": "not-evaluable"}


def test_every_claim_records_its_thresholds_and_numbers():
    for claim in claims.evaluate(paper_like(), T):
        assert claim["statement"] and claim["thresholds"]
        assert claim["numbers"] or claim["status"] == "not-evaluable"


def test_a_multi_layer_model_without_a_phase_change_fails_c1():
    models = paper_like()
    models[2] = make("attn3", "attention-only", 3)
    assert status(models)["C1"] == "fail"


def test_a_one_layer_model_with_in_context_learning_fails_c2():
    models = paper_like()
    models[0] = make("attn1", "attention-only", 1, centre=4e6)
    assert status(models)["C2"] == "fail"


def test_a_prefix_matching_head_in_a_vanilla_first_layer_fails_c3():
    models = paper_like()
    models[1] = make("attn2", "attention-only", 2, centre=5e6, layer1_pm=0.5)
    assert status(models)["C3"] == "fail"


def test_smeared_two_layer_model_later_than_vanilla_fails_c5():
    models = paper_like()
    models[4] = make("smeared2", "smeared-key", 2, centre=6.5e6, layer1_pm=0.5)
    assert status(models)["C5"] == "fail"


def test_a_straight_pca_trajectory_fails_c7():
    models = paper_like()
    models[2] = make("attn3", "attention-only", 3, centre=3e6, turn=False)
    assert status(models)["C7"] == "fail"


@pytest.mark.parametrize(
    "drop,expected",
    [
        ({"attn1"}, {"C2": "not-evaluable", "C4": "not-evaluable"}),
        ({"smeared1"}, {"C5": "not-evaluable"}),
        ({"attn2", "attn3"}, {"C1": "not-evaluable", "C2": "not-evaluable", "C3": "not-evaluable"}),
    ],
)
def test_missing_models_make_claims_not_evaluable_never_passing(drop, expected):
    got = status([m for m in paper_like() if m.name not in drop])
    for cid, want in expected.items():
        assert got[cid] == want
