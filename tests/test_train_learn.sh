#!/bin/sh
# test_train_learn.sh: does the joint demo recipe learn? (make check-learning; run
# by .ci/run, not by make check: it takes 3-4 minutes on 2 cores.)
# The default avsr-synth corpus (18 training speakers x 20 clips, unseen
# validation speakers), packed at 48x48 as scripts/demo.sh does, trained
# with recipes/demo-joint.yaml unchanged except its paths and its length (12
# epochs over these 360 clips; the demo's corpus is 4.7 times larger) on 2
# ranks. Asserted:
#   - the training loss of the last 10 steps is below 0.4 x the first 10
#     steps' (seen: 102 -> 16);
#   - the final validation WER (greedy CTC) is below 0.35 (seen: 0.164,
#     CER 0.043, from 0.997 after the first epoch; 191 s of training).
. "${srcdir:-.}/tests/train_env.sh"
S=$(cd "${srcdir:-.}" && pwd)
DD="$B/tests/demo-data"
exec 8>"$B/tests/demo-data.lock"
flock 8
if [ ! -f "$DD/ok" ]; then
    rm -rf "$DD"
    "$B/avsr-synth" -q -o "$DD" || { echo "avsr-synth failed"; exit 99; }
    for s in train valid test; do
        "$B/launch/avsr-pack" "$DD/$s.csv" -o "$DD/$s.h5" --roi 48 > /dev/null 2>&1 \
            || { echo "avsr-pack $s failed"; exit 99; }
    done
    "$B/launch/avsr-pack" "$DD/babble.csv" --noise --babble 4 -o "$DD/noise-babble.h5" \
        > /dev/null 2>&1 || { echo "avsr-pack babble failed"; exit 99; }
    touch "$DD/ok"
fi
flock -u 8
DD=$(cd "$DD" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-learn.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
sed -e "s#data/demo/#$DD/#g" -e "s#exp_dir: .*#exp_dir: exp#" -e "s#^    epochs: [0-9]*#    epochs: 12#" \
    "$S/recipes/demo-joint.yaml" > demo.yaml
start=$(date +%s)
timeout 3600 $MPIRUN_CMD -np 2 "$W" demo.yaml > log 2>&1 || { tail -n 30 log; echo "FAIL: training failed"; exit 1; }
echo "# trained in $(( $(date +%s) - start )) s"
grep 'valid loss' log | sed 's/^/# /'
first=$(grep '"kind":"step"' exp/train/metrics.jsonl | head -n 10 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(grep '"kind":"step"' exp/train/metrics.jsonl | tail -n 10 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
wer=$(grep '"kind":"valid"' exp/train/metrics.jsonl | tail -n 1 | sed 's/.*"valid_wer":\([0-9.e+-]*\).*/\1/')
echo "# training loss: first 10 steps $first, last 10 steps $last; final validation WER $wer"
status=0
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.4 * a) }' || { echo "FAIL: the loss did not fall below 0.4 x its start"; status=1; }
awk -v w="$wer" 'BEGIN { exit !(w < 0.35) }' || { echo "FAIL: validation WER $wer is not below 0.35"; status=1; }
[ $status -eq 0 ] && echo "PASS: the joint demo recipe learns (WER $wer < 0.35)"
exit $status
