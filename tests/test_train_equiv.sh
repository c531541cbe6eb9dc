#!/bin/sh
# test_train_equiv.sh: world-size independence of training. The demo model
# (recipes/demo-joint.yaml's model: section at 28x28 lips, the tiny corpus's size;
# BatchNorm, dropout, modality dropout, noise and video augmentation on)
# trained 5 steps with -np 1 and with -np 2 on the same global batches:
#  - AdamW (the demo recipe's optimizer): per-step losses equal within 1e-5
#    relative;
#  - SGD with momentum: per-step losses within 1e-5 relative and final
#    parameters within 1e-4 of the largest parameter magnitude.
# Parameters are compared under SGD because Adam normalises every element's
# step to about +-lr whatever the gradient's size, so an element whose true
# gradient is zero (a bias feeding BatchNorm, an attention key bias) moves
# by +-lr on rounding noise that differs with the order of the float sums
# (docs/tools/avsr-worker.md, "World size").
. "${srcdir:-.}/tests/train_env.sh"
S=$(cd "${srcdir:-.}" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-equiv.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
status=0
fail() { echo "FAIL: $*"; status=1; }

for opt in adamw sgd; do
    for np in 1 2; do
        tiny_recipe $opt$np.yaml exp-$opt$np "    steps: 5"
        # the demo recipe's model instead of the tiny one
        sed -n '/^model:/,/^augment:/p' "$S/recipes/demo-joint.yaml" | sed '$d' \
            | sed 's/^    roi: 44.*/    roi: 28/' > model.yaml
        sed -i -e '/^model:/,/^augment:/{/^augment:/!d}' -e '/^augment:/e cat model.yaml' \
            $opt$np.yaml
        [ $opt = sgd ] && sed -i 's/optimizer: {type: adamw.*/optimizer: {type: sgd, lr: 0.05, momentum: 0.9}/' $opt$np.yaml
        timeout 600 $MPIRUN_CMD -np $np "$W" $opt$np.yaml > log-$opt$np 2>&1 \
            || { cat log-$opt$np; fail "$opt np $np run failed"; }
    done
    [ $status -eq 0 ] || continue
    "$CMP" losses exp-${opt}1/train/metrics.jsonl exp-${opt}2/train/metrics.jsonl 1e-5 5 \
        || fail "$opt: per-step losses differ between np 1 and np 2"
    if [ $opt = sgd ]; then
        "$CMP" params exp-${opt}1/train/last/model.safetensors \
            exp-${opt}2/train/last/model.safetensors 1e-4 \
            || fail "$opt: final parameters differ between np 1 and np 2"
    fi
done
[ $status -eq 0 ] && echo "PASS: np 1 and np 2 train the same"
exit $status
