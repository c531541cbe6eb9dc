#!/bin/sh
# Run the PyTorch peer and our benchmark on the same shapes and print the
# joined Markdown table. Usage (from the build directory):
#   sh ../bench/run_conv.sh
# Env: OMP_NUM_THREADS (default 2), AVSR_CONV_LAYOUT=plain|blocked.
set -e
here=$(dirname "$0")
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$here/conv_torch.py" "$tmp" >/dev/null
./bench/bench_conv "$tmp"
