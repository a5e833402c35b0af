# Provenance and the report a person reads: every HDF5 output listed with its integrity
# fingerprint, and report.html with the claims, figures, config, versions and rule costs.


rule manifest:
    input:
        files=[
            rules.corpus.output.tokens,
            rules.evalset.output.evalset,
            rules.overlap.output.overlap,
            *run_files("snapshots"),
            *run_files("losses"),
            *run_files("head_scores"),
            *run_files("phase"),
            *run_files("ablation"),
            *[pca_file(r) for r in REPLICATES],
        ],
    output:
        manifest=report(
            f"{RESULTS}/manifest.tsv",
            caption="../report/manifest.rst",
            category="Provenance",
        ),
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        code=CODE["manifest"],
        job=job("manifest"),
    shell:
        "python -m inductionheads {params.job} --log {log:q}"


rule report_html:
    input:
        claims=rules.claims.output.claims,
        figures=report_figures(),
        head_scores=run_files("head_scores", FIRST),
        phase=run_files("phase"),
        overlap=rules.overlap.output.overlap,
        captions=caption_files(),
        # listed last, so the page is written after it: the manifest verifies every file first
        manifest=rules.manifest.output.manifest,
    output:
        report=f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        # the page shows the whole config, so any config change redraws it (a cheap rule)
        settings=as_json(config),
        code=CODE["report"],
        job=job("report"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"
