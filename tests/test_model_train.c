/* test_model_train: training smoke test of the assembled AV model at the
 * demo size. Eight demo-corpus utterances rendered in memory
 * (avsr_synth_make_clip: espeak-ng audio and mouth video; fixed random
 * inputs when the speech engine is not available) are overfitted with
 * AdamW by the model of recipes/demo-joint.yaml: video ResNet width 16 at ROI 88
 * (the 96x96 frames centre-cropped, as the loader does at evaluation), audio
 * ResNet1D width 16, late concat+MLP fusion (hidden 256), 4-layer Conformer
 * d=144, 1-layer decoder, char vocabulary, ctc_weight 0.3, label smoothing
 * 0.1: 4,960,082 parameters, checked equal to the count of demo-joint.yaml's
 * model section. The only changes are the regularisers, which work against
 * overfitting 8 clips: dropout 0 (encoder, decoder, CTC input) and
 * modality_dropout 0 (demo-joint.yaml: 0.1 and 0.25).
 *
 * Bound: the CTC loss (sum over the utterance, averaged over the 8) must
 * fall below 0.5 -- near zero: about 0.02 nats per character, from ~129 at
 * the start -- within MAX_STEPS = 40 AdamW steps (lr 3e-3, betas 0.9/0.98,
 * no weight decay, clip 5, all 8 clips per step). Seen: 128.7 -> 0.456 at
 * step 24 (1.44 at step 20; at constant lr it then oscillates between 0.2
 * and 0.5), about 1.2 s per step with 2 threads on an idle machine, 2 s
 * under load. The step bound is what is asserted; the wall time is printed,
 * not asserted. The attention accuracy at the end is reported. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datasets/synth.h"
#include "datasets/tokenizer.h"
#include "models/builder.h"
#include "ops.h"
#include "optim.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

#define N_CLIPS 8
#define ROI 88
#define MAX_STEPS 40
#define BOUND 0.5

/* recipes/demo-joint.yaml's model section with dropout 0 and modality_dropout 0 */
static const char *MODEL_YAML =
    "model:\n"
    "  video: {width: 16, depth: [1, 1, 1, 1], roi: 88}\n"
    "  audio: {features: wave, width: 16, depth: [1, 1, 1, 1]}\n"
    "  fusion: {type: concat_mlp, position: late, hidden: 256, modality_dropout: 0.0,"
    " audio_share: 0.5}\n"
    "  encoder: {type: conformer, layers: 4, dim: 144, heads: 4, ffn: 576, conv_kernel: 15,"
    " dropout: 0.0}\n"
    "  decoder: {layers: 1, dim: 144, heads: 4, ffn: 576, dropout: 0.0}\n"
    "  ctc_weight: 0.3\n"
    "  label_smoothing: 0.1\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct data {
    int64_t T, L;
    float *video;   /* [N, T, ROI, ROI] */
    float *audio;   /* [N, T * 640] */
    int64_t lengths[N_CLIPS], targets[N_CLIPS * 64], tlen[N_CLIPS];
    bool synth;
} data;

/* 96x96 frame -> the ROI x ROI centre crop, normalised like Auto-AVSR */
static void frame_down(const uint8_t *src, float *dst)
{
    int o = (96 - ROI) / 2;
    for (int y = 0; y < ROI; y++)
        for (int x = 0; x < ROI; x++)
            dst[y * ROI + x] = (src[(y + o) * 96 + x + o] / 255.0f - 0.421f) / 0.165f;
}

static void make_data(data *d, const avsr_vocab *voc)
{
    avsr_error err = {0};
    avsr_synth_config c, rc;
    avsr_synth_config_default(&c);
    avsr_synth_speaker *spk = NULL;
    int nspk = 0;
    avsr_synth_clip clips[N_CLIPS];
    memset(clips, 0, sizeof clips);
    d->synth = avsr_synth_config_check(&c, &rc, &err) == 0 &&
               avsr_synth_speakers(&rc, &spk, &nspk, &err) == 0;
    for (int i = 0; d->synth && i < N_CLIPS; i++)
        d->synth = avsr_synth_make_clip(&rc, &spk[i % 4], i, &clips[i], &err) == 0;
    if (!d->synth)
        tap_diag("speech synthesis unavailable (%s): fixed random utterances", err.msg);
    d->T = 0;
    for (int i = 0; i < N_CLIPS; i++) {
        int64_t t = d->synth ? clips[i].n_frames : 30 + 3 * i;
        d->lengths[i] = t;
        d->T = t > d->T ? t : d->T;
    }
    int64_t T = d->T, FS = ROI * ROI, NA = T * 640;
    d->video = calloc((size_t)(N_CLIPS * T * FS), sizeof(float));
    d->audio = calloc((size_t)(N_CLIPS * NA), sizeof(float));
    d->L = 0;
    for (int i = 0; i < N_CLIPS; i++) {
        char text[AVSR_SYNTH_TEXT_MAX], spoken[AVSR_SYNTH_SPOKEN_MAX];
        int32_t ids[64];
        if (d->synth) {
            snprintf(text, sizeof text, "%s", clips[i].text);
            for (int t = 0; t < clips[i].n_frames; t++)
                frame_down(clips[i].video + (size_t)t * 96 * 96, d->video + (i * T + t) * FS);
            /* whole-utterance normalisation (Auto-AVSR's layer_norm) */
            double s = 0, s2 = 0;
            int64_t n = clips[i].n_samples;
            for (int64_t k = 0; k < n; k++) {
                s += clips[i].audio[k];
                s2 += (double)clips[i].audio[k] * clips[i].audio[k];
            }
            double mu = s / n, sd = sqrt(fmax(s2 / n - mu * mu, 0.0) + 1e-8);
            for (int64_t k = 0; k < n; k++)
                d->audio[i * NA + k] = (float)((clips[i].audio[k] - mu) / sd);
        } else {
            avsr_synth_grid_sentence(1, (uint64_t)i, text, spoken);
            tu_fill_uniform(d->video + i * T * FS, d->lengths[i] * FS, 100 + i, -1.f, 1.f);
            tu_fill_uniform(d->audio + i * NA, d->lengths[i] * 640, 200 + i, -1.f, 1.f);
        }
        int64_t n = avsr_vocab_encode(voc, text, strlen(text), ids, 64, &err);
        if (n < 0)
            tap_bail("encode: %s", err.msg);
        d->tlen[i] = n;
        for (int64_t k = 0; k < n; k++)
            d->targets[i * 64 + k] = ids[k];
        d->L = n > d->L ? n : d->L;
        if (i == 0)
            tap_diag("clip 0: '%s', %lld frames, %lld tokens", text, (long long)d->lengths[0],
                     (long long)n);
    }
    for (int i = 0; i < N_CLIPS; i++)
        avsr_synth_clip_free(&clips[i]);
    free(spk);
}

int main(int argc, char **argv)
{
    /* OpenMP threads that spin at barriers lose most of their time when the
     * machine is shared (the test machine runs several builds at once):
     * measured 0.5 s/step with passive waiting vs 2-4 s/step spinning under
     * load. libgomp reads the policy when it is loaded, so re-run once with
     * it set unless the caller chose one. */
    (void)argc;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    avsr_error err = {0};
    avsr_vocab *voc;
    if (avsr_vocab_default(&voc, &err) < 0)
        tap_bail("vocab: %s", err.msg);
    data d;
    double t0 = now();
    make_data(&d, voc);
    tap_diag("data: %d clips, T = %lld, rendered in %.1f s (%s)", N_CLIPS, (long long)d.T,
             now() - t0, d.synth ? "espeak-ng + mouth video" : "random");

    avsr_yaml *y = avsr_yaml_load_string("smoke.yaml", MODEL_YAML, strlen(MODEL_YAML), &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (!y || avsr_model_build(y, avsr_ynode_get(avsr_yaml_root(y), "model"),
                               avsr_vocab_size(voc), &m, p, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 1, &err) < 0)
        tap_bail("build: %s", err.msg);
    tap_diag("model: %lld parameters", (long long)avsr_params_numel(p));
    /* the same sizes as recipes/demo-joint.yaml */
    avsr_yaml *dy = avsr_yaml_load_file(tu_srcpath("recipes/demo-joint.yaml"), &err);
    avsr_params *dp = avsr_params_create();
    avsr_model *dm = NULL;
    if (!dy || avsr_model_build(dy, avsr_ynode_get(avsr_yaml_root(dy), "model"),
                                avsr_vocab_size(voc), &dm, dp, &err) < 0)
        tap_bail("recipes/demo-joint.yaml: %s", err.msg);
    tap_ok(avsr_params_numel(dp) == avsr_params_numel(p) &&
               avsr_params_count(dp) == avsr_params_count(p),
           "the model has recipes/demo-joint.yaml's sizes (%lld parameters in %d tensors)",
           (long long)avsr_params_numel(dp), avsr_params_count(dp));
    avsr_model_free(dm);
    avsr_params_destroy(dp);
    avsr_yaml_free(dy);
    avsr_optim_cfg oc = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    oc.lr = 3e-3;
    oc.beta2 = 0.98;
    oc.weight_decay = 0.0;
    avsr_optim *opt = avsr_optim_create(&oc, &err);
    avsr_ctx *ctx = tu_ctx();
    if (!opt)
        tap_bail("optim: %s", err.msg);

    int64_t sv[4] = {N_CLIPS, d.T, ROI, ROI}, sa[2] = {N_CLIPS, d.T * 640};
    avsr_tensor *video = avsr_tensor_create(AVSR_F32, 4, sv, false);
    avsr_tensor *audio = avsr_tensor_create(AVSR_F32, 2, sa, false);
    memcpy(video->data, d.video, sizeof(float) * (size_t)video->numel);
    memcpy(audio->data, d.audio, sizeof(float) * (size_t)audio->numel);
    int64_t tgt[N_CLIPS * 64];
    for (int i = 0; i < N_CLIPS; i++)
        for (int64_t k = 0; k < d.L; k++)
            tgt[i * d.L + k] = k < d.tlen[i] ? d.targets[i * 64 + k] : 0;
    avsr_model_input b = {.B = N_CLIPS, .video = video, .audio = audio, .lengths = d.lengths,
                    .targets = tgt, .target_lengths = d.tlen, .max_target = d.L};

    double first = NAN, last = NAN, acc = 0, start = now();
    int step = 0;
    bool reached = false;
    for (step = 0; step < MAX_STEPS; step++) {
        avsr_ctx_set_training(ctx, true);
        avsr_ctx_set_grad(ctx, true);
        avsr_params_zero_grad(p);
        avsr_model_out o;
        if (avsr_model_forward(ctx, m, &b, &o) < 0 || avsr_backward(ctx, o.loss.total, NULL) < 0)
            tap_bail("step %d: %s", step, avsr_ctx_errmsg(ctx));
        last = avsr_f32(o.loss.ctc)[0];
        acc = o.loss.att_acc;
        if (step == 0)
            first = last;
        if (step % 4 == 0)
            tap_diag("step %3d  ctc %.3f  att %.3f  acc %.3f  (%.1f s)", step, last,
                     avsr_f32(o.loss.att)[0], acc, now() - start);
        avsr_ctx_reset(ctx);
        if (last < BOUND) {
            reached = true;
            break;
        }
        double norm;
        avsr_optim_clip_grad_norm(p, 5.0f, &norm);
        if (avsr_optim_step(opt, p, (float)oc.lr, &err) < 0)
            tap_bail("optim: %s", err.msg);
    }
    double secs = now() - start;
    tap_ok(reached, "CTC loss %.3f -> %.3f (< %.1f per utterance) after %d steps (limit %d) "
                    "in %.1f s; attention accuracy %.3f",
           first, last, BOUND, step, MAX_STEPS, secs, acc);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
    free(d.video);
    free(d.audio);
    avsr_optim_destroy(opt);
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_yaml_free(y);
    avsr_vocab_free(voc);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
