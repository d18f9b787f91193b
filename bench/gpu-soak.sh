#!/usr/bin/env bash
# bench/gpu-soak.sh OUT_DIR [SOAK_S] [WARMUP_S] [SERVER_FLAG...]: on the CUDA host, after
# build-cuda exists (bench/gpu-run.sh or .gpudeps/build-on-cuda-host.sh), soaks the demo model on
# the GPU with coalesce-stress: resident memory sampled every 5 s and fitted per hour, device
# memory read from /metrics every 30 s (curl fails there with the deps' LD_LIBRARY_PATH: bash's
# /dev/tcp). SERVER_FLAGs go to coalesce-server after the defaults (for a before/after, e.g.
# --malloc_trim_interval=0). Two soaks run side by side, on one card and the same minutes, with
# their own ports: GRPC_PORT=9001 METRICS_PORT=9002 bash bench/gpu-soak.sh OUT2 ... (defaults 8001
# and 8002). BUILD (default build-cuda) and DEVICE (default cuda) for a run elsewhere.
set -euo pipefail
out=${1:?usage: bench/gpu-soak.sh OUT_DIR [SOAK_S] [WARMUP_S] [SERVER_FLAG...]}
soak=${2:-560}
warmup=${3:-150}
shift $(($# < 3 ? $# : 3))
mkdir -p "$out"
build=${BUILD:-build-cuda}
grpc_port=${GRPC_PORT:-8001}
metrics_port=${METRICS_PORT:-8002}
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
"$build/server/coalesce-server" --device="${DEVICE:-cuda}" --max_queue_size=64 \
  --max_message_mib=4 --grpc_address="127.0.0.1:$grpc_port" \
  --metrics_address="127.0.0.1:$metrics_port" "$@" >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 120); do
  (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break
  sleep 1
done
(
  while kill -0 "$pid" 2>/dev/null; do
    if exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"; then
      printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
      echo "$(date +%s) $(grep '^coalesce_device_memory_bytes' <&3 | tr '\n' ' ')"
      exec 3>&-
    fi
    sleep 30
  done
) >"$out/device_memory.log" 2>&1 &
"$build/bench/coalesce-stress" --address="127.0.0.1:$grpc_port" \
  --metrics_address="127.0.0.1:$metrics_port" --check=reference --max_message_mib=4 \
  --server_pid="$pid" \
  --soak_s="$soak" --warmup_s="$warmup" --sample_s=5 >"$out/soak.log" 2>&1 || true
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
echo "server exit status $status" >>"$out/soak.log"
tail -n 3 "$out/soak.log"
head -n 2 "$out/device_memory.log"
tail -n 2 "$out/device_memory.log"
