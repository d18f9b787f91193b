#!/usr/bin/env bash
# bench/cpu-soak.sh OUT_DIR [SOAK_S] [WARMUP_S] [SERVER_FLAG...]: the soak of bench/gpu-soak.sh on
# a CPU machine, server and client on one core (CORE, default 1), with the echo backend (the
# request rate is closest to the GPU's): coalesce-stress --check=echo with its slow clients and
# scrapes, resident memory fitted per hour after the warm-up. With build/malloc_probe.so (see
# bench/malloc_probe.c) the server also records its malloc totals every 5 s in OUT_DIR/probe.txt.
# SERVER_FLAGs go to coalesce-server after the defaults (e.g. --malloc_trim_interval=0).
set -euo pipefail
out=${1:?usage: bench/cpu-soak.sh OUT_DIR [SOAK_S] [WARMUP_S] [SERVER_FLAG...]}
soak=${2:-340}
warmup=${3:-120}
shift $(($# < 3 ? $# : 3))
core=${CORE:-1}
mkdir -p "$out"
probe=()
if [[ -f build/malloc_probe.so ]]; then
  probe=(env "PROBE_OUT=$out/probe.txt" LD_PRELOAD="$PWD/build/malloc_probe.so")
fi
"${probe[@]}" taskset -c "$core" build/server/coalesce-server --backend=echo \
  --max_queue_size=64 --max_message_mib=4 --grpc_address=127.0.0.1:18001 \
  --metrics_address=127.0.0.1:18002 "$@" >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/18001) 2>/dev/null && break; sleep 1; done
taskset -c "$core" build/bench/coalesce-stress --check=echo --max_message_mib=4 \
  --address=127.0.0.1:18001 --metrics_address=127.0.0.1:18002 --server_pid="$pid" \
  --soak_s="$soak" --warmup_s="$warmup" --sample_s=5 >"$out/soak.log" 2>&1 || true
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
echo "server exit status $status" >>"$out/soak.log"
tail -n 3 "$out/soak.log"
