#!/usr/bin/env bash
# bench/run.sh: coalesce against its baselines, ceilings and Python peer, in one run.
#
#   BUILD=build bench/run.sh                       # what `make bench` runs after building
#   BUILD=build-cuda PIN=1 bench/run.sh            # GPU host (LD_LIBRARY_PATH set by the caller)
#   MODEL_REPOSITORY=R UNBATCHED_REPOSITORY=U MODEL=encoder VARIABLE_DIM=16:256 bench/run.sh
#                                                  # a repository's model (bench/gpu-models.sh)
#
# Each configuration is started on this machine, made ready, driven by coalesce-bench with the
# same settings (closed loop, one single-sample request per outstanding slot, one coalesce-bench
# run per concurrency level), and stopped:
#   unbatched         coalesce --max_batch_size=1 --workers=8 (the roadmap's 8 threads at batch 1)
#   coalesce          coalesce with its defaults (2 workers, deadline policy, fp16 on GPU)
#   echo              coalesce-echo-server: the protocol's ceiling on this machine
#   model             coalesce-model-ceiling at the mean batch size coalesce formed at each level
#   python            bench/peers/python_batching_server.py (the roadmap's batching server)
#   python-unbatched  the same with --unbatched (off unless CONFIGS names it)
# then an open-loop pass against coalesce: Poisson arrivals at OPEN_LOOP_FRACTION of its peak.
# At each level the configurations in H2LOAD_CONFIGS are also driven by h2load (nghttp2, an
# independent generator) with the same request bytes, right after coalesce-bench, so that every
# ceiling is measured by both in the same run; and every server's CPU time per request
# (utime + stime from /proc over the measurement window, divided by the requests answered in it)
# is recorded beside each generator's row.
# It prints one table and writes it, the raw CSVs, the logs and a plot (when matplotlib imports)
# into OUT_DIR. It builds nothing, installs nothing and needs no network.
set -euo pipefail

# ---- Knobs ----------------------------------------------------------------------------------
# Build folder holding the binaries (server/, client/, bench/ inside it).
BUILD=${BUILD:-build}
# Where everything is written: table.txt, summary.csv, per-level CSVs, logs, bench.png.
OUT_DIR=${OUT_DIR:-/tmp/coalesce-bench-$(date +%Y%m%d-%H%M%S)}
# Closed-loop concurrency levels: outstanding requests, each of one sample.
CONCURRENCY=${CONCURRENCY:-1,8,64,256}
# Seconds of load before, and of measurement at, each level (and of the open-loop pass).
WARMUP_S=${WARMUP_S:-2}
DURATION_S=${DURATION_S:-5}
# Configurations to run (any order; coalesce always runs first, since model needs its batches).
CONFIGS=${CONFIGS:-unbatched coalesce echo model python}
# The model: the built-in demo, or MODEL of MODEL_REPOSITORY (a Triton-style repository, as
# bench/make_models.py writes). The unbatched configuration then serves UNBATCHED_REPOSITORY,
# the same models with max_batch_size 1 (the server's --max_batch_size is the demo's alone);
# without it, unbatched is skipped. The Python peer serves only the demo. VARIABLE_DIM: the size
# of the model's variable dims after the batch one (a token input's length): N, or MIN:MAX for
# lengths drawn uniformly per request by coalesce-bench (--variable_dim). What sends or runs one
# shape (coalesce-client's readiness call, h2load's body, the model ceiling) gets N, or for a
# range its mean rounded, (MIN + MAX) / 2: the ceiling is then the model at the mean length,
# which for padded batches (that pay for their bucket) is above what they can reach.
MODEL=${MODEL:-demo}
MODEL_REPOSITORY=${MODEL_REPOSITORY:-}
UNBATCHED_REPOSITORY=${UNBATCHED_REPOSITORY:-}
VARIABLE_DIM=${VARIABLE_DIM:-}
# Device and precision of coalesce, the model ceiling and the Python peer.
DEVICE=${DEVICE:-auto}
PRECISION=${PRECISION:-auto}
# Executor workers of the default coalesce (and of the model ceiling) and of the unbatched one.
WORKERS=${WORKERS:-2}
UNBATCHED_WORKERS=${UNBATCHED_WORKERS:-8}
# Extra flags for both coalesce servers, e.g. "--batch_policy=fixed --max_queue_delay_us=500".
SERVER_FLAGS=${SERVER_FLAGS:-}
# Timed seconds per batch size of the model ceiling (plus 0.5 s warm-up each).
MODEL_SECONDS=${MODEL_SECONDS:-2}
# Open loop against coalesce at this fraction of its peak closed-loop rate; 0 skips it.
OPEN_LOOP_FRACTION=${OPEN_LOOP_FRACTION:-0.8}
# Python interpreter for the peer and the plot (the GPU host's pip env; here /usr/bin/python3).
PYTHON=${PYTHON:-python3}
# protoc for the Python peer (the GPU host's is /opt/deps/usr/bin/protoc).
PROTOC=${PROTOC:-protoc}
# Pinning: 1 runs servers on SERVER_CPUS and the load generator on BENCH_CPUS (taskset); 0 never;
# auto pins on machines with at least 8 cores. Default sets: the lower and the upper half.
PIN=${PIN:-auto}
NCPU=$(nproc)
SERVER_CPUS=${SERVER_CPUS:-0-$((NCPU / 2 - 1))}
BENCH_CPUS=${BENCH_CPUS:-$((NCPU / 2))-$((NCPU - 1))}
# coalesce-bench's completion threads and gRPC channels (TCP connections); 0: chosen per level
# as h2load's are (min(level, 16) connections, min(connections, 8) threads).
BENCH_THREADS=${BENCH_THREADS:-0}
BENCH_CHANNELS=${BENCH_CHANNELS:-0}
# Configurations that h2load drives too, at every level (empty: none; h2load missing: none).
# The Python peer is not among the defaults: h2load sends no deadline, which it refuses.
H2LOAD_CONFIGS=${H2LOAD_CONFIGS-echo coalesce}
# How long a server may take to answer its first request (model profiling, torch import).
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}
HOST=${HOST:-127.0.0.1}

# ---- Helpers --------------------------------------------------------------------------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_BIN=$BUILD/server/coalesce-server
CLIENT_BIN=$BUILD/client/coalesce-client
BENCH_BIN=$BUILD/client/coalesce-bench
ECHO_BIN=$BUILD/bench/coalesce-echo-server
MODEL_BIN=$BUILD/bench/coalesce-model-ceiling
ALL_CONFIGS=(coalesce model unbatched echo python python-unbatched)  # the order they run in

# One length for what takes one shape: VARIABLE_DIM, or a range's mean rounded.
ONE_VARIABLE_DIM=
if [[ -n $VARIABLE_DIM ]]; then
  if [[ $VARIABLE_DIM =~ ^([0-9]+):([0-9]+)$ ]]; then
    ONE_VARIABLE_DIM=$(((BASH_REMATCH[1] + BASH_REMATCH[2] + 1) / 2))
  elif [[ $VARIABLE_DIM =~ ^[0-9]+$ ]]; then
    ONE_VARIABLE_DIM=$VARIABLE_DIM
  else
    echo "bench/run.sh: VARIABLE_DIM=$VARIABLE_DIM: expected N or MIN:MAX, e.g. 128 or 16:256" >&2
    exit 2
  fi
fi
# MODEL_ARGS: coalesce-client and h2load's body (bench/common.sh), one shape; BENCH_MODEL_ARGS:
# coalesce-bench's load, every length of the range.
MODEL_ARGS=(--model="$MODEL")
BENCH_MODEL_ARGS=(--model="$MODEL")
if [[ -n $VARIABLE_DIM ]]; then
  MODEL_ARGS+=(--variable_dim="$ONE_VARIABLE_DIM")
  BENCH_MODEL_ARGS+=(--variable_dim="$VARIABLE_DIM")
fi
CEILING_ARGS=()
if [[ -n $MODEL_REPOSITORY ]]; then
  CEILING_ARGS=(--model_dir="$MODEL_REPOSITORY/$MODEL")
  # The server runs a model of variable dims without CUDA graphs (its outputs' sizes are known
  # only after the call), so its ceiling runs without them too.
  [[ -n $VARIABLE_DIM ]] && CEILING_ARGS+=(--variable_dim="$ONE_VARIABLE_DIM" --cuda_graphs=false)
fi

wants() { [[ " $CONFIGS " == *" $1 "* ]]; }
wants_h2load() { [[ " $H2LOAD_CONFIGS " == *" $1 "* ]]; }
# log, die, free_port, scrape, start_server, wait_ready, stop_server and the EXIT trap.
source "$REPO/bench/common.sh"

# CSV row 2 of file $1, only the columns named in $2 (comma-separated), in that order.
SUMMARY_COLUMNS=requests_per_s,samples_per_s,p50_ms,p90_ms,p99_ms,max_ms,ok,errors,skipped,error_codes,client_cpu_cores,generator_behind
# summary.csv: config, level, SUMMARY_COLUMNS, then server_cpu_us and mean_batch (last: the
# model configuration reads it as $NF).
pick_columns() {
  awk -F, -v want="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) at[$i] = i; next }
    NR == 2 { n = split(want, w, ","); line = ""
              for (j = 1; j <= n; j++) line = line (j > 1 ? "," : "") (w[j] in at ? $(at[w[j]]) : "")
              print line; exit }' "$1"
}

# run_levels CONFIG ADDRESS [METRICS_ADDRESS]: one coalesce-bench run per concurrency level,
# appending to summary.csv with the server's CPU µs per request over the window (sampled from
# the generator's start + WARMUP_S: early by coalesce-bench's connect time); with a metrics
# address, also the mean batch size formed meanwhile (warm-up included: it runs at the same
# concurrency). For a configuration in H2LOAD_CONFIGS, h2load then runs the same level (row
# CONFIG-h2load).
run_levels() {
  local config=$1 address=$2 metrics=${3:-} level raw before after mean cpu window_pid row
  for level in ${CONCURRENCY//,/ }; do
    raw=$OUT_DIR/$config.c$level.csv
    [[ -n $metrics ]] && before=$(batch_totals "$metrics")
    log "$config: concurrency $level (${WARMUP_S}s warm-up + ${DURATION_S}s)"
    cpu_window "$SERVER_PID" "$WARMUP_S" "$DURATION_S" "$raw.cpu" &
    window_pid=$!
    if ! run_fg ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} "$BENCH_BIN" --address="$address" \
      --concurrency="$level" --warmup_s="$WARMUP_S" --duration_s="$DURATION_S" \
      --threads="$BENCH_THREADS" --channels="$BENCH_CHANNELS" --csv --label="$config" \
      "${BENCH_MODEL_ARGS[@]}" \
      >"$raw" 2>>"$OUT_DIR/$config.bench.log"; then
      log "$config: coalesce-bench failed at concurrency $level (see $config.bench.log)"
      kill "$window_pid" 2>/dev/null || true
      continue
    fi
    wait "$window_pid" || true
    cpu=$(us_per_request "$raw.cpu" "$(pick_columns "$raw" ok)")
    mean=
    if [[ -n $metrics ]]; then
      after=$(batch_totals "$metrics")
      mean=$(mean_batch "$before" "$after")
    fi
    echo "$config,$level,$(pick_columns "$raw" "$SUMMARY_COLUMNS"),$cpu,$mean" >>"$SUMMARY"
    if wants_h2load "$config"; then
      request_body "$OUT_DIR/request.bin" "$address"
      log "$config: concurrency $level by h2load (${WARMUP_S}s warm-up + ${DURATION_S}s)"
      if row=$(h2load_level "$OUT_DIR/$config.h2load.c$level" "$address" "$OUT_DIR/request.bin" \
        "$level" "$SERVER_PID"); then
        # requests_per_s,p50_ms,p99_ms,answered,server_cpu_us into the summary's columns.
        awk -F, -v c="$config-h2load" -v l="$level" '{
          printf "%s,%s,%s,%s,%s,,%s,,%s,,,,,,%s,\n", c, l, $1, $1, $2, $3, $4, $5 }' <<<"$row" >>"$SUMMARY"
      else
        log "$config: h2load answered nothing at concurrency $level (see $config.h2load.c$level.txt)"
      fi
    fi
  done
}


# ---- Set-up ---------------------------------------------------------------------------------
cd "$REPO"
for bin in "$SERVER_BIN" "$CLIENT_BIN" "$BENCH_BIN"; do
  [[ -x $bin ]] || die "$bin not found: build first (make bench, or BUILD=<folder>)"
done
[[ $MODEL == demo || -n $MODEL_REPOSITORY ]] || die "MODEL=$MODEL needs MODEL_REPOSITORY"
if [[ $MODEL != demo ]]; then
  for config in python python-unbatched; do
    wants "$config" && log "$config skipped: the Python peer serves only the demo model"
  done
  CONFIGS=$(tr ' ' '\n' <<<"$CONFIGS" | grep -vx 'python\|python-unbatched' | xargs)
fi
if [[ -n $MODEL_REPOSITORY && -z $UNBATCHED_REPOSITORY ]] && wants unbatched; then
  log "unbatched skipped: MODEL_REPOSITORY without UNBATCHED_REPOSITORY"
  CONFIGS=$(tr ' ' '\n' <<<"$CONFIGS" | grep -vx unbatched | xargs)
fi
wants echo && { [[ -x $ECHO_BIN ]] || die "$ECHO_BIN not found"; }
wants model && { [[ -x $MODEL_BIN ]] || die "$MODEL_BIN not found"; }
if wants python || wants python-unbatched; then
  command -v "$PYTHON" >/dev/null || die "PYTHON=$PYTHON not found"
  command -v "$PROTOC" >/dev/null || die "PROTOC=$PROTOC not found (the Python peer needs it)"
fi
mkdir -p "$OUT_DIR"
SUMMARY=$OUT_DIR/summary.csv
echo "config,level,$SUMMARY_COLUMNS,server_cpu_us,mean_batch" >"$SUMMARY"

SERVER_PIN=()
BENCH_PIN=()
PIN_NOTE="not pinned: servers and load generator share all $NCPU cores"
if [[ $PIN == 1 || ($PIN == auto && NCPU -ge 8) ]]; then
  if ((NCPU >= 4)) && command -v taskset >/dev/null; then
    SERVER_PIN=(taskset -c "$SERVER_CPUS")
    BENCH_PIN=(taskset -c "$BENCH_CPUS")
    PIN_NOTE="pinned with taskset: servers and model ceiling on cores $SERVER_CPUS, load generator on $BENCH_CPUS"
  else
    log "PIN=$PIN ignored: needs taskset and at least 4 cores (have $NCPU)"
  fi
fi
MAX_LEVEL=$(tr ',' '\n' <<<"$CONCURRENCY" | sort -n | tail -n 1)
if [[ -n $H2LOAD_CONFIGS && ! -x $H2LOAD ]]; then
  log "h2load not found (Debian nghttp2-client; or H2LOAD=): no h2load rows"
  H2LOAD_CONFIGS=
fi
PY_PRECISION=$PRECISION
[[ $PRECISION == bf16 ]] && PY_PRECISION=auto  # the peer knows auto, fp16, fp32

{
  echo "date: $(date -Is)"
  echo "host: $(uname -n), $NCPU cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
  fi
  echo "command: ${MODEL_REPOSITORY:+MODEL_REPOSITORY=$MODEL_REPOSITORY UNBATCHED_REPOSITORY=$UNBATCHED_REPOSITORY }MODEL=$MODEL${VARIABLE_DIM:+ VARIABLE_DIM=$VARIABLE_DIM} BUILD=$BUILD PYTHON=$PYTHON CONCURRENCY=$CONCURRENCY WARMUP_S=$WARMUP_S DURATION_S=$DURATION_S" \
    "DEVICE=$DEVICE PRECISION=$PRECISION CONFIGS=\"$CONFIGS\" PIN=$PIN" \
    "${SERVER_FLAGS:+SERVER_FLAGS=\"$SERVER_FLAGS\" }bench/run.sh"
  echo "$PIN_NOTE"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
} >"$OUT_DIR/machine.txt"
cat "$OUT_DIR/machine.txt" >&2
log "writing to $OUT_DIR"

# coalesce-server with the shared flags plus "$@", serving REPOSITORY (empty: the demo).
coalesce_server() {
  local name=$1 repository=$2 grpc metrics
  shift 2
  free_port grpc
  free_port metrics
  # shellcheck disable=SC2086  # SERVER_FLAGS is a list of flags
  start_server "$name" "$SERVER_BIN" --grpc_address="$HOST:$grpc" \
    --metrics_address="$HOST:$metrics" --device="$DEVICE" --precision="$PRECISION" \
    --drain_timeout=5s ${repository:+--model_repository="$repository"} "$@" $SERVER_FLAGS
  RUN_ADDRESS=$HOST:$grpc
  RUN_METRICS=$HOST:$metrics
  wait_ready "$name" "$RUN_ADDRESS"
}

# ---- The configurations ---------------------------------------------------------------------
OPEN_RATE=
port=
for config in "${ALL_CONFIGS[@]}"; do
  wants "$config" || continue
  case $config in
    coalesce)
      if ! coalesce_server coalesce "$MODEL_REPOSITORY" --workers="$WORKERS"; then
        stop_server
        continue
      fi
      run_levels coalesce "$RUN_ADDRESS" "$RUN_METRICS"
      peak=$(awk -F, '$1 == "coalesce" && $3 > p { p = $3 } END { printf "%.0f", p + 0 }' "$SUMMARY")
      if awk -v f="$OPEN_LOOP_FRACTION" 'BEGIN { exit !(f > 0) }' && ((peak > 0)); then
        OPEN_RATE=$(awk -v p="$peak" -v f="$OPEN_LOOP_FRACTION" 'BEGIN { printf "%.0f", p * f }')
        before=$(batch_totals "$RUN_METRICS")
        log "coalesce: open loop, Poisson at $OPEN_RATE req/s ($OPEN_LOOP_FRACTION x peak $peak)"
        if run_fg ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} "$BENCH_BIN" --address="$RUN_ADDRESS" \
          --rate="$OPEN_RATE" --warmup_s="$WARMUP_S" --duration_s="$DURATION_S" \
          --threads="$BENCH_THREADS" --channels="$BENCH_CHANNELS" --csv --label=coalesce-open \
          "${BENCH_MODEL_ARGS[@]}" \
          >"$OUT_DIR/coalesce.open.csv" 2>>"$OUT_DIR/coalesce.bench.log"; then
          after=$(batch_totals "$RUN_METRICS")
          mean=$(mean_batch "$before" "$after")
          echo "coalesce-open,$OPEN_RATE,$(pick_columns "$OUT_DIR/coalesce.open.csv" \
            "$SUMMARY_COLUMNS"),,$mean" >>"$SUMMARY"  # no server CPU column for it
        else
          log "coalesce: open-loop coalesce-bench failed (see coalesce.bench.log)"
        fi
      fi
      # The server's counters over the whole run (batch sizes, padding, stages), for reading after.
      scrape "$RUN_METRICS" >"$OUT_DIR/coalesce.metrics.txt" 2>/dev/null || true
      stop_server
      ;;
    unbatched)
      if coalesce_server unbatched "$UNBATCHED_REPOSITORY" --workers="$UNBATCHED_WORKERS" \
        --max_batch_size=1; then
        run_levels unbatched "$RUN_ADDRESS" "$RUN_METRICS"
      fi
      stop_server
      ;;
    echo)
      free_port port
      start_server echo "$ECHO_BIN" --grpc_address="$HOST:$port"
      wait_ready echo "$HOST:$port" && run_levels echo "$HOST:$port"
      stop_server
      ;;
    python | python-unbatched)
      free_port port
      extra=()
      [[ $config == python-unbatched ]] && extra=(--unbatched)
      start_server "$config" "$PYTHON" bench/peers/python_batching_server.py \
        --address="$HOST:$port" --device="$DEVICE" --precision="$PY_PRECISION" \
        --protoc="$(command -v "$PROTOC")" --workers="$((MAX_LEVEL > 256 ? MAX_LEVEL : 256))" \
        ${extra[@]+"${extra[@]}"}
      wait_ready "$config" "$HOST:$port" && run_levels "$config" "$HOST:$port"
      stop_server
      ;;
    model)
      # The batch sizes coalesce formed, rounded; without them, the levels themselves (capped
      # at the server's default max batch size, 256) stand in.
      sizes=$(awk -F, -v levels="$CONCURRENCY" '
        $1 == "coalesce" && $NF != "" { b = int($NF + 0.5); if (b < 1) b = 1; s[$2] = b }
        END { n = split(levels, l, ","); out = ""
              for (i = 1; i <= n; i++) { b = (l[i] in s) ? s[l[i]] : (l[i] > 256 ? 256 : l[i])
                                         if (!(b in seen)) { seen[b] = 1; out = out (out == "" ? "" : ",") b } }
              print out }' "$SUMMARY")
      log "model: $MODEL in-process at batch sizes $sizes, $WORKERS workers"
      if run_fg ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$MODEL_BIN" --device="$DEVICE" \
        --precision="$PRECISION" --workers="$WORKERS" --batch_sizes="$sizes" \
        ${CEILING_ARGS[@]+"${CEILING_ARGS[@]}"} \
        --seconds="$MODEL_SECONDS" --csv >"$OUT_DIR/model.csv" 2>"$OUT_DIR/model.log"; then
        # One summary row per level: the ceiling at the batch size coalesce formed there.
        awk -F, -v levels="$CONCURRENCY" '
          FILENAME == ARGV[1] { if (FNR > 1) { rate[$4] = $8; med[$4] = $6; p90[$4] = $7 }; next }
          $1 == "coalesce" && $NF != "" { b = int($NF + 0.5); s[$2] = (b < 1 ? 1 : b) }
          END { n = split(levels, l, ",")
                for (i = 1; i <= n; i++) {
                  b = (l[i] in s) ? s[l[i]] : (l[i] > 256 ? 256 : l[i])
                  if (b in rate)
                    printf "model,%s,%s,%s,%s,%s,,,,,,,,,,%d\n", l[i], rate[b], rate[b], med[b], p90[b], b } }' \
          "$OUT_DIR/model.csv" "$SUMMARY" >"$OUT_DIR/model.rows"
        cat "$OUT_DIR/model.rows" >>"$SUMMARY"
        rm -f "$OUT_DIR/model.rows"
        DEVICE_DESC=$(awk -F, 'NR == 2 { print $2 }' "$OUT_DIR/model.csv")
      else
        log "model: coalesce-model-ceiling failed (see model.log)"
      fi
      ;;
  esac
done

# ---- The table ------------------------------------------------------------------------------
if [[ -z ${DEVICE_DESC:-} ]]; then
  DEVICE_DESC=$(grep -ho 'backend on [^,]*' "$OUT_DIR"/coalesce.server.log 2>/dev/null |
    head -n 1 | sed 's/backend on //') || true
fi
LENGTHS_NOTE=
if [[ -n $VARIABLE_DIM && $VARIABLE_DIM != "$ONE_VARIABLE_DIM" ]]; then
  LENGTHS_NOTE="lengths: coalesce-bench draws each request's length uniformly from $VARIABLE_DIM; the model ceiling (and h2load, if it ran) use one length, $ONE_VARIABLE_DIM (the mean)."
fi
awk -F, -v levels="$CONCURRENCY" -v device="${DEVICE_DESC:-?}" -v workers="$WORKERS" -v model="$MODEL" \
  -v lengths_note="$LENGTHS_NOTE" \
  -v warmup="$WARMUP_S" -v duration="$DURATION_S" -v fraction="$OPEN_LOOP_FRACTION" '
  function has(c, l) { return ((c, l, "requests_per_s") in v) && v[c, l, "requests_per_s"] != "" }
  function num(c, l, k) { return v[c, l, k] + 0 }
  # "req/s p99" cells of one configuration; errors mark the rate with "!".
  function cells(c, l,   mark) {
    if (!has(c, l)) return sprintf(" %9s %8s", "-", "-")
    mark = (num(c, l, "errors") > 0) ? "!" : " "
    if (mark == "!") errors_seen = 1
    return sprintf(" %8.0f%s %8s", num(c, l, "requests_per_s"), mark,
                   v[c, l, "p99_ms"] == "" ? "-" : sprintf("%.2f", num(c, l, "p99_ms")))
  }
  function rate(c, l) { return has(c, l) ? num(c, l, "requests_per_s") : 0 }
  # The lower of the echo ceiling and the model ceiling at level l (0: neither measured).
  function ceiling(l,   e, m) {
    e = rate("echo", l); m = has("model", l) ? num("model", l, "samples_per_s") : 0
    return (e > 0 && (m == 0 || e < m)) ? e : m
  }
  function ratio(a, b) { return (b > 0 && a > 0) ? sprintf("%.2f", a / b) : "-" }
  NR == 1 { for (i = 1; i <= NF; i++) col[i] = $i; next }
  { for (i = 3; i <= NF; i++) v[$1, $2, col[i]] = $i; if ($1 == "coalesce-open") open = $2 }
  END {
    n = split(levels, l, ",")
    split("unbatched coalesce echo python python-unbatched", order, " ")
    printf "closed loop, 1 sample per request (req/s = samples/s), %ss warm-up + %ss per level; device %s\n\n", warmup, duration, device
    head1 = sprintf("%6s", "")
    head2 = sprintf("%6s", "conc")
    for (k = 1; k <= 5; k++) {
      c = order[k]
      if (c == "python-unbatched" && !seen_config(c)) continue
      head1 = head1 sprintf(" %-18s", c); head2 = head2 sprintf(" %9s %8s", "req/s", "p99_ms")
      if (c == "coalesce") { head1 = head1 sprintf(" %6s", ""); head2 = head2 sprintf(" %6s", "batch") }
      if (c == "echo") { head1 = head1 sprintf(" %-18s", "model ceiling"); head2 = head2 sprintf(" %9s %8s", "samples/s", "ms/batch") }
    }
    head1 = head1 sprintf("   %-27s", "ratios (coalesce / ...)")
    head2 = head2 sprintf("   %9s %8s %10s", "unbatched", "python", "efficiency")
    print head1; print head2
    for (i = 1; i <= n; i++) {
      L = l[i]; line = sprintf("%6s", L)
      for (k = 1; k <= 5; k++) {
        c = order[k]
        if (c == "python-unbatched" && !seen_config(c)) continue
        line = line cells(c, L)
        if (c == "coalesce") line = line sprintf(" %6s", v["coalesce", L, "mean_batch"] == "" ? "-" : sprintf("%.1f", num("coalesce", L, "mean_batch")))
        if (c == "echo") {
          if (has("model", L)) line = line sprintf(" %9.0f %8.2f", num("model", L, "samples_per_s"), num("model", L, "p50_ms"))
          else line = line sprintf(" %9s %8s", "-", "-")
        }
      }
      co = rate("coalesce", L)
      line = line sprintf("   %9s %8s %10s", ratio(co, rate("unbatched", L)), ratio(co, rate("python", L)),
                          ratio(co, ceiling(L)))
      print line
    }
    print ""
    print "batch: mean batch coalesce formed at that level (from its /metrics, warm-up included)."
    print "model ceiling: coalesce-model-ceiling, the " model " model in-process at that batch size (rounded),"
    print "  " workers " workers, same device and precision, no RPC; ms/batch is its median."
    print "efficiency = coalesce req/s / min(echo req/s, model ceiling samples/s) at the same level."
    if (lengths_note != "") print lengths_note
    if (errors_seen) print "!: some requests failed at that level; error codes are in summary.csv."
    for (i = 1; i <= n; i++) if (ceiling(l[i]) > 0 && rate("coalesce", l[i]) > 1.05 * ceiling(l[i])) above = 1
    if (above) print "efficiency above 1: a ceiling was measured while something else loaded the machine; rerun it quiet."
    if (open != "") {
      o = "coalesce-open"
      printf "\nopen loop: Poisson arrivals at %s req/s (%s x coalesce peak), %ss: achieved %.0f req/s, " \
             "p50 %.2f ms, p99 %.2f ms, max %.2f ms, mean batch %s, errors %d, skipped %d%s\n",
             open, fraction, duration, num(o, open, "requests_per_s"), num(o, open, "p50_ms"),
             num(o, open, "p99_ms"), num(o, open, "max_ms"),
             v[o, open, "mean_batch"] == "" ? "-" : sprintf("%.1f", num(o, open, "mean_batch")),
             num(o, open, "errors"), num(o, open, "skipped"),
             v[o, open, "generator_behind"] == "true" ? " (load generator fell behind)" : ""
    }
    # The targets of issue 3, read at the highest concurrency level.
    L = l[n]; co = rate("coalesce", L)
    printf "\ntargets at concurrency %s: ", L
    if (device == "?") {
      printf "device unknown (neither coalesce nor the model ceiling ran)\n"
    } else if (device ~ /^cpu/) {
      printf "CPU: efficiency >= 0.85: %s\n", verdict(co, ceiling(L), 0.85)
    } else {
      printf "GPU: coalesce/unbatched >= 40: %s; coalesce/python >= 10: %s; efficiency >= 0.8: %s",
             verdict(co, rate("unbatched", L), 40), verdict(co, rate("python", L), 10),
             verdict(co, ceiling(L), 0.8)
      if (open != "") printf "; open-loop p99 < 10 ms: %.2f ms (%s)", num("coalesce-open", open, "p99_ms"), num("coalesce-open", open, "p99_ms") < 10 ? "met" : "missed"
      printf "\n"
    }
  }
  function verdict(a, b, target,   r) {
    if (!(a > 0 && b > 0)) return "not measured"
    r = a / b
    if (target < 1 && r > 1.05) return sprintf("%.2f (above 1: ceiling not trustworthy)", r)
    return sprintf("%.2f (%s)", r, r >= target ? "met" : "missed")
  }
  function seen_config(c,   i) { for (i = 1; i <= n; i++) if (has(c, l[i])) return 1; return 0 }
' "$SUMMARY" >"$OUT_DIR/table.body.txt"
# Both generators and the server's CPU per request, as markdown: one row per configuration,
# level and generator.
awk -F, -v levels="$CONCURRENCY" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { c = $1; g = "coalesce-bench"; if (c ~ /-h2load$/) { g = "h2load"; sub(/-h2load$/, "", c) }
    if (c == "model" || c == "coalesce-open") next
    if (!(c in seen)) { seen[c] = 1; order[++n] = c }
    k = c SUBSEP $2 SUBSEP g; have[k] = 1
    rps[k] = $col["requests_per_s"]; p50[k] = $col["p50_ms"]; p99[k] = $col["p99_ms"]
    cpu[k] = $col["server_cpu_us"] }
  function cell(x, f) { return x == "" ? "-" : sprintf(f, x) }
  function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "-" }
  END {
    m = split(levels, l, ",")
    print "| server | in flight | generator | requests/s | p50 ms | p99 ms | server CPU µs/request |"
    print "| --- | --- | --- | --- | --- | --- | --- |"
    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) for (h = 1; h <= 2; h++) {
      g = h == 1 ? "coalesce-bench" : "h2load"; k = order[i] SUBSEP l[j] SUBSEP g
      if (!(k in have)) continue
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", order[i], l[j], g, cell(rps[k], "%.0f"),
             cell(p50[k], "%.2f"), cell(p99[k], "%.2f"), cell(cpu[k], "%.1f")
    }
    print ""
    for (j = 1; j <= m; j++) {
      e = "echo" SUBSEP l[j]; co = "coalesce" SUBSEP l[j]
      line = sprintf("in flight %s: coalesce-bench / h2load on echo %s, on coalesce %s; coalesce / echo by h2load %s, by coalesce-bench %s",
        l[j], ratio(rps[e SUBSEP "coalesce-bench"], rps[e SUBSEP "h2load"]),
        ratio(rps[co SUBSEP "coalesce-bench"], rps[co SUBSEP "h2load"]),
        ratio(rps[co SUBSEP "h2load"], rps[e SUBSEP "h2load"]),
        ratio(rps[co SUBSEP "coalesce-bench"], rps[e SUBSEP "coalesce-bench"]))
      if (((e SUBSEP "h2load") in have) || ((co SUBSEP "h2load") in have)) print line
    }
  }' "$SUMMARY" >"$OUT_DIR/path.md"
{
  cat "$OUT_DIR/machine.txt"
  echo
  cat "$OUT_DIR/table.body.txt"
  echo
  echo "The request path: both generators (h2load: $H2LOAD_CONFIGS), same request bytes; server CPU"
  echo "µs/request = the server process's utime + stime over the measurement window / requests answered."
  echo
  cat "$OUT_DIR/path.md"
  echo
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
} >"$OUT_DIR/table.txt"
rm -f "$OUT_DIR/table.body.txt"
echo
cat "$OUT_DIR/table.txt"

# ---- The plot -------------------------------------------------------------------------------
if command -v "$PYTHON" >/dev/null && "$PYTHON" -c 'import matplotlib' 2>/dev/null; then
  if "$PYTHON" bench/plot.py --out_dir="$OUT_DIR" --title="coalesce bench: $(uname -n), ${DEVICE_DESC:-?}" \
    >>"$OUT_DIR/plot.log" 2>&1; then
    echo "plot: $OUT_DIR/bench.png"
  else
    log "plot failed (see $OUT_DIR/plot.log)"
  fi
else
  echo "plot: skipped ($PYTHON cannot import matplotlib)"
fi
echo "raw results: $OUT_DIR"
