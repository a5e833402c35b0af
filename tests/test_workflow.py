"""The workflow end to end through Snakemake's CLI: outputs, metadata, and only stale outputs rebuild."""

import json

import h5py
import numpy as np
import pytest
from conftest import planned, planned_jobs, smoke_config, snakemake, write_config

from inductionheads import figures, phase
from inductionheads.phase import STATUSES

MODELS = ["attn1", "attn2", "mlp2", "smeared1"]
FIGURE_RULES = {"figures_all_models", "figures_replicates", "figures_run"}
CLAIM_STATUSES = {"pass", "fail", "not-evaluable"}


def test_smoke_run_writes_every_output_with_metadata(smoke_results):
    config = smoke_config()
    # --configfile replaces config.yaml: none of the default experiment's models join in
    assert sorted(p.name for p in (smoke_results / "models").iterdir()) == MODELS
    # one replicate: every model runs once, with its seed
    assert all([p.name for p in (smoke_results / "models" / m).iterdir()] == ["seed0"] for m in MODELS)
    with h5py.File(smoke_results / "corpus" / "tokens.h5", "r") as f:
        assert f.attrs["stage"] == "corpus" and f.attrs["vocab_size"] <= config["corpus"]["vocab_size"]
    for model in MODELS:
        d = smoke_results / "models" / model / "seed0"
        with h5py.File(d / "snapshots.h5", "r") as f:
            steps = f["steps"][:]
            assert steps[0] == 0 and steps[-1] == config["model_defaults"]["steps"]
            assert len(steps) == config["model_defaults"]["n_snapshots"] + 1
            assert f.attrs["precision"] == "float32"  # auto on a CPU
            assert f["params/blocks.0.attn.W_Q"].shape[:2] == (
                len(steps),
                config["model_defaults"]["n_heads"],
            )
            assert f["train_loss"].attrs["units"] == "nats/token"
            assert np.isfinite(f["train_loss"][:]).all()
            assert len(f.attrs["config_hash"]) == 16
        with h5py.File(d / "head_scores.h5", "r") as f:
            n_layers = config["models"][model]["n_layers"]
            scores = (
                "prefix_matching",
                "copying",
                "copying_with_bos",
                "previous_token",
                "ov_copying",
                "qk_trace",
            )
            for key in scores:
                assert f[key].shape == (len(steps), n_layers, config["model_defaults"]["n_heads"])
                assert f[key].attrs["axes"] == '["snapshot", "layer", "head"]'
            assert ((f["prefix_matching"][:] >= 0) & (f["prefix_matching"][:] <= 1 + 1e-6)).all()
            assert np.isnan(f["qk_trace"][:, 0]).all() and np.isfinite(f["qk_trace"][:, 1:]).all()
        with h5py.File(d / "losses.h5", "r") as f:
            assert f["per_token_loss"].shape == (len(steps), 16, 63)
            assert f["icl_score"].shape == (len(steps),)
        for name in ("loss_heatmap", "dloss_heatmap", "prefix_matching"):
            assert (smoke_results / "figures" / model / "seed0" / f"{name}.png").stat().st_size > 5000
    assert not list(smoke_results.rglob("*.tmp"))


def test_each_family_trains_its_own_parameters(smoke_results):
    with h5py.File(smoke_results / "models/mlp2/seed0/snapshots.h5", "r") as f:
        assert f["params/blocks.1.mlp.W_in"].shape[1:] == (32, 128)
        assert "params/blocks.0.attn.alpha_smear" not in f
    with h5py.File(smoke_results / "models/smeared1/seed0/snapshots.h5", "r") as f:
        alpha = f["params/blocks.0.attn.alpha_smear"][:]
        assert alpha.shape == (5, 2) and (alpha[0] == 0).all() and (alpha[-1] != 0).all()
        assert "params/blocks.0.mlp.W_in" not in f


def config_layers(model):
    return smoke_config()["models"][model]["n_layers"]


def test_phase_pca_ablation_and_claims_are_written(smoke_results):
    with h5py.File(smoke_results / "pca" / "replicate0.h5", "r") as f:
        assert sorted(json.loads(f.attrs["models"])) == MODELS
        assert f["scores/attn2"].shape == (5, 3)
    for model in MODELS:
        with h5py.File(smoke_results / "models" / model / "seed0" / "phase.h5", "r") as f:
            window = json.loads(f.attrs["window"])
            assert window is None or 0 <= window["start"] <= window["end"] <= 4
            assert window is None or window["status"] in STATUSES
    for model in MODELS:
        with h5py.File(smoke_results / "models" / model / "seed0" / "ablation.h5", "r") as f:
            n_layers = config_layers(model)
            assert f["steps"][:].tolist() == [0, 20, 40]  # every 2nd of 5 snapshots, and the last
            for method in ("full", "pattern_preserving"):
                assert f[f"{method}/delta_icl_score"].shape == (3, n_layers, 2)
                assert f[f"{method}/delta_random_token_loss"].shape == (3, n_layers, 2, 8)
                projection = f[f"{method}/before_after_projection"][:]
                # a projection exists exactly when the model has a phase change, never a silent zero
                assert np.isfinite(projection).all() == bool(f.attrs["projection_evaluable"])
                assert np.isnan(projection).all() != bool(f.attrs["projection_evaluable"])
    document = json.loads((smoke_results / "claims.json").read_text())
    assert document["replicates"] == 1 and [c["id"] for c in document["summary"]] == [
        f"C{i}" for i in range(1, 8)
    ]
    (replicate,) = document["by_replicate"]
    assert replicate["seeds"] == {m: 0 for m in MODELS}
    claims = replicate["claims"]
    assert [c["id"] for c in claims] == [f"C{i}" for i in range(1, 8)]
    assert {c["status"] for c in claims} <= CLAIM_STATUSES
    by_id = {c["id"]: c for c in claims}
    # the smoke experiment has no 2-layer smeared-key model and no ablations: never a pass
    assert by_id["C5"]["status"] == by_id["C6"]["status"] == "not-evaluable"
    assert "2-layer smeared-key" in by_id["C5"]["reason"]


def test_second_run_does_nothing(smoke_run):
    out = snakemake(smoke_run, "--configfile", "configs/smoke.yaml", "--dry-run").stdout
    assert planned_jobs(out) == []
    assert "Nothing to be done" in out


def test_figure_setting_reruns_only_figures(smoke_copy):
    config = smoke_config()
    config["figures"]["dpi"] = 72
    write_config(smoke_copy / "changed.yaml", config)
    out = snakemake(smoke_copy, "--configfile", "changed.yaml", "--dry-run").stdout
    jobs = planned_jobs(out)
    # the report shows the config, so it is redrawn too
    assert {rule for rule, _ in jobs} == FIGURE_RULES | {"report_html"}
    assert len(jobs) == 3 + len(MODELS)


def test_one_model_change_reruns_only_its_chain_and_figures(smoke_copy):
    config = smoke_config()
    config["models"]["attn2"]["lr"] = 0.002
    write_config(smoke_copy / "changed.yaml", config)
    before = (smoke_copy / "results/smoke/models/attn1/seed0/snapshots.h5").stat().st_mtime_ns
    snakemake(smoke_copy, "--configfile", "changed.yaml")
    log = sorted((smoke_copy / ".snakemake" / "log").glob("*.snakemake.log"))[-1].read_text()
    ran = planned_jobs(log)
    assert ran == sorted(
        [
            ("train", "attn2"),
            ("losses", "attn2"),
            ("head_scores", "attn2"),
            ("phase", "attn2"),
            ("ablation", "attn2"),
            *[("merge_shards", "attn2")] * 3,  # losses, head_scores, ablation: one shard each
            ("figures_run", "attn2"),
            ("pca", ""),
            ("claims", ""),
            ("figures_all_models", ""),
            ("figures_replicates", ""),
            ("manifest", ""),
            ("report_html", ""),
        ]
    )
    assert (smoke_copy / "results/smoke/models/attn1/seed0/snapshots.h5").stat().st_mtime_ns == before
    with h5py.File(smoke_copy / "results/smoke/models/attn2/seed0/snapshots.h5", "r") as f:
        assert '"lr": 0.002' in f.attrs["spec"]
    assert planned_jobs(snakemake(smoke_copy, "--configfile", "changed.yaml", "--dry-run").stdout) == []


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["models"]["attn1"].update(n_layer=1), "models.attn1.n_layer"),
        (
            lambda c: c["corpus"].update(source="files", paths=["missing_corpus/*.txt"]),
            "missing_corpus/*.txt",
        ),
    ],
)
def test_bad_config_fails_before_any_job_and_deletes_nothing(smoke_copy, mutate, message):
    config = smoke_config()
    mutate(config)
    write_config(smoke_copy / "bad.yaml", config)
    files = {p: p.stat().st_mtime_ns for p in (smoke_copy / "results").rglob("*") if p.is_file()}
    proc = snakemake(smoke_copy, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "rule train" not in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in (smoke_copy / "results").rglob("*") if p.is_file()} == files


def test_lint_is_clean(smoke_run):
    proc = snakemake(smoke_run, "--configfile", "configs/smoke.yaml", "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_corrupt_intermediate_fails_naming_it_and_rebuilds_once_deleted(smoke_copy):
    scores_file = smoke_copy / "results/smoke/models/attn1/seed0/head_scores.h5"
    with h5py.File(scores_file, "r") as f:
        offset = f["prefix_matching"].id.get_offset()
    data = bytearray(scores_file.read_bytes())
    data[offset + 3] ^= 0xFF
    scores_file.write_bytes(bytes(data))
    proc = snakemake(smoke_copy, "--configfile", "configs/smoke.yaml", check=False)
    assert proc.returncode != 0
    # whichever reader of the file runs first names it, the dataset and the row in its log
    logs = "".join(p.read_text() for p in (smoke_copy / "results/smoke/logs").rglob("*.log"))
    assert "attn1/seed0/head_scores.h5: dataset prefix_matching row 0 fails its checksum" in logs
    scores_file.unlink()
    snakemake(smoke_copy, "--configfile", "configs/smoke.yaml")
    with h5py.File(scores_file, "r") as f:
        assert f.attrs["complete"]


def test_manifest_lists_every_hdf5_output_with_its_integrity(smoke_results):
    rows = [line.split("\t") for line in (smoke_results / "manifest.tsv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    assert header[:4] == ["file", "stage", "config_hash", "integrity"]
    assert len(rows) == 4 + 5 * len(MODELS)  # tokens, evalset, overlap, pca; per run 5 files
    for row in rows:
        with h5py.File(smoke_results.parents[1] / row[0], "r") as f:
            assert row[1] == f.attrs["stage"] and row[3] == f.attrs["integrity"] and len(row[3]) == 16


PER_RUN_RULES = {"train", "losses", "head_scores", "merge_shards", "phase", "ablation", "figures_run"}
AGGREGATES = {"claims", "figures_replicates", "manifest", "report_html"}


def _jobs(output: str) -> list[tuple[str, str, str, str]]:
    """(rule, model, seed, replicate) of every job a dry run or a run's log lists."""
    return sorted(
        (
            j["rule"],
            j["wildcards"].get("model", ""),
            j["wildcards"].get("seed", ""),
            j["wildcards"].get("replicate", ""),
        )
        for j in planned(output)
    )


def test_adding_a_replicate_runs_only_the_new_runs_and_the_aggregates(smoke_copy):
    config = smoke_config()
    for model in ("attn1", "attn2"):
        config["models"][model]["replicates"] = 2
    write_config(smoke_copy / "more.yaml", config)
    existing = {p: p.stat().st_mtime_ns for p in (smoke_copy / "results/smoke/models").rglob("*.h5")}
    jobs = _jobs(snakemake(smoke_copy, "--configfile", "more.yaml", "--dry-run").stdout)
    per_run = {(rule, model, seed) for rule, model, seed, _ in jobs if rule in PER_RUN_RULES}
    # seed 1 of attn1 and attn2, every per-run stage; nothing of seed 0
    assert {(model, seed) for _, model, seed in per_run} == {("attn1", "1"), ("attn2", "1")}
    assert {rule for rule, _, _ in per_run} == PER_RUN_RULES
    # a PCA for the new replicate only; the first replicate's figures stay
    assert [(r, rep) for r, _, _, rep in jobs if r == "pca"] == [("pca", "1")]
    assert {rule for rule, *_ in jobs} == PER_RUN_RULES | AGGREGATES | {"pca"}

    snakemake(smoke_copy, "--configfile", "more.yaml")
    assert {p: p.stat().st_mtime_ns for p in existing} == existing  # seed 0's files untouched
    document = json.loads((smoke_copy / "results/smoke/claims.json").read_text())
    assert document["replicates"] == 2
    second = document["by_replicate"][1]
    assert second["seeds"] == {"attn1": 1, "attn2": 2 - 1}
    # replicate 1 has no smeared-key model: C5 is not evaluable there, never a pass
    assert {c["id"]: c["status"] for c in second["claims"]}["C5"] == "not-evaluable"
    c1 = {c["id"]: c for c in document["summary"]}["C1"]
    statuses = [{c["id"]: c["status"] for c in r["claims"]}["C1"] for r in document["by_replicate"]]
    assert c1["passed"] == statuses.count("pass") and c1["replicates"] == 2
    assert document["windows"]["attn2"]["replicates"] == 2
    assert sorted(document["windows"]["attn2"]["status_by_seed"]) == ["0", "1"]
    with h5py.File(smoke_copy / "results/smoke/models/attn2/seed1/snapshots.h5", "r") as f:
        assert json.loads(f.attrs["spec"])["seed"] == 1 and "replicates" not in json.loads(f.attrs["spec"])
    with h5py.File(smoke_copy / "results/smoke/models/attn2/seed1/losses.h5", "r") as f:
        assert f.attrs["model"] == "attn2" and f.attrs["seed"] == 1
    # the replicate figures draw each run with its own window
    runs = [smoke_copy / f"results/smoke/models/{m}/seed{s}" for m in ("attn1", "attn2") for s in (0, 1)]
    by_model = figures._runs(
        {"losses": [str(r / "losses.h5") for r in runs], "phase": [str(r / "phase.h5") for r in runs]}
    )
    for model in ("attn1", "attn2"):
        assert [seed for seed, _ in by_model[model]] == [0, 1]
        for seed, curves in by_model[model]:
            own = phase.read(smoke_copy / f"results/smoke/models/{model}/seed{seed}/phase.h5")["window"]
            assert curves.window == own
    # ... as bars in a band below every curve, spanning the window's tokens
    inputs = {k: [str(r / f"{k}.h5") for r in runs] for k in ("losses", "head_scores", "phase")}
    fig = figures.icl_by_replicate(inputs, {})
    for ax, model in zip(fig.axes, ("attn1", "attn2"), strict=False):
        lowest = min(float(np.nanmin(line.get_ydata())) for line in ax.get_lines())
        bars = [patch for patch in ax.patches if patch.get_width() > 0]
        windows = [curves.window for _, curves in by_model[model] if curves.window is not None]
        assert len(bars) == len(windows)
        for bar, window in zip(bars, windows, strict=True):
            # the bar's top edge, from axes into data coordinates
            top = ax.transLimits.inverted().transform((0, bar.get_y() + bar.get_height()))[1]
            assert top < lowest
            span = (bar.get_x(), bar.get_x() + bar.get_width())
            assert span == (window["start_tokens"], window["end_tokens"])
    # ... and one legend below the panels names the seeds, each one colour in every panel
    figures.lay_out(fig)
    fig.canvas.draw()
    (legend,) = fig.legends
    assert [text.get_text() for text in legend.get_texts()] == ["seed 0", "seed 1"]
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len({(line.get_label(), tuple(line.get_color())) for line in lines}) == 2
    # the legend's colour for a seed is that seed's curves' colour
    colour_of = {line.get_label(): tuple(line.get_color()) for line in lines}
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
        assert tuple(handle.get_color()) == colour_of[text.get_text()]
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert ax.get_legend() is None and not box.overlaps(ax.get_tightbbox())

    # back to one replicate: only the aggregates change, no run reruns
    jobs = _jobs(snakemake(smoke_copy, "--configfile", "configs/smoke.yaml", "--dry-run").stdout)
    assert {rule for rule, *_ in jobs} == AGGREGATES
