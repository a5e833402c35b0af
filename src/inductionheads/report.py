"""report.html: one self-contained page (figures embedded as data URIs, no scripts, no external
files): a table of contents, the verdict over claims and replicates, the claims with their numbers and
their thresholds in words, one sentence per run on its phase change, every figure, every head's final
scores, the config, the package versions, each rule's wall time and peak memory from Snakemake's
benchmark files, and the manifest's provenance of every HDF5 file."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import h5io, head_classes, readers
from . import overlap as overlaps
from . import phase as phases
from .readers import HEAD_SCORES

PACKAGES = ("inductionheads", "torch", "numpy", "h5py", "tokenizers", "snakemake", "matplotlib", "seaborn")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.pass { background: #d8f3dc; } .fail { background: #ffd6d6; } .not-evaluable { background: #eee; }
.induction { font-weight: bold; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; box-sizing: border-box; border: 1px solid #ddd; }
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


def _value(value: Any) -> str:
    """A number as a reader wants it: 3 significant figures, a [start, end] pair as a range."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "none"}[value]
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, int | float) for v in value):
            return f"{_value(value[0])}–{_value(value[1])}"
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in value.items())
    return str(value)


def _numbers(numbers: dict[str, Any]) -> str:
    """A claim's numbers, one line per model (or quantity): its values as "key value; ..."."""
    lines = []
    for key, value in numbers.items():
        if isinstance(value, dict):
            value = "; ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in value.items())
        else:
            value = _value(value)
        lines.append(f"<b>{_e(key.replace('_', ' '))}</b>: {_e(value)}")
    return "<br>".join(lines)


# What each threshold of the claims means, in words (the value substituted for {v} / {p}: percent)
THRESHOLD_WORDS = {
    "window_fraction": "“most” means at least {p} (of the ICL score, of a head's rise, of a separation)",
    "min_icl_drop": "a phase change lowers the ICL score by at least {v} nats",
    "far_less_ratio": "“far less”: the 1-layer model learns at most {p} of the least multi-layer model's ICL",
    "induction_prefix_matching": "“high prefix matching”: a score of at least {v}",
    "bump_rate_ratio": "“fastest”: at least {v} times the typical rate outside the window",
    "icl_smoothing": "rates are taken on the ICL score smoothed over {v} snapshots",
    "ablation_fraction": "“most”: the ablation removes at least {p} of the final ICL score",
}


def _thresholds(thresholds: dict[str, Any]) -> str:
    words = [
        THRESHOLD_WORDS[k].format(v=_value(v), p=f"{100 * v:.0f}%") if k in THRESHOLD_WORDS else f"{k} = {v}"
        for k, v in thresholds.items()
    ]
    return "; ".join(words)


def _tokens(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,.0f}"


def model_sentence(read: dict[str, Any]) -> str:
    """One run's phase change in one sentence, from its phase file (`phase.read`)."""
    w, name = read["window"], f"{read['model']} (seed {read['seed']})"
    if w is None:
        return f"{name}: its smoothed ICL score never falls for good, so it has no window."
    where = (
        f"steps {w['start_step']:,}–{w['end_step']:,} "
        f"({_tokens(w['start_tokens'])}–{_tokens(w['end_tokens'])} tokens)"
    )
    if math.isfinite(w["fraction"]):
        formed = f"{100 * w['fraction']:.0f}% of its ICL ({w['icl_formed']:.3f} of {w['icl_total']:.3f} nats)"
    else:  # phase.find_window: no share of a total that never fell
        formed = f"{w['icl_formed']:.3f} nats, though its ICL score ends no lower than it began"
    if w["has_phase_change"]:
        after = f"{100 * w['after']:.0f}% of training after it"
        return f"{name}: phase change — {formed} formed in {where}, with {after}."
    return f"{name}: no phase change ({w['status']}) — its largest fall, in {where}, formed {formed}."


def _spread(spread: dict[str, float] | None, unit: str) -> str:
    if spread is None:
        return "—"
    return (
        f"{spread['mean']:,.0f} ± {spread['sd']:,.0f} {unit} "
        f"(range {spread['min']:,.0f}–{spread['max']:,.0f})"
    )


def _verdict(document: dict[str, Any]) -> str:
    summary, n = document["summary"], document["replicates"]
    passing = sum(c["status"] == "pass" for c in summary)
    return (
        f"<p><b>{passing} of {len(summary)} claims pass in every one of the {n} replicate"
        f"{'s' if n > 1 else ''}.</b> A replicate is one training run of every model (seeds in the claims "
        "below); a claim passes overall only when it passes in each.</p>"
    )


def _claims(document: dict[str, Any]) -> str:
    summary = document["summary"]
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
                _e(_thresholds(c["thresholds"])),
            ]
            for c in replicate["claims"]
        ]
        parts.append(
            _table(
                ["claim", "status", "numbers", "thresholds"], rows, [c["status"] for c in replicate["claims"]]
            )
        )
    return "".join(parts)


def _figure(path: str | Path, captions: dict[str, Path]) -> str:
    """The figure embedded, with the caption file of its name (reStructuredText, shown as text)."""
    path = Path(path)
    data = base64.b64encode(path.read_bytes()).decode()
    caption = captions[path.stem].read_text().replace("``", "") if path.stem in captions else ""
    # figures/<model>/seed<n>/<name>.png or figures/<group>/<name>.png
    where = " ".join(path.parts[-3:-1]) if path.parent.name.startswith("seed") else path.parent.name
    title = f"{where}: {path.stem.replace('_', ' ')}"
    return (
        f'<figure><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_e(title)}.</b> {_e(caption)}</figcaption></figure>"
    )


def _head_table(paths: list[str], thresholds: dict[str, float]) -> str:
    parts = []
    for path in paths:
        run = readers.head_scores(path)
        scores = {k: v[-1] for k, v in run.scores.items()}
        step, model = int(run.steps[-1]), f"{run.model} seed {run.seed}"
        rows, classes = [], []
        for layer, head in np.ndindex(scores["prefix_matching"].shape):
            s = {k: scores[k][layer, head] for k in HEAD_SCORES}
            induction = head_classes.induction(s["prefix_matching"], s["copying"], thresholds)
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


def _manifest(path: str | Path) -> str:
    with Path(path).open() as f:
        rows = [
            [
                _e(r["file"]),
                _e(r["stage"]),
                _e(r["config_hash"]),
                _e(r["integrity"]),
                _e(f"{int(r['bytes']):,}"),
            ]
            for r in csv.DictReader(f, delimiter="\t")
        ]
    return _table(["file", "stage", "config hash", "integrity", "bytes"], rows)


def _versions() -> str:
    rows = [["python", _e(platform.python_version())], ["platform", _e(platform.platform())]]
    for name in PACKAGES:
        try:
            rows.append([_e(name), _e(metadata.version(name))])
        except metadata.PackageNotFoundError:
            rows.append([_e(name), "not installed"])
    return _table(["package", "version"], rows)


def _models(phase_paths: list[str]) -> str:
    """One sentence per run, grouped by model in the order given."""
    by_model: dict[str, list[str]] = {}
    for path in phase_paths:
        read = phases.read(path)
        by_model.setdefault(read["model"], []).append(model_sentence(read))
    return "<ul>" + "".join(f"<li>{_e(line)}</li>" for lines in by_model.values() for line in lines) + "</ul>"


def _overlap(path: str | Path) -> str:
    """The held-out contexts' n-grams found in training and repeated in their own context."""
    rows = "".join(
        f"<tr><td>{n}</td><td>{v['found_in_training']:.1%}</td><td>{v['repeated_in_context']:.1%}</td></tr>"
        for n, v in overlaps.read(path).items()
    )
    return (
        "<p>Held-out files are split from training by file, but where files copy one another the "
        "held-out text is in the training text anyway: a model predicts it from memory, and in-context "
        "learning buys little (docs/results.md, “A third corpus”). Of the evaluation contexts' "
        "n-grams:</p><table><tr><th>n (tokens)</th><th>found in the training text</th>"
        f"<th>seen earlier in the same context</th></tr>{rows}</table>"
    )


SECTIONS = (
    ("models", "Each model's phase change"),
    ("corpus", "Held-out text against the training text"),
    ("claims", "Claims"),
    ("figures", "Figures"),
    ("heads", "Every head at the last snapshot"),
    ("config", "Config"),
    ("versions", "Package versions"),
    ("costs", "Cost of each rule"),
    ("provenance", "Provenance"),
)


def build(
    claims: str | Path,
    figures: list[str],
    head_scores: list[str],
    phase: list[str],
    overlap: str | Path,
    captions: list[str],
    manifest: str | Path,
    report: str | Path,
    settings: dict[str, Any],
) -> None:
    """report.html from claims.json, the figures (each with the caption file of its name), the first
    replicate's head scores, every run's phase file, the corpus overlap and the manifest; `settings` is
    the whole config, shown on the page. Rule costs come from Snakemake's benchmark files under
    benchmarks/ beside the report."""
    config, experiment = settings, settings.get("experiment", "")
    benchmarks = Path(report).parent / "benchmarks"
    caption_files = {Path(c).stem: Path(c) for c in captions}
    document = json.loads(Path(claims).read_text())
    contents = "".join(f'<li><a href="#{key}">{_e(title)}</a></li>' for key, title in SECTIONS)
    heading = {key: f'<h2 id="{key}">{_e(title)}</h2>' for key, title in SECTIONS}
    sections = [
        f"<h1>inductionheads: experiment {_e(experiment)}</h1>",
        f"<p>Generated {_e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}. A re-run of <i>In-context Learning "
        "and Induction Heads</i> (Olsson et al., 2022): every number below is read from this "
        "experiment's stored results.</p>",
        _verdict(document),
        f"<nav><b>Contents</b><ol>{contents}</ol></nav>",
        heading["models"],
        "<p>The window is the stretch of training where the lasting ICL score fell fastest "
        "(docs/methods.md §7); it is a phase change when it holds enough of the ICL score, is short "
        "enough and has a plateau after it.</p>",
        _models(phase),
        heading["corpus"],
        _overlap(overlap),
        heading["claims"],
        _claims(document),
        heading["figures"],
        "<p>The all-model figures and the per-model figures show the first replicate; the replicate "
        "figures show every run. The per-model figures of the other replicates are under "
        "<code>figures/&lt;model&gt;/seed&lt;n&gt;/</code>.</p>",
        *(_figure(p, caption_files) for p in figures),
        heading["heads"],
        "<p>Bold rows are induction heads (prefix matching and copying above the thresholds of "
        "<code>analysis</code>). QK trace is defined for layers 2 and up.</p>",
        _head_table(head_scores, config["analysis"]),
        heading["config"],
        f"<pre>{_e(yaml.safe_dump(config, sort_keys=False))}</pre>",
        heading["versions"],
        _versions(),
        heading["costs"],
        "<p>From Snakemake's <code>benchmark:</code> files of the latest run of each job.</p>",
        _benchmarks(benchmarks),
        heading["provenance"],
        "<p>Every HDF5 output, verified when the manifest was written: the stage that wrote it, the hash "
        "of its settings and the fingerprint of its contents (<code>manifest.tsv</code>).</p>",
        _manifest(manifest),
    ]
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>inductionheads: '
        f"{_e(experiment)}</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
    with h5io.atomic_path(report) as tmp:
        tmp.write_text(page)
