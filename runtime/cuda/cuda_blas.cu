/* cuda_blas: cuBLAS and cuDNN handles, row-major SGEMM (see cuda_backend.h). */
#include <limits.h>
#include <stdlib.h>

#include "cuda_check.h"

struct avsr_cublas {
    cublasHandle_t h;
};

struct avsr_cudnn {
    cudnnHandle_t h;
};

/* ---- cuBLAS ------------------------------------------------------------ */

extern "C" avsr_cublas *avsr_cublas_create(avsr_error *err)
{
    avsr_cublas *b = (avsr_cublas *)calloc(1, sizeof *b);
    if (!b) {
        AVSR_NOMEM(err, sizeof *b);
        return NULL;
    }
    if (AVSR_CUBLAS(err, cublasCreate(&b->h)) < 0) {
        free(b);
        return NULL;
    }
    /* Full fp32 unless a caller asks otherwise: CPU and GPU results must be
     * comparable, and TF32 would change the numbers. */
    if (AVSR_CUBLAS(err, cublasSetMathMode(b->h, CUBLAS_DEFAULT_MATH)) < 0) {
        cublasDestroy(b->h);
        free(b);
        return NULL;
    }
    return b;
}

extern "C" void avsr_cublas_destroy(avsr_cublas *b)
{
    if (!b)
        return;
    cublasDestroy(b->h);
    free(b);
}

extern "C" int avsr_cublas_set_stream(avsr_cublas *b, void *stream, avsr_error *err)
{
    if (!b)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cublas_set_stream: NULL handle");
    return AVSR_CUBLAS(err, cublasSetStream(b->h, (cudaStream_t)stream));
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

extern "C" int avsr_cublas_sgemm(avsr_cublas *b, int trans_a, int trans_b, int64_t M, int64_t N,
                                 int64_t K, float alpha, const float *d_a, int64_t lda,
                                 const float *d_b, int64_t ldb, float beta, float *d_c,
                                 int64_t ldc, avsr_error *err)
{
    if (!b)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cublas_sgemm: NULL handle");
    if (!fits_int(M) || !fits_int(N) || !fits_int(K))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "cublas_sgemm: dimensions M=%lld N=%lld K=%lld must be in [0, %d]",
                              (long long)M, (long long)N, (long long)K, INT_MAX);
    /* row strides of the matrices as stored (row-major) */
    int64_t min_lda = trans_a ? M : K; /* A stored [K, M] or [M, K] */
    int64_t min_ldb = trans_b ? K : N; /* B stored [N, K] or [K, N] */
    if (min_lda < 1)
        min_lda = 1;
    if (min_ldb < 1)
        min_ldb = 1;
    int64_t min_ldc = N < 1 ? 1 : N;
    if (lda < min_lda || ldb < min_ldb || ldc < min_ldc || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "cublas_sgemm: row strides lda=%lld ldb=%lld ldc=%lld, expected "
                              ">= %lld, %lld, %lld (row-major, trans_a=%d trans_b=%d)",
                              (long long)lda, (long long)ldb, (long long)ldc, (long long)min_lda,
                              (long long)min_ldb, (long long)min_ldc, trans_a != 0, trans_b != 0);
    if (M == 0 || N == 0)
        return 0;
    if (!d_c || (K > 0 && (!d_a || !d_b)))
        return avsr_error_set(err, AVSR_ERR_INVALID, "cublas_sgemm: NULL matrix");
    /* A row-major [r, c] array is the column-major [c, r] array of its
     * transpose, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T in
     * cuBLAS's column-major terms: operands swapped, flags unchanged. */
    cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    return AVSR_CUBLAS(err, cublasSgemm(b->h, opb, opa, (int)N, (int)M, (int)K, &alpha, d_b,
                                        (int)ldb, d_a, (int)lda, &beta, d_c, (int)ldc));
}

/* ---- cuDNN ------------------------------------------------------------- */

extern "C" avsr_cudnn *avsr_cudnn_create(avsr_error *err)
{
    avsr_cudnn *d = (avsr_cudnn *)calloc(1, sizeof *d);
    if (!d) {
        AVSR_NOMEM(err, sizeof *d);
        return NULL;
    }
    if (AVSR_CUDNN(err, cudnnCreate(&d->h)) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

extern "C" void avsr_cudnn_destroy(avsr_cudnn *d)
{
    if (!d)
        return;
    cudnnDestroy(d->h);
    free(d);
}

extern "C" size_t avsr_cudnn_version(void) { return cudnnGetVersion(); }
