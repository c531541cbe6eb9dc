#!/bin/bash
# demo.sh: the quick-start demo, end to end on a fresh Debian 12 clone.
#
#   scripts/demo.sh            the ASR2AVSR demo (recipes/demo.yaml, exp/demo)
#   scripts/demo.sh --joint    the joint-model demo (recipes/demo-joint.yaml,
#                              exp/demo-joint)
#
# 1. installs missing Debian packages and builds avsr in build/ (skipped
#    when done);
# 2. makes the embedded demo corpus with avsr-synth (espeak-ng voices and a
#    rendered mouth; 48 speakers: 42 train, 3 valid and 3 unseen test
#    speakers x 40 clips, and 4 more speakers whose clips become the babble
#    noise) and packs it with avsr-pack into
#    data/demo/{train,valid,test,noise-babble}.h5 (48x48 lips);
# 3. runs the recipe through the job scheduler on this machine: the
#    training stages (2 MPI ranks each) -> checkpoint average -> one
#    evaluation job per sweep point (noise type x SNR x modality) ->
#    report;
# 4. prints the WER table, the plot's path and where everything is, and
#    transcribes one test clip from its media file with the averaged model
#    alone.
# Everything lands in data/demo and exp/demo* (ignored by git); running it
# again continues where it stopped and reuses what is done. The default
# demo takes about 15 minutes on 2 cores (docs/demo.md). Environment:
# BUILD_DIR (default build), JOBS (default nproc), AVSR_SKIP_DEPS=1 to skip
# the package check.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
recipe=recipes/demo.yaml
exp=exp/demo
case "${1:-}" in
    "") ;;
    --joint) recipe=recipes/demo-joint.yaml; exp=exp/demo-joint ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/demo.sh [--joint]" >&2; exit 2 ;;
esac

if [ "${AVSR_SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh
fi
[ -x configure ] || autoreconf -fi
mkdir -p "$build"
( cd "$build" && { [ -f config.status ] || "$root/configure"; } && make -j"$jobs" )
bin="$root/$build"
start=$(date +%s)

echo
echo "== demo corpus: data/demo"
# the corpus this demo was tuned on; a corpus made with other settings (an
# older checkout) is replaced
synth_args="--speakers 48 --valid-speakers 3 --test-speakers 3 --clips-per-speaker 40"
stamp="avsr-synth $synth_args; avsr-pack --roi 48; babble 4"
mkdir -p data
if [ ! -f data/demo/train.csv ] || [ "$(cat data/demo/CORPUS 2>/dev/null)" != "$stamp" ]; then
    # shellcheck disable=SC2086
    "$bin/avsr-synth" -o data/demo --force $synth_args
    rm -f data/demo/*.h5
fi
for s in train valid test; do
    [ -f data/demo/$s.h5 ] || "$bin/launch/avsr-pack" data/demo/$s.csv -o data/demo/$s.h5 --roi 48
done
[ -f data/demo/noise-babble.h5 ] ||
    "$bin/launch/avsr-pack" data/demo/babble.csv --noise --babble 4 -o data/demo/noise-babble.h5
echo "$stamp" > data/demo/CORPUS

echo
echo "== train -> average -> evaluate -> report ($recipe, $exp)"
"$bin/avsr-sched" run "$recipe" --backend local --slots "$jobs"
"$bin/avsr-sched" status "$recipe"

echo
echo "== avsr-transcribe: one test clip, with the averaged model alone"
row=$(sed -n 2p data/demo/test.csv)
IFS=, read -r id video audio text speaker <<< "$row"
# the corpus keeps video and audio apart: put them in one file, as a camera would
ffmpeg -loglevel error -y -i "data/demo/$video" -i "data/demo/$audio" -c:v copy -c:a pcm_s16le \
    "$exp/$id.mkv"
"$bin/avsr-transcribe" "$exp/avg/model.safetensors" "$exp/$id.mkv"
echo "reference: $text"

echo
echo "== results (test speakers, unseen in training; WER in %)"
sed -n '/^## WER/,/^## CER/p' "$exp/eval/results.md" | sed '$d'
cat <<EOF
Done in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s after the build.
  WER-vs-SNR plot:     $exp/eval/wer_vs_snr.png (and .svg)
  tables:              $exp/eval/results.md, results.csv, results.json
  hypotheses:          $exp/eval/hyps/
  averaged model:      $exp/avg/model.safetensors
  training stages:     $exp/<stage>/ (checkpoints, metrics.jsonl)
  job logs and state:  $exp/logs/, $exp/sched.db (avsr-sched status $recipe)
EOF
