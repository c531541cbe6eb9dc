#!/bin/sh
# test_train_nonfinite.sh: non-finite steps (-np 2). SGD with lr 100 blows
# the tiny model up within a few steps: each non-finite step is skipped and
# counted on every rank, and run.max_nonfinite (3) of them in a row stop the
# run with a message and exit status 1.
. "${srcdir:-.}/tests/train_env.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-nonfinite.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
status=0
fail() { echo "FAIL: $*"; status=1; }

tiny_recipe n.yaml exp "    steps: 30" "  max_nonfinite: 3"
sed -i 's/optimizer: {type: adamw.*/optimizer: {type: sgd, lr: 100, momentum: 0.9}/; s/clip_grad_norm: 5.0/clip_grad_norm: 0/' n.yaml
timeout 600 $MPIRUN_CMD -np 2 "$W" n.yaml > log 2>&1
rc=$?
[ $rc -eq 1 ] || { cat log; fail "exit $rc, expected 1"; }
n=$(grep -c "non-finite .*, step skipped" log)
[ "$n" = 3 ] || { cat log; fail "$n skipped-step notes, expected 3"; }
grep -q "rank 0: stage 'train': 3 non-finite steps in a row (limit run.max_nonfinite = 3); stopping at step [0-9]*$" log \
    || { cat log; fail "no stop message"; }
skipped=$(grep '"kind":"step"' exp/train/metrics.jsonl | tail -n 1 | sed 's/.*"skipped":\([0-9]*\).*/\1/')
[ "$skipped" = 3 ] || fail "metrics.jsonl counts $skipped skipped steps, expected 3"
[ -f exp/train/FINISHED ] && fail "the stage was marked finished"
[ $status -eq 0 ] && echo "PASS: 3 non-finite steps skipped and counted, then a stop with a message"
exit $status
