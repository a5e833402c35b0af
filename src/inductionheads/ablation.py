"""Head ablations over training (docs/methods.md §6): every head of every scheduled snapshot, removed two
ways, and what its removal does to the ICL score and to the per-token losses.

- Full ablation: the head's output is zeroed and everything downstream recomputed. All heads of a
  layer run as one batched forward, one head removed per batch entry: the layer's attention is as in
  the clean run, so each entry starts from the cached residual stream after it minus the removed
  head's result vector.
- Pattern-preserving ablation: attention patterns and LayerNorm scales are frozen from the clean run
  and the head's output is zeroed. Without MLPs (attention-only and smeared-key models, whose keys act
  only through the frozen patterns) the logits are then linear in each head's output: every head's
  removal is propagated as a residual-stream difference through the later layers' value paths, from
  the one cached clean pass. With MLPs the batched forward with frozen patterns and scales is used.

Only the losses an outcome needs are unembedded: the tokens of the ICL score (early ± window, late ±
window) and each example's random token. Outputs per scheduled snapshot, layer and head: delta ICL =
ICL(ablated) - ICL(clean) (positive: the head contributed to in-context learning), the delta
random-token loss vector, and its projection on the model's before-and-after vector
d = unit(v(window end) - v(window start)) (NaN, and marked not evaluable, without a phase change).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import h5io, head_classes, readers
from . import phase as phases
from .model import Cache, LayerCache, Transformer, layer_norm
from .schedule import ablated_positions
from .snapshots import ShardedJob

STAGE = "ablation"
METHODS = ("full", "pattern_preserving")
log = logging.getLogger(__name__)


def target_columns(early: int, late: int, window: int, random_index: np.ndarray) -> torch.Tensor:
    """[example, P] loss columns each example needs (column c: the loss of token c + 1, predicted at
    position c): the 2 * window + 1 early tokens, as many late ones, then the random token."""
    early_cols = torch.arange(early - 1 - window, early + window)
    late_cols = torch.arange(late - 1 - window, late + window)
    shared = torch.cat([early_cols, late_cols]).expand(len(random_index), -1)
    return torch.cat([shared, torch.as_tensor(random_index - 1, dtype=torch.long)[:, None]], 1)


def summarize(losses: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ICL score per example, random-token loss per example) from losses at `target_columns`."""
    width = 2 * window + 1
    early, late = losses[..., :width].mean(-1), losses[..., width : 2 * width].mean(-1)
    return late - early, losses[..., -1]


def at_columns(x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """x [..., B, T, D] at each example's columns: [..., B, P, D]."""
    index = columns[:, :, None].expand(*x.shape[:-3], *columns.shape, x.shape[-1])
    return x.gather(-2, index)


def losses_at(logits: torch.Tensor, tokens: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Per-token losses [..., B, P] from logits at the columns [..., B, P, vocab]."""
    targets = tokens.gather(1, columns + 1).expand(logits.shape[:-1])
    return -logits.float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.repeat(n, *([1] * (t.ndim - 1)))


def _batched(
    model: Transformer, tokens: torch.Tensor, columns: torch.Tensor, cache: Cache, frozen: bool
) -> torch.Tensor:
    """Losses [L, H, B, P] with each head removed by a batched forward over the heads of a layer.

    Removing head h of layer l leaves that layer's attention inputs, patterns and other heads as in the
    clean run: the residual stream after its attention is the clean one minus the head's result vector,
    from the cache. Only what follows (layer l's MLP, the later layers) is recomputed, the last layer
    at the needed positions only. With `frozen`, patterns and LayerNorm scales come from the clean
    `cache` (pattern-preserving ablation)."""
    H, last = model.n_heads, model.n_layers - 1
    out = []
    for layer in range(model.n_layers):
        c, block = cache.layers[layer], model.blocks[layer]
        pattern = c.pattern if layer < last else pattern_rows(c.pattern, columns)
        result = torch.einsum("bhqe,hed->hbqd", pattern @ c.v, block.attn.W_O)  # [H, B, T|P, D]
        before = c.resid_pre if layer < last else at_columns(c.resid_pre, columns)
        x = (before + result.sum(0) + block.attn.b_O) - result  # each head removed from the clean sum
        if block.mlp is not None:
            scale = None
            if frozen:
                scale = c.ln2_scale if layer < last else at_columns(c.ln2_scale, columns)
            x = x + block.mlp(layer_norm(x, block.ln2, scale)[0])
        x = x.flatten(0, 1)
        if layer < last:
            replay = None
            if frozen:
                # the later layers replay their clean patterns and LayerNorm scales (the earlier ones
                # are skipped: start_layer)
                replay = Cache(
                    layers=[
                        LayerCache(
                            pattern=_repeat(c2.pattern, H),
                            ln1_scale=_repeat(c2.ln1_scale, H),
                            ln2_scale=None if c2.ln2_scale is None else _repeat(c2.ln2_scale, H),
                        )
                        if i > layer
                        else LayerCache()
                        for i, c2 in enumerate(cache.layers)
                    ]
                )
            x = model.residual(
                _repeat(tokens, H), frozen=replay, start_layer=layer + 1, resid=x, queries=_repeat(columns, H)
            )
        scale = at_columns(cache.ln_final_scale, columns) if frozen else None
        out.append(
            losses_at(model.unembed(x.view(H, *columns.shape, -1), frozen_scale=scale), tokens, columns)
        )
    return torch.stack(out)


def pattern_rows(pattern: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """A pattern [B, H, T, T] at the query rows `columns` [B, P]: [B, H, P, T]."""
    index = columns[:, None, :, None].expand(-1, pattern.shape[1], -1, pattern.shape[-1])
    return pattern.gather(2, index)


def _linear(model: Transformer, columns: torch.Tensor, cache: Cache) -> torch.Tensor:
    """Pattern-preserving logit differences [L, H, B, P, vocab] of a model without MLPs, from the
    clean cache alone.

    Removing head h of layer l adds -r_lh (its result vector) to the residual stream. With patterns and
    LayerNorm scales frozen, each later layer adds sum_k A_k (LN-linear(delta) W_V^k) W_O^k, and the
    logits change by LN-linear(delta) W_U: LayerNorm biases and value biases cancel in differences.
    The last layer is evaluated only at the needed positions, whose rows are all the logits need.
    """
    n_layers, last = model.n_layers, model.n_layers - 1
    scale_f = at_columns(cache.ln_final_scale, columns)  # [B, P, 1]
    out = []
    for layer in range(n_layers):
        c, attn = cache.layers[layer], model.blocks[layer].attn
        pattern = c.pattern if layer < last else pattern_rows(c.pattern, columns)
        delta = -torch.einsum("bhqe,hed->hbqd", pattern @ c.v, attn.W_O)  # [removed head, B, T|P, D]
        for later in range(layer + 1, n_layers):
            c2, block = cache.layers[later], model.blocks[later]
            Hr, B, T, D = delta.shape
            K, E = block.attn.n_heads, block.attn.d_head
            normed = _centred(delta) / c2.ln1_scale * block.ln1.weight
            v = normed @ block.attn.W_V.permute(1, 0, 2).reshape(D, K * E)  # [Hr, B, T, K*E]
            # removed heads into the last axis: one batched matmul per (example, later head)
            v = v.view(Hr, B, T, K, E).permute(1, 3, 2, 0, 4).reshape(B, K, T, Hr * E)
            pattern = c2.pattern if later < last else pattern_rows(c2.pattern, columns)
            z = (pattern @ v).view(B, K, -1, Hr, E).permute(3, 0, 2, 1, 4).reshape(Hr, B, -1, K * E)
            added = z @ block.attn.W_O.reshape(K * E, D)
            delta = (delta if later < last else at_columns(delta, columns)) + added
        out.append((_centred(delta) / scale_f * model.ln_final.weight) @ model.W_U)
    return torch.stack(out)


@torch.no_grad()
def ablate(
    model: Transformer, tokens: torch.Tensor, columns: torch.Tensor, methods: tuple[str, ...] = METHODS
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clean losses [B, P] and, per method, the losses [L, H, B, P] with each head removed."""
    cache = Cache()
    x = model.residual(tokens, cache=cache)
    _, cache.ln_final_scale = layer_norm(x, model.ln_final)  # logits are needed at `columns` only
    scale = at_columns(cache.ln_final_scale, columns)
    clean_logits = model.unembed(at_columns(x, columns), frozen_scale=scale)
    out = {}
    if "pattern_preserving" in methods:
        if model.blocks[0].mlp is None:
            d_logits = _linear(model, columns, cache)
            out["pattern_preserving"] = losses_at(clean_logits + d_logits, tokens, columns)
        else:
            out["pattern_preserving"] = _batched(model, tokens, columns, cache, frozen=True)
    if "full" in methods:
        out["full"] = _batched(model, tokens, columns, cache, frozen=False)
    return losses_at(clean_logits, tokens, columns), out


@torch.no_grad()
def ablate_set(model: Transformer, tokens: torch.Tensor, columns: torch.Tensor, heads: np.ndarray) -> dict:
    """Losses [B, P] with every head of the boolean [layer, head] mask `heads` removed together, both
    ways (one forward each)."""
    cache = Cache()
    model(tokens, cache=cache)
    mask = torch.as_tensor(~heads, dtype=torch.float32, device=tokens.device).expand(tokens.shape[0], -1, -1)
    out = {}
    for method in METHODS:
        logits = model(tokens, head_mask=mask, frozen=cache if method == "pattern_preserving" else None)
        out[method] = losses_at(at_columns(logits, columns), tokens, columns)
    return out


def before_after_vector(losses: str | Path, window: dict | None, n_examples: int) -> np.ndarray | None:
    """unit(v(window end) - v(window start)) over the first `n_examples` examples, v the random-token
    loss vector; None without a phase change."""
    if not window or not window["has_phase_change"]:
        return None
    v = readers.losses(losses).random_token_loss
    d = (v[window["end"], :n_examples] - v[window["start"], :n_examples]).astype(np.float64)
    return d / np.linalg.norm(d)


def induction_heads(head_scores: str | Path, settings: dict[str, Any]) -> np.ndarray:
    """[layer, head] mask of induction heads at the last snapshot (head_classes.induction)."""
    scores = readers.head_scores(head_scores).scores
    return head_classes.induction(scores["prefix_matching"][-1], scores["copying"][-1], settings)


def run(
    snapshots: str | Path,
    evalset: str | Path,
    losses: str | Path,
    head_scores: str | Path,
    phase: str | Path,
    ablation: str | Path,
    settings: dict[str, Any],
    *,
    threads: int = 1,
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
) -> None:
    """Ablations of the scheduled snapshots of `shard` (index, count) on `device` (auto: CUDA when
    present). The shard holding the last snapshot also removes the induction heads together."""
    n = settings["n_contexts"]
    scheduled = partial(ablated_positions, every=settings["every"])
    with ShardedJob(snapshots, shard, threads, device, scheduled) as job:
        with h5io.open_input(evalset, "evalset") as f:
            contexts = torch.from_numpy(h5io.read(f, "contexts")[:n]).to(job.device)
            random_index = h5io.read(f, "random_index")[:n]
            early, late, w = (int(f.attrs[k]) for k in ("icl_early", "icl_late", "icl_window"))
            eval_hash = str(f.attrs["config_hash"])
        columns = target_columns(early, late, w, random_index).to(job.device)
        window = phases.read(phase)["window"]
        direction = before_after_vector(losses, window, len(contexts))
        inductive = induction_heads(head_scores, settings)
        snaps, todo = job.snaps, job.todo
        holds_last = todo[-1] == len(snaps) - 1
        L, H, N = snaps.spec["n_layers"], snaps.spec["n_heads"], len(contexts)
        clean_icl = np.zeros(len(todo))
        delta_icl = {m: np.zeros((len(todo), L, H)) for m in METHODS}
        delta_random = {m: np.zeros((len(todo), L, H, N), np.float32) for m in METHODS}
        for a, index in enumerate(todo):
            model = snaps.model(int(index), job.device)
            clean, ablated = [], {m: [] for m in METHODS}
            for chunk, cols in zip(
                contexts.split(settings["batch_size"]), columns.split(settings["batch_size"]), strict=True
            ):
                c, out = ablate(model, chunk, cols)
                clean.append(c.cpu())
                for m in METHODS:
                    ablated[m].append(out[m].cpu())
            clean_example_icl, clean_random = summarize(torch.cat(clean), w)
            clean_icl[a] = float(clean_example_icl.mean())
            for m in METHODS:
                icl, random_loss = summarize(torch.cat(ablated[m], dim=2), w)  # [L, H, N]
                delta_icl[m][a] = (icl.mean(-1) - clean_icl[a]).numpy()
                delta_random[m][a] = (random_loss - clean_random).numpy()
            top = np.unravel_index(delta_icl["pattern_preserving"][a].argmax(), (L, H))
            log.info(
                "step %d: clean ICL %.4f; largest pattern-preserving delta ICL %.4f (head %d.%d)",
                snaps.steps[index],
                clean_icl[a],
                delta_icl["pattern_preserving"][a].max(),
                top[0] + 1,
                top[1],
            )
        joint = {}
        if holds_last and inductive.any():
            together = {m: [] for m in METHODS}
            for chunk, cols in zip(
                contexts.split(settings["batch_size"]), columns.split(settings["batch_size"]), strict=True
            ):
                for m, removed in ablate_set(model, chunk, cols, inductive).items():
                    together[m].append(removed.cpu())
            joint = {
                m: float(summarize(torch.cat(v), w)[0].mean()) - clean_icl[-1] for m, v in together.items()
            }
        with job.writer(
            ablation,
            STAGE,
            eval_hash,
            settings=json.dumps(settings, sort_keys=True),
            projection_evaluable=direction is not None,
            projection_note=""
            if direction is not None
            else "no phase-change window: no before-and-after vector",
            # computed at the last snapshot only: a merge of shards takes it from the last one
            **({"induction_heads_joint_delta_icl": json.dumps(joint)} if holds_last else {}),
        ) as f:
            h5io.write(f, "snapshot_index", todo, ("ablated_snapshot",))
            h5io.write(f, "steps", snaps.steps[todo], ("ablated_snapshot",), units="optimizer steps")
            h5io.write(f, "tokens_seen", snaps.tokens_seen[todo], ("ablated_snapshot",), units="tokens")
            h5io.write(f, "clean_icl_score", clean_icl, ("ablated_snapshot",), units="nats")
            h5io.write(f, "induction_heads", inductive.astype(np.uint8), ("layer", "head"))
            if direction is not None:
                h5io.write(f, "before_after_vector", direction, ("example",), units="unit vector")
            for m in METHODS:
                axes = ("ablated_snapshot", "layer", "head")
                h5io.write(f, f"{m}/delta_icl_score", delta_icl[m], axes, units="nats")
                h5io.write(
                    f,
                    f"{m}/delta_random_token_loss",
                    delta_random[m],
                    (*axes, "example"),
                    units="nats",
                    compress=True,
                )
                projection = (
                    delta_random[m] @ direction
                    if direction is not None
                    else np.full((len(todo), L, H), np.nan)
                )
                h5io.write(f, f"{m}/before_after_projection", projection, axes, units="nats")
