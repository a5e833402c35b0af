"""The model: per-head weight names and shapes, Shortformer positions, the two attention paths."""

import pytest
import torch

from inductionheads.model import Transformer, sinusoidal_positions

SPEC = dict(family="attention-only", n_layers=2, d_model=24, n_heads=3, context_length=32, name="t")


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
    cache = []
    with torch.no_grad():
        assert torch.allclose(m(tokens), m(tokens, cache=cache), atol=1e-5)
    pattern = cache[0]["pattern"]
    assert pattern.shape == (4, 3, 32, 32)
    assert torch.allclose(pattern.sum(-1), torch.ones(4, 3, 32))
    assert (pattern.triu(1) == 0).all()  # causal


def test_positions_enter_queries_and_keys_only():
    torch.manual_seed(0)
    m = Transformer(SPEC, vocab_size=50).eval()
    tokens = torch.randint(0, 50, (2, 16))
    cache = []
    with torch.no_grad():
        m(tokens, cache=cache)
        # the residual stream holds the token embedding alone
        assert torch.allclose(cache[0]["attn_in"], m.blocks[0].ln1(m.W_E[tokens]))
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


def test_context_longer_than_trained_is_an_error():
    m = Transformer(SPEC, vocab_size=50)
    with pytest.raises(ValueError, match="context_length"):
        m(torch.zeros(1, 33, dtype=torch.long))


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="family"):
        Transformer({**SPEC, "family": "mamba"}, vocab_size=50)
