"""Head ablations: the all-heads-at-once paths against a naive loop of one hooked forward per head,
written here independently of the model's own attention code."""

import numpy as np
import pytest
import torch

from inductionheads import ablation
from inductionheads.icl import icl_score
from inductionheads.model import Transformer, per_token_losses
from inductionheads.schedule import ablated_positions

FAMILIES = ("attention-only", "with-mlp", "smeared-key")
L, H, V, T = 3, 4, 60, 48


def _model(family: str, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    m = Transformer(
        dict(family=family, n_layers=L, d_model=32, n_heads=H, context_length=T, output_init="normal"), V
    ).eval()
    with torch.no_grad():  # make LayerNorm weights, biases and smear logits non-trivial
        for name, p in m.named_parameters():
            if name.endswith(("weight", "bias", "alpha_smear", "b_O", "b_V", "b_Q", "b_in", "b_out")):
                p.add_(torch.randn_like(p) * 0.3)
    return m


def _ln(x, ln, scale=None):
    centred = x - x.mean(-1, keepdim=True)
    if scale is None:
        scale = (centred.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()
    return centred / scale * ln.weight + ln.bias, scale


def _naive_logits(m: Transformer, tokens, removed, frozen: dict | None):
    """One forward with head `removed` = (layer, head) zeroed, head by head; with `frozen` (recorded
    by a clean naive pass) its patterns and LayerNorm scales replace this pass's own. Returns the
    logits and what a clean pass records."""
    record = {"pattern": {}, "scale": {}}
    x = m.W_E[tokens]
    pos = m.pos[: tokens.shape[1]]
    mask = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).triu(1)
    for layer, block in enumerate(m.blocks):
        attn = block.attn
        normed, s = _ln(x, block.ln1, frozen["scale"][layer, 1] if frozen else None)
        record["scale"][layer, 1] = s
        out = attn.b_O.expand_as(x).clone()
        for h in range(H):
            v = normed @ attn.W_V[h] + attn.b_V[h]
            if frozen:
                pattern = frozen["pattern"][layer, h]
            else:
                q = (normed + pos) @ attn.W_Q[h] + attn.b_Q[h]
                k = (normed + pos) @ attn.W_K[h]
                if attn.alpha_smear is not None:
                    s_h = torch.sigmoid(attn.alpha_smear[h])
                    k = torch.cat([k[:, :1], s_h * k[:, 1:] + (1 - s_h) * k[:, :-1]], 1)
                scores = q @ k.transpose(1, 2) / attn.d_head**0.5
                pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)
            record["pattern"][layer, h] = pattern
            if (layer, h) != removed:
                out = out + pattern @ v @ attn.W_O[h]
        x = x + out
        if block.mlp is not None:
            normed, s = _ln(x, block.ln2, frozen["scale"][layer, 2] if frozen else None)
            record["scale"][layer, 2] = s
            x = x + torch.nn.functional.gelu(normed @ block.mlp.W_in + block.mlp.b_in) @ block.mlp.W_out
            x = x + block.mlp.b_out
    normed, s = _ln(x, m.ln_final, frozen["scale"]["final"] if frozen else None)
    record["scale"]["final"] = s
    return normed @ m.W_U + m.b_U, record


@pytest.mark.parametrize("family", FAMILIES)
def test_all_heads_at_once_equal_a_naive_loop_of_hooked_forwards(family):
    m = _model(family)
    tokens = torch.randint(0, V, (5, T))
    columns = ablation.target_columns(10, 35, 3, np.random.default_rng(0).integers(2, T, 5))
    clean, out = ablation.ablate(m, tokens, columns)
    with torch.no_grad():
        clean_logits, recorded = _naive_logits(m, tokens, None, None)
        want_clean = per_token_losses(clean_logits, tokens).gather(1, columns)
        assert torch.allclose(clean, want_clean, atol=1e-4)
        for layer in range(L):
            for h in range(H):
                for method, frozen in (("full", None), ("pattern_preserving", recorded)):
                    logits, _ = _naive_logits(m, tokens, (layer, h), frozen)
                    want = per_token_losses(logits, tokens).gather(1, columns)
                    assert torch.allclose(out[method][layer, h], want, atol=1e-4), (method, layer, h)


def test_pattern_preserving_and_full_differ_where_downstream_attention_moves():
    """Removing a first-layer head changes later patterns and LayerNorm scales, which only full
    ablation recomputes: the two methods must not coincide."""
    m = _model("attention-only", seed=1)
    tokens = torch.randint(0, V, (4, T))
    columns = ablation.target_columns(10, 35, 3, np.full(4, 20))
    _, out = ablation.ablate(m, tokens, columns)
    assert not torch.allclose(out["full"][0], out["pattern_preserving"][0], atol=1e-4)


def test_summaries_equal_the_icl_score_and_random_token_loss_of_the_full_loss_matrix():
    m = _model("attention-only", seed=2)
    tokens = torch.randint(0, V, (6, T))
    random_index = np.random.default_rng(3).integers(1, T, 6)
    columns = ablation.target_columns(10, 35, 3, random_index)
    with torch.no_grad():
        full = per_token_losses(m(tokens), tokens)
    icl, random_loss = ablation.summarize(full.gather(1, columns), 3)
    assert float(icl.mean()) == pytest.approx(icl_score(full.numpy(), 10, 35, 3)[0], abs=1e-6)
    assert torch.equal(random_loss, full[torch.arange(6), torch.as_tensor(random_index - 1)])


def test_removing_a_set_of_heads_equals_zeroing_their_output_weights():
    m = _model("with-mlp", seed=4)
    tokens = torch.randint(0, V, (3, T))
    columns = ablation.target_columns(10, 35, 3, np.full(3, 30))
    heads = np.zeros((L, H), bool)
    heads[1, 2] = heads[2, 0] = True
    got = ablation.ablate_set(m, tokens, columns, heads)["full"]
    with torch.no_grad():
        m.blocks[1].attn.W_O[2].zero_()
        m.blocks[2].attn.W_O[0].zero_()
        want = per_token_losses(m(tokens), tokens).gather(1, columns)
    assert torch.allclose(got, want, atol=1e-5)


def test_schedule_takes_every_nth_snapshot_and_the_last():
    assert ablated_positions(41, 4).tolist() == list(range(0, 41, 4))
    assert ablated_positions(10, 4).tolist() == [0, 4, 8, 9]
    assert ablated_positions(5, 1).tolist() == [0, 1, 2, 3, 4]
