/* test_pack: the packed dataset format, FFmpeg decoding and manifests.
 *
 * Media are made here: raw gray frames and int16 PCM written by the test,
 * encoded with the ffmpeg program (FFV1 gray + PCM in .mkv, lossless, so
 * pixels and samples round-trip exactly). Without ffmpeg the decoding
 * cases are skipped. Hostile HDF5 files (foreign, truncated, bit-flipped,
 * rows pointing outside their datasets) must give messages, never crashes;
 * the bit-flip sweep runs each open in a child process to catch signals. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "decode.h"
#include "fileio.h"
#include "manifest.h"
#include "pack_h5.h"
#include "pack_read.h"
#include "pack_write.h"
#include "tap.h"

static char dir[256];
static int have_ffmpeg;

static char *P(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n))
        tap_bail("cannot write %s", path);
    fclose(f);
}

/* frame i of the test pattern: a moving gradient with the index at (0,0) */
static uint8_t pix(int i, int y, int x) { return (y | x) ? (uint8_t)(x + 2 * y + 5 * i) : (uint8_t)i; }

static int16_t tone(int64_t t, int rate) { return (int16_t)lrint(8000 * sin(2 * M_PI * 440.0 * t / rate)); }

/* Encode n frames (h x w, fps) and, if samples > 0, mono 16 kHz PCM into
 * out (.mkv: FFV1 + pcm_s16le). */
static int make_mkv(const char *out, int h, int w, int fps, int n, int64_t samples)
{
    size_t fs = (size_t)h * w;
    uint8_t *v = malloc(fs * n);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                v[i * fs + (size_t)y * w + x] = pix(i, y, x);
    write_file(P("v.raw"), v, fs * n);
    free(v);
    char cmd[2048];
    int k = snprintf(cmd, sizeof cmd,
                     "ffmpeg -nostdin -loglevel error -y -f rawvideo -pix_fmt gray -s %dx%d -r %d "
                     "-i %s", w, h, fps, P("v.raw"));
    if (samples > 0) {
        int16_t *a = malloc(samples * sizeof *a);
        for (int64_t t = 0; t < samples; t++)
            a[t] = tone(t, 16000);
        write_file(P("a.raw"), a, samples * sizeof *a);
        free(a);
        k += snprintf(cmd + k, sizeof cmd - k, " -f s16le -ar 16000 -ac 1 -i %s -c:a pcm_s16le",
                      P("a.raw"));
    }
    snprintf(cmd + k, sizeof cmd - k, " -c:v ffv1 -pix_fmt gray %s", out);
    return system(cmd);
}

static int sh(const char *cmd)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s >/dev/null 2>&1", cmd);
    return system(buf);
}

/* ---- decoding ------------------------------------------------------------ */

static void test_decode(void)
{
    avsr_error err = {0};
    avsr_media m;
    avsr_decode_opts av = {96, 96, 1, 1};

    /* exact round trip: 30 frames at 25 fps, 1.2 s of PCM */
    tap_ok(make_mkv(P("exact.mkv"), 96, 96, 25, 30, 19200) == 0, "ffmpeg made exact.mkv");
    int rc = avsr_decode_file(P("exact.mkv"), &av, &m, &err);
    tap_ok(rc == 0, "decode exact.mkv: %s", err.msg);
    if (rc == 0) {
        tap_ok(m.frames == 30 && m.samples == 19200, "30 frames, 19200 samples (got %lld, %lld)",
               (long long)m.frames, (long long)m.samples);
        int64_t bad = 0;
        for (int i = 0; i < 30 && i < m.frames; i++)
            for (int y = 0; y < 96; y++)
                for (int x = 0; x < 96; x++)
                    bad += m.video[((size_t)i * 96 + y) * 96 + x] != pix(i, y, x);
        tap_ok(bad == 0, "FFV1 gray pixels round-trip exactly (%lld differ)", (long long)bad);
        int64_t abad = 0;
        for (int64_t t = 0; t < 19200 && t < m.samples; t++)
            abad += m.audio[t] != tone(t, 16000);
        tap_ok(abad == 0, "PCM samples round-trip exactly (%lld differ)", (long long)abad);
    }
    avsr_media_free(&m);

    /* 30 fps -> 25 fps by timestamps: 60 frames (2 s) become 50 */
    tap_ok(make_mkv(P("fps30.mkv"), 96, 96, 30, 60, 0) == 0, "ffmpeg made fps30.mkv");
    avsr_decode_opts vo = {96, 96, 1, 0};
    rc = avsr_decode_file(P("fps30.mkv"), &vo, &m, &err);
    tap_ok(rc == 0 && m.frames == 50, "30 fps source: 50 frames at 25 fps (got %lld) %s",
           (long long)m.frames, err.msg);
    if (rc == 0) {
        int exact = 0, near = 0;
        for (int k = 0; k < m.frames; k++) {
            int src = m.video[(size_t)k * 96 * 96];          /* the marker pixel */
            int want = (int)floor((k + 0.5) * 30.0 / 25.0);  /* frame showing at slot centre */
            exact += src == want;
            near += abs(src - want) <= 1;
        }
        tap_ok(near == m.frames && exact >= m.frames - 5,
               "frame k shows source frame floor((k+0.5)*1.2) (%d exact, %d within 1 of %lld)",
               exact, near, (long long)m.frames);
    }
    avsr_media_free(&m);

    /* resize and colour: 160x120 yuv420p H.264/MPEG-4 to 88x64 gray */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -y -f lavfi -i color=c=0x646464:s=160x120:r=25:d=1 "
             "-f lavfi -i sine=f=300:r=44100:d=1 -ac 2 -c:v mpeg4 -q:v 2 -c:a pcm_s16le "
             "-shortest %s", P("stereo.avi"));
    tap_ok(sh(cmd) == 0, "ffmpeg made stereo.avi (mpeg4 + 44.1 kHz stereo)");
    avsr_decode_opts ro = {64, 88, 1, 1};
    rc = avsr_decode_file(P("stereo.avi"), &ro, &m, &err);
    tap_ok(rc == 0 && m.frames == 25 && m.src_rate == 44100 && m.src_channels == 2,
           "160x120 25 fps, 44.1 kHz stereo: 25 frames (got %lld) %s", (long long)m.frames,
           err.msg);
    if (rc == 0) {
        double mean = 0;
        for (int64_t i = 0; i < m.frames * 64 * 88; i++)
            mean += m.video[i];
        mean /= (double)(m.frames * 64 * 88);
        tap_ok(fabs(mean - 100) < 3, "gray level of a 0x646464 source kept: mean %.2f", mean);
        tap_ok(llabs(m.samples - 16000) <= 64, "1 s at 44.1 kHz -> %lld samples at 16 kHz",
               (long long)m.samples);
    }
    avsr_media_free(&m);

    /* errors */
    avsr_error_clear(&err);
    rc = avsr_decode_file(P("nope.mkv"), &av, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "nope.mkv: cannot open: No such file or directory"),
           "missing file: %s", err.msg);
    avsr_error_clear(&err);
    write_file(P("garbage.mkv"), "this is not a media file at all, just text\n", 43);
    rc = avsr_decode_file(P("garbage.mkv"), &av, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "garbage.mkv: avformat_open_input") &&
           strstr(err.msg, "Invalid data found when processing input"),
           "undecodable file: %s", err.msg);
    avsr_error_clear(&err);
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -y -f lavfi -i sine=r=16000:d=1 %s", P("tone.wav"));
    sh(cmd);
    rc = avsr_decode_file(P("tone.wav"), &av, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "tone.wav: no video stream"), "audio file as video: %s",
           err.msg);
    avsr_error_clear(&err);
    rc = avsr_decode_file(P("fps30.mkv"), &av, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "fps30.mkv: no audio stream"), "no audio stream: %s",
           err.msg);
    avsr_error_clear(&err);
    /* a WAV header with no samples */
    static const unsigned char wav0[44] = {
        'R', 'I', 'F', 'F', 36, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ', 16, 0, 0, 0,
        1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0, 'd', 'a', 't', 'a', 0, 0, 0, 0};
    write_file(P("empty.wav"), wav0, sizeof wav0);
    avsr_decode_opts ao = {0, 0, 0, 1};
    rc = avsr_decode_file(P("empty.wav"), &ao, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "empty.wav: zero-length audio"), "zero-length audio: %s",
           err.msg);
    avsr_error_clear(&err);
    /* truncated: the first 40% of a 3 s clip */
    tap_ok(make_mkv(P("long.mkv"), 96, 96, 25, 75, 48000) == 0, "ffmpeg made long.mkv");
    void *buf;
    size_t len;
    if (avsr_file_read_all(P("long.mkv"), &buf, &len, &err) == 0) {
        write_file(P("trunc.mkv"), buf, len * 2 / 5);
        free(buf);
    }
    rc = avsr_decode_file(P("trunc.mkv"), &av, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "trunc.mkv: truncated or damaged"), "truncated media: %s",
           err.msg);
    avsr_media_free(&m);
}

/* ---- manifests ------------------------------------------------------------ */

static void test_manifest(void)
{
    avsr_error err = {0};
    avsr_manifest m;
    const char *csv =
        "id,video,audio,text,speaker\r\n"
        "a,v/a.mkv,,hello world,s1\r\n"
        "b,/abs/b.mp4,w/b.wav,\"quoted, with \"\"quotes\"\"\nand a newline\",s2\n"
        "c,c.mkv,,caf\xc3\xa9 \xe2\x9c\x93,s1\n"
        "a,a2.mkv,,dup,s3\n"
        "e,e.mkv,,,s1\n"
        "f,f.mkv,,bad \xff byte,s1\n"
        "g,g\"x.mkv,,text,s1\n"
        "h,h.mkv,,\"x\"y,s1\n"
        "i,i.mkv,,too few\n"
        "\n"
        ",j.mkv,,no id,s1\n";
    write_file(P("m.csv"), csv, strlen(csv));
    int rc = avsr_manifest_load_csv(P("m.csv"), 0, &m, &err);
    tap_ok(rc == 0 && m.n == 10, "CSV loads, 10 rows (got %zu) %s", m.n, err.msg);
    if (rc == 0 && m.n == 10) {
        tap_ok(!m.rows[0].bad && !strcmp(m.rows[0].video, P("v/a.mkv")) && !m.rows[0].audio[0] &&
               m.rows[0].line == 2, "relative path joined with the manifest's directory: %s",
               m.rows[0].video);
        tap_ok(!m.rows[1].bad && !strcmp(m.rows[1].video, "/abs/b.mp4") &&
               !strcmp(m.rows[1].audio, P("w/b.wav")) &&
               !strcmp(m.rows[1].text, "quoted, with \"quotes\"\nand a newline") &&
               !strcmp(m.rows[1].speaker, "s2"), "RFC 4180 quoting, absolute path kept");
        tap_ok(!m.rows[2].bad && m.rows[2].line == 5 && !strcmp(m.rows[2].text, "caf\xc3\xa9 \xe2\x9c\x93"),
               "UTF-8 text; line numbers count the quoted newline (line %d)", m.rows[2].line);
        struct { int i; const char *what; } want[] = {
            {3, "duplicate id (first on line 2)"},
            {4, "empty text"},
            {5, "text is not valid UTF-8 (byte 5)"},
            {6, "bad CSV quoting: field 2: quote inside an unquoted field"},
            {7, "bad CSV quoting: field 4: text after the closing quote"},
            {8, "4 fields, the header has 5"},
            {9, "empty id"},
        };
        for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
            const avsr_manifest_row *r = &m.rows[want[k].i];
            tap_ok(r->bad && !strcmp(r->bad, want[k].what), "row %s: '%s' (got '%s')", r->id,
                   want[k].what, r->bad ? r->bad : "(ok)");
        }
        char msg[512];
        avsr_manifest_row_msg(&m, &m.rows[3], m.rows[3].bad, msg, sizeof msg);
        char expect[512];
        /* row 3 starts on line 6 (the quoted newline) */
        snprintf(expect, sizeof expect, "%s:6: a: duplicate id (first on line 2)", P("m.csv"));
        tap_ok(!strcmp(msg, expect), "message format: %s", msg);
        tap_ok(strlen(m.sha256) == 64, "manifest sha256 %s", m.sha256);
    }
    avsr_manifest_free(&m);

    const char *unterminated = "id,video,audio,text\nx,x.mkv,,\"never closed\n";
    write_file(P("u.csv"), unterminated, strlen(unterminated));
    rc = avsr_manifest_load_csv(P("u.csv"), 0, &m, &err);
    tap_ok(rc == 0 && m.n == 1 && m.rows[0].bad &&
           strstr(m.rows[0].bad, "quoted field not closed before end of file"),
           "unterminated quote: %s", rc == 0 && m.n ? m.rows[0].bad : err.msg);
    avsr_manifest_free(&m);

    const char *hdr = "id,video,sound,text\n";
    write_file(P("h.csv"), hdr, strlen(hdr));
    avsr_error_clear(&err);
    rc = avsr_manifest_load_csv(P("h.csv"), 0, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "h.csv:1: header: unknown column 'sound'"), "bad header: %s",
           err.msg);
    const char *noise = "id,audio\nn1,n1.wav\n";
    write_file(P("n.csv"), noise, strlen(noise));
    avsr_error_clear(&err);
    rc = avsr_manifest_load_csv(P("n.csv"), AVSR_MANIFEST_NOISE, &m, &err);
    tap_ok(rc == 0 && m.n == 1 && !m.rows[0].bad, "noise manifest id,audio %s", err.msg);
    avsr_manifest_free(&m);
    avsr_error_clear(&err);
    rc = avsr_manifest_load_csv(P("n.csv"), 0, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "no 'video' column"), "id,audio is not an AV manifest: %s",
           err.msg);

    /* AV-HuBERT .tsv + .wrd */
    const char *tsv = "lrs\ntrainval/spkA/00001\ttrainval/spkA/00001.mp4\ttrainval/spkA/00001.wav"
                      "\t50\t32000\ntrainval/spkB/00002\tv2.mp4\ta2.wav\t20\t12800\n";
    const char *wrd = "first line\nsecond \xc3\xa9\n";
    write_file(P("t.tsv"), tsv, strlen(tsv));
    write_file(P("t.wrd"), wrd, strlen(wrd));
    avsr_error_clear(&err);
    rc = avsr_manifest_load(P("t.tsv"), NULL, 0, &m, &err);
    tap_ok(rc == 0 && m.n == 2 && !m.rows[0].bad && !strcmp(m.rows[0].speaker, "spkA") &&
           !strcmp(m.rows[1].text, "second \xc3\xa9") &&
           !strcmp(m.rows[0].video, P("lrs/trainval/spkA/00001.mp4")) && m.rows[1].line == 3,
           ".tsv/.wrd pair: speaker from the id, paths under the root %s", err.msg);
    avsr_manifest_free(&m);
    write_file(P("t.wrd"), "only one\n", 9);
    avsr_error_clear(&err);
    rc = avsr_manifest_load(P("t.tsv"), NULL, 0, &m, &err);
    tap_ok(rc < 0 && strstr(err.msg, "t.wrd has 1 lines but") && strstr(err.msg, "has 2 rows"),
           ".wrd line count checked: %s", err.msg);
    size_t at;
    tap_ok(!avsr_utf8_valid("\xc0\xaf", 2, &at) && !avsr_utf8_valid("\xed\xa0\x80", 3, &at) &&
           avsr_utf8_valid("\xf0\x9f\x98\x80", 4, &at), "UTF-8: overlong and surrogate rejected");
}

/* ---- writer and reader ------------------------------------------------------ */

static const char *ids[] = {"clip-0", "clip-1", "clip-\xc3\xa9"};
static const char *texts[] = {"HELLO", "", "na\xc3\xafve \xe2\x9c\x93"};

static int write_av(const char *path, int compress, int h, int w)
{
    avsr_error err = {0};
    avsr_pack_write_opts o = {AVSR_PACK_KIND_AV, h, w, compress, "ab12", "test"};
    avsr_pack_writer *wr = avsr_pack_writer_create(path, &o, &err);
    if (!wr)
        return -1;
    for (int c = 0; c < 3; c++) {
        int frames = 5 + 17 * c;
        uint8_t *v = malloc((size_t)frames * h * w);
        int16_t *a = malloc((size_t)frames * 640 * sizeof *a);
        for (int i = 0; i < frames * h * w; i++)
            v[i] = (uint8_t)(i * 7 + c);
        for (int i = 0; i < frames * 640; i++)
            a[i] = (int16_t)(i * 13 - c * 1000);
        avsr_pack_writer_add(wr, ids[c], c == 1 ? "" : "spk", v, frames, a, frames * 640,
                             texts[c], (int64_t)strlen(texts[c]), &err);
        free(v);
        free(a);
    }
    struct stat st;
    if (stat(path, &st) == 0)
        tap_diag("%s exists before commit", path);
    return avsr_pack_writer_commit(wr, &err);
}

static int check_clips(avsr_pack *p, int64_t base, int h, int w)
{
    avsr_error err = {0};
    int ok = 1;
    for (int c = 0; c < 3; c++) {
        avsr_pack_clip ci;
        if (avsr_pack_clip_info(p, base + c, &ci, &err) < 0)
            return 0;
        int frames = 5 + 17 * c;
        ok &= !strcmp(ci.id, ids[c]) && ci.frames == frames && ci.samples == frames * 640 &&
              ci.text_bytes == (int64_t)strlen(texts[c]);
        uint8_t *v = malloc((size_t)frames * h * w);
        int16_t *a = malloc((size_t)frames * 640 * sizeof *a);
        char t[64];
        ok &= avsr_pack_read_video(p, base + c, v, &err) == 0;
        ok &= avsr_pack_read_audio(p, base + c, a, &err) == 0;
        ok &= avsr_pack_read_text(p, base + c, t, sizeof t, &err) == 0 && !strcmp(t, texts[c]);
        for (int i = 0; i < frames * h * w; i++)
            ok &= v[i] == (uint8_t)(i * 7 + c);
        for (int i = 0; i < frames * 640; i++)
            ok &= a[i] == (int16_t)(i * 13 - c * 1000);
        free(v);
        free(a);
    }
    if (!ok)
        tap_diag("%s", err.msg);
    return ok;
}

static void test_roundtrip(void)
{
    avsr_error err = {0};
    tap_ok(write_av(P("rt.h5"), 0, 24, 20) == 0, "write 3 clips (contiguous)");
    tap_ok(write_av(P("rtz.h5"), 1, 24, 20) == 0, "write 3 clips (--compress)");
    const char *one[] = {P("rt.h5")};
    avsr_pack *p = avsr_pack_open(one, 1, &err);
    tap_ok(p && avsr_pack_count(p) == 3 && avsr_pack_roi_height(p) == 24 &&
           avsr_pack_roi_width(p) == 20 && avsr_pack_kind(p) == AVSR_PACK_KIND_AV,
           "open: 3 clips, ROI 24x20, kind av %s", err.msg);
    if (p) {
        tap_ok(check_clips(p, 0, 24, 20), "video, audio, text (incl. non-ASCII) read back exactly");
        avsr_pack_clip c;
        avsr_error_clear(&err);
        tap_ok(avsr_pack_clip_info(p, 3, &c, &err) < 0 &&
               strstr(err.msg, "clip index 3 out of range (3 clips)"), "index checked: %s",
               err.msg);
        char small[4];
        avsr_error_clear(&err);
        tap_ok(avsr_pack_read_text(p, 2, small, sizeof small, &err) < 0 &&
               strstr(err.msg, "text needs 11 bytes, buffer has 4"), "text buffer size checked");
        int16_t seg[10];
        avsr_error_clear(&err);
        tap_ok(avsr_pack_read_audio_range(p, 0, 3190, 10, seg, &err) == 0 &&
               seg[0] == (int16_t)(3190 * 13), "audio range read");
        tap_ok(avsr_pack_read_audio_range(p, 0, 3195, 10, seg, &err) < 0 &&
               strstr(err.msg, "outside its 3200 samples"), "audio range checked: %s", err.msg);
        avsr_pack_summary s;
        avsr_pack_summarize(p, &s, &err);
        tap_ok(s.clips == 3 && s.speakers == 2 && s.frames == 5 + 22 + 39 &&
               fabs(s.seconds - 66 * 0.04) < 1e-9, "summary: %lld clips, %lld speakers, %.2f s",
               (long long)s.clips, (long long)s.speakers, s.seconds);
        avsr_pack_close(p);
    }
    const char *two[] = {P("rt.h5"), P("rtz.h5")};
    avsr_error_clear(&err);
    p = avsr_pack_open(two, 2, &err);
    tap_ok(p && avsr_pack_count(p) == 6 && check_clips(p, 3, 24, 20),
           "two shards (one compressed) read as 6 clips %s", err.msg);
    if (p) {
        avsr_pack_shard_meta sm;
        avsr_pack_shard_info(p, 1, &sm);
        tap_ok(sm.compressed && !strcmp(sm.created_by, "test") &&
               !strcmp(sm.manifest_sha256, "ab12") && sm.video_mean == 0.421,
               "shard meta: compressed, created_by, sha256, mean");
        avsr_pack_close(p);
    }
    tap_ok(write_av(P("roi.h5"), 0, 16, 16) == 0, "write a 16x16 file");
    const char *mix[] = {P("rt.h5"), P("roi.h5")};
    avsr_error_clear(&err);
    p = avsr_pack_open(mix, 2, &err);
    tap_ok(!p && strstr(err.msg, "roi.h5: kind av ROI 16x16 differs from"), "shards must agree: %s",
           err.msg);

    /* noise */
    avsr_pack_write_opts no = {AVSR_PACK_KIND_NOISE, 0, 0, 0, "", "test"};
    avsr_error_clear(&err);
    avsr_pack_writer *w = avsr_pack_writer_create(P("noise.h5"), &no, &err);
    int16_t a[1000];
    for (int i = 0; i < 1000; i++)
        a[i] = (int16_t)i;
    tap_ok(w && avsr_pack_writer_add(w, "n0", "", NULL, 0, a, 1000, "", 0, &err) == 0 &&
           avsr_pack_writer_add(w, "n1", "", NULL, 0, a, 999, NULL, 0, &err) == 0 &&
           avsr_pack_writer_commit(w, &err) == 0, "noise file written %s", err.msg);
    const char *nf[] = {P("noise.h5")};
    p = avsr_pack_open(nf, 1, &err);
    int16_t b[1000];
    tap_ok(p && avsr_pack_kind(p) == AVSR_PACK_KIND_NOISE && avsr_pack_count(p) == 2 &&
           avsr_pack_read_audio(p, 1, b, &err) == 0 && b[998] == 998, "noise file read %s",
           err.msg);
    uint8_t vv[4];
    avsr_error_clear(&err);
    tap_ok(p && avsr_pack_read_video(p, 0, vv, &err) < 0 && strstr(err.msg, "has no video"),
           "no video in noise files");
    avsr_pack_close(p);

    /* the writer's own checks; abort leaves nothing */
    avsr_pack_write_opts o = {AVSR_PACK_KIND_AV, 8, 8, 0, "", "t"};
    w = avsr_pack_writer_create(P("never.h5"), &o, &err);
    uint8_t v[64] = {0};
    int16_t au[640] = {0};
    avsr_error_clear(&err);
    tap_ok(avsr_pack_writer_add(w, "x", "", v, 1, au, 600, "t", 1, &err) < 0 &&
           strstr(err.msg, "640 samples per frame"), "writer: samples == frames*640: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_pack_writer_add(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                "", v, 1, au, 640, "t", 1, &err) < 0 &&
           strstr(err.msg, "expected 1..63"), "writer: id length: %s", err.msg);
    avsr_pack_writer_abort(w);
    struct stat st;
    tap_ok(stat(P("never.h5"), &st) != 0, "aborted writer leaves no file");
}

/* ---- hostile files ----------------------------------------------------------- */

static int open_msg(const char *path, char *msg, size_t cap)
{
    avsr_error err = {0};
    const char *one[] = {path};
    avsr_pack *p = avsr_pack_open(one, 1, &err);
    snprintf(msg, cap, "%s", err.msg);
    if (p) {
        avsr_pack_close(p);
        return 0;
    }
    return -1;
}

/* rewrite row `row` of /samples through fn */
static void patch_row(const char *path, int row, void (*fn)(avsr_pack_row *))
{
    avsr_error err = {0};
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "samples", H5P_DEFAULT);
    hid_t mt = avsr_h5_row_type(0, &err);
    avsr_pack_row rows[3];
    H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows);
    fn(&rows[row]);
    H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows);
    H5Tclose(mt);
    H5Dclose(d);
    H5Fclose(f);
}

static void far_video(avsr_pack_row *r) { r->video_offset = 1000000; }
static void neg_text(avsr_pack_row *r) { r->text_offset = -1; }
static void bad_ratio(avsr_pack_row *r) { r->audio_samples -= 1; }
static void huge_len(avsr_pack_row *r) { r->audio_samples = INT64_MAX; }
static void no_nul(avsr_pack_row *r) { memset(r->id, 'x', sizeof r->id); }

static void copy_file(const char *from, const char *to)
{
    void *b;
    size_t n;
    avsr_error err = {0};
    if (avsr_file_read_all(from, &b, &n, &err) < 0)
        tap_bail("%s", err.msg);
    write_file(to, b, n);
    free(b);
}

static void set_attr_i32(const char *path, const char *name, int v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

static void test_hostile(void)
{
    char msg[1024];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    tap_ok(open_msg(P("absent.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "absent.h5: cannot open: No such file or directory"), "%s", msg);
    write_file(P("empty.h5"), "", 0);
    tap_ok(open_msg(P("empty.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "empty.h5: not a readable HDF5 file (0 bytes;"), "%s", msg);
    write_file(P("text.h5"), "hello, I am not HDF5\n", 21);
    tap_ok(open_msg(P("text.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "text.h5: not a readable HDF5 file"), "%s", msg);

    /* foreign HDF5: a dataset and no attributes */
    hid_t f = H5Fcreate(P("foreign.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d1 = 4;
    hid_t sp = H5Screate_simple(1, &d1, NULL);
    hid_t ds = H5Dcreate2(f, "x", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    tap_ok(open_msg(P("foreign.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "foreign.h5: not an avsr-pack file (no format attribute)"), "%s", msg);

    copy_file(P("rt.h5"), P("v2.h5"));
    set_attr_i32(P("v2.h5"), "version", 2);
    tap_ok(open_msg(P("v2.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "v2.h5: format version 2; this reader knows version 1"), "%s", msg);
    copy_file(P("rt.h5"), P("fps.h5"));
    set_attr_i32(P("fps.h5"), "fps", 30);
    tap_ok(open_msg(P("fps.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "sample_rate 16000 and fps 30; expected 16000 and 25"), "%s", msg);
    copy_file(P("rt.h5"), P("roi.h5"));
    set_attr_i32(P("roi.h5"), "roi_width", 21);
    tap_ok(open_msg(P("roi.h5"), msg, sizeof msg) < 0 &&
           strstr(msg, "/video frames are 24x20, the ROI attributes say 24x21"), "%s", msg);

    struct { void (*fn)(avsr_pack_row *); int row; const char *want; } rows[] = {
        {far_video, 1, "/samples row 1 (clip-1): video_offset 1000000 + video_frames 22 is "
                       "outside /video's 66 frames"},
        {neg_text, 2, "/samples row 2 (clip-\xc3\xa9): text_offset -1 + text_bytes 10 is outside"},
        {bad_ratio, 0, "/samples row 0 (clip-0): audio_samples 3199 != video_frames 5 * 640"},
        {huge_len, 0, "/samples row 0 (clip-0): audio_offset 0 + audio_samples "
                      "9223372036854775807 is outside"},
        {no_nul, 2, "/samples row 2: id is not NUL-terminated"},
    };
    for (size_t k = 0; k < sizeof rows / sizeof *rows; k++) {
        copy_file(P("rt.h5"), P("row.h5"));
        patch_row(P("row.h5"), rows[k].row, rows[k].fn);
        tap_ok(open_msg(P("row.h5"), msg, sizeof msg) < 0 && strstr(msg, rows[k].want), "%s",
               msg);
    }

    /* truncated */
    void *b;
    size_t n;
    avsr_error err = {0};
    avsr_file_read_all(P("rt.h5"), &b, &n, &err);
    write_file(P("trunc.h5"), b, n / 2);
    tap_ok(open_msg(P("trunc.h5"), msg, sizeof msg) < 0 && strstr(msg, "trunc.h5: ") &&
           strstr(msg, "truncated"), "truncated file: %s", msg);
    /* flipped bit in the superblock signature */
    ((unsigned char *)b)[1] ^= 0x08;
    write_file(P("flip.h5"), b, n);
    ((unsigned char *)b)[1] ^= 0x08;
    tap_ok(open_msg(P("flip.h5"), msg, sizeof msg) < 0 && strstr(msg, "flip.h5: not a readable "
           "HDF5 file"), "bit flip in the signature: %s", msg);

    /* Sweep: one flipped bit at a time across the metadata, every 8th byte
     * of the first 2 KiB and the last 1 KiB (the middle is raw data; every
     * byte with AVSR_TEST_FULL_SWEEP=1). Each open-and-read runs in a child;
     * no child may die of a signal. */
    int crashes = 0, rejected = 0, tried = 0;
    size_t step = getenv("AVSR_TEST_FULL_SWEEP") ? 1 : 8;
    for (size_t pos = 0; pos < n; pos += step) {
        if (pos >= 2048 && pos + 1024 < n)
            continue;
        int bit = (int)(pos * 5 % 8);
        ((unsigned char *)b)[pos] ^= (unsigned char)(1 << bit);
        write_file(P("fuzz.h5"), b, n);
        ((unsigned char *)b)[pos] ^= (unsigned char)(1 << bit);
        tried++;
        pid_t pid = fork();
        if (pid == 0) {
            avsr_error e = {0};
            const char *one[] = {P("fuzz.h5")};
            avsr_pack *p = avsr_pack_open(one, 1, &e);
            if (!p)
                _exit(1);
            static uint8_t v[64 * 24 * 20];
            static int16_t a[64 * 640];
            char t[64];
            for (int64_t i = 0; i < avsr_pack_count(p); i++) {
                avsr_pack_read_video(p, i, v, &e);
                avsr_pack_read_audio(p, i, a, &e);
                avsr_pack_read_text(p, i, t, sizeof t, &e);
            }
            avsr_pack_close(p);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) {
            if (crashes++ < 5)
                tap_diag("byte %zu bit %d: child died of signal %d", pos, bit, WTERMSIG(status));
        } else if (WEXITSTATUS(status) == 1) {
            rejected++;
        }
    }
    free(b);
    tap_ok(crashes == 0, "bit-flip sweep: %d flips, %d rejected with a message, %d crashes", tried,
           rejected, crashes);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/avsr-test-pack-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp: %s", strerror(errno));
    have_ffmpeg = system("ffmpeg -version >/dev/null 2>&1") == 0;
    test_manifest();
    test_roundtrip();
    test_hostile();
    if (have_ffmpeg)
        test_decode();
    else
        tap_skip("ffmpeg program not found", "decoding tests");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!tap_failed())
        sh(cmd);
    else
        tap_diag("files kept in %s", dir);
    return tap_done();
}
