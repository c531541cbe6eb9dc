#!/bin/sh
# test_pack_cli.sh: the avsr-pack program end to end. Media are made with
# the ffmpeg program (skipped without it). Checks: pack + info, every kind of
# bad row with its exact message (and no output left behind), --skip-bad and
# its report, speaker splits (disjoint, reproducible), noise and babble
# packing, .tsv/.wrd input, --roi/--compress, and SIGTERM/SIGKILL leaving no
# file at the final name. Plain protocol: 0 pass, 77 skip, else fail.
prog="${top_builddir:-.}/launch/avsr-pack"
case $prog in /*) ;; *) prog="$(pwd)/$prog" ;; esac
if ! command -v ffmpeg >/dev/null 2>&1; then
    echo "ffmpeg program not found: skipped"
    exit 77
fi
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }

d=$(mktemp -d "${TMPDIR:-/tmp}/avsr-test-pack-cli-XXXXXX") || exit 99
cd "$d" || exit 99
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # check DESCRIPTION COMMAND...
    what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
has() { grep -qF -- "$2" "$1" || { echo "# '$2' not in $1:"; sed 's/^/#   /' "$1"; return 1; }; }

ff() { ffmpeg -nostdin -loglevel error -y "$@" || echo "# ffmpeg $* failed"; }

# ---- media ------------------------------------------------------------
ff -f lavfi -i testsrc2=s=96x96:r=25:d=1 -f lavfi -i sine=f=440:r=16000:d=1 \
   -c:v ffv1 -pix_fmt gray -c:a pcm_s16le good.mkv
ff -f lavfi -i testsrc2=s=128x96:r=30:d=1 -f lavfi -i sine=f=220:r=44100:d=1 \
   -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest x264.mp4
ff -f lavfi -i testsrc2=s=96x96:r=25:d=1 -c:v ffv1 vonly.mkv
ff -f lavfi -i sine=f=330:r=16000:d=2 long.wav
ff -f lavfi -i sine=f=550:r=16000:d=1 tone.wav
ff -f lavfi -i sine=f=660:r=22050:d=1.5 -ac 2 tone2.wav
ff -f lavfi -i testsrc2=s=96x96:r=25:d=3 -f lavfi -i sine=r=16000:d=3 -c:v ffv1 \
   -c:a pcm_s16le long.mkv
size=$(wc -c < long.mkv)
head -c $((size * 2 / 5)) long.mkv > trunc.mkv
echo "just some text, not media" > garbage.mkv
# a WAV header announcing no samples
printf 'RIFF\044\000\000\000WAVEfmt \020\000\000\000\001\000\001\000\200\076\000\000\000\175\000\000\002\000\020\000data\000\000\000\000' > empty.wav

# ---- pack + info ----------------------------------------------------------
printf 'id,video,audio,text,speaker\ng1,good.mkv,,HELLO WORLD,s1\ng2,x264.mp4,,"na\303\257ve, ""quoted""",s2\ng3,vonly.mkv,tone.wav,third,s1\n' > ok.csv
mkdir out
"$prog" ok.csv -o out/train.h5 --threads 2 2> pack.err
check "pack exits 0" test $? -eq 0
check "summary line on a non-TTY" has pack.err "avsr-pack: 3 clips, 3.0 s of audio/video in"
"$prog" info out/train.h5 > info.out 2>&1
check "info exits 0" test $? -eq 0
check "info: clips" has info.out "clips: 3"
check "info: speakers" has info.out "speakers: 2"
check "info: format line" has info.out "format: avsr-pack v1, kind av, 16000 Hz, 25 fps, ROI 96x96"
check "info: frames" has info.out "frames: 75"
check "info: histogram" has info.out "length histogram (s):"
"$prog" info --list out/train.h5 > list.out
check "info --list: non-ASCII, quoted text" has list.out "$(printf 'g2\ts2\t25\t16000\tna\303\257ve, "quoted"')"
check "only the output in out/" test "$(ls out)" = "train.h5"

# ---- bad rows: one manifest per case, row 2 good, row 3 bad -----------------
bad_case() { # bad_case NAME ROW3 EXPECTED [EXPECTED2]
    printf 'id,video,audio,text,speaker\na,good.mkv,,fine,s1\n%s\n' "$2" > "bad_$1.csv"
    rm -rf outb && mkdir outb
    "$prog" "bad_$1.csv" -o outb/x.h5 2> "bad_$1.err"
    rc=$?
    if [ $rc -ne 0 ] && has "bad_$1.err" "$3" && { [ -z "$4" ] || has "bad_$1.err" "$4"; } \
        && [ -z "$(ls outb)" ]; then
        ok "$1: exit $rc, '$3'"
    else
        not_ok "$1: exit $rc, '$3'; files: $(ls outb)"
    fi
}
bad_case missing "b,nope.mkv,,text,s1" "bad_missing.csv:3: b: nope.mkv: cannot open: No such file or directory"
bad_case undecodable "b,garbage.mkv,,text,s1" "bad_undecodable.csv:3: b: garbage.mkv: avformat_open_input(" \
    "Invalid data found when processing input"
bad_case truncated "b,trunc.mkv,,text,s1" "bad_truncated.csv:3: b: trunc.mkv: truncated or damaged: video decodes to"
bad_case novideo "b,tone.wav,,text,s1" "bad_novideo.csv:3: b: tone.wav: no video stream"
bad_case zeroaudio "b,vonly.mkv,empty.wav,text,s1" "bad_zeroaudio.csv:3: b: empty.wav: zero-length audio"
bad_case noaudio "b,vonly.mkv,,text,s1" "bad_noaudio.csv:3: b: vonly.mkv: no audio stream"
bad_case utf8 "$(printf 'b,good.mkv,,caf\351 ok,s1')" "bad_utf8.csv:3: b: text is not valid UTF-8 (byte 4)"
bad_case emptytext "b,good.mkv,,  ,s1" "bad_emptytext.csv:3: b: empty text"
bad_case duplicate "a,good.mkv,,again,s1" "bad_duplicate.csv:3: a: duplicate id (first on line 2)"
bad_case quoting 'b,good.mkv,,say "hi",s1' "bad_quoting.csv:3: b: bad CSV quoting: field 4: quote inside an unquoted field"
bad_case avmismatch "b,vonly.mkv,long.wav,text,s1" \
    "bad_avmismatch.csv:3: b: audio is 2.00 s but video is 1.00 s (25 frames): they differ by more than --av-tolerance 0.20 s"

# ---- --skip-bad ---------------------------------------------------------------
{
    echo "id,video,audio,text,speaker"
    echo "a,good.mkv,,fine,s1"
    echo "b,nope.mkv,,text,s1"
    echo "c,garbage.mkv,,text,s1"
    echo "d,good.mkv,,,s1"
    echo "a,good.mkv,,dup,s1"
    echo "e,x264.mp4,,also fine,s2"
} > skip.csv
rm -rf outs && mkdir outs
"$prog" skip.csv -o outs/x.h5 --skip-bad 2> skip.err
check "--skip-bad exits 0" test $? -eq 0
check "--skip-bad report has 4 lines" test "$(wc -l < outs/x.bad.txt)" -eq 4
check "report: missing file" has outs/x.bad.txt "skip.csv:3: b: nope.mkv: cannot open: No such file or directory"
check "report: empty text" has outs/x.bad.txt "skip.csv:5: d: empty text"
check "report: duplicate" has outs/x.bad.txt "skip.csv:6: a: duplicate id (first on line 2)"
check "summary counts skipped rows" has skip.err "4 bad rows skipped (outs/x.bad.txt)"
"$prog" info --list outs/x.h5 | cut -f1 > skip.ids
check "good rows packed in manifest order" test "$(tr '\n' ' ' < skip.ids)" = "a e "

# ---- --split-by-speaker ---------------------------------------------------------
{
    echo "id,video,audio,text,speaker"
    for s in 0 1 2 3 4 5 6 7 8 9; do
        echo "u${s}a,good.mkv,,words $s,spk$s"
        echo "u${s}b,vonly.mkv,tone.wav,more words $s,spk$s"
    done
} > split.csv
rm -rf outp && mkdir outp
"$prog" split.csv -o outp/c.h5 --split-by-speaker 0.6,0.2,0.2 --seed 3 --threads 2 2> split.err
check "split exits 0" test $? -eq 0
for s in train valid test; do
    "$prog" info --list "outp/c-$s.h5" > "split_$s.list" || not_ok "info outp/c-$s.h5"
    cut -f2 "split_$s.list" | sort -u > "split_$s.spk"
done
check "split sizes 6/2/2 speakers" test "$(cat split_train.spk | wc -l)$(cat split_valid.spk | wc -l)$(cat split_test.spk | wc -l)" = "622"
check "speakers disjoint" test -z "$(cat split_*.spk | sort | uniq -d)"
check "all 20 clips present once" test "$(cat split_*.list | cut -f1 | sort -u | wc -l)" -eq 20
mkdir outp2
"$prog" split.csv -o outp2/c.h5 --split-by-speaker 0.6,0.2,0.2 --seed 3 --threads 1 --quiet
check "same seed, same files (byte for byte)" sh -c 'cmp outp/c-train.h5 outp2/c-train.h5 && cmp outp/c-test.h5 outp2/c-test.h5'

# ---- noise and babble -------------------------------------------------------------
printf 'id,audio\nn1,tone.wav\nn2,tone2.wav\nn3,long.wav\nn4,good.mkv\n' > noise.csv
"$prog" noise.csv -o out/noise.h5 --noise --quiet
check "noise pack exits 0" test $? -eq 0
"$prog" info out/noise.h5 > noise.info
check "noise: kind" has noise.info "kind noise"
check "noise: 4 clips, 5.5 s" has noise.info "hours: 0.0015 (5.5 s)"
{
    echo "id,audio,speaker"
    echo "b1,tone.wav,p1"; echo "b2,tone2.wav,p2"; echo "b3,long.wav,p3"
    echo "b4,good.mkv,p4"; echo "b5,x264.mp4,p1"
} > babble.csv
"$prog" babble.csv -o out/babble.h5 --noise --babble 3 --babble-clips 6 --seed 1 --quiet
check "babble exits 0" test $? -eq 0
"$prog" info --list out/babble.h5 > babble.list
check "babble: 6 clips" test "$(wc -l < babble.list)" -eq 6
check "babble: ids" has babble.list "$(printf 'babble-000005\tbabble\t0')"
"$prog" babble.csv -o out/babble2.h5 --noise --babble 3 --babble-clips 6 --seed 1 --quiet --threads 1
check "babble reproducible" cmp out/babble.h5 out/babble2.h5
"$prog" babble.csv -o out/babble3.h5 --noise --babble 5 2> babble.err
check "babble needs K speakers" has babble.err "--babble 5 needs at least 5 speakers with decodable audio; babble.csv has 4"

# ---- .tsv + .wrd, --roi, --compress ------------------------------------------------
mkdir -p root/spkA root/spkB
cp good.mkv root/spkA/1.mkv
cp vonly.mkv root/spkB/2.mkv
printf 'root\nspkA/1\tspkA/1.mkv\t\t25\t16000\nspkB/2\tspkB/2.mkv\t../tone.wav\t25\t16000\n' > lrs.tsv
printf 'first words\nsecond words\n' > lrs.wrd
"$prog" lrs.tsv -o out/lrs.h5 --roi 64x48 --compress --quiet
check "tsv pack exits 0" test $? -eq 0
"$prog" info out/lrs.h5 > lrs.info
"$prog" info --list out/lrs.h5 > lrs.list
check "tsv: ROI 64x48" has lrs.info "ROI 64x48"
check "tsv: gzip chunks" has lrs.info "gzip chunks"
check "tsv: text and speaker" has lrs.list "$(printf 'spkB/2\tspkB\t25\t16000\tsecond words')"

# ---- usage errors and hostile files ----------------------------------------------------
"$prog" ok.csv -o out/y.h5 --roi 0 2> usage.err
check "--roi 0 is a usage error (exit 2)" test $? -eq 2
check "--roi message" has usage.err "--roi needs N or HxW with sides in 1..1024, got '0'"
head -c 5000 out/train.h5 > cut.h5
"$prog" info cut.h5 2> cut.err
check "info on a truncated file exits 1" test $? -eq 1
check "info names the file" has cut.err "cut.h5: not a readable HDF5 file (5000 bytes; truncated file"

# ---- interruption: nothing at the final name -----------------------------------------
{
    echo "id,video,audio,text,speaker"
    i=0
    while [ $i -lt 40 ]; do echo "k$i,good.mkv,,text $i,s1"; i=$((i + 1)); done
} > slow.csv
for sig in TERM INT KILL; do
    rm -rf outk && mkdir outk
    AVSR_PACK_TEST_DELAY_MS=100 "$prog" slow.csv -o outk/x.h5 --quiet &
    pid=$!
    sleep 1
    kill -s $sig $pid
    wait $pid
    rc=$?
    check "SIG$sig: killed (exit $rc) and no file left in outk/ ($(ls outk | tr '\n' ' '))" \
        sh -c "[ $rc -gt 128 ] && [ -z \"\$(ls outk)\" ]"
done

echo "1..$n"
if [ $failed -eq 0 ]; then
    cd / && rm -rf "$d"
    exit 0
fi
echo "# $failed failed; files kept in $d"
exit 1
