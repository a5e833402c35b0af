"""The series cost benchmark's arithmetic: its jobs are the workflow's, its wall time a valid schedule."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import series_cost  # noqa: E402

from inductionheads.config import load  # noqa: E402

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_wall_time_of_chains_and_parallel_jobs():
    chain = [("a", 3.0, ()), ("b", 2.0, ("a",)), ("c", 2.0, ())]
    assert series_cost.wall_time(chain, 1) == 7.0
    assert series_cost.wall_time(chain, 2) == 5.0  # c runs beside the chain a -> b
    assert series_cost.wall_time(chain, 8) == 5.0  # the chain bounds it
    # the longest path starts first: a (1, then b 4) before the longer c and d (3 each); started by
    # their own length, c and d would run first and b end at 8
    jobs = [("a", 1.0, ()), ("b", 4.0, ("a",)), ("c", 3.0, ()), ("d", 3.0, ())]
    assert series_cost.wall_time(jobs, 2) == 6.0


def test_wall_time_is_between_its_bounds_on_random_dags():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 30))
        seconds = rng.uniform(0.1, 5.0, n)
        jobs = [
            (f"j{i}", float(seconds[i]), tuple(f"j{k}" for k in range(i) if rng.random() < 0.1))
            for i in range(n)
        ]
        devices = int(rng.integers(1, 6))
        finish: dict[str, float] = {}
        for name, s, deps in jobs:  # jobs come in dependency order: the critical path
            finish[name] = s + max((finish[d] for d in deps), default=0.0)
        makespan = series_cost.wall_time(jobs, devices)
        assert max(finish.values()) - 1e-9 <= makespan <= seconds.sum() + 1e-9
        assert makespan >= seconds.sum() / devices - 1e-9


def test_the_paper_series_jobs_are_the_workflows():
    config = load(ROOT / "configs" / "paper.yaml", SCHEMA)
    cost = {
        "train": (2.0, 10.0, 60.0),
        "losses": (1.0, 5.0),
        "head_scores": (0.5, 5.0),
        "ablation": (3.0, 5.0),
    }
    jobs = series_cost.jobs_of(config, "attn2", 0, cost, startup=4.0)
    by_stage = {}
    for name, seconds, after in jobs:
        by_stage.setdefault(name.split()[0], []).append((name, seconds, after))
    assert {k: len(v) for k, v in by_stage.items()} == {
        "train": 1,
        "losses": 8,
        "head_scores": 8,
        "ablation": 8,
    }
    ((_, train_seconds, _),) = by_stage["train"]
    assert train_seconds == pytest.approx(4.0 + 60.0 + 10_000 * 2.0 + 201 * 10.0)  # 201 snapshots
    # every snapshot measured and (every: 1) ablated once across the shards
    assert sum(s - 9.0 for _, s, _ in by_stage["losses"]) == pytest.approx(201 * 1.0)
    assert sum(s - 9.0 for _, s, _ in by_stage["ablation"]) == pytest.approx(201 * 3.0)
    measurement_jobs = {name for stage in ("losses", "head_scores") for name, _, _ in by_stage[stage]}
    assert all(set(after) == measurement_jobs for _, _, after in by_stage["ablation"])
    assert all(after == ("train attn2/seed0",) for _, _, after in by_stage["losses"])


def test_measured_job_times_are_read_from_snakemakes_benchmark_files(tmp_path):
    path = tmp_path / "ablation" / "attn2" / "seed0_1of8.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t100\n")
    assert series_cost.measured_seconds(tmp_path, "ablation", "attn2/seed0", "1of8") == 12.5
    assert series_cost.measured_seconds(tmp_path, "ablation", "attn2/seed0", "2of8") is None
