"""The workflow end to end through Snakemake's CLI: outputs, metadata, and only stale outputs rebuild."""

import json

import h5py
import numpy as np
import pytest
from conftest import planned_jobs, smoke_config, snakemake, write_config

MODELS = ["attn1", "attn2", "mlp2", "smeared1"]
FIGURE_RULES = {"figures_all_models", "figures_model"}
CLAIM_STATUSES = {"pass", "fail", "not-evaluable"}


def test_smoke_run_writes_every_output_with_metadata(smoke_results):
    config = smoke_config()
    # --configfile replaces config.yaml: none of the default experiment's models join in
    assert sorted(p.name for p in (smoke_results / "models").iterdir()) == MODELS
    with h5py.File(smoke_results / "corpus" / "tokens.h5", "r") as f:
        assert f.attrs["stage"] == "corpus" and f.attrs["vocab_size"] <= config["corpus"]["vocab_size"]
    for model in MODELS:
        d = smoke_results / "models" / model
        with h5py.File(d / "snapshots.h5", "r") as f:
            steps = f["steps"][:]
            assert steps[0] == 0 and steps[-1] == config["model_defaults"]["steps"]
            assert len(steps) == config["model_defaults"]["n_snapshots"] + 1
            assert f["params/blocks.0.attn.W_Q"].shape[:2] == (
                len(steps),
                config["model_defaults"]["n_heads"],
            )
            assert f["train_loss"].attrs["units"] == "nats/token"
            assert np.isfinite(f["train_loss"][:]).all()
            assert len(f.attrs["config_hash"]) == 16
        with h5py.File(d / "heads.h5", "r") as f:
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
            assert (smoke_results / "figures" / model / f"{name}.png").stat().st_size > 5000
    assert not list(smoke_results.rglob("*.tmp"))


def test_each_family_trains_its_own_parameters(smoke_results):
    with h5py.File(smoke_results / "models/mlp2/snapshots.h5", "r") as f:
        assert f["params/blocks.1.mlp.W_in"].shape[1:] == (32, 128)
        assert "params/blocks.0.attn.alpha_smear" not in f
    with h5py.File(smoke_results / "models/smeared1/snapshots.h5", "r") as f:
        alpha = f["params/blocks.0.attn.alpha_smear"][:]
        assert alpha.shape == (5, 2) and (alpha[0] == 0).all() and (alpha[-1] != 0).all()
        assert "params/blocks.0.mlp.W_in" not in f


def config_layers(model):
    return smoke_config()["models"][model]["n_layers"]


def test_phase_pca_ablation_and_claims_are_written(smoke_results):
    with h5py.File(smoke_results / "pca.h5", "r") as f:
        assert sorted(json.loads(f.attrs["models"])) == MODELS
        assert f["scores/attn2"].shape == (5, 3)
    for model in MODELS:
        with h5py.File(smoke_results / "models" / model / "phase.h5", "r") as f:
            window = json.loads(f.attrs["window"])
            assert window is None or 0 <= window["start"] <= window["end"] <= 4
    for model in MODELS:
        with h5py.File(smoke_results / "models" / model / "ablation.h5", "r") as f:
            n_layers = config_layers(model)
            assert f["steps"][:].tolist() == [0, 20, 40]  # every 2nd of 5 snapshots, and the last
            for method in ("full", "pattern_preserving"):
                assert f[f"{method}/delta_icl_score"].shape == (3, n_layers, 2)
                assert f[f"{method}/delta_random_token_loss"].shape == (3, n_layers, 2, 8)
                projection = f[f"{method}/before_after_projection"][:]
                # a projection exists exactly when the model has a phase change, never a silent zero
                assert np.isfinite(projection).all() == bool(f.attrs["projection_evaluable"])
                assert np.isnan(projection).all() != bool(f.attrs["projection_evaluable"])
    claims = json.loads((smoke_results / "claims.json").read_text())["claims"]
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
    assert len(jobs) == 2 + len(MODELS)


def test_one_model_change_reruns_only_its_chain_and_figures(smoke_copy):
    config = smoke_config()
    config["models"]["attn2"]["lr"] = 0.002
    write_config(smoke_copy / "changed.yaml", config)
    before = (smoke_copy / "results/smoke/models/attn1/snapshots.h5").stat().st_mtime_ns
    snakemake(smoke_copy, "--configfile", "changed.yaml")
    log = sorted((smoke_copy / ".snakemake" / "log").glob("*.snakemake.log"))[-1].read_text()
    ran = planned_jobs(log)
    assert ran == sorted(
        [
            ("train", "attn2"),
            ("losses", "attn2"),
            ("heads", "attn2"),
            ("phase", "attn2"),
            ("ablation", "attn2"),
            *[("merge_shards", "attn2")] * 3,  # losses, heads, ablation: one shard each
            ("figures_model", "attn2"),
            ("pca", ""),
            ("claims", ""),
            ("figures_all_models", ""),
            ("manifest", ""),
            ("report_html", ""),
        ]
    )
    assert (smoke_copy / "results/smoke/models/attn1/snapshots.h5").stat().st_mtime_ns == before
    with h5py.File(smoke_copy / "results/smoke/models/attn2/snapshots.h5", "r") as f:
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
    heads_file = smoke_copy / "results/smoke/models/attn1/heads.h5"
    with h5py.File(heads_file, "r") as f:
        offset = f["prefix_matching"].id.get_offset()
    data = bytearray(heads_file.read_bytes())
    data[offset + 3] ^= 0xFF
    heads_file.write_bytes(bytes(data))
    proc = snakemake(smoke_copy, "--configfile", "configs/smoke.yaml", check=False)
    assert proc.returncode != 0
    # whichever reader of the file runs first names it, the dataset and the row in its log
    logs = "".join(p.read_text() for p in (smoke_copy / "results/smoke/logs").rglob("*.log"))
    assert "attn1/heads.h5: dataset prefix_matching row 0 fails its checksum" in logs
    heads_file.unlink()
    snakemake(smoke_copy, "--configfile", "configs/smoke.yaml")
    with h5py.File(heads_file, "r") as f:
        assert f.attrs["complete"]


def test_manifest_lists_every_hdf5_output_with_its_integrity(smoke_results):
    rows = [line.split("\t") for line in (smoke_results / "manifest.tsv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    assert header[:4] == ["file", "stage", "config_hash", "integrity"]
    assert len(rows) == 3 + 5 * len(MODELS)  # tokens, evalset, pca; per model 5 files
    for row in rows:
        with h5py.File(smoke_results.parents[1] / row[0], "r") as f:
            assert row[1] == f.attrs["stage"] and row[3] == f.attrs["integrity"] and len(row[3]) == 16
