"""Ablating every head at once vs the naive loop of one hooked forward per head.

Same model, same snapshot, same inputs, both measured in this run; prints a table of ratios.
The naive loop is what one writes with hooks: for each head, a whole forward pass with that head's
output zeroed (patterns and LayerNorm scales frozen from a clean run for pattern-preserving
ablation), full logits, and the losses read off. Targets on 2 CPU cores: >= 20x for
pattern-preserving and >= 2x for full ablation.

    python benchmarks/ablation.py [--threads 2] [--layers 3] [--heads 4] [--d-model 128] [--contexts 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from inductionheads import ablation
from inductionheads.model import Cache, Transformer


def naive(model, tokens, columns, frozen: bool):
    """[L, H, B, P] losses, one forward per head."""
    out = torch.empty(model.n_layers, model.n_heads, *columns.shape)
    with torch.no_grad():
        cache = None
        if frozen:  # the clean run whose patterns and LayerNorm scales every hooked run replays
            cache = Cache()
            model(tokens, cache=cache)
        for layer in range(model.n_layers):
            for head in range(model.n_heads):
                mask = torch.ones(tokens.shape[0], model.n_layers, model.n_heads)
                mask[:, layer, head] = 0
                logits = model(tokens, head_mask=mask, frozen=cache)
                out[layer, head] = ablation.losses_at(ablation.at_columns(logits, columns), tokens, columns)
    return out


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--family", default="attention-only")
    parser.add_argument("--contexts", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # by default a 3-layer model of the default experiment's size and its evaluation settings; random
    # output projections, so that every head has an effect to compute
    spec = dict(
        family=args.family,
        n_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.heads,
        context_length=256,
        output_init="normal",
    )
    model = Transformer(spec, 512).eval()
    tokens = torch.randint(0, 512, (args.contexts, 256))
    random_index = np.random.default_rng(0).integers(1, 256, args.contexts)
    columns = ablation.target_columns(50, 245, 10, random_index)
    chunks = list(zip(tokens.split(args.batch), columns.split(args.batch), strict=True))

    def ours():
        results = [ablation.ablate(model, t, c)[1] for t, c in chunks]
        return {m: torch.cat([r[m] for r in results], dim=2) for m in ablation.METHODS}

    def loop(method):
        return torch.cat(
            [naive(model, t, c, frozen=method == "pattern_preserving") for t, c in chunks], dim=2
        )

    t_ours, got = best_of(ours, args.repeats)
    print(
        f"{args.family}, {args.layers} layers x {args.heads} heads, d_model {args.d_model},"
        f" {args.contexts} contexts of 256 tokens,"
        f" {args.threads} threads"
    )
    print(f"{'method':<20} {'naive loop (s)':>15} {'all at once (s)':>16} {'ratio':>7} {'max |diff|':>11}")
    # each method timed alone (the clean pass included), as the stage computes it
    for method in ablation.METHODS:
        t_naive, want = best_of(lambda m=method: loop(m), args.repeats)
        t_alone, _ = best_of(
            lambda m=method: [ablation.ablate(model, t, c, (m,)) for t, c in chunks], args.repeats
        )
        diff = float((got[method] - want).abs().max())
        print(f"{method:<20} {t_naive:>15.2f} {t_alone:>16.3f} {t_naive / t_alone:>6.1f}x {diff:>11.1e}")
    print(f"{'both (one call)':<20} {'':>15} {t_ours:>16.3f}")


if __name__ == "__main__":
    main()
