#!/usr/bin/env bash
# bench/gpu-ab.sh BASE_SRC OUT_DIR: the end-to-end headline table for an earlier tree and this one
# in one command on the CUDA host, so that a change (a restructuring, a faster request path) is
# judged against its own baseline on the same card and day. BASE_SRC is a source tree of the
# earlier commit, made here and carried to the device machine:
#   git archive REV | (mkdir -p .baseline && tar -x -C .baseline)   # .baseline/ is git-ignored
#   bash bench/gpu-ab.sh .baseline OUT                              # on the device, from the root
# Builds both trees' programs (tests off; no model ceiling, so CONFIGS without "model"), then
# runs bench/run.sh for each, interleaved: before, after, before, after (ROUNDS=1: once each).
# Both use this tree's coalesce-bench, echo server and run.sh; only the servers differ. Tables
# and logs go under OUT_DIR/{before,after}.N; a summary is printed.
set -euo pipefail
base=${1:?usage: bench/gpu-ab.sh BASE_SRC OUT_DIR}
out=${2:?usage: bench/gpu-ab.sh BASE_SRC OUT_DIR}
base=$(cd "$base" && pwd)
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
deps=$(pwd)/.gpudeps
# Only what the A/B runs is built: each tree's server, and this tree's load generator, client and
# echo server. Configured as .gpudeps/build-on-cuda-host.sh does; both trees build at once.
mkdir -p /opt/deps
for f in "$deps"/*.deb; do dpkg -x "$f" /opt/deps; done
torch_cmake=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
export PATH=/opt/deps/usr/bin:$PATH LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
build() {  # build SRC "TARGETS" [cmake args...]
  local src=$1 targets=$2
  shift 2
  cmake -S "$src" -B "$src/build-cuda" -DCMAKE_BUILD_TYPE=Release -DCOALESCE_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="/opt/deps/usr;/opt/deps/usr/lib/x86_64-linux-gnu/cmake;$torch_cmake" \
    -DCMAKE_CXX_FLAGS="-isystem /opt/deps/usr/include" "$@" &&
    cmake --build "$src/build-cuda" -j"$(nproc)" --target $targets
}
build . "coalesce-server coalesce-bench coalesce-client coalesce-echo-server" \
  -DCOALESCE_WITH_MPS=ON >"$out/build.log" 2>&1 &
this_build=$!
build "$base" coalesce-server >"$out/build-base.log" 2>&1 ||
  { tail -30 "$out/build-base.log"; exit 1; }
wait "$this_build" || { tail -30 "$out/build.log"; exit 1; }
echo "built both trees in ${SECONDS}s"
export PYTHON=${PYTHON:-python3} PROTOC=${PROTOC:-/opt/deps/usr/bin/protoc}
# The earlier tree's server beside this tree's tools.
mixed=$out/base-bin
mkdir -p "$mixed/server" "$mixed/client" "$mixed/bench"
cp "$base/build-cuda/server/coalesce-server" "$mixed/server/"
cp build-cuda/client/coalesce-bench build-cuda/client/coalesce-client "$mixed/client/"
cp build-cuda/bench/coalesce-echo-server "$mixed/bench/"
rounds=${ROUNDS:-2}
for round in $(seq "$rounds"); do
  for side in before after; do
    bin=build-cuda
    [[ $side == before ]] && bin=$mixed
    BUILD=$bin OUT_DIR="$out/$side.$round" PIN=1 CONFIGS=${CONFIGS:-"unbatched coalesce echo"} \
      OPEN_LOOP_FRACTION=${OPEN_LOOP_FRACTION:-0} WARMUP_S=${WARMUP_S:-2} \
      DURATION_S=${DURATION_S:-4} bench/run.sh >"$out/$side.$round.txt" 2>"$out/$side.$round.log" ||
      echo "$side.$round: bench/run.sh exited $?" >&2
  done
done
for round in $(seq "$rounds"); do for f in before.$round after.$round; do
  echo "== $f"
  sed -n '/^ *conc /,/^$/p' "$out/$f.txt"
done; done
