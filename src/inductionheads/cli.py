"""`python -m inductionheads STAGE ...`: what the Snakemake rules call, with explicit paths.

Settings arrive as one JSON argument (`--settings`), exactly the config section the rule passes
as `params`, so what a job computes is what Snakemake tracks for reruns.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import digest


def _logging(log_path: str | None, argv: list[str]) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        # appended: a rerun after a failure keeps the failed attempt's log above its own
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("inductionheads").info("attempt: inductionheads %s", " ".join(argv))


def _shard(text: str) -> tuple[int, int]:
    """ "2/4" -> (1, 4): the second of four snapshot-range shards."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard '{text}' is not of the form INDEX/COUNT, e.g. 2/4") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard '{text}': INDEX must be within 1..COUNT")
    return index - 1, count


# the leading axis along which each stage's shards are concatenated
SHARD_AXES = {"losses": ("snapshot",), "heads": ("snapshot",), "ablation": ("ablated_snapshot",)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inductionheads", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True)

    def stage(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--settings", type=json.loads, default={}, help="JSON settings of this stage")
        p.add_argument("--log", help="log file (also echoed to stderr)")
        p.add_argument("--threads", type=int, default=1)
        return p

    p = stage("corpus", "read the corpus, train BPE, write token ids")
    p.add_argument("--tokens", required=True)
    p.add_argument("--tokenizer", required=True)

    p = stage("evalset", "fix the held-out contexts and repeated random sequences")
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)

    p = stage("train", "train one model, writing its snapshots")
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--no-progress", action="store_true")

    p = stage("import", "a snapshot file from a TransformerLens checkpoint series (interop extra)")
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)

    p = stage("export", "snapshots as TransformerLens state dicts and config (interop extra)")
    p.add_argument("--snapshots", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--index", type=int, nargs="*", help="snapshot positions (default: all)")

    for name, help in [
        ("losses", "per-token losses and ICL score of every snapshot"),
        ("heads", "head scores of every snapshot"),
    ]:
        p = stage(name, help)
        p.add_argument("--snapshots", required=True)
        p.add_argument("--evalset", required=True)
        p.add_argument("--out", required=True)

    p = stage("ablation", "ablate every head of scheduled snapshots, full and pattern-preserving")
    for kind in ("snapshots", "evalset", "losses", "heads", "phase", "out"):
        p.add_argument(f"--{kind}", required=True)
    for name in ("losses", "heads", "ablation"):
        p = sub.choices[name]
        p.add_argument("--shard", type=_shard, default=(0, 1), help="INDEX/COUNT of the snapshot range")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")

    p = stage("merge", "merge a stage's snapshot-range shards, in order, into one file")
    p.add_argument("kind", choices=sorted(SHARD_AXES))
    p.add_argument("--shards", nargs="+", required=True)
    p.add_argument("--out", required=True)

    p = stage("phase", "the phase-change window of one model")
    p.add_argument("--losses", required=True)
    p.add_argument("--out", required=True)

    p = stage("pca", "joint PCA of the per-token-loss vectors of every model")
    p.add_argument("--losses", nargs="+", required=True)
    p.add_argument("--out", required=True)

    p = stage("claims", "evaluate claims C1-C7 into a JSON file")
    for kind in ("losses", "heads", "phase", "ablation"):
        p.add_argument(f"--{kind}", nargs="+", required=True, help="one file per run, in settings' order")
    p.add_argument("--pca", nargs="+", required=True, help="one joint-PCA file per replicate, in order")
    p.add_argument("--out", required=True)

    p = stage("figures", "draw figures into a directory as <name>.png")
    p.add_argument("names", nargs="+")
    p.add_argument("--out-dir", required=True)
    for kind in ("snapshots", "losses", "heads", "phase", "ablation"):
        p.add_argument(f"--{kind}", nargs="+", default=[], help=f"{kind} files, one per model")
    p.add_argument("--pca", nargs=1, default=[], help="the joint PCA file")

    p = stage("report", "write the self-contained report.html (--settings: the whole config)")
    p.add_argument("--claims", required=True)
    p.add_argument("--figures", nargs="+", required=True)
    p.add_argument("--heads", nargs="+", required=True)
    p.add_argument("--benchmarks", required=True, help="directory of Snakemake benchmark files")
    p.add_argument("--captions", help="directory of <figure>.rst captions")
    p.add_argument("--out", required=True)

    p = stage("manifest", "list every HDF5 output with its provenance and integrity hash")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--out", required=True)

    p = stage("verify", "re-check every HDF5 file under a directory (e.g. results/<experiment>)")
    p.add_argument("directory")

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    _logging(args.log, argv)
    try:
        _run(args)
    except Exception:
        # the rule's log file gets the traceback too, not only the terminal
        logging.getLogger("inductionheads").exception("stage %s failed", args.stage)
        return 1
    return 0


def _run(args: argparse.Namespace) -> None:
    s = args.settings
    # imports per stage: the corpus and manifest stages load no torch
    if args.stage == "corpus":
        from . import corpus

        corpus.build(s, args.tokens, args.tokenizer, digest(s))
    elif args.stage == "evalset":
        from . import evalset

        evalset.build(args.tokens, args.out, s["evaluation"], s["heads"], digest(s))
    elif args.stage == "train":
        from . import train

        train.train(
            s, args.tokens, args.out, threads=args.threads, device=args.device, progress=not args.no_progress
        )
    elif args.stage == "import":
        from . import interop

        interop.import_series(s, args.tokens, args.out)
    elif args.stage == "export":
        from . import interop

        interop.export(args.snapshots, args.out_dir, args.index)
    elif args.stage == "losses":
        from . import losses

        losses.run(
            args.snapshots,
            args.evalset,
            args.out,
            s["batch_size"],
            threads=args.threads,
            shard=args.shard,
            device=args.device,
        )
    elif args.stage == "heads":
        from . import heads

        heads.run(
            args.snapshots,
            args.evalset,
            args.out,
            s["prev_token_contexts"],
            threads=args.threads,
            shard=args.shard,
            device=args.device,
        )
    elif args.stage == "ablation":
        from . import ablation

        ablation.run(
            args.snapshots,
            args.evalset,
            args.losses,
            args.heads,
            args.phase,
            args.out,
            s,
            threads=args.threads,
            shard=args.shard,
            device=args.device,
        )
    elif args.stage == "merge":
        from . import h5io

        h5io.merge_shards(args.shards, args.out, args.kind, SHARD_AXES[args.kind])
    elif args.stage == "phase":
        from . import phase

        phase.run(args.losses, args.out, s)
    elif args.stage == "pca":
        from . import pca

        pca.run(args.losses, args.out, s["n_components"])
    elif args.stage == "claims":
        from . import claims

        claims.run(s, args.losses, args.heads, args.phase, args.ablation, args.pca, args.out)
    elif args.stage == "report":
        from . import report

        report.build(args.claims, args.figures, args.heads, s, args.benchmarks, args.out, args.captions)
    elif args.stage == "manifest":
        from . import h5io

        h5io.write_manifest(args.inputs, args.out)
    elif args.stage == "verify":
        _verify(args.directory)
    elif args.stage == "figures":
        from . import figures

        kinds = ("snapshots", "losses", "heads", "phase", "ablation", "pca")
        inputs = {kind: getattr(args, kind) for kind in kinds}
        figures.draw(args.names, inputs, args.out_dir, s)


def _verify(directory: str) -> None:
    from . import h5io

    if not Path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found = h5io.verify_tree(directory)
    for path, result in found.items():
        print(result if result.startswith("CORRUPT") else f"{result}\t{path}", flush=True)
    bad = [p for p, r in found.items() if r.startswith("CORRUPT")]
    if bad:
        raise h5io.H5Error(
            f"{len(bad)} of {len(found)} HDF5 files under {directory} fail verification: delete them and "
            "rerun the workflow to rebuild them"
        )
    logging.getLogger("inductionheads").info("%d HDF5 files under %s verified", len(found), directory)


if __name__ == "__main__":
    sys.exit(main())
