#!/bin/sh
# test_train_equiv.sh: world-size independence of training. The tiny AV
# model (BatchNorm, dropout, modality dropout, noise and video augmentation
# on) trained 5 steps with -np 1 and with -np 2 on the same global batches:
# per-step losses equal within 1e-5 relative, final parameters within 1e-4
# of the largest parameter magnitude.
. "${srcdir:-.}/tests/train_env.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-equiv.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
status=0
fail() { echo "FAIL: $*"; status=1; }

tiny_recipe r1.yaml exp1 "    steps: 5"
tiny_recipe r2.yaml exp2 "    steps: 5"
timeout 600 $MPIRUN_CMD -np 1 "$W" r1.yaml > log1 2>&1 || { cat log1; fail "np 1 run failed"; }
timeout 600 $MPIRUN_CMD -np 2 "$W" r2.yaml > log2 2>&1 || { cat log2; fail "np 2 run failed"; }
if [ $status -eq 0 ]; then
    "$CMP" losses exp1/train/metrics.jsonl exp2/train/metrics.jsonl 1e-5 5 \
        || fail "per-step losses differ between np 1 and np 2"
    "$CMP" params exp1/train/last/model.safetensors exp2/train/last/model.safetensors 1e-4 \
        || fail "final parameters differ between np 1 and np 2"
fi
[ $status -eq 0 ] && echo "PASS: np 1 and np 2 train the same"
exit $status
