#!/bin/bash
# demo.sh: the quick-start demo, end to end on a fresh Debian 12 clone.
#
#   scripts/demo.sh
#
# 1. installs missing Debian packages and builds avsr in build/;
# 2. makes the embedded demo corpus with avsr-synth (espeak-ng voices and a
#    rendered mouth; 24 speakers, 600 clips) and packs it with avsr-pack
#    into data/demo/{train,valid,test,noise-babble}.h5 (48x48 lips);
# 3. runs recipes/demo.yaml through the job scheduler on this machine:
#    training (2 MPI ranks) -> checkpoint average -> one evaluation job per
#    sweep point (noise type x SNR x modality) -> report, and prints the
#    scheduler's status and the WER table;
# 4. transcribes one held-out test clip from its media file with the
#    averaged model alone.
# Everything lands in data/demo and exp/demo (both ignored by git); running
# it again continues where it stopped and reuses what is done. About 15-20
# minutes on 2 cores. Environment: BUILD_DIR (default build), JOBS (default
# nproc), AVSR_SKIP_DEPS=1 to skip the package check.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if [ "${AVSR_SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh
fi
[ -x configure ] || autoreconf -fi
mkdir -p "$build"
( cd "$build" && { [ -f config.status ] || "$root/configure"; } && make -j"$jobs" )
bin="$root/$build"

echo
echo "== demo corpus: data/demo"
mkdir -p data
if [ ! -f data/demo/train.csv ]; then
    "$bin/avsr-synth" -o data/demo --force
fi
for s in train valid test; do
    [ -f data/demo/$s.h5 ] || "$bin/launch/avsr-pack" data/demo/$s.csv -o data/demo/$s.h5 --roi 48
done
[ -f data/demo/noise-babble.h5 ] ||
    "$bin/launch/avsr-pack" data/demo/babble.csv --noise --babble 4 -o data/demo/noise-babble.h5

echo
echo "== train -> average -> evaluate -> report (recipes/demo.yaml, exp/demo)"
"$bin/avsr-sched" run recipes/demo.yaml --backend local --slots "$jobs"
"$bin/avsr-sched" status recipes/demo.yaml
echo
cat exp/demo/eval/results.md

echo
echo "== avsr-transcribe: one test clip, with the averaged model alone"
row=$(sed -n 2p data/demo/test.csv)
IFS=, read -r id video audio text speaker <<< "$row"
# the corpus keeps video and audio apart: put them in one file, as a camera would
ffmpeg -loglevel error -y -i "data/demo/$video" -i "data/demo/$audio" -c:v copy -c:a pcm_s16le \
    "exp/demo/$id.mkv"
"$bin/avsr-transcribe" --roi 48 --beam 4 --ctc-weight 0.3 exp/demo/avg/model.safetensors \
    "exp/demo/$id.mkv"
echo "reference: $text"
