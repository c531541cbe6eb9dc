/* lrsched: learning-rate schedules (see lrsched.h). */
#include "lrsched.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static const char *const names[AVSR_LRSCHED_TYPE_COUNT] = {
    [AVSR_LRSCHED_CONSTANT] = "constant",
    [AVSR_LRSCHED_COSINE] = "warmup_cosine",
    [AVSR_LRSCHED_TRI_STAGE] = "tri_stage",
    [AVSR_LRSCHED_EXP_EPOCH] = "exp_per_epoch",
};

const char *avsr_lrsched_type_name(avsr_lrsched_type type)
{
    return (unsigned)type < AVSR_LRSCHED_TYPE_COUNT ? names[type] : NULL;
}

int avsr_lrsched_type_parse(const char *name, avsr_lrsched_type *out, avsr_error *err)
{
    for (int i = 0; i < AVSR_LRSCHED_TYPE_COUNT; i++) {
        if (name && strcmp(name, names[i]) == 0) {
            *out = (avsr_lrsched_type)i;
            return 0;
        }
    }
    return avsr_error_set(err, AVSR_ERR_INVALID,
                          "lr schedule: unknown type '%s' (expected constant, warmup_cosine, "
                          "tri_stage or exp_per_epoch)",
                          name ? name : "(null)");
}

avsr_lrsched avsr_lrsched_defaults(avsr_lrsched_type type, double lr)
{
    avsr_lrsched s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.lr = lr;
    s.init_lr_scale = 0.01;
    s.final_lr_scale = 0.01;
    s.factor = 1.0;
    return s;
}

int avsr_lrsched_check(const avsr_lrsched *s, avsr_error *err)
{
    if (!s)
        return avsr_error_set(err, AVSR_ERR_INVALID, "lr schedule: no configuration");
    if ((unsigned)s->type >= AVSR_LRSCHED_TYPE_COUNT)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "lr schedule: unknown type %d (expected constant, warmup_cosine, "
                              "tri_stage or exp_per_epoch)",
                              (int)s->type);
    const char *tn = names[s->type];
    if (!(isfinite(s->lr) && s->lr >= 0.0))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "lr schedule %s: lr = %g: must be finite and >= 0", tn, s->lr);
    if (s->warmup_steps < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "lr schedule %s: warmup_steps = %lld: must be >= 0", tn,
                              (long long)s->warmup_steps);
    switch (s->type) {
    case AVSR_LRSCHED_CONSTANT:
        break;
    case AVSR_LRSCHED_COSINE:
        if (s->total_steps <= s->warmup_steps)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lr schedule warmup_cosine: total_steps = %lld must be greater "
                                  "than warmup_steps = %lld",
                                  (long long)s->total_steps, (long long)s->warmup_steps);
        break;
    case AVSR_LRSCHED_TRI_STAGE:
        if (s->hold_steps < 0 || s->decay_steps < 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lr schedule tri_stage: hold_steps = %lld, decay_steps = %lld: "
                                  "must be >= 0",
                                  (long long)s->hold_steps, (long long)s->decay_steps);
        if (!(s->init_lr_scale >= 0.0 && s->init_lr_scale <= 1.0))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lr schedule tri_stage: init_lr_scale = %g: must be in [0, 1]",
                                  s->init_lr_scale);
        if (!(s->final_lr_scale > 0.0 && s->final_lr_scale <= 1.0))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lr schedule tri_stage: final_lr_scale = %g: must be in (0, 1]",
                                  s->final_lr_scale);
        break;
    case AVSR_LRSCHED_EXP_EPOCH:
        if (!(isfinite(s->factor) && s->factor > 0.0))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lr schedule exp_per_epoch: factor = %g: must be finite and > 0",
                                  s->factor);
        break;
    default:
        break;
    }
    return 0;
}

/* step/w during a linear warmup from 0, else 1 */
static double warmup(int64_t step, int64_t w)
{
    return step < w ? (double)step / (double)w : 1.0;
}

double avsr_lrsched_lr(const avsr_lrsched *s, int64_t step, int64_t epoch)
{
    const double pi = 3.14159265358979323846;
    if (step < 0)
        step = 0;
    if (epoch < 0)
        epoch = 0;
    int64_t w = s->warmup_steps;
    switch (s->type) {
    case AVSR_LRSCHED_CONSTANT:
        return s->lr * warmup(step, w);
    case AVSR_LRSCHED_COSINE:
        if (step < w)
            return s->lr * (double)step / (double)w;
        if (step >= s->total_steps)
            return 0.0;
        return 0.5 * s->lr *
               (1.0 + cos(pi * (double)(step - w) / (double)(s->total_steps - w)));
    case AVSR_LRSCHED_TRI_STAGE: {
        double init = s->init_lr_scale * s->lr;
        if (step < w)
            return init + (s->lr - init) / (double)w * (double)step;
        int64_t k = step - w;
        if (k < s->hold_steps)
            return s->lr;
        k -= s->hold_steps;
        if (k <= s->decay_steps && s->decay_steps > 0)
            return s->lr * exp(log(s->final_lr_scale) / (double)s->decay_steps * (double)k);
        return s->final_lr_scale * s->lr;
    }
    case AVSR_LRSCHED_EXP_EPOCH:
        return s->lr * pow(s->factor, (double)epoch) * warmup(step, w);
    default:
        return 0.0;
    }
}
