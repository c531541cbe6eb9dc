#!/bin/sh
# train_throughput.sh: training throughput of avsr-worker against PyTorch
# (bench/torch_ddp.py) for the demo and base models, in two layouts:
#   np1  mpirun -np 1, OMP_NUM_THREADS=2      vs  torch, 1 process, 2 threads
#   np2  mpirun -np 2, OMP_NUM_THREADS=1 each vs  torch DDP (gloo), 2 processes
# Run from a build directory after `make`:
#
#   cd build && sh ../bench/train_throughput.sh [-r ROUNDS] [-m "demo base"] [-l "np1 np2"]
#
# What it does:
#   1. The corpus, once, in bench/train-tp/data: the default avsr-synth
#      corpus (18 training speakers x 20 clips), its train split packed at
#      48x48 (demo) and 96x96 (base), and the babble noise pack, as
#      tests/test_train_learn.sh makes them.
#   2. Recipes bench/train-tp/{demo,base}.yaml: the demo model, data
#      settings and augmentation of recipes/demo-joint.yaml (dropout 0.1, modality
#      dropout 0.25, noise/crop/flip/time masks); "base" = the "base" of
#      bench/torch_models.py (Conformer 12x256, 4 heads, ffn 1024, kernel 31;
#      ResNet-18 width 64 at 88x88 from the 96x96 pack; ResNet1D width 64;
#      fusion hidden 1024; 6-layer decoder; ctc_weight 0.1) with the same
#      augmentation. `steps:` fixed, no validation, checkpoints only at the
#      stage end (the recipe cannot turn that one off), batching buckets 5
#      (the corpus has only 360 training clips: with the usual 50 buckets
#      most batches would be a bucket's remainder of a few clips). Demo:
#      max_frames 1600 (as recipes/demo-joint.yaml); base: max_frames 240, i.e. 4
#      clips of up to 60 frames, 2 per rank with -np 2 (a base
#      step at 1600 frames would take ~20 s and some 40 GB of activations).
#   3. ROUNDS rounds (default 2); in each, for every model and layout, one
#      avsr-worker run and one torch_ddp.py run, alternating which goes
#      first from round to round (the machine is shared: interleaving
#      spreads load changes over both sides). The PyTorch peer runs the
#      avsr run's median step as a fixed batch (B clips of T frames,
#      random data, no padding).
#   4. Prints per run one line (also in bench/train-tp/results.txt) and at
#      the end the Markdown table of bench/train_report.py: medians over
#      rounds, the ratio avsr/torch as the median of the per-round ratios.
#
# Steps (after warm-up, medians over steps): avsr demo DEMO_STEPS (default
# 12, the first 2 are warm-up), base BASE_STEPS (default 4, first 1
# warm-up); torch demo 2 + TORCH_DEMO_STEPS (default 5), base
# 1 + TORCH_BASE_STEPS (default 2).
# Environment: MPIRUN (default mpirun), PY (default /usr/bin/python3).
# OMP_WAIT_POLICY, when set, goes to both sides (passive is much faster
# for both on a loaded machine, where spinning threads take the cores
# from working ones). OPENBLAS_CORETYPE: Debian's OpenBLAS 0.3.21 does not
# recognise recent Intel CPUs and falls back to its SSE3 "Prescott"
# kernels, which makes PyTorch's matrix products several times slower;
# unless it is set, the script sets SkylakeX on a CPU with AVX-512 and
# Haswell on one with AVX2 (oneDNN, which avsr uses, detects the CPU
# itself).
set -u
here=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-/usr/bin/python3}
MPIRUN=${MPIRUN:-mpirun}
rounds=2
models="demo base"
layouts="np1 np2"
while getopts r:m:l: o; do
    case $o in
    r) rounds=$OPTARG ;;
    m) models=$OPTARG ;;
    l) layouts=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-m \"demo base\"] [-l \"np1 np2\"]" >&2; exit 2 ;;
    esac
done
DEMO_STEPS=${DEMO_STEPS:-12}
BASE_STEPS=${BASE_STEPS:-4}
TORCH_DEMO_STEPS=${TORCH_DEMO_STEPS:-5}
TORCH_BASE_STEPS=${TORCH_BASE_STEPS:-2}

for p in ./avsr-worker ./avsr-synth ./launch/avsr-pack; do
    if [ ! -x "$p" ]; then
        echo "train_throughput.sh: $p not found: run this from a build directory after 'make'" >&2
        exit 2
    fi
done
mpi_flags="--bind-to none"
[ "$(id -u)" = 0 ] && mpi_flags="$mpi_flags --allow-run-as-root"
[ -n "${OMP_WAIT_POLICY:-}" ] && mpi_flags="$mpi_flags -x OMP_WAIT_POLICY"
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
        OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
        OPENBLAS_CORETYPE=Haswell
    fi
    [ -n "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE
fi

work=bench/train-tp
data=$work/data
mkdir -p "$work" || exit 1

# 1. the corpus
if [ ! -f "$data/ok" ]; then
    echo "making the corpus in $data (about a minute)" >&2
    rm -rf "$data.tmp"
    ./avsr-synth -q -o "$data.tmp" || exit 1
    for r in 48 96; do
        ./launch/avsr-pack "$data.tmp/train.csv" -o "$data.tmp/train-$r.h5" --roi $r \
            > /dev/null 2>&1 || { echo "avsr-pack --roi $r failed" >&2; exit 1; }
    done
    ./launch/avsr-pack "$data.tmp/babble.csv" --noise --babble 4 -o "$data.tmp/noise-babble.h5" \
        > /dev/null 2>&1 || { echo "avsr-pack babble failed" >&2; exit 1; }
    rm -rf "$data.tmp/media"
    touch "$data.tmp/ok"
    rm -rf "$data" && mv "$data.tmp" "$data"
fi

# 2. the recipes: write_recipe NAME PACK_ROI CROP MAX_FRAMES STEPS MODEL_YAML
write_recipe() {
    cat > "$work/$1.yaml" <<YAML
# written by bench/train_throughput.sh
name: bench-$1
run:
  exp_dir: $work/exp-$1
  seed: 1234
  threads: auto
  checkpoint: {every_steps: 0, keep_last: 1, keep_best: 0}
  log_every_steps: 1
data:
  train: [$data/train-$2.h5]
  noise:
    babble: {from: $data/noise-babble.h5}
    white: {generate: white}
  tokenizer: {type: char}
  batching: {max_frames: $4, buckets: 5}
  video: {roi: $2, crop: $3, mean: 0.421, std: 0.165}
  audio: {normalize: utterance}
model:
$6
augment:
  noise: {prob: 0.8, types: [babble, white], snr_db: {min: -5, max: 20}}
  video: {random_crop: true, hflip: 0.5, time_mask: {max_len_s: 0.4, stride_s: 1.0}}
  audio: {time_mask: {max_len_s: 0.4, stride_s: 1.0}}
stages:
  - name: train
    train: ["*"]
    inputs: {audio: noisy, video: lips}
    losses: {hybrid: 1.0}
    optimizer: {type: adamw, lr: 1.0e-3, betas: [0.9, 0.98], weight_decay: 0.03}
    schedule: {type: warmup_cosine, warmup_steps: 2}
    clip_grad_norm: 5.0
    steps: $5
eval:
  valid_metric: none
YAML
}
write_recipe demo 48 44 1600 "$DEMO_STEPS" "\
  video: {width: 16, depth: [1, 1, 1, 1], roi: 44}
  audio: {features: wave, width: 16, depth: [1, 1, 1, 1]}
  fusion: {type: concat_mlp, position: late, hidden: 256, modality_dropout: 0.25, audio_share: 0.5}
  encoder: {type: conformer, layers: 4, dim: 144, heads: 4, ffn: 576, conv_kernel: 15, dropout: 0.1}
  decoder: {layers: 1, dim: 144, heads: 4, ffn: 576}
  ctc_weight: 0.3
  label_smoothing: 0.1"
write_recipe base 96 88 240 "$BASE_STEPS" "\
  video: {width: 64, depth: [2, 2, 2, 2], roi: 88}
  audio: {features: wave, width: 64, depth: [2, 2, 2, 2]}
  fusion: {type: concat_mlp, position: late, hidden: 1024, modality_dropout: 0.25, audio_share: 0.5}
  encoder: {type: conformer, layers: 12, dim: 256, heads: 4, ffn: 1024, conv_kernel: 31, dropout: 0.1}
  decoder: {layers: 6, dim: 256, heads: 4, ffn: 1024}
  ctc_weight: 0.1
  label_smoothing: 0.1"

results=$work/results.txt
: > "$results"
rm -f "$work"/batch-*
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null; }

# run_avsr ROUND MODEL LAYOUT: one avsr-worker run, summary line to $results
run_avsr() {
    case $3 in
    np1) np=1 th=2 ;;
    *) np=2 th=1 ;;
    esac
    warm=2
    [ "$2" = base ] && warm=1
    exp=$work/exp-$2
    rm -rf "$exp"
    echo "# round $1: $MPIRUN $mpi_flags -np $np -x OMP_NUM_THREADS=$th ./avsr-worker $work/$2.yaml" \
         "(load $(load))" >&2
    if ! $MPIRUN $mpi_flags -np $np -x OMP_NUM_THREADS=$th ./avsr-worker "$work/$2.yaml" \
            > "$work/log-avsr-$2-$3" 2>&1; then
        tail -n 20 "$work/log-avsr-$2-$3" >&2
        echo "train_throughput.sh: avsr-worker failed" >&2
        exit 1
    fi
    s=$($PY "$here/train_report.py" metrics "$exp/train/metrics.jsonl" $warm) || exit 1
    echo "avsr round=$1 model=$2 layout=$3 np=$np threads=$th $s" | tee -a "$results"
    echo "$s" | sed 's/.* B=\([0-9]*\) T=\([0-9]*\) .*/\1 \2/' > "$work/batch-$2-$3"
}

# run_torch ROUND MODEL LAYOUT: torch_ddp.py on the median batch of the
# latest avsr run of MODEL and LAYOUT (the same in every round: the epoch
# plan is a function of the seed)
run_torch() {
    read -r B T < "$work/batch-$2-$3" || exit 1
    if [ "$2" = demo ]; then
        warm=2 steps=$TORCH_DEMO_STEPS
    else
        warm=1 steps=$TORCH_BASE_STEPS
    fi
    case $3 in
    np1) args="--layout single --threads 2" ;;
    *) args="--layout ddp --procs 2 --threads 1" ;;
    esac
    cmd="$PY $here/torch_ddp.py --model $2 $args --B $B --T $T --warmup $warm --steps $steps"
    echo "# round $1: $cmd (load $(load))" >&2
    s=$($cmd 2> "$work/log-torch-$2-$3") || {
        tail -n 20 "$work/log-torch-$2-$3" >&2
        echo "train_throughput.sh: torch_ddp.py failed" >&2
        exit 1
    }
    echo "$s" | sed "s/^torch /torch round=$1 layout=$3 /" | tee -a "$results"
}

echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), nproc $(nproc), load $(load)" >&2
echo "# OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} rounds $rounds" >&2
r=1
while [ $r -le "$rounds" ]; do
    for m in $models; do
        for l in $layouts; do
            # avsr first in odd rounds, torch first in even ones (torch
            # needs the batch of an avsr run, so round 1 starts with avsr)
            if [ $((r % 2)) -eq 1 ]; then
                run_avsr $r $m $l
                run_torch $r $m $l
            else
                run_torch $r $m $l
                run_avsr $r $m $l
            fi
        done
    done
    r=$((r + 1))
done
echo
$PY "$here/train_report.py" table "$results"
