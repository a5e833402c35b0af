"""Joint PCA of per-token-loss vectors, and the turning angle of a trajectory."""

import numpy as np
import pytest

from inductionheads.pca import at_tokens, joint_pca, turn, window_points


def test_joint_pca_equals_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 30)), rng.normal(size=(7, 30)) + 1.0
    scores, components, explained = joint_pca([a, b], 3)
    X = np.concatenate([a, b])
    X = X - X.mean(0)
    evals, evecs = np.linalg.eigh(X.T @ X)
    order = np.argsort(evals)[::-1][:3]
    for k, j in enumerate(order):
        assert abs(components[k] @ evecs[:, j]) == pytest.approx(1.0, abs=1e-8)
    assert explained == pytest.approx(evals[order] / evals.sum(), rel=1e-8)
    assert np.allclose(np.concatenate(scores), X @ components.T)
    assert [len(s) for s in scores] == [12, 7]


def test_joint_pca_signs_do_not_depend_on_the_order_of_models():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(9, 20)), rng.normal(size=(9, 20))
    first, _, _ = joint_pca([a, b], 2)
    second, _, _ = joint_pca([b, a], 2)
    assert np.allclose(first[0], second[1]) and np.allclose(first[1], second[0])


@pytest.mark.parametrize(
    "points,want",
    [
        ([(0, 0), (2, 0), (4, 0)], 0.0),
        ([(0, 0), (2, 0), (2, 2)], 90.0),
        ([(0, 0), (2, 0), (0, 0)], 180.0),
    ],
)
def test_turn_between_the_direction_before_and_inside_a_window(points, want):
    degrees, off_course = turn(*np.array(points, float))
    assert degrees == pytest.approx(want)
    # off course: the distance moved inside the window, times the sine of the turn
    assert off_course == pytest.approx(2 * np.sin(np.radians(want)), abs=1e-12)


def test_window_points_need_as_many_snapshots_before_the_window():
    tokens = np.arange(10) * 100.0
    assert window_points(tokens, start=4, end=7) == (100.0, 400.0, 700.0)  # 3 snapshots before
    assert window_points(tokens, start=2, end=6) is None  # 4 needed, 2 there
    assert window_points(tokens, start=2, end=3) == (0.0, 200.0, 300.0)  # at least 2 snapshots before
    assert window_points(tokens, start=1, end=2) is None


def test_a_trajectory_is_read_at_any_token_count_within_its_training():
    tokens = np.array([0.0, 10.0, 30.0])
    path = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, -1.0]])
    got = at_tokens(path, tokens, (5.0, 20.0))
    assert np.allclose(got[0], [0.5, 1.0]) and np.allclose(got[1], [2.0, 0.0])
    assert at_tokens(path, tokens, (5.0, 31.0)) is None


def _off_course(path, start, end):
    return turn(*at_tokens(path, np.arange(len(path)), window_points(np.arange(len(path)), start, end)))


def test_a_phase_change_moves_far_off_course_and_a_control_of_noise_does_not():
    """Along one axis until snapshot 20, then a long move along another inside the window (20-26), with
    noise everywhere; a model without a phase change (noise around a straight line) moves little off
    course over the same stretch."""
    rng = np.random.default_rng(0)
    path = np.zeros((41, 3))
    path[1:21, 0] = np.linspace(1, 4, 20)
    path[21:, 0] = 4
    path[21:27, 1] = np.linspace(1, 6, 6)
    path[27:, 1] = 6
    path += rng.normal(0, 0.05, path.shape)
    control = np.stack([np.linspace(0, 5, 41), np.zeros(41), np.zeros(41)], 1) + rng.normal(0, 0.05, (41, 3))
    degrees, distance = _off_course(path, 20, 26)
    _, control_distance = _off_course(control, 20, 26)
    assert degrees > 60 and distance > 10 * control_distance


def test_noise_turns_by_any_angle_but_rarely_three_times_as_far_off_course_as_other_noise():
    """Random walks turn by 45 degrees or more in most stretches, yet a walk rarely moves 3 times as far
    off its course as an independent walk of the same size over the same stretch."""
    rng = np.random.default_rng(1)
    turned = passed = total = 0
    for _ in range(200):
        walk, control = (np.cumsum(rng.normal(0, 1, (41, 3)), 0) for _ in range(2))
        for start in range(6, 34, 3):
            degrees, distance = _off_course(walk, start, start + 6)
            total += 1
            turned += degrees >= 45
            passed += degrees >= 45 and distance >= 3 * _off_course(control, start, start + 6)[1]
    assert turned / total > 0.6 and passed / total < 0.15
