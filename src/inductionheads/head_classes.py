"""Head classes at the last snapshot (docs/methods.md §5), one definition for the ablation (claim C6),
the figures and the report.

An induction head prefix-matches (prefix matching at or above `induction_prefix_matching`) and copies
(copying score above `induction_copying`; at 0, it raises the token it attends to above the sequence's
other tokens). Prefix matching picks the heads; the copying score's size depends on the corpus, so the
default asks only for its sign.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def induction(prefix_matching: np.ndarray, copying: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """Mask of induction heads, elementwise over the score arrays."""
    return (np.asarray(prefix_matching) >= settings["induction_prefix_matching"]) & (
        np.asarray(copying) > settings["induction_copying"]
    )


def labels(scores: dict[str, np.ndarray], settings: dict[str, Any]) -> np.ndarray:
    """[layer, head] labels at the last snapshot: induction, previous-token (previous-token score at or
    above `previous_token`) or other."""
    pm, cp, prev = (scores[k][-1] for k in ("prefix_matching", "copying", "previous_token"))
    return np.where(
        induction(pm, cp, settings),
        "induction",
        np.where(prev >= settings["previous_token"], "previous-token", "other"),
    )
