"""The workflow's stages in one table: each stage is one module function, and that function's signature
names the files the stage reads and writes. `python -m inductionheads STAGE` (cli.py) and each rule's
job arguments (`job_arguments`, called from workflow/rules/common.smk) are both built from it, so a file
is named once in its rule (a named `input:` or `output:` entry) and once in the function's signature.

A stage function's parameters, by kind:
- files: every positional parameter except `settings`, named as the rule names it; those in
  `Stage.outputs` are written, the others read; a `list[...]` annotation takes several files, and a
  default makes the file optional;
- `settings`: the rule's `params.settings`, one JSON object (`--settings`);
- options, keyword-only: how to run, not what to compute (`OPTIONS`); a job takes `shard` and `kind`
  from its wildcards.

Signatures are read from the source (ast), so neither the CLI nor Snakemake imports torch to build them.
Standard library only: common.smk imports this module.
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
Named = Any  # Snakemake's input, output and wildcards (named lists), or dicts: anything with .items()


@dataclass(frozen=True)
class Stage:
    module: str
    function: str
    help: str
    outputs: tuple[str, ...]


STAGES = {
    "corpus": Stage(
        "corpus", "build", "read the corpus, train BPE, write token ids", ("tokens", "tokenizer")
    ),
    "evalset": Stage(
        "evalset", "build", "fix the held-out contexts and repeated random sequences", ("evalset",)
    ),
    "train": Stage("train", "train", "train one model, writing its snapshots", ("snapshots",)),
    "import": Stage(
        "interop",
        "import_series",
        "a snapshot file from a TransformerLens checkpoint series (interop extra)",
        ("snapshots",),
    ),
    "export": Stage(
        "interop",
        "export",
        "snapshots as TransformerLens state dicts and config (interop extra)",
        ("out_dir",),
    ),
    "overlap": Stage(
        "overlap",
        "run",
        "how much of the held-out text the training text holds, and repeats in its context",
        ("overlap",),
    ),
    "losses": Stage("losses", "run", "per-token losses and ICL score of every snapshot", ("losses",)),
    "head_scores": Stage("head_scores", "run", "head scores of every snapshot", ("head_scores",)),
    "ablation": Stage(
        "ablation",
        "run",
        "ablate every head of scheduled snapshots, full and pattern-preserving",
        ("ablation",),
    ),
    "merge": Stage(
        "shards", "merge", "merge a stage's snapshot-range shards, in order, into one file", ("merged",)
    ),
    "phase": Stage("phase", "run", "the phase-change window of one model", ("phase",)),
    "pca": Stage("pca", "run", "joint PCA of the per-token-loss vectors of every model", ("pca",)),
    "claims": Stage("claims", "run", "evaluate claims C1-C7 into a JSON file", ("claims",)),
    "figures": Stage("figures", "draw", "draw figures, each named by its file's stem", ("figures",)),
    "report": Stage("report", "build", "write the self-contained report.html", ("report",)),
    "manifest": Stage(
        "manifest", "write", "list every HDF5 output with its provenance and integrity hash", ("manifest",)
    ),
    "verify": Stage(
        "manifest", "verify", "re-check every HDF5 file under a directory (e.g. results/<experiment>)", ()
    ),
}

# Keyword-only options a stage function may take: argparse settings, and where a job gets them
OPTIONS: dict[str, dict[str, Any]] = {
    "threads": {"type": int, "default": 1, "help": "torch threads"},
    "device": {"default": "auto", "help": "auto (CUDA when present), cpu or cuda"},
    "shard": {"default": "1/1", "help": "INDEX/COUNT of the snapshot range (job: the shard wildcard)"},
    "kind": {"required": True, "help": "the sharded stage whose files these are (job: the kind wildcard)"},
    "progress": {"action": "store_false", "help": "no progress bar (flag --no-progress)"},
    "indices": {"type": int, "nargs": "*", "help": "snapshot positions (default: all)"},
}


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # "input", "output", "settings" or "option"
    many: bool  # a list of files
    optional: bool

    @property
    def flag(self) -> str:
        return "--no-progress" if self.name == "progress" else "--" + self.name.replace("_", "-")


@cache
def parameters(stage: str) -> tuple[Parameter, ...]:
    """The stage function's parameters, read from its module's source."""
    spec = STAGES[stage]
    tree = ast.parse((PACKAGE / f"{spec.module}.py").read_text())
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == spec.function]
    if not found:
        raise LookupError(f"stage {stage}: {spec.module}.py has no function {spec.function}")
    args = found[0].args
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    out = []
    for i, arg in enumerate(positional):
        annotation = ast.unparse(arg.annotation) if arg.annotation else ""
        kind = "settings" if arg.arg == "settings" else "output" if arg.arg in spec.outputs else "input"
        out.append(Parameter(arg.arg, kind, annotation.startswith("list["), i >= first_default))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if arg.arg not in OPTIONS:
            raise LookupError(f"stage {stage}: option {arg.arg} of {spec.function} is not in stages.OPTIONS")
        out.append(Parameter(arg.arg, "option", False, default is not None))
    missing = set(spec.outputs) - {p.name for p in out}
    if missing:
        raise LookupError(f"stage {stage}: {spec.function} has no parameter for output(s) {sorted(missing)}")
    return tuple(out)


def job_arguments(stage: str, input: Named, output: Named, wildcards: Named) -> str:
    """The shell words after `python -m inductionheads` of one job: the stage, each file parameter from
    the rule's input or output entry of the same name, and the options its wildcards give; each word
    quoted. A rule entry the function does not take, or a file it needs that the rule lacks, is an error
    naming both."""
    words = [stage]
    files = {"input": dict(input.items()), "output": dict(output.items())}
    wildcards = dict(wildcards.items())
    for p in parameters(stage):
        if p.kind in files:
            value = files[p.kind].pop(p.name, None)
            if value is None:
                if p.optional:
                    continue
                raise KeyError(f"stage {stage} needs {p.kind} '{p.name}' but the rule has no such entry")
            values = [value] if isinstance(value, str) else list(value)
            words += [p.flag, *map(str, values)]
        elif p.kind == "option" and p.name in wildcards:
            value = str(wildcards[p.name])
            words += [p.flag, value.replace("of", "/") if p.name == "shard" else value]
    extra = [f"{kind} '{name}'" for kind, left in files.items() for name in left]
    if extra:
        raise KeyError(f"stage {stage} takes no {', '.join(extra)}: name the entry as its parameter")
    return shlex.join(words)
