/* cuda_device: the check functions behind cuda_check.h, devices, memory
 * (see cuda_backend.h). */
#include <stdio.h>
#include <string.h>

#include "cuda_check.h"

/* ---- check functions --------------------------------------------------- */

extern "C" int avsr_cuda_check(cudaError_t st, const char *call, const char *file, int line,
                               avsr_error *err)
{
    if (st == cudaSuccess)
        return 0;
    int code = st == cudaErrorMemoryAllocation ? AVSR_ERR_NOMEM : AVSR_ERR_BACKEND;
    return avsr_error_set(err, code, "%s:%d: %s failed: %s (%s)", file, line, call,
                          cudaGetErrorString(st), cudaGetErrorName(st));
}

extern "C" int avsr_cublas_check(cublasStatus_t st, const char *call, const char *file, int line,
                                 avsr_error *err)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return 0;
    int code = st == CUBLAS_STATUS_ALLOC_FAILED ? AVSR_ERR_NOMEM : AVSR_ERR_BACKEND;
    return avsr_error_set(err, code, "%s:%d: %s failed: cuBLAS %s (%s)", file, line, call,
                          cublasGetStatusString(st), cublasGetStatusName(st));
}

extern "C" int avsr_cudnn_check(cudnnStatus_t st, const char *call, const char *file, int line,
                                avsr_error *err)
{
    if (st == CUDNN_STATUS_SUCCESS)
        return 0;
    int code = st == CUDNN_STATUS_ALLOC_FAILED ? AVSR_ERR_NOMEM : AVSR_ERR_BACKEND;
    return avsr_error_set(err, code, "%s:%d: %s failed: cuDNN %s (%d)", file, line, call,
                          cudnnGetErrorString(st), (int)st);
}

extern "C" int avsr_nccl_check(ncclResult_t st, const char *call, const char *file, int line,
                               avsr_error *err)
{
    if (st == ncclSuccess)
        return 0;
    return avsr_error_set(err, AVSR_ERR_BACKEND, "%s:%d: %s failed: NCCL %s (%d)", file, line,
                          call, ncclGetErrorString(st), (int)st);
}

/* ---- devices ------------------------------------------------------------ */

extern "C" int avsr_cuda_built(void) { return 1; }

extern "C" int avsr_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        /* no driver, no device, driver too old: "no CUDA device here" */
        (void)cudaGetLastError(); /* so that later calls do not report it */
        return 0;
    }
    return n > 0 ? n : 0;
}

extern "C" int avsr_cuda_set_device(int device, avsr_error *err)
{
    return AVSR_CUDA(err, cudaSetDevice(device));
}

extern "C" int avsr_cuda_device_name(int device, char *buf, size_t len, avsr_error *err)
{
    cudaDeviceProp p;
    if (!buf || len == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_device_name: no buffer");
    if (AVSR_CUDA(err, cudaGetDeviceProperties(&p, device)) < 0)
        return -1;
    snprintf(buf, len, "%s (sm_%d%d)", p.name, p.major, p.minor);
    return 0;
}

/* ---- memory ------------------------------------------------------------- */

extern "C" int avsr_cuda_malloc(void **d_ptr, size_t bytes, avsr_error *err)
{
    if (!d_ptr)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_malloc: NULL result pointer");
    *d_ptr = NULL;
    if (bytes == 0)
        return 0;
    if (AVSR_CUDA(err, cudaMalloc(d_ptr, bytes)) < 0) {
        *d_ptr = NULL;
        avsr_error_prefix(err, "cuda_malloc(%zu bytes): ", bytes);
        return -1;
    }
    return 0;
}

extern "C" int avsr_cuda_free(void *d_ptr, avsr_error *err)
{
    if (!d_ptr)
        return 0;
    return AVSR_CUDA(err, cudaFree(d_ptr));
}

extern "C" int avsr_cuda_memcpy_h2d(void *d_dst, const void *src, size_t bytes, avsr_error *err)
{
    if (bytes == 0)
        return 0;
    if (!d_dst || !src)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_memcpy_h2d: NULL pointer");
    return AVSR_CUDA(err, cudaMemcpy(d_dst, src, bytes, cudaMemcpyHostToDevice));
}

extern "C" int avsr_cuda_memcpy_d2h(void *dst, const void *d_src, size_t bytes, avsr_error *err)
{
    if (bytes == 0)
        return 0;
    if (!dst || !d_src)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_memcpy_d2h: NULL pointer");
    return AVSR_CUDA(err, cudaMemcpy(dst, d_src, bytes, cudaMemcpyDeviceToHost));
}

extern "C" int avsr_cuda_memset(void *d_dst, int value, size_t bytes, avsr_error *err)
{
    if (bytes == 0)
        return 0;
    if (!d_dst)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cuda_memset: NULL pointer");
    return AVSR_CUDA(err, cudaMemset(d_dst, value, bytes));
}

extern "C" int avsr_cuda_synchronize(avsr_error *err)
{
    return AVSR_CUDA(err, cudaDeviceSynchronize());
}
