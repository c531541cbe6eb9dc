#!/bin/sh
# test_dist.sh: tests/test_dist_mpi all (collectives, gradient buckets,
# parameter broadcast, BN sync, plan broadcast, metrics, flags) under mpirun
# with 2 and 3 ranks. Plain protocol: 0 pass, 77 skip, else fail.
. "${srcdir:-.}/tests/dist_mpirun.sh"
status=0
for np in 2 3; do
    echo "# mpirun -np $np $PROG all"
    t0=$(now_ms)
    timeout 60 $MPIRUN_CMD -np $np "$PROG" all
    rc=$?
    echo "# np=$np: exit $rc after $(( $(now_ms) - t0 )) ms"
    [ $rc -eq 0 ] || status=1
done
exit $status
