"""report.html: one self-contained page (figures embedded as data URIs, no scripts, no external
files) with the claims table, every figure, every head's final scores, the config, the package
versions, and each rule's wall time and peak memory from Snakemake's benchmark files."""

from __future__ import annotations

import base64
import csv
import html
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import h5io, readers
from .readers import HEAD_SCORES

PACKAGES = ("inductionheads", "torch", "numpy", "h5py", "tokenizers", "snakemake", "matplotlib", "seaborn")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.pass { background: #d8f3dc; } .fail { background: #ffd6d6; } .not-evaluable { background: #eee; }
.induction { font-weight: bold; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numbers(numbers: dict[str, Any]) -> str:
    """A claim's numbers, one line per model (or quantity): its values as key = value."""
    lines = []
    for key, value in numbers.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
        else:
            value = json.dumps(value)
        lines.append(f"<b>{_e(key)}</b>: {_e(value)}")
    return "<br>".join(lines)


def _spread(spread: dict[str, float] | None, unit: str) -> str:
    if spread is None:
        return "—"
    return (
        f"{spread['mean']:,.0f} ± {spread['sd']:,.0f} {unit} "
        f"(range {spread['min']:,.0f}–{spread['max']:,.0f})"
    )


def _claims(path: str | Path) -> str:
    document = json.loads(Path(path).read_text())
    summary, n = document["summary"], document["replicates"]
    passing = sum(c["status"] == "pass" for c in summary)
    verdict = (
        f"<p><b>{passing} of {len(summary)} claims pass in every one of the {n} replicate"
        f"{'s' if n > 1 else ''}.</b> A replicate is one training run of every model (seeds in the table "
        "below); a claim passes overall only when it passes in each.</p>"
    )
    rows = [
        [
            _e(c["id"]),
            _e(c["statement"]),
            f"<b>{_e(c['status'])}</b>",
            _e(f"{c['passed']} of {c['replicates']}")
            + (f" ({c['not_evaluable']} not evaluable)" if c["not_evaluable"] else ""),
        ]
        for c in summary
    ]
    parts = [
        verdict,
        _table(["claim", "statement", "status", "passed in"], rows, [c["status"] for c in summary]),
        "<h3>Phase-change windows over replicates</h3>",
    ]
    rows = [
        [
            _e(name),
            _e(f"{w['phase_change_in']} of {w['replicates']}"),
            _e(_spread(w["start_step"], "steps")),
            _e(_spread(w["end_step"], "steps")),
            _e(_spread(w["start_tokens"], "tokens")),
            _e(_spread(w["end_tokens"], "tokens")),
            _e(", ".join(f"seed {k}: {v}" for k, v in w["status_by_seed"].items())),
        ]
        for name, w in document["windows"].items()
    ]
    parts.append(
        _table(
            ["model", "phase change in", "start", "end", "start (tokens)", "end (tokens)", "window by seed"],
            rows,
        )
    )
    for replicate in document["by_replicate"]:
        seeds = ", ".join(f"{k} seed {v}" for k, v in replicate["seeds"].items())
        parts.append(
            f"<h3>Replicate {replicate['replicate']}: {replicate['passed']} of "
            f"{len(replicate['claims'])} pass</h3><p>{_e(seeds)}</p>"
        )
        rows = [
            [
                _e(c["id"]),
                f"<b>{_e(c['status'])}</b>" + (f"<br>{_e(c['reason'])}" if c["reason"] else ""),
                _numbers(c["numbers"]),
                _e(", ".join(f"{k} = {v}" for k, v in c["thresholds"].items())),
            ]
            for c in replicate["claims"]
        ]
        parts.append(
            _table(
                ["claim", "status", "numbers", "thresholds"], rows, [c["status"] for c in replicate["claims"]]
            )
        )
    return "".join(parts)


def _figure(path: str | Path, captions: Path | None) -> str:
    path = Path(path)
    data = base64.b64encode(path.read_bytes()).decode()
    caption_file = captions / f"{path.stem}.rst" if captions else None
    caption = caption_file.read_text().replace("``", "") if caption_file and caption_file.is_file() else ""
    # figures/<model>/seed<n>/<name>.png or figures/<group>/<name>.png
    where = " ".join(path.parts[-3:-1]) if path.parent.name.startswith("seed") else path.parent.name
    title = f"{where}: {path.stem.replace('_', ' ')}"
    return (
        f'<figure><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_e(title)}.</b> {_e(caption)}</figcaption></figure>"
    )


def _heads(paths: list[str], thresholds: dict[str, float]) -> str:
    parts = []
    for path in paths:
        run = readers.heads(path)
        scores = {k: v[-1] for k, v in run.scores.items()}
        step, model = int(run.steps[-1]), f"{run.model} seed {run.seed}"
        rows, classes = [], []
        for layer, head in np.ndindex(scores["prefix_matching"].shape):
            s = {k: scores[k][layer, head] for k in HEAD_SCORES}
            induction = (
                s["prefix_matching"] >= thresholds["induction_prefix_matching"]
                and s["copying"] >= thresholds["induction_copying"]
            )
            rows.append([f"{layer + 1}.{head}"] + ["" if np.isnan(v) else f"{v:.3f}" for v in s.values()])
            classes.append("induction" if induction else "")
        parts.append(f"<h3>{_e(model)} (step {step})</h3>" + _table(["head", *HEAD_SCORES], rows, classes))
    return "".join(parts)


def _benchmarks(root: str | Path) -> str:
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        with path.open() as f:
            for record in csv.DictReader(f, delimiter="\t"):
                rows.append(
                    [
                        _e(path.relative_to(root).with_suffix("")),
                        f"{float(record['s']):.1f}",
                        _e(record["max_rss"]),
                        _e(record.get("cpu_time", "")),
                    ]
                )
    if not rows:
        return "<p>No benchmark files found.</p>"
    return _table(["rule / wildcards", "wall time (s)", "peak RSS (MB)", "CPU time (s)"], rows)


def _versions() -> str:
    rows = [["python", _e(platform.python_version())], ["platform", _e(platform.platform())]]
    for name in PACKAGES:
        try:
            rows.append([_e(name), _e(metadata.version(name))])
        except metadata.PackageNotFoundError:
            rows.append([_e(name), "not installed"])
    return _table(["package", "version"], rows)


def build(
    claims_path: str | Path,
    figures: list[str],
    heads: list[str],
    config: dict[str, Any],
    benchmarks: str | Path,
    out_path: str | Path,
    captions: str | Path | None = None,
) -> None:
    captions = Path(captions) if captions else None
    experiment = config.get("experiment", "")
    sections = [
        f"<h1>inductionheads: experiment {_e(experiment)}</h1>",
        f"<p>Generated {_e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}. A re-run of <i>In-context Learning "
        "and Induction Heads</i> (Olsson et al., 2022): every number below is read from this "
        "experiment's stored results.</p>",
        "<h2>Claims</h2>",
        _claims(claims_path),
        "<h2>Figures</h2>",
        "<p>The all-model figures and the per-model figures show the first replicate; the replicate "
        "figures show every run. The per-model figures of the other replicates are under "
        "<code>figures/&lt;model&gt;/seed&lt;n&gt;/</code>.</p>",
        *(_figure(p, captions) for p in figures),
        "<h2>Every head at the last snapshot</h2>",
        "<p>Bold rows are induction heads (prefix matching and copying above the thresholds of "
        "<code>analysis</code>). QK trace is defined for layers 2 and up.</p>",
        _heads(heads, config["analysis"]),
        "<h2>Config</h2>",
        f"<pre>{_e(yaml.safe_dump(config, sort_keys=False))}</pre>",
        "<h2>Package versions</h2>",
        _versions(),
        "<h2>Cost of each rule</h2>",
        "<p>From Snakemake's <code>benchmark:</code> files of the latest run of each job.</p>",
        _benchmarks(benchmarks),
    ]
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>inductionheads: '
        f"{_e(experiment)}</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
    with h5io.atomic_path(out_path) as tmp:
        tmp.write_text(page)
