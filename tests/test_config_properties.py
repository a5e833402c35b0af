"""Property-based tests of the config loader: any unknown key or ill-typed value is rejected, naming
the key; every config it accepts satisfies the rules the stages rely on."""

import copy

from conftest import SCHEMA, smoke_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inductionheads.config import ConfigError, model_spec, validate

BASE = smoke_config()
SECTIONS = ["corpus", "model_defaults", "evaluation", "head_scores", "ablation", "analysis", "figures"]
key_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_rejected_naming(section: str, key: str, value) -> None:
    """`value` under `section.key` of the smoke config must fail validation with a message naming it."""
    config = copy.deepcopy(BASE)
    config[section][key] = value
    try:
        validate(config, SCHEMA)
    except ConfigError as err:
        assert f"{section}.{key}" in str(err)
    else:
        raise AssertionError(f"{section}.{key} = {value!r} accepted")


@fast
@given(section=st.sampled_from(SECTIONS), key=key_names, value=st.integers() | st.text(max_size=5))
def test_unknown_keys_are_rejected_by_name(section, key, value):
    if key not in BASE[section]:
        assert_rejected_naming(section, key, value)


@fast
@given(
    section=st.sampled_from(["model_defaults", "evaluation", "head_scores"]),
    data=st.data(),
    value=st.text(max_size=6) | st.lists(st.integers(), max_size=2) | st.none(),
)
def test_ill_typed_values_are_rejected_by_name(section, data, value):
    numeric = sorted(k for k, v in BASE[section].items() if isinstance(v, int | float))
    assert_rejected_naming(section, data.draw(st.sampled_from(numeric)), value)


@fast
@given(
    d_model=st.integers(1, 64),
    n_heads=st.integers(1, 8),
    steps=st.integers(1, 50),
    n_snapshots=st.integers(1, 60),
    context=st.integers(8, 128),
    early=st.integers(1, 120),
    late=st.integers(1, 127),
    window=st.integers(0, 10),
)
def test_accepted_configs_satisfy_the_stage_invariants(d_model, n_heads, steps, n_snapshots, context, early,
                                                       late, window):  # fmt: skip
    config = copy.deepcopy(BASE)
    config["model_defaults"].update(d_model=d_model, n_heads=n_heads, steps=steps, n_snapshots=n_snapshots,
                                    context_length=context)  # fmt: skip
    config["evaluation"].update(icl_early=early, icl_late=late, icl_window=window)
    try:
        validate(config, SCHEMA)
    except ConfigError:
        return
    ev = config["evaluation"]
    for name in config["models"]:
        spec = model_spec(config, name)
        assert spec["d_model"] % spec["n_heads"] == 0
        assert spec["n_snapshots"] <= spec["steps"]
        assert ev["context_length"] <= spec["context_length"]
    assert 1 <= early - window and early + window < late - window and late + window < ev["context_length"]
