/* op_shape: element-wise arithmetic with broadcasting, shape ops (concat,
 * split, slice, pad, permute), reductions along one dimension, masked fill,
 * and the positional encodings and relative shift of Transformer/Conformer
 * attention.
 *
 * All tensors are contiguous row-major f32 (masks may also be U8, BOOL, I32
 * or I64). Ops that reorder data (permute, transpose, slice with a step)
 * copy. Every op returns a new arena tensor, or NULL with the context's
 * sticky error set; in grad mode it records a backward that ADDS into the
 * gradients of those inputs that require grad.
 *
 * Dimensions `dim` may be negative (counted from the end, as in Python).
 *
 * Broadcasting (add, sub, mul, div, masked_fill) follows numpy/PyTorch:
 * shapes are aligned at their trailing dimensions, missing leading
 * dimensions count as 1, and a dimension of 1 stretches to the other
 * operand's size; either operand may broadcast. Backward sums the gradient
 * over the broadcast dimensions (PyTorch's sum_to_size). */
#ifndef AVSR_OP_SHAPE_H
#define AVSR_OP_SHAPE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

/* ---- arithmetic (op_arith.c) ------------------------------------------ */

/* a + b, a - b, a * b, a / b with broadcasting; the output has the
 * broadcast shape. torch.add / sub / mul / div. */
avsr_tensor *avsr_op_add(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b);
avsr_tensor *avsr_op_sub(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b);
avsr_tensor *avsr_op_mul(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b);
avsr_tensor *avsr_op_div(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b);

/* x * s and x + s for a constant s (x * s, x + s in PyTorch). */
avsr_tensor *avsr_op_scale(avsr_ctx *ctx, avsr_tensor *x, float s);
avsr_tensor *avsr_op_add_scalar(avsr_ctx *ctx, avsr_tensor *x, float s);

/* alpha * a + beta * b for a and b of the same shape (residual
 * connections such as x + 0.5 * ffn(x)). */
avsr_tensor *avsr_op_axpby(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b, float alpha,
                           float beta);

/* x with the positions where mask != 0 set to value; mask broadcasts to
 * x's shape (not the other way round). Filled positions pass no gradient.
 * x.masked_fill(mask.bool(), value). */
avsr_tensor *avsr_op_masked_fill(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask, float value);

/* ---- shape ops (op_shape.c) ------------------------------------------- */

/* Concatenate n >= 1 tensors along dim; all other dimensions must agree.
 * Inputs that do not require grad receive none. torch.cat(xs, dim). */
avsr_tensor *avsr_op_concat(avsr_ctx *ctx, int n, avsr_tensor **xs, int dim);

/* Split x along dim into n pieces of sizes[0..n-1] (which must sum to
 * x.shape[dim]); outs[k] receives piece k. Returns 0, or -1 with the error
 * set (outs are then NULL). torch.split(x, sizes, dim). */
int avsr_op_split(avsr_ctx *ctx, avsr_tensor *x, int dim, int n, const int64_t *sizes,
                  avsr_tensor **outs);

/* x[..., start:end:step, ...] along dim: Python slice rules (negative
 * start/end count from the end, out-of-range values clamp, an empty range
 * gives a zero-size dimension); step >= 1. Always copies. */
avsr_tensor *avsr_op_slice(avsr_ctx *ctx, avsr_tensor *x, int dim, int64_t start, int64_t end,
                           int64_t step);

/* Constant padding along one dim: `before` values in front, `after` behind
 * (both >= 0). F.pad with a pad pair for that dim, mode "constant". */
avsr_tensor *avsr_op_pad(avsr_ctx *ctx, avsr_tensor *x, int dim, int64_t before, int64_t after,
                         float value);

/* out.shape[i] = x.shape[perm[i]] (perm has x->ndim entries, a
 * permutation of 0..ndim-1; no negative entries). Copies; the swap of the
 * two innermost dimensions runs as a tiled transpose. x.permute(perm). */
avsr_tensor *avsr_op_permute(avsr_ctx *ctx, avsr_tensor *x, const int *perm);
/* Swap two dimensions (copies). x.transpose(d0, d1). */
avsr_tensor *avsr_op_transpose(avsr_ctx *ctx, avsr_tensor *x, int d0, int d1);

/* Sum / mean along one dimension; keepdim keeps it with size 1, otherwise
 * it is removed (a 1-D input then gives a 0-D tensor of one element).
 * Accumulates in double. x.sum(dim, keepdim), x.mean(dim, keepdim). */
avsr_tensor *avsr_op_sum(avsr_ctx *ctx, avsr_tensor *x, int dim, bool keepdim);
avsr_tensor *avsr_op_mean(avsr_ctx *ctx, avsr_tensor *x, int dim, bool keepdim);

/* ---- positional encodings (no gradient) --------------------------------- */

/* [T, D] absolute sinusoidal encoding of ESPnet's PositionalEncoding / the
 * Transformer paper (D even): pe[t, 2i] = sin(t * w_i), pe[t, 2i+1] =
 * cos(t * w_i), w_i = exp(2i * -(ln 10000 / D)). */
avsr_tensor *avsr_op_sinusoid_positions(avsr_ctx *ctx, int64_t T, int64_t D);

/* [2T-1, D] relative encoding of ESPnet's RelPositionalEncoding ("latest"
 * rel_pos_type, used by Conformer's RelPositionMultiHeadedAttention):
 * row r holds the interleaved sin/cos encoding of relative position
 * T-1-r, i.e. positions T-1, ..., 1, 0, -1, ..., -(T-1). D even. */
avsr_tensor *avsr_op_rel_positions(avsr_ctx *ctx, int64_t T, int64_t D);

/* [T, D] Whisper encoder sinusoids (D even, D >= 4): [sin(t * v_i) |
 * cos(t * v_i)] halves, v_i = exp(-(ln 10000 / (D/2 - 1)) * i). */
avsr_tensor *avsr_op_whisper_positions(avsr_ctx *ctx, int64_t T, int64_t D);

/* ---- relative-position attention ---------------------------------------- */

/* ESPnet "latest" rel_shift of relative attention scores:
 * x [B, H, T, 2T-1] -> [B, H, T, T] with out[b, h, i, j] =
 * x[b, h, i, T-1-i+j] (the pad-a-zero-column, reshape, drop-a-row trick,
 * done by index arithmetic). */
avsr_tensor *avsr_op_rel_shift(avsr_ctx *ctx, avsr_tensor *x);

#endif
