#!/bin/sh
# test_train_resume.sh: exact resume. For -np 1 and -np 2: 6 steps straight,
# against a run whose ranks are all killed with SIGKILL after step 3 (the
# last checkpoint is step 2, so step 3 is lost and redone) and then re-run
# with the same command: the step-6 checkpoints (parameters, buffers,
# optimizer moments and training state) are bitwise identical, and the
# re-run's metrics.jsonl has each step once. With -np 2 also: a changed
# recipe is refused with the changed key named, and a copy of the killed
# run resumed on 1 rank with --force-resume says both and finishes.
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
    if [ $np = 2 ]; then
        # a changed recipe is refused, naming the key, before anything is written
        sed 's/lr: 3.0e-3/lr: 2.0e-3/' b$np.yaml > changed.yaml
        timeout 600 $MPIRUN_CMD -np $np "$W" changed.yaml > logX 2>&1 \
            && fail "np $np: a changed recipe resumed"
        grep -q "the recipe changed since this checkpoint (hash [0-9a-f]*, now [0-9a-f]*): stages.0.optimizer.lr: '0.003' -> '0.002'; re-run with --force-resume" logX \
            || { cat logX; fail "np $np: no message naming the changed key"; }
        # a copy (another exp_dir: a changed recipe, so --force-resume)
        # resumed on another world size says so and finishes
        cp -r expB$np expW
        sed 's/exp_dir: expB2/exp_dir: expW/' b$np.yaml > w.yaml
        timeout 600 $MPIRUN_CMD -np 1 "$W" w.yaml --force-resume > logW 2>&1 \
            || { cat logW; fail "np 2 -> 1 resume failed"; }
        grep -q "resuming although the recipe changed (--force-resume): run.exp_dir: 'expB2' -> 'expW'" logW \
            || { cat logW; fail "no --force-resume note"; }
        grep -q "was written by 2 rank(s), resuming on 1" logW || { cat logW; fail "no world-size note"; }
        [ -f expW/train/FINISHED ] || fail "np 2 -> 1: not finished"
    fi
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
