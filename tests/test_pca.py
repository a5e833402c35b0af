"""Joint PCA of per-token-loss vectors, and the turning angle of a trajectory."""

import numpy as np
import pytest

from inductionheads.pca import at_tokens, joint_pca, turn


def test_joint_pca_equals_the_eigenvectors_of_the_covariance_with_each_model_weighing_the_same():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 30)), rng.normal(size=(7, 30)) + 1.0
    scores, components, explained = joint_pca([a, b], 3)
    X = np.concatenate([a, b])
    weights = np.r_[np.full(12, 1 / 12), np.full(7, 1 / 7)]  # each model's snapshots sum to one
    evals, evecs = np.linalg.eigh(np.cov(X.T, aweights=weights))
    order = np.argsort(evals)[::-1][:3]
    for k, j in enumerate(order):
        assert abs(components[k] @ evecs[:, j]) == pytest.approx(1.0, abs=1e-8)
    assert explained == pytest.approx(evals[order] / evals.sum(), rel=1e-8)
    mean = np.average(X, axis=0, weights=weights)
    assert np.allclose(np.concatenate(scores), (X - mean) @ components.T)
    assert [len(s) for s in scores] == [12, 7]


def test_joint_pca_of_models_with_as_many_snapshots_is_the_plain_pca():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(9, 20)), rng.normal(size=(9, 20)) + 0.5
    _, components, explained = joint_pca([a, b], 2)
    X = np.concatenate([a, b])
    X = X - X.mean(0)
    evals, evecs = np.linalg.eigh(X.T @ X)
    order = np.argsort(evals)[::-1][:2]
    for k, j in enumerate(order):
        assert abs(components[k] @ evecs[:, j]) == pytest.approx(1.0, abs=1e-8)
    assert explained == pytest.approx(evals[order] / evals.sum(), rel=1e-8)


def test_sampling_one_model_more_densely_does_not_move_another_models_trajectory():
    """Every snapshot of `b` taken twice (a model sampled twice as densely along the same path): the
    axes and `a`'s scores stay as they were."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 25)), rng.normal(size=(6, 25)) * 2.0 + 1.0
    scores, components, explained = joint_pca([a, b], 3)
    dense_scores, dense_components, dense_explained = joint_pca([a, np.repeat(b, 2, axis=0)], 3)
    assert np.allclose(dense_components, components) and np.allclose(dense_explained, explained)
    assert np.allclose(dense_scores[0], scores[0]) and np.allclose(dense_scores[1][::2], scores[1])


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


def test_a_trajectory_is_read_at_any_token_count_within_its_training():
    tokens = np.array([0.0, 10.0, 30.0])
    path = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, -1.0]])
    got = at_tokens(path, tokens, (5.0, 20.0))
    assert np.allclose(got[0], [0.5, 1.0]) and np.allclose(got[1], [2.0, 0.0])
    assert at_tokens(path, tokens, (5.0, 31.0)) is None
