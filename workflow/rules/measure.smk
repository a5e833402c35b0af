# Measurements of every snapshot, each split into `shards` snapshot ranges (config) that run as
# separate jobs, then merged in order into one file per model (rule merge_shards).


rule losses:
    input:
        snapshots=model_file("snapshots"),
        evalset=rules.evalset.output.evalset,
    output:
        losses=shard_file("losses"),
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
        settings=as_json({"batch_size": config["evaluation"]["batch_size"]}),
        code=CODE["losses"],
        job=job("losses"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --threads {threads}"
        " --log {log:q}"


rule head_scores:
    input:
        snapshots=model_file("snapshots"),
        evalset=rules.evalset.output.evalset,
    output:
        head_scores=shard_file("head_scores"),
    log:
        f"{RESULTS}/logs/head_scores/{{model}}/seed{{seed}}_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/head_scores/{{model}}/seed{{seed}}_{{shard}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        **RESOURCES["measure"],
    params:
        settings=as_json(
            {"prev_token_contexts": config["head_scores"]["prev_token_contexts"]}
        ),
        code=CODE["head_scores"],
        job=job("head_scores"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --threads {threads}"
        " --log {log:q}"


rule merge_shards:
    input:
        shards=all_shards,
    output:
        merged=model_file("{kind}"),
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
        job=job("merge"),
    shell:
        "python -m inductionheads {params.job} --log {log:q}"
