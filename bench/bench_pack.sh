#!/bin/sh
# bench_pack.sh: avsr-pack throughput in seconds of audio-visual material
# packed per wall-clock second, on generated 96x96 clips.
#   sh bench/bench_pack.sh [BUILD_DIR] [ROWS] [THREADS]
# Makes 4 distinct 4 s clips per codec setting with ffmpeg (H.264 + AAC in
# .mp4, and H.264 video + separate 16 kHz WAV as auto_avsr stores it, and
# lossless FFV1 + PCM in .mkv), writes a manifest of ROWS rows (default 200,
# i.e. 800 s) cycling over them, and times `avsr-pack --threads THREADS`
# (default 2) with warm page cache: one warm-up, then the median of 3 runs.
# Prints a Markdown table.
build=${1:-build}
rows=${2:-200}
threads=${3:-2}
prog="$build/launch/avsr-pack"
[ -x "$prog" ] || { echo "usage: $0 BUILD_DIR [ROWS] [THREADS] ($prog not built)" >&2; exit 2; }
prog=$(cd "$(dirname "$prog")" && pwd)/avsr-pack
d=$(mktemp -d "${TMPDIR:-/tmp}/avsr-bench-pack-XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
cd "$d" || exit 1
ff() { ffmpeg -nostdin -loglevel error -y "$@"; }
for i in 0 1 2 3; do
    ff -f lavfi -i "testsrc2=s=96x96:r=25:d=4" -f lavfi -i "sine=f=$((300 + 50 * i)):r=44100:d=4" \
       -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "c$i.mp4"
    ff -f lavfi -i "testsrc2=s=96x96:r=25:d=4" -c:v libx264 -preset veryfast -pix_fmt yuv420p "v$i.mp4"
    ff -f lavfi -i "sine=f=$((300 + 50 * i)):r=16000:d=4" "a$i.wav"
    ff -f lavfi -i "testsrc2=s=96x96:r=25:d=4" -f lavfi -i "sine=r=16000:d=4" \
       -c:v ffv1 -pix_fmt gray -c:a pcm_s16le "f$i.mkv"
done
mk() { # mk NAME VIDEO_PATTERN AUDIO_PATTERN
    {
        echo "id,video,audio,text,speaker"
        r=0
        while [ $r -lt "$rows" ]; do
            i=$((r % 4))
            v=$(echo "$2" | sed "s/#/$i/"); a=$(echo "$3" | sed "s/#/$i/")
            echo "u$r,$v,$a,some words for clip $r,s$((r % 10))"
            r=$((r + 1))
        done
    } > "$1.csv"
}
mk mp4 'c#.mp4' ''
mk mp4wav 'v#.mp4' 'a#.wav'
mk ffv1 'f#.mkv' ''
now() { date +%s.%N; }
echo "| input | clips | material (s) | threads | wall (s), median of 3 | x real time |"
echo "|---|---|---|---|---|---|"
for c in mp4 mp4wav ffv1; do
    "$prog" "$c.csv" -o out.h5 --threads "$threads" --quiet || exit 1
    times=""
    for k in 1 2 3; do
        t0=$(now)
        "$prog" "$c.csv" -o out.h5 --threads "$threads" --quiet || exit 1
        t1=$(now)
        times="$times $(echo "$t1 - $t0" | bc -l)"
    done
    med=$(echo $times | tr ' ' '\n' | sort -g | sed -n 2p)
    secs=$("$prog" info out.h5 | sed -n 's/^hours: .* (\(.*\) s)$/\1/p')
    printf '| %s | %s | %s | %s | %.2f | %.0f |\n' "$c" "$rows" "$secs" "$threads" "$med" \
        "$(echo "$secs / $med" | bc -l)"
done
