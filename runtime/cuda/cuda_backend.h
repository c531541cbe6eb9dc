/* cuda_backend: the CUDA backend's plain C interface.
 *
 * Every function here exists in every build. In a CUDA build
 * (configure --with-cuda) the .cu files in runtime/cuda/ implement them; in a CPU-only
 * build runtime/cuda_none.c does, and each call fails with
 * AVSR_ERR_UNSUPPORTED and "avsr was built without CUDA (configure
 * --with-cuda)". Only avsr_cuda_built(), avsr_cuda_device_count() and
 * avsr_cudnn_version() never fail: they answer 0 instead.
 *
 * Conventions:
 * - Functions return 0 on success and -1 on failure with `err` filled in
 *   (err may be NULL). Failed CUDA, cuBLAS, cuDNN and NCCL calls are reported
 *   as "file:line: <call text> failed: <library message>" (cuda_check.h).
 * - Pointers named d_* / documented as "device" are device memory (from
 *   avsr_cuda_malloc); everything else is host memory.
 * - `stream` is a cudaStream_t passed as void * so that C callers need no
 *   CUDA headers; NULL is the default stream. Kernels are asynchronous with
 *   respect to the host: call avsr_cuda_synchronize() (or a d2h copy, which
 *   synchronises) before reading results.
 * - The element-wise kernels call the AVSR_HD functions of mathfn.h and the
 *   Philox fill calls avsr_philox4x32 of rng.h: the CPU ops run the very same
 *   source (see docs/runtime/cuda.md). Results agree with the CPU to a few
 *   ulp, not bitwise: the device's expf/erff differ from glibc's by up to
 *   2 ulp and nvcc contracts a*b+c into fused multiply-adds. */
#ifndef AVSR_CUDA_BACKEND_H
#define AVSR_CUDA_BACKEND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"
#include "optim_fn.h"

/* The message of every call in a CPU-only build. */
#define AVSR_CUDA_MISSING_MSG "avsr was built without CUDA (configure --with-cuda)"

/* ---- devices and memory ---------------------------------------------- */

/* 1 if this library was built with CUDA, else 0. */
int avsr_cuda_built(void);

/* Number of usable CUDA devices: 0 in a CPU-only build, and 0 when there is
 * no driver or no device (cudaErrorNoDevice, cudaErrorInsufficientDriver, ...).
 * Never fails. */
int avsr_cuda_device_count(void);

/* Make `device` current for the calling host thread. */
int avsr_cuda_set_device(int device, avsr_error *err);

/* Name and compute capability of a device, e.g. "NVIDIA H100 80GB HBM3 (sm_90)". */
int avsr_cuda_device_name(int device, char *buf, size_t len, avsr_error *err);

/* Device allocation of `bytes` (0 gives NULL and succeeds). Out of memory
 * fails with AVSR_ERR_NOMEM. */
int avsr_cuda_malloc(void **d_ptr, size_t bytes, avsr_error *err);
/* Free device memory from avsr_cuda_malloc; NULL is allowed. */
int avsr_cuda_free(void *d_ptr, avsr_error *err);

/* Synchronous copies (they wait for the default stream). */
int avsr_cuda_memcpy_h2d(void *d_dst, const void *src, size_t bytes, avsr_error *err);
int avsr_cuda_memcpy_d2h(void *dst, const void *d_src, size_t bytes, avsr_error *err);
/* Set `bytes` bytes of device memory to the byte `value`. */
int avsr_cuda_memset(void *d_dst, int value, size_t bytes, avsr_error *err);

/* Wait until all work on the current device is done; reports errors of
 * earlier asynchronous launches. */
int avsr_cuda_synchronize(avsr_error *err);

/* ---- element-wise kernels (mathfn.h) ---------------------------------- */

enum avsr_cuda_act {
    AVSR_CUDA_RELU = 0, /* avsr_fn_relu / avsr_fn_relu_grad */
    AVSR_CUDA_SILU = 1, /* avsr_fn_silu / avsr_fn_silu_grad */
    AVSR_CUDA_GELU = 2  /* avsr_fn_gelu / avsr_fn_gelu_grad (exact erf form) */
};

/* y[i] = f(x[i]) for i < n; all device pointers, [n]. y == x is allowed. */
int avsr_cuda_act_forward(int act, float *d_y, const float *d_x, int64_t n, void *stream,
                          avsr_error *err);
/* gx[i] += gy[i] * f'(x[i]) (accumulates, as every backward does); [n]. */
int avsr_cuda_act_backward(int act, float *d_gx, const float *d_x, const float *d_gy, int64_t n,
                           void *stream, avsr_error *err);

/* ---- optimizer (optim_fn.h avsr_fn_adam) ------------------------------ */

/* One Adam/AdamW step on n elements: avsr_fn_adam_k(&p[i], &m[i], &v[i], g[i], k)
 * for each i, with k from avsr_optim_adam_consts() (computed on the host once
 * per step, so the CPU and GPU run the same update). Device pointers. */
int avsr_cuda_adam(float *d_p, float *d_m, float *d_v, const float *d_g, int64_t n,
                   const avsr_adam_consts *k, void *stream, avsr_error *err);

/* ---- random numbers (rng.h Philox4x32-10) ----------------------------- */

/* Fill out[0..n) with words of the Philox stream whose key and counter are
 * taken from the host state *r (from avsr_rng_init / avsr_rng_seek), starting
 * at r's current block: out[i] is word i%4 of block (block + i/4). This equals
 * n successive avsr_rng_u32() calls on a copy of r whose buffer is empty
 * (pos == 4, as after init or seek). r is not modified: to continue the
 * stream afterwards, avsr_rng_seek(r, block + ceil(n / 4)).
 * `r` is a const avsr_rng * (rng.h), passed as void * so this header does not
 * pull in rng.h. */
int avsr_cuda_philox_u32(uint32_t *d_out, int64_t n, const void *r, void *stream,
                         avsr_error *err);
/* Same words mapped to [0, 1) with avsr_rng_to_unit: equals avsr_rng_uniform(). */
int avsr_cuda_philox_uniform(float *d_out, int64_t n, const void *r, void *stream,
                             avsr_error *err);

/* ---- cuBLAS ------------------------------------------------------------ */

typedef struct avsr_cublas avsr_cublas; /* a cublasHandle_t */

avsr_cublas *avsr_cublas_create(avsr_error *err);
void avsr_cublas_destroy(avsr_cublas *h);
/* Run the handle's calls on `stream` (NULL: default stream). */
int avsr_cublas_set_stream(avsr_cublas *h, void *stream, avsr_error *err);

/* Row-major single-precision GEMM, the convention of the rest of avsr:
 *     C[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * C[M, N]
 * op(X) = X, or X^T when trans_x != 0. All matrices are row-major device
 * arrays; lda, ldb, ldc are row strides in elements (the number of columns of
 * the matrix as stored: A is [M, K] (lda >= K) or, transposed, [K, M]
 * (lda >= M); B is [K, N] (ldb >= N) or [N, K] (ldb >= K); ldc >= N).
 * Implemented as the column-major product C^T = op(B)^T op(A)^T, i.e.
 * cublasSgemm(opB, opA, N, M, K, B, A). Full fp32 (the handle keeps
 * CUBLAS_DEFAULT_MATH: no TF32). Dimensions must fit in int. */
int avsr_cublas_sgemm(avsr_cublas *h, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *d_a, int64_t lda, const float *d_b, int64_t ldb,
                      float beta, float *d_c, int64_t ldc, avsr_error *err);

/* ---- cuDNN ------------------------------------------------------------- */

typedef struct avsr_cudnn avsr_cudnn; /* a cudnnHandle_t */

avsr_cudnn *avsr_cudnn_create(avsr_error *err);
void avsr_cudnn_destroy(avsr_cudnn *h);
/* Version of the cuDNN library loaded at run time (cudnnGetVersion(), e.g.
 * 91000 for 9.10.0); 0 in a CPU-only build. */
size_t avsr_cudnn_version(void);

/* ---- NCCL -------------------------------------------------------------- */

/* An ncclUniqueId as plain bytes: rank 0 creates it, the dist layer
 * broadcasts it to every rank with MPI_Bcast (AVSR_NCCL_ID_BYTES of
 * MPI_BYTE), then every rank calls avsr_nccl_init_rank. */
#define AVSR_NCCL_ID_BYTES 128
typedef struct avsr_nccl_id {
    unsigned char bytes[AVSR_NCCL_ID_BYTES];
} avsr_nccl_id;

typedef struct avsr_nccl_comm avsr_nccl_comm; /* an ncclComm_t */

int avsr_nccl_get_unique_id(avsr_nccl_id *id, avsr_error *err);
/* Join the communicator of `nranks` ranks as `rank` on the current device
 * (collective: every rank must call it). NULL on failure. */
avsr_nccl_comm *avsr_nccl_init_rank(const avsr_nccl_id *id, int nranks, int rank,
                                    avsr_error *err);
/* recv[i] = sum over ranks of send[i], n floats in device memory, enqueued on
 * `stream`; send == recv (in place) is allowed. */
int avsr_nccl_allreduce_sum(avsr_nccl_comm *c, const float *d_send, float *d_recv, int64_t n,
                            void *stream, avsr_error *err);
void avsr_nccl_destroy(avsr_nccl_comm *c);

#ifdef __cplusplus
}
#endif

#endif
