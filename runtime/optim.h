/* optim: optimizers and gradient clipping on the parameter store.
 *
 * An optimizer updates the flat parameter buffer of an avsr_params in place
 * from its flat gradient buffer, keeping its state in the store's two moment
 * buffers (avsr_params_moment 0 and 1) plus a step counter held here. Only
 * parameters with AVSR_T_REQUIRES_GRAD are touched: a frozen parameter keeps
 * its value and its moments bit for bit, and alignment padding between
 * parameters is never read or written.
 *
 * Types, each matching the PyTorch 1.13 class of the same name with default
 * flags (no amsgrad, no maximize):
 *   AVSR_OPTIM_ADAMW  torch.optim.AdamW: decoupled weight decay
 *                     p *= 1 - lr*wd, then the bias-corrected Adam step.
 *   AVSR_OPTIM_ADAM   torch.optim.Adam: L2 weight decay (g += wd*p) then the
 *                     bias-corrected Adam step.
 *   AVSR_OPTIM_SGD    torch.optim.SGD: momentum, dampening, Nesterov, L2
 *                     weight decay.
 * Moment 0 is Adam's exp_avg or SGD's momentum_buffer, moment 1 Adam's
 * exp_avg_sq. A checkpoint saves both moment buffers and the step counter
 * (avsr_optim_get_step / avsr_optim_set_step); that is the whole state.
 *
 * The step counter is global, not per parameter as in torch: a parameter
 * unfrozen in the middle of a run gets the bias correction of the global
 * step. Stages that change the trainable set create a fresh optimizer.
 *
 * Element math lives in optim_fn.h (AVSR_HD); the loops here are OpenMP over
 * fixed-size chunks of the trainable ranges. */
#ifndef AVSR_OPTIM_H
#define AVSR_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "optim_fn.h"
#include "params.h"

typedef enum avsr_optim_type {
    AVSR_OPTIM_ADAMW = 0,
    AVSR_OPTIM_ADAM = 1,
    AVSR_OPTIM_SGD = 2,
    AVSR_OPTIM_TYPE_COUNT
} avsr_optim_type;

typedef struct avsr_optim_cfg {
    avsr_optim_type type;
    double lr;           /* base (peak) learning rate, >= 0; the schedule scales
                            it and passes the result to avsr_optim_step */
    double beta1, beta2; /* Adam(W): each in [0, 1) */
    double eps;          /* Adam(W): >= 0 */
    double weight_decay; /* >= 0: decoupled for AdamW, L2 for Adam and SGD */
    double momentum;     /* SGD: >= 0 */
    double dampening;    /* SGD: in [0, 1]; must be 0 with nesterov */
    bool nesterov;       /* SGD: needs momentum > 0 and dampening 0 */
} avsr_optim_cfg;

typedef struct avsr_optim avsr_optim;

/* PyTorch's defaults for a type: lr 1e-3 (SGD has no default lr in torch;
 * 1e-2 here), betas (0.9, 0.999), eps 1e-8, weight decay 1e-2 for AdamW and
 * 0 otherwise, momentum 0, dampening 0, no Nesterov. */
avsr_optim_cfg avsr_optim_defaults(avsr_optim_type type);

/* "adamw", "adam", "sgd"; NULL for an unknown type. */
const char *avsr_optim_type_name(avsr_optim_type type);
/* Name -> type; 0 on success, -1 (message listing the names) if unknown. */
int avsr_optim_type_parse(const char *name, avsr_optim_type *out, avsr_error *err);

/* Validate cfg; 0 or -1 with a message naming the bad field and value. */
int avsr_optim_check(const avsr_optim_cfg *cfg, avsr_error *err);

/* Create an optimizer (cfg is copied); NULL with a message on a bad cfg. */
avsr_optim *avsr_optim_create(const avsr_optim_cfg *cfg, avsr_error *err);
void avsr_optim_destroy(avsr_optim *opt);
const avsr_optim_cfg *avsr_optim_config(const avsr_optim *opt);

/* One update of every trainable parameter of p with learning rate lr (the
 * scheduled value; finite, >= 0). Increments the step counter first, so the
 * first update uses t = 1 in the bias corrections, as torch does. The store
 * must be finalized. Returns 0, or -1 with a message (bad lr, no memory for
 * the moment buffers); on failure nothing is changed. */
int avsr_optim_step(avsr_optim *opt, avsr_params *p, float lr, avsr_error *err);

/* Updates done so far (restored from a checkpoint with set_step). */
int64_t avsr_optim_get_step(const avsr_optim *opt);
void avsr_optim_set_step(avsr_optim *opt, int64_t step);

/* The per-element scalars of the next Adam/AdamW step (step count + 1) at
 * learning rate lr: what avsr_optim_step uses on the CPU and what a device
 * kernel (avsr_cuda_adam) is given, so both run the same update. */
int avsr_optim_adam_consts(const avsr_optim *opt, float lr, avsr_adam_consts *k, avsr_error *err);

/* Global-norm gradient clipping over the trainable parameters, as
 * torch.nn.utils.clip_grad_norm_(params, max_norm) (norm_type 2):
 *   norm = sqrt(sum of g^2) over trainable elements (accumulated in double,
 *          in a fixed order: the result does not depend on the thread count)
 *   coef = max_norm / (norm + 1e-6); if coef < 1, every trainable g *= coef.
 * max_norm <= 0 (or not finite) disables clipping: the norm is only measured.
 * *norm_out (may be NULL) receives the norm before clipping.
 * Returns 1 if the norm is not finite (NaN or inf: the gradients are left
 * untouched and the trainer should skip the step), else 0. */
int avsr_optim_clip_grad_norm(avsr_params *p, float max_norm, double *norm_out);

#endif
