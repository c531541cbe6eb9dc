/* bench_augment: one-thread throughput of the augmentation chain
 * (datasets/augment.h) on 96x96 uint8 video + 16 kHz int16 audio.
 *
 *   /usr/bin/python3 bench/augment_torch.py > torch.txt   (optional)
 *   OMP_NUM_THREADS=1 build/bench/bench_augment torch.txt
 *
 * One run = the chain applied to 16 clips of 75 frames (3 s) + 48000
 * samples each, with a 10 s noise bank. Rows: the training chain (random
 * crop, time masks, noise at an SNR from the Auto-AVSR list, normalisation)
 * and the evaluation chain (centre crop, clean, normalisation). 5 warm-up
 * runs, then the median of 30. Throughput in video frames/s (with their
 * audio) and MB/s of input (uint8 video + int16 audio). The torch file holds
 * "name ms" lines for the same work; without it only the avsr column. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/augment.h"

#define WARM 5
#define RUNS 30
#define NCLIP 16
#define T 75
#define HW 96
#define NA (T * 640)
#define NNOISE 160000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double torch_ms(const char *file, const char *name)
{
    if (!file)
        return 0;
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char n[64];
    double ms, found = 0;
    while (fscanf(f, "%63s %lf", n, &ms) == 2)
        if (!strcmp(n, name))
            found = ms;
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    uint8_t *video = malloc((size_t)NCLIP * T * HW * HW);
    int16_t *audio = malloc((size_t)NCLIP * NA * sizeof *audio);
    float *vout = malloc((size_t)T * 88 * 88 * sizeof *vout);
    float *aout = malloc((size_t)NA * sizeof *aout);
    float *noise = malloc(NNOISE * sizeof *noise);
    if (!video || !audio || !vout || !aout || !noise)
        return 1;
    uint32_t s = 1;
    for (size_t i = 0; i < (size_t)NCLIP * T * HW * HW; i++) {
        s = s * 1664525u + 1013904223u;
        video[i] = (uint8_t)(s >> 24);
    }
    for (size_t i = 0; i < (size_t)NCLIP * NA; i++) {
        s = s * 1664525u + 1013904223u;
        audio[i] = (int16_t)((int32_t)(s >> 16) - 32768) / 8;
    }
    avsr_aug_key nk = {7, 0, 0};
    avsr_noise_pink(noise, NNOISE, &nk);
    const float *wav[1] = {noise};
    int64_t nlen[1] = {NNOISE};
    avsr_noise_bank bank = {1, wav, nlen};

    printf("| chain | clips x frames | avsr ms | frames/s | MB/s in | torch ms | torch/avsr |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int train = 1; train >= 0; train--) {
        avsr_augment_config cfg;
        avsr_augment_config_default(&cfg, train);
        double t[RUNS];
        uint64_t id = 0;
        for (int r = 0; r < WARM + RUNS; r++) {
            double t0 = now_ms();
            for (int c = 0; c < NCLIP; c++) {
                avsr_aug_key k = {42, 1, id++};
                avsr_error err = {0};
                if (avsr_augment_sample(&cfg, &k, video + (size_t)c * T * HW * HW, T, HW, HW, vout,
                                        audio + (size_t)c * NA, NA, aout, &bank, NULL, &err)) {
                    fprintf(stderr, "bench_augment: %s\n", err.msg);
                    return 1;
                }
            }
            if (r >= WARM)
                t[r - WARM] = now_ms() - t0;
        }
        qsort(t, RUNS, sizeof *t, cmp_d);
        double ms = 0.5 * (t[RUNS / 2 - 1] + t[RUNS / 2]);
        double frames = (double)NCLIP * T;
        double mb = (double)NCLIP * (T * HW * HW + NA * 2) / 1e6;
        const char *name = train ? "train" : "eval";
        double tm = torch_ms(argc > 1 ? argv[1] : NULL, name);
        if (tm > 0)
            printf("| %s | %d x %d | %.2f | %.0f | %.0f | %.2f | %.2f |\n", name, NCLIP, T, ms,
                   frames / ms * 1e3, mb / ms * 1e3, tm, tm / ms);
        else
            printf("| %s | %d x %d | %.2f | %.0f | %.0f | - | - |\n", name, NCLIP, T, ms,
                   frames / ms * 1e3, mb / ms * 1e3);
    }
    free(video);
    free(audio);
    free(vout);
    free(aout);
    free(noise);
    return 0;
}
