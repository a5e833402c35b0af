# Figure rules depend on the figure settings and the results they draw, nothing else. Each rule
# draws its figures in one process (matplotlib and torch imports dominate a small run).


# the paper's all-model figures, from the first replicate's runs
rule figures_all_models:
    input:
        snapshots=run_files("snapshots", FIRST),
        losses=run_files("losses", FIRST),
        head_scores=run_files("head_scores", FIRST),
        phase=run_files("phase", FIRST),
        ablation=run_files("ablation", FIRST),
        pca=[pca_file(FIRST)],
    output:
        figures=[figure_output(name, "all_models") for name in ALL_MODEL_FIGURES],
    log:
        f"{RESULTS}/logs/figures/all_models.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/all_models.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=as_json(FIGURE_SETTINGS),
        code=CODE["figures"],
        job=job("figures"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"


# the spread over replicates: every run of every model, each with its window
rule figures_replicates:
    input:
        losses=run_files("losses"),
        head_scores=run_files("head_scores"),
        phase=run_files("phase"),
    output:
        figures=[figure_output(name, "replicates") for name in REPLICATE_FIGURES],
    log:
        f"{RESULTS}/logs/figures/replicates.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/replicates.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=as_json(FIGURE_SETTINGS),
        code=CODE["figures"],
        job=job("figures"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"


# one run's own figures
rule figures_run:
    input:
        losses=[model_file("losses")],
        head_scores=[model_file("head_scores")],
        phase=[model_file("phase")],
        ablation=[model_file("ablation")],
    output:
        figures=[figure_output(name, "{model}/seed{seed}") for name in PER_RUN_FIGURES],
    log:
        f"{RESULTS}/logs/figures/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/{{model}}/seed{{seed}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=as_json(FIGURE_SETTINGS),
        code=CODE["figures"],
        job=job("figures"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"
