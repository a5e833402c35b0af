# Measurements of every snapshot, each split into `shards` snapshot ranges (config) that run as
# separate jobs, then merged in order into one file per model (rule merge_shards).


rule losses:
    input:
        snapshots=model_file("snapshots"),
        evalset=rules.evalset.output[0],
    output:
        shard_file("losses"),
    log:
        f"{RESULTS}/logs/losses/{{model}}/seed{{seed}}_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/losses/{{model}}/seed{{seed}}_{{shard}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        **RESOURCES["measure"],
    params:
        settings=settings({"batch_size": config["evaluation"]["batch_size"]}),
        code=CODE["losses"],
        shard=shard_arg,
    shell:
        "python -m inductionheads losses --settings {params.settings:q} --threads {threads}"
        " --shard {params.shard:q} --snapshots {input.snapshots:q} --evalset {input.evalset:q}"
        " --out {output:q} --log {log:q}"


rule heads:
    input:
        snapshots=model_file("snapshots"),
        evalset=rules.evalset.output[0],
    output:
        shard_file("heads"),
    log:
        f"{RESULTS}/logs/heads/{{model}}/seed{{seed}}_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heads/{{model}}/seed{{seed}}_{{shard}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        **RESOURCES["measure"],
    params:
        settings=settings(
            {"prev_token_contexts": config["heads"]["prev_token_contexts"]}
        ),
        code=CODE["heads"],
        shard=shard_arg,
    shell:
        "python -m inductionheads heads --settings {params.settings:q} --threads {threads}"
        " --shard {params.shard:q} --snapshots {input.snapshots:q} --evalset {input.evalset:q}"
        " --out {output:q} --log {log:q}"


rule merge_shards:
    input:
        shards=all_shards,
    output:
        model_file("{kind}"),
    log:
        f"{RESULTS}/logs/merge/{{kind}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge/{{kind}}/{{model}}/seed{{seed}}.tsv"
    wildcard_constraints:
        kind=one_of(SHARDED),
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        **RESOURCES["other"],
    params:
        code=CODE["merge"],
    shell:
        "python -m inductionheads merge {wildcards.kind:q} --shards {input.shards:q}"
        " --out {output:q} --log {log:q}"
