#!/bin/sh
# test_train_resume.sh: exact resume. For -np 1 and -np 2: 6 steps straight,
# against a run whose ranks are all killed with SIGKILL after step 3 (the
# last checkpoint is step 2, so step 3 is lost and redone) and then re-run
# with the same command: the step-6 checkpoints (parameters, buffers,
# optimizer moments and training state) are bitwise identical, and the
# re-run's metrics.jsonl has each step once.
. "${srcdir:-.}/tests/train_env.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-resume.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
status=0
fail() { echo "FAIL: $*"; status=1; }

for np in 1 2; do
    tiny_recipe a$np.yaml expA$np "    steps: 6"
    tiny_recipe b$np.yaml expB$np "    steps: 6"
    timeout 600 $MPIRUN_CMD -np $np "$W" a$np.yaml > logA$np 2>&1 \
        || { cat logA$np; fail "np $np: straight run failed"; continue; }
    timeout 600 $MPIRUN_CMD -np $np -x AVSR_TEST_KILL_AT_STEP=3 "$W" b$np.yaml > logB$np 2>&1 \
        && { cat logB$np; fail "np $np: the killed run exited 0"; continue; }
    [ -f expB$np/train/FINISHED ] && fail "np $np: the killed run finished"
    [ -f expB$np/train/ckpt/step-2/DONE ] || fail "np $np: no step-2 checkpoint before the kill"
    [ -e expB$np/train/ckpt/step-4 ] && fail "np $np: a step-4 checkpoint before the kill"
    timeout 600 $MPIRUN_CMD -np $np "$W" b$np.yaml > logC$np 2>&1 \
        || { cat logC$np; fail "np $np: the re-run failed"; continue; }
    grep -q "resumed from .*step-2 (epoch 0, step 2)" logC$np \
        || { cat logC$np; fail "np $np: the re-run did not resume from step 2"; }
    for f in model state; do
        "$CMP" bitwise expA$np/train/ckpt/step-6/$f.safetensors \
            expB$np/train/ckpt/step-6/$f.safetensors \
            || fail "np $np: $f.safetensors differs after the resume"
    done
    n=$(step_records expB$np/train/metrics.jsonl)
    [ "$n" = 6 ] || fail "np $np: metrics.jsonl of the resumed run has $n step records, not 6"
    [ $status -eq 0 ] && echo "ok np $np: killed after step 3, resumed from step 2, bitwise equal at step 6"
done
exit $status
