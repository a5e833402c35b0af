"""One reader per result file of a run (snapshots.h5 without its weights, losses.h5, head_scores.h5,
ablation.h5): the verified arrays and attributes that phase, PCA, claims, figures and the report use.
Torch-free: the analysis jobs have no torch (the weights are read by snapshots.SnapshotReader).
phase.h5 and the PCA file are read by `phase.read` and `pca.read`, beside their writers. The per-token
loss matrix, the one large dataset, is not read here: no analysis needs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io

# head scores in head_scores.h5, each [snapshot, layer, head]
HEAD_SCORES = ("prefix_matching", "copying", "copying_with_bos", "previous_token", "ov_copying", "qk_trace")
ABLATION_METHODS = ("full", "pattern_preserving")


@dataclass(frozen=True)
class Training:
    """snapshots.h5 of one run, its weights left out."""

    path: Path
    spec: dict[str, Any]  # the model's settings (config.run_spec)
    tokens_per_step: int
    steps: np.ndarray  # [snapshot]
    tokens_seen: np.ndarray  # [snapshot]
    train_loss: np.ndarray  # [step], nats/token; empty for an imported checkpoint series


def training(path: str | Path) -> Training:
    with h5io.open_input(path, "train") as f:
        return Training(
            Path(path),
            h5io.read_json_attr(f, "spec"),
            int(f.attrs["tokens_per_step"]),
            h5io.read(f, "steps"),
            h5io.read(f, "tokens_seen"),
            h5io.read(f, "train_loss"),
        )


@dataclass(frozen=True)
class Losses:
    """losses.h5 of one run: every array is [snapshot, ...]."""

    path: Path
    model: str
    seed: int
    config_hash: str  # of the run's training settings
    evalset_hash: str  # of the evaluation set the losses were measured on
    icl_early: int  # the ICL score is mean L over tokens late ± window minus over early ± window
    icl_late: int
    icl_window: int
    steps: np.ndarray
    tokens_seen: np.ndarray
    icl_score: np.ndarray  # nats
    icl_score_se: np.ndarray
    mean_loss: np.ndarray  # [snapshot, context index - 1], nats
    random_token_loss: np.ndarray  # [snapshot, example], nats


def losses(path: str | Path) -> Losses:
    with h5io.open_input(path, "losses") as f:
        arrays = {
            k: h5io.read(f, k)
            for k in ("steps", "tokens_seen", "icl_score", "icl_score_se", "mean_loss", "random_token_loss")
        }
        return Losses(
            Path(path),
            str(f.attrs["model"]),
            int(f.attrs["seed"]),
            str(f.attrs["config_hash"]),
            str(f.attrs["evalset_hash"]),
            int(f.attrs["icl_early"]),
            int(f.attrs["icl_late"]),
            int(f.attrs["icl_window"]),
            **arrays,
        )


@dataclass(frozen=True)
class HeadScores:
    """head_scores.h5 of one run: `scores[name]` is [snapshot, layer, head] for each of HEAD_SCORES."""

    path: Path
    model: str
    seed: int
    steps: np.ndarray
    tokens_seen: np.ndarray
    scores: dict[str, np.ndarray]


def head_scores(path: str | Path) -> HeadScores:
    with h5io.open_input(path, "head_scores") as f:
        return HeadScores(
            Path(path),
            str(f.attrs["model"]),
            int(f.attrs["seed"]),
            h5io.read(f, "steps"),
            h5io.read(f, "tokens_seen"),
            {k: h5io.read(f, k) for k in HEAD_SCORES},
        )


@dataclass(frozen=True)
class Ablation:
    """ablation.h5 of one run, at its ablated snapshots: `effects[method][name]` is [snapshot, layer,
    head] for delta_icl_score and before_after_projection (NaN when not `projection_evaluable`)."""

    path: Path
    steps: np.ndarray
    tokens_seen: np.ndarray
    clean_icl_score: np.ndarray
    induction_heads: np.ndarray  # [layer, head] bool, at the last snapshot
    joint_delta_icl: dict[str, float]  # all induction heads removed together, per method
    projection_evaluable: bool
    effects: dict[str, dict[str, np.ndarray]]


def ablation(path: str | Path) -> Ablation:
    with h5io.open_input(path, "ablation") as f:
        effects = {
            method: {k: h5io.read(f, f"{method}/{k}") for k in ("delta_icl_score", "before_after_projection")}
            for method in ABLATION_METHODS
        }
        return Ablation(
            Path(path),
            h5io.read(f, "steps"),
            h5io.read(f, "tokens_seen"),
            h5io.read(f, "clean_icl_score"),
            h5io.read(f, "induction_heads").astype(bool),
            json.loads(f.attrs["induction_heads_joint_delta_icl"]),
            bool(f.attrs["projection_evaluable"]),
            effects,
        )
