"""The model: per-head weight names and shapes, Shortformer positions, the two attention paths."""

import pytest
import torch

from inductionheads.model import Cache, Transformer, sinusoidal_positions

# random output projections: the paths compared here must carry every head's output
SPEC = dict(
    family="attention-only",
    n_layers=2,
    d_model=24,
    n_heads=3,
    context_length=32,
    name="t",
    output_init="normal",
)


def test_per_head_weights_have_framework_shapes():
    m = Transformer(SPEC, vocab_size=50)
    attn = m.blocks[1].attn
    assert attn.W_Q.shape == attn.W_K.shape == attn.W_V.shape == (3, 24, 8)
    assert attn.W_O.shape == (3, 8, 24)
    assert m.W_E.shape == (50, 24) and m.W_U.shape == (24, 50)
    assert "blocks.1.attn.W_Q" in m.state_dict()


def test_pattern_path_equals_fused_attention_path():
    torch.manual_seed(0)
    m = Transformer(SPEC, vocab_size=50).eval()
    tokens = torch.randint(0, 50, (4, 32))
    cache = Cache()
    with torch.no_grad():
        assert torch.allclose(m(tokens), m(tokens, cache=cache), atol=1e-5)
    pattern = cache.layers[0].pattern
    assert pattern.shape == (4, 3, 32, 32)
    assert torch.allclose(pattern.sum(-1), torch.ones(4, 3, 32))
    assert (pattern.triu(1) == 0).all()  # causal


def _cached_forward(m, tokens):
    """The activations a forward pass of `m` on `tokens` records."""
    cache = Cache()
    with torch.no_grad():
        m(tokens, cache=cache)
    return cache


def test_positions_enter_queries_and_keys_only():
    torch.manual_seed(0)
    m = Transformer(SPEC, vocab_size=50).eval()
    tokens = torch.randint(0, 50, (2, 16))
    cache = _cached_forward(m, tokens)
    with torch.no_grad():
        # the residual stream holds the token embedding alone
        assert torch.allclose(cache.layers[0].ln1_normalized, m.blocks[0].ln1(m.W_E[tokens]))
        # with W_Q = W_K = 0 (and zero biases) attention is uniform whatever the positions
        for block in m.blocks:
            block.attn.W_Q.zero_()
            block.attn.W_K.zero_()
        before = m(tokens)
        m.pos.copy_(torch.randn_like(m.pos))
        assert torch.allclose(before, m(tokens), atol=1e-6)


def test_sinusoid_is_fixed_and_bounded():
    pe = sinusoidal_positions(10, 8)
    assert pe.shape == (10, 8) and pe.abs().max() <= 1
    assert torch.allclose(pe[0, 1::2], torch.ones(4))


def test_position_scale_multiplies_the_sinusoid_and_only_the_query_key_scores():
    """A scaled model equals, by hand, attention with queries and keys from LN(x) + scale * sinusoid."""
    torch.manual_seed(0)
    plain = Transformer(SPEC, vocab_size=50).eval()
    scaled = Transformer({**SPEC, "position_scale": 2.5}, vocab_size=50).eval()
    scaled.load_state_dict(plain.state_dict())  # the sinusoid is not a stored weight
    assert torch.allclose(scaled.pos, 2.5 * sinusoidal_positions(32, 24))
    tokens = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        unscaled = plain(tokens)
        plain.pos.mul_(2.5)  # the same positions put in by hand: the same model
        assert torch.allclose(plain(tokens), scaled(tokens), atol=1e-6)
        assert not torch.allclose(unscaled, scaled(tokens), atol=1e-3)


def test_context_longer_than_trained_is_an_error():
    m = Transformer(SPEC, vocab_size=50)
    with pytest.raises(ValueError, match="context_length"):
        m(torch.zeros(1, 33, dtype=torch.long))


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="family"):
        Transformer({**SPEC, "family": "mamba"}, vocab_size=50)


FAMILY_SPECS = {
    family: {**SPEC, "family": family} for family in ("attention-only", "with-mlp", "smeared-key")
}


def _trained_like(spec, seed=0):
    """A model with non-trivial LayerNorm weights, biases and smear logits (zero at init)."""
    torch.manual_seed(seed)
    m = Transformer(spec, vocab_size=50).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(("weight", "bias", "b_Q", "b_V", "b_O", "alpha_smear", "b_in", "b_out")):
                p.add_(torch.randn_like(p) * 0.3)
    return m


def test_smeared_key_equals_a_naive_loop():
    m = _trained_like(FAMILY_SPECS["smeared-key"])
    attn = m.blocks[0].attn
    k = torch.randn(2, 3, 10, 8)
    got = attn.smear(k)
    s = torch.sigmoid(attn.alpha_smear)
    for h in range(3):
        assert torch.allclose(got[:, h, 0], k[:, h, 0], atol=1e-6)  # k_0 unchanged
        for j in range(1, 10):
            want = s[h] * k[:, h, j] + (1 - s[h]) * k[:, h, j - 1]
            assert torch.allclose(got[:, h, j], want, atol=1e-6)


def test_smeared_key_alpha_is_trainable_and_changes_the_output():
    m = _trained_like(FAMILY_SPECS["smeared-key"])
    tokens = torch.randint(0, 50, (2, 16))
    assert m.blocks[0].attn.alpha_smear.requires_grad
    with torch.no_grad():
        before = m(tokens)
        m.blocks[1].attn.alpha_smear.add_(3.0)
        assert not torch.allclose(before, m(tokens), atol=1e-4)


def test_mlp_block_is_gelu_mlp_after_attention():
    m = _trained_like({**FAMILY_SPECS["with-mlp"], "n_layers": 1})
    tokens = torch.randint(0, 50, (2, 16))
    block = m.blocks[0]
    assert block.mlp.W_in.shape == (24, 96) and block.mlp.W_out.shape == (96, 24)
    with torch.no_grad():
        x = m.W_E[tokens]
        x = x + block.attn(block.ln1(x), m.pos[:16])
        ln2 = block.ln2(x)
        x = x + torch.nn.functional.gelu(ln2 @ block.mlp.W_in + block.mlp.b_in) @ block.mlp.W_out
        x = x + block.mlp.b_out
        assert torch.allclose(m(tokens), m.ln_final(x) @ m.W_U + m.b_U, atol=1e-5)


@pytest.mark.parametrize("family", FAMILY_SPECS)
def test_hooked_paths_equal_the_plain_forward(family):
    m = _trained_like(FAMILY_SPECS[family])
    tokens = torch.randint(0, 50, (3, 20))
    with torch.no_grad():
        clean = m(tokens)
        cache = Cache()
        assert torch.allclose(m(tokens, cache=cache), clean, atol=1e-5)
        # replaying the clean run's own patterns and scales changes nothing
        assert torch.allclose(m(tokens, frozen=cache), clean, atol=1e-5)
        ones = torch.ones(3, 2, 3)
        assert torch.allclose(m(tokens, head_mask=ones), clean, atol=1e-5)


@pytest.mark.parametrize("family", FAMILY_SPECS)
def test_head_mask_zero_equals_removing_the_head_weights(family):
    m = _trained_like(FAMILY_SPECS[family])
    tokens = torch.randint(0, 50, (2, 20))
    mask = torch.ones(2, 2, 3)
    mask[:, 0, 1] = 0
    with torch.no_grad():
        masked = m(tokens, head_mask=mask)
        m.blocks[0].attn.W_O[1].zero_()  # the head's result vector is z_h @ W_O[h]
        assert torch.allclose(masked, m(tokens), atol=1e-5)


def test_frozen_ablation_of_a_last_layer_head_is_linear():
    """With patterns and the final LayerNorm scale frozen, removing a last-layer head subtracts its
    result vector, mapped through the frozen final LayerNorm and W_U, from the logits."""
    m = _trained_like(FAMILY_SPECS["attention-only"])
    tokens = torch.randint(0, 50, (2, 20))
    cache = Cache()
    mask = torch.ones(2, 2, 3)
    mask[:, 1, 2] = 0
    with torch.no_grad():
        clean = m(tokens, cache=cache)
        ablated = m(tokens, head_mask=mask, frozen=cache)
        attn, layer = m.blocks[1].attn, cache.layers[1]
        result = layer.pattern[:, 2] @ layer.v[:, 2] @ attn.W_O[2]  # [B, T, D]
        centred = result - result.mean(-1, keepdim=True)
        want = clean - (centred / cache.ln_final_scale * m.ln_final.weight) @ m.W_U
        assert torch.allclose(ablated, want, atol=1e-4)


@pytest.mark.parametrize("family", FAMILY_SPECS)
def test_output_projections_start_at_zero_by_default(family):
    """Default output_init zero: W_O and W_out start at zero, so at initialisation every layer reads the
    token embedding alone, and its output is exactly its bias; normal draws them with std 1/sqrt(fan_in)."""
    spec = {k: v for k, v in FAMILY_SPECS[family].items() if k != "output_init"}
    torch.manual_seed(0)
    m = Transformer(spec, vocab_size=50).eval()
    tokens = torch.randint(0, 50, (2, 20))
    cache = _cached_forward(m, tokens)
    for block, layer in zip(m.blocks, cache.layers, strict=True):
        assert (block.attn.W_O == 0).all() and (block.mlp is None or (block.mlp.W_out == 0).all())
        assert torch.equal(layer.resid_pre, m.W_E[tokens])  # biases start at zero too
    torch.manual_seed(0)
    normal = Transformer({**spec, "output_init": "normal"}, vocab_size=50)
    W_O = normal.blocks[0].attn.W_O
    assert W_O.std().item() == pytest.approx(1 / 24**0.5, rel=0.15)
    if family == "with-mlp":
        assert normal.blocks[0].mlp.W_out.std().item() == pytest.approx(1 / 96**0.5, rel=0.15)
    with pytest.raises(ValueError, match="output_init"):
        Transformer({**spec, "output_init": "ones"}, vocab_size=50)
