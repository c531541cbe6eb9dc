/* cuda_none: the CUDA backend interface in a CPU-only build (configure found
 * no CUDA or was given --without-cuda). Queries answer "none"; every other
 * call fails with AVSR_ERR_UNSUPPORTED (see cuda/cuda_backend.h). */
#include "cuda/cuda_backend.h"

#include <stddef.h>

static int missing(avsr_error *err)
{
    return avsr_error_set(err, AVSR_ERR_UNSUPPORTED, "%s", AVSR_CUDA_MISSING_MSG);
}

int avsr_cuda_built(void) { return 0; }

int avsr_cuda_device_count(void) { return 0; }

int avsr_cuda_set_device(int device, avsr_error *err)
{
    (void)device;
    return missing(err);
}

int avsr_cuda_device_name(int device, char *buf, size_t len, avsr_error *err)
{
    (void)device;
    if (buf && len)
        buf[0] = '\0';
    return missing(err);
}

int avsr_cuda_malloc(void **d_ptr, size_t bytes, avsr_error *err)
{
    (void)bytes;
    if (d_ptr)
        *d_ptr = NULL;
    return missing(err);
}

int avsr_cuda_free(void *d_ptr, avsr_error *err)
{
    /* nothing can have been allocated: freeing NULL is fine, as in CUDA builds */
    return d_ptr ? missing(err) : 0;
}

int avsr_cuda_memcpy_h2d(void *d_dst, const void *src, size_t bytes, avsr_error *err)
{
    (void)d_dst, (void)src, (void)bytes;
    return missing(err);
}

int avsr_cuda_memcpy_d2h(void *dst, const void *d_src, size_t bytes, avsr_error *err)
{
    (void)dst, (void)d_src, (void)bytes;
    return missing(err);
}

int avsr_cuda_memset(void *d_dst, int value, size_t bytes, avsr_error *err)
{
    (void)d_dst, (void)value, (void)bytes;
    return missing(err);
}

int avsr_cuda_synchronize(avsr_error *err) { return missing(err); }

int avsr_cuda_act_forward(int act, float *d_y, const float *d_x, int64_t n, void *stream,
                          avsr_error *err)
{
    (void)act, (void)d_y, (void)d_x, (void)n, (void)stream;
    return missing(err);
}

int avsr_cuda_act_backward(int act, float *d_gx, const float *d_x, const float *d_gy, int64_t n,
                           void *stream, avsr_error *err)
{
    (void)act, (void)d_gx, (void)d_x, (void)d_gy, (void)n, (void)stream;
    return missing(err);
}

int avsr_cuda_adam(float *d_p, float *d_m, float *d_v, const float *d_g, int64_t n,
                   const avsr_adam_consts *k, void *stream, avsr_error *err)
{
    (void)d_p, (void)d_m, (void)d_v, (void)d_g, (void)n, (void)k, (void)stream;
    return missing(err);
}

int avsr_cuda_philox_u32(uint32_t *d_out, int64_t n, const void *r, void *stream,
                         avsr_error *err)
{
    (void)d_out, (void)n, (void)r, (void)stream;
    return missing(err);
}

int avsr_cuda_philox_uniform(float *d_out, int64_t n, const void *r, void *stream,
                             avsr_error *err)
{
    (void)d_out, (void)n, (void)r, (void)stream;
    return missing(err);
}

avsr_cublas *avsr_cublas_create(avsr_error *err)
{
    missing(err);
    return NULL;
}

void avsr_cublas_destroy(avsr_cublas *h) { (void)h; }

int avsr_cublas_set_stream(avsr_cublas *h, void *stream, avsr_error *err)
{
    (void)h, (void)stream;
    return missing(err);
}

int avsr_cublas_sgemm(avsr_cublas *h, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *d_a, int64_t lda, const float *d_b, int64_t ldb,
                      float beta, float *d_c, int64_t ldc, avsr_error *err)
{
    (void)h, (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha;
    (void)d_a, (void)lda, (void)d_b, (void)ldb, (void)beta, (void)d_c, (void)ldc;
    return missing(err);
}

avsr_cudnn *avsr_cudnn_create(avsr_error *err)
{
    missing(err);
    return NULL;
}

void avsr_cudnn_destroy(avsr_cudnn *h) { (void)h; }

size_t avsr_cudnn_version(void) { return 0; }

int avsr_nccl_get_unique_id(avsr_nccl_id *id, avsr_error *err)
{
    (void)id;
    return missing(err);
}

avsr_nccl_comm *avsr_nccl_init_rank(const avsr_nccl_id *id, int nranks, int rank,
                                    avsr_error *err)
{
    (void)id, (void)nranks, (void)rank;
    missing(err);
    return NULL;
}

int avsr_nccl_allreduce_sum(avsr_nccl_comm *c, const float *d_send, float *d_recv, int64_t n,
                            void *stream, avsr_error *err)
{
    (void)c, (void)d_send, (void)d_recv, (void)n, (void)stream;
    return missing(err);
}

void avsr_nccl_destroy(avsr_nccl_comm *c) { (void)c; }
