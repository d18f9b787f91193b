#!/usr/bin/env bash
# bench/path.sh: the request path's table (issue 16). Each server runs alone on the server CPUs
# and is driven at each in-flight level by h2load (nghttp2, an independent generator) and by
# coalesce-bench, both on the bench CPUs, one after the other:
#   echo       coalesce-echo-server: gRPC and the protocol's messages, no queue and no model
#   coalesce   coalesce-server with its defaults on DEVICE
#   unbatched  coalesce-server --max_batch_size=1 --workers=8
# For each run it records requests/s, p50 and p99, and the server's CPU time per request
# (utime + stime of the server process over the run, from /proc, divided by the requests the
# generator saw answered).
#
#   BUILD=build-cuda OUT_DIR=/tmp/path bench/path.sh       # GPU host (LD_LIBRARY_PATH set)
#   BUILD=build bench/path.sh                              # here, DEVICE=cpu
#
# coalesce-bench runs twice per level: with the threads and channels bench/run.sh uses
# (BENCH_THREADS, BENCH_CHANNELS) and with as many connections as h2load opens (MATCH_*).
set -euo pipefail
BUILD=${BUILD:-build}
OUT_DIR=${OUT_DIR:-/tmp/coalesce-path-$(date +%Y%m%d-%H%M%S)}
LEVELS=${LEVELS:-8 64 256}
CONFIGS=${CONFIGS:-echo coalesce unbatched}
DEVICE=${DEVICE:-auto}
WARMUP_S=${WARMUP_S:-2}
DURATION_S=${DURATION_S:-5}
NCPU=$(nproc)
SERVER_CPUS=${SERVER_CPUS:-0-$((NCPU / 2 - 1))}
BENCH_CPUS=${BENCH_CPUS:-$((NCPU / 2))-$((NCPU - 1))}
if ((NCPU >= 8)); then BENCH_THREADS=${BENCH_THREADS:-4}; else BENCH_THREADS=${BENCH_THREADS:-2}; fi
BENCH_CHANNELS=${BENCH_CHANNELS:-4}
MATCH_THREADS=${MATCH_THREADS:-8}
MATCH_CHANNELS=${MATCH_CHANNELS:-16}
H2LOAD=${H2LOAD:-$(command -v h2load || echo /opt/deps/usr/bin/h2load)}
PROTOC=${PROTOC:-$(command -v protoc || echo /opt/deps/usr/bin/protoc)}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}
HOST=127.0.0.1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_BIN=$BUILD/server/coalesce-server
CLIENT_BIN=$BUILD/client/coalesce-client
BENCH_BIN=$BUILD/client/coalesce-bench
ECHO_BIN=$BUILD/bench/coalesce-echo-server
source "$REPO/bench/common.sh"
cd "$REPO"
mkdir -p "$OUT_DIR"
SERVER_PIN=() BENCH_PIN=()
if ((NCPU >= 8)); then SERVER_PIN=(taskset -c "$SERVER_CPUS"); BENCH_PIN=(taskset -c "$BENCH_CPUS"); fi
[[ -x $H2LOAD ]] || die "h2load not found (Debian nghttp2-client; H2LOAD=)"
if [[ ! -f $OUT_DIR/bodies/infer_socket.bin ]]; then
  PROTOC=$PROTOC ${PYTHON:-python3} bench/shm_bodies.py "$OUT_DIR/bodies" >&2
fi
BODY=$OUT_DIR/bodies/infer_socket.bin
TICKS=$(getconf CLK_TCK)

# CPU seconds (user + system) the process has used so far.
cpu_seconds() { awk -v t="$TICKS" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

# h2load_row CONFIG LEVEL: one h2load run; prints a table row.
h2load_row() {
  local config=$1 level=$2 conns streams threads log before after
  conns=$((level < 16 ? level : 16)); streams=$((level / conns)); threads=$((conns < 8 ? conns : 8))
  log=$OUT_DIR/$config.h2load.c$level
  h2() {
    "${BENCH_PIN[@]}" "$H2LOAD" -c "$conns" -m "$streams" -t "$threads" \
      -H 'content-type: application/grpc' -H 'te: trailers' -d "$BODY" "$@" \
      "http://$HOST:$PORT/inference.GRPCInferenceService/ModelInfer"
  }
  h2 -D "$WARMUP_S" >/dev/null 2>&1
  before=$(cpu_seconds "$SERVER_PID")
  h2 -D "$DURATION_S" --log-file="$log.requests" >"$log.txt" 2>&1
  after=$(cpu_seconds "$SERVER_PID")
  python3 - "$config" "$level" "$log" "$before" "$after" <<'PY'
import re, sys
config, level, log, before, after = sys.argv[1:]
text = open(log + ".txt").read()
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", text).group(1))
ok = int(re.search(r"requests: .* (\d+) succeeded", text).group(1))
times = sorted(int(l.split()[2]) for l in open(log + ".requests") if l.strip())
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] / 1000.0
cpu_us = (float(after) - float(before)) / max(ok, 1) * 1e6
print("| %s | %s | h2load | %.0f | %.2f | %.2f | %.1f |" % (config, level, rps, pct(0.5), pct(0.99), cpu_us))
PY
}

# bench_row CONFIG LEVEL THREADS CHANNELS: one coalesce-bench run; prints a table row. The CPU
# window is the whole run (warm-up included), divided by the requests of the whole run estimated
# from the window's rate.
bench_row() {
  local config=$1 level=$2 threads=$3 channels=$4 csv before after
  csv=$OUT_DIR/$config.bench.t$threads.ch$channels.c$level.csv
  before=$(cpu_seconds "$SERVER_PID")
  "${BENCH_PIN[@]}" "$BENCH_BIN" --address="$HOST:$PORT" --concurrency="$level" \
    --warmup_s="$WARMUP_S" --duration_s="$DURATION_S" --threads="$threads" \
    --channels="$channels" --csv --label="$config" >"$csv" 2>>"$OUT_DIR/$config.bench.log"
  after=$(cpu_seconds "$SERVER_PID")
  python3 - "$config" "$level" "$threads" "$channels" "$csv" "$before" "$after" "$WARMUP_S" "$DURATION_S" <<'PY'
import csv, sys
config, level, threads, channels, path, before, after, warmup, duration = sys.argv[1:]
row = next(csv.DictReader(open(path)))
rps = float(row["requests_per_s"])
total = rps * (float(warmup) + float(duration))
cpu_us = (float(after) - float(before)) / max(total, 1) * 1e6
print("| %s | %s | coalesce-bench t%s/ch%s | %.0f | %.2f | %.2f | ~%.1f |" % (
    config, level, threads, channels, rps, float(row["p50_ms"]), float(row["p99_ms"]), cpu_us))
PY
}

TABLE=$OUT_DIR/table.md
{
  echo "| server | in flight | generator | requests/s | p50 ms | p99 ms | server CPU µs/request |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} >"$TABLE"
for config in $CONFIGS; do
  free_port PORT
  free_port METRICS_PORT
  case $config in
    echo) start_server echo "$ECHO_BIN" --grpc_address="$HOST:$PORT" ;;
    coalesce) start_server coalesce "$SERVER_BIN" --device="$DEVICE" --grpc_address="$HOST:$PORT" \
      --metrics_address="$HOST:$METRICS_PORT" ;;
    unbatched) start_server unbatched "$SERVER_BIN" --device="$DEVICE" --max_batch_size=1 \
      --workers=8 --grpc_address="$HOST:$PORT" --metrics_address="$HOST:$METRICS_PORT" ;;
    *) die "unknown config $config" ;;
  esac
  wait_ready "$config" "$HOST:$PORT" || { stop_server; continue; }
  for level in $LEVELS; do
    log "$config: in flight $level"
    h2load_row "$config" "$level" | tee -a "$TABLE"
    bench_row "$config" "$level" "$BENCH_THREADS" "$BENCH_CHANNELS" | tee -a "$TABLE"
    bench_row "$config" "$level" "$MATCH_THREADS" "$MATCH_CHANNELS" | tee -a "$TABLE"
  done
  stop_server
done
cat "$TABLE"
