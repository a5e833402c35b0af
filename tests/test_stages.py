"""One table of stages (inductionheads.stages): the CLI and each rule's job arguments come from the
stage functions' signatures, so a file is named in the rule and in the signature and nowhere else."""

import inspect
import re
import shlex
from importlib import import_module

import pytest
from conftest import REPO

from inductionheads import cli
from inductionheads.stages import OPTIONS, STAGES, job_arguments, parameters


def _function(stage):
    spec = STAGES[stage]
    return getattr(import_module(f"inductionheads.{spec.module}"), spec.function)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_source_reading_agrees_with_the_imported_signature(stage):
    signature = inspect.signature(_function(stage))
    read = {p.name: p for p in parameters(stage)}
    assert list(read) == list(signature.parameters)
    for name, p in signature.parameters.items():
        assert (read[name].kind == "option") == (p.kind is p.KEYWORD_ONLY), name
        assert read[name].optional == (p.default is not p.empty), name
        if read[name].kind != "option":
            assert read[name].many == str(p.annotation).startswith("list["), name


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_cli_takes_exactly_the_signature(stage):
    sub = cli.parser()._subparsers._group_actions[0].choices[stage]
    dests = {a.dest for a in sub._actions} - {"help", "log"}
    assert dests == {p.name for p in parameters(stage)}
    for p in parameters(stage):
        action = next(a for a in sub._actions if a.dest == p.name)
        if p.kind in ("input", "output"):
            assert action.required == (not p.optional) and (action.nargs == "+") == p.many, p


def test_every_rule_runs_a_stage_and_names_its_entries_as_the_signature_does():
    """Each rule's named input and output entries are exactly the stage function's file parameters
    (the optional ones may be left out), read from the rule files."""
    seen = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            stage = re.search(r'job=job\("(\w+)"\)', block)
            if not stage:
                continue
            stage = stage.group(1)
            seen.add(stage)
            for kind in ("input", "output"):
                section = re.search(rf"\n    {kind}:\n((?:        .*\n|\s*\n)+?)    \w", block)
                names = (
                    set(re.findall(r"^        (?:\*\*)?(\w+)=", section.group(1), re.M)) if section else set()
                )
                params = [p for p in parameters(stage) if p.kind == kind]
                assert names <= {p.name for p in params}, (smk.name, stage, kind)
                assert {p.name for p in params if not p.optional} <= names, (smk.name, stage, kind)
    # every stage but the two that run outside the workflow has a rule
    assert seen == set(STAGES) - {"export", "verify"}


def test_job_arguments_quote_every_word_and_map_wildcards():
    hostile = "check out $(touch PWNED)/results/x.h5"
    words = job_arguments(
        "losses",
        {"snapshots": hostile, "evalset": "e.h5"},
        {"losses": "out.h5"},
        {"model": "attn2", "seed": "0", "shard": "2of4"},
    )
    assert shlex.split(words) == [
        "losses",
        "--snapshots",
        hostile,
        "--evalset",
        "e.h5",
        "--losses",
        "out.h5",
        "--shard",
        "2/4",
    ]
    assert "'check out $(touch PWNED)/results/x.h5'" in words
    lists = job_arguments("pca", {"losses": ["a.h5", "b.h5"]}, {"pca": "p.h5"}, {"replicate": "0"})
    assert shlex.split(lists) == ["pca", "--losses", "a.h5", "b.h5", "--pca", "p.h5"]


def test_a_rule_entry_the_function_lacks_or_a_missing_file_is_named():
    with pytest.raises(KeyError, match="stage phase takes no input 'heads'"):
        job_arguments("phase", {"losses": "l.h5", "heads": "h.h5"}, {"phase": "p.h5"}, {})
    with pytest.raises(KeyError, match="stage phase needs input 'losses'"):
        job_arguments("phase", {}, {"phase": "p.h5"}, {})
    # an optional input may be left out
    words = job_arguments("figures", {"losses": ["l.h5"]}, {"figures": ["f/icl_score.png"]}, {})
    assert shlex.split(words) == ["figures", "--figures", "f/icl_score.png", "--losses", "l.h5"]


def test_every_option_a_stage_takes_is_known():
    for stage in STAGES:
        for p in parameters(stage):
            if p.kind == "option":
                assert p.name in OPTIONS
