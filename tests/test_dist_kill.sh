#!/bin/sh
# test_dist_kill.sh: kill -9 of rank 1 while every rank is in all-reduces:
# Open MPI's mpirun notices the death and ends the whole job with a non-zero
# status; asserted to take under 30 s (measured: about 1 s). -np 2 and 3.
. "${srcdir:-.}/tests/dist_mpirun.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/avsr-dist-kill.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
status=0
fail() { echo "not ok $*"; status=1; }

for np in 2 3; do
    # kill -9 mid-collective
    rm -f "$dir/pid"
    timeout 60 $MPIRUN_CMD -np $np "$PROG" kill "$dir" >"$dir/out" 2>&1 &
    job=$!
    if wait_file "$dir/pid" 20; then
        sleep 0.3
        pid=$(cat "$dir/pid")
        kill -0 "$pid" || fail "np=$np kill: rank 1 ended before the kill"
        t0=$(now_ms)
        kill -9 "$pid"
        wait $job
        rc=$?
        ms=$(( $(now_ms) - t0 ))
        tail -n 5 "$dir/out" | sed 's/^/#   /'
        if [ $rc -ne 0 ] && [ $ms -lt 30000 ]; then
            echo "ok np=$np kill -9 of rank 1 mid-collective: job exit $rc after $ms ms"
        else
            fail "np=$np kill -9: exit $rc after $ms ms (want non-zero, < 30000 ms)"
        fi
    else
        cat "$dir/out"; kill $job; wait $job
        fail "np=$np kill: rank 1 never wrote its pid"
    fi
done
exit $status
