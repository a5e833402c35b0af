import copy
import json
import shlex
from pathlib import Path

from snakemake.utils import min_version

from inductionheads.config import (
    ConfigError,
    code_digest,
    model_spec,
    run_spec,
    runs,
    validate,
    warmup_tokens,
)
from inductionheads.stages import STAGES, job_arguments

min_version("9.0")

# An experiment given with --configfile replaces config.yaml instead of merging into it: Snakemake's
# merge would add the default experiment's models to every other experiment.
if workflow.overwrite_configfiles:
    config.clear()
    config.update(copy.deepcopy(workflow.config_settings.overwrite_config))


# Fail before any job, naming the key: unknown keys, wrong types, impossible combinations.
try:
    validate(
        config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    )
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

EXP = config["experiment"]
RESULTS = f"results/{EXP}"
MODELS = list(config["models"])
# models imported from a checkpoint series instead of trained (rule import_checkpoints)
IMPORTED = [m for m in MODELS if "checkpoints" in (config["models"][m] or {})]
TRAINED = [m for m in MODELS if m not in IMPORTED]
# Every training run as (replicate, model, seed): each model `replicates` times, seeds seed, seed + 1,
# ...; replicate r groups the r-th run of every model for the claims and the PCA.
RUNS = runs(config)
REPLICATES = sorted({replicate for replicate, _, _ in RUNS})


def one_of(names):
    """A wildcard constraint matching exactly these names ("(?!)" matches nothing)."""
    return "|".join(names) or "(?!)"


# Jobs import the package from this checkout when it has one, also inside conda environments,
# which install only its dependencies (the prefix replaces Snakemake's default "set -euo pipefail").
# The checkout's path is quoted for the shell, its braces doubled for Snakemake's formatting.
_SRC = Path(workflow.basedir) / "src"
if (_SRC / "inductionheads").is_dir():
    _src_word = shlex.quote(str(_SRC)).replace("{", "{{").replace("}", "}}")
    shell.prefix(
        f"set -euo pipefail; export PYTHONPATH={_src_word}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    )


# Measurement and ablation jobs each take one of `shards` contiguous snapshot ranges ("2of4"); a
# cluster runs them side by side, and merging restores exactly the unsharded file.
SHARDS = config.get("shards", 1)
SHARD_LABELS = [f"{i}of{SHARDS}" for i in range(1, SHARDS + 1)]
SHARDED = ["losses", "head_scores", "ablation"]


# What each job asks a cluster for, by group of rules (config `resources`); `--set-resources` on the
# command line overrides single rules. Threads become SLURM's cpus_per_task and torch's thread count.
RESOURCES = {
    group: {
        "mem_mb": 4000,
        "runtime": 60,
        "gpu": 0,
        **config.get("resources", {}).get(group, {}),
    }
    for group in ("train", "measure", "ablation", "other")
}


# One run's directory: results/<experiment>/models/<model>/seed<seed>/
RUN = f"{RESULTS}/models/{{model}}/seed{{seed}}"


def run_dir(model, seed):
    return f"{RESULTS}/models/{model}/seed{seed}"


def model_file(kind):
    return f"{RUN}/{kind}.h5"


def shard_file(kind):
    return f"{RUN}/shards/{kind}_{{shard}}.h5"


def shard_arg(wildcards):
    """The job's --shard argument: "2of4" -> "2/4"."""
    return wildcards.shard.replace("of", "/")


def all_shards(wildcards):
    return expand(
        f"{run_dir(wildcards.model, wildcards.seed)}/shards/{wildcards.kind}_{{shard}}.h5",
        shard=SHARD_LABELS,
    )


def run_files(kind, replicate=None):
    """`kind`.h5 of every run (or of one replicate's runs), in the order of RUNS."""
    return [
        f"{run_dir(model, seed)}/{kind}.h5"
        for r, model, seed in RUNS
        if replicate is None or r == replicate
    ]


def replicate_files(kind):
    """Input function: `kind`.h5 of the runs of the job's replicate."""
    return lambda wildcards: run_files(kind, int(wildcards.replicate))


def pca_file(replicate):
    return f"{RESULTS}/pca/replicate{replicate}.h5"


def job(stage):
    """params: the job's `python -m inductionheads` arguments, built from the stage function's
    signature and the rule's named input and output entries and wildcards (inductionheads.stages).
    """
    return lambda wildcards, input, output: job_arguments(
        stage, input, output, wildcards
    )


def as_json(obj):
    """A rule's settings as sorted JSON: Snakemake compares params to decide reruns, and the job
    receives exactly this string."""
    return json.dumps(obj, sort_keys=True)


def train_settings(wildcards):
    spec = run_spec(config, wildcards.model, int(wildcards.seed))
    spec.pop("threads")  # a resource, not science: changing it reruns nothing
    return as_json(spec)


def train_priority(wildcards):
    """Longest training first (cost ~ steps x (layers + 1)), and every training before measurements,
    so that on few cores the longest job never starts last."""
    spec = model_spec(config, wildcards.model)
    return (
        spec["steps"]
        * (spec["n_layers"] + 1)
        * (2 if spec["family"] == "with-mlp" else 1)
    )


def import_settings(wildcards):
    spec = run_spec(config, wildcards.model, int(wildcards.seed))
    return as_json(
        {k: spec[k] for k in ("name", "family", "n_layers", "checkpoints", "seed")}
    )


def model_threads(wildcards):
    return model_spec(config, wildcards.model)["threads"]


EVALSET_SETTINGS = as_json(
    {
        "evaluation": {
            k: config["evaluation"][k]
            for k in (
                "n_contexts",
                "context_length",
                "icl_early",
                "icl_late",
                "icl_window",
                "seed",
            )
        },
        "head_scores": {
            k: config["head_scores"][k]
            for k in (
                "n_sequences",
                "repeat_length",
                "n_repeats",
                "exclude_frequency_fraction",
                "seed",
            )
        },
    }
)

PHASE_KEYS = (
    "icl_smoothing",
    "window_slope_fraction",
    "window_valley_fraction",
    "min_icl_drop",
    "window_fraction",
    "max_window_span",
    "plateau_fraction",
)
PHASE_SETTINGS = {k: config["analysis"][k] for k in PHASE_KEYS}
# the induction-head thresholds pick the heads ablated together for claim C6
ABLATION_SETTINGS = {
    **{k: v for k, v in config["ablation"].items() if k != "threads"},
    **{
        k: config["analysis"][k]
        for k in ("induction_prefix_matching", "induction_copying")
    },
}
# claims read each run's model, family, depth and replicate, and every threshold (the phase ones
# apply upstream)
CLAIMS_SETTINGS = {
    # a list in the order of RUNS, like the file lists (as_json() sorts mapping keys)
    "runs": [
        {
            "replicate": replicate,
            "seed": seed,
            **{k: model_spec(config, name)[k] for k in ("name", "family", "n_layers")},
            "warmup_tokens": warmup_tokens(model_spec(config, name)),
        }
        for replicate, name, seed in RUNS
    ],
    "thresholds": {
        k: v
        for k, v in config["analysis"].items()
        if k
        not in (
            "window_slope_fraction",
            "window_valley_fraction",
            "max_window_span",
            "plateau_fraction",
            "n_components",
        )
    },
}

# Content hashes of the code each stage runs (its module and every package module that imports,
# transitively): Snakemake's code trigger never sees them.
CODE = {stage: code_digest(spec.module) for stage, spec in STAGES.items()}

PER_RUN_FIGURES = [
    "loss_heatmap",
    "dloss_heatmap",
    "prefix_matching",
    "ablation_icl",
    "ablation_before_after",
]
ALL_MODEL_FIGURES = [
    "model_analysis_table",
    "training_loss",
    "icl_score",
    "icl_by_depth",
    "smeared_vs_vanilla",
    "copying_vs_prefix_matching",
    "pca_trajectories",
]
REPLICATE_FIGURES = ["icl_by_replicate", "prefix_matching_by_replicate"]
# figures draw with the figure settings and the head-class thresholds (copying vs prefix matching)
FIGURE_SETTINGS = {
    **config["figures"],
    **{
        k: config["analysis"][k]
        for k in ("induction_prefix_matching", "induction_copying", "previous_token")
    },
}


def figure_output(name, subcategory):
    return report(
        f"{RESULTS}/figures/{subcategory}/{name}.png",
        caption=f"../report/{name}.rst",
        category="Figures",
        subcategory=subcategory,
    )


# the all-model figures and the report's per-model figures show the first replicate; the replicate
# figures show every run
FIRST = REPLICATES[0]


def run_figures(replicate=None):
    return [
        f"{RESULTS}/figures/{model}/seed{seed}/{name}.png"
        for r, model, seed in RUNS
        if replicate is None or r == replicate
        for name in PER_RUN_FIGURES
    ]


def report_figures():
    """The figures report.html shows: all-model ones, the replicate spread, and the per-model ones of
    the first replicate."""
    return [
        *[f"{RESULTS}/figures/all_models/{name}.png" for name in ALL_MODEL_FIGURES],
        *[f"{RESULTS}/figures/replicates/{name}.png" for name in REPLICATE_FIGURES],
        *run_figures(FIRST),
    ]


def caption_files():
    """The caption of every figure report.html shows (workflow/report/<figure>.rst)."""
    names = [*ALL_MODEL_FIGURES, *REPLICATE_FIGURES, *PER_RUN_FIGURES]
    return [f"{workflow.basedir}/workflow/report/{name}.rst" for name in names]


def all_outputs():
    targets = [
        f"{RESULTS}/manifest.tsv",
        f"{RESULTS}/claims.json",
        f"{RESULTS}/report.html",
        *report_figures(),
        *run_figures(),
    ]
    return list(
        dict.fromkeys(targets)
    )  # the first replicate's figures are listed twice


wildcard_constraints:
    model=one_of(MODELS),
    seed=r"\d+",
    replicate=r"\d+",
    shard=r"\d+of\d+",
