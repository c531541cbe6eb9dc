#!/bin/sh
# test_eval_e2e.sh: the tools around training on real trainer output.
# avsr-worker trains the tiny recipe of tests/train_env.sh for 4 steps on 2
# ranks (checkpoints at steps 2 and 4), avsr-avg averages them into
# <exp>/avg/model.safetensors, and then, with that file alone:
#  - avsr-eval evaluates two sweep points on 2 ranks and the report merges
#    them (the default model path is the average);
#  - avsr-transcribe transcribes a test clip of the corpus (video file and
#    WAV file of avsr-synth) and prints one line per file;
#  - the averaged file's model configuration and vocabulary are the
#    checkpoints'.
. "${srcdir:-.}/tests/train_env.sh"
EV="$B/avsr-eval"
FX="$B/tests/eval_fixture"
TR="$B/avsr-transcribe"
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-eval-e2e.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
fail() { echo "FAIL: $*"; exit 1; }

tiny_recipe r.yaml exp "    steps: 4"
timeout 600 $MPIRUN_CMD -np 2 "$W" r.yaml > train.log 2>&1 || { cat train.log; fail "training"; }
mkdir -p exp/avg
"$B/avsr-avg" -q --last 2 exp/train/ckpt -o exp/avg/model.safetensors 2> avg.log \
    || fail "avsr-avg: $(cat avg.log)"
for k in avsr.model avsr.tokenizer; do
    "$FX" meta exp/avg/model.safetensors "$k" > avg.$k 2> err || fail "meta $k: $(cat err)"
    "$FX" meta exp/train/ckpt/step-4/model.safetensors "$k" > ck.$k 2> err \
        || fail "meta $k: $(cat err)"
    [ -s avg.$k ] && cmp -s avg.$k ck.$k || fail "$k of the average differs from the checkpoint's"
done
echo "ok: trained 4 steps, averaged the last 2 checkpoints"

timeout 600 $MPIRUN_CMD -np 2 "$EV" r.yaml --point audiovisual:none:clean \
    --point audio:babble:0 > eval.log 2>&1 || { cat eval.log; fail "avsr-eval points"; }
"$EV" report r.yaml > table 2> report.log || fail "report: $(cat report.log)"
grep -q '^| SNR (dB) | audio, babble | audiovisual |$' table || fail "table: $(cat table)"
grep -q '"model": "exp/avg/model.safetensors"' exp/eval/results.json \
    || fail "results.json does not name the average"
n=$(tail -n +2 "$DATA/test.csv" | wc -l)
[ "$(tail -n +2 exp/eval/hyps/audiovisual-none-clean.tsv | wc -l)" -eq "$n" ] \
    || fail "hypotheses: expected $n utterances"
echo "ok: avsr-eval with the averaged model"

row=$(sed -n 2p "$DATA/test.csv")
v="$DATA/$(echo "$row" | cut -d, -f2)"
a="$DATA/$(echo "$row" | cut -d, -f3)"
"$TR" --roi 32 --beam 4 exp/avg/model.safetensors "$v" "$a" > tr.out 2> tr.err \
    || fail "avsr-transcribe: $(cat tr.err)"
[ "$(wc -l < tr.out)" -eq 2 ] && grep -q "^$v	" tr.out && grep -q "^$a	" tr.out \
    || fail "avsr-transcribe output: $(cat tr.out)"
echo "ok: avsr-transcribe with the averaged model"
# the model file carries the preprocessing it was trained with (32x32 lips):
# without --roi, avsr-transcribe uses it and gives the same output
head -c 4096 exp/avg/model.safetensors | grep -q '"preprocess":"{\\"video_roi\\": 32,' \
    || fail "the averaged model has no preprocess metadata with video_roi 32"
"$TR" --beam 4 exp/avg/model.safetensors "$v" "$a" > tr2.out 2> tr.err \
    || fail "avsr-transcribe without --roi: $(cat tr.err)"
cmp -s tr.out tr2.out || fail "without --roi: $(cat tr2.out) vs $(cat tr.out)"
echo "ok: avsr-transcribe takes the preprocessing from the model file"
echo "PASS: train -> average -> eval -> transcribe"
exit 0
