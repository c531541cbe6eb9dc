/* cuda_check: one check macro per GPU library, for CUDA-build code only
 * (it needs the CUDA headers; the .cu files of runtime/cuda/ use it).
 *
 *   AVSR_CUDA(err, call)    cudaError_t       (CUDA runtime)
 *   AVSR_CUBLAS(err, call)  cublasStatus_t
 *   AVSR_CUDNN(err, call)   cudnnStatus_t
 *   AVSR_NCCL(err, call)    ncclResult_t
 *
 * Each evaluates `call` once and yields 0 on success; on failure it records
 * "file:line: <call text> failed: <library name and message>" in the
 * avsr_error (AVSR_ERR_BACKEND, or AVSR_ERR_NOMEM for allocation failures)
 * and yields -1, so code reads
 *     if (AVSR_CUDA(err, cudaMalloc(&p, n)) < 0) return -1;
 * As with every avsr_error, the first message is kept. */
#ifndef AVSR_CUDA_CHECK_H
#define AVSR_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include "cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

int avsr_cuda_check(cudaError_t st, const char *call, const char *file, int line,
                    avsr_error *err);
int avsr_cublas_check(cublasStatus_t st, const char *call, const char *file, int line,
                      avsr_error *err);
int avsr_cudnn_check(cudnnStatus_t st, const char *call, const char *file, int line,
                     avsr_error *err);
int avsr_nccl_check(ncclResult_t st, const char *call, const char *file, int line,
                    avsr_error *err);

#ifdef __cplusplus
}
#endif

#define AVSR_CUDA(err, call) avsr_cuda_check((call), #call, __FILE__, __LINE__, (err))
#define AVSR_CUBLAS(err, call) avsr_cublas_check((call), #call, __FILE__, __LINE__, (err))
#define AVSR_CUDNN(err, call) avsr_cudnn_check((call), #call, __FILE__, __LINE__, (err))
#define AVSR_NCCL(err, call) avsr_nccl_check((call), #call, __FILE__, __LINE__, (err))

#endif
