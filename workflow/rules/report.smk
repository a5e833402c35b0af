# Provenance and the report a person reads: every HDF5 output listed with its integrity
# fingerprint, and report.html with the claims, figures, config, versions and rule costs.


rule manifest:
    input:
        rules.corpus.output.tokens,
        rules.evalset.output[0],
        run_files("snapshots"),
        run_files("losses"),
        run_files("heads"),
        run_files("phase"),
        run_files("ablation"),
        [pca_file(r) for r in REPLICATES],
    output:
        report(
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
    shell:
        "python -m inductionheads manifest --inputs {input:q} --out {output:q} --log {log:q}"


rule report_html:
    input:
        claims=rules.claims.output[0],
        figures=report_figures(),
        heads=run_files("heads", FIRST),
        manifest=rules.manifest.output[0],
    output:
        f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        # the page shows the whole config, so any config change redraws it (a cheap rule)
        config=settings(config),
        code=CODE["report"],
        benchmarks=f"{RESULTS}/benchmarks",
        captions=Path(workflow.basedir) / "workflow" / "report",
    shell:
        "python -m inductionheads report --settings {params.config:q} --claims {input.claims:q}"
        " --figures {input.figures:q} --heads {input.heads:q} --benchmarks {params.benchmarks:q}"
        " --captions {params.captions:q} --out {output:q} --log {log:q}"
