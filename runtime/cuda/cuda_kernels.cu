/* cuda_kernels: element-wise activations, AdamW and the Philox fill (see
 * cuda_backend.h). Each kernel calls the AVSR_HD function of mathfn.h or
 * rng.h that the CPU code calls, so the arithmetic is written once. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "mathfn.h"
#include "rng.h"

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20; /* grid-stride loops cover the rest */

/* Blocks for `work` items of one thread each. */
unsigned grid_for(int64_t work)
{
    int64_t b = (work + kThreads - 1) / kThreads;
    return (unsigned)(b < kMaxBlocks ? b : kMaxBlocks);
}

/* ---- activations ------------------------------------------------------- */

template <int A> __device__ __forceinline__ float act_f(float x)
{
    if constexpr (A == AVSR_CUDA_RELU)
        return avsr_fn_relu(x);
    else if constexpr (A == AVSR_CUDA_SILU)
        return avsr_fn_silu(x);
    else
        return avsr_fn_gelu(x);
}

template <int A> __device__ __forceinline__ float act_df(float x)
{
    if constexpr (A == AVSR_CUDA_RELU)
        return avsr_fn_relu_grad(x);
    else if constexpr (A == AVSR_CUDA_SILU)
        return avsr_fn_silu_grad(x);
    else
        return avsr_fn_gelu_grad(x);
}

/* y[i] = f(x[i]); [n] */
template <int A> __global__ void act_forward_kernel(float *y, const float *x, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = act_f<A>(x[i]);
}

/* gx[i] += gy[i] * f'(x[i]); [n] */
template <int A>
__global__ void act_backward_kernel(float *gx, const float *x, const float *gy, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        gx[i] += gy[i] * act_df<A>(x[i]);
}

const char *act_name(int act)
{
    switch (act) {
    case AVSR_CUDA_RELU: return "relu";
    case AVSR_CUDA_SILU: return "silu";
    case AVSR_CUDA_GELU: return "gelu";
    default: return "?";
    }
}

/* ---- Adam / AdamW ------------------------------------------------------ */

/* p, m, v updated in place from g; [n] */
__global__ void adam_kernel(float *p, float *m, float *v, const float *g, int64_t n,
                            avsr_adam_consts k)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        avsr_fn_adam_k(&p[i], &m[i], &v[i], g[i], &k);
}

/* ---- Philox ------------------------------------------------------------ */

/* One thread per Philox block: words 4b..4b+3 of the output come from block
 * (block0 + b) of the stream (key k0,k1; stream id c2,c3), exactly as
 * avsr_rng_u32 walks it on the CPU (64-bit block counter in ctr[0..1]).
 * Exactly one of u / f is non-NULL. */
__global__ void philox_kernel(uint32_t *u, float *f, int64_t n, uint32_t k0, uint32_t k1,
                              uint64_t block0, uint32_t c2, uint32_t c3)
{
    int64_t nblocks = (n + 3) / 4;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < nblocks; b += stride) {
        uint64_t blk = block0 + (uint64_t)b;
        uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), c2, c3};
        uint32_t key[2] = {k0, k1};
        uint32_t w[4];
        avsr_philox4x32(ctr, key, w);
        for (int j = 0; j < 4; j++) {
            int64_t i = 4 * b + j;
            if (i >= n)
                break;
            if (u)
                u[i] = w[j];
            else
                f[i] = avsr_rng_to_unit(w[j]);
        }
    }
}

int check_n(const char *what, int64_t n, avsr_error *err)
{
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: negative element count %lld", what,
                              (long long)n);
    return 0;
}

int philox_fill(const char *what, uint32_t *u, float *f, int64_t n, const void *rv,
                void *stream, avsr_error *err)
{
    const avsr_rng *r = (const avsr_rng *)rv;
    if (check_n(what, n, err) < 0)
        return -1;
    if (!r)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: NULL rng state", what);
    if (n == 0)
        return 0;
    if (!u && !f)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: NULL output", what);
    uint64_t block0 = (uint64_t)r->ctr[0] | ((uint64_t)r->ctr[1] << 32);
    philox_kernel<<<grid_for((n + 3) / 4), kThreads, 0, (cudaStream_t)stream>>>(
        u, f, n, r->key[0], r->key[1], block0, r->ctr[2], r->ctr[3]);
    if (AVSR_CUDA(err, cudaGetLastError()) < 0) {
        avsr_error_prefix(err, "%s: ", what);
        return -1;
    }
    return 0;
}

} /* namespace */

extern "C" int avsr_cuda_act_forward(int act, float *d_y, const float *d_x, int64_t n,
                                     void *stream, avsr_error *err)
{
    if (check_n("cuda_act_forward", n, err) < 0)
        return -1;
    if (n == 0)
        return 0;
    if (!d_y || !d_x)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_act_forward: NULL pointer");
    cudaStream_t s = (cudaStream_t)stream;
    unsigned g = grid_for(n);
    switch (act) {
    case AVSR_CUDA_RELU: act_forward_kernel<AVSR_CUDA_RELU><<<g, kThreads, 0, s>>>(d_y, d_x, n); break;
    case AVSR_CUDA_SILU: act_forward_kernel<AVSR_CUDA_SILU><<<g, kThreads, 0, s>>>(d_y, d_x, n); break;
    case AVSR_CUDA_GELU: act_forward_kernel<AVSR_CUDA_GELU><<<g, kThreads, 0, s>>>(d_y, d_x, n); break;
    default:
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_act_forward: unknown activation %d",
                              act);
    }
    if (AVSR_CUDA(err, cudaGetLastError()) < 0) {
        avsr_error_prefix(err, "cuda_act_forward(%s): ", act_name(act));
        return -1;
    }
    return 0;
}

extern "C" int avsr_cuda_act_backward(int act, float *d_gx, const float *d_x, const float *d_gy,
                                      int64_t n, void *stream, avsr_error *err)
{
    if (check_n("cuda_act_backward", n, err) < 0)
        return -1;
    if (n == 0)
        return 0;
    if (!d_gx || !d_x || !d_gy)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_act_backward: NULL pointer");
    cudaStream_t s = (cudaStream_t)stream;
    unsigned g = grid_for(n);
    switch (act) {
    case AVSR_CUDA_RELU:
        act_backward_kernel<AVSR_CUDA_RELU><<<g, kThreads, 0, s>>>(d_gx, d_x, d_gy, n);
        break;
    case AVSR_CUDA_SILU:
        act_backward_kernel<AVSR_CUDA_SILU><<<g, kThreads, 0, s>>>(d_gx, d_x, d_gy, n);
        break;
    case AVSR_CUDA_GELU:
        act_backward_kernel<AVSR_CUDA_GELU><<<g, kThreads, 0, s>>>(d_gx, d_x, d_gy, n);
        break;
    default:
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_act_backward: unknown activation %d",
                              act);
    }
    if (AVSR_CUDA(err, cudaGetLastError()) < 0) {
        avsr_error_prefix(err, "cuda_act_backward(%s): ", act_name(act));
        return -1;
    }
    return 0;
}

extern "C" int avsr_cuda_adam(float *d_p, float *d_m, float *d_v, const float *d_g, int64_t n,
                              const avsr_adam_consts *k, void *stream, avsr_error *err)
{
    if (check_n("cuda_adam", n, err) < 0)
        return -1;
    if (n == 0)
        return 0;
    if (!d_p || !d_m || !d_v || !d_g || !k)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_adam: NULL pointer");
    if (!(k->bc2_sqrt > 0.0f))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "cuda_adam: bias correction must be > 0: got bc2_sqrt=%g",
                              (double)k->bc2_sqrt);
    adam_kernel<<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(d_p, d_m, d_v, d_g, n, *k);
    if (AVSR_CUDA(err, cudaGetLastError()) < 0) {
        avsr_error_prefix(err, "cuda_adam: ");
        return -1;
    }
    return 0;
}

extern "C" int avsr_cuda_philox_u32(uint32_t *d_out, int64_t n, const void *r, void *stream,
                                    avsr_error *err)
{
    if (!d_out && n > 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_philox_u32: NULL output");
    return philox_fill("cuda_philox_u32", d_out, NULL, n, r, stream, err);
}

extern "C" int avsr_cuda_philox_uniform(float *d_out, int64_t n, const void *r, void *stream,
                                        avsr_error *err)
{
    if (!d_out && n > 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_philox_uniform: NULL output");
    return philox_fill("cuda_philox_uniform", NULL, d_out, n, r, stream, err);
}
