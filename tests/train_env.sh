# train_env.sh: sourced by the trainer's tests (test_train_*.sh).
#   - mpirun as the MPI tests run it (tests/dist_mpirun.sh: MPIRUN_CMD)
#   - a tiny packed corpus made once per build tree by avsr-synth and
#     avsr-pack (6 speakers x 8 clips, 32x32 lips, a babble pack; train and
#     valid also with 72x72 lips) in
#     $top_builddir/tests/train-data (built under a lock: tests run in parallel)
#   - W (avsr-worker), CMP (tests/train_compare), and tiny_recipe NAME EXP
#     STAGE_EXTRA RUN_EXTRA, which writes a recipe of a 20k-parameter AV model
#     with BatchNorm, dropout, modality dropout and noise augmentation on
. "${srcdir:-.}/tests/dist_mpirun.sh"
B=${top_builddir:-.}
W="$B/avsr-worker"
CMP="$B/tests/train_compare"
DATA="$B/tests/train-data"
for p in "$W" "$CMP" "$B/avsr-synth" "$B/launch/avsr-pack"; do
    [ -x "$p" ] || { echo "$p not built"; exit 99; }
done

make_data() {
    [ -f "$DATA/ok" ] && return 0
    rm -rf "$DATA.tmp"
    "$B/avsr-synth" -q -o "$DATA.tmp" --speakers 6 --valid-speakers 1 --test-speakers 1 \
        --babble-speakers 2 --clips-per-speaker 8 || return 1
    for s in train valid test; do
        "$B/launch/avsr-pack" "$DATA.tmp/$s.csv" -o "$DATA.tmp/$s.h5" --roi 32 >/dev/null 2>&1 \
            || return 1
    done
    "$B/launch/avsr-pack" "$DATA.tmp/babble.csv" --noise --babble 2 -o "$DATA.tmp/babble.h5" \
        >/dev/null 2>&1 || return 1
    # 72x72 lips for the ASR2AVSR fusion module (it takes 65..96)
    for s in train valid; do
        "$B/launch/avsr-pack" "$DATA.tmp/$s.csv" -o "$DATA.tmp/$s-72.h5" --roi 72 >/dev/null 2>&1 \
            || return 1
    done
    touch "$DATA.tmp/ok"
    rm -rf "$DATA" && mv "$DATA.tmp" "$DATA"
}
exec 9>"$B/tests/train-data.lock"
flock 9
make_data || { echo "could not make the test corpus"; exit 99; }
flock -u 9
DATA=$(cd "$DATA" && pwd)

# tiny_recipe FILE EXP_DIR STAGE_EXTRA [RUN_EXTRA]: STAGE_EXTRA are lines
# added to the stage (e.g. "    steps: 5"), RUN_EXTRA to run:.
tiny_recipe() {
    cat > "$1" <<YAML
name: tiny
run:
  exp_dir: $2
  seed: 7
  ranks: 2
  threads: 1
  checkpoint: {every_steps: 2, keep_last: 0, keep_best: 0}
${4:-}
data:
  train: [$DATA/train.h5]
  valid: [$DATA/valid.h5]
  test: [$DATA/test.h5]
  noise:
    babble: {from: $DATA/babble.h5}
    white: {generate: white}
  tokenizer: {type: char}
  batching: {max_frames: 200, buckets: 4}
  video: {roi: 32, crop: 28}
model:
  video: {width: 4, depth: [1, 1, 1, 1], roi: 28}
  audio: {features: wave, width: 4, depth: [1, 1, 1, 1]}
  fusion: {type: concat_mlp, position: late, hidden: 32, modality_dropout: 0.25}
  encoder: {type: conformer, layers: 1, dim: 32, heads: 2, ffn: 64, conv_kernel: 7, dropout: 0.1}
  decoder: {layers: 1, dim: 32, heads: 2, ffn: 64}
  ctc_weight: 0.3
  label_smoothing: 0.1
augment:
  noise: {prob: 0.8, types: [babble, white], snr_db: {min: -5, max: 20}}
  video: {random_crop: true, hflip: 0.5, time_mask: {max_len_s: 0.4, stride_s: 1.0}}
  audio: {time_mask: {max_len_s: 0.4, stride_s: 1.0}}
stages:
  - name: train
    train: ["*"]
    inputs: {audio: noisy, video: lips}
    losses: {hybrid: 1.0}
    optimizer: {type: adamw, lr: 3.0e-3, betas: [0.9, 0.98], weight_decay: 0.03}
    schedule: {type: warmup_cosine, warmup_steps: 2}
    clip_grad_norm: 5.0
$3
average: {last: 2}
eval:
  valid_metric: valid_wer
YAML
}

# rank_pid JOB_PID RANK: the pid of rank RANK under mpirun JOB_PID
rank_pid() {
    for p in $(pgrep -f "avsr-worker" 2>/dev/null); do
        if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            ppid=$p
            while [ "$ppid" -gt 1 ]; do
                [ "$ppid" = "$1" ] && { echo "$p"; return 0; }
                ppid=$(awk '{print $4}' "/proc/$ppid/stat" 2>/dev/null || echo 1)
            done
        fi
    done
    return 1
}

# step_records FILE: number of "step" records in a metrics.jsonl
step_records() {
    [ -f "$1" ] && grep -c '"kind":"step"' "$1" || echo 0
}
