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
    shell:
        "python -m inductionheads train --settings {params.settings:q} --threads {threads}"
        " --tokens {input.tokens:q} --out {output.snapshots:q} --log {log:q}"


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
    shell:
        "python -m inductionheads import --settings {params.settings:q}"
        " --tokens {input.tokens:q} --out {output.snapshots:q} --log {log:q}"
