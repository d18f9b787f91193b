#!/usr/bin/env bash
# The layers' include rule (docs/architecture.md): each layer includes only itself and the layers
# below it, and the engine and execution layers include no protobuf, gRPC, prometheus-cpp or
# generated proto/ header. Only execution/torch/ includes LibTorch. Prints every offending line
# and exits 1 if there is one. cmake/layers.cmake checks the matching link rule.
#
# Usage: layering_test.sh <source root>
set -u
root=${1:-.}
failed=0

# check <what is wrong> <regex of a forbidden #include> <folder>... [grep option]...
check() {
  local why=$1 pattern=$2
  shift 2
  local hits
  hits=$(cd "$root" && grep -rnE --include='*.h' --include='*.cc' "$pattern" "$@")
  if [[ -n $hits ]]; then
    echo "$why:"
    echo "$hits"
    failed=1
  fi
}

include='^[[:space:]]*#[[:space:]]*include[[:space:]]*'
check "the engine and execution layers include no protocol or metrics library" \
  "$include[<\"](google/protobuf/|grpc|grpcpp/|prometheus/|proto/|[^\">]*\\.pb\\.h)" \
  engine execution
check "engine/ includes only engine/ and abseil" \
  "$include\"(execution|serving|repository|server|client|common|bench)/" engine
check "execution/ includes nothing above it" \
  "$include\"(serving|repository|server|client|bench)/" execution
check "serving/ includes nothing above it" \
  "$include\"(repository|server|client|bench)/" serving
check "repository/ includes nothing above it" \
  "$include\"(server|client|bench)/" repository
check "only execution/torch/ includes LibTorch" \
  "$include<(torch/|ATen/|c10/)" engine execution serving repository server \
  --exclude-dir=torch

exit $failed
