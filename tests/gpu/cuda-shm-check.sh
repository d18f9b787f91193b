#!/usr/bin/env bash
# tests/gpu/cuda-shm-check.sh [BUILD]: on the CUDA host, after a CUDA build (bench/gpu-run.sh or
# bash .gpudeps/build-on-cuda-host.sh build-cuda), starts coalesce-server on the GPU and runs
# tests/gpu/cuda_shared_memory_check.py against it. Exit status 0 when every check passes.
set -euo pipefail
BUILD=${1:-build-cuda}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
port=$((20000 + RANDOM % 20000))
"$BUILD/server/coalesce-server" --device=cuda --grpc_address=127.0.0.1:$port \
  --metrics_address=127.0.0.1:$((port + 1)) >/tmp/cuda-shm-check.server.log 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 180); do
  "$BUILD/client/coalesce-client" --address=127.0.0.1:$port --timeout_ms=2000 >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { tail -20 /tmp/cuda-shm-check.server.log; exit 1; }
  sleep 1
done
status=0
${PYTHON:-python3} tests/gpu/cuda_shared_memory_check.py --address=127.0.0.1:$port \
  --protoc="${PROTOC:-/opt/deps/usr/bin/protoc}" || status=$?
grep -i "cuda shared memory\|error" /tmp/cuda-shm-check.server.log | tail -5 || true
exit $status
