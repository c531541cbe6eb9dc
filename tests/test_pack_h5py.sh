#!/bin/sh
# test_pack_h5py.sh: a packed file is readable by h5py with no avsr code.
# Raw frames and PCM made here are encoded losslessly (FFV1 gray + PCM),
# packed by avsr-pack, and clip 0 read back with the h5py example of
# docs/formats/pack.md must equal them exactly. Skipped (77) without h5py
# or ffmpeg.
prog="${top_builddir:-.}/launch/avsr-pack"
case $prog in /*) ;; *) prog="$(pwd)/$prog" ;; esac
py=/usr/bin/python3
if ! "$py" -c 'import h5py, numpy' >/dev/null 2>&1; then
    echo "python3-h5py not installed: skipped"
    exit 77
fi
command -v ffmpeg >/dev/null 2>&1 || { echo "ffmpeg not found: skipped"; exit 77; }
[ -x "$prog" ] || { echo "$prog not built" >&2; exit 99; }
d=$(mktemp -d "${TMPDIR:-/tmp}/avsr-test-pack-h5py-XXXXXX") || exit 99
cd "$d" || exit 99

"$py" - <<'PY' || exit 1
import numpy as np
t = np.arange(37)[:, None, None]
y = np.arange(96)[None, :, None]
x = np.arange(96)[None, None, :]
((x + 2 * y + 5 * t) % 256).astype(np.uint8).tofile("v.raw")
a = (8000 * np.sin(2 * np.pi * 440 * np.arange(37 * 640) / 16000)).round().astype("<i2")
a.tofile("a.raw")
PY
ffmpeg -nostdin -loglevel error -y -f rawvideo -pix_fmt gray -s 96x96 -r 25 -i v.raw \
    -f s16le -ar 16000 -ac 1 -i a.raw -c:v ffv1 -pix_fmt gray -c:a pcm_s16le clip.mkv || exit 1
printf 'id,video,audio,text,speaker\nclip0,clip.mkv,,gr\303\274\303\237e,spk\nclip1,clip.mkv,,second,spk\n' > m.csv
"$prog" m.csv -o train.h5 --quiet || exit 1

"$py" - <<'PY'
import sys
import numpy as np
# --- the example of docs/formats/pack.md ---
import h5py
with h5py.File("train.h5", "r") as f:
    assert f.attrs["format"] == b"avsr-pack" and f.attrs["version"] == 1
    row = f["samples"][0]
    vo, vn = row["video_offset"], row["video_frames"]
    ao, an = row["audio_offset"], row["audio_samples"]
    to, tn = row["text_offset"], row["text_bytes"]
    video = f["video"][vo:vo + vn]                     # uint8 [T, H, W]
    audio = f["audio"][ao:ao + an]                     # int16 [T * 640]
    text = f["text"][to:to + tn].tobytes().decode("utf-8")
    print(row["id"].decode(), video.shape, audio.shape, text)
# --- checks ---
src_v = np.fromfile("v.raw", np.uint8).reshape(37, 96, 96)
src_a = np.fromfile("a.raw", "<i2")
ok = True
for what, cond in [("id", row["id"] == b"clip0"), ("speaker", row["speaker"] == b"spk"),
                   ("video equal", video.shape == src_v.shape and (video == src_v).all()),
                   ("audio equal", audio.shape == src_a.shape and (audio == src_a).all()),
                   ("text", text == "gr\u00fc\u00dfe")]:
    print(("ok" if cond else "FAILED"), what)
    ok = ok and bool(cond)
sys.exit(0 if ok else 1)
PY
rc=$?
[ $rc -eq 0 ] && cd / && rm -rf "$d"
exit $rc
