# Analysis across snapshots and models: each model's phase-change window, the joint PCA of
# per-token-loss vectors, and the claims C1-C7 checked from the stored results.


rule phase:
    input:
        losses=model_file("losses"),
    output:
        phase=model_file("phase"),
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
        settings=as_json(PHASE_SETTINGS),
        code=CODE["phase"],
        job=job("phase"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"


# one joint PCA per replicate: adding a replicate leaves the others' untouched
rule pca:
    input:
        losses=replicate_files("losses"),
    output:
        pca=pca_file("{replicate}"),
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
        settings=as_json({"n_components": config["analysis"]["n_components"]}),
        code=CODE["pca"],
        job=job("pca"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"


rule claims:
    input:
        losses=run_files("losses"),
        head_scores=run_files("head_scores"),
        phase=run_files("phase"),
        ablation=run_files("ablation"),
        pca=[pca_file(r) for r in REPLICATES],
    output:
        claims=report(
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
        settings=as_json(CLAIMS_SETTINGS),
        code=CODE["claims"],
        job=job("claims"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"
