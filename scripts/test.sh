#!/bin/bash
# test.sh: the one command that builds avsr and runs its test suite.
#
#   scripts/test.sh [CONFIGURE-ARGS...]
#
# Installs missing Debian packages (scripts/install-deps.sh), runs autoreconf
# when configure is missing, configures in build/ (configure's default
# guesses: CUDA if found, CPU otherwise; pass e.g. --without-cuda to choose),
# builds with make -j$(nproc) and runs `make check`. The logs of failing
# tests are printed. The last line is the summary
#     N passed, N failed, N skipped
# counted from build/test-suite.log (failed = FAIL + ERROR + XPASS; a build
# that fails counts as one failure). Exits non-zero when anything failed.
# Environment: BUILD_DIR (default build), JOBS (default nproc),
# AVSR_SKIP_DEPS=1 to skip the package check.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

summary() { # passed failed skipped
    echo "$1 passed, $2 failed, $3 skipped"
}
die() {
    echo "test.sh: $*" >&2
    summary 0 1 0
    exit 1
}

if [ "${AVSR_SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh || die "installing the Debian packages failed"
fi

if [ ! -x configure ]; then
    echo "test.sh: autoreconf -fi"
    autoreconf -fi || die "autoreconf failed"
fi

mkdir -p "$build" && cd "$build" || die "cannot create $build"
if [ ! -f config.status ] || [ $# -gt 0 ]; then
    "$root/configure" "$@" || die "configure failed (see $build/config.log)"
fi

make -j"$jobs" || die "the build failed"

rm -f test-suite.log
# VERBOSE: the harness prints test-suite.log (with the log of every failing
# test) when something fails
make -j"$jobs" check VERBOSE=1
check_rc=$?

if [ ! -f test-suite.log ]; then
    die "make check did not produce $build/test-suite.log (a test program failed to build?)"
fi
count() { # the number after "# NAME:" in the suite log
    awk -v k="# $1:" 'index($0, k) == 1 { print $3; found = 1; exit } END { if (!found) print 0 }' \
        test-suite.log
}
pass=$(count PASS)
fail=$(( $(count FAIL) + $(count ERROR) + $(count XPASS) ))
skip=$(count SKIP)
if [ "$check_rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    echo "test.sh: make check failed (exit $check_rc) without a failing test" >&2
    fail=1
fi
summary "$pass" "$fail" "$skip"
[ "$fail" -eq 0 ]
