"""Small transformers of the paper, with per-head weights named as in the Framework / TransformerLens.

Residual stream x_0 = W_E[tokens]; per layer x += Attn(LN(x)) (and x += MLP(LN(x)) in the with-MLP
family); logits = LN(x) @ W_U + b_U. Positions are Shortformer-style: a fixed sinusoid, times the spec's
`position_scale`, added to the inputs of the query and key projections only, never to the residual
stream or the values (docs/methods.md §2). The scale sets how loud position is against the LayerNormed token
(each of unit RMS per dimension, the sinusoid's entries of RMS 0.71 times the scale).

Families: attention-only; with-mlp (d_mlp = 4 d_model, GELU); smeared-key (attention-only, each head's
key k_j <- sigmoid(alpha_h) k_j + (1 - sigmoid(alpha_h)) k_{j-1} for j >= 1).

Per-head weights: W_Q, W_K, W_V [n_heads, d_model, d_head], W_O [n_heads, d_head, d_model]; MLP
weights W_in [d_model, d_mlp], W_out [d_mlp, d_model].

Hooks for measurements and ablations: `cache` records per layer the attention pattern, the values,
the head input and the LayerNorm scales; `head_mask` [batch, layer, head] scales each head's output
(0 ablates it); `frozen` replays a clean run's patterns and LayerNorm scales (pattern-preserving
ablation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("attention-only", "with-mlp", "smeared-key")
# How W_O and the MLP's W_out start. Zero: the residual stream at initialisation is the token embedding
# alone, so no layer starts with a smoother input than the first (docs/methods.md).
OUTPUT_INITS = ("zero", "normal")


# The weight layout: the axes of each parameter (by the last part of its TransformerLens-style name), as
# the snapshot file stores them after its leading `snapshot` axis.
PARAM_AXES = {
    "W_Q": ("head", "d_model", "d_head"),
    "W_K": ("head", "d_model", "d_head"),
    "W_V": ("head", "d_model", "d_head"),
    "W_O": ("head", "d_head", "d_model"),
    "b_Q": ("head", "d_head"),
    "b_K": ("head", "d_head"),
    "b_V": ("head", "d_head"),
    "b_O": ("d_model",),
    "W_E": ("vocab", "d_model"),
    "W_U": ("d_model", "vocab"),
    "b_U": ("vocab",),
    "alpha_smear": ("head",),
    "pos": ("position", "d_model"),
    "W_in": ("d_model", "d_mlp"),
    "b_in": ("d_mlp",),
    "W_out": ("d_mlp", "d_model"),
    "b_out": ("d_model",),
    "weight": ("d_model",),
    "bias": ("d_model",),
}


def param_axes(name: str) -> tuple[str, ...]:
    return PARAM_AXES[name.rsplit(".", 1)[-1]]


@dataclass
class LayerCache:
    """One layer's activations in one forward pass, named as TransformerLens names the hook where the
    meaning is the same. A replayed (frozen) layer sets only pattern and the LayerNorm scales."""

    resid_pre: torch.Tensor | None = None  # [B, T, D] the residual stream before the layer (hook_resid_pre)
    ln1_normalized: torch.Tensor | None = None  # [B, T, D] the heads' input (ln1.hook_normalized)
    ln1_scale: torch.Tensor | None = None  # [B, T, 1] (ln1.hook_scale)
    pattern: torch.Tensor | None = None  # [B, H, query, key] (attn.hook_pattern)
    v: torch.Tensor | None = None  # [B, H, T, d_head]: attn.hook_v with the head axis first
    ln2_scale: torch.Tensor | None = None  # [B, T, 1], models with MLPs only (ln2.hook_scale)


@dataclass
class Cache:
    """Activations of one forward pass: one LayerCache per layer, and the final LayerNorm's scale
    [B, T, 1] (ln_final.hook_scale)."""

    layers: list[LayerCache] = field(default_factory=list)
    ln_final_scale: torch.Tensor | None = None


def sinusoidal_positions(n_ctx: int, d_model: int) -> torch.Tensor:
    pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(n_ctx, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return pe


def layer_norm(
    x: torch.Tensor, ln: nn.LayerNorm, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm with its scale (the per-position standard deviation) exposed, so an ablation can
    freeze it; with `scale` given, that scale is used instead of x's own. Returns (output, scale)."""
    centred = x - x.mean(-1, keepdim=True)
    if scale is None:
        scale = (centred.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()
    return centred / scale * ln.weight + ln.bias, scale


def output_weight(shape: tuple[int, ...], fan_in: int, output_init: str) -> nn.Parameter:
    """A projection that writes into the residual stream: zero, or normal with std 1/sqrt(fan_in)."""
    if output_init not in OUTPUT_INITS:
        raise ValueError(f"output_init '{output_init}' is not one of {OUTPUT_INITS}")
    if output_init == "zero":
        return nn.Parameter(torch.zeros(shape))
    return nn.Parameter(torch.randn(shape) / math.sqrt(fan_in))


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, smeared_key: bool = False, output_init: str = "zero"):
        super().__init__()
        d_head = d_model // n_heads
        self.n_heads, self.d_head = n_heads, d_head
        init = 1 / math.sqrt(d_model)
        self.W_Q = nn.Parameter(torch.randn(n_heads, d_model, d_head) * init)
        self.W_K = nn.Parameter(torch.randn(n_heads, d_model, d_head) * init)
        self.W_V = nn.Parameter(torch.randn(n_heads, d_model, d_head) * init)
        self.W_O = output_weight((n_heads, d_head, d_model), d_model, output_init)
        self.b_Q = nn.Parameter(torch.zeros(n_heads, d_head))
        # A key bias shifts every score of a query by the same amount, which the softmax ignores: it has
        # no gradient, and trained it would only drift by Adam-amplified rounding noise. Kept (at zero,
        # not trained) for TransformerLens' weight layout.
        self.register_buffer("b_K", torch.zeros(n_heads, d_head))
        self.b_V = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_O = nn.Parameter(torch.zeros(d_model))
        # smeared key: one mixing logit per head; 0 (an equal mix) since the paper states none
        self.alpha_smear = nn.Parameter(torch.zeros(n_heads)) if smeared_key else None

    def _project(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # one [d_model, n_heads*d_head] matmul instead of a per-head einsum: faster on CPU
        B, T, D = x.shape
        out = x @ W.permute(1, 0, 2).reshape(D, -1) + b.reshape(-1)
        return out.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # [B, H, T, d_head]

    def smear(self, k: torch.Tensor) -> torch.Tensor:
        """k_j <- s k_j + (1 - s) k_{j-1} for j >= 1, s = sigmoid(alpha_h); k_0 unchanged. k: [B, H, T, E]."""
        s = torch.sigmoid(self.alpha_smear)[:, None, None]
        previous = torch.cat([k[..., :1, :], k[..., :-1, :]], dim=-2)  # k_0 mixes with itself
        return s * k + (1 - s) * previous

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        frozen_pattern: torch.Tensor | None = None,
        queries: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: LayerNormed residual [B, T, D]; pos: position vectors [T, D] for queries and keys;
        head_mask [B, H] scales each head's output; frozen_pattern [B, H, T, T] replaces the pattern;
        queries [B, P]: compute the output at these positions only ([B, P, D] instead of [B, T, D])."""
        v = self._project(x, self.W_V, self.b_V)
        if frozen_pattern is not None:
            pattern = frozen_pattern
            if queries is not None:
                rows = queries[:, None, :, None].expand(-1, self.n_heads, -1, frozen_pattern.shape[-1])
                pattern = frozen_pattern.gather(2, rows)
        else:
            qk_in = x + pos
            q = self._project(qk_in if queries is None else at_positions(qk_in, queries), self.W_Q, self.b_Q)
            k = self._project(qk_in, self.W_K, self.b_K)
            if self.alpha_smear is not None:
                k = self.smear(k)
            pattern = None
            if cache is None and queries is None:
                z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                T = x.shape[1]
                scores = (q / math.sqrt(self.d_head)) @ k.transpose(-1, -2)
                query_pos = torch.arange(T, device=x.device)[None, :] if queries is None else queries
                future = torch.arange(T, device=x.device) > query_pos[:, :, None]  # [B or 1, Q, key]
                pattern = scores.masked_fill_(future[:, None], float("-inf")).softmax(-1)  # [B, H, Q, key]
        if pattern is not None:
            z = pattern @ v
        if cache is not None:
            cache.pattern, cache.v = pattern, v
        if head_mask is not None:
            z = z * head_mask[:, :, None, None]
        B, H, T, E = z.shape
        W_O = self.W_O.reshape(H * E, -1)
        return z.transpose(1, 2).reshape(B, T, H * E) @ W_O + self.b_O


def at_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, T, D] at positions index [B, P]: [B, P, D]."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[-1]))


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, output_init: str = "zero"):
        super().__init__()
        self.W_in = nn.Parameter(torch.randn(d_model, d_mlp) / math.sqrt(d_model))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = output_weight((d_mlp, d_model), d_mlp, output_init)
        self.b_out = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        d = spec["d_model"]
        output_init = spec.get("output_init", "zero")
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, spec["n_heads"], spec["family"] == "smeared-key", output_init)
        if spec["family"] == "with-mlp":
            self.ln2 = nn.LayerNorm(d)
            self.mlp = MLP(d, 4 * d, output_init)
        else:
            self.ln2 = self.mlp = None

    def forward(self, x, pos, cache=None, head_mask=None, frozen=None, queries=None):
        """queries [B, P]: the block's output at these positions only, [B, P, D]."""
        hooked = cache is not None or frozen is not None
        if hooked:
            normed, scale = layer_norm(x, self.ln1, frozen.ln1_scale if frozen else None)
        else:
            normed = self.ln1(x)
        if cache is not None:
            cache.ln1_normalized, cache.ln1_scale = normed, scale
        pattern = frozen.pattern if frozen else None
        if queries is not None:
            x = at_positions(x, queries)
        x = x + self.attn(normed, pos, cache, head_mask, pattern, queries)
        if self.mlp is not None:
            if hooked:
                frozen_scale = frozen.ln2_scale if frozen else None
                if frozen_scale is not None and queries is not None:
                    frozen_scale = at_positions(frozen_scale, queries)
                normed, scale = layer_norm(x, self.ln2, frozen_scale)
                if cache is not None:
                    cache.ln2_scale = scale
            else:
                normed = self.ln2(x)
            x = x + self.mlp(normed)
        return x


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
        # Shortformer position vectors: the fixed sinusoid of our models (not stored), or, for a model
        # imported from a checkpoint series (spec positions: stored), its own learned ones, saved and
        # loaded with the weights
        stored = spec.get("positions", "sinusoidal") == "stored"
        pos = (
            torch.zeros(spec["context_length"], d)
            if stored
            else spec.get("position_scale", 1.0) * sinusoidal_positions(spec["context_length"], d)
        )
        self.register_buffer("pos", pos, persistent=stored)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def n_heads(self) -> int:
        return self.blocks[0].attn.n_heads

    def residual(
        self,
        tokens: torch.Tensor,
        cache: Cache | None = None,
        head_mask: torch.Tensor | None = None,
        frozen: Cache | None = None,
        start_layer: int = 0,
        resid: torch.Tensor | None = None,
        queries: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The residual stream after the last layer [B, T, D] (arguments as in `forward`).

        With `start_layer` and `resid` (the residual stream before that layer, e.g. a clean run's
        `resid_pre`), the layers before it are skipped: an ablation in a later layer cannot change them.
        With `queries` [B, P], the last layer is evaluated at those positions only: [B, P, D].
        """
        T = tokens.shape[1]
        if T > self.pos.shape[0]:
            raise ValueError(f"context of {T} tokens exceeds the model's context_length {self.pos.shape[0]}")
        if (start_layer or queries is not None) and cache is not None:
            raise ValueError("a cache records full passes only: no start_layer, no queries")
        if start_layer and resid is None:
            raise ValueError("starting at a later layer needs the residual stream before it")
        x = self.W_E[tokens] if resid is None else resid
        pos = self.pos[:T]
        for layer in range(start_layer, self.n_layers):
            layer_cache = None
            if cache is not None:
                layer_cache = LayerCache(resid_pre=x)
                cache.layers.append(layer_cache)
            mask = head_mask[:, layer] if head_mask is not None else None
            last = queries if layer == self.n_layers - 1 else None
            x = self.blocks[layer](x, pos, layer_cache, mask, frozen.layers[layer] if frozen else None, last)
        return x

    def unembed(
        self, x: torch.Tensor, cache: Cache | None = None, frozen_scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits from a final residual stream [..., D]; `frozen_scale` replaces the final LayerNorm's own
        scale, and `cache` records it."""
        if cache is None and frozen_scale is None:
            return self.ln_final(x) @ self.W_U + self.b_U
        normed, scale = layer_norm(x, self.ln_final, frozen_scale)
        if cache is not None:
            cache.ln_final_scale = scale
        return normed @ self.W_U + self.b_U

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """The unembedding's input, the final LayerNorm's output [B, T, D]: what the training loss's
        fused unembedding and cross-entropy (cross_entropy.py) start from."""
        return self.ln_final(self.residual(tokens))

    def forward(
        self,
        tokens: torch.Tensor,
        cache: Cache | None = None,
        head_mask: torch.Tensor | None = None,
        frozen: Cache | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, vocab].

        cache: an empty Cache, filled with this pass's activations. head_mask [B, n_layers, n_heads]:
        multiplies each head's output (its result vector before W_O's sum over heads). frozen: the
        Cache of a clean pass on the same tokens, whose attention patterns and LayerNorm scales are
        used instead of this pass's own.
        """
        x = self.residual(tokens, cache, head_mask, frozen)
        return self.unembed(x, cache, frozen.ln_final_scale if frozen else None)


def per_token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """L_i = -log p(x_i | x_<i) for i = 1..T-1: [B, T-1], column i-1 holds the loss of token i."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
