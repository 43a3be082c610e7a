#!/usr/bin/env bash
# Idempotent setup on Debian 12: the Debian -dev packages, a project-local venv holding
# torch==2.11.0 (LibTorch), then a Release build with ccache. Re-running only rebuilds.
# Environment: HALO_VENV (default .venv), HALO_BUILD_DIR (default build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HALO_VENV:-$root/.venv}
build=${HALO_BUILD_DIR:-$root/build}

packages="build-essential cmake ninja-build ccache git python3 python3-venv pkg-config
  nlohmann-json3-dev libcxxopts-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libpcre2-dev
  libsentencepiece-dev libgtest-dev libutf8proc-dev libssl-dev zlib1g-dev libgloo-dev"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi

if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: creating $venv with torch==2.11.0 (a few GB, once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.11.0
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHALO_PYTHON="$venv/bin/python" >/dev/null
cmake --build "$build"
echo "setup: halo is at $build/bin/halo"
