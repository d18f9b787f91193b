#!/usr/bin/env bash
# bench/gpu-models.sh: issue 19's benchmark models end to end, in one command on the CUDA host
# (from any folder; it runs from the repository):
#   bash bench/gpu-models.sh OUT_DIR
# 1. Builds against the wheel's LibTorch as bench/gpu-run.sh does, unless $BUILD already holds
#    the binaries.
# 2. bench/make_models.py writes ResNet-50 (torchvision, traced) and a BERT-base-sized encoder
#    (ENCODER_LAYERS layers, hidden 768, ENCODER_DTYPE weights) into a temporary repository,
#    with encoder_padded beside the encoder (the same file, padded batching declared, buckets
#    ENCODER_PAD_BUCKETS), and the same models with max_batch_size 1 into another, for the
#    unbatched configuration. The files (100 MB and more each) stay out of OUT_DIR.
# 3. For each model, bench/run.sh: coalesce vs unbatched vs the model's in-process ceiling at
#    the batch sizes coalesce formed, closed loop at CONCURRENCY with single-sample requests,
#    then an open loop at 80% of coalesce's peak. Each encoder request's length is drawn
#    uniformly from ENCODER_LENGTHS (coalesce-bench --variable_dim=MIN:MAX, fixed seed): first
#    against encoder, whose batches hold only requests of one length (equal-shape batching),
#    then with the same load against encoder_padded (no unbatched run: at batch 1 it is the
#    encoder), and one line per concurrency gives padded ÷ equal-shape requests/s; a last line
#    gives the share of padding in the padded run (the server's padding counters).
# Each model's table, CSVs and logs are in OUT_DIR/<model>/, the comparison in
# OUT_DIR/encoder-padding.txt. The Python peer serves only the demo model, so it has no column
# here.
#
# On a machine without a GPU the same script is the smoke test of the path (not a benchmark):
#   BUILD=build PYTHON=/usr/bin/python3 DEVICE=cpu ENCODER_LAYERS=2 ENCODER_DTYPE=fp32 \
#     MAX_BATCH_SIZE=8 ENCODER_LENGTHS=8:32 CONCURRENCY=1,8 WARMUP_S=0.5 DURATION_S=2 \
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
# Each encoder request's length: N, or MIN:MAX drawn uniformly per request.
ENCODER_LENGTHS=${ENCODER_LENGTHS:-16:256}
ENCODER_PAD_BUCKETS=${ENCODER_PAD_BUCKETS:-16,32,64,128,256,512}
if [[ -n ${SEQUENCE_LENGTH:-} ]]; then
  echo "bench/gpu-models.sh: SEQUENCE_LENGTH is now ENCODER_LENGTHS (N, or MIN:MAX)" >&2
  exit 2
fi
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
  --encoder_padding --encoder_pad_buckets "$ENCODER_PAD_BUCKETS" \
  --max_batch_size "$MAX_BATCH_SIZE" | tee "$out/models.txt"
runs=()
for model in ${MODELS//,/ }; do
  runs+=("$model")
  if [[ $model == encoder ]]; then runs+=(encoder_padded); fi
done
for model in ${MODELS//,/ }; do
  mkdir -p "$repos/unbatched/$model/1"
  ln "$repos/batched/$model/1/model.pt" "$repos/unbatched/$model/1/model.pt"
  sed 's/^max_batch_size: .*/max_batch_size: 1/' "$repos/batched/$model/config.pbtxt" \
    >"$repos/unbatched/$model/config.pbtxt"
done

status=0
for model in "${runs[@]}"; do
  variable_dim= configs=$CONFIGS
  [[ $model == encoder* ]] && variable_dim=$ENCODER_LENGTHS
  [[ $model == encoder_padded ]] && configs=$(tr ' ' '\n' <<<"$CONFIGS" | grep -vx unbatched | xargs)
  echo "== $model${variable_dim:+, $variable_dim tokens per request}"
  if ! BUILD=$BUILD OUT_DIR="$out/$model" MODEL=$model MODEL_REPOSITORY="$repos/batched" \
    UNBATCHED_REPOSITORY="$repos/unbatched" VARIABLE_DIM=$variable_dim CONFIGS=$configs \
    bench/run.sh 2>"$out/$model.log"; then
    tail -20 "$out/$model.log" >&2
    status=1
  fi
done

# Padded against equal-shape batching: coalesce's closed-loop rows of the two encoder runs.
if [[ -f $out/encoder/summary.csv && -f $out/encoder_padded/summary.csv ]]; then
  awk -F, -v levels="$CONCURRENCY" -v lengths="$ENCODER_LENGTHS" -v buckets="$ENCODER_PAD_BUCKETS" '
    FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; file++; next }
    $1 == "coalesce" { rps[file, $2] = $col["requests_per_s"]; batch[file, $2] = $NF
                       p99[file, $2] = $col["p99_ms"] }
    function cell(x, f) { return x == "" ? "-" : sprintf(f, x) }
    END {
      printf "encoder, lengths uniform in %s tokens: padded batching (buckets %s) vs equal-shape\n", lengths, buckets
      n = split(levels, l, ",")
      for (i = 1; i <= n; i++) {
        L = l[i]; e = rps[1, L]; p = rps[2, L]
        printf "concurrency %s: padded ÷ equal-shape = %s (%s vs %s req/s; mean batch %s vs %s; p99 %s vs %s ms)\n",
          L, (e > 0 && p > 0) ? sprintf("%.2f", p / e) : "-", cell(p, "%.0f"), cell(e, "%.0f"),
          cell(batch[2, L], "%.1f"), cell(batch[1, L], "%.1f"), cell(p99[2, L], "%.2f"), cell(p99[1, L], "%.2f")
      }
      L = l[n]; e = rps[1, L]; p = rps[2, L]
      if (e > 0 && p > 0)
        printf "target (issue 19, on an H100): padded >= 3x equal-shape at concurrency %s: %.2f (%s)\n",
          L, p / e, (p / e >= 3) ? "met" : "missed"
    }' "$out/encoder/summary.csv" "$out/encoder_padded/summary.csv" | tee "$out/encoder-padding.txt"
  # What padding cost over the padded run: padding ÷ elements staged for padded inputs, from the
  # server's own counters (bench/run.sh saves them as coalesce.metrics.txt).
  if [[ -f $out/encoder_padded/coalesce.metrics.txt ]]; then
    awk '/^coalesce_padding_elements_total[{]/ { pad += $NF }
         /^coalesce_padded_input_elements_total[{]/ { staged += $NF }
         END { if (staged > 0) printf "padding: %.1f%% of the padded inputs'"'"' staged elements (%.0f of %.0f)\n", 100 * pad / staged, pad, staged
               else print "padding: no padded batch ran" }' \
      "$out/encoder_padded/coalesce.metrics.txt" | tee -a "$out/encoder-padding.txt"
  fi
fi
exit "$status"
