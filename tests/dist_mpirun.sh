# dist_mpirun.sh: sourced by the MPI tests (test_dist*.sh). Finds mpirun
# ($MPIRUN, which `make check` sets to configure's @MPIRUN@, else mpirun on
# PATH; exit 77 = skipped when there is none) and sets
#   MPIRUN_CMD  mpirun with the flags CI needs: --oversubscribe (CI has 2
#               cores, the tests run 3 ranks), --bind-to none, one OpenMP
#               thread per rank, --allow-run-as-root when uid is 0, plus
#               anything in $AVSR_MPIRUN_FLAGS
#   PROG        the test program
mpirun_bin=${MPIRUN:-}
if [ -z "$mpirun_bin" ] || [ "$mpirun_bin" = no ]; then
    mpirun_bin=$(command -v mpirun 2>/dev/null || true)
fi
if [ -z "$mpirun_bin" ] || [ ! -x "$mpirun_bin" ]; then
    echo "mpirun not found (configure's MPIRUN or PATH): skipped"
    exit 77
fi
MPIRUN_CMD="$mpirun_bin --oversubscribe --bind-to none -x OMP_NUM_THREADS=1"
if [ "$(id -u)" = 0 ]; then
    MPIRUN_CMD="$MPIRUN_CMD --allow-run-as-root"
fi
MPIRUN_CMD="$MPIRUN_CMD ${AVSR_MPIRUN_FLAGS:-}"
PROG="${top_builddir:-.}/tests/test_dist_mpi"
if [ ! -x "$PROG" ]; then
    echo "$PROG not built" >&2
    exit 99
fi

# now_ms: monotonic-enough wall clock in milliseconds
now_ms() {
    echo $(( $(date +%s%N) / 1000000 ))
}

# wait_file FILE SECONDS: wait until FILE exists (0) or time runs out (1)
wait_file() {
    _i=0
    while [ ! -s "$1" ]; do
        _i=$((_i + 1))
        [ "$_i" -gt $(($2 * 20)) ] && return 1
        sleep 0.05
    done
    return 0
}
