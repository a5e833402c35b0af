"""The one place that reads and writes HDF5: atomic writes, self-describing metadata, clear errors.

Every file carries attributes `stage`, `package_version`, `config_hash` and `created`; every dataset
an `axes` attribute naming its dimensions (and `units` where it has them).

Every dataset also carries CRC-32 checksums, sealed when the file is complete: one per row along the
leading axis for arrays of 2 or more dimensions (so a reader of one snapshot verifies just that
snapshot), one for the whole array otherwise. `read` verifies what it reads; the file attribute
`integrity` hashes all checksums, a fingerprint of the file's contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__


class H5Error(RuntimeError):
    """A missing, unreadable or foreign HDF5 input; the message names the file."""


@contextmanager
def atomic_writer(path: str | Path, stage: str, config_hash: str, **attrs: Any) -> Iterator[h5py.File]:
    """Open `path`.tmp for writing and rename it to `path` only when the block completes.

    A killed job leaves at most a `.tmp` file, never a file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["stage"] = stage
            f.attrs["package_version"] = __version__
            f.attrs["config_hash"] = config_hash
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
            yield f
            f.attrs["integrity"] = _seal(f)
            f.attrs["complete"] = True
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def _datasets(f: h5py.File) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []
    f.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found, key=lambda ds: ds.name)


def _seal(f: h5py.File) -> str:
    """Write every dataset's checksums; return the file's integrity hash."""
    digest = hashlib.sha256()
    for ds in _datasets(f):
        if ds.ndim >= 2:
            crcs = np.array([_crc(ds[i]) for i in range(ds.shape[0])], dtype=np.uint32)
            ds.attrs["crc32_rows"] = crcs
        else:
            crcs = np.array([_crc(ds[()])], dtype=np.uint32)
            ds.attrs["crc32"] = crcs[0]
        digest.update(ds.name.encode() + crcs.tobytes())
    return digest.hexdigest()[:16]


def read(f: h5py.File, name: str, index: int | None = None) -> np.ndarray:
    """Read dataset `name` (or its row `index`) and verify it against its checksums."""
    if name not in f:
        raise H5Error(f"{f.filename}: lacks dataset {name}")
    ds = f[name]
    data = ds[()] if index is None else ds[index]
    if "crc32_rows" in ds.attrs:
        crcs = ds.attrs["crc32_rows"]
        rows = range(len(data)) if index is None else [None]
        for i in rows:
            row = data if i is None else data[i]
            expected = crcs[index if i is None else i]
            if _crc(row) != expected:
                where = index if i is None else i
                raise H5Error(
                    f"{f.filename}: dataset {name} row {where} fails its checksum; the file is corrupt, "
                    "delete it and rerun the workflow to rebuild it"
                )
    elif "crc32" in ds.attrs and index is None and _crc(data) != ds.attrs["crc32"]:
        raise H5Error(
            f"{f.filename}: dataset {name} fails its checksum; the file is corrupt, "
            "delete it and rerun the workflow to rebuild it"
        )
    return data


def write(
    f: h5py.Group,
    name: str,
    data,
    axes: tuple[str, ...],
    units: str | None = None,
    compress: bool = False,
    **kwargs,
) -> h5py.Dataset:
    """Create a dataset with its axis names (and units); `compress` uses gzip for large matrices."""
    data = np.asarray(data)
    if len(axes) != data.ndim:
        raise ValueError(f"dataset {name}: {data.ndim} dimensions but axes {axes}")
    opts = dict(compression="gzip", compression_opts=4, shuffle=True) if compress and data.ndim else {}
    ds = f.create_dataset(name, data=data, **opts, **kwargs)
    ds.attrs["axes"] = json.dumps(list(axes))
    if units:
        ds.attrs["units"] = units
    return ds


def open_input(path: str | Path, stage: str) -> h5py.File:
    """Open a stage's output read-only (mode "r" never touches the mtime), checking it is one."""
    path = Path(path)
    if not path.exists():
        raise H5Error(f"{path}: missing input (expected the output of stage '{stage}')")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise H5Error(f"{path}: not a readable HDF5 file ({exc}); delete it and rerun to rebuild it") from exc
    found = f.attrs.get("stage")
    if found != stage or not f.attrs.get("complete", False) or "integrity" not in f.attrs:
        f.close()
        what = "incomplete" if found == stage else f"written by stage '{found}'"
        raise H5Error(f"{path}: {what}, expected a complete output of stage '{stage}'")
    return f


def read_json_attr(f: h5py.File | h5py.Group, key: str) -> Any:
    return json.loads(f.attrs[key])


MANIFEST_COLUMNS = ("file", "stage", "config_hash", "integrity", "package_version", "created", "bytes")


def manifest_row(path: str | Path) -> dict[str, str]:
    """Provenance of one complete output: what produced it and the fingerprint of its contents."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        row = {key: str(f.attrs.get(key, "")) for key in MANIFEST_COLUMNS[1:-1]}
    return {"file": str(path), **row, "bytes": str(path.stat().st_size)}


def write_manifest(paths: list[str], out: str | Path) -> None:
    """A TSV with one row per HDF5 file (`MANIFEST_COLUMNS`), written atomically."""
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += ["\t".join(manifest_row(p)[c] for c in MANIFEST_COLUMNS) for p in paths]
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)


# attributes that describe one file rather than its contents: never carried into a merged file
_FILE_ATTRS = ("stage", "package_version", "config_hash", "created", "integrity", "complete", "shard")


def shard_label(shard: int, n_shards: int) -> str:
    return f"{shard + 1}/{n_shards}"


def merge_shards(
    paths: list[str | Path], out_path: str | Path, stage: str, row_axes: tuple[str, ...]
) -> None:
    """Merge a stage's snapshot-range shards (in order) into one file, as one unsharded job writes it.

    Datasets whose first axis is in `row_axes` are concatenated along it; every other dataset and
    attribute must agree between the shards (or be present in one shard only, such as what is
    computed at the last snapshot). Dtype, chunking, compression, axes and units are kept.
    """
    files = [open_input(p, stage) for p in paths]
    try:
        for i, (path, f) in enumerate(zip(paths, files, strict=True)):
            if f.attrs.get("shard") != shard_label(i, len(files)):
                raise H5Error(
                    f"{path}: is shard {f.attrs.get('shard')}, expected shard {shard_label(i, len(files))}"
                )
            if f.attrs["config_hash"] != files[0].attrs["config_hash"]:
                raise H5Error(f"{path}: config hash differs from {paths[0]}'s: shards of different runs")
        attrs: dict[str, Any] = {}
        for path, f in zip(paths, files, strict=True):
            for key, value in f.attrs.items():
                if key in _FILE_ATTRS:
                    continue
                if key in attrs and not np.array_equal(attrs[key], value):
                    raise H5Error(f"{path}: attribute {key} differs between shards")
                attrs[key] = value
        names = [ds.name for ds in _datasets(files[0])]
        with atomic_writer(out_path, stage, str(files[0].attrs["config_hash"]), **attrs) as out:
            for name in names:
                parts = [f[name] for f in files]
                first = parts[0]
                axes = json.loads(first.attrs["axes"])
                if axes and axes[0] in row_axes:
                    shape = (sum(p.shape[0] for p in parts), *first.shape[1:])
                else:
                    shape = first.shape
                    for path, p in zip(paths, parts, strict=True):
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
