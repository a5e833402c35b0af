"""How each analysis stage's cost grows with the number of snapshots and of heads.

Times the losses, heads, phase, ablation and PCA stages as the workflow runs them, at a base size
and with the snapshots doubled, then with the heads per layer doubled (d_model fixed, so d_head
halves). Linear growth shows as a ratio of 2.0 or less; quadratic growth would show as 4.

    python benchmarks/scaling.py [--threads 2] [--snapshots 4] [--heads 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from inputs import PHASE, make_inputs

from inductionheads import ablation, head_scores, losses, pca, phase

ABLATION = {
    "every": 1,
    "n_contexts": 64,
    "batch_size": 16,
    "induction_prefix_matching": 0.3,
    "induction_copying": 0.0,
}


def stage_times(root: Path, n_snapshots: int, n_heads: int, threads: int) -> dict[str, float]:
    spec = {"name": "bench", "family": "attention-only", "n_layers": 2, "d_model": 128, "n_heads": n_heads}
    spec["context_length"] = 256
    snaps, evalset_path = make_inputs(root, spec, n_snapshots)
    times = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times[name] = time.perf_counter() - start

    common = {"threads": threads, "device": "cpu"}
    timed("losses", losses.run, snaps, evalset_path, root / "losses.h5", {"batch_size": 32}, **common)
    scored = root / "head_scores.h5"
    timed("head_scores", head_scores.run, snaps, evalset_path, scored, {"prev_token_contexts": 8}, **common)
    timed("phase", phase.run, root / "losses.h5", root / "phase.h5", PHASE)
    timed(
        "ablation",
        ablation.run,
        snaps,
        evalset_path,
        root / "losses.h5",
        scored,
        root / "phase.h5",
        root / "ablation.h5",
        ABLATION,
        threads=threads,
        device="cpu",
    )
    timed("pca", pca.run, [root / "losses.h5"], root / "pca.h5", {"n_components": 3})
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = {
        "base": (args.snapshots, args.heads),
        "2x snapshots": (2 * args.snapshots, args.heads),
        "2x heads": (args.snapshots, 2 * args.heads),
    }
    results = {}
    for name, (n_snapshots, n_heads) in sizes.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = stage_times(Path(tmp), n_snapshots, n_heads, args.threads)
    print(
        f"2-layer attention-only, d_model 128, context 256: base {args.snapshots} snapshots x {args.heads}"
        f" heads per layer; 256 contexts for losses, 64 ablated on every snapshot; {args.threads} threads"
    )
    header = ("stage", "base (s)", "2x snapshots (s)", "ratio", "2x heads (s)", "ratio")
    print("{:<10} {:>9} {:>17} {:>6} {:>13} {:>6}".format(*header))
    base = results["base"]
    for stage, t in base.items():
        t_s, t_h = results["2x snapshots"][stage], results["2x heads"][stage]
        print(f"{stage:<10} {t:>9.2f} {t_s:>17.2f} {t_s / t:>6.2f} {t_h:>13.2f} {t_h / t:>6.2f}")


if __name__ == "__main__":
    main()
