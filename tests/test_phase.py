"""The phase-change window on constructed ICL curves: where it lands, what it holds, and which windows
are not a completed phase change (too small, at the start of training, still in progress)."""

import numpy as np
import pytest

from inductionheads.phase import find_window, smooth

ARGS = dict(
    smoothing=3,
    slope_fraction=0.25,
    valley_fraction=0.5,
    min_icl_drop=0.05,
    min_fraction=0.5,
    max_span=0.5,
    plateau_fraction=0.2,
)
TOKENS = np.linspace(0, 8e6, 41)


def test_smooth_keeps_its_width_at_the_ends():
    """Every point is the mean of `width` consecutive values: centred inside, shifted inwards at the
    ends, so the first and last points are no single raw value."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=17)
    got = smooth(y, 5)
    for i in range(17):
        lo = min(max(i - 2, 0), 12)
        assert got[i] == pytest.approx(y[lo : lo + 5].mean())
    assert got[0] == pytest.approx(y[:5].mean()) and got[-1] == pytest.approx(y[-5:].mean())
    assert np.array_equal(smooth(y, 1), y)
    assert np.allclose(smooth(y[:3], 5), y[:3].mean())  # fewer points than the width: all of them


def _step(centre, width=3e5, depth=0.4, tokens=TOKENS):
    return -depth / (1 + np.exp(-(tokens - centre) / width))


@pytest.mark.parametrize("centre", [1.5e6, 3e6, 4.5e6])
def test_window_brackets_a_step_and_holds_most_of_it(centre):
    w, lasting, slope = find_window(TOKENS, _step(centre), **ARGS)
    assert TOKENS[w.start] < centre < TOKENS[w.end]
    assert abs(TOKENS[w.steepest] - centre) <= TOKENS[1]
    assert w.fraction > 0.75 and w.has_phase_change and w.status == "phase change"
    # every slope inside the window is at least a quarter of its peak, just outside it is not
    assert (slope[w.start : w.end + 1] <= 0.25 * slope[w.steepest]).all()
    for outside in (w.start - 1, w.end + 1):
        if 0 <= outside < len(slope):
            assert slope[outside] > 0.25 * slope[w.steepest]


def test_an_early_transient_steeper_per_token_than_the_step_is_not_the_window():
    """In the first steps the score moves fast by a little (here 0.12 nats between snapshots 2 and 3, a
    steeper fall per token than the phase change's); the window is the later step, which forms more."""
    icl = _step(3.5e6, width=5e5, depth=0.3)
    icl[3:] -= 0.12
    w, lasting, slope = find_window(TOKENS, icl, **ARGS)
    assert int(np.argmin(slope)) <= 4  # the steepest fall is the transient
    assert TOKENS[w.start] < 3.5e6 < TOKENS[w.end] and w.start > 4
    assert w.has_phase_change and w.fraction > 0.55


def test_an_early_fall_running_into_the_phase_change_is_split_off_at_the_valley():
    """ICL that forms as training starts (0.15 nats around 0.8M tokens) runs into the phase change (0.3
    nats around 2.6M) with only a slowing between them, to a quarter of the falls on either side. As one
    episode the window starts at the first snapshots and cannot be told from the early ICL; split at
    the valley, the window is the step, with snapshots before it."""
    icl = _step(0.8e6, width=2e5, depth=0.15) + _step(2.6e6, depth=0.3)
    merged, _, _ = find_window(TOKENS, icl, **{**ARGS, "valley_fraction": 0.0})  # 0: never split
    assert merged.start < ARGS["smoothing"] and merged.status == "at start"
    w, _, slope = find_window(TOKENS, icl, **ARGS)
    assert 0.8e6 < TOKENS[w.start] < 2.6e6 < TOKENS[w.end] and w.has_phase_change
    # the window starts at the valley: the slowest fall between the two peaks
    between = slice(int(np.argmin(slope[:8])), w.steepest + 1)
    assert abs(w.start - (between.start + int(np.argmax(slope[between])))) <= 1


def test_a_fall_that_slows_after_the_start_of_training_stays_one_window():
    """Two falls of 0.15 nats at 3M and 4.4M tokens, slowing to under a quarter between them: after the
    start of training that is no evidence of two episodes (noise slows a fall too), and the window holds
    both."""
    icl = _step(3e6, width=2e5, depth=0.15) + _step(4.4e6, width=2e5, depth=0.15)
    w, _, slope = find_window(TOKENS, icl, **ARGS)
    valley = int(np.argmax(slope[15:22])) + 15
    assert slope[valley] > 0.5 * slope[w.start : valley].min()  # a valley that would cut an early one
    assert TOKENS[w.start] < 3e6 and 4.4e6 < TOKENS[w.end] and w.fraction > 0.9 and w.has_phase_change


def test_a_dip_that_training_undoes_is_not_the_window():
    icl = _step(5e6, depth=0.25)
    icl[1:3] -= 0.1  # steeper than the phase change, and gone by snapshot 3
    w, lasting, _ = find_window(TOKENS, icl, **ARGS)
    assert TOKENS[w.start] < 5e6 < TOKENS[w.end] and w.start > 3
    assert w.has_phase_change and (np.diff(lasting) <= 0).all()


def test_a_step_in_the_first_snapshots_has_no_before_and_is_not_a_phase_change():
    w, _, _ = find_window(TOKENS, _step(1e5, width=1e5), **ARGS)
    assert w.start < ARGS["smoothing"] and w.status == "at start" and not w.has_phase_change


@pytest.mark.parametrize("cut", [24, 28, 32, 36])
def test_a_step_cut_off_by_the_end_of_training_is_in_progress(cut):
    """Training stopped while the score still falls: the window reaches the last snapshots, with no
    plateau after it; it holds most of the ICL formed so far, and still is no phase change."""
    tokens = TOKENS[: cut + 1]
    w, _, _ = find_window(tokens, _step(TOKENS[cut] - 5e5, width=4e5, tokens=tokens), **ARGS)
    assert w.fraction > 0.5 and w.after < ARGS["plateau_fraction"]
    assert w.status == "in progress" and not w.has_phase_change


def test_the_same_step_with_a_plateau_after_it_is_a_phase_change():
    w, _, _ = find_window(TOKENS, _step(4e6, width=4e5), **ARGS)
    assert w.after >= ARGS["plateau_fraction"] and w.has_phase_change


def test_noise_without_a_fall_is_no_phase_change():
    rng = np.random.default_rng(1)
    for _ in range(20):
        w, _, _ = find_window(TOKENS, rng.normal(0, 0.02, 41), **ARGS)
        assert w is None or not w.has_phase_change


def test_a_rising_score_has_no_window():
    w, _, _ = find_window(TOKENS, np.linspace(0, 0.3, 41), **ARGS)
    assert w is None


@pytest.mark.parametrize("depth", [0.03, 0.4])
def test_a_steady_fall_is_not_a_phase_change(depth):
    """A straight decline is steepest everywhere: its window spans all of training, or the drop is
    below the noise floor; neither is a change of phase."""
    w, _, _ = find_window(TOKENS, np.linspace(0, -depth, 41), **ARGS)
    assert not w.has_phase_change and w.status == "too small"


def test_a_noisy_last_snapshot_does_not_move_the_window():
    """The end level averages the last snapshots: one low last value changes the share formed inside
    the window by little."""
    rng = np.random.default_rng(2)
    icl = _step(3e6, depth=0.3) + rng.normal(0, 0.01, 41)
    w, _, _ = find_window(TOKENS, icl, **ARGS)
    icl[-1] -= 0.15  # half the phase change, in the last value only
    w_low, _, _ = find_window(TOKENS, icl, **ARGS)
    assert (w_low.start, w_low.end) == (w.start, w.end)
    assert abs(w_low.fraction - w.fraction) < 0.15 and w_low.has_phase_change


def test_snapshots_a_few_steps_apart_do_not_move_the_window():
    """Geometric snapshots land beside linear ones (steps 385 and 389); a small wobble between two such
    neighbours is a huge slope per token, which must not become the window."""
    rng = np.random.default_rng(3)
    extra = TOKENS[5:35:6] + 2e4
    tokens = np.sort(np.concatenate([TOKENS, extra]))
    icl = _step(3e6, width=4e5, depth=0.3, tokens=tokens) + rng.normal(0, 0.004, len(tokens))
    w, _, _ = find_window(tokens, icl, **ARGS)
    on_even = ~np.isin(tokens, extra)  # the same noisy curve without the extra snapshots
    even, _, _ = find_window(tokens[on_even], icl[on_even], **ARGS)
    assert w.has_phase_change and w.icl_formed > 0.2
    interval = TOKENS[1] - TOKENS[0]
    assert abs(tokens[w.start] - TOKENS[even.start]) <= 2 * interval
    assert abs(tokens[w.end] - TOKENS[even.end]) <= 2 * interval


def _hump(height=0.06, centre=1e6, width=2e5, tokens=TOKENS):
    """A rise above the untrained score that training then undoes: later tokens briefly predicted worse."""
    return height * np.exp(-(((tokens - centre) / width) ** 2))


def test_undoing_a_rise_above_the_starting_score_forms_no_icl():
    """A hump of 0.06 nats over the starting score, undone by snapshot 8, then a slow fall of 0.03: the
    score never falls below its start by more than the 0.03, so no phase change and 0.03 formed."""
    icl = _hump() + np.linspace(0, -0.03, 41)
    w, lasting, _ = find_window(TOKENS, icl, **ARGS)
    assert lasting.max() <= smooth(icl, ARGS["smoothing"])[0] + 1e-12
    assert w is None or (not w.has_phase_change and w.icl_total < 0.04)


def test_a_hump_before_the_step_is_not_counted_as_its_icl():
    """The same hump before a phase change of 0.3 nats: the window is the step, and the ICL formed over
    training is the step's 0.3, not 0.36."""
    icl = _hump() + _step(4e6, width=3e5, depth=0.3)
    w, _, _ = find_window(TOKENS, icl, **ARGS)
    assert TOKENS[w.start] < 4e6 < TOKENS[w.end] and TOKENS[w.start] > 1.5e6
    assert w.icl_total == pytest.approx(0.3, abs=0.02) and w.has_phase_change
