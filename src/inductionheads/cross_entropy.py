"""The training loss at a large vocabulary: unembedding and cross-entropy fused, a chunk of tokens at a time.

The exact path (`model.per_token_losses` on the full logits) keeps a float32 log-softmax of
[tokens, vocab] for the backward pass: 17 GB per copy at 8 x 8,192 tokens and a 2^16 vocabulary. Here
the logits of one chunk of tokens exist at a time, and each chunk's gradient (softmax minus the one-hot
target) is taken in the forward pass and pushed through the unembedding at once, as fused
linear-cross-entropy kernels do, so nothing of size [tokens, vocab] is kept for backward and no matmul
is recomputed. The arithmetic of each matmul is the ambient autocast's, as in the exact path.
"""

from __future__ import annotations

import torch


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, W_U, b_U, targets, chunk: int):
        n = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        grad_W = torch.zeros_like(W_U)
        grad_b = torch.zeros_like(b_U)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, n, chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            logits = (h @ W_U + b_U).float()
            lse = logits.logsumexp(-1)
            total += (lse - logits.gather(-1, t[:, None]).squeeze(-1)).sum()
            # d(mean loss)/d logits = (softmax - onehot) / n, built in the logits' own buffer
            grad_logits = logits.sub_(lse[:, None]).exp_()
            grad_logits[torch.arange(len(t), device=t.device), t] -= 1
            grad_logits /= n
            grad_hidden[start : start + chunk] = grad_logits @ W_U.T
            grad_W += h.T @ grad_logits
            grad_b += grad_logits.sum(0)
        ctx.save_for_backward(grad_hidden, grad_W, grad_b)
        return total / n

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_W, grad_b = ctx.saved_tensors
        return grad_hidden * grad_output, grad_W * grad_output, grad_b * grad_output, None, None


def mean_next_token_loss(
    hidden: torch.Tensor, W_U: torch.Tensor, b_U: torch.Tensor, tokens: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Mean of L_i = -log p(x_i | x_<i) over i = 1..T-1 and the batch, from the unembedding's input.

    hidden: the final LayerNorm's output [B, T, D]; tokens [B, T]; chunk: tokens whose logits exist at
    once. Equal to `per_token_losses(hidden @ W_U + b_U, tokens).mean()` in value and gradient (up to
    float rounding), differentiable in hidden, W_U and b_U."""
    if chunk < 1:
        raise ValueError(f"loss chunk must be at least one token, got {chunk}")
    rows = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    return _LinearCrossEntropy.apply(rows, W_U, b_U, tokens[:, 1:].reshape(-1), chunk)
