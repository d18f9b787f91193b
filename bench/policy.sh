#!/usr/bin/env bash
# bench/policy.sh: the deadline-aware batch policy against the classic fixed-delay policy, side
# by side in one run, under open-loop Poisson load at fractions of peak.
#
#   BUILD=build bench/policy.sh                 # this machine (CPU)
#   BUILD=build-cuda DEADLINE_MS=10 bench/policy.sh   # GPU host (LD_LIBRARY_PATH set by caller)
#
# Peak is the deadline policy's closed-loop throughput at PEAK_CONCURRENCY, without deadlines
# (a closed loop whose calls time out resends at once and measures a retry storm, not a peak). Both policies are then offered the same Poisson rates (FRACTIONS of that
# peak), each request with the same gRPC deadline. Goodput = answers that arrived OK, i.e.
# within their deadline (a late answer is a client-side DEADLINE_EXCEEDED), per second.
# With H2LOAD_CHECK=1 (default when h2load is installed) h2load offers each policy the same rates
# too, every request with a grpc-timeout header (so the server, not the client, enforces the
# deadline) and evenly paced (h2load's --rps, not Poisson); its goodput is the server's own count
# of OK answers (coalesce_requests_total) over the run: a cross-check that any collapse is the
# server's and not coalesce-bench's.
set -euo pipefail

BUILD=${BUILD:-build}
OUT_DIR=${OUT_DIR:-/tmp/coalesce-policy-$(date +%Y%m%d-%H%M%S)}
DEADLINE_MS=${DEADLINE_MS:-200}
FRACTIONS=${FRACTIONS:-0.2,0.5,0.8,1.0,1.2}
PEAK_CONCURRENCY=${PEAK_CONCURRENCY:-256}
WARMUP_S=${WARMUP_S:-2}
DURATION_S=${DURATION_S:-5}
# The fixed policy's delay: the Triton/TF Serving knob, tuned so its peak matches.
FIXED_DELAY_US=${FIXED_DELAY_US:-2000}
SERVER_FLAGS=${SERVER_FLAGS:-}
BENCH_THREADS=${BENCH_THREADS:-0}  # 0: per level, as h2load (coalesce-bench --help)
BENCH_CHANNELS=${BENCH_CHANNELS:-0}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}
HOST=${HOST:-127.0.0.1}
PIN=${PIN:-auto}
NCPU=$(nproc)
H2LOAD_CHECK=${H2LOAD_CHECK:-auto}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_BIN=$BUILD/server/coalesce-server
CLIENT_BIN=$BUILD/client/coalesce-client
BENCH_BIN=$BUILD/client/coalesce-bench
source "$REPO/bench/common.sh"

SERVER_PIN=()
BENCH_PIN=()
if [[ $PIN == 1 || ($PIN == auto && NCPU -ge 8) ]]; then
  SERVER_PIN=(taskset -c "0-$((NCPU / 2 - 1))")
  BENCH_PIN=(taskset -c "$((NCPU / 2))-$((NCPU - 1))")
fi
mkdir -p "$OUT_DIR"
cd "$REPO"

# bench_csv OUT ARGS...: one coalesce-bench run, CSV into OUT; every request carries the
# deadline unless ARGS override --deadline_ms.
bench_csv() {
  local out=$1
  shift
  run_fg ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} "$BENCH_BIN" --address="$ADDRESS" \
    --deadline_ms="$DEADLINE_MS" --warmup_s="$WARMUP_S" --duration_s="$DURATION_S" \
    --threads="$BENCH_THREADS" --channels="$BENCH_CHANNELS" --csv "$@" >"$out" \
    2>>"$OUT_DIR/bench.log"
}

# start_policy NAME FLAGS...: a coalesce server with those flags, ready on ADDRESS.
start_policy() {
  local name=$1 grpc metrics
  shift
  free_port grpc
  free_port metrics
  ADDRESS=$HOST:$grpc
  METRICS=$HOST:$metrics
  start_server "$name" "$SERVER_BIN" --grpc_address="$ADDRESS" \
    --metrics_address="$HOST:$metrics" $SERVER_FLAGS "$@"
  wait_ready "$name" "$ADDRESS"
}

# requests_total [CODE]: the server's coalesce_requests_total so far, all codes or only CODE.
requests_total() {
  scrape "$METRICS" 2>/dev/null | awk -v code="${1:-}" '
    /^coalesce_requests_total[{]/ && (code == "" || index($0, "code=\"" code "\"")) { n += $NF }
    END { printf "%.0f", n }'
}

# settle: until the server's answer count stops moving (at most 30 s), so that a rate's counters
# and latencies do not include the backlog of the load before it (an overloaded level leaves
# seconds of queued calls).
settle() {
  local before after i
  before=$(requests_total)
  for ((i = 0; i < 60; i++)); do
    sleep 0.5
    after=$(requests_total)
    [[ $after == "$before" ]] && return
    before=$after
  done
  log "server still answering after 30 s; measuring anyway"
}

# h2load_rates NAME: h2load at each of RATES (16 connections, each paced at rate / 16 per second,
# up to 64 streams each), every request with the deadline as grpc-timeout. Writes NAME.h2load.csv:
# rate,goodput,errors (from the server's counters over the run),batch (the server's mean batch
# size over the run),p99_ms,late_pct (h2load's p99 of all answers, OK or not, and the share of
# answers that took longer than the deadline: a refusal answered early is in neither).
h2load_rates() {
  local name=$1 rate ok all batches log
  request_body "$OUT_DIR/request.bin" "$ADDRESS"
  echo "rate,goodput,errors,batch,p99_ms,late_pct" >"$OUT_DIR/$name.h2load.csv"
  for rate in ${RATES//,/ }; do
    settle
    ok=$(requests_total OK)
    all=$(requests_total)
    batches=$(batch_totals "$METRICS")
    log=$OUT_DIR/$name.h2load.r$rate.log
    ${BENCH_PIN[@]+"${BENCH_PIN[@]}"} "$H2LOAD" -D "$DURATION_S" -c 16 -m 64 -t 8 --log-file="$log" \
      --rps="$(awk -v r="$rate" 'BEGIN { printf "%.3f", r / 16 }')" \
      -H 'content-type: application/grpc' -H 'te: trailers' -H "grpc-timeout: ${DEADLINE_MS}m" \
      -d "$OUT_DIR/request.bin" "http://$ADDRESS/inference.GRPCInferenceService/ModelInfer" \
      >"$OUT_DIR/$name.h2load.r$rate.txt" 2>&1 || true
    ok=$(($(requests_total OK) - ok))
    all=$(($(requests_total) - all))
    # Microseconds per answer, the log's third column, sorted: p99 and the share over the deadline.
    read -r p99 late < <(cut -f3 "$log" | sort -n | awk -v dl="$DEADLINE_MS" '
      { t[NR] = $1; if ($1 > dl * 1000) n++ }
      END { if (NR) printf "%.2f %.2f\n", t[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))] / 1000, 100 * n / NR
            else print "0 0" }')
    rm -f "$log"
    awk -v r="$rate" -v d="$DURATION_S" -v ok="$ok" -v all="$all" \
      -v b="$(mean_batch "$batches" "$(batch_totals "$METRICS")")" -v p99="$p99" -v late="$late" \
      'BEGIN { printf "%s,%.1f,%d,%s,%s,%s\n", r, ok / d, all - ok, b, p99, late }' \
      >>"$OUT_DIR/$name.h2load.csv"
  done
}

# Column `name` of every data row of CSV file $1, one per line.
column() {
  awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
                        { print $c }' "$1"
}

if [[ $H2LOAD_CHECK == auto ]]; then
  H2LOAD_CHECK=0
  [[ -x $H2LOAD ]] && H2LOAD_CHECK=1
fi

log "peak: deadline policy, closed loop at concurrency $PEAK_CONCURRENCY, no deadline"
start_policy deadline --batch_policy=deadline
bench_csv "$OUT_DIR/peak.csv" --concurrency="$PEAK_CONCURRENCY" --label=peak --deadline_ms=0
PEAK=$(column "$OUT_DIR/peak.csv" requests_per_s)
RATES=$(awk -v p="$PEAK" -v f="$FRACTIONS" 'BEGIN { n = split(f, x, ",")
  for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "," : ""), p * x[i] + 0.5 }')
log "peak $PEAK req/s; offering $RATES req/s"

bench_csv "$OUT_DIR/deadline.csv" --rate="$RATES" --label=deadline
if ((H2LOAD_CHECK)); then h2load_rates deadline; fi
stop_server
start_policy fixed --batch_policy=fixed --max_queue_delay_us="$FIXED_DELAY_US"
bench_csv "$OUT_DIR/fixed_peak.csv" --concurrency="$PEAK_CONCURRENCY" --label=fixed-peak \
  --deadline_ms=0
bench_csv "$OUT_DIR/fixed.csv" --rate="$RATES" --label=fixed
if ((H2LOAD_CHECK)); then h2load_rates fixed; fi
stop_server

{
  echo "date: $(date -Iseconds)"
  echo "host: $(hostname), $NCPU cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  command -v nvidia-smi >/dev/null && echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: BUILD=$BUILD DEADLINE_MS=$DEADLINE_MS FRACTIONS=$FRACTIONS FIXED_DELAY_US=$FIXED_DELAY_US WARMUP_S=$WARMUP_S DURATION_S=$DURATION_S bench/policy.sh"
  echo "closed-loop peak at concurrency $PEAK_CONCURRENCY: deadline policy $PEAK req/s," \
    "fixed policy $(column "$OUT_DIR/fixed_peak.csv" requests_per_s) req/s"
  echo
  echo "open loop, Poisson, every request with a ${DEADLINE_MS} ms deadline; goodput = OK answers/s"
  paste -d, <(tr , '\n' <<<"$FRACTIONS") <(tr , '\n' <<<"$RATES") \
    <(column "$OUT_DIR/deadline.csv" requests_per_s) <(column "$OUT_DIR/deadline.csv" p99_ms) \
    <(column "$OUT_DIR/deadline.csv" error_codes) \
    <(column "$OUT_DIR/fixed.csv" requests_per_s) <(column "$OUT_DIR/fixed.csv" p99_ms) \
    <(column "$OUT_DIR/fixed.csv" error_codes) |
    awk -F, 'BEGIN { printf "%6s %8s | %10s %9s %-28s | %10s %9s %-28s\n", "load", "offered",
                       "goodput", "p99_ms", "deadline policy errors", "goodput", "p99_ms",
                       "fixed policy errors" }
             { printf "%5.0f%% %8d | %10.1f %9.2f %-28s | %10.1f %9.2f %-28s\n",
                      $1 * 100, $2, $3, $4, $5, $6, $7, $8 }'
  if ((H2LOAD_CHECK)); then
    echo
    echo "h2load cross-check: the same rates evenly paced, the deadline as grpc-timeout (enforced by"
    echo "the server); goodput = the server's OK answers/s, errors = its other answers over the run,"
    echo "batch = its mean batch size; p99 and late% (answers slower than the deadline) are h2load's,"
    echo "over all answers, OK or refused"
    paste -d, <(tr , '\n' <<<"$FRACTIONS") <(tr , '\n' <<<"$RATES") \
      <(cut -d, -f2- "$OUT_DIR/deadline.h2load.csv" | tail -n +2) \
      <(cut -d, -f2- "$OUT_DIR/fixed.h2load.csv" | tail -n +2) |
      awk -F, 'BEGIN { printf "%6s %8s | %9s %7s %6s %8s %6s | %9s %7s %6s %8s %6s\n", "load",
                         "offered", "deadline", "errors", "batch", "p99_ms", "late%", "fixed",
                         "errors", "batch", "p99_ms", "late%" }
               { printf "%5.0f%% %8d | %9.1f %7d %6.1f %8.2f %6.2f | %9.1f %7d %6.1f %8.2f %6.2f\n",
                        $1 * 100, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 }'
  fi
} | tee "$OUT_DIR/table.txt"
