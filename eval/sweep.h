/* sweep: evaluation points (modality x noise x SNR) and running one point
 * over the test set, sharded over MPI ranks.
 *
 * A point is written MODALITY:NOISE:SNR on the command line
 * ("audio:babble:5", "video:none:clean") and MODALITY-NOISE-SNR in file
 * names ("audio-babble-5", "audiovisual-white--5"):
 *   MODALITY  audio (video zeroed), video (audio zeroed), audiovisual;
 *   NOISE     none, babble, white, pink, file (the recipe's noise corpora);
 *   SNR       clean, or a number of dB in [-100, 100] (written with %g).
 * Noise "none" goes with "clean" and only with it; a video-only point is
 * always video:none:clean (the noise is added to the audio, which a
 * video-only point does not use).
 *
 * The sweep of a recipe (avsr_eval_sweep_points), in this order: for each
 * modality of eval.sweep.modalities, video gives its one point; audio and
 * audiovisual give MODALITY:none:clean when the SNR list holds `clean`,
 * then MODALITY:NOISE:SNR for each noise type of eval.sweep.noise and each
 * finite SNR of eval.sweep.snr_db, in the recipe's order (a repeated
 * point is listed once).
 *
 * Running a point (avsr_eval_run_point): the evaluation loader
 * (datasets/loader.h) cuts the test shards into batches in clip order and
 * gives batch b to rank b mod world; each utterance gets the point's noise
 * at the point's SNR, with the noise segment and offset drawn from the key
 * (seed, epoch 0, clip index), so the audio of an utterance is the same on
 * every run, for every world size, and at the same SNR for every modality.
 * The missing modality of an audio-only or video-only point is left out of
 * the model input (zeros in the fusion). Each rank recognises its batches
 * (eval/recognize.h); rank 0 gathers the hypotheses, reads ids and
 * reference transcripts from the shards and scores the corpus
 * (eval/score.h, normalised). docs/eval/sweep.md. */
#ifndef AVSR_EVAL_SWEEP_H
#define AVSR_EVAL_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "datasets/augment.h"
#include "datasets/sampler.h"
#include "dist/comm.h"
#include "error.h"
#include "eval/recognize.h"
#include "eval/score.h"
#include "models/model_file.h"
#include "train/recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_eval_point {
    avsr_recipe_modality modality;
    int noise;      /* enum avsr_noise_type (datasets/loader.h) */
    double snr_db;  /* INFINITY = clean */
} avsr_eval_point;

#define AVSR_EVAL_POINT_NAME_MAX 64
#define AVSR_EVAL_SNR_MIN (-100.0)
#define AVSR_EVAL_SNR_MAX 100.0

/* "audio", "video", "audiovisual"; NULL when out of range */
const char *avsr_eval_modality_name(int modality);
/* The modality of a name above, or -1. */
int avsr_eval_modality_parse(const char *name);

/* Parse "MODALITY:NOISE:SNR". Errors quote the spec and say what is
 * expected, e.g. "point 'audio:babble': expected MODALITY:NOISE:SNR (e.g.
 * audio:babble:5 or video:none:clean)". */
int avsr_eval_point_parse(const char *spec, avsr_eval_point *p, avsr_error *err);
/* Check the rules above (noise none <=> clean, video points clean, SNR range). */
int avsr_eval_point_check(const avsr_eval_point *p, avsr_error *err);
/* "audio-babble-5" (file name stem) and "audio:babble:5" (spec). */
void avsr_eval_point_name(const avsr_eval_point *p, char *buf, size_t size);
void avsr_eval_point_spec(const avsr_eval_point *p, char *buf, size_t size);
/* The SNR as written in names: "clean" or %g. */
void avsr_eval_snr_text(double snr_db, char *buf, size_t size);

/* The recipe's sweep (order above); *out malloc'd. Fails only for a sweep
 * that yields no point or out of memory. */
int avsr_eval_sweep_points(const avsr_recipe *r, avsr_eval_point **out, int *n,
                           avsr_error *err);

/* What the data side of an evaluation needs. Pointers are borrowed. */
typedef struct avsr_eval_data {
    const char *const *test;        /* test shards (kind "av") */
    int n_test;
    const char *const *noise_files; /* NOISE_FILE corpus shards */
    int n_noise_files;
    const char *const *babble_files;/* NOISE_BABBLE corpus shards */
    int n_babble_files;
    uint64_t seed;                  /* keys the noise draws */
    avsr_sampler_config sampler;    /* batching: max_frames per padded batch */
    avsr_augment_config augment;    /* the evaluation chain (crop, normalisation) */
    int loader_threads;             /* threads assembling a batch (>= 1) */
} avsr_eval_data;

/* From a loaded recipe: data.test, data.noise, run.seed, data.batching
 * (max_len 0: no utterance is left out) and the evaluation chain. */
void avsr_eval_data_from_recipe(const avsr_recipe *r, avsr_eval_data *d);

/* Is the noise type of p available in d (corpus given, or generated)? An
 * error names the recipe key that is missing ("data.noise.babble"). */
int avsr_eval_data_check_point(const avsr_eval_data *d, const avsr_eval_point *p,
                               avsr_error *err);

/* One utterance of a scored point. Texts are malloc'd. */
typedef struct avsr_eval_utt {
    int64_t clip;          /* global clip index in the test shards */
    char *id;
    char *text;            /* the recogniser's output as decoded */
    double score;          /* the search's score of it (avsr_recog_result) */
    char *ref, *hyp;       /* normalised reference and hypothesis (scored) */
    avsr_edit_counts word, chr;
} avsr_eval_utt;

typedef struct avsr_eval_result {
    avsr_eval_point point;
    int64_t n;             /* utterances scored */
    avsr_eval_utt *utt;    /* [n] in clip order */
    int64_t skipped;       /* clips without frames (not decodable) */
    avsr_score_result score;
    double audio_seconds;  /* total duration of the scored utterances */
    double wall_s;         /* wall time of the point (rank 0's view) */
    double encode_s, search_s; /* summed over ranks */
} avsr_eval_result;
void avsr_eval_result_free(avsr_eval_result *r);

/* Run point p on every rank of comm (NULL: this process alone). Every rank
 * passes the same arguments; rank 0 receives the scored result in *res
 * (other ranks: res is zeroed). A failure on any rank makes every rank
 * return: -1 on a rank that failed (err says why), -2 on the others (err:
 * "rank R failed", R being the highest failing rank). */
int avsr_eval_run_point(avsr_comm *comm, avsr_ctx *ctx, const avsr_model_file *mf,
                        const avsr_recog_opts *o, const avsr_eval_data *d,
                        const avsr_eval_point *p, avsr_eval_result *res, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
