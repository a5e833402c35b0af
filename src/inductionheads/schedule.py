"""Which steps are snapshotted and which snapshots are ablated (numpy only: the config check and the
Snakefile use these without loading torch)."""

from __future__ import annotations

import numpy as np


def snapshot_steps(steps: int, n_snapshots: int, log_snapshots: int = 0) -> np.ndarray:
    """Step 0, `n_snapshots` steps at linear intervals ending at `steps`, and `log_snapshots` steps
    spaced geometrically from 1 to `steps` (dense early, where a linear grid has no points before a fast
    change), merged in order without duplicates."""
    linear = np.round(np.linspace(0, steps, n_snapshots + 1))
    geometric = np.round(np.geomspace(1, steps, log_snapshots)) if log_snapshots else np.zeros(0)
    return np.unique(np.concatenate([linear, geometric]).astype(np.int64))


def ablated_positions(n_snapshots: int, every: int) -> np.ndarray:
    """Snapshot positions to ablate: every `every`-th from the first, and always the last."""
    return np.unique(np.append(np.arange(0, n_snapshots, every), n_snapshots - 1))
