# Every head removed at scheduled snapshots, full and pattern-preserving (docs/methods.md §6); needs the
# model's phase-change window for the before-and-after vector. Sharded like the measurements.


rule ablation:
    input:
        snapshots=model_file("snapshots"),
        evalset=rules.evalset.output[0],
        losses=model_file("losses"),
        heads=model_file("heads"),
        phase=model_file("phase"),
    output:
        shard_file("ablation"),
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
        settings=settings(ABLATION_SETTINGS),
        code=CODE["ablation"],
        shard=shard_arg,
    shell:
        "python -m inductionheads ablation --settings {params.settings:q} --threads {threads}"
        " --shard {params.shard:q} --snapshots {input.snapshots:q} --evalset {input.evalset:q}"
        " --losses {input.losses:q} --heads {input.heads:q} --phase {input.phase:q}"
        " --out {output:q} --log {log:q}"
