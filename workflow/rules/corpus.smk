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
        settings=settings(config["corpus"]),
        code=CODE["corpus"],
    shell:
        "python -m inductionheads corpus --settings {params.settings:q} --threads {threads}"
        " --tokens {output.tokens:q} --tokenizer {output.tokenizer:q} --log {log:q}"


rule evalset:
    input:
        tokens=rules.corpus.output.tokens,
    output:
        f"{RESULTS}/evalset.h5",
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
    shell:
        "python -m inductionheads evalset --settings {params.settings:q}"
        " --tokens {input.tokens:q} --out {output:q} --log {log:q}"
