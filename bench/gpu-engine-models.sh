#!/usr/bin/env bash
# The execution engine on the demo and on a model that does more work per byte, each against
# the model's own speed at the same concurrency, in one command on the GPU machine (after
# build-on-cuda-host.sh):
#   bash bench/gpu-engine-models.sh OUT_DIR      (from any folder; it runs from the repository)
# 1. bench/make_mlp_model.py writes mlp4096 (256 -> 4096 -> 4096 -> 256 per token, 1.21 GFLOP a
#    sample, against the demo's 0.017); both take and give FP32 [32, 256], 32 KiB each way.
# 2. coalesce-engine-bench on each (demo at 32, 128, 256; mlp4096 at 1 to 256): the default
#    variants, the server's defaults on CUDA (2 workers, 2 batches per worker, CUDA graphs: p, g)
#    with and without graphs, 4 and 6 workers with graphs, and 2 workers with graphs and one
#    backend call at a time (x), each row against its ceilings.
# 3. coalesce-model-ceiling on each at 32, 128, 256: the backend alone called from 2, 4 and 6
#    threads at once on its page-locked staging (no gather, scatter or answers), without and
#    with CUDA graphs: the ceiling at the server's own concurrency.
set -euo pipefail
out=${1:?usage: bench/gpu-engine-models.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
models=$(mktemp -d)
trap 'rm -rf "$models"' EXIT
python3 bench/make_mlp_model.py "$models/mlp4096" --hidden 4096 --layers 2

for model in demo mlp4096; do
  model_args=()
  sizes=1,8,32,128,256
  if [[ $model == demo ]]; then
    sizes=32,128,256  # The demo's full table is gpu-engine.sh's; here its large batches.
  else
    model_args=(--model_dir="$models/$model")
  fi
  echo "== coalesce-engine-bench, $model"
  build-cuda/bench/coalesce-engine-bench --device=cuda --duration_s=0.5 --warmup_s=0.2 \
    --batch_sizes="$sizes" --extra_variants=2w4cgp,2w4cp,4w4cg,6w4cg,2w4cgx \
    ${model_args[@]+"${model_args[@]}"} >"$out/engine-$model.txt" 2>"$out/engine-$model.err" \
    || { cat "$out/engine-$model.err" >&2; exit 1; }
  cat "$out/engine-$model.txt"
  grep -E "model '|graphs" "$out/engine-$model.err" || true

  for graphs in false true; do
    for workers in 2 4 6; do
      echo "== coalesce-model-ceiling, $model, $workers workers, cuda_graphs=$graphs"
      build-cuda/bench/coalesce-model-ceiling --device=cuda --workers="$workers" --seconds=1 \
        --warmup_s=0.3 --batch_sizes=32,128,256 --cuda_graphs="$graphs" \
        ${model_args[@]+"${model_args[@]}"} 2>&1 \
        | tee "$out/model-ceiling-$model-${workers}w-graphs-$graphs.txt"
    done
  done
done
