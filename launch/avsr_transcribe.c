/* avsr-transcribe: transcribe media files with a model file alone (weights,
 * configuration and vocabulary in one safetensors file). Video with audio,
 * video only or audio only: the missing modality is left out of the model
 * input (zeros in the fusion). Preprocessing is the evaluation chain of the
 * data loader (avsr_augment_sample: centre crop, normalisation).
 * docs/tools/avsr-transcribe.md. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/augment.h"
#include "datasets/decode.h"
#include "datasets/pack_format.h"
#include "dist/threads.h"
#include "eval/recognize.h"
#include "eval/sweep.h"
#include "models/model_file.h"
#include "safetensors.h"

#define PROG "avsr-transcribe"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options] MODEL.safetensors FILE [FILE ...]\n"
            "\n"
            "Transcribe media files (video with audio, video only, audio only) with a model\n"
            "file (avsr-avg output or a checkpoint's model.safetensors). Prints one line per\n"
            "file: FILE<TAB>transcript.\n"
            "\n"
            "options:\n"
            "  --json               one JSON object per file (transcript, timings, scores)\n"
            "  --modality M         auto (default: what the file has and the model takes),\n"
            "                       audio, video or audiovisual\n"
            "  --search S           attention_beam (default with a decoder), ctc_beam (default\n"
            "                       without), ctc_greedy\n"
            "  --beam N             beam size (default 40 attention, 10 CTC)\n"
            "  --ctc-weight W       attention beam: weight of the CTC score (default 0.1)\n"
            "  --length-bonus B     attention beam: score added per token (default 0)\n"
            "  --roi N              frame size the video is decoded at before the centre crop\n"
            "                       (--roi, --video-mean/std, --audio-norm: default from the\n"
            "                       model file's \"preprocess\" metadata when it has one)\n"
            "                       to the model's input size (default 96, as avsr-pack)\n"
            "  --video-mean M       pixel normalisation (default 0.421)\n"
            "  --video-std S        (default 0.165)\n"
            "  --audio-norm MODE    utterance (default) or none\n"
            "  --threads N          compute threads (default: OMP_NUM_THREADS or the cores)\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0 all files transcribed, 1 a file or the model failed (the other\n"
            "files are still transcribed), 2 bad command line.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, PROG ": %s: got '%s', expected an integer in [%d, %d]\n", opt, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, PROG ": %s: got '%s', expected a number in [%g, %g]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

typedef struct opts {
    bool json;
    int modality;     /* -1 = auto, else avsr_recipe_modality */
    int search;       /* -1 = the model's default */
    int beam;         /* 0 = default */
    double ctc_weight, length_bonus; /* NAN = default */
    int roi;
    int crop; /* model file's preprocess video_crop; 0: none recorded */
    double mean, std;
    bool audio_norm;
    int threads;
    unsigned given; /* GIVEN_* bits: set on the command line */
} opts;

enum { GIVEN_ROI = 1, GIVEN_MEAN = 2, GIVEN_STD = 4, GIVEN_ANORM = 8 };

/* Preprocessing the model was trained with: the model file's "preprocess"
 * metadata (written by avsr-worker, kept by avsr-avg) fills in what the
 * command line did not give. */
static void model_preprocess(const char *path, opts *o)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(path, &err);
    const char *text = st ? avsr_st_meta(st, "preprocess") : NULL;
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    json_t *v;
    if ((v = json_object_get(j, "video_roi")) && json_is_integer(v) && !(o->given & GIVEN_ROI))
        o->roi = (int)json_integer_value(v);
    if ((v = json_object_get(j, "video_crop")) && json_is_integer(v))
        o->crop = (int)json_integer_value(v);
    if ((v = json_object_get(j, "video_mean")) && json_is_number(v) && !(o->given & GIVEN_MEAN))
        o->mean = json_number_value(v);
    if ((v = json_object_get(j, "video_std")) && json_is_number(v) && !(o->given & GIVEN_STD))
        o->std = json_number_value(v);
    if ((v = json_object_get(j, "audio_normalize")) && json_is_boolean(v) &&
        !(o->given & GIVEN_ANORM))
        o->audio_norm = json_is_true(v);
    json_decref(j);
    avsr_st_close(st);
}

typedef struct transcript {
    avsr_recog_result r;
    const char *modality;
    int64_t frames;
    double decode_s, encode_s, search_s;
} transcript;

/* Decode, preprocess and recognise one file. */
static int transcribe(avsr_ctx *ctx, const avsr_model_file *mf, const avsr_recog_opts *ro,
                      const opts *o, const char *path, transcript *out, avsr_error *err)
{
    const avsr_model *m = mf->model;
    /* an ASR2AVSR model (fusion module) takes both streams: a missing one is
     * fed as zeros, as avsr-eval does */
    bool fm = m->cfg.use_fusion_module;
    bool mv = m->cfg.use_video || fm, ma = m->cfg.audio != AVSR_AUDIO_NONE;
    bool want_v = mv && (o->modality < 0 || o->modality != AVSR_MODALITY_AUDIO);
    bool want_a = ma && (o->modality < 0 || o->modality != AVSR_MODALITY_VIDEO);
    int forced = o->modality >= 0 ? AVSR_DECODE_REQUIRED : AVSR_DECODE_IF_PRESENT;
    avsr_decode_opts d = {o->roi, o->roi, want_v ? forced : AVSR_DECODE_SKIP,
                          want_a ? forced : AVSR_DECODE_SKIP};
    avsr_media med;
    double t0 = now_s();
    if (avsr_decode_file(path, &d, &med, err) < 0)
        return -1;
    out->decode_s = now_s() - t0;
    /* the visual frontend's input size; a fusion module takes the crop the
     * model was trained with (preprocess metadata) */
    int crop = m->cfg.use_video && m->cfg.video.roi > 0 ? m->cfg.video.roi
               : o->crop > 0                             ? o->crop
                                                         : o->roi;
    bool has_v = med.video != NULL && med.frames > 0, has_a = med.audio != NULL && med.samples > 0;
    int rc = -1;
    float *vout = NULL, *aout = NULL;
    int16_t *audio = NULL;
    if (has_v && crop > o->roi) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: --roi %d is smaller than the model's input frames (%d x %d)", path,
                       o->roi, crop, crop);
        goto out;
    }
    const int64_t spf = AVSR_PACK_SAMPLES_PER_FRAME;
    int64_t F = has_v ? med.frames : (med.samples + spf - 1) / spf;
    if (F < 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: nothing to transcribe (empty media)", path);
        goto out;
    }
    int64_t ns = F * AVSR_PACK_SAMPLES_PER_FRAME;
    if (has_a || fm) { /* cut or pad to the frames, as avsr-pack does */
        audio = calloc((size_t)ns, sizeof *audio);
        aout = malloc(sizeof *aout * (size_t)ns);
        if (!audio || !aout) {
            AVSR_NOMEM(err, sizeof *aout * (size_t)ns);
            goto out;
        }
        if (has_a)
            memcpy(audio, med.audio,
                   sizeof *audio * (size_t)(med.samples < ns ? med.samples : ns));
    }
    if ((has_v || fm) && !(vout = malloc(sizeof *vout * (size_t)F * (size_t)crop * (size_t)crop))) {
        AVSR_NOMEM(err, sizeof *vout * (size_t)F * (size_t)crop * (size_t)crop);
        goto out;
    }
    avsr_augment_config ac;
    avsr_augment_config_default(&ac, false);
    ac.crop_h = ac.crop_w = crop;
    ac.video_mean = (float)o->mean;
    ac.video_std = (float)o->std;
    ac.audio_norm = o->audio_norm;
    ac.drop_audio = fm && !has_a;
    ac.drop_video = fm && !has_v;
    avsr_aug_key key = {0, 0, 0};
    if (fm && !has_v)
        memset(vout, 0, sizeof *vout * (size_t)F * (size_t)crop * (size_t)crop);
    if (avsr_augment_sample(&ac, &key, has_v ? med.video : NULL, F, o->roi, o->roi, vout,
                            audio, has_a || fm ? ns : 0, aout, NULL, NULL, err) < 0) {
        avsr_error_prefix(err, "%s: ", path);
        goto out;
    }
    int64_t sv[4] = {1, F, crop, crop}, sa[2] = {1, ns};
    avsr_model_input in = {.B = 1, .lengths = &F};
    in.video = has_v || fm ? avsr_tensor_wrap(ctx, AVSR_F32, 4, sv, vout) : NULL;
    in.audio = has_a || fm ? avsr_tensor_wrap(ctx, AVSR_F32, 2, sa, aout) : NULL;
    avsr_recog_timing tm;
    if (avsr_recognize(ctx, m, mf->vocab, ro, &in, &out->r, &tm, err) < 0) {
        avsr_error_prefix(err, "%s: ", path);
        goto out;
    }
    out->frames = F;
    out->encode_s = tm.encode_s;
    out->search_s = tm.search_s;
    out->modality = has_v && has_a ? "audiovisual" : has_v ? "video" : "audio";
    rc = 0;
out:
    free(vout);
    free(aout);
    free(audio);
    avsr_media_free(&med);
    return rc;
}

static void print_json(const char *path, const transcript *t, const char *error)
{
    json_t *o;
    if (error)
        o = json_pack("{s:s, s:s}", "file", path, "error", error);
    else
        o = json_pack("{s:s, s:s, s:s, s:I, s:f, s:I, s:I, s:{s:f, s:f, s:f}, s:{s:f, s:f, s:f}}",
                      "file", path, "transcript", t->r.text, "modality", t->modality, "frames",
                      (json_int_t)t->frames, "seconds", (double)t->frames / AVSR_PACK_FPS,
                      "tokens", (json_int_t)t->r.n_tokens, "encoder_frames",
                      (json_int_t)t->r.frames, "timing", "decode_s", t->decode_s, "encode_s",
                      t->encode_s, "search_s", t->search_s, "score", "total", t->r.score, "ctc",
                      t->r.score_ctc, "decoder", t->r.score_dec);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
                : NULL;
    if (s)
        printf("%s\n", s);
    else
        printf("{\"file\": \"?\", \"error\": \"cannot encode the result as JSON\"}\n");
    fflush(stdout);
    free(s);
    json_decref(o);
}

int main(int argc, char **argv)
{
    enum {
        OPT_JSON = 256, OPT_MODALITY, OPT_SEARCH, OPT_BEAM, OPT_CTCW, OPT_BONUS, OPT_ROI,
        OPT_MEAN, OPT_STD, OPT_ANORM, OPT_THREADS
    };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"modality", required_argument, NULL, OPT_MODALITY},
        {"search", required_argument, NULL, OPT_SEARCH},
        {"beam", required_argument, NULL, OPT_BEAM},
        {"ctc-weight", required_argument, NULL, OPT_CTCW},
        {"length-bonus", required_argument, NULL, OPT_BONUS},
        {"roi", required_argument, NULL, OPT_ROI},
        {"video-mean", required_argument, NULL, OPT_MEAN},
        {"video-std", required_argument, NULL, OPT_STD},
        {"audio-norm", required_argument, NULL, OPT_ANORM},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    opts o = {false, -1, -1, 0, NAN, NAN, AVSR_PACK_DEFAULT_ROI, 0, AVSR_PACK_VIDEO_MEAN,
              AVSR_PACK_VIDEO_STD, true, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: o.json = true; break;
        case OPT_MODALITY:
            if (strcmp(optarg, "auto") == 0) {
                o.modality = -1;
            } else if ((o.modality = avsr_eval_modality_parse(optarg)) < 0) {
                fprintf(stderr, PROG ": --modality: got '%s', expected auto, audio, video or "
                                "audiovisual\n", optarg);
                return 2;
            }
            break;
        case OPT_SEARCH:
            if ((o.search = avsr_recog_search_parse(optarg)) < 0) {
                fprintf(stderr, PROG ": --search: got '%s', expected attention_beam, ctc_beam "
                                "or ctc_greedy\n", optarg);
                return 2;
            }
            break;
        case OPT_BEAM:
            if (parse_int("--beam", optarg, 1, 1000, &o.beam) < 0)
                return 2;
            break;
        case OPT_CTCW:
            if (parse_double("--ctc-weight", optarg, 0, 1, &o.ctc_weight) < 0)
                return 2;
            break;
        case OPT_BONUS:
            if (parse_double("--length-bonus", optarg, -100, 100, &o.length_bonus) < 0)
                return 2;
            break;
        case OPT_ROI:
            if (parse_int("--roi", optarg, 8, AVSR_PACK_MAX_ROI, &o.roi) < 0)
                return 2;
            o.given |= GIVEN_ROI;
            break;
        case OPT_MEAN:
            if (parse_double("--video-mean", optarg, -10, 10, &o.mean) < 0)
                return 2;
            o.given |= GIVEN_MEAN;
            break;
        case OPT_STD:
            if (parse_double("--video-std", optarg, 1e-6, 100, &o.std) < 0)
                return 2;
            o.given |= GIVEN_STD;
            break;
        case OPT_ANORM:
            o.given |= GIVEN_ANORM;
            if (strcmp(optarg, "utterance") == 0) {
                o.audio_norm = true;
            } else if (strcmp(optarg, "none") == 0) {
                o.audio_norm = false;
            } else {
                fprintf(stderr, PROG ": --audio-norm: got '%s', expected utterance or none\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_THREADS:
            if (parse_int("--threads", optarg, 1, 4096, &o.threads) < 0)
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind < 2) {
        fprintf(stderr, PROG ": give a model file and at least one media file\n");
        usage(stderr);
        return 2;
    }
    const char *model = argv[optind];
    avsr_error err = {0};
    if (o.threads == 0) {
        avsr_threads_choice tc;
        avsr_error terr = {0};
        o.threads = avsr_threads_resolve("auto", 1, &tc, &terr) == 0 ? tc.threads : 1;
    }
    avsr_ctx_opts co = {o.threads, 0, AVSR_DEV_CPU};
    avsr_ctx *ctx = avsr_ctx_create(&co, &err);
    if (!ctx) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    avsr_model_file mf;
    if (avsr_model_file_load(model, &mf, &err) < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        avsr_ctx_destroy(ctx);
        return 1;
    }
    model_preprocess(model, &o);
    avsr_recog_opts ro;
    avsr_recog_opts_default(&ro, mf.model);
    if (o.search >= 0)
        ro.search = (avsr_recipe_search_kind)o.search;
    if (o.beam > 0)
        ro.att.beam = ro.ctc.beam = o.beam;
    if (!isnan(o.ctc_weight))
        ro.att.ctc_weight = o.ctc_weight;
    if (!isnan(o.length_bonus))
        ro.att.length_bonus = o.length_bonus;
    if (ro.att.beam > mf.model->cfg.vocab)
        ro.att.beam = (int)mf.model->cfg.vocab;
    int status = 0;
    bool mv = mf.model->cfg.use_video, ma = mf.model->cfg.audio != AVSR_AUDIO_NONE;
    if (o.modality >= 0 && ((o.modality != AVSR_MODALITY_AUDIO && !mv) ||
                            (o.modality != AVSR_MODALITY_VIDEO && !ma))) {
        fprintf(stderr, PROG ": --modality %s: the model (%s) takes %s only\n",
                avsr_eval_modality_name(o.modality), model, mv ? "video" : "audio");
        status = 2;
    } else if (avsr_recog_opts_check(&ro, mf.model, &err) < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        status = 2;
    }
    for (int i = optind + 1; status != 2 && i < argc; i++) {
        transcript t;
        memset(&t, 0, sizeof t);
        avsr_error_clear(&err);
        if (transcribe(ctx, &mf, &ro, &o, argv[i], &t, &err) < 0) {
            fprintf(stderr, PROG ": %s\n", err.msg);
            if (o.json)
                print_json(argv[i], NULL, err.msg);
            status = 1;
            continue;
        }
        if (o.json) {
            print_json(argv[i], &t, NULL);
        } else {
            printf("%s\t%s\n", argv[i], t.r.text);
            fflush(stdout);
        }
        avsr_recog_results_free(&t.r, 1);
    }
    avsr_model_file_free(&mf);
    avsr_ctx_destroy(ctx);
    return status;
}
