#!/usr/bin/env bash
# bench/gpu-models.sh: issue 19's benchmark models end to end, in one command on the CUDA host
# (from any folder; it runs from the repository):
#   bash bench/gpu-models.sh OUT_DIR
# 1. Builds against the wheel's LibTorch as bench/gpu-run.sh does, unless $BUILD already holds
#    the binaries.
# 2. bench/make_models.py writes ResNet-50 (torchvision, traced) and a BERT-base-sized encoder
#    (ENCODER_LAYERS layers, hidden 768, ENCODER_DTYPE weights) into a temporary repository, and
#    the same models with max_batch_size 1 into another, for the unbatched configuration. The
#    files (100 MB and more each) stay out of OUT_DIR.
# 3. For each model, bench/run.sh: coalesce vs unbatched vs the model's in-process ceiling at
#    the batch sizes coalesce formed, closed loop at CONCURRENCY with single-sample requests,
#    then an open loop at 80% of coalesce's peak. The encoder's requests are all
#    SEQUENCE_LENGTH tokens long: requests of different lengths do not share a batch yet.
# Each model's table, CSVs and logs are in OUT_DIR/<model>/. The Python peer serves only the
# demo model, so it has no column here.
#
# On a machine without a GPU the same script is the smoke test of the path (not a benchmark):
#   BUILD=build PYTHON=/usr/bin/python3 DEVICE=cpu ENCODER_LAYERS=2 ENCODER_DTYPE=fp32 \
#     MAX_BATCH_SIZE=8 SEQUENCE_LENGTH=16 CONCURRENCY=1,8 WARMUP_S=0.5 DURATION_S=2 \
#     bash bench/gpu-models.sh OUT_DIR
set -euo pipefail
out=${1:?usage: bench/gpu-models.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build-cuda}
PYTHON=${PYTHON:-python3}
MODELS=${MODELS:-resnet50,encoder}
ENCODER_LAYERS=${ENCODER_LAYERS:-12}
# fp16 on a GPU: coalesce's --precision converts only FP32 inputs, and the encoder's are INT64.
ENCODER_DTYPE=${ENCODER_DTYPE:-fp16}
SEQUENCE_LENGTH=${SEQUENCE_LENGTH:-128}
MAX_BATCH_SIZE=${MAX_BATCH_SIZE:-256}
export CONCURRENCY=${CONCURRENCY:-1,8,64,256}
export WARMUP_S=${WARMUP_S:-2} DURATION_S=${DURATION_S:-4}
export CONFIGS=${CONFIGS:-unbatched coalesce model}
export H2LOAD_CONFIGS=${H2LOAD_CONFIGS-}
export DEVICE=${DEVICE:-auto} PYTHON

if [[ -d /opt/deps/usr/lib/x86_64-linux-gnu ]]; then
  export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
fi
if [[ ! -x $BUILD/server/coalesce-server ]]; then
  [[ -f .gpudeps/build-on-cuda-host.sh ]] || { echo "no $BUILD and no .gpudeps to build it" >&2; exit 1; }
  bash .gpudeps/build-on-cuda-host.sh "$BUILD" -DCOALESCE_BUILD_TESTS=OFF -DCOALESCE_WITH_MPS=ON \
    >"$out/build.log" 2>&1 ||
    { tail -30 "$out/build.log"; exit 1; }
fi

repos=$(mktemp -d)
trap 'rm -rf "$repos"' EXIT
"$PYTHON" bench/make_models.py "$repos/batched" --models "$MODELS" --cuda_graphs \
  --encoder_layers "$ENCODER_LAYERS" --encoder_dtype "$ENCODER_DTYPE" \
  --max_batch_size "$MAX_BATCH_SIZE" | tee "$out/models.txt"
for model in ${MODELS//,/ }; do
  mkdir -p "$repos/unbatched/$model/1"
  ln "$repos/batched/$model/1/model.pt" "$repos/unbatched/$model/1/model.pt"
  sed 's/^max_batch_size: .*/max_batch_size: 1/' "$repos/batched/$model/config.pbtxt" \
    >"$repos/unbatched/$model/config.pbtxt"
done

status=0
for model in ${MODELS//,/ }; do
  variable_dim=
  [[ $model == encoder ]] && variable_dim=$SEQUENCE_LENGTH
  echo "== $model${variable_dim:+, $variable_dim tokens per request}"
  if ! BUILD=$BUILD OUT_DIR="$out/$model" MODEL=$model MODEL_REPOSITORY="$repos/batched" \
    UNBATCHED_REPOSITORY="$repos/unbatched" VARIABLE_DIM=$variable_dim \
    bench/run.sh 2>"$out/$model.log"; then
    tail -20 "$out/$model.log" >&2
    status=1
  fi
done
exit "$status"
