#!/bin/bash
# demo.sh: the quick-start demo, end to end on a fresh Debian 12 clone.
#
#   scripts/demo.sh [avsr-toy options]
#
# Installs missing Debian packages, builds avsr in build/ (configure's
# default guesses: CUDA if found), then runs what exists so far: the toy
# training (examples/avsr-toy), a conv net trained with CTC on a synthetic
# noisy token stream, which prints its loss, speed and held-out token error
# rate and saves its weights to build/demo/toy.safetensors.
# Environment: BUILD_DIR (default build), JOBS (default nproc),
# AVSR_SKIP_DEPS=1 to skip the package check.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if [ "${AVSR_SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh
fi
[ -x configure ] || autoreconf -fi
mkdir -p "$build"
cd "$build"
[ -f config.status ] || "$root/configure"
make -j"$jobs" examples/avsr-toy
mkdir -p demo
echo
echo "== avsr-toy: training a small conv net with CTC on the runtime"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$jobs} ./examples/avsr-toy --save demo/toy.safetensors "$@"
