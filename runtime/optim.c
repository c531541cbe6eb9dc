/* optim: AdamW, Adam, SGD and gradient clipping (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim_fn.h"

/* Parallelise an update over a parameter only when it is this long. */
#define OPTIM_OMP_MIN 16384

struct avsr_optim {
    avsr_optim_cfg cfg;
    int64_t step;
};

static const char *const type_names[AVSR_OPTIM_TYPE_COUNT] = {
    [AVSR_OPTIM_ADAMW] = "adamw",
    [AVSR_OPTIM_ADAM] = "adam",
    [AVSR_OPTIM_SGD] = "sgd",
};

const char *avsr_optim_type_name(avsr_optim_type type)
{
    return (unsigned)type < AVSR_OPTIM_TYPE_COUNT ? type_names[type] : NULL;
}

int avsr_optim_type_parse(const char *name, avsr_optim_type *out, avsr_error *err)
{
    for (int i = 0; i < AVSR_OPTIM_TYPE_COUNT; i++) {
        if (name && strcmp(name, type_names[i]) == 0) {
            *out = (avsr_optim_type)i;
            return 0;
        }
    }
    return avsr_error_set(err, AVSR_ERR_INVALID,
                          "optim: unknown optimizer type '%s' (expected adamw, adam or sgd)",
                          name ? name : "(null)");
}

avsr_optim_cfg avsr_optim_defaults(avsr_optim_type type)
{
    avsr_optim_cfg c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.lr = type == AVSR_OPTIM_SGD ? 1e-2 : 1e-3;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = type == AVSR_OPTIM_ADAMW ? 1e-2 : 0.0;
    return c;
}

/* x is finite and >= 0 */
static bool nonneg(double x) { return isfinite(x) && x >= 0.0; }

int avsr_optim_check(const avsr_optim_cfg *c, avsr_error *err)
{
    if (!c)
        return avsr_error_set(err, AVSR_ERR_INVALID, "optim: no configuration");
    if ((unsigned)c->type >= AVSR_OPTIM_TYPE_COUNT)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "optim: unknown optimizer type %d (expected adamw, adam or sgd)",
                              (int)c->type);
    const char *tn = type_names[c->type];
    if (!nonneg(c->lr))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "optim %s: lr = %g: must be finite and >= 0", tn, c->lr);
    if (!nonneg(c->weight_decay))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "optim %s: weight_decay = %g: must be finite and >= 0", tn,
                              c->weight_decay);
    if (c->type == AVSR_OPTIM_SGD) {
        if (!nonneg(c->momentum))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "optim sgd: momentum = %g: must be finite and >= 0",
                                  c->momentum);
        if (!(c->dampening >= 0.0 && c->dampening <= 1.0))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "optim sgd: dampening = %g: must be in [0, 1]", c->dampening);
        if (c->nesterov && (c->momentum <= 0.0 || c->dampening != 0.0))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "optim sgd: nesterov needs momentum > 0 and dampening 0 "
                                  "(got momentum %g, dampening %g)",
                                  c->momentum, c->dampening);
        return 0;
    }
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0))
        return avsr_error_set(err, AVSR_ERR_INVALID, "optim %s: beta1 = %g: must be in [0, 1)",
                              tn, c->beta1);
    if (!(c->beta2 >= 0.0 && c->beta2 < 1.0))
        return avsr_error_set(err, AVSR_ERR_INVALID, "optim %s: beta2 = %g: must be in [0, 1)",
                              tn, c->beta2);
    if (!nonneg(c->eps))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "optim %s: eps = %g: must be finite and >= 0", tn, c->eps);
    return 0;
}

avsr_optim *avsr_optim_create(const avsr_optim_cfg *cfg, avsr_error *err)
{
    if (avsr_optim_check(cfg, err) < 0)
        return NULL;
    avsr_optim *o = calloc(1, sizeof *o);
    if (!o) {
        AVSR_NOMEM(err, sizeof *o);
        return NULL;
    }
    o->cfg = *cfg;
    return o;
}

void avsr_optim_destroy(avsr_optim *opt) { free(opt); }

const avsr_optim_cfg *avsr_optim_config(const avsr_optim *opt) { return &opt->cfg; }

int64_t avsr_optim_get_step(const avsr_optim *opt) { return opt->step; }

void avsr_optim_set_step(avsr_optim *opt, int64_t step) { opt->step = step < 0 ? 0 : step; }

/* Trainable parameter i of the store: its [offset, offset + numel) range. */
static bool trainable(const avsr_params *p, int i, int64_t *off, int64_t *n)
{
    if (avsr_params_is_buffer(p, i))
        return false;
    const avsr_tensor *t = avsr_params_at(p, i);
    if (!(t->flags & AVSR_T_REQUIRES_GRAD) || t->numel == 0)
        return false;
    *off = avsr_params_offset(p, i);
    *n = t->numel;
    return true;
}

/* Step-constant scalars of an Adam(W) update, rounded as torch rounds them. */

static void adam_range(float *restrict x, float *restrict m, float *restrict v,
                       const float *restrict g, int64_t n, const avsr_adam_consts *k)
{
    const avsr_adam_consts c = *k;
#pragma omp parallel for if (n > OPTIM_OMP_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        avsr_fn_adam(&x[i], &m[i], &v[i], g[i], c.l2, c.decay, c.b1, c.omb1, c.b2, c.omb2, c.eps,
                     c.step_size, c.bc2_sqrt);
}

struct sgd_k {
    float lr, mu, omd, wd;
    int nesterov, first;
};

static void sgd_range(float *restrict x, float *restrict buf, const float *restrict g, int64_t n,
                      const struct sgd_k *k)
{
    const struct sgd_k c = *k;
    if (!buf) { /* no momentum: the buffer is never read */
#pragma omp parallel for if (n > OPTIM_OMP_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++)
            avsr_fn_sgd_step(&x[i], NULL, g[i], c.lr, 0.0f, c.omd, c.wd, 0, 0);
        return;
    }
#pragma omp parallel for if (n > OPTIM_OMP_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        avsr_fn_sgd_step(&x[i], &buf[i], g[i], c.lr, c.mu, c.omd, c.wd, c.nesterov, c.first);
}

int avsr_optim_step(avsr_optim *opt, avsr_params *p, float lr, avsr_error *err)
{
    const avsr_optim_cfg *c = &opt->cfg;
    const char *tn = type_names[c->type];
    if (!(isfinite(lr) && lr >= 0.0f))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "optim %s step: lr = %g: must be finite and >= 0", tn, (double)lr);
    float *x = avsr_params_data(p), *g = avsr_params_grad(p);
    if (!x || !g)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "optim %s step: parameter store is not finalized", tn);
    bool need_m = c->type != AVSR_OPTIM_SGD || c->momentum != 0.0;
    bool need_v = c->type != AVSR_OPTIM_SGD;
    float *m = need_m ? avsr_params_moment(p, 0, err) : NULL;
    if (need_m && !m)
        return -1;
    float *v = need_v ? avsr_params_moment(p, 1, err) : NULL;
    if (need_v && !v)
        return -1;

    int64_t t = opt->step + 1;
    int np = avsr_params_count(p);
    if (c->type == AVSR_OPTIM_SGD) {
        struct sgd_k k = {
            .lr = lr,
            .mu = (float)c->momentum,
            .omd = (float)(1.0 - c->dampening),
            .wd = (float)c->weight_decay,
            .nesterov = c->nesterov,
            .first = t == 1,
        };
        for (int i = 0; i < np; i++) {
            int64_t off, n;
            if (trainable(p, i, &off, &n))
                sgd_range(x + off, m ? m + off : NULL, g + off, n, &k);
        }
    } else {
        avsr_adam_consts k;
        if (avsr_optim_adam_consts(opt, lr, &k, err) < 0)
            return -1;
        for (int i = 0; i < np; i++) {
            int64_t off, n;
            if (trainable(p, i, &off, &n))
                adam_range(x + off, m + off, v + off, g + off, n, &k);
        }
    }
    opt->step = t;
    return 0;
}

int avsr_optim_adam_consts(const avsr_optim *opt, float lr, avsr_adam_consts *k, avsr_error *err)
{
    const avsr_optim_cfg *c = &opt->cfg;
    if (c->type == AVSR_OPTIM_SGD)
        return avsr_error_set(err, AVSR_ERR_INVALID, "optim: Adam constants of an SGD optimizer");
    int64_t t = opt->step + 1;
    /* torch: bias_correction1 = 1 - beta1**step (Python floats), ... */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    bool adamw = c->type == AVSR_OPTIM_ADAMW;
    *k = (avsr_adam_consts){
        .l2 = adamw ? 0.0f : (float)c->weight_decay,
        .decay = adamw ? (float)(1.0 - (double)lr * c->weight_decay) : 1.0f,
        .b1 = (float)c->beta1,
        .omb1 = (float)(1.0 - c->beta1),
        .b2 = (float)c->beta2,
        .omb2 = (float)(1.0 - c->beta2),
        .eps = (float)c->eps,
        .step_size = (float)((double)lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
    };
    return 0;
}

/* Sum of squares of g[0..n) in double, in a fixed order: at most SUMSQ_PARTS
 * partial sums of contiguous pieces (their number depends only on n), added
 * in order. */
#define SUMSQ_PARTS 64
#define SUMSQ_MIN_PIECE 8192

static double sumsq(const float *g, int64_t n)
{
    double part[SUMSQ_PARTS];
    int64_t piece = (n + SUMSQ_PARTS - 1) / SUMSQ_PARTS;
    if (piece < SUMSQ_MIN_PIECE)
        piece = SUMSQ_MIN_PIECE;
    int np = (int)((n + piece - 1) / piece);
#pragma omp parallel for if (np > 1) schedule(static)
    for (int c = 0; c < np; c++) {
        int64_t b = (int64_t)c * piece, e = b + piece < n ? b + piece : n;
        double s = 0.0;
        for (int64_t i = b; i < e; i++)
            s += (double)g[i] * (double)g[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < np; c++)
        s += part[c];
    return s;
}

int avsr_optim_clip_grad_norm(avsr_params *p, float max_norm, double *norm_out)
{
    float *g = avsr_params_grad(p);
    int np = avsr_params_count(p);
    double total = 0.0;
    for (int i = 0; g && i < np; i++) {
        int64_t off, n;
        if (trainable(p, i, &off, &n))
            total += sumsq(g + off, n);
    }
    double norm = sqrt(total);
    if (norm_out)
        *norm_out = norm;
    if (!isfinite(norm))
        return 1;
    if (!(max_norm > 0.0f) || !isfinite(max_norm))
        return 0;
    /* torch computes the coefficient on float32 tensors */
    float coef = max_norm / ((float)norm + 1e-6f);
    if (!(coef < 1.0f))
        return 0;
    for (int i = 0; i < np; i++) {
        int64_t off, n;
        if (!trainable(p, i, &off, &n))
            continue;
        float *gi = g + off;
#pragma omp parallel for if (n > OPTIM_OMP_MIN) schedule(static)
        for (int64_t j = 0; j < n; j++)
            gi[j] *= coef;
    }
    return 0;
}
