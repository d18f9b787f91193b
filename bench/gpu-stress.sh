#!/usr/bin/env bash
# bench/gpu-stress.sh OUT_DIR ROUNDS [SERVER_FLAG...]: on the CUDA host, after build-cuda exists,
# coalesce-stress (ROUNDS rounds, every valid answer checked against the model) against a
# coalesce-server on the GPU with its defaults plus SERVER_FLAGs; then the server's stage
# histograms, device memory and graph log lines, and its exit status after SIGTERM.
set -euo pipefail
out=${1:?usage: bench/gpu-stress.sh OUT_DIR ROUNDS [SERVER_FLAG...]}
rounds=${2:?usage: bench/gpu-stress.sh OUT_DIR ROUNDS [SERVER_FLAG...]}
shift 2
mkdir -p "$out"
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
build-cuda/server/coalesce-server --device=cuda --max_queue_size=64 --max_message_mib=4 \
  --grpc_address=127.0.0.1:8001 --metrics_address=127.0.0.1:8002 "$@" >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/8001) 2>/dev/null && break; sleep 1; done
build-cuda/bench/coalesce-stress --check=reference --max_message_mib=4 --server_pid="$pid" \
  --rounds="$rounds" >"$out/stress.log" 2>&1 || true
# curl fails there with the deps' LD_LIBRARY_PATH: bash's /dev/tcp.
if exec 3<>/dev/tcp/127.0.0.1/8002; then
  printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
  grep -E '^coalesce_batch_stage_duration_seconds_(sum|count)|^coalesce_device_memory_bytes' \
    <&3 >"$out/stage_metrics.txt" || true
  exec 3>&-
fi
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
echo "server exit status $status" >>"$out/stress.log"
echo "coalesce-server flags: --device=cuda $*"
tail -n 4 "$out/stress.log"
grep -iE "graph|worker" "$out/server.log" || echo "server log: no graph or worker line"
cat "$out/stage_metrics.txt"
