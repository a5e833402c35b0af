"""Joint PCA of per-token-loss vectors across the snapshots of every model (docs/methods.md §7).

Each snapshot is one point: its random-token loss vector (one fixed random context index per held-out
example, the same for every model). The vectors of all snapshots of all models are stacked, centred
by column and decomposed by SVD, so every model's trajectory lives in one shared space. Each model
weighs the same in the mean and the decomposition, however many snapshots it has: one model sampled
more densely would otherwise tilt the axes every other model is measured on (C7 compares the 1- and
2-layer models there).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io, readers

STAGE = "pca"
log = logging.getLogger(__name__)


def joint_pca(
    vectors: list[np.ndarray], n_components: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """vectors: per model [snapshot, example]. Returns (per-model scores [snapshot, k], components
    [k, example], explained variance ratio [k]). A model's snapshots each weigh 1/its snapshot count,
    so every model weighs the same. Signs are fixed so each component's largest loading is positive,
    which makes the result independent of the SVD routine's sign choice."""
    stacked = np.concatenate([np.asarray(v, np.float64) for v in vectors])
    weights = np.concatenate([np.full(len(v), 1.0 / (len(v) * len(vectors))) for v in vectors])
    centred = stacked - weights @ stacked
    _, singular, components = np.linalg.svd(centred * np.sqrt(weights)[:, None], full_matrices=False)
    k = min(n_components, len(singular))
    components = components[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(1)])
    components = components * signs[:, None]
    scores = centred @ components.T
    explained = singular[:k] ** 2 / max(float((singular**2).sum()), 1e-300)
    bounds = np.cumsum([0] + [len(v) for v in vectors])
    return [scores[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)], components, explained


def turn(before: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[float, float]:
    """(angle in degrees between the directions before -> start and start -> end, distance moved off
    the earlier course: |start -> end| sin(angle)). 0 degrees: straight on; 180: reversal."""
    earlier, during = start - before, end - start
    norms = np.linalg.norm(earlier) * np.linalg.norm(during)
    if norms == 0:
        return float("nan"), 0.0
    angle = np.arccos(np.clip(earlier @ during / norms, -1.0, 1.0))
    return float(np.degrees(angle)), float(np.linalg.norm(during) * np.sin(angle))


def at_tokens(trajectory: np.ndarray, tokens_seen: np.ndarray, points) -> list[np.ndarray] | None:
    """The trajectory, linearly interpolated at each token count of `points`; None when one lies
    outside its training."""
    tokens_seen = np.asarray(tokens_seen, np.float64)
    if min(points) < tokens_seen[0] or max(points) > tokens_seen[-1]:
        return None
    return [
        np.array([np.interp(p, tokens_seen, trajectory[:, k]) for k in range(trajectory.shape[1])])
        for p in points
    ]


def read(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """{model: {"scores": [snapshot, k], "tokens_seen": [snapshot]}} plus "explained" under key None."""
    out: dict = {}
    with h5io.open_input(path, STAGE) as f:
        for model in h5io.read_json_attr(f, "models"):
            out[model] = {
                "scores": h5io.read(f, f"scores/{model}"),
                "tokens_seen": h5io.read(f, f"tokens_seen/{model}"),
            }
        out[None] = {"explained": h5io.read(f, "explained_variance_ratio")}
    return out


def run(losses: list[str], pca: str | Path, settings: dict[str, Any]) -> None:
    """The joint PCA (settings["n_components"]) of one replicate's runs, one losses file each."""
    runs = [readers.losses(path) for path in losses]
    names = [run.model for run in runs]
    vectors = [run.random_token_loss for run in runs]
    tokens = [run.tokens_seen for run in runs]
    hashes = [run.evalset_hash for run in runs]
    if len(set(hashes)) > 1:
        raise ValueError(f"losses files {losses} were computed on different evaluation sets")
    scores, components, explained = joint_pca(vectors, settings["n_components"])
    log.info("explained variance ratio of the first components: %s", np.round(explained, 3).tolist())
    with h5io.atomic_writer(pca, STAGE, hashes[0], models=names) as f:
        for name, s, t in zip(names, scores, tokens, strict=True):
            h5io.write(f, f"scores/{name}", s, ("snapshot", "component"), units="nats")
            h5io.write(f, f"tokens_seen/{name}", t, ("snapshot",), units="tokens")
        h5io.write(f, "components", components, ("component", "example"), units="unit vector")
        h5io.write(f, "explained_variance_ratio", explained, ("component",), units="fraction")
