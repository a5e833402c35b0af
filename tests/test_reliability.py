"""What a hostile but realistic user tries (docs/reliability.md, one test per row of its table):
damaged files are named, files on disk cannot run code, failures say what to do and lose nothing."""

import errno
import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from inductionheads import cli, corpus, h5io, manifest
from inductionheads.train import Checkpoints, train

SPEC = dict(name="m", family="attention-only", n_layers=1, d_model=8, n_heads=2, context_length=16,
            batch_size=2, steps=20, n_snapshots=2, lr=0.01, warmup_steps=0, lr_schedule="constant",
            weight_decay=0.0, grad_clip=0.0, seed=0)  # fmt: skip


@pytest.fixture()
def tokens(tmp_path):
    path = tmp_path / "tokens.h5"
    rng = np.random.default_rng(0)
    with h5io.atomic_writer(path, "corpus", "test", vocab_size=30, bos_id=0) as f:
        h5io.write(f, "train", rng.integers(1, 30, size=4000), ("token",))
    return path


def evalset_like(path: Path) -> Path:
    with h5io.atomic_writer(path, "evalset", "abc", icl_early=10, icl_late=50, model="attn2-original") as f:
        h5io.write(f, "contexts", np.arange(12).reshape(3, 4), ("example", "token"))
    return path


def test_a_changed_attribute_is_named_like_a_corrupt_dataset(tmp_path):
    path = evalset_like(tmp_path / "evalset.h5")
    with h5py.File(path, "r+") as f:  # the case: icl_late 50 -> 48, nothing else touched
        f.attrs["icl_late"] = 48
    with pytest.raises(h5io.H5Error, match=r"evalset\.h5: attribute icl_late of / fails its checksum"):
        h5io.open_input(path, "evalset")


def test_a_flipped_bit_in_a_stored_attribute_is_named(tmp_path):
    path = evalset_like(tmp_path / "evalset.h5")
    data = bytearray(path.read_bytes())
    at = data.index(b"attn2-original")
    data[at + 5] ^= 0x01  # "-" -> ","
    path.write_bytes(bytes(data))
    with pytest.raises(h5io.H5Error, match=r"attribute model of / fails its checksum; the file is corrupt"):
        h5io.open_input(path, "evalset")


def test_attributes_of_datasets_and_the_fingerprint_itself_are_covered(tmp_path):
    path = evalset_like(tmp_path / "a.h5")
    with h5py.File(path, "r+") as f:
        f["contexts"].attrs["units"] = "tokens"  # added after sealing
    with pytest.raises(h5io.H5Error, match=r"units of /contexts was added after the file was sealed"):
        h5io.open_input(path, "evalset")
    path = evalset_like(tmp_path / "b.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["integrity"] = "0123456789abcdef"
    with pytest.raises(h5io.H5Error, match=r"integrity hash does not match"):
        h5io.open_input(path, "evalset")


def test_the_manifest_and_verify_check_every_byte_before_listing(tmp_path, capsys):
    good = evalset_like(tmp_path / "results" / "good.h5")
    bad = evalset_like(tmp_path / "results" / "sub" / "bad.h5")
    with h5py.File(bad, "r") as f:
        offset = f["contexts"].id.get_offset()
    data = bytearray(bad.read_bytes())
    data[offset + 3] ^= 0xFF
    bad.write_bytes(bytes(data))
    manifest.write([str(good)], tmp_path / "manifest.tsv")
    with pytest.raises(h5io.H5Error, match=r"bad\.h5: dataset contexts row 0 fails its checksum"):
        manifest.write([str(good), str(bad)], tmp_path / "manifest.tsv")
    assert len((tmp_path / "manifest.tsv").read_text().splitlines()) == 2  # the old one, intact
    assert cli.main(["verify", "--directory", str(tmp_path / "results")]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT" in out and "bad.h5" in out
    assert f"{h5io.verify_file(good)}\t{good}" in out
    bad.unlink()
    assert cli.main(["verify", "--directory", str(tmp_path / "results")]) == 0


def test_a_damaged_compressed_chunk_names_the_file_and_dataset(tmp_path):
    path = tmp_path / "tokens.h5"
    with h5io.atomic_writer(path, "corpus", "abc") as f:
        h5io.write(f, "train", np.random.default_rng(0).integers(0, 300, 50_000), ("token",), compress=True)
    with h5py.File(path, "r") as f:
        chunk = f["train"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    for i in range(64):  # wreck the deflate stream, not just one value
        data[chunk.byte_offset + 40 + i] ^= 0xFF
    path.write_bytes(bytes(data))
    with h5io.open_input(path, "corpus") as f:
        with pytest.raises(
            h5io.H5Error, match=r"tokens\.h5: dataset train (is unreadable|fails its checksum)"
        ):
            h5io.read(f, "train")


class Payload:
    """Unpickling this runs code: touches `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_resume_state_runs_no_code(tokens, tmp_path):
    out = tmp_path / "snapshots.h5"
    marker = tmp_path / "PWNED"
    resume = out.with_name("snapshots.h5.resume")
    resume.mkdir()
    with open(resume / "state.pt", "wb") as f:
        pickle.dump({"step": Payload(marker)}, f, protocol=2)
    train(tokens, out, SPEC, progress=False)  # another run's state: not even opened
    assert out.exists() and not marker.exists()

    # with the fingerprint copied from a real run, it is opened, but as tensors and plain data only
    checkpoints = Checkpoints(tmp_path / "other.h5", "fingerprint-of-this-run")
    checkpoints.dir.mkdir()
    with open(checkpoints.dir / "state.pt", "wb") as f:
        pickle.dump({"step": Payload(marker)}, f, protocol=2)
    (checkpoints.dir / "fingerprint").write_text("fingerprint-of-this-run")
    assert checkpoints.load() is None and not marker.exists()


def test_a_full_disk_while_saving_a_checkpoint_names_the_file_and_space(tokens, tmp_path, monkeypatch):
    real_save = torch.save

    def save_to_full_disk(obj, path):
        Path(path).write_bytes(b"partial")  # what a write cut short leaves
        real_save(obj, "/dev/full")  # a real ENOSPC, reported by torch as a stream error

    monkeypatch.setattr(torch, "save", save_to_full_disk)
    out = tmp_path / "snapshots.h5"
    with pytest.raises(OSError, match=r"snapshot_00000\.pt: could not be written.*free.*needs about \d+ kB"):
        train(tokens, out, SPEC, progress=False)
    assert not list(tmp_path.rglob("*.tmp")) and not out.exists()


def test_a_full_disk_while_writing_hdf5_names_the_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "losses.h5"
    with pytest.raises(OSError, match=r"losses\.h5: could not be written.*kB were written.*free") as err:
        with h5io.atomic_writer(path, "losses", "abc") as f:
            h5io.write(f, "x", np.zeros(10_000), ("example",))
            f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_diverged_run_stops_naming_the_step(tokens, tmp_path):
    out = tmp_path / "snapshots.h5"
    with pytest.raises(FloatingPointError, match=r"at step \d+, above [\d.]+ \(divergence_ratio.*diverged"):
        train(tokens, out, {**SPEC, "lr": 30.0, "steps": 40}, progress=False)
    assert not out.exists() and (tmp_path / "snapshots.h5.resume" / "snapshot_00000.pt").exists()


def test_a_failed_attempts_log_is_kept_by_the_rerun(tmp_path):
    log = tmp_path / "logs" / "phase.log"
    args = [
        "phase",
        "--losses",
        str(tmp_path / "missing.h5"),
        "--phase",
        str(tmp_path / "p.h5"),
        "--log",
        str(log),
    ]
    assert cli.main(args) == 1
    first = log.read_text()
    assert "missing input" in first
    assert cli.main(args) == 1
    text = log.read_text()
    assert text.startswith(first) and text.count("attempt: inductionheads phase") == 2


def test_a_binary_corpus_file_is_left_out_and_recorded(tmp_path):
    for name, text in [("a.py", "def f():\n    return 1\n" * 40), ("b.py", "x = [1, 2, 3]\n" * 40)]:
        (tmp_path / name).write_text(text)
    (tmp_path / "blob.py").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.py").write_text("")
    settings = {"source": "files", "paths": [str(tmp_path / "*.py")], "vocab_size": 260,
                "heldout_fraction": 0.5}  # fmt: skip
    corpus.build(tmp_path / "tokens.h5", tmp_path / "tokenizer.json", settings)
    with h5io.open_input(tmp_path / "tokens.h5", "corpus") as f:
        skipped = f.attrs["skipped_files"].splitlines()
        offsets = [h5io.read(f, f"{split}_doc_offsets") for split in ("train", "heldout")]
    assert sorted(skipped) == [
        f"{tmp_path / 'blob.py'}: binary (it contains NUL bytes)",
        f"{tmp_path / 'empty.py'}: empty",
    ]
    assert sum(len(o) for o in offsets) == 2


def test_the_checkout_path_reaches_no_shell_unquoted(smoke_run):
    from conftest import HOSTILE_DIR

    assert smoke_run.name == HOSTILE_DIR  # the smoke run itself ran from this path
    assert not list(smoke_run.parent.rglob("PWNED")) and not Path("PWNED").exists()
    assert json.loads((smoke_run / "results/smoke/claims.json").read_text())["replicates"] == 1
