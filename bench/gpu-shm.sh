#!/usr/bin/env bash
# bench/gpu-shm.sh OUT_DIR: tensors through the gRPC socket vs through system shared memory
# (Triton's extension, docs/shared-memory.md), against one coalesce server serving the demo model.
#
#   BUILD=build-cuda bash bench/gpu-shm.sh OUT_DIR              # GPU host, after bench/gpu-run.sh
#   BUILD=build DURATION_S=2 WARMUP_S=1 bash bench/gpu-shm.sh /tmp/shm   # any machine
#
# At each concurrency (CONCURRENCY, default 8,64,256: closed loop, single-sample requests),
# coalesce-bench runs once with inputs and outputs in the message and once with --shared_memory
# (each request in flight its own slice of one /dev/shm region, registered before the level and
# unregistered after it), back to back on the same server, so the two modes see the same warm
# server; then h2load (an independent generator) does the same with request bodies from
# bench/shm_bodies.py. Prints the tables (requests/s, p50, p99 per mode and level) and writes
# them, the raw CSVs
# and the logs into OUT_DIR. Servers run on SERVER_CPUS and the load on BENCH_CPUS (taskset) on
# machines with at least 8 cores; it builds nothing and needs no network.
set -euo pipefail
OUT_DIR=${1:?usage: bench/gpu-shm.sh OUT_DIR}
BUILD=${BUILD:-build-cuda}
CONCURRENCY=${CONCURRENCY:-8,64,256}
WARMUP_S=${WARMUP_S:-2}
DURATION_S=${DURATION_S:-5}
DEVICE=${DEVICE:-auto}
PRECISION=${PRECISION:-auto}
SERVER_FLAGS=${SERVER_FLAGS:-}
PIN=${PIN:-auto}
NCPU=$(nproc)
SERVER_CPUS=${SERVER_CPUS:-0-$((NCPU / 2 - 1))}
BENCH_CPUS=${BENCH_CPUS:-$((NCPU / 2))-$((NCPU - 1))}
BENCH_THREADS=${BENCH_THREADS:-0}  # 0: per level, as h2load (coalesce-bench --help)
BENCH_CHANNELS=${BENCH_CHANNELS:-0}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}
HOST=${HOST:-127.0.0.1}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# The GPU host runs the Debian libraries it was built against from /opt/deps (bench/gpu-run.sh).
if [[ -d /opt/deps/usr/lib/x86_64-linux-gnu ]]; then
  export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
SERVER_BIN=$BUILD/server/coalesce-server
CLIENT_BIN=$BUILD/client/coalesce-client
BENCH_BIN=$BUILD/client/coalesce-bench
# log, die, free_port, start_server, wait_ready, stop_server, run_fg and the EXIT trap.
source "$REPO/bench/common.sh"
for bin in "$SERVER_BIN" "$CLIENT_BIN" "$BENCH_BIN"; do
  [[ -x $bin ]] || die "$bin not found: build first (BUILD=<folder>)"
done
mkdir -p "$OUT_DIR"

SERVER_PIN=()
BENCH_PIN=()
PIN_NOTE="not pinned: server and load generator share all $NCPU cores"
if [[ $PIN == 1 || ($PIN == auto && NCPU -ge 8) ]] && command -v taskset >/dev/null; then
  SERVER_PIN=(taskset -c "$SERVER_CPUS")
  BENCH_PIN=(taskset -c "$BENCH_CPUS")
  PIN_NOTE="pinned with taskset: server on cores $SERVER_CPUS, load generator on $BENCH_CPUS"
fi
{
  echo "date: $(date -Is)"
  echo "host: $(uname -n), $NCPU cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
  fi
  echo "command: BUILD=$BUILD CONCURRENCY=$CONCURRENCY WARMUP_S=$WARMUP_S DURATION_S=$DURATION_S" \
    "DEVICE=$DEVICE PRECISION=$PRECISION PIN=$PIN SERVER_FLAGS='$SERVER_FLAGS'" \
    "BODIES=${BODIES:-} bench/gpu-shm.sh $OUT_DIR"
  echo "$PIN_NOTE"
  echo "/dev/shm: $(df -h /dev/shm 2>/dev/null | awk 'NR == 2 { print $2 " total, " $4 " free" }')"
} | tee "$OUT_DIR/machine.txt" >&2

free_port grpc
free_port metrics
# shellcheck disable=SC2086  # SERVER_FLAGS is a list of flags
start_server coalesce "$SERVER_BIN" --grpc_address="$HOST:$grpc" \
  --metrics_address="$HOST:$metrics" --device="$DEVICE" --precision="$PRECISION" \
  --drain_timeout=5s $SERVER_FLAGS
wait_ready coalesce "$HOST:$grpc" || die "the server did not start (log: $SERVER_LOG)"

SUMMARY=$OUT_DIR/summary.csv
echo "mode,concurrency,requests_per_s,p50_ms,p99_ms,ok,errors,error_codes,client_cpu_cores" >"$SUMMARY"
# The columns of coalesce-bench's CSV row that the summary keeps.
pick() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) at[$i] = i; next }
    NR == 2 { print $(at["requests_per_s"]) "," $(at["p50_ms"]) "," $(at["p99_ms"]) "," \
      $(at["ok"]) "," $(at["errors"]) "," $(at["error_codes"]) "," $(at["client_cpu_cores"]); exit }' "$1"
}
for level in ${CONCURRENCY//,/ }; do
  for mode in socket shm; do
    raw=$OUT_DIR/$mode.c$level.csv
    extra=()
    [[ $mode == shm ]] && extra=(--shared_memory)
    log "$mode: concurrency $level (${WARMUP_S}s warm-up + ${DURATION_S}s)"
    if run_fg ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} "$BENCH_BIN" --address="$HOST:$grpc" \
      --concurrency="$level" --warmup_s="$WARMUP_S" --duration_s="$DURATION_S" \
      --threads="$BENCH_THREADS" --channels="$BENCH_CHANNELS" --csv --label="$mode" \
      ${extra[@]+"${extra[@]}"} >"$raw" 2>>"$OUT_DIR/$mode.bench.log"; then
      echo "$mode,$level,$(pick "$raw")" >>"$SUMMARY"
    else
      log "$mode: coalesce-bench failed at concurrency $level (see $mode.bench.log)"
      echo "$mode,$level,,,,,,," >>"$SUMMARY"
    fi
  done
done

# The same comparison from an independent load generator: h2load (nghttp2) sending one
# gRPC-framed request body, made by bench/shm_bodies.py (BODIES: a folder it wrote; made here when
# unset and python3 has numpy and protobuf). Its regions are registered with h2load itself.
H2LOAD=${H2LOAD:-$(command -v h2load || echo /opt/deps/usr/bin/h2load)}
H2LOAD_TABLE=$OUT_DIR/h2load.txt
if [[ -z ${BODIES:-} ]] && python3 -c 'import numpy, google.protobuf' 2>/dev/null; then
  BODIES=$OUT_DIR/bodies
  PROTOC=${PROTOC:-$(command -v protoc || echo /opt/deps/usr/bin/protoc)} \
    python3 bench/shm_bodies.py "$BODIES" >&2
fi
if [[ -x $H2LOAD && -n ${BODIES:-} && -f $BODIES/infer_shm.bin ]]; then
  url=http://$HOST:$grpc/inference.GRPCInferenceService
  h2() { "$H2LOAD" -H 'content-type: application/grpc' -H 'te: trailers' "$@"; }
  bytes=$(cat "$BODIES/region_bytes")
  truncate -s "$bytes" /dev/shm/coalesce_h2load_in /dev/shm/coalesce_h2load_out
  h2 -n1 -c1 -d "$BODIES/register_in.bin" "$url/SystemSharedMemoryRegister" >"$OUT_DIR/h2load.register.log"
  h2 -n1 -c1 -d "$BODIES/register_out.bin" "$url/SystemSharedMemoryRegister" >>"$OUT_DIR/h2load.register.log"
  echo "| mode | in flight | requests/s | p50 ms | p99 ms | server's answers by code |" >"$H2LOAD_TABLE"
  echo "| --- | --- | --- | --- | --- | --- |" >>"$H2LOAD_TABLE"
  for level in ${CONCURRENCY//,/ }; do
    for mode in socket shm; do
      log "h2load $mode: concurrency $level (${WARMUP_S}s warm-up + ${DURATION_S}s)"
      ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} env H2LOAD="$H2LOAD" bash bench/h2load_grpc.sh warmup \
        "$BODIES/infer_$mode.bin" "$url/ModelInfer" "$level" "$WARMUP_S" \
        "http://$HOST:$metrics/metrics" "$OUT_DIR/h2load" >/dev/null
      ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} env H2LOAD="$H2LOAD" bash bench/h2load_grpc.sh "$mode" \
        "$BODIES/infer_$mode.bin" "$url/ModelInfer" "$level" "$DURATION_S" \
        "http://$HOST:$metrics/metrics" "$OUT_DIR/h2load" >>"$H2LOAD_TABLE"
    done
  done
  h2 -n1 -c1 -d "$BODIES/unregister.bin" "$url/SystemSharedMemoryUnregister" >>"$OUT_DIR/h2load.register.log"
  rm -f /dev/shm/coalesce_h2load_in /dev/shm/coalesce_h2load_out
else
  log "h2load comparison skipped: no h2load ($H2LOAD) or no request bodies (BODIES)"
fi
stop_server

{
  printf '%-7s %11s %12s %9s %9s %7s\n' mode concurrency requests/s p50_ms p99_ms errors
  awk -F, 'NR > 1 { printf "%-7s %11s %12s %9s %9s %7s\n", $1, $2, ($3 == "" ? "-" : sprintf("%.0f", $3)),
      ($4 == "" ? "-" : $4), ($5 == "" ? "-" : $5), ($7 == "" ? "-" : $7) }' "$SUMMARY"
} | tee "$OUT_DIR/table.txt"
[[ -f $H2LOAD_TABLE ]] && { echo "h2load, same server:"; cat "$H2LOAD_TABLE"; } | tee -a "$OUT_DIR/table.txt"
exit 0
