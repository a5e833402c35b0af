# Analysis across snapshots and models: each model's phase-change window, the joint PCA of
# per-token-loss vectors, and the claims C1-C7 checked from the stored results.


rule phase:
    input:
        losses=model_file("losses"),
    output:
        model_file("phase"),
    log:
        f"{RESULTS}/logs/phase/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/phase/{{model}}/seed{{seed}}.tsv"
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
        " --losses {input.losses:q} --out {output:q} --log {log:q}"


# one joint PCA per replicate: adding a replicate leaves the others' untouched
rule pca:
    input:
        losses=replicate_files("losses"),
    output:
        pca_file("{replicate}"),
    log:
        f"{RESULTS}/logs/pca/replicate{{replicate}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pca/replicate{{replicate}}.tsv"
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
        " --losses {input.losses:q} --out {output:q} --log {log:q}"


rule claims:
    input:
        losses=run_files("losses"),
        heads=run_files("heads"),
        phase=run_files("phase"),
        ablation=run_files("ablation"),
        pca=[pca_file(r) for r in REPLICATES],
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
        "python -m inductionheads claims --settings {params.settings:q} --losses {input.losses:q}"
        " --heads {input.heads:q} --phase {input.phase:q} --ablation {input.ablation:q} --pca {input.pca:q}"
        " --out {output:q} --log {log:q}"
