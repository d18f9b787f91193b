#!/usr/bin/env bash
# The execution engine on the GPU machine, in one command (after build-on-cuda-host.sh):
#   bash bench/gpu-engine.sh OUT_DIR [ROUNDS]
# 1. the host's memcpy and PCIe rates (bench/host_bandwidth.py), then coalesce-engine-bench:
#    every default variant plus 3, 4 and 6 workers with and without CUDA graphs, each against
#    its ceilings, in one run;
# 2. bench/gpu-stress.sh: coalesce-stress (ROUNDS rounds, default 100) against a server with
#    --workers=4 (and its defaults: CUDA graphs, 2 batches per worker), every valid answer
#    checked against the model, then the server's stage histograms and graph log lines, and its
#    exit status after SIGTERM.
set -euo pipefail
out=${1:?usage: bench/gpu-engine.sh OUT_DIR [ROUNDS]}
rounds=${2:-100}
mkdir -p "$out"
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 bench/host_bandwidth.py | tee "$out/bandwidth.txt"
build-cuda/bench/coalesce-engine-bench --device=cuda --duration_s=0.6 --warmup_s=0.3 \
  --extra_variants="${EXTRA_VARIANTS:-3w4c,4w4c,6w4c,3w4cg,4w4cg,6w4cg}" >"$out/engine.txt" \
  2>"$out/engine.err"
cat "$out/engine.txt"
tail -n 6 "$out/engine.err"

bash bench/gpu-stress.sh "$out" "$rounds" --workers=4
