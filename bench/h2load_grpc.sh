#!/usr/bin/env bash
# bench/h2load_grpc.sh: one h2load run (Debian nghttp2-client) of a gRPC-framed request body,
# printing one table row: in-flight, requests/s, p50 and p99 in ms, and the server's own count of
# answers by gRPC code over the run (h2load sees HTTP status 200 for every gRPC answer; the code
# is in the trailers, which it does not read).
#
#   bench/h2load_grpc.sh LABEL BODY URL IN_FLIGHT DURATION_S METRICS_URL LOG_DIR
#
# IN_FLIGHT n runs min(n, 16) connections with n / connections streams each, on up to 8 threads.
# One body, so one request length: with a range of lengths (VARIABLE_DIM=MIN:MAX), bench/run.sh
# writes the body at the mean length, while coalesce-bench draws each request's length.
# p50/p99 come from h2load's per-request log (--log-file); H2LOAD may name the binary.
set -euo pipefail
label=$1 body=$2 url=$3 inflight=$4 duration=$5 metrics=$6 logdir=$7
h2load=${H2LOAD:-h2load}
conns=$((inflight < 16 ? inflight : 16))
streams=$((inflight / conns))
threads=$((conns < 8 ? conns : 8))
mkdir -p "$logdir"
counts() {
  python3 - "$metrics" <<'PY'
import re, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
text = opener.open(sys.argv[1], timeout=5).read().decode()
c = {}
for m in re.finditer(r'^coalesce_requests_total\{([^}]*)\} (\S+)$', text, re.M):
    code = re.search(r'code="([^"]+)"', m.group(1)).group(1)
    c[code] = c.get(code, 0) + float(m.group(2))
print(" ".join("%s=%d" % kv for kv in sorted(c.items())))
PY
}
before=$(counts)
log="$logdir/$label-c$inflight.log"
"$h2load" -D "$duration" -c "$conns" -m "$streams" -t "$threads" \
  -H 'content-type: application/grpc' -H 'te: trailers' -d "$body" \
  --log-file="$log.requests" "$url" >"$log" 2>&1
after=$(counts)
python3 - "$label" "$inflight" "$log" "$before" "$after" <<'PY'
import re, sys
label, inflight, log, before, after = sys.argv[1:]
text = open(log).read()
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", text).group(1))
times = sorted(int(l.split()[2]) for l in open(log + ".requests") if l.strip())
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] / 1000.0 if times else float("nan")
def parse(s): return {k: float(v) for k, v in (kv.split("=") for kv in s.split())}
b, a = parse(before), parse(after)
delta = {k: a.get(k, 0) - b.get(k, 0) for k in a if a.get(k, 0) - b.get(k, 0) > 0}
codes = " ".join("%s=%d" % kv for kv in sorted(delta.items()))
print("| %s | %s | %.0f | %.2f | %.2f | %s |" % (label, inflight, rps, pct(0.5), pct(0.99), codes))
PY
