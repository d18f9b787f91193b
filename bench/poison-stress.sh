#!/usr/bin/env bash
# bench/poison-stress.sh SERVER STRESS POISON_MODEL ROUNDS [SERVER_FLAG...]: coalesce-stress with
# poison traffic. POISON_MODEL (coalesce-poison-model) writes a repository whose model raises on
# some values and asks for 2^50 bytes on others; SERVER (coalesce-server) serves it on free
# loopback ports with SERVER_FLAGs; STRESS (coalesce-stress) runs ROUNDS rounds with poison
# requests among the valid ones, each checked against the model's own answer. Exits non-zero if
# any round saw a wrong, lost or duplicated answer, if no batch was split (the poison never
# shared a batch: the run proved nothing), or if the server died or did not exit on SIGTERM.
# tests/bench_tests.cmake runs it in CI with a few rounds. Slow readers are left out here: their
# valid requests would fill the queue bound (64) of this slower CPU model, and the mixed phase
# counts a full queue as a wrong answer; bench/echo-stress.sh has them.
set -euo pipefail
server=${1:?usage: bench/poison-stress.sh SERVER STRESS POISON_MODEL ROUNDS [SERVER_FLAG...]}
stress=${2:?usage: bench/poison-stress.sh SERVER STRESS POISON_MODEL ROUNDS [SERVER_FLAG...]}
model=${3:?usage: bench/poison-stress.sh SERVER STRESS POISON_MODEL ROUNDS [SERVER_FLAG...]}
rounds=${4:?usage: bench/poison-stress.sh SERVER STRESS POISON_MODEL ROUNDS [SERVER_FLAG...]}
shift 4
dir=$(mktemp -d /tmp/coalesce-poison-stress-XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$dir"
}
trap cleanup EXIT
"$model" --repository="$dir/repo" --max_batch_size=16

# Nothing listens on the port (bash's /dev/tcp, no other tool needed).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Start the server on two free ports; a port taken in between makes it exit, so try others.
for _ in 1 2 3 4 5; do
  grpc_port=$((20000 + RANDOM % 20000))
  metrics_port=$((grpc_port + 1))
  port_free "$grpc_port" && port_free "$metrics_port" || continue
  "$server" --model_repository="$dir/repo" --device=cpu --max_queue_size=64 --max_message_mib=4 \
    --grpc_address="127.0.0.1:$grpc_port" --metrics_address="127.0.0.1:$metrics_port" \
    --drain_timeout=5s "$@" >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do
    port_free "$grpc_port" || break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -0 "$pid" 2>/dev/null && ! port_free "$grpc_port" && break
  pid=
done
if [[ -z $pid ]]; then
  echo "poison-stress: the server did not start" >&2
  cat "$dir/server.log" >&2
  exit 1
fi

status=0
"$stress" --address="127.0.0.1:$grpc_port" --model=poison --max_batch_size=16 \
  --max_message_mib=4 --poison=8 --rounds="$rounds" --flood=128 --server_pid="$pid" \
  --metrics_address="127.0.0.1:$metrics_port" --slow_reader_requests=0 || status=$?

# The split counter: poison that never shared a batch would pass without testing anything.
exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"
printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
splits=$(grep -E '^coalesce_split_batches_total\{model="poison",version="1"\}' <&3 | awk '{print $2}' || true)
exec 3>&-
echo "poison-stress: batches split to isolate poison requests: ${splits:-none}"
if [[ -z $splits || $splits == 0 ]]; then
  echo "poison-stress: no batch was split: no poison request shared a batch" >&2
  status=1
fi

kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
pid=
echo "poison-stress: server exit status $server_status"
if [[ $server_status -ne 0 ]]; then
  tail -n 20 "$dir/server.log" >&2
  status=1
fi
exit "$status"
