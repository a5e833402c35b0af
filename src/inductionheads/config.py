"""Experiment config: validation with messages that name the key, derived per-model specs, hashes.

Imported by the Snakefile at parse time, so it imports neither torch nor h5py; jobs import it for
`digest`, so jsonschema is imported only to validate.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Any

import yaml

from .corpus_files import file_paths, read_text_file
from .schedule import ablated_positions, snapshot_steps

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config that must not start any job; the message names the key and the rule broken."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_message(err) -> str:
    where = _key(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(allowed))
        keys = ", ".join(f"{where}.{k}" if err.absolute_path else k for k in unknown)
        return f"unknown config key {keys} (allowed here: {', '.join(allowed)})"
    if err.validator == "required":
        return f"config section '{where}' lacks a required key: {err.message}"
    return f"config key '{where}': {err.message}"


def validate(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Check `config` against the schema and the rules a schema cannot state; return it unchanged.

    Raises ConfigError naming the first offending key (schema errors are sorted by path so the
    message is stable).
    """
    import jsonschema

    _check_finite(config, ())
    schema = yaml.safe_load(Path(schema_path).read_text())
    # JSON Schema's integer admits 40.0; a float where the code counts steps or snapshots is refused
    strict = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=strict)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), _key(e.path)))
    if errors:
        raise ConfigError(_schema_message(errors[0]))
    _check_consistency(config)
    return config


def _check_finite(value: Any, path: tuple) -> None:
    """No config value may be NaN or infinite (YAML's .nan, .inf): no setting means that."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{_key(path)}': {value} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, (*path, i))


# Model settings a config may leave out, with the value they then take.
OPTIONAL_MODEL_SETTINGS = {
    "replicates": 1,
    "log_snapshots": 0,
    "precision": "auto",
    "position_scale": 1.0,
    "output_init": "zero",
    "divergence_ratio": 2.0,
    "micro_batch_size": None,
    "loss_chunk_tokens": None,
}


def model_spec(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The effective settings of one model: `model_defaults` overridden by `models.<name>`."""
    if name not in config["models"]:
        raise ConfigError(
            f"no model '{name}' under config key 'models' (have: {', '.join(config['models'])})"
        )
    spec = {**OPTIONAL_MODEL_SETTINGS, **config["model_defaults"], **(config["models"][name] or {})}
    spec["name"] = name
    return spec


def replicate_seeds(spec: dict[str, Any]) -> list[int]:
    """The seeds of a model's replicates: its `seed`, then the next `replicates` - 1 integers, so that
    adding replicates leaves the existing ones as they are."""
    return [spec["seed"] + r for r in range(spec["replicates"])]


def run_spec(config: dict[str, Any], name: str, seed: int) -> dict[str, Any]:
    """The settings of one training run: model `name` at one of its replicate seeds. `replicates` is
    left out, since how many other runs there are changes nothing in this one."""
    spec = model_spec(config, name)
    if seed not in replicate_seeds(spec):
        raise ConfigError(f"model '{name}' has no replicate with seed {seed} (seeds {replicate_seeds(spec)})")
    del spec["replicates"]
    spec["seed"] = seed
    return spec


def warmup_tokens(spec: dict[str, Any]) -> int:
    """Tokens seen when a model's learning-rate warmup ends; 0 for a model imported from a checkpoint
    series, whose warmup this config does not know."""
    if "checkpoints" in spec:
        return 0
    return spec["warmup_steps"] * spec["batch_size"] * spec["context_length"]


def runs(config: dict[str, Any]) -> list[tuple[int, str, int]]:
    """Every training run as (replicate, model, seed), replicate by replicate, models in config order.
    Replicate r of every model is grouped for the claims: its r-th seed."""
    out = []
    specs = [model_spec(config, name) for name in config["models"]]
    for replicate in range(max(spec["replicates"] for spec in specs)):
        for spec in specs:
            seeds = replicate_seeds(spec)
            if replicate < len(seeds):
                out.append((replicate, spec["name"], seeds[replicate]))
    return out


def _check_consistency(config: dict[str, Any]) -> None:
    ev = config["evaluation"]
    w = ev["icl_window"]
    early, late, T = ev["icl_early"], ev["icl_late"], ev["context_length"]
    if not (1 <= early - w and early + w < late - w and late + w < T):
        raise ConfigError(
            "config keys 'evaluation.icl_early' ± 'icl_window' and 'evaluation.icl_late' ± 'icl_window' "
            "must be disjoint token ranges inside 1..'evaluation.context_length' - 1 "
            f"(got {ev['icl_early']}, {ev['icl_late']} ± {w}, context {ev['context_length']})"
        )
    scoring = config["head_scores"]
    if scoring["prev_token_contexts"] > ev["n_contexts"]:
        raise ConfigError(
            f"config key 'head_scores.prev_token_contexts' ({scoring['prev_token_contexts']}) exceeds "
            f"'evaluation.n_contexts' ({ev['n_contexts']}): they are drawn from the same held-out contexts"
        )
    if config["ablation"]["n_contexts"] > ev["n_contexts"]:
        raise ConfigError(
            f"config key 'ablation.n_contexts' ({config['ablation']['n_contexts']}) exceeds "
            f"'evaluation.n_contexts' ({ev['n_contexts']}): ablations use the first held-out contexts"
        )
    seq_len = 1 + scoring["repeat_length"] * scoring["n_repeats"]
    shards = config.get("shards", 1)
    for name in config["models"]:
        spec = model_spec(config, name)
        where = f"models.{name}"
        if name == "all_models":
            raise ConfigError("config key 'models.all_models': the name is reserved for all-model figures")
        if spec["d_model"] % spec["n_heads"]:
            raise ConfigError(
                f"config key '{where}.d_model' ({spec['d_model']}) must be divisible by "
                f"'{where}.n_heads' ({spec['n_heads']})"
            )
        if spec["n_snapshots"] > spec["steps"]:
            raise ConfigError(
                f"config key '{where}.n_snapshots' ({spec['n_snapshots']}) exceeds "
                f"'{where}.steps' ({spec['steps']}): at most one snapshot per step"
            )
        if "checkpoints" in spec and spec["replicates"] != 1:
            raise ConfigError(
                f"config key '{where}.replicates' must be 1 for a model imported from checkpoints: the "
                "series is one run"
            )
        if "checkpoints" not in spec:  # an imported series' length is known only when it is read
            n_snapshots = len(snapshot_steps(spec["steps"], spec["n_snapshots"], spec["log_snapshots"]))
            n_ablated = len(ablated_positions(n_snapshots, config["ablation"]["every"]))
            if shards > n_ablated:
                raise ConfigError(
                    f"config key 'shards' ({shards}) exceeds the {n_ablated} snapshots that model {name} "
                    f"ablates ('{where}.n_snapshots' + 1 every 'ablation.every'): a shard would be empty"
                )
        if ev["context_length"] > spec["context_length"]:
            raise ConfigError(
                f"config key 'evaluation.context_length' ({ev['context_length']}) exceeds "
                f"'{where}.context_length' ({spec['context_length']}), the longest context it is trained on"
            )
        if seq_len > spec["context_length"]:
            raise ConfigError(
                f"repeated random sequences of 1 + 'heads.repeat_length' x 'heads.n_repeats' = {seq_len} "
                f"tokens do not fit '{where}.context_length' ({spec['context_length']})"
            )
    if seq_len - 1 > config["corpus"]["vocab_size"]:
        raise ConfigError("config key 'heads.repeat_length' x 'heads.n_repeats' exceeds 'corpus.vocab_size'")
    corpus = config["corpus"]
    if corpus["source"] == "files":
        if not corpus.get("paths"):
            raise ConfigError(
                "config key 'corpus.paths' must list files or globs when corpus.source is 'files'"
            )
        for pattern in corpus["paths"]:
            if not glob.glob(pattern, recursive=True):
                raise ConfigError(f"config key 'corpus.paths': no file matches '{pattern}'")
        _check_corpus_files(corpus["paths"])
    if corpus["source"] == "huggingface" and not corpus.get("hf_dataset"):
        raise ConfigError("config key 'corpus.hf_dataset' is required when corpus.source is 'huggingface'")


def _check_corpus_files(patterns: list[str]) -> None:
    """Before any job: every corpus file is readable; empty and binary ones are named in a warning
    (the corpus job leaves them out), and at least two documents remain."""
    kept, skipped = 0, []
    for path in file_paths(patterns):
        try:
            text, why = read_text_file(path)
        except OSError as exc:
            raise ConfigError(f"config key 'corpus.paths': {exc}") from None
        if why:
            skipped.append(f"{path} ({why})")
        kept += not why
    if skipped:
        log.warning("corpus.paths: leaving out %d file(s): %s", len(skipped), "; ".join(skipped[:20]))
    if kept < 2:
        raise ConfigError(
            f"config key 'corpus.paths': {kept} usable file(s), need at least 2 documents to split "
            f"(left out: {'; '.join(skipped) or 'none'})"
        )


def load(config_path: str | Path, schema_path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} does not hold a mapping")
    return validate(config, schema_path)


def digest(obj: Any) -> str:
    """A short, stable hash of JSON-able settings: what HDF5 attributes record as `config_hash`."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def code_digest(module: str) -> str:
    """Content hash of a package module and of every package module it imports, transitively (lazy
    imports inside functions included), so that a rule reruns when any code it runs changes.

    Snakemake's own code trigger sees a rule's shell text, never the modules it imports. Located and
    parsed without importing (importlib's find_spec, ast), so no torch is loaded at parse time.
    """
    spec = importlib.util.find_spec("inductionheads")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("package inductionheads is not installed: run `pip install -e .`")
    root = Path(next(iter(spec.submodule_search_locations)))
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not (root / f"{name}.py").is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((root / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y / from . import x
                todo += [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
    sha = hashlib.sha256()
    for name in sorted(seen):
        sha.update(name.encode() + (root / f"{name}.py").read_bytes())
    return sha.hexdigest()[:16]
