"""The CUDA path, stage by stage, on a model larger than the default (run it on a GPU node).

Runs the package's stages as the workflow's jobs do (`python -m inductionheads STAGE`): corpus,
evaluation set, training on CUDA (bfloat16 autocast, torch.compile), then losses, head scores and
ablations on CUDA, and the same measurements of the first snapshots again on CPU. Prints each stage's
wall time and the largest difference between the CUDA and CPU measurements.

    python benchmarks/cuda_path.py --out /tmp/cuda_path [--steps 300]
    python benchmarks/cuda_path.py --out /tmp/paper_size --d-model 768 --n-heads 12 --context 8192 \
        --batch 8 --steps 60          # the paper's model width and context
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from inputs import HEAD_SCORES, PHASE

SPEC = {
    "name": "cuda_path",
    "family": "attention-only",
    "n_layers": 2,
    "d_model": 512,
    "n_heads": 8,
    "context_length": 1024,
    "batch_size": 32,
    "steps": 300,
    "n_snapshots": 6,
    "lr": 0.003,
    "warmup_steps": 50,
    "lr_schedule": "constant",
    "weight_decay": 0.05,
    "grad_clip": 1.0,
    "seed": 0,
}
EVALUATION = {
    "n_contexts": 256,
    "context_length": 512,
    "icl_early": 50,
    "icl_late": 500,
    "icl_window": 10,
    "seed": 0,
}
ABLATION = {
    "every": 3,
    "n_contexts": 64,
    "batch_size": 16,
    "induction_prefix_matching": 0.3,
    "induction_copying": 0.0,
}


def stage(name: str, settings: dict, *args: str) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "inductionheads", name, "--settings", json.dumps(settings), *args]
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def largest_difference(a: Path, b: Path, rows: int) -> float:
    """max |a - b| over the float datasets of two files, on their first `rows` rows."""
    worst = 0.0
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name, ds in fb.items():
            if isinstance(ds, h5py.Group):
                for sub in ds:
                    worst = max(worst, _diff(fa[f"{name}/{sub}"][:rows], ds[sub][:rows]))
            elif ds.dtype.kind == "f" and ds.ndim:
                worst = max(worst, _diff(fa[name][:rows], ds[:rows]))
    return worst


def _diff(x: np.ndarray, y: np.ndarray) -> float:
    if x.dtype == np.float16:  # stored rounded (the loss matrix): its rounding, not the device, decides
        return 0.0
    finite = np.isfinite(x) & np.isfinite(y)
    return float(np.abs(x[finite].astype(np.float64) - y[finite]).max(initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=SPEC["steps"])
    parser.add_argument("--d-model", type=int, default=SPEC["d_model"])
    parser.add_argument("--n-heads", type=int, default=SPEC["n_heads"])
    parser.add_argument("--context", type=int, default=SPEC["context_length"])
    parser.add_argument("--batch", type=int, default=SPEC["batch_size"])
    parser.add_argument("--family", default=SPEC["family"], help="attention-only, with-mlp or smeared-key")
    parser.add_argument("--layers", type=int, default=SPEC["n_layers"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("cuda_path: torch sees no CUDA device here")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        **SPEC,
        "steps": args.steps,
        "d_model": args.d_model,
        "n_heads": args.n_heads,
        "context_length": args.context,
        "batch_size": args.batch,
        "family": args.family,
        "n_layers": args.layers,
        "warmup_steps": min(SPEC["warmup_steps"], args.steps // 2),
    }
    corpus = {"source": "stdlib", "heldout_fraction": 0.05, "vocab_size": 4096, "seed": 0}
    tokens, evalset, snaps = out / "tokens.h5", out / "evalset.h5", out / "snapshots.h5"
    times = {}
    times["corpus (cpu)"] = stage(
        "corpus", corpus, "--tokens", str(tokens), "--tokenizer", str(out / "tok.json")
    )
    times["evalset (cpu)"] = stage(
        "evalset",
        {"evaluation": EVALUATION, "head_scores": HEAD_SCORES},
        "--tokens",
        str(tokens),
        "--evalset",
        str(evalset),
    )
    snaps.unlink(missing_ok=True)
    train_seconds = stage(
        "train", spec, "--tokens", str(tokens), "--snapshots", str(snaps), "--device", "cuda", "--no-progress"
    )
    times[f"train {args.steps} steps (cuda, bf16, compiled)"] = train_seconds
    with h5py.File(snaps, "r") as f:
        n_snaps, precision = len(f["steps"]), f.attrs["precision"]
        final_loss = float(f["train_loss"][-20:].mean())
    files = {}
    for device in ("cuda", "cpu"):
        # on CPU only the first of 3 shards: the same snapshots, computed again
        shard = "1/1" if device == "cuda" else "1/3"
        common = ["--snapshots", str(snaps), "--evalset", str(evalset), "--device", device, "--shard", shard]
        files[device] = {k: out / f"{k}_{device}.h5" for k in ("losses", "head_scores", "ablation")}
        times[f"losses ({device}, shard {shard})"] = stage(
            "losses", {"batch_size": 32}, *common, "--losses", str(files[device]["losses"]), "--threads", "8"
        )
        times[f"head_scores ({device}, shard {shard})"] = stage(
            "head_scores",
            {"prev_token_contexts": 8},
            *common,
            "--head-scores",
            str(files[device]["head_scores"]),
            "--threads",
            "8",
        )
        if device == "cuda":
            stage("phase", PHASE, "--losses", str(files["cuda"]["losses"]), "--phase", str(out / "phase.h5"))
        times[f"ablation ({device}, shard {shard})"] = stage(
            "ablation",
            ABLATION,
            *common,
            "--losses",
            str(files["cuda"]["losses"]),
            "--head-scores",
            str(files["cuda"]["head_scores"]),
            "--phase",
            str(out / "phase.h5"),
            "--ablation",
            str(files[device]["ablation"]),
            "--threads",
            "8",
        )
    print(f"\n{torch.cuda.get_device_name()}; model {json.dumps(spec)}")
    tokens_per_s = args.steps * spec["batch_size"] * spec["context_length"] / train_seconds
    print(f"{n_snaps} snapshots, training precision {precision}, final training loss {final_loss:.3f}")
    print(f"training throughput including compilation: {tokens_per_s / 1e3:.0f}k tokens/s\n")
    print(f"{'stage':<48} {'wall s':>8}")
    for name, seconds in times.items():
        print(f"{name:<48} {seconds:8.1f}")
    print(f"\n{'measurement':<12} {'max |cuda - cpu| (first shard, float32 datasets)':>50}")
    for kind in ("losses", "head_scores", "ablation"):
        with h5py.File(files["cpu"][kind], "r") as f:
            rows = len(f["steps"])
        print(f"{kind:<12} {largest_difference(files['cuda'][kind], files['cpu'][kind], rows):50.2e}")


if __name__ == "__main__":
    main()
