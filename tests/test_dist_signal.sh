#!/bin/sh
# test_dist_signal.sh: `kill -USR1` of one rank (rank 1) reaches every rank
# through the flags all-reduce: all ranks stop at the same step and exit 75
# (AVSR_EXIT_REQUEUE), which mpirun passes on. -np 2 and -np 3.
. "${srcdir:-.}/tests/dist_mpirun.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/avsr-dist-sig.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
status=0
for np in 2 3; do
    rm -f "$dir/pid" "$dir/out"
    timeout 60 $MPIRUN_CMD -np $np "$PROG" signal "$dir" >"$dir/out" 2>&1 &
    job=$!
    if ! wait_file "$dir/pid" 20; then
        echo "np=$np: rank 1 never wrote its pid"; cat "$dir/out"; kill $job; wait $job
        status=1; continue
    fi
    sleep 0.2
    t0=$(now_ms)
    kill -USR1 "$(cat "$dir/pid")"
    wait $job
    rc=$?
    ms=$(( $(now_ms) - t0 ))
    cat "$dir/out"
    if [ $rc -eq 75 ] && grep -q "all $np ranks stop at step" "$dir/out"; then
        echo "ok np=$np: SIGUSR1 to rank 1 -> every rank stopped at the same step, exit 75 ($ms ms)"
    else
        echo "not ok np=$np: exit $rc (want 75)"; status=1
    fi
done
exit $status
