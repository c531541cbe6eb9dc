/* test_synth: the demo corpus generator (datasets/synth, viseme,
 * media_write).
 *
 * - phoneme -> viseme mapping, GRID grammar, speaker splits;
 * - the visual stream carries information: frames rendered for each of the
 *   15 visemes by held-out speakers (their own shades and geometry, random
 *   pose, lighting, head offset and sensor noise) are classified by nearest
 *   centroid (centroids from other speakers) with accuracy > 70% (chance
 *   is 1/15 = 6.7%);
 * - p/b/m close the mouth: no dark-interior pixels for PP, and the
 *   coarticulated track reaches closure inside a bilabial;
 * - end to end: a 3-clip corpus written to a temporary directory is decoded
 *   back with libavformat/libavcodec (25 fps, frames x 640 = samples at 16
 *   kHz mono, manifests list the files, lossless video equals the rendered
 *   frames), and synthesis is deterministic. */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "datasets/media_write.h"
#include "datasets/synth.h"
#include "datasets/viseme.h"
#include "tap.h"

/* ---- mapping, grammar, speakers ----------------------------------------- */
static void test_mapping(void)
{
    static const struct {
        const char *ph;
        int vis;
    } cases[] = {
        {"p", AVSR_VIS_PP},  {"b", AVSR_VIS_PP},  {"m", AVSR_VIS_PP},  {"f", AVSR_VIS_FF},
        {"D", AVSR_VIS_TH},  {"t#", AVSR_VIS_DD}, {"N", AVSR_VIS_KK},  {"dZ", AVSR_VIS_CH},
        {"z", AVSR_VIS_SS},  {"@L", AVSR_VIS_NN}, {"r-", AVSR_VIS_RR}, {"3:", AVSR_VIS_RR},
        {"aU", AVSR_VIS_AA}, {"eI", AVSR_VIS_E},  {"i:", AVSR_VIS_IH}, {"oU", AVSR_VIS_OH},
        {"u:", AVSR_VIS_OU}, {"w", AVSR_VIS_OU},  {"_:", AVSR_VIS_SIL}, {"_", AVSR_VIS_SIL},
        {"O:3", AVSR_VIS_OH}, /* unknown variant: stripped to "O:" */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int v = avsr_viseme_from_phoneme(cases[i].ph);
        if (v != cases[i].vis) {
            tap_diag("phoneme '%s' -> %s, expected %s", cases[i].ph, avsr_viseme_name(v),
                     avsr_viseme_name(cases[i].vis));
            bad++;
        }
    }
    tap_ok(bad == 0, "viseme mapping: %zu espeak phonemes map to their classes",
           sizeof cases / sizeof cases[0]);
    tap_ok(avsr_viseme_from_phoneme(";") == -1 && avsr_viseme_from_phoneme("") == -1,
           "viseme mapping: ';' and '' keep the previous viseme");
    tap_ok(strcmp(avsr_viseme_name(AVSR_VIS_KK), "kk") == 0 && AVSR_VIS_COUNT == 15,
           "viseme names: 15 classes");
}

static int in_list(const char *w, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return 1;
    return 0;
}

static void test_grammar(void)
{
    static const char *const cmd[] = {"BIN", "LAY", "PLACE", "SET"};
    static const char *const col[] = {"BLUE", "GREEN", "RED", "WHITE"};
    static const char *const prep[] = {"AT", "BY", "IN", "WITH"};
    static const char *const dig[] = {"ZERO", "ONE", "TWO", "THREE", "FOUR",
                                      "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"};
    static const char *const adv[] = {"AGAIN", "NOW", "PLEASE", "SOON"};
    int bad = 0, letters[26] = {0};
    char text[AVSR_SYNTH_TEXT_MAX], spoken[AVSR_SYNTH_SPOKEN_MAX];
    for (int k = 0; k < 2000; k++) {
        avsr_synth_grid_sentence(7, (uint64_t)k, text, spoken);
        char w[6][16];
        if (sscanf(text, "%15s %15s %15s %15s %15s %15s", w[0], w[1], w[2], w[3], w[4], w[5]) !=
                6 ||
            !in_list(w[0], cmd, 4) || !in_list(w[1], col, 4) || !in_list(w[2], prep, 4) ||
            strlen(w[3]) != 1 || w[3][0] < 'A' || w[3][0] > 'Z' || w[3][0] == 'W' ||
            !in_list(w[4], dig, 10) || !in_list(w[5], adv, 4)) {
            if (bad++ < 3)
                tap_diag("bad sentence '%s'", text);
            continue;
        }
        letters[w[3][0] - 'A']++;
    }
    int n_letters = 0;
    for (int i = 0; i < 26; i++)
        n_letters += letters[i] > 0;
    tap_ok(bad == 0, "grammar: 2000 sentences are command colour preposition letter digit adverb");
    tap_ok(n_letters == 25 && letters['W' - 'A'] == 0, "grammar: 25 letters used, never W");
    avsr_synth_grid_sentence(7, 3, text, spoken);
    char t2[AVSR_SYNTH_TEXT_MAX], s2[AVSR_SYNTH_SPOKEN_MAX];
    avsr_synth_grid_sentence(7, 3, t2, s2);
    tap_ok(strcmp(text, t2) == 0 && strcmp(spoken, s2) == 0 && spoken[strlen(spoken) - 1] == '.',
           "grammar: deterministic per (seed, key): '%s' spoken as '%s'", text, spoken);
}

static void test_speakers(void)
{
    avsr_synth_config c0, c;
    avsr_synth_config_default(&c0);
    avsr_error err = {0};
    tap_ok(avsr_synth_config_check(&c0, &c, &err) == 0 && c.n_valid == 3 && c.n_test == 3,
           "config: default 24 speakers resolve to 3 valid, 3 test");
    avsr_synth_speaker *s = NULL;
    int n = 0;
    int rc = avsr_synth_speakers(&c, &s, &n, &err);
    tap_ok(rc == 0 && n == 28, "speakers: 24 + 4 babble");
    int count[AVSR_SPLIT_COUNT] = {0}, dup = 0;
    for (int i = 0; i < n; i++) {
        count[s[i].split]++;
        for (int j = 0; j < i; j++)
            if (strcmp(s[i].voice, s[j].voice) == 0 && s[i].pitch == s[j].pitch)
                dup++;
    }
    tap_ok(count[0] == 18 && count[1] == 3 && count[2] == 3 && count[3] == 4 && dup == 0,
           "speakers: 18/3/3/4 per split, no two share voice+variant+pitch");
    free(s);
    /* the largest pool: 264 speakers, combinations reused in pitch tiers */
    avsr_synth_config big = c0;
    big.n_speakers = 200;
    big.n_babble = 64;
    avsr_synth_config_check(&big, &c, &err);
    rc = avsr_synth_speakers(&c, &s, &n, &err);
    dup = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(s[i].voice, s[j].voice) == 0 && s[i].pitch == s[j].pitch)
                dup++;
    tap_ok(rc == 0 && n == 264 && dup == 0, "speakers: 264 speakers, all distinct");
    free(s);
    /* bad configurations */
    avsr_synth_config bad = c0;
    bad.n_speakers = 2;
    avsr_error_clear(&err);
    tap_ok(avsr_synth_config_check(&bad, &c, &err) != 0 &&
               strstr(err.msg, "speakers: got 2, expected at least 3"),
           "config: too few speakers rejected (%s)", err.msg);
    bad = c0;
    bad.n_speakers = 4;
    bad.n_valid = 2;
    bad.n_test = 2;
    avsr_error_clear(&err);
    tap_ok(avsr_synth_config_check(&bad, &c, &err) != 0 &&
               strstr(err.msg, "at least one training speaker left"),
           "config: no training speaker left rejected");
    bad = c0;
    bad.n_babble = 300;
    avsr_error_clear(&err);
    tap_ok(avsr_synth_config_check(&bad, &c, &err) != 0 && strstr(err.msg, "at most 264"),
           "config: too many speakers rejected");
}

/* ---- the visual stream carries information -------------------------------- */
#define FEAT_S 4 /* 4x4 average pooling: 24x24 features */
#define FEAT_N ((AVSR_MOUTH_W / FEAT_S) * (AVSR_MOUTH_H / FEAT_S))

/* pooled frame minus its least-squares plane (removes the lighting
 * gradient and brightness), scaled to unit variance */
static void features(const uint8_t *img, float *f)
{
    int fw = AVSR_MOUTH_W / FEAT_S, fh = AVSR_MOUTH_H / FEAT_S;
    double sz = 0, sx = 0, sy = 0, sxx = 0, syy = 0, n = FEAT_N;
    for (int i = 0; i < FEAT_N; i++) {
        int fy = i / fw, fx = i % fw;
        float acc = 0;
        for (int y = 0; y < FEAT_S; y++)
            for (int x = 0; x < FEAT_S; x++)
                acc += img[(fy * FEAT_S + y) * AVSR_MOUTH_W + fx * FEAT_S + x];
        f[i] = acc / (FEAT_S * FEAT_S);
        double cx = fx - (fw - 1) / 2.0, cy = fy - (fh - 1) / 2.0; /* centred: sums of cx, cy are 0 */
        sz += f[i];
        sx += cx * f[i];
        sy += cy * f[i];
        sxx += cx * cx;
        syy += cy * cy;
    }
    double a = sz / n, bx = sx / sxx, by = sy / syy, var = 0;
    for (int i = 0; i < FEAT_N; i++) {
        double cx = i % fw - (fw - 1) / 2.0, cy = i / fw - (fh - 1) / 2.0;
        f[i] = (float)(f[i] - (a + bx * cx + by * cy));
        var += (double)f[i] * f[i];
    }
    float inv = (float)(1.0 / sqrt(var / n + 1e-6));
    for (int i = 0; i < FEAT_N; i++)
        f[i] *= inv;
}

/* Render viseme v as speaker `spk` would show it in a clip: the speaker's
 * face, a random clip pose/lighting/noise level, a random head offset. */
static void render_sample(int v, uint64_t spk, uint64_t rep, uint8_t *img, avsr_face *face_out)
{
    avsr_face face;
    avsr_face_speaker(&face, 11, spk);
    avsr_rng r;
    avsr_rng_init(&r, 11, rep, spk * 100 + (uint64_t)v, 77);
    avsr_face_jitter(&face, &r);
    avsr_mouth m;
    avsr_viseme_mouth(v, &m);
    float dx = 1.5f * (2 * avsr_rng_uniform(&r) - 1), dy = 1.5f * (2 * avsr_rng_uniform(&r) - 1);
    avsr_mouth_render(&m, &face, dx, dy, &r, img);
    if (face_out) {
        *face_out = face;
        face_out->cx += dx;
        face_out->cy += dy;
    }
}

static void test_separability(void)
{
    enum { TRAIN_SPK = 8, TEST_SPK = 8, REPS = 3 };
    float *cent = calloc((size_t)AVSR_VIS_COUNT * FEAT_N, sizeof(float)); /* [15, FEAT_N] */
    float f[FEAT_N];
    uint8_t img[AVSR_MOUTH_W * AVSR_MOUTH_H];
    for (int v = 0; v < AVSR_VIS_COUNT; v++) {
        for (int s = 0; s < TRAIN_SPK; s++)
            for (int r = 0; r < REPS; r++) {
                render_sample(v, (uint64_t)s, (uint64_t)r, img, NULL);
                features(img, f);
                for (int i = 0; i < FEAT_N; i++)
                    cent[v * FEAT_N + i] += f[i] / (TRAIN_SPK * REPS);
            }
    }
    int correct = 0, total = 0;
    int per_class[AVSR_VIS_COUNT] = {0};
    for (int v = 0; v < AVSR_VIS_COUNT; v++)
        for (int s = 0; s < TEST_SPK; s++)
            for (int r = 0; r < REPS; r++) {
                render_sample(v, (uint64_t)(100 + s), (uint64_t)r, img, NULL);
                features(img, f);
                int best = -1;
                double bd = 1e30;
                for (int c = 0; c < AVSR_VIS_COUNT; c++) {
                    double d = 0;
                    for (int i = 0; i < FEAT_N; i++) {
                        double e = f[i] - cent[c * FEAT_N + i];
                        d += e * e;
                    }
                    if (d < bd) {
                        bd = d;
                        best = c;
                    }
                }
                total++;
                if (best == v) {
                    correct++;
                    per_class[v]++;
                }
            }
    free(cent);
    double acc = (double)correct / total;
    char line[256];
    int o = 0;
    for (int v = 0; v < AVSR_VIS_COUNT; v++)
        o += snprintf(line + o, sizeof line - (size_t)o, " %s:%d", avsr_viseme_name(v), per_class[v]);
    tap_diag("correct per class (of %d):%s", TEST_SPK * REPS, line);
    tap_ok(acc > 0.70,
           "visemes separable: nearest-centroid accuracy %.1f%% on %d frames of unseen speakers "
           "(bound 70%%, chance 6.7%%)",
           100.0 * acc, total);
}

static void test_closure(void)
{
    uint8_t img[AVSR_MOUTH_W * AVSR_MOUTH_H];
    avsr_face face;
    int worst_pp = 0, min_aa = 1 << 30;
    for (int s = 0; s < 8; s++)
        for (int r = 0; r < 3; r++) {
            render_sample(AVSR_VIS_PP, (uint64_t)s, (uint64_t)r, img, &face);
            int d = avsr_mouth_dark_pixels(img, &face, 0.5f);
            if (d > worst_pp)
                worst_pp = d;
            render_sample(AVSR_VIS_AA, (uint64_t)s, (uint64_t)r, img, &face);
            d = avsr_mouth_dark_pixels(img, &face, 0.5f);
            if (d < min_aa)
                min_aa = d;
        }
    avsr_mouth m;
    avsr_viseme_mouth(AVSR_VIS_PP, &m);
    tap_ok(m.open == 0.0f, "PP: target opening is 0");
    /* a few noise pixels may cross the threshold; an open mouth has hundreds */
    tap_ok(worst_pp <= 5 && min_aa >= 150,
           "PP renders closed: at most %d dark-interior pixels (bound 5) vs at least %d for aa",
           worst_pp, min_aa);

    /* coarticulated track: aa, then an 80 ms bilabial, then aa */
    avsr_phone ph[] = {{0, AVSR_VIS_SIL}, {100, AVSR_VIS_AA}, {300, AVSR_VIS_PP},
                       {380, AVSR_VIS_AA}, {600, AVSR_VIS_SIL}};
    avsr_mouth tr[20];
    avsr_error err = {0};
    int rc = avsr_mouth_track(ph, 5, 700, 20, 0.0f, tr, &err);
    /* frame 8 shows 340 ms, the middle of the bilabial; frame 5 shows 220 ms */
    tap_ok(rc == 0 && tr[8].open < 0.05f && tr[5].open > 0.8f,
           "track: mouth closes inside an 80 ms p/b/m (open %.3f) between open vowels (%.3f)",
           tr[8].open, tr[5].open);
    /* frames 2 and 7 show 100 and 300 ms: the sil->aa and aa->PP changes */
    tap_ok(tr[2].open > 0.2f && tr[2].open < 0.8f && tr[7].open > 0.2f && tr[7].open < 0.8f,
           "track: coarticulation: the mouth is half open at the viseme changes (%.2f, %.2f)",
           tr[2].open, tr[7].open);
    rc = avsr_mouth_track(ph, 5, 700, -1, 0.0f, tr, &err);
    tap_ok(rc != 0 && strstr(err.msg, "negative size"), "track: negative frame count rejected");
}

/* ---- decoding helpers (libavformat/libavcodec) ------------------------------- */
typedef struct decoded {
    int n_frames, w, h;
    double fps;
    uint8_t *gray; /* [n_frames, h, w] (video) */
    int64_t n_samples;
    int rate, channels;
} decoded;

static int decode_file(const char *path, int want_video, decoded *d)
{
    memset(d, 0, sizeof *d);
    AVFormatContext *fc = NULL;
    if (avformat_open_input(&fc, path, NULL, NULL) < 0)
        return -1;
    int rc = -1;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    if (avformat_find_stream_info(fc, NULL) < 0)
        goto out;
    enum AVMediaType type = want_video ? AVMEDIA_TYPE_VIDEO : AVMEDIA_TYPE_AUDIO;
    int si = av_find_best_stream(fc, type, -1, -1, NULL, 0);
    if (si < 0)
        goto out;
    AVStream *st = fc->streams[si];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    dec = avcodec_alloc_context3(codec);
    if (!dec || avcodec_parameters_to_context(dec, st->codecpar) < 0)
        goto out;
    dec->pkt_timebase = st->time_base;
    dec->thread_count = 1;
    if (avcodec_open2(dec, codec, NULL) < 0)
        goto out;
    if (want_video) {
        d->w = dec->width;
        d->h = dec->height;
        d->fps = av_q2d(st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate);
    } else {
        d->rate = dec->sample_rate;
        d->channels = dec->ch_layout.nb_channels;
    }
    int cap = 0, eof = 0;
    while (!eof) {
        int r = av_read_frame(fc, pkt);
        if (r < 0) {
            eof = 1;
            avcodec_send_packet(dec, NULL); /* drain */
        } else {
            if (pkt->stream_index != si) {
                av_packet_unref(pkt);
                continue;
            }
            avcodec_send_packet(dec, pkt);
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(dec, fr) == 0) {
            if (want_video) {
                if (d->n_frames == cap) {
                    cap = cap ? 2 * cap : 64;
                    d->gray = realloc(d->gray, (size_t)cap * (size_t)(d->w * d->h));
                }
                /* luma plane (gray8 or yuv420p) */
                for (int y = 0; y < d->h; y++)
                    memcpy(d->gray + ((size_t)d->n_frames * d->h + y) * d->w,
                           fr->data[0] + (size_t)y * fr->linesize[0], (size_t)d->w);
                d->n_frames++;
            } else {
                d->n_samples += fr->nb_samples;
            }
            av_frame_unref(fr);
        }
    }
    rc = 0;
out:
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fc);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

typedef struct row {
    char id[32], video[128], audio[128], text[64], speaker[16];
} row;

/* Read a manifest; returns the row count, -1 if the header is wrong. */
static int read_manifest(const char *path, row *rows, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    if (!fgets(line, sizeof line, f) || strcmp(line, "id,video,audio,text,speaker\n") != 0) {
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f) && n < max) {
        row *r = &rows[n];
        if (sscanf(line, "%31[^,],%127[^,],%127[^,],%63[^,],%15[^,\n]", r->id, r->video, r->audio,
                   r->text, r->speaker) == 5)
            n++;
    }
    fclose(f);
    return n;
}

static void test_end_to_end(avsr_video_format fmt)
{
    const char *ext = avsr_video_format_ext(fmt);
    if (!avsr_video_encoder_name(fmt)) {
        tap_skip("no encoder in this FFmpeg build", "end to end .%s", ext);
        return;
    }
    char base[] = "/tmp/avsr-synth-test-XXXXXX";
    if (!mkdtemp(base))
        tap_bail("mkdtemp failed");
    char dir[96];
    snprintf(dir, sizeof dir, "%s/corpus", base);
    avsr_synth_config c;
    avsr_synth_config_default(&c);
    c.seed = 5;
    c.n_speakers = 3; /* one train, one valid, one test speaker */
    c.n_babble = 1;
    c.clips_per_speaker = 1;
    c.babble_clips = 0; /* babble.csv with the header only */
    c.format = fmt;
    avsr_error err = {0};
    avsr_synth_summary sum;
    int rc = avsr_synth_corpus(dir, &c, &sum, &err);
    if (!tap_ok(rc == 0, "e2e %s: corpus of 3 clips written (%s)", ext, rc ? err.msg : "ok")) {
        nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return;
    }
    tap_ok(sum.n_clips[0] == 1 && sum.n_clips[1] == 1 && sum.n_clips[2] == 1 &&
               sum.n_clips[3] == 0,
           "e2e %s: summary counts one clip per split", ext);

    const char *splits[4] = {"train", "valid", "test", "babble"};
    row rows[4][4];
    int nrows[4];
    int ok_rows = 1;
    for (int s = 0; s < 4; s++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s.csv", dir, splits[s]);
        nrows[s] = read_manifest(p, rows[s], 4);
        if (nrows[s] != (s < 3 ? 1 : 0))
            ok_rows = 0;
    }
    tap_ok(ok_rows, "e2e %s: train/valid/test list one clip each, babble.csv only its header", ext);
    if (!ok_rows)
        goto cleanup;
    tap_ok(strcmp(rows[0][0].speaker, rows[1][0].speaker) != 0 &&
               strcmp(rows[0][0].speaker, rows[2][0].speaker) != 0 &&
               strcmp(rows[1][0].speaker, rows[2][0].speaker) != 0,
           "e2e %s: speakers differ between splits (%s, %s, %s)", ext, rows[0][0].speaker,
           rows[1][0].speaker, rows[2][0].speaker);

    avsr_synth_speaker *spk = NULL;
    int nspk = 0;
    avsr_synth_config rc_cfg;
    avsr_synth_config_check(&c, &rc_cfg, &err);
    avsr_synth_speakers(&rc_cfg, &spk, &nspk, &err);
    for (int s = 0; s < 3; s++) {
        row *r = &rows[s][0];
        char vp[256], ap[256];
        snprintf(vp, sizeof vp, "%s/%s", dir, r->video);
        snprintf(ap, sizeof ap, "%s/%s", dir, r->audio);
        int upper = 1;
        for (const char *q = r->text; *q; q++)
            if (!(*q == ' ' || (*q >= 'A' && *q <= 'Z')))
                upper = 0;
        decoded v, a;
        int rv = decode_file(vp, 1, &v), ra = decode_file(ap, 0, &a);
        tap_ok(rv == 0 && ra == 0 && upper && strstr(r->video, ext),
               "e2e %s: %s: '%s', video and audio decode", ext, r->id, r->text);
        tap_ok(v.w == 96 && v.h == 96 && fabs(v.fps - 25.0) < 1e-6 && v.n_frames > 10,
               "e2e %s: %s: %d frames of %dx%d at %.2f fps", ext, r->id, v.n_frames, v.w, v.h,
               v.fps);
        tap_ok(a.rate == 16000 && a.channels == 1 && a.n_samples == (int64_t)v.n_frames * 640,
               "e2e %s: %s: %lld samples at %d Hz, %d channel(s) = frames x 640", ext, r->id,
               (long long)a.n_samples, a.rate, a.channels);
        /* the decoded video against the frames rendered again from scratch */
        avsr_synth_clip clip;
        int found = -1;
        for (int i = 0; i < nspk; i++)
            if (strcmp(spk[i].name, r->speaker) == 0)
                found = i;
        if (found >= 0 && avsr_synth_make_clip(&rc_cfg, &spk[found], 0, &clip, &err) == 0) {
            double mad = 0;
            int same_len = clip.n_frames == v.n_frames;
            if (same_len) {
                size_t n = (size_t)v.n_frames * 96 * 96;
                for (size_t i = 0; i < n; i++)
                    mad += fabs((double)v.gray[i] - clip.video[i]);
                mad /= (double)n;
            }
            int exact = fmt == AVSR_VIDEO_MKV_FFV1;
            tap_ok(same_len && strcmp(clip.text, r->text) == 0 && (exact ? mad == 0 : mad < 4.0),
                   "e2e %s: %s: decoded frames match the re-rendered clip (mean abs diff %.3f, "
                   "%s)",
                   ext, r->id, mad, exact ? "lossless: exact" : "lossy: < 4");
            avsr_synth_clip_free(&clip);
        } else {
            tap_ok(0, "e2e %s: %s: clip re-rendered (%s)", ext, r->id, err.msg);
        }
        free(v.gray);
        free(a.gray);
    }
    free(spk);
    /* a second run into the same directory must not touch it */
    avsr_error_clear(&err);
    rc = avsr_synth_corpus(dir, &c, NULL, &err);
    tap_ok(rc != 0 && strstr(err.msg, "--force"),
           "e2e %s: existing corpus not overwritten without force (%s)", ext, err.msg);
    c.force = 1;
    avsr_error_clear(&err);
    rc = avsr_synth_corpus(dir, &c, NULL, &err);
    char p[160];
    snprintf(p, sizeof p, "%s/train.csv", dir);
    tap_ok(rc == 0 && access(p, F_OK) == 0, "e2e %s: --force replaces it", ext);
cleanup:
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The same clip after other voices have spoken is bit-identical. */
static void test_determinism(void)
{
    avsr_synth_config c0, c;
    avsr_synth_config_default(&c0);
    c0.seed = 9;
    avsr_error err = {0};
    avsr_synth_config_check(&c0, &c, &err);
    avsr_synth_speaker *spk = NULL;
    int n = 0;
    if (avsr_synth_speakers(&c, &spk, &n, &err) != 0)
        tap_bail("speakers: %s", err.msg);
    avsr_synth_clip a, b, x;
    int rc = avsr_synth_make_clip(&c, &spk[0], 3, &a, &err);
    rc |= avsr_synth_make_clip(&c, &spk[5], 1, &x, &err);
    rc |= avsr_synth_make_clip(&c, &spk[0], 3, &b, &err);
    tap_ok(rc == 0, "determinism: clips synthesised (%s)", rc ? err.msg : "ok");
    if (rc == 0) {
        tap_ok(a.n_samples == b.n_samples && a.n_frames == b.n_frames &&
                   memcmp(a.audio, b.audio, sizeof(int16_t) * (size_t)a.n_samples) == 0 &&
                   memcmp(a.video, b.video, (size_t)a.n_frames * 96 * 96) == 0,
               "determinism: clip s00_0003 identical after another voice spoke (%d frames)",
               a.n_frames);
        tap_ok(a.n_samples == (int64_t)a.n_frames * 640 && a.speech_end_ms < a.n_frames * 40,
               "clip: audio is frames x 640 samples, speech ends inside (%d ms of %d)",
               a.speech_end_ms, a.n_frames * 40);
        /* bilabials in real speech: frames at the middle of p/b/m phones of
         * 40 ms or more have a nearly closed mouth */
        int checked = 0, open_bad = 0;
        avsr_synth_clip more[14];
        avsr_synth_clip *cl[16] = {&a, &x};
        int ncl = 2;
        for (int k = 0; k < 14; k++)
            if (avsr_synth_make_clip(&c, &spk[k + 1], k, &more[ncl - 2], &err) == 0) {
                cl[ncl] = &more[ncl - 2];
                ncl++;
            }
        for (int q = 0; q < ncl; q++)
            for (int i = 0; i + 1 < cl[q]->n_phones; i++) {
                avsr_phone *ph = cl[q]->phones;
                if (ph[i].viseme != AVSR_VIS_PP || ph[i + 1].start_ms - ph[i].start_ms < 40)
                    continue;
                int mid = (ph[i].start_ms + ph[i + 1].start_ms) / 2;
                int k = mid / 40; /* frame whose time 40k+20 is nearest */
                if (abs(40 * k + 20 - mid) > 15 || k >= cl[q]->n_frames)
                    continue;
                checked++;
                if (cl[q]->mouth[k].open > 0.2f)
                    open_bad++;
            }
        tap_ok(checked >= 3 && open_bad == 0,
               "clip: mouth nearly closed (open <= 0.2) at all %d mid-bilabial frames of %d clips",
               checked, ncl);
        for (int q = 2; q < ncl; q++)
            avsr_synth_clip_free(cl[q]);
        avsr_synth_clip_free(&a);
        avsr_synth_clip_free(&b);
        avsr_synth_clip_free(&x);
    }
    avsr_error_clear(&err);
    avsr_tts_result t;
    rc = avsr_tts_speak("en-zz-nonexistent", 150, 50, 50, "hello", &t, &err);
    tap_ok(rc != 0 && strstr(err.msg, "voice 'en-zz-nonexistent' not found"),
           "tts: unknown voice rejected (%s)", err.msg);
    free(spk);
}

static void test_media_errors(void)
{
    avsr_error err = {0};
    uint8_t px[9 * 9] = {0};
    int rc = avsr_video_write("/tmp/avsr-odd.mp4", AVSR_VIDEO_MP4, px, 1, 9, 9, 25, &err);
    tap_ok(rc != 0 && strstr(err.msg, "MP4 needs even sizes"), "video: odd MP4 size rejected");
    avsr_error_clear(&err);
    int16_t s[4] = {0};
    rc = avsr_wav_write("/nonexistent-dir/x.wav", s, 4, 16000, &err);
    tap_ok(rc != 0 && strstr(err.msg, "cannot create"), "wav: unwritable path reported (%s)",
           err.msg);
    /* resampling keeps the duration */
    int16_t *in = calloc(22050, sizeof(int16_t)), *out = NULL;
    for (int i = 0; i < 22050; i++)
        in[i] = (int16_t)(8000 * sin(2 * M_PI * 440 * i / 22050.0));
    int64_t n = 0;
    avsr_error_clear(&err);
    rc = avsr_resample_s16(in, 22050, 22050, 16000, &out, &n, &err);
    tap_ok(rc == 0 && llabs(n - 16000) <= 2, "resample: 1 s at 22050 Hz -> %lld samples at 16 kHz",
           (long long)n);
    free(in);
    free(out);
}

int main(void)
{
    av_log_set_level(AV_LOG_ERROR); /* no encoder banners in the TAP log */
    test_mapping();
    test_grammar();
    test_speakers();
    test_separability();
    test_closure();
    test_media_errors();
    test_determinism();
    test_end_to_end(AVSR_VIDEO_MKV_FFV1);
    test_end_to_end(AVSR_VIDEO_MP4);
    avsr_tts_shutdown();
    return tap_done();
}
