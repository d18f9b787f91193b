# bench/common.sh: process and port helpers shared by the benchmark scripts (sourced, not run).
# The sourcing script sets HOST, OUT_DIR, CLIENT_BIN, READY_TIMEOUT_S and optionally the
# SERVER_PIN array (a taskset prefix), MODEL (default demo) and the MODEL_ARGS array (flags that
# pick the model for coalesce-client and coalesce-bench) before calling them; the h2load
# helpers also read BENCH_BIN, WARMUP_S, DURATION_S and optionally BENCH_PIN.

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Every process this script starts is in PIDS until it is stopped; the EXIT trap stops the rest.
PIDS=()
stop_pid() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=(${kept[@]+"${kept[@]}"})
}
cleanup() {
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command to completion in the background so that a signal to this script stops it too.
run_fg() {
  "$@" &
  local pid=$! rc=0
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  stop_pid "$pid"
  return "$rc"
}

# free_port VAR: a loopback port nothing listens on and this run has not handed out yet.
USED_PORTS=" "
free_port() {
  local candidate  # not "port": printf -v would set this local instead of the caller's
  while :; do
    candidate=$((20000 + RANDOM % 40000))
    [[ $USED_PORTS == *" $candidate "* ]] && continue
    if ! (exec 3<>"/dev/tcp/$HOST/$candidate") 2>/dev/null; then
      USED_PORTS+="$candidate "
      printf -v "$1" '%s' "$candidate"
      return
    fi
  done
}

# The Prometheus page of a coalesce server, through bash's /dev/tcp: no curl needed (on the GPU
# host curl cannot even start with the Debian libraries on LD_LIBRARY_PATH).
scrape() {
  (
    exec 3<>"/dev/tcp/${1%:*}/${1##*:}"
    printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3
    timeout 5 cat <&3
  )
}
# "samples batches" run so far by MODEL (default demo) of the server whose metrics are at $1.
batch_totals() {
  local page
  page=$(scrape "$1" 2>/dev/null) || page=
  awk -v label="model=\"${MODEL:-demo}\"" '
    /^coalesce_batch_size_sum[{]/ && index($0, label) { s = $NF }
    /^coalesce_batch_size_count[{]/ && index($0, label) { c = $NF }
    END { printf "%.0f %.0f\n", s + 0, c + 0 }' <<<"$page"
}
# Mean batch size between two batch_totals readings; empty when no batch ran in between.
mean_batch() {
  awk -v b="$1" -v a="$2" 'BEGIN { split(b, x, " "); split(a, y, " ")
    if (y[2] > x[2]) printf "%.2f", (y[1] - x[1]) / (y[2] - x[2]) }'
}

SERVER_PID=
SERVER_LOG=
# start_server NAME CMD...: starts a server on the server CPUs, logging to NAME.server.log.
start_server() {
  local name=$1
  shift
  SERVER_LOG=$OUT_DIR/$name.server.log
  ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}
# wait_ready NAME ADDRESS: until one ModelInfer through coalesce-client succeeds. A server that
# exits or stays unready fails only its own configuration: the table shows "-" for it.
wait_ready() {
  local name=$1 address=$2 start=$SECONDS
  until timeout 10 "$CLIENT_BIN" --address="$address" --timeout_ms=5000 \
    ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$SERVER_LOG" >&2
      log "$name exited before it was ready; skipping it (log: $SERVER_LOG)"
      return 1
    fi
    if ((SECONDS - start >= READY_TIMEOUT_S)); then
      log "$name not ready after ${READY_TIMEOUT_S}s; skipping it (log: $SERVER_LOG)"
      return 1
    fi
    sleep 0.5
  done
  log "$name ready on $address after $((SECONDS - start))s"
}

stop_server() {
  stop_pid "$SERVER_PID"
  SERVER_PID=
}

# ---- Server CPU per request and h2load (issue 16) --------------------------------------------
TICKS=$(getconf CLK_TCK)
# cpu_seconds PID: CPU seconds (user + system) the process has used so far, from /proc.
cpu_seconds() { awk -v t="$TICKS" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }
# cpu_window PID WARMUP_S DURATION_S FILE: run in the background beside a generator started at
# the same moment; writes the process's CPU seconds at the start and the end of the generator's
# measurement window to FILE, one per line.
cpu_window() {
  sleep "$2"
  cpu_seconds "$1" >"$4"
  sleep "$3"
  echo >>"$4"
  cpu_seconds "$1" >>"$4"
}
# us_per_request FILE REQUESTS: server CPU µs per request from a cpu_window FILE; empty when
# unknown.
us_per_request() {
  awk -v n="$2" 'NF { c[++k] = $1 } END { if (k == 2 && n > 0) printf "%.1f", (c[2] - c[1]) / n * 1e6 }' "$1" 2>/dev/null
}

# request_body FILE ADDRESS: the gRPC-framed request coalesce-bench sends to MODEL at
# ADDRESS, for h2load -d (the same bytes for both generators).
request_body() {
  [[ -s $1 ]] || "$BENCH_BIN" --address="$2" --write_request="$1" \
    ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} >/dev/null
}

# h2load_level PREFIX ADDRESS BODY IN_FLIGHT SERVER_PID: h2load against ADDRESS's ModelInfer
# with connections and threads as bench/h2load_grpc.sh opens them, WARMUP_S of load, then
# DURATION_S measured (on BENCH_PIN). Prints "requests_per_s,p50_ms,p99_ms,answered,server_cpu_us"
# (answered: HTTP 200s; h2load does not read gRPC codes); fails when nothing was answered, which
# is what h2load reports silently when nothing listens. Logs go to PREFIX.txt, PREFIX.requests.
H2LOAD=${H2LOAD:-$(command -v h2load || echo /opt/deps/usr/bin/h2load)}
h2load_level() {
  local prefix=$1 address=$2 body=$3 n=$4 pid=$5 conns streams threads before after
  conns=$((n < 16 ? n : 16)) streams=$((n / (n < 16 ? n : 16))) threads=$((conns < 8 ? conns : 8))
  local cmd=(${BENCH_PIN[@]+"${BENCH_PIN[@]}"} "$H2LOAD" -c "$conns" -m "$streams" -t "$threads"
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$body"
    "http://$address/inference.GRPCInferenceService/ModelInfer")
  "${cmd[@]}" -D "$WARMUP_S" >/dev/null 2>&1 || true
  before=$(cpu_seconds "$pid")
  "${cmd[@]}" -D "$DURATION_S" --log-file="$prefix.requests" >"$prefix.txt" 2>&1 || true
  after=$(cpu_seconds "$pid")
  local rps ok
  rps=$(awk '/finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) print $i }' "$prefix.txt")
  ok=$(awk '$1 == "status" && $2 == "codes:" { print $3 + 0 }' "$prefix.txt")
  [[ -n $rps && ${ok:-0} -gt 0 && -s $prefix.requests ]] || return 1
  awk '{ print $3 }' "$prefix.requests" | sort -n | awk -v rps="$rps" -v ok="$ok" -v before="$before" \
    -v after="$after" '
    { t[NR] = $1 }
    END { p50 = t[int(0.5 * NR) > 0 ? int(0.5 * NR) : 1]; p99 = t[int(0.99 * NR) > 0 ? int(0.99 * NR) : 1]
          printf "%.2f,%.4f,%.4f,%d,%.1f\n", rps, p50 / 1000, p99 / 1000, ok, (after - before) / ok * 1e6 }'
}
