# Analysis across snapshots and models: each model's phase-change window, the joint PCA of
# per-token-loss vectors, and the claims C1-C7 checked from the stored results.


rule phase:
    input:
        losses=model_file("losses"),
    output:
        f"{RESULTS}/models/{{model}}/phase.h5",
    log:
        f"{RESULTS}/logs/phase/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/phase/{{model}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=settings(PHASE_SETTINGS),
        code=CODE["phase"],
    shell:
        "python -m inductionheads phase --settings {params.settings:q}"
        " --losses {input.losses} --out {output} --log {log}"


rule pca:
    input:
        losses=model_files("losses"),
    output:
        f"{RESULTS}/pca.h5",
    log:
        f"{RESULTS}/logs/pca.log",
    benchmark:
        f"{RESULTS}/benchmarks/pca.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=settings({"n_components": config["analysis"]["n_components"]}),
        code=CODE["pca"],
    shell:
        "python -m inductionheads pca --settings {params.settings:q}"
        " --losses {input.losses} --out {output} --log {log}"


rule claims:
    input:
        losses=model_files("losses"),
        heads=model_files("heads"),
        phase=model_files("phase"),
        ablation=model_files("ablation"),
        pca=rules.pca.output[0],
    output:
        report(
            f"{RESULTS}/claims.json",
            caption="../report/claims.rst",
            category="Claims",
        ),
    log:
        f"{RESULTS}/logs/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=settings(CLAIMS_SETTINGS),
        code=CODE["claims"],
    shell:
        "python -m inductionheads claims --settings {params.settings:q} --losses {input.losses}"
        " --heads {input.heads} --phase {input.phase} --ablation {input.ablation} --pca {input.pca}"
        " --out {output} --log {log}"
