/* lora: low-rank adapters (LoRA, Hu et al. 2021) on the linear layers of a
 * model, as HuggingFace PEFT's LoraLayer does for nn.Linear.
 *
 * A linear layer y = x W^T + b (W [out, in]) that is wrapped gets two new
 * parameters, registered in the same parameter store:
 *     <prefix>.lora_A.weight  A [r, in]   U(-1/sqrt(in), 1/sqrt(in))
 *                                          (PEFT: kaiming_uniform_(a=sqrt(5)))
 *     <prefix>.lora_B.weight  B [out, r]  zeros
 * and its forward becomes
 *     y = x W^T + b + scale * (dropout(x) A^T) B^T,   scale = alpha / r
 * (PEFT's default, use_rslora = False; dropout on the adapter input only,
 * PEFT's lora_dropout). B = 0 at the start, so a freshly wrapped model
 * computes exactly what the base model computes.
 *
 * How layers are found. Model code builds its linear layers with
 * avsr_nn_linear_init() and calls avsr_nn_linear_forward(); neither changes.
 * The struct avsr_nn_linear carries an optional adapter pointer that the
 * forward consults. To let avsr_lora_attach() reach the structs, build the
 * model between avsr_lora_track_begin() and avsr_lora_track_end(): every
 * avsr_nn_linear_init() on this thread in between is recorded in the set
 * (a pointer to the struct: the model struct must not move afterwards).
 * Linear layers built elsewhere can be added with avsr_lora_track().
 *
 *     avsr_lora *l = avsr_lora_create();
 *     avsr_lora_track_begin(l);
 *     avsr_conformer_init(&enc, p, "encoder", &cfg, err);
 *     avsr_lora_track_end(l);
 *     const char *targets[] = {"*.self_attn.linear_q", "*.self_attn.linear_v"};
 *     avsr_lora_attach(l, p, targets, 2, 8, 16.0f, 0.1f, err);
 *     avsr_params_finalize(p, err); avsr_params_init(p, seed, err);
 *     (load the pretrained base weights)
 *     avsr_lora_freeze_base(l, p);     (only lora_A / lora_B train)
 *
 * Patterns use fnmatch syntax against the layer prefix (the weight's name
 * without ".weight"); '*' also matches dots. Attaching must happen before
 * avsr_params_finalize() (the store is fixed afterwards).
 *
 * Export. avsr_lora_merge() folds every adapter into its base weight in
 * place (W += scale * B A, PEFT's merge) and switches the adapters off, so
 * the model computes the same function with plain linear layers.
 * avsr_lora_export() writes a safetensors file of the store with merged
 * weights and without any lora_A / lora_B tensor, leaving the live model
 * untouched (training can go on).
 *
 * Attention blocks (models/attention.h) register their q/k/v weights
 * directly (so they sit back to back for the fused q/k/v product) rather
 * than through avsr_nn_linear_init; avsr_mha_init reports them to
 * avsr_lora_note_linear, so a tracking region sees them like any other
 * linear, and the attention forward does not fuse q/k/v when one of them
 * has an adapter (avsr_mha_fused). avsr_lora_track_mha() records a block
 * built outside a tracking region (its linear layers and the block, whose
 * fuse_qkv avsr_lora_attach() then switches off where q, k or v got an
 * adapter). Either way, and however often a layer or block is recorded,
 * by one set or several, a linear layer gets at most one adapter: the set
 * keeps each layer once, and attach skips layers that already have one
 * (tests/test_lora.c checks this on a whole model). Likewise the
 * Conformer / decoder feed-forward runs w_1 as a plain linear plus
 * activation, not as the fused linear + activation product, when w_1 has
 * an adapter. */
#ifndef AVSR_LORA_H
#define AVSR_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "nn.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One adapter (read-only for model code). */
typedef struct avsr_lora_adapter {
    avsr_tensor *A;   /* [r, in]  "<prefix>.lora_A.weight" */
    avsr_tensor *B;   /* [out, r] "<prefix>.lora_B.weight" */
    float scale;      /* alpha / r */
    float dropout;    /* on the adapter input, training only */
    int rank;
    uint32_t purpose; /* dropout stream: a hash of the prefix */
    bool merged;      /* folded into the base weight: forward skips it */
} avsr_lora_adapter;

typedef struct avsr_lora avsr_lora;

avsr_lora *avsr_lora_create(void);
void avsr_lora_destroy(avsr_lora *l);

/* Record every avsr_nn_linear_init() of this thread in l until
 * avsr_lora_track_end(). One set tracks at a time per thread. */
void avsr_lora_track_begin(avsr_lora *l);
void avsr_lora_track_end(avsr_lora *l);
/* Record one linear layer explicitly (after its init). Returns 0, or -1
 * when out of memory. */
int avsr_lora_track(avsr_lora *l, avsr_nn_linear *m);
/* Record the linear layers of an attention block (q, k, v, out, and pos
 * when rel_pos) and the block (see above). Returns 0 or -1 (no memory). */
struct avsr_mha;
int avsr_lora_track_mha(avsr_lora *l, struct avsr_mha *m);
/* Called by avsr_nn_linear_init(): records m in the tracking set, if any. */
void avsr_lora_note_linear(avsr_nn_linear *m);

/* Wrap every tracked linear layer whose prefix matches one of the patterns
 * (and that has no adapter yet): register its lora_A / lora_B parameters
 * with their initialisation rules and set its adapter pointer. rank >= 1,
 * alpha > 0, 0 <= dropout < 1. Returns the number of layers wrapped (0 is
 * not an error), or -1 with err set. */
int avsr_lora_attach(avsr_lora *l, avsr_params *p, const char *const *patterns, int npatterns,
                     int rank, float alpha, float dropout, avsr_error *err);

/* Adapters of the set, in attach order. */
int avsr_lora_count(const avsr_lora *l);
const avsr_lora_adapter *avsr_lora_at(const avsr_lora *l, int i);
/* The base layer of adapter i. */
const avsr_nn_linear *avsr_lora_base(const avsr_lora *l, int i);
/* True if a parameter name is an adapter tensor ("*.lora_A.weight",
 * "*.lora_B.weight"). */
bool avsr_lora_is_adapter_name(const char *name);

/* Freeze everything but the adapters: requires_grad off for every
 * parameter of p, on for every lora_A / lora_B. Returns the number of
 * trainable parameters left. */
int avsr_lora_freeze_base(const avsr_lora *l, avsr_params *p);

/* Forward of a linear layer with its adapter (what avsr_nn_linear_forward
 * calls when m->lora is set): x [..., in] -> [..., out]. */
avsr_tensor *avsr_lora_linear_forward(avsr_ctx *ctx, const avsr_nn_linear *m, avsr_tensor *x);

/* dst [out, in] = W + scale * B A of adapter i (the merged weight). */
void avsr_lora_merged_weight(const avsr_lora *l, int i, float *dst);

/* Fold every adapter into its base weight in place and mark it merged (the
 * forward then runs the plain linear). Returns the number merged. */
int avsr_lora_merge(avsr_lora *l);

/* Write p to a safetensors file with every adapted weight merged and no
 * lora tensor (what PEFT's merge_and_unload + save gives). Metadata pairs
 * (key, value) may be given (nmeta pairs, NULL for none). The live weights
 * are not changed. Returns 0 or -1 with err set. */
int avsr_lora_export(const avsr_lora *l, const avsr_params *p, const char *path,
                     const char *const *meta, int nmeta, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
