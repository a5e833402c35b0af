"""Seaborn figures of the paper's core plots, drawn from the stored HDF5 results only.

Each figure is one function `name(inputs, settings) -> Figure`, where `inputs` are the result files
it draws from (snapshot, loss or head files, one per model: `FIGURE_INPUT`); every figure names its
models from the files themselves. `draw` renders a set of figures in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from . import h5io  # noqa: E402
from .losses import dloss_dlog_index  # noqa: E402


def _model_name(f) -> str:
    if "spec" in f.attrs:
        return h5io.read_json_attr(f, "spec")["name"]
    return str(f.attrs["model"])


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def training_loss(inputs: list[str], settings: dict[str, Any]) -> plt.Figure:
    """Training loss (moving average) over tokens seen, all models in one plot."""
    frames = []
    for path in inputs:
        with h5io.open_input(path, "train") as f:
            loss = h5io.read(f, "train_loss")
            per_step = int(f.attrs["tokens_per_step"])
            name = _model_name(f)
        w = settings["smoothing_window"]
        y = _smooth(loss, w)
        step = np.arange(len(y)) + (w if len(loss) >= w else 1)
        frames.append(
            pd.DataFrame({"tokens seen": step * per_step, "training loss (nats/token)": y, "model": name})
        )
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.lineplot(data=pd.concat(frames), x="tokens seen", y="training loss (nats/token)", hue="model", ax=ax)
    ax.set_title(f"Loss over training (moving average of {settings['smoothing_window']} steps)")
    return fig


def icl_score(inputs: list[str], settings: dict[str, Any]) -> plt.Figure:
    """ICL score (loss at token late minus loss at token early) over training, ± 1 standard error."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    palette = sns.color_palette(n_colors=len(inputs))
    for color, path in zip(palette, inputs, strict=True):
        with h5io.open_input(path, "losses") as f:
            x, y, se = (h5io.read(f, k) for k in ("tokens_seen", "icl_score", "icl_score_se"))
            early, late = int(f.attrs["icl_early"]), int(f.attrs["icl_late"])
            name = _model_name(f)
        ax.plot(x, y, color=color, label=name)
        ax.fill_between(x, y - se, y + se, color=color, alpha=0.25, linewidth=0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel(f"ICL score: L(token {late}) - L(token {early}) (nats)")
    ax.set_title("In-context learning score over training (band: ±1 s.e.)")
    ax.legend(title="model")
    return fig


def _loss_heatmap(
    path: str, title: str, label: str, by_index, cmap: str, centred: bool = False
) -> plt.Figure:
    """Heatmap over tokens seen and context index (log scale) of `by_index(mean_loss)`, which returns
    (context indices, values [snapshot, index]); `centred` puts zero at the middle of a diverging map."""
    with h5io.open_input(path, "losses") as f:
        mean, x, name = h5io.read(f, "mean_loss"), h5io.read(f, "tokens_seen"), _model_name(f)
    index, values = by_index(mean)
    bound = max(float(np.abs(values).max()), 1e-6)
    norm = TwoSlopeNorm(0, -bound, bound) if centred else None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    mesh = ax.pcolormesh(x, index, values.T, shading="nearest", cmap=cmap, norm=norm)
    ax.set_yscale("log")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("context index i")
    fig.colorbar(mesh, ax=ax, label=label)
    ax.set_title(f"{name}: {title}")
    return fig


def loss_heatmap(inputs: list[str], settings: dict[str, Any]) -> plt.Figure:
    """Loss of token i (mean over held-out examples) by snapshot and context index."""
    (path,) = inputs
    return _loss_heatmap(
        path,
        "per-token loss by context index",
        "loss (nats)",
        lambda mean: (np.arange(1, mean.shape[1] + 1), mean),
        cmap="viridis",
    )


def dloss_heatmap(inputs: list[str], settings: dict[str, Any]) -> plt.Figure:
    """dLoss/d ln(i): how much each doubling of context lowers the loss, by snapshot."""
    (path,) = inputs
    return _loss_heatmap(
        path,
        "derivative of loss by log context index",
        "dLoss / d ln(i) (nats)",
        dloss_dlog_index,
        cmap="RdBu_r",
        centred=True,
    )


def prefix_matching(inputs: list[str], settings: dict[str, Any]) -> plt.Figure:
    """Prefix-matching score of every head over training, coloured by layer."""
    (path,) = inputs
    with h5io.open_input(path, "heads") as f:
        scores, x = h5io.read(f, "prefix_matching"), h5io.read(f, "tokens_seen")
        name = _model_name(f)
    S, L, H = scores.shape
    frame = pd.DataFrame(
        {
            "tokens seen": np.repeat(x, L * H),
            "prefix matching": scores.reshape(-1),
            "layer": np.tile(np.repeat(np.arange(1, L + 1), H), S),
            "head": np.tile([f"{lay}.{h}" for lay in range(1, L + 1) for h in range(H)], S),
        }
    )
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.lineplot(
        data=frame,
        x="tokens seen",
        y="prefix matching",
        hue="layer",
        units="head",
        estimator=None,
        palette="viridis",
        ax=ax,
        legend="full",
    )
    ax.set_ylim(0, 1)
    ax.set_title(f"{name}: prefix-matching score of each head (one line per head)")
    return fig


FIGURES = {f.__name__: f for f in (training_loss, icl_score, loss_heatmap, dloss_heatmap, prefix_matching)}
# the result kind each figure reads, one file per model
FIGURE_INPUT = {
    "training_loss": "snapshots",
    "icl_score": "losses",
    "loss_heatmap": "losses",
    "dloss_heatmap": "losses",
    "prefix_matching": "heads",
}


def draw(
    names: list[str], inputs: dict[str, list[str]], out_dir: str | Path, settings: dict[str, Any]
) -> None:
    """Render `names` into `out_dir`/<name>.png; `inputs` maps a result kind to its files."""
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)} (have: {', '.join(FIGURES)})")
    sns.set_theme(style=settings["style"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        fig = FIGURES[name](inputs[FIGURE_INPUT[name]], settings)
        fig.tight_layout()
        tmp = out_dir / f"{name}.tmp.png"
        fig.savefig(tmp, dpi=settings["dpi"])
        plt.close(fig)
        tmp.replace(out_dir / f"{name}.png")
