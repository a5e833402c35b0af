rule losses:
    input:
        snapshots=rules.train.output.snapshots,
        evalset=rules.evalset.output[0],
    output:
        f"{RESULTS}/models/{{model}}/losses.h5",
    log:
        f"{RESULTS}/logs/losses/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/losses/{{model}}.tsv"
    conda:
        "../../envs/inductionheads.yaml"
    threads: config["evaluation"]["threads"]
    params:
        settings=settings({"batch_size": config["evaluation"]["batch_size"]}),
        code=CODE["losses"],
    shell:
        "python -m inductionheads losses --settings {params.settings:q} --threads {threads}"
        " --snapshots {input.snapshots} --evalset {input.evalset} --out {output} --log {log}"


rule heads:
    input:
        snapshots=rules.train.output.snapshots,
        evalset=rules.evalset.output[0],
    output:
        f"{RESULTS}/models/{{model}}/heads.h5",
    log:
        f"{RESULTS}/logs/heads/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heads/{{model}}.tsv"
    conda:
        "../../envs/inductionheads.yaml"
    threads: config["evaluation"]["threads"]
    params:
        settings=settings(
            {"prev_token_contexts": config["heads"]["prev_token_contexts"]}
        ),
        code=CODE["heads"],
    shell:
        "python -m inductionheads heads --settings {params.settings:q} --threads {threads}"
        " --snapshots {input.snapshots} --evalset {input.evalset} --out {output} --log {log}"
