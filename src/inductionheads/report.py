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

from . import h5io

PACKAGES = ("inductionheads", "torch", "numpy", "h5py", "tokenizers", "snakemake", "matplotlib", "seaborn")
HEAD_SCORES = ("prefix_matching", "copying", "copying_with_bos", "previous_token", "ov_copying", "qk_trace")
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


def _claims(path: str | Path) -> str:
    claims = json.loads(Path(path).read_text())["claims"]
    rows, classes = [], []
    for c in claims:
        numbers = "<br>".join(f"<b>{_e(k)}</b>: {_e(json.dumps(v))}" for k, v in c["numbers"].items())
        rows.append(
            [
                _e(c["id"]),
                _e(c["statement"]),
                f"<b>{_e(c['status'])}</b>" + (f"<br>{_e(c['reason'])}" if c["reason"] else ""),
                numbers,
                _e(", ".join(f"{k} = {v}" for k, v in c["thresholds"].items())),
            ]
        )
        classes.append(c["status"])
    return _table(["claim", "statement", "status", "numbers", "thresholds"], rows, classes)


def _figure(path: str | Path, captions: Path | None) -> str:
    path = Path(path)
    data = base64.b64encode(path.read_bytes()).decode()
    caption_file = captions / f"{path.stem}.rst" if captions else None
    caption = caption_file.read_text().replace("``", "") if caption_file and caption_file.is_file() else ""
    title = f"{path.parent.name}: {path.stem.replace('_', ' ')}"
    return (
        f'<figure><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_e(title)}.</b> {_e(caption)}</figcaption></figure>"
    )


def _heads(paths: list[str], thresholds: dict[str, float]) -> str:
    parts = []
    for path in paths:
        with h5io.open_input(path, "heads") as f:
            scores = {k: h5io.read(f, k)[-1] for k in HEAD_SCORES}
            step, model = int(h5io.read(f, "steps")[-1]), str(f.attrs["model"])
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
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out)
