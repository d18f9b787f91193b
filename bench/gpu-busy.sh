#!/usr/bin/env bash
# bench/gpu-busy.sh OUT_DIR [SECONDS]: on the CUDA host, after build-cuda exists, serves the demo
# model with the server's defaults and loads it with coalesce-bench at concurrency 8 and 256 for
# SECONDS each. For each level it prints the device-busy fraction coalesce measures itself
# (the increase of coalesce_device_busy_seconds_total over the level, divided by its length) and
# the mean of NVML's utilisation (coalesce_gpu_utilization_ratio, scraped every second), beside
# the requests/s coalesce-bench measured.
set -euo pipefail
out=${1:?usage: bench/gpu-busy.sh OUT_DIR [SECONDS]}
seconds=${2:-10}
mkdir -p "$out"
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
build-cuda/server/coalesce-server --device=cuda --grpc_address=127.0.0.1:8001 \
  --metrics_address=127.0.0.1:8002 >"$out/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/8001) 2>/dev/null && break; sleep 1; done
scrape() {
  (
    exec 3<>/dev/tcp/127.0.0.1/8002
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
    timeout 5 cat <&3
  )
}
busy_seconds() { scrape | awk '/^coalesce_device_busy_seconds_total[{].*cuda/ { s += $NF } END { printf "%.6f", s + 0 }'; }
nvml() { scrape | awk '/^coalesce_gpu_utilization_ratio[{]/ { print $NF; exit }'; }
printf '%-12s %12s %14s %14s\n' concurrency requests/s busy_fraction nvml_util
for c in 8 256; do
  # Warm-up at this level, then the measured window with the busy counter read around it.
  build-cuda/client/coalesce-bench --concurrency="$c" --warmup_s=0 --duration_s=2 >/dev/null 2>&1
  before=$(busy_seconds)
  t0=$(date +%s.%N)
  (
    for _ in $(seq "$seconds"); do nvml; sleep 1; done
  ) >"$out/nvml-$c.txt" &
  sampler=$!
  build-cuda/client/coalesce-bench --concurrency="$c" --warmup_s=0 --duration_s="$seconds" \
    --csv >"$out/bench-$c.csv" 2>"$out/bench-$c.err"
  t1=$(date +%s.%N)
  after=$(busy_seconds)
  wait "$sampler" || true
  rps=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "req_per_s" || $i == "requests_per_s") col = i }
                 NR == 2 && col { print $col }' "$out/bench-$c.csv")
  fraction=$(awk -v a="$after" -v b="$before" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.3f", (a - b) / (t1 - t0) }')
  util=$(awk '{ s += $1; n++ } END { if (n) printf "%.3f (%d samples)", s / n, n; else print "absent" }' "$out/nvml-$c.txt")
  printf '%-12s %12s %14s %14s\n' "$c" "${rps:-?}" "$fraction" "$util"
done
grep -m2 -i "nvml\|arenas" "$out/server.log" || true
