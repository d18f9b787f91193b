#!/usr/bin/env bash
# bench/gpu-run.sh: the whole GPU benchmark in one command on a CUDA host that has a PyTorch
# wheel but no network (the workplace's device machine). From the repository root, after
# ../shared/gpu/fetch-debs.sh .gpudeps on a machine with apt:
#   bash bench/gpu-run.sh OUT_DIR
# Builds against the wheel's LibTorch, then runs bench/run.sh (coalesce vs unbatched, echo
# ceiling, model ceiling, Python peer), bench/policy.sh (deadline vs fixed policy) and
# coalesce-engine-bench (executor + backend vs model ceiling, no RPC), writing every table and
# log into OUT_DIR.
set -euo pipefail
out=${1:?usage: bench/gpu-run.sh OUT_DIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
bash .gpudeps/build-on-cuda-host.sh build-cuda -DCOALESCE_BUILD_TESTS=OFF -DCOALESCE_WITH_MPS=ON \
  >"$out/build.log" 2>&1 ||
  { tail -30 "$out/build.log"; exit 1; }
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHON=${PYTHON:-python3} PROTOC=${PROTOC:-/opt/deps/usr/bin/protoc}
BUILD=build-cuda OUT_DIR="$out/run" CONFIGS=${CONFIGS:-"unbatched coalesce echo model python python-unbatched"} \
  WARMUP_S=${WARMUP_S:-2} DURATION_S=${DURATION_S:-4} bench/run.sh 2>"$out/run.log"
BUILD=build-cuda OUT_DIR="$out/policy" DEADLINE_MS=${DEADLINE_MS:-10} FIXED_DELAY_US=${FIXED_DELAY_US:-1000} \
  WARMUP_S=${WARMUP_S:-2} DURATION_S=${DURATION_S:-4} \
  bench/policy.sh 2>"$out/policy.log"
build-cuda/bench/coalesce-engine-bench --device=cuda --duration_s=${ENGINE_DURATION_S:-1} \
  >"$out/engine.txt" 2>"$out/engine.log"
