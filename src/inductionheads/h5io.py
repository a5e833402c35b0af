"""The one place that reads and writes HDF5: atomic writes, self-describing metadata, clear errors.

Every file carries attributes `stage`, `package_version`, `config_hash` and `created`; every dataset
an `axes` attribute naming its dimensions (and `units` where it has them).
"""

from __future__ import annotations

import json
import os
import time
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
            f.attrs["complete"] = True
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    if found != stage or not f.attrs.get("complete", False):
        f.close()
        what = "incomplete" if found == stage else f"written by stage '{found}'"
        raise H5Error(f"{path}: {what}, expected a complete output of stage '{stage}'")
    return f


def read_json_attr(f: h5py.File | h5py.Group, key: str) -> Any:
    return json.loads(f.attrs[key])


def require(f: h5py.File, *names: str) -> None:
    """Fail naming the file and the dataset when an expected dataset is absent."""
    missing = [n for n in names if n not in f]
    if missing:
        raise H5Error(f"{f.filename}: lacks dataset(s) {', '.join(missing)}")
