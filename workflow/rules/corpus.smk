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


# read by the report: a corpus whose held-out files copy its training files tests memorization
rule overlap:
    input:
        tokens=rules.corpus.output.tokens,
        evalset=rules.evalset.output.evalset,
    output:
        overlap=f"{RESULTS}/corpus/overlap.h5",
    log:
        f"{RESULTS}/logs/overlap.log",
    benchmark:
        f"{RESULTS}/benchmarks/overlap.tsv"
    conda:
        "../../envs/corpus.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        code=CODE["overlap"],
        job=job("overlap"),
    shell:
        "python -m inductionheads {params.job} --log {log:q}"
