"""Ablating every head at once vs one hooked forward per head, ours and TransformerLens's.

Same model, same snapshot, same inputs, all measured in this run; prints a table of ratios and the
largest difference from the stage's results. The loops are what one writes with hooks: for each head, a
whole forward pass with that head's output zeroed (patterns and LayerNorm scales frozen from a clean run
for pattern-preserving ablation), full logits, and the losses read off:

- naive loop: our `Transformer` with a head mask (and a frozen clean `Cache`);
- TransformerLens: `HookedTransformer.run_with_hooks`, zeroing the head in `hook_z` (and, pattern-
  preserving, replacing every `hook_pattern` and LayerNorm `hook_scale` with the clean run's), on the
  same weights (`pip install -e '.[bench]'`).

    python benchmarks/ablation.py [--threads 2] [--layers 3] [--heads 4] [--d-model 128] [--contexts 128]
    python benchmarks/ablation.py --device cuda --layers 2 --heads 12 --d-model 768 --context 512 \
        --vocab 65536 --contexts 64      # the paper's width
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from inductionheads import ablation
from inductionheads.interop import to_hooked_transformer
from inductionheads.model import Cache, Transformer


def naive(model, tokens, columns, frozen: bool):
    """[L, H, B, P] losses, one forward per head."""
    out = torch.empty(model.n_layers, model.n_heads, *columns.shape, device=tokens.device)
    with torch.no_grad():
        cache = None
        if frozen:  # the clean run whose patterns and LayerNorm scales every hooked run replays
            cache = Cache()
            model(tokens, cache=cache)
        for layer in range(model.n_layers):
            for head in range(model.n_heads):
                mask = torch.ones(tokens.shape[0], model.n_layers, model.n_heads, device=tokens.device)
                mask[:, layer, head] = 0
                logits = model(tokens, head_mask=mask, frozen=cache)
                out[layer, head] = ablation.losses_at(ablation.at_columns(logits, columns), tokens, columns)
    return out


def transformer_lens_loop(hooked, tokens, columns, frozen: bool):
    """[L, H, B, P] losses, one `run_with_hooks` per head."""
    L, H = hooked.cfg.n_layers, hooked.cfg.n_heads
    out = torch.empty(L, H, *columns.shape, device=tokens.device)
    with torch.no_grad():
        replay = []
        if frozen:
            _, cache = hooked.run_with_cache(
                tokens, names_filter=lambda n: n.endswith(("hook_pattern", "hook_scale"))
            )
            replay = [(name, lambda act, hook, clean=cache[name]: clean) for name in cache]
        for layer in range(L):
            for head in range(H):

                def zero(z, hook, head=head):
                    z[:, :, head] = 0.0
                    return z

                hooks = [(f"blocks.{layer}.attn.hook_z", zero), *replay]
                logits = hooked.run_with_hooks(tokens, fwd_hooks=hooks)
                out[layer, head] = ablation.losses_at(ablation.at_columns(logits, columns), tokens, columns)
    return out


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
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
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
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
        context_length=args.context,
        output_init="normal",
    )
    T, device = args.context, torch.device(args.device)
    model = Transformer(spec, args.vocab).to(device).eval()
    tokens = torch.randint(0, args.vocab, (args.contexts, T), device=device)
    random_index = np.random.default_rng(0).integers(1, T, args.contexts)
    columns = ablation.target_columns(50, T - 11, 10, random_index).to(device)
    chunks = list(zip(tokens.split(args.batch), columns.split(args.batch), strict=True))

    def ours():
        results = [ablation.ablate(model, t, c)[1] for t, c in chunks]
        return {m: torch.cat([r[m] for r in results], dim=2) for m in ablation.METHODS}

    def loop(method):
        return torch.cat(
            [naive(model, t, c, frozen=method == "pattern_preserving") for t, c in chunks], dim=2
        )

    try:
        hooked = to_hooked_transformer(model)
    except ImportError:
        hooked = None
        print("TransformerLens is not installed (pip install -e '.[bench]'): its column is left out")

    t_ours, got = best_of(ours, args.repeats)
    print(
        f"{args.family}, {args.layers} layers x {args.heads} heads, d_model {args.d_model},"
        f" vocab {args.vocab}, {args.contexts} contexts of {T} tokens, {args.device},"
        f" {args.threads} threads, best of {args.repeats}"
    )
    print(
        f"{'method':<19} {'ours (s)':>9} {'naive loop (s)':>15} {'ratio':>7}"
        f" {'TransformerLens (s)':>20} {'ratio':>7} {'max |diff|':>11}"
    )
    # each method timed alone (the clean pass included), as the stage computes it
    for method in ablation.METHODS:
        frozen = method == "pattern_preserving"
        t_alone, _ = best_of(
            lambda m=method: [ablation.ablate(model, t, c, (m,)) for t, c in chunks], args.repeats
        )
        t_naive, want = best_of(
            lambda f=frozen: torch.cat([naive(model, t, c, f) for t, c in chunks], 2), args.repeats
        )
        diff = float((got[method] - want).abs().max())
        tl = f"{'-':>20} {'-':>7}"
        if hooked is not None:
            t_tl, want_tl = best_of(
                lambda f=frozen: torch.cat([transformer_lens_loop(hooked, t, c, f) for t, c in chunks], 2),
                args.repeats,
            )
            diff = max(diff, float((got[method] - want_tl).abs().max()))
            tl = f"{t_tl:>20.2f} {t_tl / t_alone:>6.1f}x"
        print(f"{method:<19} {t_alone:>9.3f} {t_naive:>15.2f} {t_naive / t_alone:>6.1f}x {tl} {diff:>11.1e}")
    print(f"{'both (one call)':<19} {t_ours:>9.3f}")


if __name__ == "__main__":
    main()
