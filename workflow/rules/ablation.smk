# Every head removed at scheduled snapshots, full and pattern-preserving (docs/methods.md §6); needs the
# model's phase-change window for the before-and-after vector. Sharded like the measurements.


rule ablation:
    input:
        snapshots=model_file("snapshots"),
        evalset=rules.evalset.output.evalset,
        losses=model_file("losses"),
        head_scores=model_file("head_scores"),
        phase=model_file("phase"),
    output:
        ablation=shard_file("ablation"),
    log:
        f"{RESULTS}/logs/ablation/{{model}}/seed{{seed}}_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation/{{model}}/seed{{seed}}_{{shard}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["ablation"]["threads"]
    resources:
        **RESOURCES["ablation"],
    params:
        settings=as_json(ABLATION_SETTINGS),
        code=CODE["ablation"],
        job=job("ablation"),
    shell:
        "python -m inductionheads {params.job} --settings {params.settings:q} --threads {threads}"
        " --log {log:q}"
