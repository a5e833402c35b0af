"""Config validation: every bad input fails before any work, naming the key."""

import copy

import pytest
import yaml
from conftest import REPO, SCHEMA, smoke_config

from inductionheads.config import ConfigError, digest, model_spec, validate


def check(mutate):
    config = smoke_config()
    mutate(config)
    return validate(config, SCHEMA)


def test_shipped_configs_are_valid():
    for path in [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        validate(yaml.safe_load(path.read_text()), SCHEMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["models"]["attn2"].update(n_layer=2), r"unknown config key models\.attn2\.n_layer"),
        (lambda c: c.update(trainig={}), r"unknown config key trainig"),
        (
            lambda c: c["model_defaults"].update(d_model="big"),
            r"'model_defaults\.d_model': 'big' is not of type",
        ),
        (lambda c: c["corpus"].update(vocab_size=3.5), r"'corpus\.vocab_size'"),
        (lambda c: c["figures"].update(style="neon"), r"'figures\.style'"),
        (lambda c: c["evaluation"].pop("icl_late"), r"'evaluation' lacks a required key"),
        (lambda c: c["evaluation"].update(icl_late=64), r"evaluation\.icl_late"),
        (lambda c: c["evaluation"].update(icl_window=14), r"icl_window"),
        (lambda c: c["heads"].update(prev_token_contexts=99), r"heads\.prev_token_contexts"),
        (lambda c: c["models"]["attn2"].update(n_heads=3), r"models\.attn2\.d_model.*divisible"),
        (lambda c: c["models"]["attn1"].update(n_snapshots=100), r"models\.attn1\.n_snapshots"),
        (lambda c: c["models"]["attn1"].update(context_length=32), r"evaluation\.context_length"),
        (lambda c: c["corpus"].update(source="files", paths=["/no/such/dir/*.txt"]), r"/no/such/dir/\*\.txt"),
        (lambda c: c["models"].update(all_models={}), r"reserved"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(mutate, message):
    with pytest.raises(ConfigError, match=message):
        check(mutate)


def test_model_spec_merges_defaults_and_overrides():
    config = smoke_config()
    spec = model_spec(config, "attn2")
    assert spec["n_layers"] == 2 and spec["d_model"] == config["model_defaults"]["d_model"]
    assert spec["name"] == "attn2"
    with pytest.raises(ConfigError, match="no model 'attn9'"):
        model_spec(config, "attn9")


def test_digest_is_order_free_and_sensitive():
    a = {"x": 1, "y": [1, 2]}
    assert digest(a) == digest(dict(reversed(list(a.items()))))
    b = copy.deepcopy(a)
    b["y"][1] = 3
    assert digest(a) != digest(b)
