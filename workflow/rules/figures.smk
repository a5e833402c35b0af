# Figure rules depend on the figure settings and the results they draw, nothing else. Each rule
# draws its figures in one process (matplotlib and torch imports dominate a small run).


# the paper's all-model figures, from the first replicate's runs
rule figures_all_models:
    input:
        snapshots=run_files("snapshots", FIRST),
        losses=run_files("losses", FIRST),
        heads=run_files("heads", FIRST),
        phase=run_files("phase", FIRST),
        ablation=run_files("ablation", FIRST),
        pca=pca_file(FIRST),
    output:
        **{name: figure_output(name, "all_models") for name in ALL_MODEL_FIGURES},
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
        settings=settings(FIGURE_SETTINGS),
        code=CODE["figures"],
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        names=ALL_MODEL_FIGURES,
    shell:
        "python -m inductionheads figures {params.names:q} --settings {params.settings:q}"
        " --snapshots {input.snapshots:q} --losses {input.losses:q} --heads {input.heads:q}"
        " --phase {input.phase:q} --ablation {input.ablation:q} --pca {input.pca:q}"
        " --out-dir {params.out_dir:q} --log {log:q}"


# the spread over replicates: every run of every model, each with its window
rule figures_replicates:
    input:
        losses=run_files("losses"),
        heads=run_files("heads"),
        phase=run_files("phase"),
    output:
        **{name: figure_output(name, "replicates") for name in REPLICATE_FIGURES},
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
        settings=settings(FIGURE_SETTINGS),
        code=CODE["figures"],
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        names=REPLICATE_FIGURES,
    shell:
        "python -m inductionheads figures {params.names:q} --settings {params.settings:q}"
        " --losses {input.losses:q} --heads {input.heads:q} --phase {input.phase:q}"
        " --out-dir {params.out_dir:q} --log {log:q}"


rule figures_model:
    input:
        losses=model_file("losses"),
        heads=model_file("heads"),
        phase=model_file("phase"),
        ablation=model_file("ablation"),
    output:
        **{
            name: figure_output(name, "{model}/seed{seed}")
            for name in PER_MODEL_FIGURES
        },
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
        settings=settings(FIGURE_SETTINGS),
        code=CODE["figures"],
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        names=PER_MODEL_FIGURES,
    shell:
        "python -m inductionheads figures {params.names:q} --settings {params.settings:q}"
        " --losses {input.losses:q} --heads {input.heads:q} --phase {input.phase:q}"
        " --ablation {input.ablation:q} --out-dir {params.out_dir:q} --log {log:q}"
