#!/bin/sh
# test_train_signal.sh: preemption and rank failure of avsr-worker (-np 2).
#  - SIGUSR1 to mpirun mid-epoch (mpirun forwards it to the ranks): a
#    checkpoint at the next step boundary, exit 75 (requeue); the same
#    command then resumes there and finishes, bitwise equal to a run that
#    was never stopped;
#  - kill -9 of rank 1 mid-training: the job ends with a non-zero status in
#    under 30 s.
. "${srcdir:-.}/tests/train_env.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-signal.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
status=0
fail() { echo "FAIL: $*"; status=1; }

# wait_steps FILE N SECONDS: until FILE has N step records
wait_steps() {
    _i=0
    while [ "$(step_records "$1")" -lt "$2" ]; do
        _i=$((_i + 1))
        [ "$_i" -gt $(($3 * 20)) ] && return 1
        sleep 0.05
    done
}

# preemption
tiny_recipe p.yaml expP "    steps: 24"
tiny_recipe s.yaml expS "    steps: 24"
timeout 600 $MPIRUN_CMD -np 2 "$W" p.yaml > logP 2>&1 &
job=$!
if wait_steps expP/train/metrics.jsonl 3 300; then
    # $job is timeout(1); the signal goes to mpirun under it
    kill -USR1 "$(pgrep -P $job | head -n 1)"
    wait $job
    rc=$?
    if [ $rc -ne 75 ]; then
        cat logP; fail "SIGUSR1: exit $rc, expected 75"
    else
        [ -f expP/train/FINISHED ] && fail "SIGUSR1: the stage finished anyway"
        k=$(sed -n 's/.*stopped by a signal at step \([0-9]*\).*/\1/p' logP | head -n 1)
        [ -n "$k" ] && [ -f "expP/train/ckpt/step-$k/DONE" ] \
            || { cat logP; fail "SIGUSR1: no checkpoint at the stop step '$k'"; }
        echo "ok SIGUSR1 at step $k: checkpoint, exit 75"
        timeout 600 $MPIRUN_CMD -np 2 "$W" p.yaml > logP2 2>&1 || { cat logP2; fail "re-run failed"; }
        grep -q "resumed from .*step-$k " logP2 || { cat logP2; fail "re-run did not resume at $k"; }
        timeout 600 $MPIRUN_CMD -np 2 "$W" s.yaml > logS 2>&1 || { cat logS; fail "straight run failed"; }
        for f in model state; do
            "$CMP" bitwise expS/train/ckpt/step-24/$f.safetensors expP/train/ckpt/step-24/$f.safetensors \
                || fail "preempted + resumed run differs from the straight run ($f)"
        done
    fi
else
    cat logP; kill $job; wait $job; fail "preemption: training never reached step 3"
fi

# rank failure
tiny_recipe f.yaml expF "    steps: 100000"
timeout 600 $MPIRUN_CMD -np 2 "$W" f.yaml > logF 2>&1 &
job=$!
if wait_steps expF/train/metrics.jsonl 2 300; then
    pid=$(rank_pid $job 1)
    if [ -z "$pid" ]; then
        fail "rank failure: cannot find rank 1"; kill $job; wait $job
    else
        t0=$(now_ms)
        kill -9 "$pid"
        wait $job
        rc=$?
        ms=$(( $(now_ms) - t0 ))
        if [ $rc -ne 0 ] && [ $ms -lt 30000 ]; then
            echo "ok kill -9 of rank 1: job exit $rc after $ms ms"
        else
            fail "kill -9 of rank 1: exit $rc after $ms ms (want non-zero, < 30000 ms)"
        fi
    fi
else
    cat logF; kill $job; wait $job; fail "rank failure: training never reached step 2"
fi
exit $status
