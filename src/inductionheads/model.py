"""Small transformers of the paper, with per-head weights named as in the Framework / TransformerLens.

Residual stream x_0 = W_E[tokens]; per layer x += Attn(LN(x)); logits = LN(x) @ W_U + b_U.
Positions are Shortformer-style: a fixed sinusoid added to the inputs of the query and key
projections only, never to the residual stream or the values (methods.md §2).

Per-head weights: W_Q, W_K, W_V [n_heads, d_model, d_head], W_O [n_heads, d_head, d_model].
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("attention-only",)


def sinusoidal_positions(n_ctx: int, d_model: int) -> torch.Tensor:
    pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(n_ctx, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return pe


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        d_head = d_model // n_heads
        self.n_heads, self.d_head = n_heads, d_head
        init = 1 / math.sqrt(d_model)
        self.W_Q = nn.Parameter(torch.randn(n_heads, d_model, d_head) * init)
        self.W_K = nn.Parameter(torch.randn(n_heads, d_model, d_head) * init)
        self.W_V = nn.Parameter(torch.randn(n_heads, d_model, d_head) * init)
        self.W_O = nn.Parameter(torch.randn(n_heads, d_head, d_model) / math.sqrt(d_model))
        self.b_Q = nn.Parameter(torch.zeros(n_heads, d_head))
        # A key bias shifts every score of a query by the same amount, which the softmax ignores: it has
        # no gradient, and trained it would only drift by Adam-amplified rounding noise. Kept (at zero,
        # not trained) for TransformerLens' weight layout.
        self.register_buffer("b_K", torch.zeros(n_heads, d_head))
        self.b_V = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_O = nn.Parameter(torch.zeros(d_model))

    def _project(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # one [d_model, n_heads*d_head] matmul instead of a per-head einsum: faster on CPU
        B, T, D = x.shape
        out = x @ W.permute(1, 0, 2).reshape(D, -1) + b.reshape(-1)
        return out.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # [B, H, T, d_head]

    def forward(self, x: torch.Tensor, pos: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """x: LayerNormed residual [B, T, D]; pos: position vectors [T, D] for queries and keys."""
        qk_in = x + pos
        q = self._project(qk_in, self.W_Q, self.b_Q)
        k = self._project(qk_in, self.W_K, self.b_K)
        v = self._project(x, self.W_V, self.b_V)
        if cache is None:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            T = x.shape[1]
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)  # [B, H, query, key]
            z = pattern @ v
            cache["pattern"] = pattern
            cache["v"] = v
        B, H, T, E = z.shape
        W_O = self.W_O.reshape(H * E, -1)
        return z.transpose(1, 2).reshape(B, T, H * E) @ W_O + self.b_O


class Block(nn.Module):
    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.ln1 = nn.LayerNorm(spec["d_model"])
        self.attn = Attention(spec["d_model"], spec["n_heads"])

    def forward(self, x, pos, cache=None):
        normed = self.ln1(x)
        if cache is not None:
            cache["attn_in"] = normed
        return x + self.attn(normed, pos, cache)


class Transformer(nn.Module):
    """Built from a model spec (the effective config of one model, see config.model_spec)."""

    def __init__(self, spec: dict[str, Any], vocab_size: int):
        super().__init__()
        if spec["family"] not in FAMILIES:
            raise ValueError(f"model family '{spec['family']}' is not one of {FAMILIES}")
        d = spec["d_model"]
        self.spec, self.vocab_size = spec, vocab_size
        self.W_E = nn.Parameter(torch.randn(vocab_size, d) * 0.02)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec["n_layers"]))
        self.ln_final = nn.LayerNorm(d)
        self.W_U = nn.Parameter(torch.randn(d, vocab_size) / math.sqrt(d))
        self.b_U = nn.Parameter(torch.zeros(vocab_size))
        self.register_buffer("pos", sinusoidal_positions(spec["context_length"], d), persistent=False)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def forward(self, tokens: torch.Tensor, cache: list[dict] | None = None) -> torch.Tensor:
        """Logits [B, T, vocab]. With `cache` (an empty list), one dict per layer is appended with the
        attention pattern [B, H, query, key], the values and the head input (LayerNormed residual)."""
        T = tokens.shape[1]
        if T > self.pos.shape[0]:
            raise ValueError(f"context of {T} tokens exceeds the model's context_length {self.pos.shape[0]}")
        x = self.W_E[tokens]
        pos = self.pos[:T]
        for block in self.blocks:
            layer_cache = None
            if cache is not None:
                layer_cache = {}
                cache.append(layer_cache)
            x = block(x, pos, layer_cache)
        return self.ln_final(x) @ self.W_U + self.b_U


def per_token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """L_i = -log p(x_i | x_<i) for i = 1..T-1: [B, T-1], column i-1 holds the loss of token i."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
