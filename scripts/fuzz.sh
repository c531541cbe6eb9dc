#!/bin/sh
# fuzz.sh [SECONDS] [BUILDDIR]: build the safetensors fuzzer with `make fuzz`
# in BUILDDIR (default: $BUILDDIR or ./build) and run it for SECONDS
# (default 60) on a scratch copy of tests/fuzz/corpus, so the committed seed
# corpus is not modified. Exit status 0: no crash found; non-zero: a crash
# (its reproducer is written as BUILDDIR/fuzz-crash-* and named in the log),
# or the build failed. Reproduce a crash with
#   BUILDDIR/tests/fuzz_safetensors BUILDDIR/fuzz-crash-<hash>
set -u
secs=${1:-60}
builddir=${2:-${BUILDDIR:-build}}
srcdir=$(cd "$(dirname "$0")/.." && pwd)

case $secs in
    ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;;
esac
if [ ! -f "$builddir/Makefile" ]; then
    echo "fuzz.sh: $builddir/Makefile not found: configure a build directory first" >&2
    exit 2
fi
make -C "$builddir" fuzz || { echo "fuzz.sh: make fuzz failed" >&2; exit 2; }
builddir=$(cd "$builddir" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/avsr-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/corpus"
cp "$srcdir"/tests/fuzz/corpus/* "$work/corpus/"

# One process (the machine may be shared); leaks count as failures.
"$builddir/tests/fuzz_safetensors" \
    -max_total_time="$secs" \
    -dict="$srcdir/tests/fuzz/safetensors.dict" \
    -artifact_prefix="$builddir/fuzz-" \
    -print_final_stats=1 \
    "$work/corpus"
rc=$?
if [ $rc -ne 0 ]; then
    echo "fuzz.sh: the fuzzer stopped with status $rc; reproducers:" >&2
    ls -1 "$builddir"/fuzz-crash-* "$builddir"/fuzz-leak-* "$builddir"/fuzz-timeout-* \
        "$builddir"/fuzz-oom-* 2>/dev/null >&2
fi
exit $rc
