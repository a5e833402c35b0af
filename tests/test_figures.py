"""Figures a reader can trust: labels say what is plotted, columns compare on shared axes, legends and
labels do not cover each other or the curves' grids clash (drawn from the smoke run's files)."""

import matplotlib
import pytest
import seaborn as sns
from conftest import smoke_config

from inductionheads import figures

RUNS = ["attn1", "attn2", "smeared1", "mlp2"]  # the smoke config's order


@pytest.fixture(scope="module")
def inputs(smoke_results):
    run = {m: smoke_results / "models" / m / "seed0" for m in RUNS}
    kinds = ("snapshots", "losses", "head_scores", "phase", "ablation")
    out = {k: [str(run[m] / f"{k}.h5") for m in RUNS] for k in kinds}
    out["pca"] = [str(smoke_results / "pca" / "replicate0.h5")]
    return out


@pytest.fixture(scope="module")
def settings():
    config = smoke_config()
    sns.set_theme(style=config["figures"]["style"])
    keys = ("induction_prefix_matching", "induction_copying", "previous_token")
    return {**config["figures"], **{k: config["analysis"][k] for k in keys}}


def _table(fig, n_rows, n_cols):
    """The table's panels [row][col] (the colour bars come after them in fig.axes)."""
    panels = fig.axes[: n_rows * n_cols]
    return [panels[r * n_cols : (r + 1) * n_cols] for r in range(n_rows)]


def test_icl_label_names_the_token_windows_the_score_averages(inputs, settings):
    ev = smoke_config()["evaluation"]
    early, late, w = ev["icl_early"], ev["icl_late"], ev["icl_window"]
    fig = figures.icl_score(inputs, settings)
    label = fig.axes[0].get_ylabel()
    assert f"tokens {late - w}–{late + w}" in label and f"tokens {early - w}–{early + w}" in label


ALL_MODELS = (
    "model_analysis_table",
    "training_loss",
    "icl_score",
    "icl_by_depth",
    "smeared_vs_vanilla",
    "copying_vs_prefix_matching",
    "pca_trajectories",
)


def test_an_experiment_of_smeared_key_models_only_draws_every_figure(inputs, settings):
    """No attention-only model to compare by depth: that panel says so, and no figure fails."""
    smeared = RUNS.index("smeared1")
    only = {k: (v if k == "pca" else v[smeared : smeared + 1]) for k, v in inputs.items()}
    for name in ALL_MODELS:
        fig = figures.FIGURES[name](only, settings)
        if name == "icl_by_depth":
            assert "no attention-only models" in fig.axes[0].texts[0].get_text()
        matplotlib.pyplot.close(fig)


def test_model_analysis_table_shares_axes_and_labels_do_not_overlap(inputs, settings):
    fig = figures.model_analysis_table(inputs, settings)
    n_rows = len(figures.TABLE_ROWS) + len(figures.ABLATION_ROWS)
    table = _table(fig, n_rows, len(RUNS))
    for row in table[1:]:  # every row over tokens seen: one x range for all columns
        assert len({ax.get_xlim() for ax in row}) == 1
    # the ICL score and both ablation rows: one y range per row over the panels with curves (a
    # projection panel without a phase change has none)
    icl, projection, delta_icl = (
        table[figures.TABLE_ROWS.index("ICL score")],
        *table[len(figures.TABLE_ROWS) :],
    )
    for row in (icl, delta_icl):
        assert len({ax.get_ylim() for ax in row}) == 1
    assert len({ax.get_ylim() for ax in projection if ax.lines}) <= 1
    prefix_row = table[figures.TABLE_ROWS.index("prefix matching\nper head")]
    assert all(ax.get_legend() is not None for ax in prefix_row)  # which colour is which layer
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    names = (*figures.TABLE_ROWS, *figures.ABLATION_ROWS)
    labels = [t for row in table for t in row[0].texts if t.get_text() in names]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert len(boxes) == n_rows
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)
        assert a.x0 >= 0 and a.y0 >= 0  # inside the figure, not clipped


def test_smeared_vs_vanilla_has_one_legend_below_and_no_twin_grid(inputs, settings):
    fig = figures.smeared_vs_vanilla(inputs, settings)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    twins = [ax for ax in fig.axes if ax.get_ylabel() == "max prefix matching"]
    assert twins
    for twin in twins:
        assert not any(line.get_visible() for line in twin.get_ygridlines())
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("name, n_runs", [("icl_by_replicate", 2), ("model_analysis_table", 4)])
def test_a_figure_shows_its_whole_title_above_the_panels(inputs, settings, name, n_runs):
    some = {kind: files[:n_runs] for kind, files in inputs.items() if kind != "pca"}
    some["pca"] = inputs["pca"]
    fig = getattr(figures, name)(some, settings)
    figures.lay_out(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle  # the title as drawn (matplotlib has no public getter for the Text)
    box = title.get_window_extent(renderer)
    if n_runs == 2:
        assert "\n" in title.get_text()  # one line would be wider than two panels
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    for ax in fig.axes:
        if ax.get_visible():
            assert not box.overlaps(ax.get_tightbbox(renderer))
    matplotlib.pyplot.close("all")
