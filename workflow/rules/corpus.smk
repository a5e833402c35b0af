rule corpus:
    output:
        tokens=f"{RESULTS}/corpus/tokens.h5",
        tokenizer=f"{RESULTS}/corpus/tokenizer.json",
    log:
        f"{RESULTS}/logs/corpus.log",
    benchmark:
        f"{RESULTS}/benchmarks/corpus.tsv"
    conda:
        "../../envs/corpus.yaml"
    threads: 2
    resources:
        **RESOURCES["other"],
    params:
        settings=as_json(config["corpus"]),
        code=CODE["corpus"],
        job=job("corpus"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"


rule evalset:
    input:
        tokens=rules.corpus.output.tokens,
    output:
        evalset=f"{RESULTS}/evalset.h5",
    log:
        f"{RESULTS}/logs/evalset.log",
    benchmark:
        f"{RESULTS}/benchmarks/evalset.tsv"
    conda:
        "../../envs/corpus.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        settings=EVALSET_SETTINGS,
        code=CODE["evalset"],
        job=job("evalset"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"
