"""The one place that reads and writes HDF5: atomic writes, self-describing metadata, clear errors.

Every file carries attributes `stage`, `package_version`, `config_hash` and `created`; every dataset
an `axes` attribute naming its dimensions (and `units` where it has them).

Every dataset also carries CRC-32 checksums, sealed when the file is complete: one per row along the
leading axis for arrays of 2 or more dimensions (so a reader of one snapshot verifies just that
snapshot), one for the whole array otherwise. Every object's attributes carry one CRC-32 each
(`crc32_attrs`), checked whenever the file is opened, since a computation reads its settings from
them. The file attribute `integrity` hashes all checksums (the `created` time left out): a fingerprint
of the file's contents, recomputed on opening. `verify` re-reads every byte of a file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
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


class WriteFailure(OSError):
    """A write that failed (a full disk, most often), with the file and the space; see `write_failure`."""


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path`, renamed to `path` only when the block completes: the one way
    every output is written. A killed job leaves at most the temporary file, never a file under the
    final name; a failed one not even that. A full disk is reported with the file and the space."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + suffix)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if disk_full(exc) and not isinstance(exc, WriteFailure):
            raise write_failure(path, exc, written) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_writer(path: str | Path, stage: str, config_hash: str, **attrs: Any) -> Iterator[h5py.File]:
    """An HDF5 output of `stage`, written through `atomic_path`, with the file attributes and, when the
    block completes, the checksums."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["stage"] = stage
        f.attrs["package_version"] = __version__
        f.attrs["config_hash"] = config_hash
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for key, value in attrs.items():
            # sorted keys: equal settings give equal bytes, so equal fingerprints
            f.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        yield f
        f.attrs["integrity"] = _seal(f)
        f.attrs["complete"] = True


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write that failed for lack of space (HDF5 reports errno 28 in its text)."""
    text = str(exc)
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text or "errno = 28" in text


def size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} TB"


def write_failure(path: Path, exc: BaseException, written: int, needed: int | None = None) -> WriteFailure:
    """The error for a failed write of `path` (`needed` bytes, when known): the file, and the space
    written, free and needed."""
    free = shutil.disk_usage(path.parent).free
    full = disk_full(exc) or (needed is not None and free < needed)
    need = f"about {size_text(needed)}" if needed is not None else "more than is free"
    return WriteFailure(
        errno.ENOSPC if full else errno.EIO,
        f"{path}: could not be written: {exc.__class__.__name__}: {str(exc).splitlines()[0]}. "
        f"{size_text(written)} were written before it failed and {size_text(free)} are free on its file "
        f"system; it needs {need}. Free space and rerun: nothing already completed is lost, and the "
        "partial file was removed",
    )


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def datasets(f: h5py.File) -> list[h5py.Dataset]:
    return [obj for obj in _objects(f) if isinstance(obj, h5py.Dataset)]


def _objects(f: h5py.File) -> list[h5py.Group | h5py.Dataset]:
    """The file's root and every group and dataset in it, by name."""
    found: list = [f]
    f.visititems(lambda _, obj: found.append(obj))
    return sorted(found, key=lambda obj: obj.name)


# written when the file is sealed, after the attribute checksums: `integrity` is verified by
# recomputing it, `complete` by being True
SEAL_ATTRS = ("crc32_attrs", "integrity", "complete")


def _attr_bytes(value: Any) -> bytes:
    """A canonical byte form of an attribute value as h5py returns it, typed so 1 and "1" differ."""
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return b"b" + value
    array = np.asarray(value)
    if array.dtype.kind == "O":
        return b"o" + json.dumps([str(x) for x in array.ravel()]).encode()
    return f"{array.dtype.str}{array.shape}".encode() + array.tobytes()


def _read_attrs(obj: h5py.Group | h5py.Dataset) -> dict[str, Any]:
    """Every attribute of `obj`, a damaged one named."""
    out = {}
    for key in obj.attrs:
        try:
            out[key] = obj.attrs[key]
        except Exception as exc:  # a flipped bit in a string attribute can break its decoding
            raise _corrupt(obj.file, f"attribute {key} of {obj.name} is unreadable ({exc})") from exc
    return out


def _attr_crcs(attrs: dict[str, Any]) -> dict[str, int]:
    return {key: zlib.crc32(_attr_bytes(value)) for key, value in attrs.items() if key not in SEAL_ATTRS}


def _fingerprint(objects: list, attr_crcs: list[dict[str, int]]) -> str:
    """The integrity hash from the stored checksums alone: cheap enough to check on every opening."""
    digest = hashlib.sha256()
    for obj, crcs in zip(objects, attr_crcs, strict=True):
        kept = {k: v for k, v in crcs.items() if not (obj.name == "/" and k == "created")}
        digest.update(obj.name.encode() + json.dumps(kept, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _seal(f: h5py.File) -> str:
    """Write every dataset's checksums, then every object's attribute checksums; return the file's
    integrity hash."""
    for ds in datasets(f):
        if ds.ndim >= 2:
            ds.attrs["crc32_rows"] = np.array([_crc(ds[i]) for i in range(ds.shape[0])], dtype=np.uint32)
        else:
            ds.attrs["crc32"] = np.uint32(_crc(ds[()]))
    objects = _objects(f)
    crcs = [_attr_crcs(_read_attrs(obj)) for obj in objects]
    for obj, obj_crcs in zip(objects, crcs, strict=True):
        obj.attrs["crc32_attrs"] = json.dumps(obj_crcs, sort_keys=True)
    return _fingerprint(objects, crcs)


def _corrupt(f: h5py.File, what: str) -> H5Error:
    return H5Error(
        f"{f.filename}: {what}; the file is corrupt, delete it and rerun the workflow to rebuild it"
    )


def verify_attrs(f: h5py.File) -> None:
    """Check every attribute against its checksum and the file's integrity hash against its recomputed
    value; raise H5Error naming the first attribute that fails."""
    objects = _objects(f)
    crcs = []
    for obj in objects:
        if "crc32_attrs" not in obj.attrs:
            raise _corrupt(
                f,
                f"{obj.name} has no attribute checksums (added after sealing, or written by "
                "an older version)",
            )
        attrs = _read_attrs(obj)
        try:
            stored = json.loads(attrs["crc32_attrs"])
        except ValueError as exc:
            raise _corrupt(f, f"the attribute checksums of {obj.name} are unreadable") from exc
        found = _attr_crcs(attrs)
        for key in sorted(set(stored) | set(found)):
            if key not in found:
                raise _corrupt(f, f"{obj.name} lacks its attribute {key}")
            if key not in stored:
                raise _corrupt(f, f"attribute {key} of {obj.name} was added after the file was sealed")
            if found[key] != stored[key]:
                raise _corrupt(f, f"attribute {key} of {obj.name} fails its checksum")
        crcs.append(stored)
    if str(f.attrs.get("integrity", "")) != _fingerprint(objects, crcs):
        raise _corrupt(f, "its integrity hash does not match its checksums")


def read(f: h5py.File, name: str, index: int | None = None) -> np.ndarray:
    """Read dataset `name` (or its row `index`) and verify it against its checksums."""
    if name not in f:
        raise H5Error(f"{f.filename}: lacks dataset {name}")
    ds = f[name]
    try:
        data = ds[()] if index is None else ds[index]
    except OSError as exc:  # a damaged compressed chunk: HDF5's filter fails
        where = "" if index is None else f" row {index}"
        raise _corrupt(f, f"dataset {name}{where} is unreadable ({exc})") from exc
    if "crc32_rows" in ds.attrs:
        crcs = ds.attrs["crc32_rows"]
        rows = range(len(data)) if index is None else [None]
        for i in rows:
            row = data if i is None else data[i]
            expected = crcs[index if i is None else i]
            if _crc(row) != expected:
                raise _corrupt(f, f"dataset {name} row {index if i is None else i} fails its checksum")
    elif "crc32" in ds.attrs and index is None and _crc(data) != ds.attrs["crc32"]:
        raise _corrupt(f, f"dataset {name} fails its checksum")
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


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise H5Error(f"{path}: not a readable HDF5 file ({exc}); delete it and rerun to rebuild it") from exc


def open_input(path: str | Path, stage: str) -> h5py.File:
    """Open a stage's output read-only (mode "r" never touches the mtime), checking it is one and that
    its attributes are intact; `read` verifies each dataset as it is read."""
    path = Path(path)
    if not path.exists():
        raise H5Error(f"{path}: missing input (expected the output of stage '{stage}')")
    f = _open(path)
    try:
        found = f.attrs.get("stage")
        if found != stage or not f.attrs.get("complete", False) or "integrity" not in f.attrs:
            what = "incomplete" if found == stage else f"written by stage '{found}'"
            raise H5Error(f"{path}: {what}, expected a complete output of stage '{stage}'")
        verify_attrs(f)
    except BaseException:
        f.close()
        raise
    return f


def verify_file(path: str | Path) -> str:
    """Re-check every attribute and every row of every dataset of a complete output; return its
    integrity hash. Raises H5Error naming what fails."""
    path = Path(path)
    with _open(path) as f:
        if not f.attrs.get("complete", False):
            raise H5Error(f"{path}: incomplete; delete it and rerun to rebuild it")
        verify_attrs(f)
        for ds in datasets(f):
            rows = range(ds.shape[0]) if ds.ndim >= 2 else [None]
            for i in rows:
                read(f, ds.name.lstrip("/"), i)
        return str(f.attrs["integrity"])


def read_json_attr(f: h5py.File | h5py.Group, key: str) -> Any:
    return json.loads(f.attrs[key])
