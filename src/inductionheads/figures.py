"""Seaborn figures of the paper's plots, drawn from the stored HDF5 results only.

Each figure is one function `name(inputs, settings) -> Figure`, where `inputs` maps a result kind
(snapshots, losses, head_scores, phase, ablation: one file per run, in config order; pca: one file) to
its files; every figure names its models from the files themselves. `draw` renders a set of figures in
one process, each into the file its name gives. Phase-change windows are shaded wherever a model has one.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from . import h5io, head_classes, pca, phase, readers  # noqa: E402
from .icl import dloss_dlog_index  # noqa: E402

Inputs = dict[str, list[str]]
WINDOW_COLOUR = "#f4a261"


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def _shade_window(ax, window: dict | None, label: bool = False) -> None:
    """Shade a phase change (a window that passed the thresholds); outline a window that did not."""
    if window is None:
        return
    span = (window["start_tokens"], window["end_tokens"])
    if window["has_phase_change"]:
        ax.axvspan(*span, color=WINDOW_COLOUR, alpha=0.25, lw=0, label="phase change" if label else None)
    else:
        ax.axvspan(*span, fill=False, hatch="//", edgecolor="grey", alpha=0.4, lw=0)


def _windows(inputs: Inputs) -> dict[tuple[str, int], dict | None]:
    """Each run's window, by (model, seed)."""
    out = {}
    for path in inputs.get("phase", []):
        read = phase.read(path)
        out[read["model"], read["seed"]] = read["window"]
    return out


def training_loss(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Training loss (moving average) over tokens seen, all models in one plot."""
    frames = []
    for path in inputs["snapshots"]:
        run = readers.training(path)
        loss, per_step, name = run.train_loss, run.tokens_per_step, run.spec["name"]
        if not len(loss):  # an imported checkpoint series carries no training-loss curve
            continue
        w = settings["smoothing_window"]
        y = _smooth(loss, w)
        step = np.arange(len(y)) + (w if len(loss) >= w else 1)
        frames.append(
            pd.DataFrame({"tokens seen": step * per_step, "training loss (nats/token)": y, "model": name})
        )
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if not frames:
        ax.text(0.5, 0.5, "no model of this experiment was trained here", ha="center", transform=ax.transAxes)
        return fig
    sns.lineplot(data=pd.concat(frames), x="tokens seen", y="training loss (nats/token)", hue="model", ax=ax)
    ax.set_title(f"Loss over training (moving average of {settings['smoothing_window']} steps)")
    return fig


@dataclass
class MeasuredRun:
    """One training run (model, seed) as the analysis figures draw it: its stored measurements."""

    name: str
    family: str
    n_layers: int
    tokens_seen: np.ndarray
    icl: np.ndarray
    icl_se: np.ndarray
    mean_loss: np.ndarray  # [snapshot, context index]
    early: int
    late: int
    icl_window: int
    window: dict | None
    heads: dict[str, np.ndarray] | None = None  # score name -> [snapshot, layer, head]
    ablation: dict[str, Any] | None = None  # see _ablation
    train_loss: np.ndarray | None = None
    tokens_per_step: int = 0
    seed: int = 0


def _measured_runs(inputs: Inputs) -> list[MeasuredRun]:
    """One MeasuredRun per losses file, with its phase, heads and snapshot files when they are given."""
    windows = _windows(inputs)
    out = []
    for i, path in enumerate(inputs["losses"]):
        m = readers.losses(path)
        c = MeasuredRun(
            m.model, "", 0, m.tokens_seen, m.icl_score, m.icl_score_se, m.mean_loss, m.icl_early,
            m.icl_late, m.icl_window, windows.get((m.model, m.seed)), seed=m.seed,
        )  # fmt: skip
        if inputs.get("head_scores"):
            c.heads = readers.head_scores(inputs["head_scores"][i]).scores
        if inputs.get("ablation"):
            c.ablation = _ablation(inputs["ablation"][i])
        if inputs.get("snapshots"):
            run = readers.training(inputs["snapshots"][i])
            c.family, c.n_layers = run.spec["family"], run.spec["n_layers"]
            c.train_loss, c.tokens_per_step = run.train_loss, run.tokens_per_step
        out.append(c)
    return out


def _ablation(path: str) -> dict[str, Any]:
    result = readers.ablation(path)
    out: dict[str, Any] = {"tokens_seen": result.tokens_seen, "clean_icl_score": result.clean_icl_score}
    for method, effects in result.effects.items():
        out.update({f"{method}/{k}": v for k, v in effects.items()})
    out["projection_evaluable"] = result.projection_evaluable
    return out


HEAD_CLASS_COLOURS = {"induction": "#d62828", "previous-token": "#1d4ed8", "other": "#9ca3af"}


def _ablation_lines(ax, c: MeasuredRun, key: str, settings: dict[str, Any], legend: bool = True) -> None:
    """One line per head of an ablation result over training, coloured by the head's class at the
    last snapshot (induction / previous-token / other)."""
    values = c.ablation[key]
    if np.isnan(values).all():
        ax.text(
            0.5,
            0.5,
            "no phase change:\nno before-and-after vector",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return
    classes = head_classes.labels(c.heads, settings)
    seen = set()
    for layer, head in np.ndindex(classes.shape):
        kind = classes[layer, head]
        ax.plot(
            c.ablation["tokens_seen"],
            values[:, layer, head],
            color=HEAD_CLASS_COLOURS[kind],
            lw=1.8 if kind != "other" else 0.9,
            marker=".",
            ms=3,
            label=kind if kind not in seen else None,
        )
        seen.add(kind)
    ax.axhline(0, color="grey", lw=0.8)
    if legend:
        ax.legend(fontsize="x-small", title="head at last snapshot", title_fontsize="x-small")


def _ablation_figure(inputs: Inputs, settings: dict[str, Any], quantity: str, ylabel: str, title: str):
    (c,) = _measured_runs(inputs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, method in zip(axes, ("pattern_preserving", "full"), strict=True):
        _ablation_lines(ax, c, f"{method}/{quantity}", settings)
        _shade_window(ax, c.window)
        ax.set_xlabel("tokens seen")
        ax.set_title(method.replace("_", "-") + " ablation")
    axes[0].set_ylabel(ylabel)
    fig.suptitle(f"{c.name}: {title}")
    return fig


def ablation_icl(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Ablation attribution to the ICL score: delta ICL of removing each head, over training."""
    return _ablation_figure(
        inputs,
        settings,
        "delta_icl_score",
        "ICL(ablated) - ICL(clean) (nats)",
        "ablation attribution to the ICL score (positive: the head made in-context learning)",
    )


def ablation_before_after(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Each head's ablation effect projected on the before-and-after vector of the phase change."""
    return _ablation_figure(
        inputs,
        settings,
        "before_after_projection",
        "delta loss . before-and-after vector (nats)",
        "ablation projected on the before-and-after vector (negative: removal undoes the phase change)",
    )


def _icl_panel(ax, c: MeasuredRun, color, label: str | None = None) -> None:
    ax.plot(c.tokens_seen, c.icl, color=color, label=label)
    ax.fill_between(c.tokens_seen, c.icl - c.icl_se, c.icl + c.icl_se, color=color, alpha=0.25, linewidth=0)
    ax.axhline(0, color="grey", lw=0.8)


def icl_score(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """ICL score (late-token loss minus early-token loss, as `icl_definition`) over training, ± 1 s.e."""
    curves = _measured_runs(inputs)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for color, c in zip(sns.color_palette(n_colors=len(curves)), curves, strict=True):
        _icl_panel(ax, c, color, c.name)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel(f"ICL score: {icl_definition(curves[0])} (nats)")
    ax.set_title("In-context learning score over training (band: ±1 s.e.)")
    ax.legend(title="model")
    return fig


def icl_definition(c: MeasuredRun) -> str:
    """The ICL score as the losses file defines it: single tokens, or means over token windows."""
    if c.icl_window == 0:
        return f"L(token {c.late}) − L(token {c.early})"
    w = c.icl_window
    return f"mean L(tokens {c.late - w}–{c.late + w}) − mean L(tokens {c.early - w}–{c.early + w})"


def icl_by_depth(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """ICL score of the attention-only models, by depth, phase changes shaded in each model's colour."""
    curves = sorted(
        (c for c in _measured_runs(inputs) if c.family == "attention-only"), key=lambda c: c.n_layers
    )
    fig, ax = plt.subplots(figsize=(7, 4.2))
    palette = sns.color_palette("viridis", n_colors=len(curves)) if curves else []
    for color, c in zip(palette, curves, strict=True):
        _icl_panel(ax, c, color, f"{c.name} ({c.n_layers} layer{'s' if c.n_layers > 1 else ''})")
        if c.window and c.window["has_phase_change"]:
            ax.axvspan(c.window["start_tokens"], c.window["end_tokens"], color=color, alpha=0.12, lw=0)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("ICL score (nats)")
    ax.set_title("ICL score of the attention-only models by depth\n(shaded: each model's phase change)")
    if curves:
        ax.legend(title="model")
    else:
        ax.text(0.5, 0.5, "no attention-only models in this experiment", ha="center", transform=ax.transAxes)
    return fig


def smeared_vs_vanilla(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """2 x 2 grid: rows 1 and 2 layers, columns attention-only and smeared-key; ICL score with the
    phase change shaded and the largest prefix-matching score on a second axis (one legend below)."""
    curves = _measured_runs(inputs)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, sharey=True)
    handles = {}
    for row, layers in enumerate((1, 2)):
        for col, family in enumerate(("attention-only", "smeared-key")):
            ax = axes[row, col]
            found = [c for c in curves if c.family == family and c.n_layers == layers]
            if not found:
                ax.set_title(f"{family}, {layers} layer{'s' if layers > 1 else ''}")
                ax.text(0.5, 0.5, "no such model in this experiment", ha="center", transform=ax.transAxes)
                continue
            c = found[0]
            ax.set_title(f"{c.name}: {family}, {layers} layer{'s' if layers > 1 else ''}")
            _icl_panel(ax, c, "C0", "ICL score (left axis; band ±1 s.e.)")
            _shade_window(ax, c.window, label=True)
            if c.heads is not None:
                twin = ax.twinx()
                twin.grid(False)  # the twin's ticks would draw a second, clashing grid
                twin.plot(
                    c.tokens_seen,
                    c.heads["prefix_matching"].max(axis=(1, 2)),
                    color="C3",
                    lw=1,
                    label="largest prefix matching of any head (right axis)",
                )
                twin.set_ylim(0, 1)
                twin.set_ylabel("max prefix matching", color="C3")
                handles.update(zip(*reversed(twin.get_legend_handles_labels()), strict=True))
            handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    for ax in axes[1]:
        ax.set_xlabel("tokens seen")
    for ax in axes[:, 0]:
        ax.set_ylabel("ICL score (nats)")
    fig.suptitle("Smeared keys vs vanilla attention")
    if handles:
        _legend_below(fig, list(handles.values()), list(handles))
    return fig


def _legend_below(fig: plt.Figure, handles: list, labels: list[str]) -> None:
    """One legend for the whole figure, centred below its panels, in as many columns as fit its width
    (lay_out makes room for its rows)."""
    renderer = fig.canvas.get_renderer()
    for ncol in range(len(labels), 0, -1):
        legend = fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize="small")
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return
        legend.remove()


def copying_vs_prefix_matching(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Every head of every model at its last snapshot: copying against prefix matching, induction
    heads (both scores above their thresholds, the dashed lines) marked."""
    rows = []
    for c in _measured_runs(inputs):
        classes = head_classes.labels(c.heads, settings)
        pm, cp = c.heads["prefix_matching"][-1], c.heads["copying"][-1]
        for layer, head in np.ndindex(pm.shape):
            rows.append(
                {
                    "prefix matching": pm[layer, head],
                    "copying": cp[layer, head],
                    "model": c.name,
                    "head": "induction" if classes[layer, head] == "induction" else "other",
                }
            )
    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.scatterplot(
        data=frame,
        x="prefix matching",
        y="copying",
        hue="model",
        style="head",
        markers={"induction": "*", "other": "o"},
        s=90,
        ax=ax,
    )
    ax.axvline(settings["induction_prefix_matching"], color="grey", ls="--", lw=0.8)
    ax.axhline(settings["induction_copying"], color="grey", ls="--", lw=0.8)
    ax.set_xlim(-0.02, 1)
    ax.set_title("Heads at the last snapshot: copying vs prefix matching")
    # beside the axes: the strongest induction heads sit in the upper right, where a legend would go
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def pca_trajectories(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Each model's path through the joint PC1-PC2 plane of per-token-loss vectors; the part inside
    its phase-change window drawn thick, the first snapshot marked with a circle."""
    (path,) = inputs["pca"]
    projected = pca.read(path)
    explained = projected.pop(None)["explained"]
    windows = {name: w for (name, _), w in _windows(inputs).items()}  # one replicate: one run per model
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for color, (name, p) in zip(sns.color_palette(n_colors=len(projected)), projected.items(), strict=True):
        xy = p["scores"][:, :2]
        ax.plot(*xy.T, color=color, lw=1, marker=".", ms=3, label=name)
        ax.plot(*xy[0], "o", color=color, mfc="none")
        w = windows.get(name)
        if w and w["has_phase_change"]:
            ax.plot(*xy[w["start"] : w["end"] + 1].T, color=color, lw=4, alpha=0.6, solid_capstyle="round")
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    ax.set_title("Per-token-loss PCA over training (thick: phase-change window)")
    ax.legend(title="model")
    return fig


def _heatmap(ax, fig, x, index, values, cmap, label, centred=False, bound=None):
    """values [snapshot, index] over x and a log-scale index; `bound` fixes the colour range (the largest
    |value| when centred, else (low, high)) so that panels side by side share one scale."""
    if centred:
        b = bound if bound is not None else max(float(np.abs(values).max()), 1e-6)
        norm = TwoSlopeNorm(0, -b, b)
    else:
        low, high = bound if bound is not None else (None, None)
        norm = matplotlib.colors.Normalize(low, high)
    mesh = ax.pcolormesh(x, index, values.T, shading="nearest", cmap=cmap, norm=norm)
    ax.set_yscale("log")
    fig.colorbar(mesh, ax=ax, label=label)


def _robust_bound(values: list[np.ndarray], quantile: float = 0.98) -> float:
    """A centred colour scale's bound: the `quantile` of |value| over every panel, so that a few
    extreme cells (short contexts, the first snapshots) do not wash out the rest."""
    return max(float(np.quantile(np.abs(np.concatenate([v.ravel() for v in values])), quantile)), 1e-6)


def _head_lines(ax, x, scores, ylabel, legend: bool = False):
    """One line per head, coloured by layer (viridis, first layer dark); NaN layers are skipped."""
    S, L, H = scores.shape
    colours = sns.color_palette("viridis", n_colors=L)
    for layer in range(L):
        for h in range(H):
            if not np.isnan(scores[:, layer, h]).all():
                ax.plot(
                    x,
                    scores[:, layer, h],
                    color=colours[layer],
                    lw=1,
                    label=f"layer {layer + 1}" if h == 0 else None,
                )
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize="x-small", title="one line per head", title_fontsize="x-small", loc="best")


def _share_y(axes) -> None:
    """Give `axes` the union of their y ranges."""
    if axes:
        limits = np.array([ax.get_ylim() for ax in axes])
        for ax in axes:
            ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())


# the table's rows, as labelled on its left edge
TABLE_ROWS = (
    "PCA of\nper-token losses",
    "loss over\ntraining",
    "loss by\ncontext index",
    "dLoss / d ln(i)",
    "ICL score",
    "prefix matching\nper head",
    "QK trace\nper head",
)
ABLATION_ROWS = ("ablation projected on\nbefore-and-after", "ablation effect\non ICL score")


def model_analysis_table(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """The paper's Model Analysis Table: one column per model, one row per measurement over training,
    phase-change windows shaded. Every column shares one tokens axis, and each row one y range or
    colour scale, so that columns compare at a glance."""
    curves = _measured_runs(inputs)
    projected = pca.read(inputs["pca"][0])
    projected.pop(None)
    rows = list(TABLE_ROWS)
    # ablation rows when every model has ablation results (no empty panels)
    with_ablation = all(c.ablation is not None for c in curves)
    if with_ablation:
        rows += ABLATION_ROWS
    n = len(curves)
    fig, axes = plt.subplots(len(rows), n, figsize=(3.6 * n + 1.2, 2.5 * len(rows)), squeeze=False)
    tokens_max = max(float(c.tokens_seen[-1]) for c in curves)
    dloss = [dloss_dlog_index(c.mean_loss) for c in curves]
    dloss_bound = _robust_bound([d for _, d in dloss])
    loss_range = (
        min(float(c.mean_loss.min()) for c in curves),
        max(float(c.mean_loss.max()) for c in curves),
    )
    for col, (c, (centres, dl)) in enumerate(zip(curves, dloss, strict=True)):
        column = axes[:, col]
        column[0].set_title(f"{c.name}\n{c.family}, {c.n_layers} layer{'s' if c.n_layers > 1 else ''}")
        # PCA: this model over the others (grey)
        for other, p in projected.items():
            if other != c.name:
                column[0].plot(*p["scores"][:, :2].T, color="lightgrey", lw=0.8)
        xy = projected[c.name]["scores"][:, :2]
        column[0].plot(*xy.T, color="C0", lw=1.2)
        if c.window and c.window["has_phase_change"]:
            column[0].plot(*xy[c.window["start"] : c.window["end"] + 1].T, color=WINDOW_COLOUR, lw=4)
        column[0].set_xlabel("PC1")
        column[0].set_ylabel("PC2")
        # training loss
        if len(c.train_loss):
            w = settings["smoothing_window"]
            y = _smooth(c.train_loss, w)
            column[1].plot((np.arange(len(y)) + min(w, len(c.train_loss))) * c.tokens_per_step, y, color="C0")
            column[1].set_ylabel("training loss")
        else:  # imported checkpoints: the held-out loss at each snapshot instead
            column[1].plot(c.tokens_seen, c.mean_loss.mean(1), color="C0", marker=".")
            column[1].set_ylabel("held-out loss")
        index = np.arange(1, c.mean_loss.shape[1] + 1)
        _heatmap(column[2], fig, c.tokens_seen, index, c.mean_loss, "viridis", "nats", bound=loss_range)
        column[2].set_ylabel("context index")
        _heatmap(
            column[3], fig, c.tokens_seen, centres, dl, "RdBu_r", "nats", centred=True, bound=dloss_bound
        )
        column[3].set_ylabel("context index")
        _icl_panel(column[4], c, "C0")
        column[4].set_ylabel("ICL score (nats)")
        _head_lines(column[5], c.tokens_seen, c.heads["prefix_matching"], "prefix matching", legend=True)
        column[5].set_ylim(0, 1)
        if c.n_layers > 1:
            _head_lines(column[6], c.tokens_seen, c.heads["qk_trace"], "QK trace", legend=True)
            column[6].set_ylim(-1, 1)
        else:
            column[6].text(0.5, 0.5, "1 layer: no K-composition", ha="center", transform=column[6].transAxes)
            column[6].set_yticks([])
        if c.ablation is not None:
            _ablation_lines(
                column[7], c, "pattern_preserving/before_after_projection", settings, legend=False
            )
            column[7].set_ylabel("projection (nats)")
            _ablation_lines(column[8], c, "pattern_preserving/delta_icl_score", settings, legend=col == 0)
            column[8].set_ylabel("delta ICL (nats)")
        for ax in column[1:]:
            _shade_window(ax, c.window)
            ax.set_xlim(0, tokens_max)
        column[-1].set_xlabel("tokens seen")
    # the ICL and ablation rows on one y range each: a column's noise must not look like another's effect
    for row in [4, 7, 8] if with_ablation else [4]:
        _share_y([ax for ax in axes[row] if ax.lines])
    for ax, label in zip(axes[:, 0], rows, strict=True):
        ax.annotate(
            label,
            (-0.5, 0.5),
            xycoords="axes fraction",
            rotation=90,
            va="center",
            ha="center",
            fontweight="bold",
            fontsize="medium",
        )
    fig.suptitle("Model Analysis Table (shaded: phase-change window; hatched: a window too small to be one)")
    return fig


def _loss_heatmap(inputs: Inputs, title: str, label: str, by_index, cmap: str, centred=False) -> plt.Figure:
    """Heatmap over tokens seen and context index (log scale) of `by_index(mean_loss)`, which returns
    (context indices, values [snapshot, index]); `centred` puts zero at the middle of a diverging map."""
    (path,) = inputs["losses"]
    m = readers.losses(path)
    mean, x, name = m.mean_loss, m.tokens_seen, m.model
    index, values = by_index(mean)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _heatmap(ax, fig, x, index, values, cmap, label, centred, _robust_bound([values]) if centred else None)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("context index i")
    ax.set_title(f"{name}: {title}")
    return fig


def loss_heatmap(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Loss of token i (mean over held-out examples) by snapshot and context index."""
    return _loss_heatmap(
        inputs,
        "per-token loss by context index",
        "loss (nats)",
        lambda mean: (np.arange(1, mean.shape[1] + 1), mean),
        cmap="viridis",
    )


def dloss_heatmap(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """dLoss/d ln(i): how much each doubling of context lowers the loss, by snapshot."""
    return _loss_heatmap(
        inputs,
        "derivative of loss by log context index",
        "dLoss / d ln(i) (nats)",
        dloss_dlog_index,
        cmap="RdBu_r",
        centred=True,
    )


def prefix_matching(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Prefix-matching score of every head over training, coloured by layer."""
    (path,) = inputs["head_scores"]
    run = readers.head_scores(path)
    scores, x, name = run.scores["prefix_matching"], run.tokens_seen, run.model
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _head_lines(ax, x, scores, "prefix matching")
    ax.set_ylim(0, 1)
    ax.set_xlabel("tokens seen")
    ax.legend(title="one line per head")
    ax.set_title(f"{name}: prefix-matching score of each head")
    return fig


def _runs(inputs: Inputs) -> dict[str, list[tuple[int, MeasuredRun]]]:
    """Every run's curves grouped by model (in order of appearance): {model: [(seed, curves), ...]}."""
    by_model: dict[str, list[tuple[int, MeasuredRun]]] = {}
    for c in _measured_runs(inputs):
        by_model.setdefault(c.name, []).append((c.seed, c))
    return by_model


def _by_replicate(inputs: Inputs, ylabel: str, title: str, values, y_range=None) -> plt.Figure:
    """One panel per model, one line per replicate (`values(curves)` over tokens seen, on `y_range` or
    the data's range), each run's window drawn as a bar of its colour in a band below the curves
    (solid: a phase change; hatched: a window that is not one). A seed has one colour in every panel,
    named in one legend below them: a legend inside a panel covers curves or bars."""
    by_model = _runs(inputs)
    seeds = sorted({seed for runs in by_model.values() for seed, _ in runs})
    colour_of = dict(zip(seeds, sns.color_palette("tab10", n_colors=len(seeds)), strict=True))
    n = len(by_model)
    cols = min(n, 3)
    rows = -(-n // cols)
    # room for the title and the legend: one panel alone is wider than its share of a grid
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6 * cols, 7.0), 3.4 * rows + 0.8), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, runs) in zip(axes.flat, by_model.items(), strict=False):  # spare panels hidden
        curves = [values(c) for _, c in runs]
        low, high = y_range or (np.nanmin(np.concatenate(curves)), np.nanmax(np.concatenate(curves)))
        # the bottom `band` of the panel holds the bars, one row per replicate, below every curve
        band = 0.03 + 0.035 * len(runs)
        pad = 0.05 * (high - low)
        ax.set_ylim(low - pad - band / (1 - band) * (high - low + 2 * pad), high + pad)
        ticks = MaxNLocator(5).tick_values(low, high)  # none in the band: it has no values
        ax.set_yticks(ticks[(ticks >= low - pad) & (ticks <= high + pad)])
        for k, ((seed, c), y) in enumerate(zip(runs, curves, strict=True)):
            colour = colour_of[seed]
            ax.plot(c.tokens_seen, y, color=colour, lw=1.2, label=f"seed {seed}")
            w = c.window
            if w is not None:
                y0 = 0.015 + 0.035 * k  # in axes coordinates, inside the band
                ax.axvspan(
                    w["start_tokens"],
                    w["end_tokens"],
                    ymin=y0,
                    ymax=y0 + 0.025,
                    color=colour,
                    alpha=0.9 if w["has_phase_change"] else 0.35,
                    hatch=None if w["has_phase_change"] else "///",
                    lw=0,
                )
        phase_changes = sum(bool(c.window and c.window["has_phase_change"]) for _, c in runs)
        ax.set_title(f"{name}: phase change in {phase_changes} of {len(runs)}", fontsize="medium")
        ax.set_xlabel("tokens seen")
        ax.set_ylabel(ylabel)
    lines = [Line2D([], [], color=colour_of[seed], lw=1.2) for seed in seeds]
    _legend_below(fig, lines, [f"seed {seed}" for seed in seeds])
    fig.suptitle(title)
    return fig


def icl_by_replicate(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """ICL score of every replicate of every model, each run's phase-change window as a bar."""
    return _by_replicate(
        inputs,
        "ICL score (nats)",
        "ICL score of every replicate (bars: each run's window; solid = phase change, hatched = not one)",
        lambda c: c.icl,
    )


def top_head(c: MeasuredRun) -> tuple[int, int]:
    """(layer, head) of the head with the highest prefix matching at the last snapshot."""
    final = c.heads["prefix_matching"][-1]
    return tuple(int(i) for i in np.unravel_index(np.nanargmax(final), final.shape))


def prefix_matching_by_replicate(inputs: Inputs, settings: dict[str, Any]) -> plt.Figure:
    """Prefix matching of each run's top head (highest at the last snapshot) over training, every
    replicate of every model, with each run's window as a bar."""
    return _by_replicate(
        inputs,
        "top head's prefix matching",
        "Prefix matching of each run's top head (bars: each run's window; solid = phase change)",
        lambda c: c.heads["prefix_matching"][(slice(None), *top_head(c))],
        y_range=(0.0, 1.0),
    )


FIGURES = {
    f.__name__: f
    for f in (
        icl_by_replicate,
        prefix_matching_by_replicate,
        training_loss,
        icl_score,
        loss_heatmap,
        dloss_heatmap,
        prefix_matching,
        icl_by_depth,
        smeared_vs_vanilla,
        copying_vs_prefix_matching,
        pca_trajectories,
        model_analysis_table,
        ablation_icl,
        ablation_before_after,
    )
}


def wrap_suptitle(fig: plt.Figure) -> Text | None:
    """Wrap the figure's title to its width (a figure of one or two panels is narrower than its title);
    the title's Text, or None."""
    text = fig.get_suptitle()
    if not text:
        return None
    title = fig.suptitle(text)
    room = 0.96 * fig.bbox.width
    width = title.get_window_extent(fig.canvas.get_renderer()).width
    if width > room:
        title = fig.suptitle(textwrap.fill(text, max(20, int(len(text) * room / width))))
    return title


def lay_out(fig: plt.Figure) -> None:
    """Panels packed below the (wrapped) title, which tight_layout does not make room for, and above a
    figure-wide legend (as many rows as it has)."""
    title = wrap_suptitle(fig)
    renderer = fig.canvas.get_renderer()
    top = 1.0
    if title is not None:
        height = title.get_window_extent(renderer).height / fig.bbox.height
        top = title.get_position()[1] - height - 0.005
    legend_tops = [legend.get_window_extent(renderer).y1 / fig.bbox.height for legend in fig.legends]
    fig.tight_layout(rect=(0, max(legend_tops) + 0.01 if legend_tops else 0, 1, top))


def draw(
    figures: list[str],
    settings: dict[str, Any],
    snapshots: list[str] | None = None,
    losses: list[str] | None = None,
    head_scores: list[str] | None = None,
    phase: list[str] | None = None,
    ablation: list[str] | None = None,
    pca: list[str] | None = None,
) -> None:
    """Render each of `figures` (paths <dir>/<figure name>.png) from the result files given."""
    paths = [Path(p) for p in figures]
    unknown = sorted({p.stem for p in paths} - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)} (have: {', '.join(FIGURES)})")
    given = {
        "snapshots": snapshots,
        "losses": losses,
        "head_scores": head_scores,
        "phase": phase,
        "ablation": ablation,
        "pca": pca,
    }
    inputs = {kind: files for kind, files in given.items() if files}
    sns.set_theme(style=settings["style"])
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig = FIGURES[path.stem](inputs, settings)
        lay_out(fig)
        with h5io.atomic_path(path, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, dpi=settings["dpi"])
        plt.close(fig)
