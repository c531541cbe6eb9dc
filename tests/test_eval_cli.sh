#!/bin/sh
# test_eval_cli: avsr-eval on a tiny random model file and a small packed
# test set (random clips, a babble corpus, generated white noise).
#  - the whole sweep (3 modalities x {babble, white} x {clean, 5, -5} = 11
#    points) under mpirun -np 2, twice: every file of the eval directory is
#    byte-identical (points with per-utterance texts and scores, results,
#    hypotheses, plot data and images);
#  - -np 1 and -np 3 give the same bytes (the result does not depend on the
#    number of ranks);
#  - --point writes one point, equal to the sweep's; `report` merges the
#    points again and prints the table;
#  - search overrides are recorded in the points;
#  - bad input: exact messages and exit status.
# Exit 0 = pass, 77 = skipped (no mpirun), else fail.
set -u
. "${srcdir:-.}/tests/dist_mpirun.sh"
B=${top_builddir:-.}
EV="$B/avsr-eval"
FX="$B/tests/eval_fixture"
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1
cd "$T" || exit 1

"$FX" av-pack test.h5 6 3 32 || fail "test pack"
"$FX" noise-pack babble.h5 3 4 || fail "babble pack"
mkdir -p exp/avg
"$FX" model exp/avg/model.safetensors 3 || fail "model file"
cat > r.yaml <<'EOF'
name: evaltest
run:
  exp_dir: exp
  seed: 5
  threads: 1
data:
  train: [test.h5]
  test: [test.h5]
  noise:
    babble: {from: babble.h5}
    white: {generate: white}
  tokenizer: {type: char}
  batching: {max_frames: 100, buckets: 4}
  video: {roi: 32, crop: 24}
model:
  video: {width: 2, depth: [1, 1, 1, 1], roi: 24}
  audio: {features: wave, width: 2, depth: [1, 1, 1, 1]}
  fusion: {type: concat_mlp, position: late, hidden: 32}
  encoder: {type: conformer, layers: 1, dim: 32, heads: 2, ffn: 64, conv_kernel: 3}
  decoder: {layers: 1, dim: 32, heads: 2, ffn: 64}
  ctc_weight: 0.3
  label_smoothing: 0.1
stages:
  - name: train
    optimizer: {type: adamw, lr: 1.0e-3}
    schedule: {type: warmup_cosine, warmup_steps: 2}
    steps: 3
eval:
  valid_metric: none
  search: {type: attention_beam, beam: 4, ctc_weight: 0.3}
  sweep:
    noise: [babble, white]
    snr_db: [clean, 5, -5]
    modalities: [audio, video, audiovisual]
EOF

# the sweep twice on 2 ranks
$MPIRUN_CMD -np 2 "$EV" r.yaml > out1 2> err1 || fail "sweep on 2 ranks: $(cat err1)"
[ "$(ls exp/eval/points | wc -l)" -eq 11 ] || fail "expected 11 points: $(ls exp/eval/points)"
for f in results.json results.csv results.md wer_vs_snr.png wer_vs_snr.svg wer_vs_snr.dat \
    hyps/audiovisual-white--5.tsv; do
    [ -s "exp/eval/$f" ] || fail "exp/eval/$f missing"
done
grep -q '^| SNR (dB) | audio, babble | audio, white | video | audiovisual, babble | audiovisual, white |$' out1 \
    || fail "printed table: $(cat out1)"
[ "$(grep -c '^| \(clean\|5\|-5\) |' out1)" -eq 3 ] || fail "table rows: $(cat out1)"
grep -q '^avsr-eval: point audio:babble:-5 .* -> exp/eval/points/audio-babble--5.json$' err1 \
    || fail "progress line: $(cat err1)"
grep -q '"score": -' exp/eval/points/audio-white-5.json || fail "no per-utterance scores"
mv exp/eval run1
$MPIRUN_CMD -np 2 "$EV" -q r.yaml > out2 2> err2 || fail "second sweep: $(cat err2)"
diff -r run1 exp/eval > /dev/null || fail "two runs on 2 ranks differ: $(diff -rq run1 exp/eval)"
cmp -s out1 out2 || fail "printed tables differ"
[ -s err2 ] && fail "-q printed: $(cat err2)"
echo "ok: the sweep twice on 2 ranks: byte-identical eval directories"

for np in 1 3; do
    rm -rf exp/eval
    $MPIRUN_CMD -np $np "$EV" -q r.yaml > /dev/null 2> err || fail "$np rank(s): $(cat err)"
    diff -r run1 exp/eval > /dev/null || fail "$np rank(s) differ from 2: $(diff -rq run1 exp/eval)"
done
echo "ok: 1 and 3 ranks give the same bytes as 2"

# one point, then the report
rm -rf exp/eval
"$EV" -q r.yaml --point audio:babble:5 > out 2> err || fail "--point: $(cat err)"
[ "$(ls exp/eval/points)" = "audio-babble-5.json" ] || fail "--point wrote: $(ls exp/eval/points)"
[ -e exp/eval/results.json ] && fail "--point made a report"
cmp -s exp/eval/points/audio-babble-5.json run1/points/audio-babble-5.json \
    || fail "--point differs from the sweep's point"
cp run1/points/*.json exp/eval/points/
"$EV" report r.yaml > out 2> err || fail "report: $(cat err)"
cmp -s out out1 || fail "report table differs from the sweep's"
diff -r run1 exp/eval > /dev/null || fail "report differs: $(diff -rq run1 exp/eval)"
echo "ok: --point and report"

# search overrides
rm -rf exp/eval
"$EV" -q r.yaml --point video:none:clean --search ctc_beam --beam 3 2> err \
    || fail "--search ctc_beam: $(cat err)"
grep -q '"type": "ctc_beam"' exp/eval/points/video-none-clean.json \
    && grep -q '"beam": 3' exp/eval/points/video-none-clean.json \
    || fail "overrides not recorded: $(head -30 exp/eval/points/video-none-clean.json)"
echo "ok: search overrides"

# bad input
expect() { # expect STATUS MESSAGE CMD...
    st=$1
    msg=$2
    shift 2
    "$@" > bo 2> be
    got=$?
    [ "$got" -eq "$st" ] || fail "$*: exit $got, expected $st ($(cat be))"
    grep -qxF "$msg" be || fail "$*: message '$(cat be)', expected '$msg'"
}
expect 1 "avsr-eval: nope.safetensors: cannot open: No such file or directory" \
    "$EV" r.yaml --model nope.safetensors --point audio:none:clean
"$FX" nometa nometa.safetensors || fail "nometa fixture"
expect 1 "avsr-eval: nometa.safetensors: not a model file: metadata \"avsr.model\" is missing (model files written by avsr-worker checkpoints and avsr-avg carry the model configuration and the tokenizer)" \
    "$EV" r.yaml --model nometa.safetensors --point audio:none:clean
expect 2 "avsr-eval: --point: point 'audio:babble': expected MODALITY:NOISE:SNR (e.g. audio:babble:5 or video:none:clean)" \
    "$EV" r.yaml --point audio:babble
expect 2 "avsr-eval: --point: point 'video:white:5': a video-only point does not use the audio, so it takes no noise: use video:none:clean" \
    "$EV" r.yaml --point video:white:5
expect 1 "avsr-eval: r.yaml: point 'audio:file:5': file noise needs a noise corpus (data.noise.<name>: {from: FILE.h5})" \
    "$EV" r.yaml --point audio:file:5
expect 2 "avsr-eval: --beam: got '0', expected an integer in [1, 1000]" \
    "$EV" r.yaml --beam 0
expect 1 "avsr-eval: r.yaml: eval.search with the command line's overrides: search: beam 100 is out of range [1, vocabulary size 41]" \
    "$EV" r.yaml --beam 100 --point audio:none:clean
expect 1 "avsr-eval: missing.yaml: cannot open: No such file or directory" \
    "$EV" missing.yaml --point audio:none:clean
rm -rf exp/eval
expect 1 "avsr-eval: exp/eval/points: cannot read: No such file or directory (evaluate the points first: avsr-eval RECIPE.yaml)" \
    "$EV" report r.yaml
expect 2 "avsr-eval: report takes only the recipe (and -q)" "$EV" report r.yaml --beam 3
echo "ok: bad input"
echo "PASS: avsr-eval"
exit 0
