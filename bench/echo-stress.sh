#!/usr/bin/env bash
# bench/echo-stress.sh SERVER STRESS CLIENT ROUNDS [SERVER_FLAG...]: coalesce-stress against
# coalesce-server's echo backend with every kind of hostile traffic it has: the mixed round
# (invalid requests, cancellations, deadlines, connection churn, a flood past the queue bound),
# slow readers that never read their answers (the server's growth checked against a bound), and
# slow and silent clients of the metrics endpoint and the gRPC port while /metrics is scraped.
# Exits non-zero if a round saw a wrong, lost or duplicated answer, a failed scrape or too much
# growth, or if the server died or did not exit 0 on SIGTERM. tests/bench_tests.cmake runs a few
# rounds in CI; the table in bench/RESULTS.md comes from 100.
set -euo pipefail
usage="usage: bench/echo-stress.sh SERVER STRESS CLIENT ROUNDS [SERVER_FLAG...]"
server=${1:?$usage} stress=${2:?$usage} client=${3:?$usage} rounds=${4:?$usage}
shift 4
HOST=127.0.0.1
OUT_DIR=$(mktemp -d /tmp/coalesce-echo-stress-XXXXXX)
CLIENT_BIN=$client
READY_TIMEOUT_S=60
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
trap 'cleanup; rm -rf "$OUT_DIR"' EXIT

free_port grpc_port
free_port metrics_port
start_server echo "$server" --backend=echo --max_queue_size=64 --max_message_mib=4 \
  --grpc_address="$HOST:$grpc_port" --metrics_address="$HOST:$metrics_port" --drain_timeout=5s \
  "$@"
wait_ready echo "$HOST:$grpc_port" || die "the echo server did not start"

status=0
"$stress" --address="$HOST:$grpc_port" --metrics_address="$HOST:$metrics_port" --check=echo \
  --max_message_mib=4 --rounds="$rounds" --server_pid="$SERVER_PID" || status=$?

pid=$SERVER_PID
kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
PIDS=()
echo "echo-stress: server exit status $server_status"
if [[ $server_status -ne 0 ]]; then
  tail -n 20 "$SERVER_LOG" >&2
  status=1
fi
exit "$status"
