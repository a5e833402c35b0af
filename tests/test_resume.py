"""Reliability: a training job killed with SIGKILL and rerun by Snakemake resumes from its last
snapshot and ends bit-identical to an uninterrupted run; NaN losses stop training and keep snapshots."""

import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import psutil
import pytest
from conftest import copy_workflow, smoke_config, write_config

from inductionheads import h5io
from inductionheads.config import run_spec
from inductionheads.train import train


def training_process(root: psutil.Process) -> psutil.Process | None:
    for child in root.children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "inductionheads" in cmd and "train" in cmd and child.name().startswith("python"):
            return child
    return None


def test_killed_training_resumes_bit_identical(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = smoke_config()
    config["models"] = {"attn2": {"n_layers": 2}}
    config["model_defaults"].update(steps=1200, n_snapshots=12)
    write_config(workdir / "resume.yaml", config)
    target = "results/smoke/models/attn2/seed0/snapshots.h5"
    resume_dir = workdir / (target + ".resume")
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "2", "--configfile", "resume.yaml"]

    kill_after = random.Random().randint(1, 10)  # a random snapshot index
    first = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (resume_dir / f"snapshot_{kill_after:05d}.pt").exists():
        assert first.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    victim = training_process(psutil.Process(first.pid))
    assert victim is not None
    victim.send_signal(signal.SIGKILL)
    assert first.wait(timeout=120) != 0
    assert not (workdir / target).exists() and (resume_dir / "state.pt").exists()

    subprocess.run(cmd, cwd=workdir, check=True, capture_output=True)
    log = (workdir / "results/smoke/logs/train/attn2/seed0.log").read_text()
    assert "resuming attn2 from step" in log
    assert not resume_dir.exists()

    spec = run_spec(config, "attn2", 0)
    spec.pop("threads")
    train(workdir / "results/smoke/corpus/tokens.h5", tmp_path / "uninterrupted.h5", spec, progress=False)
    with h5py.File(workdir / target, "r") as a, h5py.File(tmp_path / "uninterrupted.h5", "r") as b:
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert "params/blocks.1.attn.W_Q" in names and "train_loss" in names
        for name in names:
            assert np.array_equal(a[name][()], b[name][()]), name
        assert a.attrs["integrity"] == b.attrs["integrity"]


@pytest.fixture()
def tokens(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tokens.h5"
    with h5io.atomic_writer(path, "corpus", "test", vocab_size=30, bos_id=0) as f:
        h5io.write(f, "train", rng.integers(1, 30, size=4000), ("token",))
    return path


def test_nan_loss_stops_training_naming_the_step_and_keeps_snapshots(tokens, tmp_path):
    spec = dict(name="nan", family="attention-only", n_layers=1, d_model=8, n_heads=2, context_length=16,
                batch_size=2, steps=40, n_snapshots=4, lr=1e30, warmup_steps=0, lr_schedule="constant",
                weight_decay=0.0, grad_clip=0.0, seed=0)  # fmt: skip
    out = tmp_path / "snapshots.h5"
    with pytest.raises(
        FloatingPointError, match=r"loss is (nan|inf) at step \d+.*last good snapshot \(step \d+\)"
    ):
        train(tokens, out, spec, progress=False)
    assert not out.exists()
    assert (tmp_path / "snapshots.h5.resume" / "snapshot_00000.pt").exists()
