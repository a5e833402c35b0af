"""Provenance of an experiment's outputs: the manifest (one verified row per HDF5 file) and `verify`, which
re-checks every HDF5 file under a directory without recomputing anything."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py

from .h5io import H5Error, atomic_path, verify_file

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("file", "stage", "config_hash", "integrity", "package_version", "created", "bytes")


def manifest_row(path: str | Path) -> dict[str, str]:
    """Provenance of one complete output, verified: what produced it and the fingerprint of its contents."""
    path = Path(path)
    integrity = verify_file(path)  # a fingerprint is listed only once it is known to be true
    with h5py.File(path, "r") as f:
        row = {key: str(f.attrs.get(key, "")) for key in MANIFEST_COLUMNS[1:-1]}
    return {"file": str(path), **row, "integrity": integrity, "bytes": str(path.stat().st_size)}


def write(files: list[str], manifest: str | Path) -> None:
    """A TSV with one row per HDF5 file (`MANIFEST_COLUMNS`), written atomically."""
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += ["\t".join(manifest_row(p)[c] for c in MANIFEST_COLUMNS) for p in files]
    with atomic_path(manifest) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def verify_tree(root: str | Path) -> dict[str, str]:
    """`verify_file` on every HDF5 output under `root` (temporary and resume files left out): each
    file's integrity hash, or "CORRUPT: " and why."""
    found = {}
    for path in sorted(Path(root).rglob("*.h5")):
        try:
            found[str(path)] = verify_file(path)
        except H5Error as exc:
            found[str(path)] = f"CORRUPT: {exc}"
    return found


def verify(directory: str) -> None:
    """Print each HDF5 file's fingerprint (or CORRUPT and why); raise if any fails."""
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found = verify_tree(directory)
    for path, result in found.items():
        print(result if result.startswith("CORRUPT") else f"{result}\t{path}", flush=True)
    bad = [p for p, r in found.items() if r.startswith("CORRUPT")]
    if bad:
        raise H5Error(
            f"{len(bad)} of {len(found)} HDF5 files under {directory} fail verification: delete them and "
            "rerun the workflow to rebuild them"
        )
    log.info("%d HDF5 files under %s verified", len(found), directory)
