# Every head removed at scheduled snapshots, full and pattern-preserving (methods.md §6); needs the
# model's phase-change window for the before-and-after vector.


rule ablation:
    input:
        snapshots=rules.train.output.snapshots,
        evalset=rules.evalset.output[0],
        losses=rules.losses.output[0],
        heads=rules.heads.output[0],
        phase=rules.phase.output[0],
    output:
        f"{RESULTS}/models/{{model}}/ablation.h5",
    log:
        f"{RESULTS}/logs/ablation/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation/{{model}}.tsv"
    conda:
        "../../envs/inductionheads.yaml"
    threads: config["ablation"]["threads"]
    params:
        settings=settings(ABLATION_SETTINGS),
        code=CODE["ablation"],
    shell:
        "python -m inductionheads ablation --settings {params.settings:q} --threads {threads}"
        " --snapshots {input.snapshots} --evalset {input.evalset} --losses {input.losses}"
        " --heads {input.heads} --phase {input.phase} --out {output} --log {log}"
