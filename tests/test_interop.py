"""TransformerLens interop: exported snapshots compute what ours do, in TransformerLens itself."""

import sys

import numpy as np
import pytest
import torch

from inductionheads import head_scores, interop
from inductionheads.model import Transformer

tl = pytest.importorskip("transformer_lens", reason="the interop extra: pip install -e '.[interop]'")


def _model(family: str, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    spec = dict(
        name="m", family=family, n_layers=2, d_model=32, n_heads=4, context_length=64, output_init="normal"
    )
    m = Transformer(spec, 80).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(("weight", "bias", "b_Q", "b_V", "b_O", "b_in", "b_out", "b_U")):
                p.add_(torch.randn_like(p) * 0.3)
    return m


@pytest.mark.parametrize("family", ["attention-only", "with-mlp"])
def test_exported_model_has_equal_logits(family):
    m = _model(family)
    hooked = interop.to_hooked_transformer(m)
    tokens = torch.randint(0, 80, (3, 64))
    with torch.no_grad():
        assert torch.allclose(hooked(tokens), m(tokens), atol=1e-4)


def test_prefix_matching_equals_transformer_lens_pattern_hooks():
    m = _model("attention-only", seed=1)
    hooked = interop.to_hooked_transformer(m)
    R, n = 10, 4
    tokens = torch.cat([torch.zeros(3, 1, dtype=torch.long), torch.randint(1, 80, (3, R)).repeat(1, n)], 1)
    with torch.no_grad():
        ours = head_scores.score_snapshot(m, tokens, tokens, R, n)["prefix_matching"]
        _, cache = hooked.run_with_cache(tokens)
    for layer in range(2):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, query, key]
        theirs = head_scores.prefix_matching(pattern, R, n).numpy()
        np.testing.assert_allclose(ours[layer], theirs, atol=1e-5)


def test_export_writes_a_series_transformer_lens_loads(tmp_path, smoke_results):
    written = interop.export(smoke_results / "models/attn2/seed0/snapshots.h5", tmp_path, indices=[0, -1])
    assert [p.name for p in written] == ["step_00000000.pt", "step_00000040.pt"]
    import json

    cfg = tl.HookedTransformerConfig(**json.loads((tmp_path / "config.json").read_text()))
    hooked = tl.HookedTransformer(cfg)
    hooked.load_state_dict(torch.load(written[-1]), strict=False)
    from inductionheads.snapshots import SnapshotReader

    with SnapshotReader(smoke_results / "models/attn2/seed0/snapshots.h5") as snaps:
        model = snaps.model(-1)
    tokens = torch.randint(0, model.vocab_size, (2, 64))
    with torch.no_grad():
        assert torch.allclose(hooked.eval()(tokens), model(tokens), atol=1e-4)


def test_smeared_key_models_do_not_export():
    with pytest.raises(ValueError, match="smeared"):
        interop.to_hooked_transformer(_model("smeared-key"))


def test_missing_extra_says_which_install_fixes_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[interop\]'"):
        interop.transformer_lens()


def test_an_imported_checkpoint_series_is_measured_like_the_model_it_came_from(smoke_copy, tmp_path):
    """Export attn2's snapshots as TransformerLens checkpoints, import them as another model of the
    same experiment: every measurement rule runs on it unchanged and finds the same numbers."""
    import h5py
    from conftest import smoke_config, snakemake, write_config

    results = smoke_copy / "results/smoke/models"
    series = tmp_path / "series"
    interop.export(results / "attn2/seed0/snapshots.h5", series)
    config = smoke_config()
    config["models"]["imported2"] = {
        "family": "attention-only",
        "n_layers": 2,
        "checkpoints": {"path": str(series), "tokens_per_step": 8 * 64},
    }
    write_config(smoke_copy / "imported.yaml", config)
    snakemake(smoke_copy, "--configfile", "imported.yaml")
    for kind, keys in [
        ("losses", ["icl_score", "mean_loss", "random_token_loss", "tokens_seen"]),
        ("head_scores", ["prefix_matching", "copying", "previous_token", "qk_trace"]),
        ("ablation", ["pattern_preserving/delta_icl_score", "full/delta_icl_score"]),
    ]:
        with (
            h5py.File(results / "attn2" / "seed0" / f"{kind}.h5") as a,
            h5py.File(results / "imported2" / "seed0" / f"{kind}.h5") as b,
        ):
            for key in keys:
                np.testing.assert_allclose(a[key][:], b[key][:], atol=1e-4, equal_nan=True, err_msg=key)
    assert (smoke_copy / "results/smoke/figures/imported2/seed0/ablation_icl.png").stat().st_size > 5000


def test_a_series_of_another_family_is_refused_naming_the_mismatch():
    cfg = {
        "positional_embedding_type": "shortformer",
        "normalization_type": "LN",
        "attn_only": True,
        "n_layers": 2,
        "d_vocab": 300,
        "d_model": 32,
    }
    interop.check_config(cfg, {"family": "attention-only", "n_layers": 2}, 300, "m")
    with pytest.raises(ValueError, match="attn_only"):
        interop.check_config(cfg, {"family": "with-mlp", "n_layers": 2}, 300, "m")
    with pytest.raises(ValueError, match="d_vocab"):
        interop.check_config(cfg, {"family": "attention-only", "n_layers": 2}, 512, "m")
    with pytest.raises(ValueError, match="positional_embedding_type"):
        interop.check_config(
            {**cfg, "positional_embedding_type": "standard"},
            {"family": "attention-only", "n_layers": 2},
            300,
            "m",
        )
