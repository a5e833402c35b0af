"""Shared fixtures: a copy of the workflow in a temporary directory, and one smoke run of it."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def copy_workflow(dest: Path) -> Path:
    """The workflow files (no results, no .snakemake state) under `dest`."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    for name in ("workflow", "configs", "envs", "src"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned(output: str) -> list[dict]:
    """Every job a dry run (or a run's log) lists, `all` excluded: rule, wildcards, threads, resources."""
    jobs = []
    for block in re.split(r"\n(?=\[|rule |localrule )", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not rule or rule.group(1) == "all":
            continue
        wildcards = re.search(r"wildcards: (.*)", block)
        resources = re.search(r"resources: (.*)", block)
        threads = re.search(r"threads: (\d+)", block)
        jobs.append(
            {
                "rule": rule.group(1),
                "wildcards": dict(kv.split("=", 1) for kv in wildcards.group(1).split(", "))
                if wildcards
                else {},
                "resources": dict(kv.split("=", 1) for kv in resources.group(1).split(", "))
                if resources
                else {},
                "threads": int(threads.group(1)) if threads else 1,
            }
        )
    return jobs


def planned_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, model wildcard or '') of every job a dry run lists, 'all' excluded."""
    return sorted((job["rule"], job["wildcards"].get("model", "")) for job in planned(output))


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def smoke_config() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


# The smoke run's checkout path has a space and a command substitution: every word a job's shell sees
# must be quoted, and test_reliability checks that the command never ran.
HOSTILE_DIR = "check out $(touch PWNED)"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One full smoke run; tests that change files make their own copy of it (`smoke_copy`)."""
    workdir = tmp_path_factory.mktemp("smoke") / HOSTILE_DIR
    workdir.mkdir()
    copy_workflow(workdir)
    snakemake(workdir, "--configfile", "configs/smoke.yaml")
    return workdir


@pytest.fixture()
def smoke_copy(smoke_run, tmp_path) -> Path:
    """A private copy of the finished smoke run, results and Snakemake metadata included."""
    dest = tmp_path / "run"
    shutil.copytree(smoke_run, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def smoke_results(smoke_run) -> Path:
    return smoke_run / "results" / "smoke"
