"""The snapshot file of one model: every parameter stacked along a leading snapshot axis.

Layout: `params/<name>` [snapshot, ...] for each parameter (TransformerLens-style names such as
`blocks.1.attn.W_Q`), `steps` and `tokens_seen` [snapshot], `train_loss` [step]; the model spec and
vocabulary size as attributes, so a snapshot can be rebuilt from the file alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import device as devices
from . import h5io
from .model import Transformer, param_axes
from .shards import shard_label, shard_positions

STAGE = "train"


def write(
    out_path: str | Path,
    spec: dict[str, Any],
    vocab_size: int,
    steps: np.ndarray,
    tokens_per_step: int,
    train_loss: np.ndarray,
    state: Callable[[int], dict[str, torch.Tensor]],
    **attrs: Any,
) -> None:
    """Write a snapshot file: `state(i)` gives snapshot i's state dict, read one at a time."""
    from .config import digest

    steps = np.asarray(steps, np.int64)
    with h5io.atomic_writer(
        out_path,
        STAGE,
        digest(spec),
        spec=spec,
        vocab_size=vocab_size,
        tokens_per_step=tokens_per_step,
        **attrs,
    ) as f:
        h5io.write(f, "steps", steps, ("snapshot",), units="optimizer steps")
        h5io.write(f, "tokens_seen", steps * tokens_per_step, ("snapshot",), units="tokens")
        h5io.write(f, "train_loss", np.asarray(train_loss, np.float32), ("step",), units="nats/token")
        params = f.create_group("params")
        for index in range(len(steps)):
            for name, tensor in state(index).items():
                if index == 0:
                    ds = params.create_dataset(name, shape=(len(steps), *tensor.shape), dtype="float32")
                    ds.attrs["axes"] = json.dumps(["snapshot", *param_axes(name)])
                params[name][index] = tensor.detach().cpu().numpy()


class SnapshotReader:
    """Reads one snapshot at a time, so memory does not grow with the snapshot count."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = h5io.open_input(self.path, STAGE)
        self.spec = h5io.read_json_attr(self._f, "spec")
        self.vocab_size = int(self._f.attrs["vocab_size"])
        self.config_hash = str(self._f.attrs["config_hash"])
        self.seed = int(self.spec.get("seed", 0))  # which replicate of the model this run is
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
        return self.iterate(range(len(self)))

    def iterate(self, positions, device: str | torch.device = "cpu") -> Iterator[tuple[int, Transformer]]:
        """(step, model) of the snapshots at `positions`, one at a time, on `device`."""
        for i in positions:
            yield int(self.steps[i]), self.model(int(i), device)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ShardedJob:
    """The shared set-up of a measurement or ablation job over one snapshot-range shard: torch's
    threads, the device, the open snapshot file, the shard's snapshot positions (`todo`), and a writer
    whose file names the run, the evaluation set and the shard."""

    def __init__(
        self,
        snapshots: str | Path,
        shard: tuple[int, int],
        threads: int,
        device: str,
        positions: Callable[[int], np.ndarray] = np.arange,
    ):
        torch.set_num_threads(threads)
        self.device = devices.pick(device)
        self.shard = shard
        self.snaps = SnapshotReader(snapshots)
        try:
            self.todo = shard_positions(positions(len(self.snaps)), shard, str(snapshots))
        except BaseException:
            self.snaps.close()
            raise

    def __enter__(self) -> ShardedJob:
        return self

    def __exit__(self, *exc) -> None:
        self.snaps.close()

    def writer(self, path: str | Path, stage: str, evalset_hash: str, **attrs: Any):
        snaps = self.snaps
        return h5io.atomic_writer(
            path,
            stage,
            snaps.config_hash,
            evalset_hash=evalset_hash,
            model=snaps.spec["name"],
            seed=snaps.seed,
            shard=shard_label(*self.shard),
            **attrs,
        )
