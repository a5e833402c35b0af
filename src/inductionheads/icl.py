"""The in-context learning score and the loss's slope over context index, from per-token loss
matrices (numpy only: the figure and claim stages read stored losses without loading torch)."""

from __future__ import annotations

import numpy as np


def icl_score(losses: np.ndarray, early: int, late: int, window: int = 0) -> tuple[float, float]:
    """Mean over examples of L_late - L_early, and its standard error. `losses` is [example, T-1].

    With `window` > 0, L_early and L_late are each example's mean loss over tokens early ± window and
    late ± window: the same quantity with far less variance per example (window 0 is the paper's).
    """
    lo, hi = early - 1 - window, late - 1 + window
    if lo < 0 or hi >= losses.shape[1]:
        raise ValueError(f"ICL tokens {early} and {late} ± {window} fall outside 1..{losses.shape[1]}")
    width = 2 * window + 1
    early_loss = losses[:, lo : lo + width].astype(np.float64).mean(1)
    late_loss = losses[:, hi - width + 1 : hi + 1].astype(np.float64).mean(1)
    diff = late_loss - early_loss
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def dloss_dlog_index(mean_loss: np.ndarray, n_bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """d Loss / d ln(i) of context-index-averaged losses [..., T-1].

    Losses are averaged in log-spaced bins of i, then differentiated against the mean ln(i) of each
    bin. Returns (bin centres in i, derivative [..., bins]). The bins are wide because the mean loss at
    one index carries the evaluation set's noise (about 0.2 nats over 128 contexts), the same at every
    snapshot, and differentiating over ln(i) magnifies it: with 24 bins it showed as fixed stripes.
    """
    n = mean_loss.shape[-1]
    index = np.arange(1, n + 1)
    edges = np.unique(np.round(np.geomspace(1, n + 1, n_bins + 1)).astype(int))
    binned, centres = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        binned.append(mean_loss[..., lo - 1 : hi - 1].mean(-1))
        centres.append(np.log(index[lo - 1 : hi - 1]).mean())
    binned, centres = np.stack(binned, -1), np.array(centres)
    return np.exp(centres), np.gradient(binned, centres, axis=-1)
