/* bench_loader: data loader throughput (datasets/loader.h).
 *
 * Writes a packed corpus of 200 clips (96x96 random frames, 20..100 frames
 * each, tones with noise, short transcripts) and a noise pack into a
 * temporary directory, or reads the packs given on the command line, then
 * drains whole epochs through the loader (one prefetch thread, threads = 1)
 * with several augmentation settings. The consumer does nothing but
 * next/release, so the time is the loader's. Reports frames/s, input MB/s
 * (uint8 video + int16 audio read from the pack) and output MB/s (batch
 * bytes), the median of N epochs after one warm-up epoch.
 *
 *   OMP_NUM_THREADS=1 build/bench/bench_loader [--epochs N] [pack.h5 ...]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datasets/loader.h"
#include "datasets/pack_write.h"
#include "rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, const avsr_error *err)
{
    fprintf(stderr, "bench_loader: %s: %s\n", what, err->msg);
    exit(1);
}

static void write_corpus(const char *path, int n)
{
    avsr_pack_write_opts o = {AVSR_PACK_KIND_AV, 96, 96, 0, "", "bench_loader"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(path, &o, &err);
    if (!w)
        die(path, &err);
    avsr_rng r;
    avsr_rng_init(&r, 11, 0, 0, 99);
    uint8_t *v = malloc((size_t)100 * 96 * 96);
    int16_t *a = malloc((size_t)100 * 640 * sizeof *a);
    for (int i = 0; i < n; i++) {
        int64_t F = 20 + avsr_rng_below(&r, 81);
        for (int64_t j = 0; j < F * 96 * 96; j += 4) {
            uint32_t u = avsr_rng_u32(&r);
            memcpy(v + j, &u, 4);
        }
        for (int64_t j = 0; j < F * 640; j++)
            a[j] = (int16_t)lrint(5000 * sin(0.05 * (double)j * (1 + i % 7)) +
                                  300 * avsr_rng_normal(&r));
        char id[32];
        snprintf(id, sizeof id, "b%04d", i);
        const char *text = i % 2 ? "BIN BLUE AT F TWO NOW" : "PLACE RED BY A ONE SOON";
        if (avsr_pack_writer_add(w, id, "s0", v, F, a, F * 640, text, (int64_t)strlen(text),
                                 &err))
            die("add", &err);
    }
    free(v);
    free(a);
    if (avsr_pack_writer_commit(w, &err))
        die("commit", &err);
}

static void write_noise(const char *path)
{
    avsr_pack_write_opts o = {AVSR_PACK_KIND_NOISE, 0, 0, 0, "", "bench_loader"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(path, &o, &err);
    if (!w)
        die(path, &err);
    avsr_rng r;
    avsr_rng_init(&r, 12, 0, 0, 98);
    int64_t ns = 10 * 16000;
    int16_t *a = malloc((size_t)ns * sizeof *a);
    for (int i = 0; i < 3; i++) {
        for (int64_t j = 0; j < ns; j++)
            a[j] = (int16_t)lrint(2000 * avsr_rng_normal(&r));
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        if (avsr_pack_writer_add(w, id, "", NULL, 0, a, ns, "", 0, &err))
            die("add noise", &err);
    }
    free(a);
    if (avsr_pack_writer_commit(w, &err))
        die("commit noise", &err);
}

typedef struct row {
    const char *name;
    bool train, noise;
} row;

int main(int argc, char **argv)
{
    int epochs = 5;
    const char *paths[64];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (np < 64)
            paths[np++] = argv[i];
    }
    if (epochs < 1)
        epochs = 1;
    char dir[] = "/tmp/avsr-bench-loader-XXXXXX";
    char corpus[96], noise[96];
    bool tmp = np == 0;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(corpus, sizeof corpus, "%s/corpus.h5", dir);
    snprintf(noise, sizeof noise, "%s/noise.h5", dir);
    if (tmp) {
        write_corpus(corpus, 200);
        paths[np++] = corpus;
    }
    write_noise(noise);
    const char *noise_paths[1] = {noise};

    const char *omp = getenv("OMP_NUM_THREADS");
    printf("loader throughput: %d pack file(s), one prefetch thread (threads = 1), "
           "OMP_NUM_THREADS=%s, median of %d epochs after one warm-up\n\n",
           np, omp ? omp : "(unset)", epochs);
    printf("| chain | clips | frames/epoch | ms/epoch | frames/s | MB/s in | MB/s out |\n");
    printf("|---|---|---|---|---|---|---|\n");

    row rows[] = {
        {"train: crop, flip 0.5, masks, noise (file/white/pink), modality drop 0.25, clean copy",
         true, true},
        {"train: crop, masks, no noise", true, false},
        {"eval: centre crop, clean", false, false},
    };
    double train_fps = 0;
    for (size_t k = 0; k < sizeof rows / sizeof *rows; k++) {
        avsr_loader_config c;
        avsr_loader_config_default(&c, rows[k].train);
        c.paths = paths;
        c.n_paths = np;
        if (rows[k].noise) {
            c.noise_paths = noise_paths;
            c.n_noise_paths = 1;
            c.white_noise = c.pink_noise = true;
            c.gen_noise_seconds = 30;
            c.augment.flip_prob = 0.5;
            c.augment.modality_prob = 0.25;
        }
        avsr_error err = {0};
        avsr_loader *l = avsr_loader_open(&c, &err);
        if (!l)
            die("open", &err);
        double *t = malloc((size_t)(epochs + 1) * sizeof *t);
        int64_t frames = 0, bytes_out = 0, clips = 0;
        for (int e = 0; e <= epochs; e++) {
            double t0 = now();
            if (avsr_loader_start(l, (uint64_t)e, 0, 1, 0, &err))
                die("start", &err);
            avsr_batch *b;
            int rc;
            int64_t fr = 0, out = 0, cl = 0;
            while ((rc = avsr_loader_next(l, &b, &err)) == 1) {
                fr += b->frames;
                cl += b->B;
                size_t bt = (size_t)b->B * b->T;
                out += (int64_t)(bt * ((size_t)b->crop_h * b->crop_w + 640 * (b->clean ? 2 : 1)) *
                                 sizeof(float));
                avsr_batch_release(b);
            }
            if (rc < 0)
                die("next", &err);
            t[e] = now() - t0;
            frames = fr;
            bytes_out = out;
            clips = cl;
        }
        qsort(t + 1, (size_t)epochs, sizeof *t, cmp_d);
        double med = t[1 + epochs / 2];
        double in_mb = (double)frames * (96.0 * 96.0 + 640.0 * 2.0) / 1e6;
        printf("| %s | %" PRId64 " | %" PRId64 " | %.1f | %.0f | %.0f | %.0f |\n", rows[k].name,
               clips, frames, med * 1e3, (double)frames / med, in_mb / med,
               (double)bytes_out / 1e6 / med);
        if (k == 0)
            train_fps = (double)frames / med;
        free(t);
        avsr_loader_close(l);
    }
    printf("\nThe trainer needs the demo model's training-step consumption in frames/s "
           "(not measured here); the loader supplies %.0f frames/s on one thread with every "
           "augmentation on. A step of max_frames = 1600 takes the loader %.1f ms.\n",
           train_fps, 1600.0 / train_fps * 1e3);
    unlink(noise);
    if (tmp)
        unlink(corpus);
    rmdir(dir);
    return 0;
}
