"""The code stays formatted and linted (ruff for Python, snakefmt for the rules)."""

import shutil
import subprocess
import sys

import pytest
from conftest import REPO


def run(*cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_ruff_is_clean():
    proc = run(sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run(sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt is not installed (dev extra)")
def test_rules_are_snakefmt_formatted():
    proc = run("snakefmt", "--check", "Snakefile", "workflow/rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr
