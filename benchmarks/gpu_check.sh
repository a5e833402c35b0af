#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md and docs/results.md, for a GPU node without network.
#   bash benchmarks/gpu_check.sh OUT speed        # training, measurement, ablation at the paper's width (~8 min)
#   bash benchmarks/gpu_check.sh OUT cost         # the paper series costed, 2 of its 12 models (~5 min)
#   bash benchmarks/gpu_check.sh OUT mini         # configs/paper-mini.yaml end to end (target: <= 10 min)
#   bash benchmarks/gpu_check.sh OUT replicates   # configs/replicates.yaml on CUDA bfloat16 (target: <= 10 min)
# Where snakemake is not installed, a wheelhouse in .wheelhouse/ (../shared/device/wheelhouse.sh) is.
# Each part runs under its own timeout and writes its table or log into OUT.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT speed|cost|mini|replicates}
part=${2:?usage: gpu_check.sh OUT speed|cost|mini|replicates}
mkdir -p "$out"
if [ -d .wheelhouse ] && ! python -c 'import snakemake' 2>/dev/null; then
  pip install -q --no-index --no-deps --target /tmp/site .wheelhouse/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src" PATH="/tmp/site/bin:$PATH"
fi
export PYTHONPATH="${PYTHONPATH:-$PWD/src}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' >> "$out/gpu.txt" 2>&1
date -u >> "$out/gpu.txt"

run() {  # run NAME SECONDS COMMAND...: its output in OUT/NAME.txt
  local name=$1 seconds=$2
  shift 2
  timeout "$seconds" "$@" > "$out/$name.txt" 2>&1
  echo "$name: exit $? ($(tail -n 1 "$out/$name.txt" | cut -c1-120))"
}

case "$part" in
  speed)
    run training_attn2 150 python benchmarks/training.py --device cuda --size paper-attn2 --steps 10 --repeats 2
    run training_mlp6 180 python benchmarks/training.py --device cuda --size paper-mlp6 --steps 6 --repeats 2
    run measurement 90 python benchmarks/measurement.py --device cuda --layers 2 --heads 12 --d-model 768 \
      --context 512 --vocab 4096 --snapshots 4 --threads 8
    run ablation 90 python benchmarks/ablation.py --device cuda --layers 2 --heads 12 --d-model 768 \
      --context 512 --vocab 4096 --contexts 64 --threads 8
    ;;
  cost)
    run series_cost 300 python benchmarks/series_cost.py --config configs/paper.yaml --device cuda \
      --models attn2,mlp6 --devices 8
    ;;
  mini)
    run mini 600 snakemake --cores 16 --configfile configs/paper-mini.yaml
    cp results/paper-mini/claims.json "$out/" 2>/dev/null
    ;;
  replicates)
    run replicates 600 snakemake --cores 16 --configfile configs/replicates.yaml
    cp results/replicates/claims.json "$out/" 2>/dev/null
    ;;
  *)
    echo "unknown part $part: speed, cost, mini or replicates" >&2
    exit 2
    ;;
esac
