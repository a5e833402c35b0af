"""Joint PCA of per-token-loss vectors, and the turning angle of a trajectory."""

import numpy as np
import pytest

from inductionheads.pca import joint_pca, turn_degrees


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
        ([(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)], 0.0),
        ([(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)], 90.0),
        ([(0, 0), (1, 0), (2, 0), (1, 0), (0, 0)], 180.0),
    ],
)
def test_turn_between_the_path_before_and_inside_a_window(points, want):
    assert turn_degrees(np.array(points, float), start=2, end=4) == pytest.approx(want)


def test_no_turn_is_measured_without_as_many_snapshots_before_the_window():
    path = np.array([(0, 0), (1, 0), (2, 1), (2, 2), (2, 3)], float)
    assert np.isnan(turn_degrees(path, start=1, end=4))
