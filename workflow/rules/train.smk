rule train:
    input:
        tokens=rules.corpus.output.tokens,
    output:
        snapshots=model_file("snapshots"),
    log:
        f"{RESULTS}/logs/train/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/seed{{seed}}.tsv"
    wildcard_constraints:
        model=one_of(TRAINED),
    priority: train_priority
    conda:
        "../../envs/torch.yaml"
    threads: model_threads
    resources:
        **RESOURCES["train"],
    params:
        settings=train_settings,
        code=CODE["train"],
        job=job("train"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --threads {threads}"
        " --log {log:q}"


rule import_checkpoints:
    input:
        tokens=rules.corpus.output.tokens,
    output:
        snapshots=model_file("snapshots"),
    log:
        f"{RESULTS}/logs/import/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import/{{model}}/seed{{seed}}.tsv"
    wildcard_constraints:
        model=one_of(IMPORTED),
    conda:
        "../../envs/interop.yaml"
    threads: 1
    resources:
        **RESOURCES["train"],
    params:
        settings=import_settings,
        code=CODE["import"],
        job=job("import"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --log {log:q}"
