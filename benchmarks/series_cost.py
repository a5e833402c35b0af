"""What a config's whole series costs: each stage's throughput measured here, for each of its models.

For every model of the config (`configs/paper.yaml`: 12), the package's own stage functions run on
short inputs at the model's real size, with the config's own settings, on the device at hand:

- train: the training loop's own step (`train.training_loss`, `train.train_step`) timed for a few
  seconds on random tokens, after a first step that builds and compiles (the fixed cost), and its
  resume checkpoints and snapshot file for 3 snapshots (the cost of a snapshot);
- losses, head_scores, ablation: each stage on a snapshot file of 3 snapshots, once for its first shard
  of 3 (one snapshot) and once whole, which separates the cost of a snapshot from the job's fixed cost;
  losses and ablation on fewer contexts than the config's (`--probe-contexts`), scaled linearly (their
  work is a fixed batch size of forward passes per context).

Each is extrapolated to the config's steps, snapshots, shards, contexts and ablated snapshots, plus a
Python start-up per job (measured). Printed: device-hours per stage and model, the series' total, and
its wall time on `--devices` devices, the jobs scheduled longest-path-first in dependency order (train,
then the measurement shards, then the ablation shards). The CPU stages (corpus, evaluation set, merges,
phase, PCA, claims, figures, report) are not costed: they do not scale with model width.

With `--measured DIR` (a finished run's `results/<experiment>/benchmarks`), each predicted job time is
printed beside the one Snakemake measured: the check that the extrapolation holds.

    python benchmarks/series_cost.py --config configs/paper.yaml --device cuda --devices 8
    python benchmarks/series_cost.py --config config.yaml --device cpu --measured results/default/benchmarks
"""

from __future__ import annotations

import argparse
import csv
import heapq
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from inductionheads import ablation, evalset, h5io, head_scores, losses, phase, train
from inductionheads import device as devices
from inductionheads import snapshots as snapshot_file
from inductionheads.config import load, model_spec
from inductionheads.model import Transformer
from inductionheads.schedule import ablated_positions, snapshot_steps
from inductionheads.shards import shard_positions

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
MEASURED = ("losses", "head_scores", "ablation")


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def random_corpus(path: Path, vocab: int, n_train: int, n_heldout: int) -> None:
    """A corpus file of uniform random tokens (costs do not depend on what the tokens say)."""
    rng = np.random.default_rng(0)
    dtype = np.uint16 if vocab <= 2**16 else np.int32
    stream = rng.integers(1, vocab, size=n_train).astype(dtype)
    with h5io.atomic_writer(path, "corpus", "cost", vocab_size=vocab, bos_id=0) as f:
        h5io.write(f, "train", stream, ("token",))
        h5io.write(f, "heldout", rng.integers(1, vocab, size=n_heldout).astype(dtype), ("token",))
        h5io.write(f, "train_token_counts", np.bincount(stream, minlength=vocab), ("vocab",), units="count")


def training_cost(spec: dict, vocab: int, seconds: float, device: str) -> tuple[float, float, float]:
    """(seconds per step, per snapshot, fixed) of training this model as `train.train` does: its own
    `training_loss` and `train_step` at the spec's precision, micro-batches and loss chunk, repeated
    for `seconds` after a first step (building and compiling: the fixed cost); its resume checkpoints
    and snapshot file, written for 3 snapshots."""
    dev = torch.device(device)
    torch.set_num_threads(spec["threads"])
    precision = devices.training_precision(dev, spec.get("precision", "auto"))
    start = time.perf_counter()
    model = Transformer(spec, vocab).to(dev)
    loss_of = train.training_loss(model, dev, spec.get("loss_chunk_tokens"))
    opt = train.make_optimizer(model, spec)
    batch = torch.randint(1, vocab, (spec["batch_size"], spec["context_length"]), device=dev)

    def step():
        loss = train.train_step(
            model, loss_of, opt, batch, spec["lr"], spec["grad_clip"], precision, spec.get("micro_batch_size")
        )
        return float(loss)  # as the training loop reads every step's loss

    step()
    first = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    while n < 2 or (time.perf_counter() - start < seconds and n < 10_000):
        step()
        n += 1
    per_step = (time.perf_counter() - start) / n
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "snapshots.h5"
        checkpoints = train.Checkpoints(out, "cost")
        losses = np.zeros(3, np.float32)
        start = time.perf_counter()
        for index in range(3):
            checkpoints.save(index, index, model, opt, losses)
        snapshot_file.write(out, spec, vocab, np.arange(3), batch.numel(), losses, checkpoints.snapshot)
        per_snapshot = (time.perf_counter() - start) / 3
    return per_step, per_snapshot, max(0.0, first - per_step)


def measurement_costs(config: dict, spec: dict, tokens: Path, work: Path, probe: int, device: str) -> dict:
    """{stage: (seconds per snapshot at the config's contexts, fixed)} for losses, head_scores, ablation."""
    evaluation = {**config["evaluation"], "n_contexts": min(probe, config["evaluation"]["n_contexts"])}
    ev = work / "evalset.h5"
    evalset.build(tokens, ev, {"evaluation": evaluation, "head_scores": config["head_scores"]})
    snaps = work / "snapshots.h5"
    run = {**spec, "steps": 2, "n_snapshots": 2, "log_snapshots": 0, "warmup_steps": 1}
    train.train(tokens, snaps, run, threads=spec["threads"], device=device, progress=False)
    measure_threads = config["evaluation"].get("threads", 1)
    ablation_threads = config["ablation"].get("threads", 1)
    ablation_settings = {
        **config["ablation"],
        **config["analysis"],
        "n_contexts": min(probe, config["ablation"]["n_contexts"]),
        "every": 1,  # all 3 probe snapshots; the config's own schedule is counted in jobs_of
    }
    shards = {"one": (0, 3), "all": (0, 1)}  # the first of 3 shards holds 1 of the 3 snapshots
    costs = {}
    for tag, shard in shards.items():
        costs["losses", tag] = timed(
            losses.run, snaps, ev, work / f"losses_{tag}.h5",
            {"batch_size": config["evaluation"]["batch_size"]},
            threads=measure_threads, shard=shard, device=device,
        )  # fmt: skip
        costs["head_scores", tag] = timed(
            head_scores.run, snaps, ev, work / f"head_scores_{tag}.h5", config["head_scores"],
            threads=measure_threads, shard=shard, device=device,
        )  # fmt: skip
    phase.run(work / "losses_all.h5", work / "phase.h5", config["analysis"])
    for tag, shard in shards.items():
        costs["ablation", tag] = timed(
            ablation.run, snaps, ev, work / "losses_all.h5", work / "head_scores_all.h5", work / "phase.h5",
            work / f"ablation_{tag}.h5", ablation_settings,
            threads=ablation_threads, shard=shard, device=device,
        )  # fmt: skip
    scale = {
        "losses": config["evaluation"]["n_contexts"] / evaluation["n_contexts"],
        "head_scores": 1.0,
        "ablation": config["ablation"]["n_contexts"] / ablation_settings["n_contexts"],
    }
    out = {}
    for stage in MEASURED:
        per = max(0.0, (costs[stage, "all"] - costs[stage, "one"]) / 2)
        out[stage] = (per * scale[stage], max(0.0, costs[stage, "one"] - per))
    return out


def python_startup() -> float:
    return timed(subprocess.run, [sys.executable, "-c", "import inductionheads.ablation"], check=True)


def jobs_of(config: dict, name: str, seed: int, cost: dict, startup: float) -> list[tuple]:
    """(job name, seconds, names it waits for) of one run, as the workflow's DAG has them."""
    spec = model_spec(config, name)
    n = len(snapshot_steps(spec["steps"], spec["n_snapshots"], spec.get("log_snapshots", 0)))
    shards = config.get("shards", 1)
    step, snapshot, fixed = cost["train"]
    run = f"{name}/seed{seed}"
    jobs = [(f"train {run}", startup + fixed + spec["steps"] * step + n * snapshot, ())]
    positions = {"losses": np.arange(n), "head_scores": np.arange(n)}
    positions["ablation"] = ablated_positions(n, config["ablation"]["every"])
    measured = tuple(
        f"{stage} {run} {i + 1}of{shards}" for stage in ("losses", "head_scores") for i in range(shards)
    )
    for stage in MEASURED:
        per, stage_fixed = cost[stage]
        for i in range(shards):
            count = len(shard_positions(positions[stage], (i, shards), stage))
            after = measured if stage == "ablation" else (f"train {run}",)
            jobs.append((f"{stage} {run} {i + 1}of{shards}", startup + stage_fixed + count * per, after))
    return jobs


def wall_time(jobs: list[tuple], devices: int) -> float:
    """Makespan of `jobs` on `devices`, each ready job started longest-remaining-path first."""
    seconds = {name: s for name, s, _ in jobs}
    after = {name: set(deps) for name, _, deps in jobs}
    children = {name: [] for name in seconds}
    for name, deps in after.items():
        for dep in deps:
            children[dep].append(name)
    path: dict[str, float] = {}

    def longest(name):
        if name not in path:
            path[name] = seconds[name] + max((longest(c) for c in children[name]), default=0.0)
        return path[name]

    ready = [(-longest(n), n) for n, deps in after.items() if not deps]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    clock, free = 0.0, devices
    while ready or running:
        while ready and free:
            _, name = heapq.heappop(ready)
            heapq.heappush(running, (clock + seconds[name], name))
            free -= 1
        clock, done = heapq.heappop(running)
        free += 1
        for child in children[done]:
            after[child].discard(done)
            if not after[child]:
                heapq.heappush(ready, (-longest(child), child))
    return clock


def measured_seconds(directory: Path, stage: str, run: str, shard: str | None) -> float | None:
    """The wall time Snakemake recorded for one job (`run` is model/seed<n>), or None."""
    path = directory / stage / (f"{run}_{shard}.tsv" if shard else f"{run}.tsv")
    if not path.is_file():
        return None
    with open(path) as f:
        return float(next(csv.DictReader(f, delimiter="\t"))["s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "paper.yaml")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--devices", type=int, default=8, help="GPUs (or CPU job slots) for the wall time")
    parser.add_argument("--models", help="comma-separated subset of the config's models")
    parser.add_argument("--train-seconds", type=float, default=5.0, help="training steps timed for this long")
    parser.add_argument("--probe-contexts", type=int, default=128)
    parser.add_argument("--measured", type=Path, help="a finished run's benchmarks/ directory to compare")
    args = parser.parse_args()
    config = load(args.config, SCHEMA)
    names = args.models.split(",") if args.models else list(config["models"])
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    startup = python_startup()
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, torch {torch.__version__}"
    print(f"{args.config}: {len(names)} models on {where}; Python start-up per job {startup:.1f} s")

    jobs, hours = [], {}
    for name in names:
        spec = model_spec(config, name)
        vocab = config["corpus"]["vocab_size"]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            tokens = work / "tokens.h5"
            heldout = (config["evaluation"]["context_length"] + 1) * (args.probe_contexts + 8)
            train_tokens = max(2 * spec["batch_size"] * spec["context_length"], 100_000)
            random_corpus(tokens, vocab, train_tokens, heldout)
            cost = {"train": training_cost(spec, vocab, args.train_seconds, device)}
            cost.update(measurement_costs(config, spec, tokens, work, args.probe_contexts, device))
        for seed in range(spec["seed"], spec["seed"] + spec["replicates"]):
            run_jobs = jobs_of(config, name, seed, cost, startup)
            jobs += run_jobs
            for job, seconds, _ in run_jobs:
                stage = job.split()[0]
                hours[name, stage] = hours.get((name, stage), 0.0) + seconds / 3600
        rate = spec["batch_size"] * spec["context_length"] / cost["train"][0]
        print(f"  {name}: training {cost['train'][0]:.3f} s/step ({rate:,.0f} tokens/s)")

    stages = ("train", *MEASURED)
    print(f"\n{'model':<10}" + "".join(f"{s + ' h':>15}" for s in stages) + f"{'total h':>12}")
    for name in names:
        row = [hours[name, s] for s in stages]
        print(f"{name:<10}" + "".join(f"{h:>15.2f}" for h in row) + f"{sum(row):>12.2f}")
    totals = [sum(hours[n, s] for n in names) for s in stages]
    print(f"{'series':<10}" + "".join(f"{h:>15.2f}" for h in totals) + f"{sum(totals):>12.2f}")
    kind = "GPU" if device == "cuda" else "CPU job slot"
    print(f"\nwall time on {args.devices} {kind}s: {wall_time(jobs, args.devices) / 3600:.2f} h")

    if args.measured:
        print(f"\n{'job':<36} {'predicted s':>12} {'measured s':>11} {'ratio':>6}")
        for job, seconds, _ in jobs:
            stage, run, *shard = job.split()
            got = measured_seconds(args.measured, stage, run, shard[0] if shard else None)
            if got:
                print(f"{job:<36} {seconds:>12.1f} {got:>11.1f} {seconds / got:>6.2f}")


if __name__ == "__main__":
    main()
