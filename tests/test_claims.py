"""Claims C1-C7 on synthetic results whose truth is known: each passes when the paper's pattern is
there, fails when one ingredient is broken, and is not evaluable when its models are missing."""

import numpy as np
import pytest

from inductionheads import claims
from inductionheads.claims import RunEvidence
from inductionheads.phase import find_window, stored_window

T = dict(
    window_fraction=0.5,
    min_icl_drop=0.1,
    far_less_ratio=0.5,
    induction_prefix_matching=0.3,
    induction_copying=0.0,
    previous_token=0.4,
    bump_rate_ratio=2.0,
    icl_smoothing=3,
)
PHASE = dict(smoothing=3, slope_fraction=0.25, valley_fraction=0.5, max_span=0.5, plateau_fraction=0.2)
TOKENS = np.linspace(0, 8e6, 41)
STEPS = np.arange(41) * 50
WARMUP = 8e5  # tokens: the early transient, where the held-out loss falls fast


def _sigmoid(centre):
    return 1 / (1 + np.exp(-(TOKENS - centre) / 3e5))


def make(name, family, n_layers, centre=None, layer1_pm=0.01, turn=True, seed=0, steady_icl=0.0):
    """A model whose ICL score, loss bump, layer-2 prefix matching and PCA turn all happen at `centre`
    (tokens seen); without a centre, nothing happens but a steady fall of the ICL score by `steady_icl`
    nats over training."""
    rng = np.random.default_rng(seed)
    step = _sigmoid(centre) if centre else np.zeros_like(TOKENS)
    icl = -0.3 * step - steady_icl * TOKENS / TOKENS[-1] + rng.normal(0, 0.005, len(TOKENS))
    window, lasting, _ = find_window(
        TOKENS, icl, min_icl_drop=T["min_icl_drop"], min_fraction=T["window_fraction"], **PHASE
    )
    heldout = 3 + 3 * np.exp(-TOKENS / 5e5) - 0.4 * step
    pm = np.full((len(TOKENS), n_layers, 2), 0.01)
    pm[:, 0, 0] = layer1_pm
    if n_layers > 1:
        pm[:, 1, 0] = 0.01 + 0.6 * step
    path = 6 * (1 - np.exp(-TOKENS / 1.5e6))  # fast early, slowing as training goes on
    if turn:  # along PC1 until the window, then along PC2
        trajectory = np.stack([path * (1 - step), path * step, 0 * path], 1)
    else:
        trajectory = np.stack([path, 0 * path, 0 * path], 1)
    trajectory += rng.normal(0, 0.02, trajectory.shape)
    return RunEvidence(
        name,
        family,
        n_layers,
        stored_window(window, STEPS, TOKENS),
        icl,
        TOKENS,
        heldout,
        pm,
        trajectory,
        seed=seed,
        final_level=float(lasting[-1]),
        warmup_tokens=WARMUP,
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


@pytest.mark.parametrize("amount,expected", [(0.1, "pass"), (0.2, "fail")])
def test_c2_a_one_layer_model_may_learn_some_icl_but_far_less(amount, expected):
    """A 1-layer model's ICL falling steadily (no phase change) to 0.1 nats, a third of the multi-layer
    models' 0.3, is far less; to 0.2, two thirds, it is not."""
    models = paper_like()
    models[0] = make("attn1", "attention-only", 1, steady_icl=amount)
    c2 = claims.c2(models, T)
    assert not models[0].has_phase_change
    assert c2["status"] == expected


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


def test_c7_reports_the_controls_turn_over_the_same_tokens():
    """attn3 leaves PC1 for PC2 inside its window; the 1-layer model runs straight along PC1."""
    numbers = claims.c7(paper_like(), T)["numbers"]["attn3"]
    assert numbers["turn_degrees"] > 60 and numbers["turn_degrees_of_attn1"] < 10


@pytest.mark.parametrize(
    "drop,expected",
    [
        ({"attn1"}, {"C2": "not-evaluable", "C4": "not-evaluable", "C7": "not-evaluable"}),
        ({"smeared1"}, {"C5": "not-evaluable"}),
        ({"attn2", "attn3"}, {"C1": "not-evaluable", "C2": "not-evaluable", "C3": "not-evaluable"}),
    ],
)
def test_missing_models_make_claims_not_evaluable_never_passing(drop, expected):
    got = status([m for m in paper_like() if m.name not in drop])
    for cid, want in expected.items():
        assert got[cid] == want


def test_a_turn_the_control_makes_too_fails_c7():
    """attn3 turns inside its window, but the 1-layer model turns the same way at the same time (its
    trajectory is attn3's, offset and noisy): the two never part, so the turn is no phase change's."""
    models = paper_like()
    rng = np.random.default_rng(5)
    models[0].pca_scores = models[2].pca_scores + 0.5 + rng.normal(0, 0.05, models[2].pca_scores.shape)
    c7 = claims.c7(models, T)
    numbers = c7["numbers"]["attn3"]
    assert numbers["turn_degrees"] > 45  # the turn is there
    assert abs(numbers["turn_degrees_of_attn1"] - numbers["turn_degrees"]) < 10  # and the control's too
    assert numbers["separation_growth_since_warmup"] < T["bump_rate_ratio"] and c7["status"] == "fail"
    assert "smeared2" not in c7["numbers"]  # a claim about the vanilla models, as in the paper


def test_a_turn_no_further_than_the_controls_fails_c7():
    """attn3 leaves PC1 for PC2 inside its window and parts from the 1-layer model there, but the 1-layer
    model turns further at the same time (back along PC1 and onto PC3, moving further off its course):
    attn3 turns no more than a model without a phase change does, and the separation alone does not
    pass C7."""
    models = [m for m in paper_like() if m.name != "attn2"]
    rng = np.random.default_rng(5)
    path, step = 6 * (1 - np.exp(-TOKENS / 1.5e6)), _sigmoid(3e6)
    models[0].pca_scores = np.stack([path * (1 - 2 * step), 0 * path, path * step], 1)
    models[0].pca_scores += rng.normal(0, 0.02, models[0].pca_scores.shape)
    c7 = claims.c7(models, T)
    numbers = c7["numbers"]["attn3"]
    assert 60 < numbers["turn_degrees"] < numbers["turn_degrees_of_attn1"]
    assert numbers["off_course"] < numbers["off_course_of_attn1"]
    assert numbers["share_of_separation_inside_window"] >= T["window_fraction"]
    assert numbers["separation_growth_since_warmup"] >= T["bump_rate_ratio"]
    assert c7["status"] == "fail"


def test_a_control_that_barely_moves_turns_by_noise_and_not_further():
    """The 1-layer model shares attn3's course along PC1 until attn3's window, then all but stops: it
    drifts a fiftieth as far, back and onto PC3. Its angle is more degrees than attn3's turn, but it
    moves off its course by far less, and attn3 passes C7."""
    models = [m for m in paper_like() if m.name != "attn2"]
    rng = np.random.default_rng(6)
    path, step = 6 * (1 - np.exp(-TOKENS / 1.5e6)), _sigmoid(3e6)
    stopped = np.minimum(path, np.interp(2.2e6, TOKENS, path))
    models[0].pca_scores = np.stack([stopped - 0.04 * path * step, 0 * path, 0.02 * path * step], 1)
    models[0].pca_scores += rng.normal(0, 0.002, models[0].pca_scores.shape)
    c7 = claims.c7(models, T)
    numbers = c7["numbers"]["attn3"]
    assert numbers["turn_degrees_of_attn1"] > numbers["turn_degrees"]
    assert numbers["off_course_of_attn1"] < 0.05 * numbers["off_course"] and c7["status"] == "pass"


def test_a_control_that_stands_still_turns_zero_degrees():
    """The 1-layer model's trajectory never moves: its turn has no direction to measure, so it counts as
    0 degrees (not NaN, which would fail every comparison) and attn3's turn is further."""
    models = [m for m in paper_like() if m.name != "attn2"]
    models[0].pca_scores = np.zeros_like(models[0].pca_scores)
    numbers = claims.c7(models, T)["numbers"]["attn3"]
    assert numbers["turn_degrees_of_attn1"] == 0.0 and numbers["turn_degrees"] > 60


def test_noise_rarely_turns_further_than_other_noise_and_parts_from_it_inside_a_window():
    """attn3's and the control's trajectories replaced by independent random walks of one size: one
    moves further off its course than the other about half the time, yet few also form most of the
    walks' separation inside the window."""
    models, rng = paper_like(), np.random.default_rng(1)
    turned = passed = 0
    for _ in range(200):
        for i in (0, 2):
            models[i].pca_scores = np.cumsum(rng.normal(0, 1, models[i].pca_scores.shape), 0)
        c7 = claims.c7(models, T)["numbers"]["attn3"]
        further = c7["off_course"] > c7["off_course_of_attn1"]
        turned += further
        passed += (
            further
            and (c7["share_of_separation_inside_window"] or 0.0)
            >= T["window_fraction"]  # None: no separation
            and c7["separation_growth_since_warmup"] >= T["bump_rate_ratio"]
        )
    assert 0.35 < turned / 200 < 0.65 and passed / 200 < 0.1


def test_trajectories_that_part_before_the_window_fail_c7():
    """attn3 leaves the 1-layer model's course early, at 1.5M tokens, and turns again inside its window
    at 3M: the separation does not form inside the window."""
    models = paper_like()
    early = 1 / (1 + np.exp(-(TOKENS - 1.5e6) / 2e5))
    models[2].pca_scores = models[2].pca_scores + np.stack([0 * TOKENS, 0 * TOKENS, 8 * early], 1)
    c7 = claims.c7(models, T)
    assert c7["numbers"]["attn3"]["share_of_separation_inside_window"] < T["window_fraction"]
    assert c7["status"] == "fail"


def test_c7_is_not_evaluable_for_a_window_inside_the_warmup():
    models = paper_like()
    for m in models:
        m.warmup_tokens = 4e6  # attn3's window (about 2-4M tokens) starts before the warmup ends
    c7 = claims.c7(models, T)
    assert c7["numbers"]["attn3"]["note"] == "the window starts in the warmup"
    assert "turn_degrees" in c7["numbers"]["attn2"]  # attn2's window (about 4-6M) is measured


def test_a_phase_change_still_under_way_at_the_last_snapshot_fails_c1():
    """attn2's step sits at the end of training: its window holds most of the ICL formed so far, but
    it has no plateau after it, so it is in progress, not a phase change."""
    models = paper_like()
    models[1] = make("attn2", "attention-only", 2, centre=7.6e6)
    c1 = claims.c1(models, T)
    assert c1["numbers"]["attn2"]["status"] == "in progress" and c1["status"] == "fail"


def test_claims_are_counted_over_replicates_and_windows_summarized():
    by_replicate = {0: paper_like(), 1: paper_like()}
    by_replicate[1][2] = make("attn3", "attention-only", 3, seed=1)  # no phase change in replicate 1
    for r, models in by_replicate.items():
        for m in models:
            m.seed = r
    evaluated = {r: claims.evaluate(ms, T) for r, ms in by_replicate.items()}
    summary = {c["id"]: c for c in claims.summarize(evaluated)}
    assert summary["C1"]["passed"] == 1 and summary["C1"]["failed"] == 1 and summary["C1"]["status"] == "fail"
    assert summary["C2"]["passed"] == 2 and summary["C2"]["status"] == "pass"
    assert summary["C6"]["not_evaluable"] == 2 and summary["C6"]["status"] == "not-evaluable"
    windows = claims.windows_over_replicates(by_replicate)
    assert windows["attn3"]["phase_change_in"] == 1 and windows["attn3"]["replicates"] == 2
    assert windows["attn2"]["phase_change_in"] == 2
    starts = [ms[1].window["start_step"] for ms in by_replicate.values()]
    spread = windows["attn2"]["start_step"]
    assert spread["mean"] == pytest.approx(np.mean(starts)) and spread["min"] == min(starts)
    assert spread["sd"] == pytest.approx(np.std(starts, ddof=1))
    assert windows["attn1"]["start_step"] is None and windows["attn1"]["phase_change_in"] == 0


def _with_gap(models, gap):
    """attn2's held-out loss set to attn1's minus `gap` (per snapshot)."""
    models[1].heldout_loss = models[0].heldout_loss - gap
    return claims.c4(models, T)


def test_c4_a_gap_that_opens_inside_the_window_and_keeps_growing_after_it_passes():
    """The bump is where the curves part; the gap may go on growing more slowly as the circuit sharpens."""
    models = paper_like()
    after = np.clip(TOKENS - 5.6e6, 0, None) * 0.04 / 1e6  # still growing after the window
    c4 = _with_gap(models, 0.4 * _sigmoid(5e6) + after)
    assert c4["status"] == "pass"


def test_c4_a_gap_growing_as_fast_before_the_window_fails():
    models = paper_like()
    steady = TOKENS * 0.4 / 8e6  # the same growth all along: no bump
    c4 = _with_gap(models, steady)
    assert c4["status"] == "fail"
    numbers = c4["numbers"]["attn2"]
    assert (
        numbers["peak_gap_growth_per_million_tokens_inside"]
        < 2 * numbers["typical_gap_growth_per_million_tokens_outside"]
    )
