rule train:
    input:
        tokens=rules.corpus.output.tokens,
    output:
        snapshots=f"{RESULTS}/models/{{model}}/snapshots.h5",
    log:
        f"{RESULTS}/logs/train/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}.tsv"
    priority: train_priority
    conda:
        "../../envs/inductionheads.yaml"
    threads: model_threads
    params:
        settings=train_settings,
        code=CODE["train"],
    shell:
        "python -m inductionheads train --settings {params.settings:q} --threads {threads}"
        " --tokens {input.tokens} --out {output.snapshots} --log {log}"
