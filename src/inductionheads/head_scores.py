"""Head scores at every snapshot (docs/methods.md §5): prefix matching and copying on repeated random
tokens, previous-token attention on held-out text, and two weight-based companions (the OV-circuit
eigenvalue copying score and the QK-trace prefix-matching score). All arrays are [snapshot, layer, head].

The weight-based scores read the circuits from token to token with every LayerNorm's centring and
weight folded in and its scale left out: a positive scale per position multiplies a circuit matrix,
and both scores are ratios of its eigenvalues, so the scale cannot change them. Positions and biases
are left out, as in the Framework.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import h5io
from .model import Cache, Transformer
from .snapshots import ShardedJob

STAGE = "head_scores"
log = logging.getLogger(__name__)


def prefix_matching_targets(repeat_length: int, n_repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For the layout BOS + r * n_repeats: a [query, key] 0/1 matrix marking, for each query at offset
    j of repeat k >= 2, the token after offset j in every earlier repeat; and the mask of those queries."""
    n = 1 + repeat_length * n_repeats
    targets = torch.zeros(n, n)
    queries = torch.zeros(n, dtype=torch.bool)
    for k in range(1, n_repeats):
        for j in range(repeat_length):
            q = 1 + k * repeat_length + j
            queries[q] = True
            for earlier in range(k):
                targets[q, 1 + earlier * repeat_length + j + 1] = 1.0
    return targets, queries


def prefix_matching(pattern: torch.Tensor, repeat_length: int, n_repeats: int) -> torch.Tensor:
    """Attention to the token after each earlier occurrence of the query's token, summed over
    occurrences, averaged over queries in repeats 2..n and over sequences. pattern: [B, H, Q, K] -> [H]."""
    targets, queries = prefix_matching_targets(repeat_length, n_repeats)
    per_query = (pattern * targets.to(pattern.device)).sum(-1)  # [B, H, Q]
    return per_query[..., queries].mean(dim=(0, 2))


def previous_token(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from position i to i-1 over i >= 1. pattern: [B, H, Q, K] -> [H]."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2))


def direct_logit_matrix(model: Transformer) -> torch.Tensor:
    """W_U with the final LayerNorm's centering and weight folded in, and centred over the vocabulary:
    a head output c maps to c @ this (up to the LayerNorm scale, which cancels in the copying ratio)."""
    d = model.W_U.shape[0]
    center = torch.eye(d, dtype=model.W_U.dtype, device=model.W_U.device) - 1.0 / d
    folded = center @ (model.ln_final.weight[:, None] * model.W_U)
    return folded - folded.mean(1, keepdim=True)


def copying(
    pattern: torch.Tensor,
    ln1_normalized: torch.Tensor,
    tokens: torch.Tensor,
    W_V: torch.Tensor,
    b_V: torch.Tensor,
    W_O: torch.Tensor,
    W_logit: torch.Tensor,
    include_bos: bool,
) -> torch.Tensor:
    """Copying score of every head of one layer, averaged over `pattern`'s queries (docs/methods.md §5).

    pattern [B, H, Q, S] (the scored queries only), ln1_normalized [B, S, D] (the heads' LayerNormed input),
    tokens [B, S]. o_s = relu(centred logit effect of the head's output at source s);
    R_q(t) = sum_s A_qs o_s[t]; ratio = sum_s A_qs R_q(x_s) / sum_t R_q(t) over the sequence's distinct
    tokens; score = (ratio - 1/n_distinct) / (1 - 1/n_distinct): 0 for a head raising every sequence
    token alike, 1 for one raising only the attended token. Without BOS, the BOS source is dropped and
    attention renormalised over the rest. Returns [H].
    """
    if not include_bos:
        pattern = pattern[..., 1:] / pattern[..., 1:].sum(-1, keepdim=True).clamp_min(1e-12)
        ln1_normalized, tokens = ln1_normalized[:, 1:], tokens[:, 1:]
    scores = []
    for b in range(tokens.shape[0]):
        distinct, source_col = torch.unique(tokens[b], return_inverse=True)  # source s -> column of x_s
        n = len(distinct)
        value = torch.einsum("sd,hde->hse", ln1_normalized[b], W_V) + b_V[:, None]
        out = value @ W_O  # the head's output at each source position, [H, S, D]
        o = (out @ W_logit[:, distinct]).relu()  # [H, S, n_distinct]
        A = pattern[b]  # [H, Q, S]
        R = A @ o  # [H, Q, n_distinct]
        attended = (A * R[:, :, source_col]).sum(-1)  # sum_s A_qs R_q(x_s)
        total = R.sum(-1)
        score = (attended / total.clamp_min(1e-12) - 1.0 / n) / (1.0 - 1.0 / n)
        # a query whose head raises no token (W_O still zero) raises them all alike: exactly 0, so
        # that it never passes a copying threshold of 0 by rounding
        scores.append(torch.where(total > 1e-12, score, torch.zeros_like(score)).mean(-1))
    return torch.stack(scores).mean(0)


def eigenvalue_ratio(left: torch.Tensor, right: torch.Tensor) -> float:
    """sum(Re lambda) / sum(|lambda|) of the [n, n] matrix left @ right, from the eigenvalues of the
    small right @ left (the same non-zero eigenvalues; left is [n, k] with k << n)."""
    lam = torch.linalg.eigvals((right @ left).double())
    total = lam.abs().sum()
    return float(lam.real.sum() / total) if total > 0 else 0.0


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


@torch.no_grad()
def ov_copying(model: Transformer) -> np.ndarray:
    """OV-circuit copying score [layer, head]: sum(lambda) / sum(|lambda|) of the token-to-token
    matrix W_E W_V^h W_O^h W_U (row-vector convention; the paper's W_U W_OV W_E). 1 for a head whose
    output raises the logit of the token it attends to, -1 for one that lowers it."""
    E = _centred(model.W_E)
    U = model.ln_final.weight[:, None] * model.W_U
    U = U - U.mean(0, keepdim=True)  # the final LayerNorm's centring, as an operator on the output
    out = np.zeros((model.n_layers, model.n_heads))
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        x = E * block.ln1.weight
        for h in range(model.n_heads):
            out[layer, h] = eigenvalue_ratio(x @ attn.W_V[h], attn.W_O[h] @ U)
    return out


@torch.no_grad()
def qk_trace(model: Transformer, previous_token_scores: np.ndarray) -> np.ndarray:
    """Prefix matching read from the weights [layer, head], NaN in layer 1 (docs/methods.md §5).

    For a head in layer l >= 2, the K-composition term of its QK circuit: queries from the token
    embedding, keys from what earlier heads write into the key position, each earlier head weighted by
    its previous-token score (so the key side carries the previous token). Its token-by-token matrix
    M[a, b] is large on the diagonal when a query token a attends to positions whose previous token is
    a, which is what induction heads do; the score is trace(M) / sum(|lambda(M)|) in -1..1.
    """
    E = _centred(model.W_E)
    out = np.full((model.n_layers, model.n_heads), np.nan)
    written = []  # per earlier layer: what each head writes, [H, vocab, d_model], from embedded tokens
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        x = E * block.ln1.weight
        if layer > 0:
            # [layer, H]
            weights = torch.as_tensor(previous_token_scores[:layer], dtype=E.dtype, device=E.device)
            key_source = torch.einsum("lh,lhvd->vd", weights, torch.stack(written))
            key_in = _centred(key_source) * block.ln1.weight
            for h in range(model.n_heads):
                queries = x @ attn.W_Q[h]  # [vocab, d_head]
                keys = key_in @ attn.W_K[h]
                out[layer, h] = eigenvalue_ratio(queries, keys.T)
        written.append(torch.einsum("vd,hde,hef->hvf", x, attn.W_V, attn.W_O))
    return out


@torch.no_grad()
def score_snapshot(
    model: Transformer,
    repeated: torch.Tensor,
    prev_contexts: torch.Tensor,
    repeat_length: int,
    n_repeats: int,
) -> dict[str, np.ndarray]:
    """All head scores of one model: each [layer, head]."""
    cache, prev_cache = Cache(), Cache()
    model(repeated, cache=cache)
    model(prev_contexts, cache=prev_cache)
    W_logit = direct_logit_matrix(model)
    _, queries = prefix_matching_targets(repeat_length, n_repeats)
    out: dict[str, list] = {
        "prefix_matching": [],
        "copying": [],
        "copying_with_bos": [],
        "previous_token": [],
    }
    for block, layer, prev in zip(model.blocks, cache.layers, prev_cache.layers, strict=True):
        attn = block.attn
        pattern = layer.pattern
        out["prefix_matching"].append(prefix_matching(pattern, repeat_length, n_repeats))
        args = (pattern[:, :, queries], layer.ln1_normalized, repeated, attn.W_V, attn.b_V, attn.W_O, W_logit)
        out["copying"].append(copying(*args, include_bos=False))
        out["copying_with_bos"].append(copying(*args, include_bos=True))
        out["previous_token"].append(previous_token(prev.pattern))
    scores = {k: torch.stack(v).cpu().numpy() for k, v in out.items()}
    scores["ov_copying"] = ov_copying(model)
    scores["qk_trace"] = qk_trace(model, scores["previous_token"])
    return scores


def run(
    snapshots: str | Path,
    evalset: str | Path,
    head_scores: str | Path,
    settings: dict[str, Any],
    *,
    threads: int = 1,
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
) -> None:
    """Head scores of the snapshots of `shard` (index, count) on `device` (auto: CUDA when present);
    previous-token attention on the first settings["prev_token_contexts"] held-out contexts."""
    with ShardedJob(snapshots, shard, threads, device) as job, h5io.open_input(evalset, "evalset") as f:
        repeated = torch.from_numpy(h5io.read(f, "repeated")).to(job.device)
        prev_contexts = torch.from_numpy(h5io.read(f, "contexts")[: settings["prev_token_contexts"]])
        prev_contexts = prev_contexts.to(job.device)
        R, n_rep = int(f.attrs["repeat_length"]), int(f.attrs["n_repeats"])
        eval_hash = str(f.attrs["config_hash"])
        results: dict[str, list] = {}
        for step, model in job.snaps.iterate(job.todo, job.device):
            scores = score_snapshot(model, repeated, prev_contexts, R, n_rep)
            for key, value in scores.items():
                results.setdefault(key, []).append(value)
            log.info(
                "step %d: max prefix matching per layer %s",
                step,
                np.round(scores["prefix_matching"].max(1), 3).tolist(),
            )
        with job.writer(head_scores, STAGE, eval_hash) as out:
            h5io.write(out, "steps", job.snaps.steps[job.todo], ("snapshot",), units="optimizer steps")
            h5io.write(out, "tokens_seen", job.snaps.tokens_seen[job.todo], ("snapshot",), units="tokens")
            for key, value in results.items():
                h5io.write(out, key, np.stack(value), ("snapshot", "layer", "head"), units="score")
