#!/bin/sh
# test_demo.sh: the quick-start demo, reduced, end to end through the job
# scheduler: recipes/demo.yaml itself, with only its data paths (the tiny
# corpus of tests/train_env.sh: 32x32 lips, cropped to 28), its lengths
# (every stage 3 updates instead of epochs, warmup 1), its batches and its
# checkpoint interval changed. `avsr-sched run` must take it through the
# four ASR2AVSR stages, the average, all 23 sweep points and the report;
# asserted: every job done in one attempt, every artifact of the report
# exists, and the WER table parses (header, 6 SNR rows, a number or "-"
# in every cell, the video column equal in every row); avsr-transcribe
# decodes a video-only and an audio-only file with the averaged model.
# Plain protocol: 0 pass, 77 skip, else fail.
. "${srcdir:-.}/tests/train_env.sh"
S=$(cd "${srcdir:-.}" && pwd)
SCHED="$B/avsr-sched"
case $SCHED in /*) ;; *) SCHED="$(pwd)/$SCHED" ;; esac
for p in "$SCHED" "$B/avsr-eval" "$B/avsr-avg"; do
    [ -x "$p" ] || { echo "$p not built"; exit 99; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-demo.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
fail() { echo "FAIL: $*"; for f in run.err exp/logs/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 15 "$f"; }; done; exit 1; }

sed -e "s#data/demo/train.h5#$DATA/train.h5#" -e "s#data/demo/valid.h5#$DATA/valid.h5#" \
    -e "s#data/demo/test.h5#$DATA/test.h5#" -e "s#data/demo/noise-babble.h5#$DATA/babble.h5#" \
    -e "s#exp_dir: .*#exp_dir: exp#" -e "s#video: {roi: 48, crop: 44}#video: {roi: 32, crop: 28}#" \
    -e "s#^    epochs: [0-9]*#    steps: 3#" -e "s#warmup_steps: [0-9]*#warmup_steps: 1#" \
    -e "s#every_steps: [0-9]*#every_steps: 1#" \
    -e "s#max_frames: [0-9]*#max_frames: 300#" -e "s#threads: auto#threads: 1#" \
    "$S/recipes/demo.yaml" > demo.yaml
grep -q "steps: 3" demo.yaml && ! grep -q "epochs:" demo.yaml && ! grep -q "data/demo" demo.yaml ||
    fail "the reduction of recipes/demo.yaml did not apply: $(grep -n 'epochs\|data/demo' demo.yaml)"

OMP_NUM_THREADS=1 timeout 900 "$SCHED" run demo.yaml --slots 2 2>run.err || fail "avsr-sched run"
echo "ok: avsr-sched run (reduced recipes/demo.yaml): exit 0"
"$SCHED" status demo.yaml >status.out 2>&1 || fail "status: $(cat status.out)"
sed 's/^/# /' status.out
grep -q "^29 jobs: 29 done" status.out || fail "not every job is done"
for j in train.asr_pretrain train.pretrain_fusion train.finetune_fusion train.full_finetune \
    average eval.audio.none.clean eval.audio.babble.-10 eval.video.none.clean \
    eval.audiovisual.white.5 report; do
    grep -q "^$j  *done  *1 " status.out || fail "$j: not done in one attempt"
done
echo "ok: 4 stages, average, 23 sweep points and the report done in one attempt each"

for f in avg/model.safetensors eval/results.json eval/results.csv eval/results.md \
    eval/wer_vs_snr.png eval/wer_vs_snr.svg; do
    [ -s "exp/$f" ] || fail "exp/$f is missing or empty"
done
[ "$(ls exp/eval/points/*.json | wc -l)" -eq 23 ] || fail "expected 23 point files"
ls exp/eval/hyps/* > /dev/null 2>&1 || fail "no per-utterance hypotheses in exp/eval/hyps"
head -c 8 exp/eval/wer_vs_snr.png | od -An -c | grep -q "P   N   G" || fail "wer_vs_snr.png is not a PNG"
echo "ok: averaged model, results.{json,csv,md}, 23 points, hypotheses, the plot (PNG, SVG)"

# the WER table (the first; CER follows): | SNR (dB) | audio, babble | audio, white | video | audiovisual, babble | audiovisual, white |
awk -F'|' '
    fin { next }
    /^\| SNR \(dB\)/ { hdr = $0; cols = NF; next }
    hdr && /^\|[-| :]+\|$/ { sep = 1; next }
    hdr && sep && !/^\|/ { fin = 1; next }
    hdr && sep && /^\|/ {
        if (NF != cols) { print "row with " NF " fields: " $0; bad = 1 }
        for (i = 3; i < NF; i++) {
            c = $i; gsub(/ /, "", c)
            if (c !~ /^([0-9]+(\.[0-9]+)?|-)$/) { print "cell \"" c "\": " $0; bad = 1 }
        }
        v = $5; gsub(/ /, "", v)
        if (rows && v != video) { print "video column not constant: " $0; bad = 1 }
        video = v; rows++
    }
    END {
        if (hdr !~ /audio, babble \| audio, white \| video \| audiovisual, babble \| audiovisual, white/) {
            print "header: " hdr; bad = 1
        }
        if (rows != 6) { print rows " SNR rows, expected 6"; bad = 1 }
        exit bad
    }' exp/eval/results.md > table.err || fail "the WER table does not parse: $(cat table.err)"
echo "ok: the WER table parses (6 SNR rows x 5 columns)"

# avsr-transcribe with the averaged ASR2AVSR model alone: the corpus keeps
# video and audio in separate files, so each is a one-modality input and the
# model gets the other as zeros
row=$(sed -n 2p "$DATA/test.csv")
video=$(echo "$row" | cut -d, -f2)
audio=$(echo "$row" | cut -d, -f3)
for f in "$video" "$audio"; do
    "$B/avsr-transcribe" --json exp/avg/model.safetensors "$DATA/$f" > tr.out 2> tr.err ||
        fail "avsr-transcribe $f: $(cat tr.err)"
    case $f in *.wav) m=audio ;; *) m=video ;; esac
    grep -q "\"modality\":\"$m\"" tr.out && grep -q '"transcript":' tr.out ||
        fail "avsr-transcribe $f: $(cat tr.out)"
done
echo "ok: avsr-transcribe decodes a video-only and an audio-only file with the model file alone"
exit 0
