"""HDF5 I/O: atomic writes and clear errors for missing, corrupt, foreign or incomplete inputs."""

import h5py
import numpy as np
import pytest

from inductionheads import h5io


def test_atomic_writer_leaves_nothing_when_interrupted(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with h5io.atomic_writer(path, "losses", "abc") as f:
            h5io.write(f, "x", [1, 2, 3], ("example",))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_written_file_carries_its_metadata(tmp_path):
    path = tmp_path / "out.h5"
    with h5io.atomic_writer(path, "losses", "abc", model="m") as f:
        h5io.write(f, "x", [[1.0, 2.0]], ("snapshot", "example"), units="nats")
    with h5io.open_input(path, "losses") as f:
        assert f.attrs["config_hash"] == "abc" and f.attrs["model"] == "m"
        assert f["x"].attrs["axes"] == '["snapshot", "example"]' and f["x"].attrs["units"] == "nats"
    with pytest.raises(ValueError, match="axes"):
        with h5io.atomic_writer(path, "losses", "abc") as f:
            h5io.write(f, "y", [1.0], ("snapshot", "example"))


def test_missing_input_names_the_file_and_stage(tmp_path):
    with pytest.raises(h5io.H5Error, match=r"nothing\.h5: missing input.*'heads'"):
        h5io.open_input(tmp_path / "nothing.h5", "heads")


def test_corrupt_input_names_the_file(tmp_path):
    path = tmp_path / "losses.h5"
    with h5io.atomic_writer(path, "losses", "abc") as f:
        h5io.write(f, "x", list(range(1000)), ("example",))
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(h5io.H5Error, match=r"losses\.h5: not a readable HDF5 file"):
        h5io.open_input(path, "losses")


def test_foreign_or_incomplete_input_is_rejected(tmp_path):
    path = tmp_path / "x.h5"
    with h5io.atomic_writer(path, "heads", "abc"):
        pass
    with pytest.raises(h5io.H5Error, match="written by stage 'heads'"):
        h5io.open_input(path, "losses")
    with h5py.File(tmp_path / "half.h5", "w") as f:
        f.attrs["stage"] = "losses"
    with pytest.raises(h5io.H5Error, match="incomplete"):
        h5io.open_input(tmp_path / "half.h5", "losses")


def flip_byte(path, dataset, at=0):
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset()  # contiguous storage: the raw bytes live here
    data = bytearray(path.read_bytes())
    data[offset + at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_bytes_fail_the_checksum_naming_file_dataset_and_row(tmp_path):
    path = tmp_path / "snapshots.h5"
    rng = np.random.default_rng(0)
    with h5io.atomic_writer(path, "train", "abc") as f:
        h5io.write(
            f, "params/W_Q", rng.random((4, 3, 5)).astype("float32"), ("snapshot", "d_model", "d_head")
        )
        h5io.write(f, "steps", np.arange(4), ("snapshot",))
    with h5io.open_input(path, "train") as f:
        intact = h5io.read(f, "params/W_Q", 2)
        fingerprint = f.attrs["integrity"]
    flip_byte(path, "params/W_Q", at=2 * 15 * 4 + 7)  # a byte of row 2
    flip_byte(path, "steps")
    with h5io.open_input(path, "train") as f:
        assert f.attrs["integrity"] == fingerprint  # the fingerprint is of the sealed contents
        h5io.read(f, "params/W_Q", 1)  # other rows still verify
        with pytest.raises(h5io.H5Error, match=r"snapshots\.h5: dataset params/W_Q row 2 fails its checksum"):
            h5io.read(f, "params/W_Q", 2)
        with pytest.raises(h5io.H5Error, match=r"dataset params/W_Q row 2 fails its checksum"):
            h5io.read(f, "params/W_Q")
        with pytest.raises(h5io.H5Error, match=r"dataset steps fails its checksum"):
            h5io.read(f, "steps")
    assert intact.shape == (3, 5)
