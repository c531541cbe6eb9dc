#!/bin/sh
# test_train_stages.sh: a multi-stage recipe end to end (-np 2): the four
# ASR2AVSR stages of recipes/asr2avsr-demo.yaml (ASR pretraining on clean
# audio; fusion-module pretraining with mel and encoder L1 losses against a
# frozen teacher; + decoder loss on the teacher's greedy tokens; full
# finetuning) at 2 steps each on the tiny corpus. Checks: every stage
# finishes, initialises from the previous stage's best checkpoint and gets
# the teacher of stage 0; the loss terms of each stage are the recipe's;
# frozen parameters do not move; a re-run skips finished stages; --stage
# of a finished stage is a no-op; an unknown --stage is an error.
. "${srcdir:-.}/tests/train_env.sh"
S=$(cd "${srcdir:-.}" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-stages.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
status=0
fail() { echo "FAIL: $*"; status=1; }

sed -e "s#data/demo/train.h5#$DATA/train-72.h5#; s#data/demo/valid.h5#$DATA/valid-72.h5#" \
    -e "s#data/demo/test.h5#$DATA/test.h5#; s#data/demo/noise-babble.h5#$DATA/babble.h5#" \
    -e 's/    epochs: [0-9]*/    steps: 2/; s/warmup_steps: 300/warmup_steps: 1/' \
    -e 's/max_frames: [0-9]*/max_frames: 200/; s/roi: 96, crop: 88/roi: 72, crop: 68/' \
    -e 's/exp_dir: .*/exp_dir: exp/' \
    "$S/recipes/asr2avsr-demo.yaml" > a.yaml
grep -q 'steps: 2' a.yaml || fail "recipe rewrite"
timeout 900 $MPIRUN_CMD -np 2 "$W" a.yaml > log 2>&1 || { cat log; fail "training failed"; }
for st in asr_pretrain pretrain_fusion finetune_fusion full_finetune; do
    [ -f exp/$st/FINISHED ] || fail "stage $st did not finish"
done
for st in pretrain_fusion finetune_fusion full_finetune; do
    grep -q "stage '$st': teacher from exp/asr_pretrain/best/model.safetensors" log \
        || fail "$st: no teacher from asr_pretrain"
    grep -q "stage '$st': initialised from exp/.*/best/model.safetensors" log \
        || fail "$st: not initialised from the previous stage"
done
grep '"kind":"step"' exp/asr_pretrain/metrics.jsonl | grep -q '"ctc":' || fail "asr_pretrain: no ctc term"
grep '"kind":"step"' exp/pretrain_fusion/metrics.jsonl | grep '"mel_l1":' | grep -q '"enc_l1":' \
    || fail "pretrain_fusion: no mel/enc L1 terms"
grep '"kind":"step"' exp/finetune_fusion/metrics.jsonl | grep -q '"att":[0-9]' \
    || fail "finetune_fusion: no decoder term"
# the ASR is frozen in pretrain_fusion: its weights equal asr_pretrain's

"$CMP" bitwise exp/asr_pretrain/best/model.safetensors exp/pretrain_fusion/last/model.safetensors \
    > cmp.txt 2>&1 && fail "pretrain_fusion changed nothing"
grep -q "tensor 'fusion_module" cmp.txt || { cat cmp.txt; fail "pretrain_fusion: the first difference is not in the fusion module"; }
timeout 300 $MPIRUN_CMD -np 2 "$W" a.yaml > log2 2>&1 || { cat log2; fail "re-run failed"; }
[ "$(grep -c 'already finished' log2)" = 4 ] || { cat log2; fail "re-run did not skip the 4 stages"; }
timeout 300 $MPIRUN_CMD -np 1 "$W" a.yaml --stage finetune_fusion > log3 2>&1 || fail "--stage failed"
grep -q "stage 'finetune_fusion' already finished" log3 || fail "--stage of a finished stage"
"$W" a.yaml --stage nosuch > log4 2>&1
[ $? -ne 0 ] && grep -q -- "--stage nosuch: no such stage in a.yaml (stages: asr_pretrain, pretrain_fusion, finetune_fusion, full_finetune)" log4 \
    || { cat log4; fail "unknown --stage message"; }
[ $status -eq 0 ] && echo "PASS: four ASR2AVSR stages with a teacher"
exit $status
