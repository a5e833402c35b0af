"""The fused, chunked training loss against the exact per-token losses: value, gradient, what it keeps."""

import pytest
import torch

from inductionheads.cross_entropy import mean_next_token_loss
from inductionheads.model import Transformer, per_token_losses

SPEC = dict(
    name="t", family="with-mlp", n_layers=2, d_model=32, n_heads=4, context_length=24, output_init="normal"
)  # fmt: skip
VOCAB = 997  # the largest axis, as at the paper's 2^16


def loss_and_grads(model, tokens, chunk, precision="float32"):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        if chunk is None:  # the exact path: full logits, float32 log-softmax
            loss = per_token_losses(model(tokens), tokens).mean()
        else:
            loss = mean_next_token_loss(model.hidden(tokens), model.W_U, model.b_U, tokens, chunk)
    (3.0 * loss).backward()  # a scale on the output must reach every gradient
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.fixture
def model_and_tokens():
    torch.manual_seed(0)
    return Transformer(SPEC, VOCAB), torch.randint(0, VOCAB, (3, 24))


@pytest.mark.parametrize("chunk", [1, 7, 23, 69, 1000])  # 69 = 3 x 23 predicted tokens: one chunk
def test_value_and_every_gradient_equal_the_exact_loss(model_and_tokens, chunk):
    model, tokens = model_and_tokens
    want_loss, want = loss_and_grads(model, tokens, None)
    got_loss, got = loss_and_grads(model, tokens, chunk)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-6, atol=1e-6)
    assert want.keys() == got.keys()
    for name in want:  # float rounding, relative to each gradient's own scale
        atol = 1e-5 * float(want[name].abs().max())
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=atol, msg=name)


def test_under_bfloat16_autocast_it_follows_the_exact_loss(model_and_tokens):
    model, tokens = model_and_tokens
    want_loss, want = loss_and_grads(model, tokens, None, "bfloat16")
    got_loss, got = loss_and_grads(model, tokens, 7, "bfloat16")
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-3, atol=1e-3)
    for name in want:  # bfloat16 rounds each chunk's W_U gradient on its own: agreement to ~1%
        scale = want[name].abs().max()
        assert (got[name] - want[name]).abs().max() <= 0.02 * scale, name


def test_it_keeps_nothing_of_size_tokens_by_vocabulary_for_backward(model_and_tokens):
    """What a loss keeps between forward and backward is the memory it costs at scale. The exact path
    keeps its [tokens, vocab] log-softmax; the fused one keeps none, not even in chunks (an autograd
    loss over chunks would keep every chunk's), only tensors of the hidden state's and W_U's sizes,
    where the exact path's unembedding keeps the hidden state and W_U."""
    model, tokens = model_and_tokens
    n_predicted = tokens.shape[0] * (tokens.shape[1] - 1)

    def saved_elements(chunk):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            loss_and_grads(model, tokens, chunk)
        return sum(sizes)

    exact, fused = saved_elements(None), saved_elements(7)
    assert exact - fused >= n_predicted * VOCAB


def test_a_chunk_below_one_token_is_refused(model_and_tokens):
    model, tokens = model_and_tokens
    with pytest.raises(ValueError, match="at least one token"):
        mean_next_token_loss(model.hidden(tokens), model.W_U, model.b_U, tokens, 0)
