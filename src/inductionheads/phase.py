"""The phase-change window of one model (methods.md §7).

From the ICL score over training: smooth it (centred moving average over snapshots), take its lasting
level E(t) = max over t' >= t of the smoothed score (a dip that training later undoes, as in the first
few hundred steps, is not in-context learning formed), differentiate E against tokens seen, and take
the contiguous span around the steepest fall where the fall is at least `window_slope_fraction` of its
steepest. The window's share of the ICL score formed over training is (E(start) - E(end)) /
(E(first) - E(last)); step 0's score is close to zero, so this is the fraction of the final ICL score
formed inside the window.

A model has a phase change when its window holds at least `window_fraction` of that score, forms at
least `min_icl_drop` nats, and spans at most `max_window_span` of training: an ICL score that falls
steadily all along training is not a change of phase.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io

STAGE = "phase"
log = logging.getLogger(__name__)


def smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over `width` points; the window shrinks symmetrically at the ends, so
    every point stays centred and the length is unchanged."""
    half = width // 2
    out = np.empty(len(y), dtype=np.float64)
    for i in range(len(y)):
        h = min(half, i, len(y) - 1 - i)
        out[i] = np.mean(y[i - h : i + h + 1])
    return out


@dataclass
class Window:
    """Indices are snapshot positions; has_phase_change applies the drop and fraction thresholds."""

    start: int
    end: int
    steepest: int
    icl_formed: float  # nats of ICL score formed inside the window (positive: the score fell)
    icl_total: float  # nats formed over all of training
    fraction: float
    has_phase_change: bool


def find_window(
    tokens_seen: np.ndarray,
    icl: np.ndarray,
    smoothing: int,
    slope_fraction: float,
    min_icl_drop: float,
    min_fraction: float,
    max_span: float,
) -> tuple[Window | None, np.ndarray, np.ndarray]:
    """(window or None when the score never falls for good, lasting level E, slope of E per token)."""
    smoothed = smooth(np.asarray(icl, np.float64), smoothing)
    lasting = np.maximum.accumulate(smoothed[::-1])[::-1]
    slope = np.gradient(lasting, np.asarray(tokens_seen, np.float64))
    steepest = int(np.argmin(slope))
    if slope[steepest] >= 0:
        return None, lasting, slope
    threshold = slope_fraction * slope[steepest]
    start = end = steepest
    while start > 0 and slope[start - 1] <= threshold:
        start -= 1
    while end < len(slope) - 1 and slope[end + 1] <= threshold:
        end += 1
    formed = float(lasting[start] - lasting[end])
    total = float(lasting[0] - lasting[-1])
    fraction = formed / total if total > 0 else float("nan")
    tokens_seen = np.asarray(tokens_seen, np.float64)
    span = (tokens_seen[end] - tokens_seen[start]) / (tokens_seen[-1] - tokens_seen[0])
    has = bool(
        total >= min_icl_drop and formed >= min_icl_drop and fraction >= min_fraction and span <= max_span
    )
    return Window(start, end, steepest, formed, total, fraction, has), lasting, slope


def describe(window: Window | None, steps: np.ndarray, tokens_seen: np.ndarray) -> dict[str, Any] | None:
    """The window as stored (a JSON attribute): its fields plus start and end in steps and tokens."""
    if window is None:
        return None
    return {
        **asdict(window),
        "start_step": int(steps[window.start]),
        "end_step": int(steps[window.end]),
        "start_tokens": int(tokens_seen[window.start]),
        "end_tokens": int(tokens_seen[window.end]),
    }


def read(path: str | Path) -> dict[str, Any]:
    """A phase file as a dict: steps, tokens_seen, lasting ICL level, its slope, and the window (None if
    none)."""
    with h5io.open_input(path, STAGE) as f:
        out = {k: h5io.read(f, k) for k in ("steps", "tokens_seen", "icl_lasting", "icl_slope")}
        out["model"] = str(f.attrs["model"])
        out["window"] = h5io.read_json_attr(f, "window")
    return out


def run(losses_path: str | Path, out_path: str | Path, settings: dict[str, Any]) -> None:
    with h5io.open_input(losses_path, "losses") as f:
        steps, tokens, icl = (h5io.read(f, k) for k in ("steps", "tokens_seen", "icl_score"))
        model, config_hash = str(f.attrs["model"]), str(f.attrs["config_hash"])
    window, lasting, slope = find_window(
        tokens,
        icl,
        settings["icl_smoothing"],
        settings["window_slope_fraction"],
        settings["min_icl_drop"],
        settings["window_fraction"],
        settings["max_window_span"],
    )
    described = describe(window, steps, tokens)
    if window is not None:
        log.info(
            "%s: window steps %d-%d, %.0f%% of %.3f nats of ICL formed inside; phase change: %s",
            model,
            described["start_step"],
            described["end_step"],
            100 * window.fraction,
            window.icl_total,
            window.has_phase_change,
        )
    else:
        log.info("%s: the smoothed ICL score never falls: no window", model)
    with h5io.atomic_writer(out_path, STAGE, config_hash, model=model, window=json.dumps(described)) as f:
        h5io.write(f, "steps", steps, ("snapshot",), units="optimizer steps")
        h5io.write(f, "tokens_seen", tokens, ("snapshot",), units="tokens")
        h5io.write(f, "icl_lasting", lasting, ("snapshot",), units="nats")
        h5io.write(f, "icl_slope", slope, ("snapshot",), units="nats per token")
