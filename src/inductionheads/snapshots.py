"""The snapshot file of one model: every parameter stacked along a leading snapshot axis.

Layout: `params/<name>` [snapshot, ...] for each parameter (TransformerLens-style names such as
`blocks.1.attn.W_Q`), `steps` and `tokens_seen` [snapshot], `train_loss` [step]; the model spec and
vocabulary size as attributes, so a snapshot can be rebuilt from the file alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from . import h5io
from .model import Transformer

STAGE = "train"


def snapshot_steps(steps: int, n_snapshots: int) -> np.ndarray:
    """Step 0 plus `n_snapshots` steps at linear intervals, ending at `steps`."""
    return np.unique(np.round(np.linspace(0, steps, n_snapshots + 1)).astype(np.int64))


class SnapshotReader:
    """Reads one snapshot at a time, so memory does not grow with the snapshot count."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = h5io.open_input(self.path, STAGE)
        self.spec = h5io.read_json_attr(self._f, "spec")
        self.vocab_size = int(self._f.attrs["vocab_size"])
        self.config_hash = str(self._f.attrs["config_hash"])
        self.steps = h5io.read(self._f, "steps")
        self.tokens_seen = h5io.read(self._f, "tokens_seen")

    def __len__(self) -> int:
        return len(self.steps)

    def train_loss(self) -> np.ndarray:
        return h5io.read(self._f, "train_loss")

    def model(self, index: int, device: str | torch.device = "cpu") -> Transformer:
        """The snapshot at position `index` (negative counts from the end) as an eval-mode module."""
        index = range(len(self))[index]
        model = Transformer(self.spec, self.vocab_size)
        if "params" not in self._f:
            raise h5io.H5Error(f"{self.path}: lacks the group params")
        names = list(self._f["params"])
        state = {n: torch.from_numpy(h5io.read(self._f, f"params/{n}", index)) for n in names}
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()

    def __iter__(self) -> Iterator[tuple[int, Transformer]]:
        for i in range(len(self)):
            yield int(self.steps[i]), self.model(i)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
