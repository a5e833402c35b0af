"""The measurement stages end to end vs the TransformerLens way, in snapshots per second.

Both read every snapshot of one snapshot file (HDF5) and compute per-token losses on the held-out
contexts and prefix-matching and copying scores on the repeated random sequences; measured in this run
on the same files, with equal results checked.

- ours: the `losses` and `head_scores` stages as the workflow runs them (`losses.run`, `head_scores.run`: they
  also write their HDF5 outputs, and `heads` computes previous-token, OV and QK scores besides);
- the TransformerLens way: one `HookedTransformer`; per snapshot, load its state dict from the HDF5
  file, per-token losses with `return_type="loss", loss_per_token=True`, and `run_with_cache` for
  the patterns and LayerNorm outputs, scored by the same prefix-matching and copying arithmetic.

The model is the default experiment's 2-layer size (d_model 128, 4 heads, context 256, vocab 512) at
random initialisations, one per snapshot; the evaluation set is the default's (256 contexts of 256
tokens, 10 repeated sequences), built from a slice of the standard library. Needs TransformerLens
(`pip install -e '.[bench]'`).

    python benchmarks/measurement.py [--threads 2] [--snapshots 8] [--layers 2] [--heads 4]
    python benchmarks/measurement.py --device cuda --heads 12 --d-model 768 --context 512 --vocab 65536
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from inputs import make_inputs

from inductionheads import head_scores, losses, readers
from inductionheads.interop import hooked_config, state_dict_names
from inductionheads.model import sinusoidal_positions


def ours(snaps: Path, evalset_path: Path, out: Path, threads: int, device: str) -> dict[str, np.ndarray]:
    losses.run(snaps, evalset_path, out / "losses.h5", {"batch_size": 32}, threads=threads, device=device)
    settings = {"prev_token_contexts": 8}
    head_scores.run(snaps, evalset_path, out / "head_scores.h5", settings, threads=threads, device=device)
    scores = readers.head_scores(out / "head_scores.h5").scores
    return {
        "mean_loss": readers.losses(out / "losses.h5").mean_loss,
        "prefix_matching": scores["prefix_matching"],
        "copying": scores["copying"],
    }


def transformer_lens_way(snaps: Path, evalset_path: Path, device: str) -> dict[str, np.ndarray]:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with h5py.File(evalset_path, "r") as f:
        contexts = torch.from_numpy(f["contexts"][()]).to(device)
        repeated = torch.from_numpy(f["repeated"][()]).to(device)
        R, n_rep = int(f.attrs["repeat_length"]), int(f.attrs["n_repeats"])
    out = {"mean_loss": [], "prefix_matching": [], "copying": []}
    with h5py.File(snaps, "r") as f, torch.no_grad():
        spec = json.loads(f.attrs["spec"])
        vocab, L, D = int(f.attrs["vocab_size"]), spec["n_layers"], spec["d_model"]
        cfg = HookedTransformerConfig(**hooked_config(spec, vocab))
        model = HookedTransformer(cfg).to(device).eval()
        names = state_dict_names(L)
        _, queries = head_scores.prefix_matching_targets(R, n_rep)
        for s in range(len(f["steps"])):
            state = {names[k]: torch.from_numpy(f["params"][k][s]).to(device) for k in f["params"]}
            state["pos_embed.W_pos"] = sinusoidal_positions(spec["context_length"], D).to(device)
            model.load_state_dict(state, strict=False)
            per_token = [model(c, return_type="loss", loss_per_token=True) for c in contexts.split(32)]
            out["mean_loss"].append(torch.cat(per_token).mean(0).cpu().numpy())
            _, cache = model.run_with_cache(
                repeated, names_filter=lambda n: n.endswith(("hook_pattern", "ln1.hook_normalized"))
            )
            centre = torch.eye(D, device=device) - 1.0 / D
            W_logit = centre @ (model.ln_final.w[:, None] * model.W_U)
            W_logit = W_logit - W_logit.mean(1, keepdim=True)
            pm, cp = [], []
            for layer in range(L):
                pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
                attn = model.blocks[layer].attn
                pm.append(head_scores.prefix_matching(pattern, R, n_rep))
                normed = cache[f"blocks.{layer}.ln1.hook_normalized"]
                args = (pattern[:, :, queries], normed, repeated, attn.W_V, attn.b_V, attn.W_O, W_logit)
                cp.append(head_scores.copying(*args, include_bos=False))
            out["prefix_matching"].append(torch.stack(pm).cpu().numpy())
            out["copying"].append(torch.stack(cp).cpu().numpy())
    return {k: np.stack(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--snapshots", type=int, default=8)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-model", type=int, help="default: 32 x heads")
    parser.add_argument("--family", default="attention-only", choices=("attention-only", "with-mlp"))
    parser.add_argument("--context", type=int, default=256, help="evaluation context length")
    parser.add_argument("--vocab", type=int, default=512, help="BPE vocabulary")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = {
        "name": "bench",
        "family": args.family,
        "n_layers": args.layers,
        "d_model": args.d_model or 32 * args.heads,
        "n_heads": args.heads,
        "context_length": args.context,
    }
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        snaps, evalset_path = make_inputs(root, spec, args.snapshots, args.vocab)
        times = {"ours": [], "tl": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            got = ours(snaps, evalset_path, root, args.threads, args.device)
            sync()
            times["ours"].append(time.perf_counter() - start)
            start = time.perf_counter()
            want = transformer_lens_way(snaps, evalset_path, args.device)
            sync()
            times["tl"].append(time.perf_counter() - start)
    t_ours, t_tl = min(times["ours"]), min(times["tl"])
    print(
        f"measurement of {args.snapshots} snapshots, {args.family}, {args.layers} layers x {args.heads}"
        f" heads, d_model {spec['d_model']}, vocab {args.vocab}, 256 contexts of {args.context} tokens,"
        f" {args.device}, {args.threads} threads, best of {args.repeats}"
    )
    print(f"{'implementation':<28} {'seconds':>8} {'snapshots/s':>12} {'ours / this':>12}")
    print(f"{'ours (losses + heads)':<28} {t_ours:>8.2f} {args.snapshots / t_ours:>12.2f} {1:>11.2f}x")
    print(f"{'TransformerLens way':<28} {t_tl:>8.2f} {args.snapshots / t_tl:>12.2f} {t_tl / t_ours:>11.2f}x")
    for key in ("mean_loss", "prefix_matching", "copying"):
        print(f"max |ours - TransformerLens| {key}: {np.abs(got[key] - want[key]).max():.1e}")


if __name__ == "__main__":
    main()
