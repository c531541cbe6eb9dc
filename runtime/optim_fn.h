/* optim_fn: per-element optimizer updates shared by the CPU and CUDA backends.
 *
 * These follow torch 1.13's single-tensor code paths operation by operation
 * (torch/optim/adam.py, adamw.py, sgd.py), so that a few steps agree with
 * PyTorch to within float rounding. Step-dependent scalars (bias corrections,
 * step size, decay factor) are computed once per step in double on the host,
 * as Python does, and passed in as floats.
 *
 * The CPU optimizer (optim.c) and the CUDA kernel (cuda/cuda_kernels.cu)
 * both call avsr_fn_adam with the same avsr_adam_consts, computed once per
 * step on the host by avsr_optim_adam_consts(). */
#ifndef AVSR_OPTIM_FN_H
#define AVSR_OPTIM_FN_H

#include "mathfn.h"

/* The per-step scalars of an Adam/AdamW update (see avsr_fn_adam). */
typedef struct avsr_adam_consts {
    float l2, decay, b1, omb1, b2, omb2, eps, step_size, bc2_sqrt;
} avsr_adam_consts;

/* Adam / AdamW update of one element.
 *   l2        L2 weight decay added to the gradient (Adam; 0 for AdamW)
 *   decay     1 - lr * weight_decay (AdamW, decoupled; 1 for Adam)
 *   b1, omb1  beta1 and 1 - beta1 (the latter rounded from double)
 *   b2, omb2  beta2 and 1 - beta2
 *   step_size lr / (1 - beta1^t)
 *   bc2_sqrt  sqrt(1 - beta2^t)
 * torch:  g += l2*p;  p *= decay;  m = m*b1 + omb1*g;  v = v*b2 + omb2*g*g;
 *         p += -step_size * m / (sqrt(v)/bc2_sqrt + eps). */
AVSR_HD void avsr_fn_adam(float *p, float *m, float *v, float g, float l2, float decay, float b1,
                          float omb1, float b2, float omb2, float eps, float step_size,
                          float bc2_sqrt)
{
    float x = *p;
    g = g + l2 * x;
    x = x * decay;
    float mm = *m * b1 + omb1 * g;
    float vv = *v * b2 + omb2 * (g * g);
    float denom = sqrtf(vv) / bc2_sqrt + eps;
    *m = mm;
    *v = vv;
    *p = x + (-step_size) * (mm / denom);
}

/* avsr_fn_adam with the scalars taken from k. */
AVSR_HD void avsr_fn_adam_k(float *p, float *m, float *v, float g, const avsr_adam_consts *k)
{
    avsr_fn_adam(p, m, v, g, k->l2, k->decay, k->b1, k->omb1, k->b2, k->omb2, k->eps,
                 k->step_size, k->bc2_sqrt);
}

/* SGD with momentum, as torch.optim.SGD:
 *   d = g + wd*p
 *   buf = first ? d : mu*buf + (1 - dampening)*d      (only when mu != 0)
 *   d = nesterov ? d + mu*buf : buf                   (only when mu != 0)
 *   p += -lr * d
 * omd = 1 - dampening. `first` is the step on which torch creates the
 * momentum buffer as a copy of d. */
AVSR_HD void avsr_fn_sgd_step(float *p, float *buf, float g, float lr, float mu, float omd,
                              float wd, int nesterov, int first)
{
    float x = *p;
    float d = g + wd * x;
    if (mu != 0.0f) {
        float b = first ? d : *buf * mu + omd * d;
        *buf = b;
        d = nesterov ? d + mu * b : b;
    }
    *p = x + (-lr) * d;
}

#endif
