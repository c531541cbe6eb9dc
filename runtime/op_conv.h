/* op_conv: convolution, transposed convolution and pooling over 1, 2 or 3
 * spatial dimensions, for the visual frontends (3D stem, ResNet-18 trunk),
 * the 1D audio frontends and the 25 -> 100 fps temporal upsampling.
 *
 * Tensors are row-major like PyTorch's default layout: an input with nsp
 * spatial dimensions is [B, C, *S] with S = [L] (1d, NCW), [H, W] (2d, NCHW)
 * or [D, H, W] (3d, NCDHW). Every op has a backward that ADDS into the
 * gradients of those inputs (x, w, b) that require grad.
 *
 * Convolutions run on oneDNN (forward, backward_data, backward_weights;
 * cached primitives). Pooling runs on oneDNN (max, average) or on an OpenMP
 * kernel (adaptive average). Parameters: a zero stride or dilation means 1,
 * zero groups means 1, so designated initialisers only name what differs:
 *     avsr_conv_params p = {.nsp = 3, .stride = {1, 2, 2}, .pad = {2, 3, 3}};
 *
 * Output sizes follow PyTorch:
 *   conv:            O = floor((S + 2*pad - dil*(K-1) - 1) / stride) + 1
 *   conv transpose:  O = (S-1)*stride - 2*pad + dil*(K-1) + out_pad + 1
 *   pooling:         O = floor((S + 2*pad - K) / stride) + 1   (ceil_mode=False)
 */
#ifndef AVSR_OP_CONV_H
#define AVSR_OP_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

typedef struct avsr_conv_params {
    int nsp;        /* spatial dimensions: 1, 2 or 3 */
    int stride[3];  /* per spatial dimension; 0 = 1 */
    int pad[3];     /* zero padding on both sides */
    int dil[3];     /* dilation; 0 = 1 */
    int out_pad[3]; /* transposed convolution only: extra size on one side */
    int groups;     /* 0 = 1; groups = C gives a depthwise convolution */
} avsr_conv_params;

/* Convolution (torch.nn.functional.conv1d/2d/3d):
 *   x [B, Cin, *S], w [Cout, Cin/groups, *K], b [Cout] or NULL
 *   -> y [B, Cout, *O].
 * Cin and Cout must be divisible by groups. Saved for backward: x, w and
 * the reordered (blocked) copies of x and w that the forward already made. */
avsr_tensor *avsr_op_conv(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                          const avsr_conv_params *p);

/* The same with one stride/pad/dilation for every spatial dimension (like
 * PyTorch's int arguments). */
avsr_tensor *avsr_op_conv1d(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                            int stride, int pad, int dil, int groups);
avsr_tensor *avsr_op_conv2d(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                            int stride, int pad, int dil, int groups);
avsr_tensor *avsr_op_conv3d(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                            int stride, int pad, int dil, int groups);

/* Transposed convolution (torch.nn.functional.conv_transpose1d/2d/3d):
 *   x [B, Cin, *S], w [Cin, Cout/groups, *K], b [Cout] or NULL
 *   -> y [B, Cout, *O].
 * out_pad[i] must be smaller than stride[i] (PyTorch also allows
 * out_pad < dil; we do not). Runs on oneDNN deconvolution. */
avsr_tensor *avsr_op_conv_transpose(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w,
                                    avsr_tensor *b, const avsr_conv_params *p);

/* Layout the convolution primitives run in: AVSR_CONV_AUTO (the measured
 * default), AVSR_CONV_PLAIN (oneDNN on our NC(D)HW directly) or
 * AVSR_CONV_BLOCKED (oneDNN chooses, we reorder). Process-wide; for tests
 * and measurements. The environment variable AVSR_CONV_LAYOUT=plain|blocked
 * sets the initial value. Returns the previous setting. */
enum { AVSR_CONV_AUTO = 0, AVSR_CONV_PLAIN = 1, AVSR_CONV_BLOCKED = 2 };
int avsr_conv_set_layout(int mode);

typedef struct avsr_pool_params {
    int nsp;                /* spatial dimensions: 1, 2 or 3 */
    int kernel[3];          /* window size, >= 1 */
    int stride[3];          /* 0 = kernel (PyTorch's default stride=None) */
    int pad[3];             /* implicit padding on both sides, <= kernel/2 */
    bool exclude_pad;       /* average pooling: count_include_pad = !exclude_pad
                               (PyTorch's default count_include_pad=True is
                               exclude_pad = false) */
} avsr_pool_params;

/* Max pooling (torch.nn.functional.max_pool1d/2d/3d, dilation 1,
 * ceil_mode False): x [B, C, *S] -> [B, C, *O]. Padding never wins the max.
 * Backward routes each output gradient to the position of its maximum
 * (oneDNN workspace saved in the arena). */
avsr_tensor *avsr_op_max_pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p);

/* Average pooling (torch.nn.functional.avg_pool1d/2d/3d, ceil_mode False). */
avsr_tensor *avsr_op_avg_pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p);

/* Adaptive average pooling (torch.nn.functional.adaptive_avg_pool1d/2d/3d):
 * x [B, C, *S] -> [B, C, *out]; output cell i along a dimension averages
 * input [floor(i*S/O), ceil((i+1)*S/O)). Any sizes, including O > S and
 * non-divisible ones. out has nsp entries. */
avsr_tensor *avsr_op_adaptive_avg_pool(avsr_ctx *ctx, avsr_tensor *x, int nsp,
                                       const int64_t *out);

/* Global average pooling: adaptive to size 1 -> [B, C, 1, ...]. */
avsr_tensor *avsr_op_global_avg_pool(avsr_ctx *ctx, avsr_tensor *x, int nsp);

#endif
