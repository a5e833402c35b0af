"""The phase-change window of one model (docs/methods.md §7).

From the ICL score over training:

1. Smooth it with a centred moving average over `icl_smoothing` snapshots that keeps its full width at
   the ends (the first and last points average the first and last `icl_smoothing` snapshots), so that
   neither end of training is a single raw value.
2. Take its lasting level E(t) = max over t' >= t of the smoothed score, and never above the score at the
   start of training: a dip that training later undoes (the first steps show one) is not in-context
   learning formed, and neither is undoing a rise above the untrained model's score (later tokens
   predicted worse than early ones, which a 1-layer model shows as its heads first form).
3. Differentiate E against tokens seen, on an even grid of tokens (snapshots need not be evenly
   spaced). Every local peak of its fall starts a candidate episode: the
   contiguous span around the peak where the fall is at least `window_slope_fraction` of that peak.
   An episode that starts in the first `icl_smoothing` snapshots is cut at its valleys, where the
   fall, having slowed, speeds up again past its slowest since the peak divided by
   `window_valley_fraction`: on some corpora the ICL that forms as training starts (1-layer models
   form it too) runs straight into the phase change, with only a slowing between them.
   The window is the episode that forms the most ICL, E(start) - E(end), not the steepest one: in the
   first steps the score moves fast by small amounts for reasons that are not induction, and the
   steepest fall per token can lie there while the phase change forms far more.
4. Its share of the ICL formed over training: (E(start) - E(end)) / (E(first) - E(last)).

The window is a phase change when it forms at least `min_icl_drop` nats and `window_fraction` of the
ICL formed, spans at most `max_window_span` of training (a steady decline is not a change of phase), has
snapshots before it (at least `icl_smoothing`: a window at the start of training cannot be told from ICL
that forms as training starts), and ends with at least `plateau_fraction` of training after it (a fall
still under way at the last snapshots is "in progress", not a completed phase change).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io, readers

STAGE = "phase"
log = logging.getLogger(__name__)

# a window's status; only the first is a phase change
PHASE_CHANGE, IN_PROGRESS, AT_START, NOT_ENOUGH = "phase change", "in progress", "at start", "too small"
STATUSES = (PHASE_CHANGE, IN_PROGRESS, AT_START, NOT_ENOUGH)
SETTINGS = (
    "icl_smoothing",
    "window_slope_fraction",
    "window_valley_fraction",
    "min_icl_drop",
    "window_fraction",
    "max_window_span",
    "plateau_fraction",
)


def smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Moving average over `width` points, centred where it can be; near the ends the window keeps its
    width and shifts inwards, so every point averages `width` values (all of them if fewer)."""
    y = np.asarray(y, np.float64)
    width = min(width, len(y))
    out = np.empty(len(y), dtype=np.float64)
    for i in range(len(y)):
        lo = min(max(i - width // 2, 0), len(y) - width)
        out[i] = y[lo : lo + width].mean()
    return out


def even_slope(values: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grid, slope per token on it): `values` at `tokens` interpolated onto an even grid of as many
    points over the same tokens, then differentiated. Snapshots a few steps apart (a geometric one beside
    a linear one) would otherwise turn a little noise into a steep slope."""
    tokens = np.asarray(tokens, np.float64)
    grid = np.linspace(tokens[0], tokens[-1], len(tokens))
    return grid, np.gradient(np.interp(grid, tokens, np.asarray(values, np.float64)), grid)


@dataclass
class Window:
    """Indices are snapshot positions; `status` says whether the window is a phase change and, if not,
    why (see STATUSES); has_phase_change is status == "phase change"."""

    start: int
    end: int
    steepest: int
    icl_formed: float  # nats of ICL score formed inside the window (positive: the score fell)
    icl_total: float  # nats formed over all of training
    fraction: float
    span: float  # of training, in tokens seen
    after: float  # share of training after the window's end, in tokens seen
    status: str

    @property
    def has_phase_change(self) -> bool:
        return self.status == PHASE_CHANGE


def _episodes(slope: np.ndarray, slope_fraction: float, valley_fraction: float) -> list[tuple[int, int, int]]:
    """(start, end, peak) of every span around a local peak of the fall (a local minimum of the
    negative slope) where the fall is at least `slope_fraction` of that peak, and no steeper. A span
    stops at a valley: the point where the fall was slowest since the peak, once the fall beyond it
    exceeds that slowest fall divided by `valley_fraction` (two falls, not one; 0: never)."""
    out = set()
    n = len(slope)

    def extend(i: int, step: int, threshold: float) -> int:
        valley = i  # the slowest fall since the peak, on this side
        while 0 <= i + step < n and slope[i + step] <= threshold:
            i += step
            if slope[i] > slope[valley]:
                valley = i
            elif slope[valley] > valley_fraction * slope[i]:  # slopes are negative: falls compared
                return valley
        return i

    for p in range(n):
        left = slope[p - 1] if p > 0 else np.inf
        right = slope[p + 1] if p < n - 1 else np.inf
        if slope[p] < 0 and slope[p] <= left and slope[p] <= right:
            threshold = slope_fraction * slope[p]
            start, end = extend(p, -1, threshold), extend(p, 1, threshold)
            # a small peak whose span takes in a steeper one is part of that one's episode
            if slope[p] <= slope[start : end + 1].min():
                out.add((start, end, p))
    return sorted(out)


def find_window(
    tokens_seen: np.ndarray,
    icl: np.ndarray,
    smoothing: int,
    slope_fraction: float,
    valley_fraction: float,
    min_icl_drop: float,
    min_fraction: float,
    max_span: float,
    plateau_fraction: float,
) -> tuple[Window | None, np.ndarray, np.ndarray]:
    """(window or None when the score never falls for good, lasting level E, slope of E per token)."""
    tokens = np.asarray(tokens_seen, np.float64)
    smoothed = smooth(icl, smoothing)
    lasting = np.minimum(np.maximum.accumulate(smoothed[::-1])[::-1], smoothed[0])
    grid, grid_slope = even_slope(lasting, tokens)
    slope = np.interp(tokens, grid, grid_slope)
    episodes = _episodes(grid_slope, slope_fraction, 0.0)
    if not episodes:
        return None, lasting, slope

    def snapshot(g: int, side: str) -> int:
        """The snapshot at grid point g, or the nearest one before it (left) or after it (right)."""
        i = int(np.searchsorted(tokens, grid[g], "right" if side == "left" else "left"))
        return int(np.clip(i - 1 if side == "left" else i, 0, len(tokens) - 1))

    # An episode from the first snapshots is cut at its valleys: the ICL that forms as training starts
    # may run straight into the phase change, and a valley is all that tells them apart. Later, a fall
    # that slows and speeds up again is one episode: noise in the score does that.
    at_start = [e for e in episodes if snapshot(e[0], "left") < smoothing]
    if at_start:
        episodes = [e for e in episodes if e not in at_start] + [
            cut
            for cut in _episodes(grid_slope, slope_fraction, valley_fraction)
            if any(s <= cut[0] and cut[1] <= e for s, e, _ in at_start)
        ]
    spans = [(snapshot(s, "left"), snapshot(e, "right"), snapshot(p, "right")) for s, e, p in episodes]
    # the most ICL formed; among equals, the earliest
    start, end, peak = max(spans, key=lambda e: (lasting[e[0]] - lasting[e[1]], -e[0]))
    formed = float(lasting[start] - lasting[end])
    total = float(lasting[0] - lasting[-1])
    fraction = formed / total if total > 0 else float("nan")
    duration = tokens[-1] - tokens[0]
    span = float((tokens[end] - tokens[start]) / duration)
    after = float((tokens[-1] - tokens[end]) / duration)
    if not (formed >= min_icl_drop and fraction >= min_fraction and span <= max_span):
        status = NOT_ENOUGH
    elif start < smoothing:
        status = AT_START
    elif after < plateau_fraction:
        status = IN_PROGRESS
    else:
        status = PHASE_CHANGE
    return Window(start, end, peak, formed, total, fraction, span, after, status), lasting, slope


def stored_window(window: Window | None, steps: np.ndarray, tokens_seen: np.ndarray) -> dict[str, Any] | None:
    """The window as stored (a JSON attribute): its fields, has_phase_change, and start and end in steps
    and tokens."""
    if window is None:
        return None
    return {
        **asdict(window),
        "has_phase_change": window.has_phase_change,
        "start_step": int(steps[window.start]),
        "end_step": int(steps[window.end]),
        "start_tokens": int(tokens_seen[window.start]),
        "end_tokens": int(tokens_seen[window.end]),
    }


def read(path: str | Path) -> dict[str, Any]:
    """A phase file as a dict: steps, tokens_seen, lasting ICL level, its slope, the model and seed,
    and the window (None if none)."""
    with h5io.open_input(path, STAGE) as f:
        out = {k: h5io.read(f, k) for k in ("steps", "tokens_seen", "icl_lasting", "icl_slope")}
        out["model"] = str(f.attrs["model"])
        out["seed"] = int(f.attrs["seed"])
        out["window"] = h5io.read_json_attr(f, "window")
    return out


def run(losses: str | Path, phase: str | Path, settings: dict[str, Any]) -> None:
    run = readers.losses(losses)
    steps, tokens, icl = run.steps, run.tokens_seen, run.icl_score
    model, seed, config_hash = run.model, run.seed, run.config_hash
    window, lasting, slope = find_window(tokens, icl, *(settings[k] for k in SETTINGS))
    described = stored_window(window, steps, tokens)
    if window is not None:
        log.info(
            "%s seed %d: window steps %d-%d, %.0f%% of %.3f nats of ICL formed inside: %s",
            model,
            seed,
            described["start_step"],
            described["end_step"],
            100 * window.fraction,
            window.icl_total,
            window.status,
        )
    else:
        log.info("%s seed %d: the smoothed ICL score never falls: no window", model, seed)
    with h5io.atomic_writer(
        phase, STAGE, config_hash, model=model, seed=seed, window=json.dumps(described)
    ) as f:
        h5io.write(f, "steps", steps, ("snapshot",), units="optimizer steps")
        h5io.write(f, "tokens_seen", tokens, ("snapshot",), units="tokens")
        h5io.write(f, "icl_lasting", lasting, ("snapshot",), units="nats")
        h5io.write(f, "icl_slope", slope, ("snapshot",), units="nats per token")
