# Figure rules depend on the figure settings and the results they draw, nothing else. Each rule
# draws its figures in one process (matplotlib and torch imports dominate a small run).


rule figures_all_models:
    input:
        snapshots=model_files("snapshots"),
        losses=model_files("losses"),
        heads=model_files("heads"),
        phase=model_files("phase"),
        ablation=model_files("ablation"),
        pca=rules.pca.output[0],
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
        names=" ".join(ALL_MODEL_FIGURES),
    shell:
        "python -m inductionheads figures {params.names} --settings {params.settings:q}"
        " --snapshots {input.snapshots} --losses {input.losses} --heads {input.heads}"
        " --phase {input.phase} --ablation {input.ablation} --pca {input.pca}"
        " --out-dir {params.out_dir} --log {log}"


rule figures_model:
    input:
        losses=model_file("losses"),
        heads=model_file("heads"),
        phase=model_file("phase"),
        ablation=model_file("ablation"),
    output:
        **{name: figure_output(name, "{model}") for name in PER_MODEL_FIGURES},
    log:
        f"{RESULTS}/logs/figures/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/{{model}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=settings(FIGURE_SETTINGS),
        code=CODE["figures"],
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        names=" ".join(PER_MODEL_FIGURES),
    shell:
        "python -m inductionheads figures {params.names} --settings {params.settings:q}"
        " --losses {input.losses} --heads {input.heads} --phase {input.phase}"
        " --ablation {input.ablation} --out-dir {params.out_dir} --log {log}"
