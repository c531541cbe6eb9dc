#!/bin/sh
# test_transcribe: avsr-transcribe on clips made by avsr-synth (FFV1 video,
# WAV audio, and the two muxed into one file with ffmpeg), with a tiny
# random model file.
#  - video+audio files give exactly what the evaluation library gives for
#    the same clips packed by avsr-pack (same text and score), so the
#    decoding and preprocessing equal the loader's evaluation chain;
#  - video-only and audio-only files are transcribed (the other modality
#    left out), with --json timings and scores;
#  - bad input: exact messages and exit status.
# Exit 0 = pass, 77 = skipped (no ffmpeg program), else fail.
set -u
B=${top_builddir:-.}
TR="$B/avsr-transcribe"
FX="$B/tests/eval_fixture"
command -v ffmpeg >/dev/null 2>&1 || { echo "no ffmpeg program: skipped"; exit 77; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

export OMP_NUM_THREADS=1
"$FX" model "$T/m.safetensors" 3 || fail "model fixture"
"$B/avsr-synth" -o "$T/corpus" --speakers 3 --clips-per-speaker 2 --babble-speakers 1 \
    --babble-clips 1 -q || fail "avsr-synth"
"$B/launch/avsr-pack" "$T/corpus/test.csv" -o "$T/test.h5" --roi 32 --quiet --threads 1 \
    || fail "avsr-pack"
ids=$(tail -n +2 "$T/corpus/test.csv" | cut -d, -f1)
files=
for id in $ids; do
    v=$(grep "^$id," "$T/corpus/test.csv" | cut -d, -f2)
    a=$(grep "^$id," "$T/corpus/test.csv" | cut -d, -f3)
    ffmpeg -v error -y -i "$T/corpus/$v" -i "$T/corpus/$a" -c copy "$T/$id.mkv" \
        || fail "ffmpeg mux $id"
    files="$files $T/$id.mkv"
done
[ -n "$files" ] || fail "no test clips"

# the same clips through the evaluation library vs through avsr-transcribe
for search in attention_beam ctc_beam; do
    "$FX" recognize "$T/m.safetensors" $search "$T/test.h5" > "$T/lib.$search" \
        || fail "library recognition ($search)"
    # shellcheck disable=SC2086
    "$TR" --roi 32 --search $search "$T/m.safetensors" $files > "$T/out.$search" 2> "$T/err" \
        || fail "transcribe ($search): $(cat "$T/err")"
    # shellcheck disable=SC2086
    "$TR" --roi 32 --search $search --json "$T/m.safetensors" $files > "$T/json.$search" \
        2> "$T/err" || fail "transcribe --json ($search): $(cat "$T/err")"
    n=0
    for id in $ids; do
        want_text=$(grep "^$id	" "$T/lib.$search" | cut -f2)
        want_score=$(grep "^$id	" "$T/lib.$search" | cut -f3)
        got_text=$(grep "^$T/$id.mkv	" "$T/out.$search" | cut -f2)
        line=$(grep "\"file\":\"$T/$id.mkv\"" "$T/json.$search")
        got_score=$(echo "$line" | sed 's/.*"score":{"total":\([^,]*\),.*/\1/')
        [ "$got_text" = "$want_text" ] || fail "$search $id: text '$got_text', library '$want_text'"
        awk -v a="$got_score" -v b="$want_score" \
            'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; exit !(d <= 1e-6 * s + 1e-9) }' \
            || fail "$search $id: score $got_score, library $want_score"
        echo "$line" | grep -q '"modality":"audiovisual"' || fail "$search $id: modality: $line"
        n=$((n + 1))
    done
    [ "$(wc -l < "$T/out.$search")" -eq "$n" ] || fail "$search: one line per file expected"
    echo "ok: $search: $n clips, text and score equal the evaluation library's"
done
grep -q '	.' "$T/out.ctc_beam" || fail "ctc_beam gave only empty transcripts"

# one modality per file: the original video-only FFV1 file and the WAV file
id=$(echo $ids | cut -d' ' -f1)
v=$(grep "^$id," "$T/corpus/test.csv" | cut -d, -f2)
a=$(grep "^$id," "$T/corpus/test.csv" | cut -d, -f3)
"$TR" --roi 32 --json --search ctc_greedy "$T/m.safetensors" "$T/corpus/$v" "$T/corpus/$a" \
    > "$T/one" 2> "$T/err" || fail "video-only / audio-only: $(cat "$T/err")"
grep -q "\"file\":\"$T/corpus/$v\",\"transcript\":\"[^\"]*\",\"modality\":\"video\"" "$T/one" \
    || fail "video-only: $(cat "$T/one")"
grep -q "\"file\":\"$T/corpus/$a\",\"transcript\":\"[^\"]*\",\"modality\":\"audio\"" "$T/one" \
    || fail "audio-only: $(cat "$T/one")"
grep -q '"timing":{"decode_s":[0-9.e-]*,"encode_s":[0-9.e-]*,"search_s":[0-9.e-]*}' "$T/one" \
    || fail "--json timings: $(cat "$T/one")"
"$TR" --roi 32 --modality audio --json --search ctc_greedy "$T/m.safetensors" "$T/$id.mkv" \
    > "$T/forced" 2> "$T/err" || fail "--modality audio: $(cat "$T/err")"
grep -q '"modality":"audio"' "$T/forced" || fail "--modality audio: $(cat "$T/forced")"
echo "ok: video-only, audio-only and --modality audio files"

# bad input
expect() { # expect STATUS MESSAGE CMD...
    st=$1
    msg=$2
    shift 2
    "$@" > "$T/bo" 2> "$T/be"
    got=$?
    [ "$got" -eq "$st" ] || fail "$*: exit $got, expected $st ($(cat "$T/be"))"
    grep -qxF "$msg" "$T/be" || fail "$*: message '$(cat "$T/be")', expected '$msg'"
}
expect 1 "avsr-transcribe: $T/nope.safetensors: cannot open: No such file or directory" \
    "$TR" "$T/nope.safetensors" "$T/$id.mkv"
"$FX" nometa "$T/nometa.safetensors" || fail "nometa fixture"
expect 1 "avsr-transcribe: $T/nometa.safetensors: not a model file: metadata \"avsr.model\" is missing (model files written by avsr-worker checkpoints and avsr-avg carry the model configuration and the tokenizer)" \
    "$TR" "$T/nometa.safetensors" "$T/$id.mkv"
expect 1 "avsr-transcribe: $T/none.mp4: cannot open: No such file or directory" \
    "$TR" --roi 32 "$T/m.safetensors" "$T/none.mp4"
echo "this is not a video" > "$T/bad.mp4"
"$TR" --roi 32 --search ctc_greedy "$T/m.safetensors" "$T/bad.mp4" "$T/$id.mkv" > "$T/bo" 2> "$T/be"
[ $? -eq 1 ] || fail "unreadable media: exit status"
grep -q "^avsr-transcribe: $T/bad.mp4: avformat_open_input(&fmt, path, NULL, NULL) failed at .*: Invalid data found when processing input\$" "$T/be" \
    || fail "unreadable media: $(cat "$T/be")"
grep -q "^$T/$id.mkv	" "$T/bo" || fail "the good file after a bad one was not transcribed"
expect 1 "avsr-transcribe: $T/$id.mkv: --roi 16 is smaller than the model's input frames (24 x 24)" \
    "$TR" --roi 16 "$T/m.safetensors" "$T/$id.mkv"
expect 2 "avsr-transcribe: --beam: got '0', expected an integer in [1, 1000]" \
    "$TR" --beam 0 "$T/m.safetensors" "$T/$id.mkv"
expect 2 "avsr-transcribe: --search: got 'fast', expected attention_beam, ctc_beam or ctc_greedy" \
    "$TR" --search fast "$T/m.safetensors" "$T/$id.mkv"
expect 2 "avsr-transcribe: --modality: got 'lips', expected auto, audio, video or audiovisual" \
    "$TR" --modality lips "$T/m.safetensors" "$T/$id.mkv"
expect 2 "avsr-transcribe: give a model file and at least one media file" "$TR" "$T/m.safetensors"
echo "ok: bad input"
echo "PASS: avsr-transcribe"
exit 0
