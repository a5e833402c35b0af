"""Config validation: every bad input fails before any work, naming the key."""

import copy

import pytest
import yaml
from conftest import REPO, SCHEMA, smoke_config

from inductionheads.config import ConfigError, digest, model_spec, run_spec, runs, validate


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
        (lambda c: c["head_scores"].update(prev_token_contexts=99), r"head_scores\.prev_token_contexts"),
        (lambda c: c["models"]["attn2"].update(n_heads=3), r"models\.attn2\.d_model.*divisible"),
        (lambda c: c["models"]["attn1"].update(n_snapshots=100), r"models\.attn1\.n_snapshots"),
        (lambda c: c["models"]["attn1"].update(context_length=32), r"evaluation\.context_length"),
        (lambda c: c["corpus"].update(source="files", paths=["/no/such/dir/*.txt"]), r"/no/such/dir/\*\.txt"),
        (lambda c: c["models"].update(all_models={}), r"reserved"),
        (lambda c: c["models"]["attn1"].update(replicates=0), r"models\.attn1\.replicates"),
        (lambda c: c["model_defaults"].update(precision="float16"), r"model_defaults\.precision"),
        (lambda c: c["models"]["attn2"].update(log_snapshots=-1), r"models\.attn2\.log_snapshots"),
        (lambda c: c["models"]["attn2"].update(loss_chunk_tokens=0), r"models\.attn2\.loss_chunk_tokens"),
        (lambda c: c["analysis"].pop("plateau_fraction"), r"'analysis' lacks a required key"),
        # what the code cannot use (docs/reliability.md)
        (
            lambda c: c["model_defaults"].update(steps=40.0),
            r"'model_defaults\.steps': 40\.0 is not of type 'integer'",
        ),
        (lambda c: c["models"]["attn1"].update(n_snapshots=True), r"'models\.attn1\.n_snapshots'"),
        (lambda c: c["model_defaults"].update(lr=float("nan")), r"'model_defaults\.lr': nan is not a finite"),
        (lambda c: c["models"]["attn2"].update(lr=float("inf")), r"'models\.attn2\.lr': inf is not a finite"),
        (lambda c: c["analysis"].update(min_icl_drop=float("-inf")), r"'analysis\.min_icl_drop'"),
        (lambda c: c["model_defaults"].update(lr=30), r"'model_defaults\.lr': 30 is greater than"),
        (lambda c: c["models"]["attn1"].update(divergence_ratio=0.5), r"models\.attn1\.divergence_ratio"),
        (lambda c: c.update(experiment=".."), r"'experiment': '\.\.' does not match"),
        (lambda c: c.update(experiment="."), r"'experiment'"),
        (lambda c: c.update(experiment="a/b"), r"'experiment'"),
        (lambda c: c["models"].update({"..": {}}), r"'models'"),
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


def test_replicates_expand_into_runs_with_consecutive_seeds():
    config = smoke_config()
    config["model_defaults"]["replicates"] = 3
    config["models"]["attn2"].update(seed=10)
    config["models"]["mlp2"].update(replicates=1)
    got = runs(config)
    assert got[:4] == [(0, "attn1", 0), (0, "attn2", 10), (0, "smeared1", 0), (0, "mlp2", 0)]
    assert [(r, m, s) for r, m, s in got if m == "attn2"] == [
        (0, "attn2", 10),
        (1, "attn2", 11),
        (2, "attn2", 12),
    ]
    assert [r for r, m, _ in got if m == "mlp2"] == [0]
    assert len(got) == 3 * 3 + 1


def test_a_run_spec_does_not_depend_on_how_many_replicates_there_are():
    """Adding replicates must leave the existing runs' settings, hence their outputs, as they are."""
    config = smoke_config()
    one = run_spec(config, "attn2", 0)
    config["models"]["attn2"]["replicates"] = 4
    assert run_spec(config, "attn2", 0) == one and "replicates" not in one
    assert run_spec(config, "attn2", 3)["seed"] == 3
    with pytest.raises(ConfigError, match="no replicate with seed 4"):
        run_spec(config, "attn2", 4)


def test_optional_model_settings_take_their_defaults():
    spec = model_spec(smoke_config(), "attn1")
    assert (spec["replicates"], spec["log_snapshots"], spec["precision"]) == (1, 0, "auto")
    assert spec["position_scale"] == 1.0
    assert spec["micro_batch_size"] is None and spec["loss_chunk_tokens"] is None  # the exact loss


def test_the_replicates_config_is_the_default_experiment_with_five_replicates():
    """configs/replicates.yaml repeats config.yaml; only its name and the replicate count differ."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    replicates = yaml.safe_load((REPO / "configs" / "replicates.yaml").read_text())
    assert replicates.pop("experiment") == "replicates" and default.pop("experiment") == "default"
    assert replicates["model_defaults"].pop("replicates") == 5
    assert default["model_defaults"].pop("replicates", 1) == 1
    assert replicates == default


def corpus_config(tmp_path, *names):
    config = smoke_config()
    config["corpus"].update(source="files", paths=[str(tmp_path / name) for name in names])
    return config


def test_an_unreadable_corpus_file_is_named_before_any_job(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    # a regular file that fails on reading, even for root (chmod 000 is no obstacle to root)
    (tmp_path / "c.py").symlink_to("/proc/self/mem")
    with pytest.raises(ConfigError, match=r"corpus\.paths.*c\.py is unreadable"):
        validate(corpus_config(tmp_path, "*.py"), SCHEMA)


def test_empty_and_binary_corpus_files_are_named_and_too_few_documents_fail(tmp_path, caplog):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "empty.py").write_text("  \n")
    (tmp_path / "image.py").write_bytes(bytes(range(256)))
    with caplog.at_level("WARNING"):
        validate(corpus_config(tmp_path, "*.py"), SCHEMA)
    assert "empty.py (empty)" in caplog.text and "image.py (binary" in caplog.text
    with pytest.raises(ConfigError, match=r"1 usable file.*image\.py \(binary"):
        validate(corpus_config(tmp_path, "a.py", "image.py", "empty.py"), SCHEMA)


def test_a_rules_code_digest_follows_the_package_imports_of_its_module(tmp_path, monkeypatch):
    import importlib.util
    import types

    from inductionheads import config

    package = tmp_path / "inductionheads"
    package.mkdir()
    (package / "stage.py").write_text("from . import helper\n")
    (package / "helper.py").write_text("def f():\n    from .deep import g  # lazy\n")
    (package / "deep.py").write_text("x = 1\n")
    (package / "other.py").write_text("y = 1\n")
    found = types.SimpleNamespace(submodule_search_locations=[str(package)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: found)
    before = config.code_digest("stage")
    (package / "other.py").write_text("y = 2\n")  # not imported: nothing reruns
    assert config.code_digest("stage") == before
    (package / "deep.py").write_text("x = 2\n")  # imported two steps down, inside a function
    assert config.code_digest("stage") != before
