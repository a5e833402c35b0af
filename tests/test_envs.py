"""The conda environments (envs/*.yaml) against pyproject.toml and the modules each rule runs."""

import ast
import re
import sys
import tomllib

import yaml
from conftest import REPO

from inductionheads.stages import STAGES

# conda-forge names of the distributions whose pip names differ
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base", "seaborn": "seaborn-base"}
# import name -> distribution
DISTRIBUTIONS = {
    "yaml": "pyyaml",
    "torch": "torch",
    "sklearn": "scikit-learn",
    "transformer_lens": "transformer-lens",
}
STDLIB_OR_WORKFLOW = {"snakemake"}  # the workflow runner itself, not a job dependency


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    out = {}
    for req in reqs:
        name, bound = re.match(r"([A-Za-z0-9_.-]+)(.*)", req).groups()
        out[CONDA_NAMES.get(name.lower(), name.lower())] = bound
    return out


def env_requirements(path) -> dict[str, str]:
    out = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, bound = re.match(r"([A-Za-z0-9_.-]+)(.*)", item).groups()
            out[name.lower()] = bound
    return out


def third_party_imports(module: str, seen: set | None = None) -> set[str]:
    """Top-level third-party imports of a package module and of the package modules it imports."""
    seen = set() if seen is None else seen
    path = REPO / "src" / "inductionheads" / f"{module}.py"
    if module in seen or not path.exists():  # e.g. `from . import __version__`
        return set()
    seen.add(module)
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            names = [node.module] if node.module else [a.name for a in node.names]
            for name in names:
                found |= third_party_imports(name.split(".")[0], seen)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
    return found


def conda_name(import_name: str) -> str:
    dist = DISTRIBUTIONS.get(import_name, import_name)
    return CONDA_NAMES.get(dist, dist)


def rule_envs() -> dict[str, tuple[str, str]]:
    """rule -> (env file, stage it runs), read from the rule files."""
    out = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            rule = re.match(r"rule (\w+):", block)
            env = re.search(r'conda:\s*\n\s*"\.\./\.\./(envs/[\w.]+)"', block)
            stage = re.search(r'job=job\("(\w+)"\)', block)
            if rule and stage:
                assert env, f"rule {rule.group(1)} has no conda: directive"
                out[rule.group(1)] = (env.group(1), stage.group(1))
    return out


def test_every_env_pins_what_pyproject_pins():
    pyproject = pyproject_requirements()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert len(envs) >= 4
    for path in envs:
        for name, bound in env_requirements(path).items():
            if name in ("python", "pip"):
                continue
            assert name in pyproject, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert bound == pyproject[name], (
                f"{path.name}: {name}{bound}, pyproject.toml has {name}{pyproject[name]}"
            )


def test_each_rule_env_holds_what_its_stage_imports():
    rules = rule_envs()
    assert {
        "train",
        "losses",
        "head_scores",
        "ablation",
        "merge_shards",
        "figures_run",
        "corpus",
    } <= rules.keys()
    for rule, (env, stage) in rules.items():
        have = set(env_requirements(REPO / env))
        # every stage goes through cli.py
        needed = third_party_imports(STAGES[stage].module) | third_party_imports("cli")
        needed -= STDLIB_OR_WORKFLOW
        needed = {n for n in needed if n not in sys.stdlib_module_names}
        missing = {conda_name(n) for n in needed} - have
        assert not missing, f"rule {rule} runs stage {stage} in {env}, which lacks {sorted(missing)}"
    # the analysis and figure environments stay free of torch
    for rule in (
        "overlap",
        "merge_shards",
        "phase",
        "pca",
        "claims",
        "figures_run",
        "figures_all_models",
        "report_html",
    ):
        assert "torch" not in third_party_imports(STAGES[rules[rule][1]].module), rule
        assert "pytorch" not in env_requirements(REPO / rules[rule][0]), rule
