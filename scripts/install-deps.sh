#!/usr/bin/env bash
# Installs what coalesce needs to build and test, and nothing that is already there.
# Debian 12 / Ubuntu 24.04: apt packages (as root, or through sudo). macOS: Homebrew formulae.
#   scripts/install-deps.sh           build and test dependencies (python3-torch: the e2e
#                                     interoperability test's reference model)
#   scripts/install-deps.sh --bench   also the Python peer's (grpcio, torch) and plotting
set -euo pipefail

bench=0
[ "${1:-}" = "--bench" ] && bench=1

debian_packages=(
  build-essential cmake ccache pkg-config
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev prometheus-cpp-dev libconcurrentqueue-dev
  libgtest-dev libgmock-dev
  clang libclang-rt-dev
  prometheus nginx python3-grpcio python3-protobuf python3-yaml libxml2-utils
  openssl libssl-dev python3-torch
  dpkg-dev file python3-jsonschema ruby
)
# Node.js checks the Kubernetes manifests against their OpenAPI schemas (tests/e2e/k8s_schema);
# a machine that already has node (from NodeSource, say) keeps it.
command -v node >/dev/null && command -v npm >/dev/null || debian_packages+=(nodejs npm)
debian_bench_packages=(python3-grpcio python3-torch python3-protobuf python3-matplotlib)

brew_formulae=(cmake ccache pkg-config pytorch grpc protobuf abseil spdlog prometheus-cpp
               concurrentqueue googletest openssl@3)

install_debian() {
  local wanted=("${debian_packages[@]}")
  [ "$bench" = 1 ] && wanted+=("${debian_bench_packages[@]}")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_macos() {
  command -v brew >/dev/null || { echo "Homebrew is required on macOS: https://brew.sh" >&2; exit 1; }
  local missing=()
  for f in "${brew_formulae[@]}"; do brew list --formula "$f" >/dev/null 2>&1 || missing+=("$f"); done
  [ ${#missing[@]} -eq 0 ] || brew install "${missing[@]}"
}

# The npm packages of tests/e2e/k8s_schema, at the versions its package-lock.json pins.
install_npm_packages() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/k8s_schema"
  [ -d "$dir/node_modules/kubernetes-models" ] && return 0
  echo "installing: npm packages of tests/e2e/k8s_schema"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

case "$(uname -s)" in
  Linux)
    if command -v dpkg-query >/dev/null; then install_debian; install_npm_packages; else
      echo "unsupported Linux: install the packages listed in $0 by hand" >&2; exit 1
    fi ;;
  Darwin) install_macos ;;
  *) echo "unsupported system $(uname -s)" >&2; exit 1 ;;
esac
