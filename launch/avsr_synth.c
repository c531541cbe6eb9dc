/* avsr-synth: write the embedded demo corpus (GRID-like sentences spoken by
 * espeak-ng voices, with a mouth video rendered from the phoneme timings).
 * See docs/tools/avsr-synth.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavutil/log.h>

#include "datasets/synth.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: avsr-synth -o DIR [options]\n"
            "\n"
            "Write the demo corpus into DIR: media/<speaker>/<id>.{mkv|mp4,wav}, speakers.csv\n"
            "and the manifests train.csv, valid.csv, test.csv, babble.csv\n"
            "(id,video,audio,text,speaker; paths relative to DIR).\n"
            "\n"
            "options:\n"
            "  -o, --output DIR          output directory (must not exist, or be empty)\n"
            "      --seed N              random seed (default 1); same seed, same corpus\n"
            "      --format mkv|mp4      mkv: lossless FFV1 (default); mp4: H.264 (libx264)\n"
            "                            or MPEG-4 part 2 if this FFmpeg has no libx264\n"
            "      --speakers N          train+valid+test speakers (default 24)\n"
            "      --valid-speakers N    held-out validation speakers (default max(1, N/8))\n"
            "      --test-speakers N     held-out test speakers (default max(1, N/8))\n"
            "      --babble-speakers N   further held-out speakers for babble.csv (default 4)\n"
            "      --clips-per-speaker N clips per speaker (default 20)\n"
            "      --babble-clips N      clips per babble speaker (default: clips per speaker)\n"
            "      --hours H             size by duration instead: clips per speaker for about\n"
            "                            H hours of train+valid+test audio (%.1f s per clip)\n"
            "      --force               replace an existing corpus in DIR\n"
            "  -q, --quiet               no progress on stderr\n"
            "  -h, --help                this text\n"
            "\n"
            "Threads: OMP_NUM_THREADS (speech synthesis itself is serial).\n",
            AVSR_SYNTH_MEAN_CLIP_S);
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "avsr-synth: %s: got '%s', expected an integer in %d..%d\n", opt, s, lo,
                hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

typedef struct progress_state {
    int quiet;
    int last_pct;
    struct timespec t0;
} progress_state;

static double elapsed(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void on_progress(void *user, int done, int total)
{
    progress_state *p = user;
    if (p->quiet)
        return;
    int pct = (int)(100LL * done / total);
    if (pct / 10 != p->last_pct / 10 || done == total) {
        fprintf(stderr, "avsr-synth: %d/%d clips (%d%%, %.1f s)\n", done, total, pct,
                elapsed(&p->t0));
        p->last_pct = pct;
    }
}

int main(int argc, char **argv)
{
    enum { O_SEED = 256, O_FORMAT, O_SPK, O_VALID, O_TEST, O_BABBLE, O_CLIPS, O_BCLIPS, O_HOURS,
           O_FORCE };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, O_SEED},
        {"format", required_argument, NULL, O_FORMAT},
        {"speakers", required_argument, NULL, O_SPK},
        {"valid-speakers", required_argument, NULL, O_VALID},
        {"test-speakers", required_argument, NULL, O_TEST},
        {"babble-speakers", required_argument, NULL, O_BABBLE},
        {"clips-per-speaker", required_argument, NULL, O_CLIPS},
        {"babble-clips", required_argument, NULL, O_BCLIPS},
        {"hours", required_argument, NULL, O_HOURS},
        {"force", no_argument, NULL, O_FORCE},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    avsr_synth_config cfg;
    avsr_synth_config_default(&cfg);
    const char *outdir = NULL;
    double hours = -1.0;
    int clips_given = 0, quiet = 0, opt;
    while ((opt = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o': outdir = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "avsr-synth: --seed: got '%s', expected a non-negative integer\n",
                        optarg);
                return 2;
            }
            cfg.seed = v;
            break;
        }
        case O_FORMAT:
            if (strcmp(optarg, "mkv") == 0)
                cfg.format = AVSR_VIDEO_MKV_FFV1;
            else if (strcmp(optarg, "mp4") == 0)
                cfg.format = AVSR_VIDEO_MP4;
            else {
                fprintf(stderr, "avsr-synth: --format: got '%s', expected mkv or mp4\n", optarg);
                return 2;
            }
            break;
        case O_SPK:
            if (parse_int("--speakers", optarg, 3, AVSR_SYNTH_MAX_SPEAKERS, &cfg.n_speakers))
                return 2;
            break;
        case O_VALID:
            if (parse_int("--valid-speakers", optarg, 1, AVSR_SYNTH_MAX_SPEAKERS, &cfg.n_valid))
                return 2;
            break;
        case O_TEST:
            if (parse_int("--test-speakers", optarg, 1, AVSR_SYNTH_MAX_SPEAKERS, &cfg.n_test))
                return 2;
            break;
        case O_BABBLE:
            if (parse_int("--babble-speakers", optarg, 0, AVSR_SYNTH_MAX_SPEAKERS, &cfg.n_babble))
                return 2;
            break;
        case O_CLIPS:
            if (parse_int("--clips-per-speaker", optarg, 1, AVSR_SYNTH_MAX_CLIPS,
                          &cfg.clips_per_speaker))
                return 2;
            clips_given = 1;
            break;
        case O_BCLIPS:
            if (parse_int("--babble-clips", optarg, 0, AVSR_SYNTH_MAX_CLIPS, &cfg.babble_clips))
                return 2;
            break;
        case O_HOURS: {
            char *end;
            errno = 0;
            hours = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(hours > 0.0) || hours > 10000.0) {
                fprintf(stderr, "avsr-synth: --hours: got '%s', expected a number in (0, 10000]\n",
                        optarg);
                return 2;
            }
            break;
        }
        case O_FORCE: cfg.force = 1; break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "avsr-synth: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!outdir) {
        fprintf(stderr, "avsr-synth: no output directory (-o DIR)\n");
        usage(stderr);
        return 2;
    }
    if (hours > 0.0) {
        if (clips_given) {
            fprintf(stderr, "avsr-synth: give --hours or --clips-per-speaker, not both\n");
            return 2;
        }
        cfg.clips_per_speaker = avsr_synth_clips_for_hours(&cfg, hours);
    }
    avsr_error err = {0};
    avsr_synth_config resolved;
    if (avsr_synth_config_check(&cfg, &resolved, &err) != 0) {
        fprintf(stderr, "avsr-synth: %s\n", err.msg);
        return 2;
    }
    progress_state ps = {.quiet = quiet, .last_pct = -10};
    clock_gettime(CLOCK_MONOTONIC, &ps.t0);
    cfg.progress = on_progress;
    cfg.progress_user = &ps;
    if (!quiet) {
        fprintf(stderr,
                "avsr-synth: %s: seed %llu, %d speakers (%d train, %d valid, %d test) x %d clips, "
                "%d babble speakers x %d clips, video .%s (%s)\n",
                outdir, (unsigned long long)resolved.seed, resolved.n_speakers,
                resolved.n_speakers - resolved.n_valid - resolved.n_test, resolved.n_valid,
                resolved.n_test, resolved.clips_per_speaker, resolved.n_babble,
                resolved.babble_clips, avsr_video_format_ext(resolved.format),
                avsr_video_encoder_name(resolved.format) ? avsr_video_encoder_name(resolved.format)
                                                         : "no encoder");
    }
    av_log_set_level(AV_LOG_ERROR); /* no encoder banners */
    avsr_synth_summary sum;
    int rc = avsr_synth_corpus(outdir, &cfg, &sum, &err);
    avsr_tts_shutdown();
    if (rc != 0) {
        fprintf(stderr, "avsr-synth: %s\n", err.msg);
        return 1;
    }
    if (!quiet) {
        for (int s = 0; s < AVSR_SPLIT_COUNT; s++)
            fprintf(stderr, "avsr-synth:   %-6s %3d speakers %5d clips %8.1f s (%.2f h)\n",
                    avsr_synth_split_name(s), sum.n_speakers[s], sum.n_clips[s], sum.seconds[s],
                    sum.seconds[s] / 3600.0);
        fprintf(stderr, "avsr-synth: wrote %s in %.1f s (video encoder %s)\n", outdir,
                elapsed(&ps.t0), sum.encoder);
    }
    return 0;
}
