"""The phase-change window: moving average, steepest fall, span and the share of ICL formed in it."""

import numpy as np
import pytest

from inductionheads.phase import find_window, smooth

ARGS = dict(smoothing=3, slope_fraction=0.25, min_icl_drop=0.05, min_fraction=0.5, max_span=0.5)


def test_smooth_equals_a_naive_centred_mean():
    rng = np.random.default_rng(0)
    y = rng.normal(size=17)
    got = smooth(y, 5)
    for i in range(17):
        h = min(2, i, 16 - i)
        assert got[i] == pytest.approx(y[i - h : i + h + 1].mean())
    assert np.array_equal(smooth(y, 1), y)


def _sigmoid_fall(centre, width, depth=0.4, n=41):
    tokens = np.linspace(0, 8e6, n)
    return tokens, -depth / (1 + np.exp(-(tokens - centre) / width))


@pytest.mark.parametrize("centre", [2e6, 4e6, 6e6])
def test_window_brackets_a_sigmoid_fall_and_holds_most_of_it(centre):
    tokens, icl = _sigmoid_fall(centre, 3e5)
    w, smoothed, slope = find_window(tokens, icl, **ARGS)
    assert tokens[w.start] < centre < tokens[w.end]
    assert abs(tokens[w.steepest] - centre) <= tokens[1]
    assert w.fraction > 0.75 and w.has_phase_change
    # every slope inside the window is at least a quarter of the steepest, just outside it is not
    assert (slope[w.start : w.end + 1] <= 0.25 * slope[w.steepest]).all()
    for outside in (w.start - 1, w.end + 1):
        if 0 <= outside < len(slope):
            assert slope[outside] > 0.25 * slope[w.steepest]


def test_noise_without_a_fall_is_no_phase_change():
    rng = np.random.default_rng(1)
    tokens = np.linspace(0, 8e6, 41)
    w, _, _ = find_window(tokens, rng.normal(0, 0.02, 41), **ARGS)
    assert w is None or not w.has_phase_change


def test_a_rising_score_has_no_window():
    tokens = np.linspace(0, 8e6, 41)
    w, _, _ = find_window(tokens, np.linspace(0, 0.3, 41), **ARGS)
    assert w is None


@pytest.mark.parametrize("depth", [0.03, 0.4])
def test_a_steady_fall_is_not_a_phase_change(depth):
    """A straight decline is steepest everywhere: its window spans all of training, or the drop is
    below the noise floor; neither is a change of phase."""
    tokens = np.linspace(0, 8e6, 41)
    w, _, _ = find_window(tokens, np.linspace(0, -depth, 41), **ARGS)
    assert not w.has_phase_change


def test_an_early_dip_that_training_undoes_is_not_the_window():
    """The first snapshots' ICL score can dip and recover; the lasting fall comes later."""
    tokens, icl = _sigmoid_fall(5e6, 3e5, depth=0.25)
    icl = icl.copy()
    icl[1:3] -= 0.1  # steeper than the phase change, and gone by snapshot 3
    w, lasting, _ = find_window(tokens, icl, **ARGS)
    assert tokens[w.start] < 5e6 < tokens[w.end] and w.start > 3
    assert w.has_phase_change and (np.diff(lasting) <= 0).all()
