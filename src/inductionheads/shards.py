"""Snapshot-range shards of the measurement and ablation stages: which snapshots a shard takes, and
merging a run's shards, in order, into exactly the file one unsharded job writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .h5io import SEAL_ATTRS, H5Error, atomic_writer, datasets, open_input, read

# the leading axis along which each sharded stage's files are concatenated
SHARD_AXES = {"losses": ("snapshot",), "head_scores": ("snapshot",), "ablation": ("ablated_snapshot",)}


# attributes that describe one file rather than its contents: never carried into a merged file
_FILE_ATTRS = ("stage", "package_version", "config_hash", "created", "shard", *SEAL_ATTRS)


def shard_positions(positions: np.ndarray, shard: tuple[int, int], what: str) -> np.ndarray:
    """Shard `shard` = (index, count) of `positions`: contiguous near-equal ranges, in order, so that
    merging the shards' rows in shard order restores the unsharded file."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index + 1} of {count} does not exist")
    part = np.array_split(np.asarray(positions), count)[index]
    if not len(part):
        raise ValueError(
            f"{what}: shard {index + 1} of {count} gets none of its {len(positions)} snapshots; "
            "lower the config key 'shards'"
        )
    return part


def shard_label(shard: int, n_shards: int) -> str:
    return f"{shard + 1}/{n_shards}"


def merge(shards: list[str], merged: str | Path, *, kind: str) -> None:
    """Merge a stage's snapshot-range shards (in order) into one file, as one unsharded job writes it.

    Datasets whose first axis is the stage's row axis (`SHARD_AXES`) are concatenated along it; every
    other dataset and attribute must agree between the shards (or be present in one shard only, such
    as what is computed at the last snapshot). Dtype, chunking, compression, axes and units are kept.
    """
    files = [open_input(p, kind) for p in shards]
    try:
        for i, (path, f) in enumerate(zip(shards, files, strict=True)):
            if f.attrs.get("shard") != shard_label(i, len(files)):
                raise H5Error(
                    f"{path}: is shard {f.attrs.get('shard')}, expected shard {shard_label(i, len(files))}"
                )
            if f.attrs["config_hash"] != files[0].attrs["config_hash"]:
                raise H5Error(f"{path}: config hash differs from {shards[0]}'s: shards of different runs")
        attrs: dict[str, Any] = {}
        for path, f in zip(shards, files, strict=True):
            for key, value in f.attrs.items():
                if key in _FILE_ATTRS:
                    continue
                if key in attrs and not np.array_equal(attrs[key], value):
                    raise H5Error(f"{path}: attribute {key} differs between shards")
                attrs[key] = value
        names = [ds.name for ds in datasets(files[0])]
        with atomic_writer(merged, kind, str(files[0].attrs["config_hash"]), **attrs) as out:
            for name in names:
                parts = [f[name] for f in files]
                first = parts[0]
                axes = json.loads(first.attrs["axes"])
                if axes and axes[0] in SHARD_AXES[kind]:
                    shape = (sum(p.shape[0] for p in parts), *first.shape[1:])
                else:
                    shape = first.shape
                    for path, p in zip(shards, parts, strict=True):
                        same = read(p.file, name), read(first.file, name)
                        if not np.array_equal(*same, equal_nan=p.dtype.kind == "f"):
                            raise H5Error(f"{path}: dataset {name} differs between shards")
                    parts = parts[:1]
                ds = out.create_dataset(
                    name,
                    shape=shape,
                    dtype=first.dtype,
                    chunks=first.chunks,
                    compression=first.compression,
                    compression_opts=first.compression_opts,
                    shuffle=first.shuffle,
                )
                for key in ("axes", "units"):
                    if key in first.attrs:
                        ds.attrs[key] = first.attrs[key]
                if first.ndim >= 2:  # row by row: a loss matrix need not fit in memory at once
                    row = 0
                    for p in parts:
                        for i in range(p.shape[0]):
                            ds[row] = read(p.file, p.name, i)
                            row += 1
                else:
                    ds[()] = (
                        np.concatenate([read(p.file, p.name) for p in parts])
                        if first.ndim
                        else read(first.file, first.name)
                    )
    finally:
        for f in files:
            f.close()
