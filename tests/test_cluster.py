"""Cluster execution: snapshot-range shards, the paper-scale config's plan, device choice, and a real
SLURM controller on localhost (started by .ci/slurm-up)."""

import json
import os
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, copy_workflow, planned, smoke_config, snakemake, write_config

from inductionheads import device, h5io, shards
from inductionheads.shards import shard_positions

SHARDED = tuple(shards.SHARD_AXES)


def all_datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_results(results_a, results_b, rel_paths):
    for rel in rel_paths:
        a, b = all_datasets(results_a / rel), all_datasets(results_b / rel)
        assert a.keys() == b.keys(), rel
        for name in a:
            assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), f"{rel}: {name}"


def result_files(results) -> list:
    files = [p.relative_to(results) for p in (results / "models").glob("*/seed*/*.h5")]
    files += [p.relative_to(results) for p in (results / "pca").glob("*.h5")]
    return sorted(files) + [p.relative_to(results) for p in results.glob("*.h5")]


# --- shards -------------------------------------------------------------------------------------


def test_shard_positions_cover_every_snapshot_once_in_order():
    positions = np.arange(41)
    for count in (1, 2, 3, 7, 41):
        parts = [shard_positions(positions, (i, count), "x") for i in range(count)]
        assert np.array_equal(np.concatenate(parts), positions)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="shard 3 of 3 gets none of its 2 snapshots"):
        shard_positions(np.arange(2), (2, 3), "x")


def _shard(path, index, count, rows, shared, config_hash="abc", **attrs):
    with h5io.atomic_writer(
        path, "losses", config_hash, shard=shards.shard_label(index, count), **attrs
    ) as f:
        h5io.write(f, "steps", rows[:, 0, 0].astype(np.int64), ("snapshot",))
        f.create_dataset("per_token_loss", data=rows.astype(np.float16), chunks=(1, *rows.shape[1:]))
        f["per_token_loss"].attrs["axes"] = '["snapshot", "example", "i"]'
        f["per_token_loss"].attrs["units"] = "nats"
        h5io.write(f, "shared", shared, ("example",))


def test_merge_concatenates_rows_keeps_layout_and_rejects_foreign_shards(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(7, 3, 5))
    rows[:, 0, 0] = np.arange(7)
    shared = rng.normal(size=3)
    paths = [tmp_path / f"s{i}.h5" for i in range(3)]
    for i, part in enumerate(np.array_split(rows, 3)):
        # an attribute computed at the last snapshot lives in the last shard only
        _shard(paths[i], i, 3, part, shared, **({"final": "x"} if i == 2 else {}))
    shards.merge(paths, tmp_path / "merged.h5", kind="losses")
    with h5io.open_input(tmp_path / "merged.h5", "losses") as f:
        assert np.array_equal(h5io.read(f, "per_token_loss"), rows.astype(np.float16))
        assert np.array_equal(h5io.read(f, "steps"), np.arange(7))
        assert np.array_equal(h5io.read(f, "shared"), shared)
        assert f["per_token_loss"].chunks == (1, 3, 5) and f["per_token_loss"].attrs["units"] == "nats"
        assert f.attrs["final"] == "x" and "shard" not in f.attrs
    with pytest.raises(h5io.H5Error, match="s2.h5: is shard 3/3, expected shard 2/3"):
        shards.merge([paths[0], paths[2], paths[1]], tmp_path / "bad.h5", kind="losses")
    _shard(paths[1], 1, 3, rows[3:5], shared, config_hash="other")
    with pytest.raises(h5io.H5Error, match="s1.h5: config hash differs"):
        shards.merge(paths, tmp_path / "bad.h5", kind="losses")
    _shard(paths[1], 1, 3, rows[3:5], shared + 1)
    with pytest.raises(h5io.H5Error, match="s1.h5: dataset /shared differs between shards"):
        shards.merge(paths, tmp_path / "bad.h5", kind="losses")
    assert not (tmp_path / "bad.h5").exists()


def test_shard_count_changes_no_result(smoke_copy, smoke_results):
    config = smoke_config()
    config["shards"] = 3  # the smoke models ablate 3 snapshots: one each
    write_config(smoke_copy / "sharded.yaml", config)
    snakemake(smoke_copy, "--configfile", "sharded.yaml")
    sharded = smoke_copy / "results" / "smoke"
    for kind in SHARDED:
        assert len(list(sharded.glob(f"models/attn2/seed0/shards/{kind}_*of3.h5"))) == 3
    assert_same_results(smoke_results, sharded, result_files(smoke_results))
    assert (sharded / "claims.json").read_text() == (smoke_results / "claims.json").read_text()


def test_too_many_shards_fail_before_any_job(smoke_copy):
    config = smoke_config()
    config["shards"] = 4
    write_config(smoke_copy / "bad.yaml", config)
    proc = snakemake(smoke_copy, "--configfile", "bad.yaml", "--dry-run", check=False)
    assert proc.returncode != 0
    assert (
        "config key 'shards' (4) exceeds the 3 snapshots that model attn1 ablates"
        in proc.stdout + proc.stderr
    )


# --- the paper-scale plan -------------------------------------------------------------------------


def test_paper_mini_config_plans_every_stage_at_the_papers_width(tmp_path):
    """configs/paper-mini.yaml: the GPU end-to-end check, two models at the paper's width, context and
    vocabulary on a local corpus: every stage once per run."""
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "configs" / "paper-mini.yaml").read_text())
    spec = config["model_defaults"]
    assert (spec["d_model"], spec["n_heads"], spec["context_length"]) == (768, 12, 8192)
    assert config["corpus"]["vocab_size"] == 2**16 and config["corpus"]["source"] == "stdlib"
    proc = snakemake(workdir, "--configfile", "configs/paper-mini.yaml", "--dry-run")
    counts = {}
    for job in planned(proc.stdout):
        counts[job["rule"]] = counts.get(job["rule"], 0) + 1
    per_run = {"train": 1, "losses": 1, "head_scores": 1, "ablation": 1, "merge_shards": 3}
    per_run |= {"phase": 1, "figures_run": 1}
    once = ("corpus", "evalset", "overlap", "pca", "claims", "figures_all_models", "figures_replicates")
    once += ("manifest", "report_html")
    assert sorted(config["models"]) == ["attn2", "mlp2"]
    assert counts == {**{r: 2 * n for r, n in per_run.items()}, **dict.fromkeys(once, 1)}


def test_paper_config_plans_every_job_with_its_resources(tmp_path):
    workdir = copy_workflow(tmp_path)
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    config = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    # a dry run caps threads at --cores; on the cluster the slurm executor does not
    proc = snakemake(
        workdir,
        "--configfile",
        "configs/paper.yaml",
        "--profile",
        "profiles/slurm",
        "--dry-run",
        "--cores",
        "64",
        "--set-resources",
        "train:runtime=4000",
    )
    jobs = planned(proc.stdout)
    models, n_shards = list(config["models"]), config["shards"]
    assert len(models) == 12 and n_shards == 8
    counts = {}
    for job in jobs:
        counts[job["rule"]] = counts.get(job["rule"], 0) + 1
    per_model = {"train": 1, "losses": n_shards, "head_scores": n_shards, "ablation": n_shards}
    per_model |= {"merge_shards": 3, "phase": 1, "figures_run": 1}
    once = (
        "corpus",
        "evalset",
        "overlap",
        "pca",
        "claims",
        "figures_all_models",
        "figures_replicates",
        "manifest",
        "report_html",
    )
    assert counts == {**{r: n * len(models) for r, n in per_model.items()}, **dict.fromkeys(once, 1)}
    assert len(jobs) == 3 + len(models) * (3 * n_shards + 6) + 6  # `all` not counted
    spec = config["model_defaults"]
    assert (spec["d_model"], spec["n_heads"], spec["context_length"], spec["steps"]) == (768, 12, 8192, 10000)
    assert spec["n_snapshots"] == 200 and config["corpus"]["vocab_size"] == 2**16
    assert {(m.get("family", "attention-only"), m["n_layers"]) for m in config["models"].values()} == {
        (f, n) for f in ("attention-only", "with-mlp") for n in range(1, 7)
    }
    groups = {"train": "train", "losses": "measure", "head_scores": "measure", "ablation": "ablation"}
    for job in jobs:
        want = config["resources"][groups.get(job["rule"], "other")]
        got = job["resources"]
        assert int(got["mem_mb"]) == want["mem_mb"], job
        # the command line overrides one rule's runtime and leaves the rest as configured
        assert int(got["runtime"]) == (4000 if job["rule"] == "train" else want["runtime"]), job
        assert int(got["gpu"]) == want.get("gpu", 0), job
        if job["rule"] in groups:
            assert int(got["gpu"]) == 1 and job["threads"] == 8, job
    shards_of_attn3 = sorted(
        j["wildcards"]["shard"]
        for j in jobs
        if j["rule"] == "ablation" and j["wildcards"]["model"] == "attn3"
    )
    assert shards_of_attn3 == [f"{i}of8" for i in range(1, 9)]


# --- device ---------------------------------------------------------------------------------------


def test_device_is_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device.pick("auto").type == expected and device.pick(None).type == expected
    assert device.pick("cpu").type == "cpu"
    cpu = torch.device("cpu")
    assert device.compiled(torch.nn.Linear(2, 2), cpu).__class__ is torch.nn.Linear
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device cuda was asked for, but torch sees no CUDA device"):
            device.pick("cuda")
    with pytest.raises(ValueError, match="device 'tpu' is not one of"):
        device.pick("tpu")


def test_precision_auto_is_float32_on_cpu_and_bfloat16_on_cuda_and_a_setting_overrides_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert device.training_precision(cpu) == device.training_precision(cpu, "auto") == "float32"
    assert device.training_precision(cuda, "auto") == "bfloat16"
    assert device.training_precision(cuda, "float32") == "float32"
    assert device.training_precision(cpu, "bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="precision 'fp8' is not one of"):
        device.training_precision(cpu, "fp8")
    with device.autocast(cpu, "float32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    # bfloat16 on a CPU reproduces a GPU run's arithmetic (slowly): the product is rounded to bfloat16
    with device.autocast(cpu, "bfloat16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


# --- a real SLURM controller ----------------------------------------------------------------------


def slurm_up() -> str | None:
    """None when a SLURM controller answers with an idle node, else why not."""
    if not shutil.which("sinfo"):
        return (
            "SLURM is not installed: run .ci/slurm-up (as root) to install slurm-wlm and munge and start them"
        )
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if proc.returncode or not re.search(r"idle|mixed|allocated", proc.stdout):
        return f"no SLURM node is up (sinfo: {proc.stderr.strip() or proc.stdout.strip()}): run .ci/slurm-up"
    return None


def test_smoke_run_through_the_slurm_profile_equals_the_local_run(tmp_path, smoke_results):
    reason = slurm_up()
    if reason:
        pytest.skip(reason)
    workdir = copy_workflow(tmp_path)
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    # one of the smoke models (every job pays a Snakemake start on the node): its files must equal the
    # local run's, which trained the same model on the same corpus
    config = smoke_config()
    config["models"] = {"attn2": config["models"]["attn2"]}
    write_config(workdir / "slurm.yaml", config)
    proc = snakemake(
        workdir,
        "--configfile",
        "slurm.yaml",
        "--profile",
        "profiles/slurm",
        "--jobs",
        "4",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
    )
    results = workdir / "results" / "smoke"
    log = proc.stdout + proc.stderr
    assert "submitted with SLURM jobid" in log
    # every job but the target rule `all` went through sbatch: per model train, losses, heads, ablation,
    # 3 merges, phase and figures; then corpus, evalset, overlap, pca, claims, the two all-model figure
    # rules, manifest and report
    assert log.count("submitted with SLURM jobid") == 9 * len(config["models"]) + 9
    run_files = [
        p for p in result_files(smoke_results) if p.parts[:2] in {("models", m) for m in config["models"]}
    ]
    assert len(run_files) == 5
    assert_same_results(smoke_results, results, [*run_files, "evalset.h5", "corpus/overlap.h5"])
    claims = json.loads((results / "claims.json").read_text())
    assert claims["by_replicate"][0]["seeds"] == {"attn2": 0}
    assert os.path.getsize(results / "report.html") > 10_000
