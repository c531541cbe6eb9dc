#!/bin/sh
# test_dist_fail.sh: failures end the whole job with a non-zero status,
# quickly, never a hang (-np 2 and -np 3; kill -9 is in test_dist_kill.sh):
#   hang    rank 1 alive but never arrives at a barrier: the others'
#           watchdog (2 s) ends them, then mpirun ends the job (limit: 15 s)
#   abort   a collective fails (invalid root) under the default policy:
#           message + MPI_Abort (limit: 15 s)
. "${srcdir:-.}/tests/dist_mpirun.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/avsr-dist-fail.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
status=0
fail() { echo "not ok $*"; status=1; }

for np in 2 3; do
    # watchdog
    t0=$(now_ms)
    timeout 60 $MPIRUN_CMD -np $np "$PROG" hang >"$dir/out" 2>&1
    rc=$?
    ms=$(( $(now_ms) - t0 ))
    tail -n 5 "$dir/out" | sed 's/^/#   /'
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $ms -lt 15000 ] &&
        grep -q "watchdog: barrier did not return within 2.0 s" "$dir/out"; then
        echo "ok np=$np watchdog: a rank that never arrives -> job exit $rc after $ms ms"
    else
        fail "np=$np watchdog: exit $rc after $ms ms"
    fi

    # failure policy
    t0=$(now_ms)
    timeout 60 $MPIRUN_CMD -np $np "$PROG" abort >"$dir/out" 2>&1
    rc=$?
    ms=$(( $(now_ms) - t0 ))
    tail -n 5 "$dir/out" | sed 's/^/#   /'
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $ms -lt 15000 ] &&
        grep -q "MPI_ERR_ROOT.*: aborting the job" "$dir/out"; then
        echo "ok np=$np failure policy: a failed collective -> message, MPI_Abort, exit $rc after $ms ms"
    else
        fail "np=$np failure policy: exit $rc after $ms ms"
    fi
done
exit $status
