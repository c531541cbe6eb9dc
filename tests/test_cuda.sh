#!/bin/sh
# test_cuda.sh: run tests/test_cuda (TAP) when this machine has an NVIDIA
# GPU; otherwise skip. Plain test protocol: 0 pass, 77 skip, else fail.
if [ ! -e /dev/nvidia0 ] \
    || { command -v nvidia-smi >/dev/null 2>&1 && ! nvidia-smi -L >/dev/null 2>&1; }; then
    echo "no NVIDIA GPU (no /dev/nvidia0 or nvidia-smi -L fails): skipped"
    exit 77
fi
prog="${top_builddir:-.}/tests/test_cuda"
if [ ! -x "$prog" ]; then
    echo "$prog not built" >&2
    exit 99
fi
out=$("$prog")
rc=$?
printf '%s\n' "$out"
case $out in
    "1..0 # SKIP"*) exit 77 ;; # built without CUDA, or the device is unusable
esac
exit $rc
