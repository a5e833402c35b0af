"""`python -m inductionheads STAGE ...`: what the Snakemake rules call, with explicit paths.

Every stage's arguments come from its function's signature (inductionheads.stages). Settings arrive
as one JSON argument (`--settings`), exactly the config section the rule passes as `params`, so what a
job computes is what Snakemake tracks for reruns.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib import import_module
from pathlib import Path

from .stages import OPTIONS, STAGES, parameters


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="inductionheads", description=__doc__)
    sub = top.add_subparsers(dest="stage", required=True)
    for name, stage in STAGES.items():
        p = sub.add_parser(name, help=stage.help, description=stage.help)
        p.add_argument("--log", help="log file (also echoed to stderr)")
        for param in parameters(name):
            if param.kind == "settings":
                p.add_argument("--settings", type=json.loads, default={}, help="JSON settings of this stage")
            elif param.kind == "option":
                option = dict(OPTIONS[param.name])
                if param.name == "shard":
                    option["type"] = _shard
                    option["default"] = _shard(option["default"])
                p.add_argument(param.flag, dest=param.name, **option)
            else:
                p.add_argument(
                    param.flag,
                    dest=param.name,
                    nargs="+" if param.many else None,
                    required=not param.optional,
                    help=f"{param.kind} file{'s' if param.many else ''}",
                )
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    _logging(args.log, argv)
    stage = STAGES[args.stage]
    values = vars(args)
    kwargs = {p.name: values[p.name] for p in parameters(args.stage) if values.get(p.name) is not None}
    try:
        # imported per stage: the corpus, analysis and figure stages load no torch
        function = getattr(import_module(f"inductionheads.{stage.module}"), stage.function)
        function(**kwargs)
    except Exception:
        # the rule's log file gets the traceback too, not only the terminal
        logging.getLogger("inductionheads").exception("stage %s failed", args.stage)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
