/* test_cuda: the CUDA backend against the CPU reference.
 *
 * Every kernel runs on random data and is compared with the same mathfn.h /
 * rng.h function evaluated on the host. Skips everything ("1..0 # SKIP")
 * when the build has no CUDA or there is no device; the test suite runs it
 * through tests/test_cuda.sh, which skips (exit 77) without a GPU.
 *
 * Tolerances. Philox words and uniforms must be bitwise equal (integer
 * arithmetic; the float mapping is exact). The element-wise kernels may
 * differ by a few ulp: the device's expf/erff are within 2 ulp of the exact
 * value, glibc's within 1, and nvcc contracts a*b+c into FMAs. So
 * |gpu - cpu| <= 1e-6 + 4 * FLT_EPSILON * |cpu|: 4 ulp relative, plus an
 * absolute term for gelu/silu at large negative x, where 1 + erf(x) and
 * 1 - sigmoid cancel and a 2-ulp erff error becomes ~1e-7 absolute. SGEMM is
 * compared with a double-precision product (K = 53
 * terms of size <= 1, fp32 accumulation in a different order: typical error
 * ~1e-6, worst-case bound 53 * eps * sum|a b| ~ 4e-5) at 1e-4 abs + 1e-5
 * rel; a layout or transpose mistake gives O(1) errors. AdamW: see
 * test_adamw. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "mathfn.h"
#include "rng.h"
#include "optim.h"
#include "tap.h"
#include "testutil.h"

#define ACT_ATOL 1e-6
#define ACT_RTOL (4 * FLT_EPSILON)

static avsr_error err;

/* Bail out with the recorded message when a setup call fails. */
static void need(int rc, const char *what)
{
    if (rc < 0)
        tap_bail("%s: %s", what, err.msg);
}

static float *dev_alloc(size_t n)
{
    void *p = NULL;
    need(avsr_cuda_malloc(&p, n * sizeof(float), &err), "cuda_malloc");
    return p;
}

static float *host_alloc(size_t n)
{
    float *p = malloc(n * sizeof(float));
    if (!p)
        tap_bail("out of memory");
    return p;
}

static void to_dev(float *d, const float *h, size_t n)
{
    need(avsr_cuda_memcpy_h2d(d, h, n * sizeof(float), &err), "memcpy_h2d");
}

static void to_host(float *h, const float *d, size_t n)
{
    need(avsr_cuda_memcpy_d2h(h, d, n * sizeof(float), &err), "memcpy_d2h");
}

/* Distance in ulp between two finite floats of the same sign (diagnostic). */
static int64_t ulp_diff(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0)
        ia = INT32_MIN - ia;
    if (ib < 0)
        ib = INT32_MIN - ib;
    int64_t d = (int64_t)ia - ib;
    return d < 0 ? -d : d;
}

static void diag_ulps(const char *what, const float *got, const float *want, int64_t n)
{
    int64_t worst = 0, same = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t d = ulp_diff(got[i], want[i]);
        if (d == 0)
            same++;
        if (d > worst)
            worst = d;
    }
    tap_diag("%s: %lld of %lld bitwise equal, max %lld ulp", what, (long long)same,
             (long long)n, (long long)worst);
}

/* Inputs for the activations: uniform in [-8, 8) plus edge values. */
static void act_inputs(float *x, int64_t n)
{
    static const float edge[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f, 20.0f, -20.0f,
                                 80.0f, -80.0f, 1e-7f, -1e-7f};
    tu_fill_uniform(x, n, 11, -8.0f, 8.0f);
    for (size_t i = 0; i < sizeof edge / sizeof edge[0] && (int64_t)i < n; i++)
        x[i] = edge[i];
}

static float cpu_act(int act, float x)
{
    switch (act) {
    case AVSR_CUDA_RELU: return avsr_fn_relu(x);
    case AVSR_CUDA_SILU: return avsr_fn_silu(x);
    default: return avsr_fn_gelu(x);
    }
}

static float cpu_act_grad(int act, float x)
{
    switch (act) {
    case AVSR_CUDA_RELU: return avsr_fn_relu_grad(x);
    case AVSR_CUDA_SILU: return avsr_fn_silu_grad(x);
    default: return avsr_fn_gelu_grad(x);
    }
}

static void test_memory(void)
{
    const size_t n = 1001;
    float *h = host_alloc(n), *back = host_alloc(n);
    tu_fill_uniform(h, (int64_t)n, 1, -1, 1);
    float *d = dev_alloc(n);
    to_dev(d, h, n);
    to_host(back, d, n);
    tap_ok(memcmp(h, back, n * sizeof(float)) == 0, "memory: h2d then d2h round trip");
    need(avsr_cuda_memset(d, 0, n * sizeof(float), &err), "memset");
    to_host(back, d, n);
    int zero = 1;
    for (size_t i = 0; i < n; i++)
        zero &= back[i] == 0.0f;
    tap_ok(zero, "memory: memset to 0");
    void *z = (void *)1;
    tap_ok(avsr_cuda_malloc(&z, 0, &err) == 0 && z == NULL, "memory: malloc of 0 bytes is NULL");
    tap_ok(avsr_cuda_free(NULL, &err) == 0, "memory: free(NULL) is fine");
    need(avsr_cuda_free(d, &err), "cuda_free");
    free(h);
    free(back);
}

static void test_act(void)
{
    static const char *names[] = {"relu", "silu", "gelu"};
    const int64_t n = 1000003; /* odd: the last thread block is partial */
    float *x = host_alloc(n), *gy = host_alloc(n), *gx0 = host_alloc(n);
    float *want = host_alloc(n), *got = host_alloc(n);
    act_inputs(x, n);
    tu_fill_uniform(gy, n, 12, -1, 1);
    tu_fill_uniform(gx0, n, 13, -1, 1);
    float *dx = dev_alloc(n), *dy = dev_alloc(n), *dgy = dev_alloc(n), *dgx = dev_alloc(n);
    to_dev(dx, x, n);
    to_dev(dgy, gy, n);
    for (int act = AVSR_CUDA_RELU; act <= AVSR_CUDA_GELU; act++) {
        char what[96];
        /* forward */
        need(avsr_cuda_act_forward(act, dy, dx, n, NULL, &err), "act_forward");
        to_host(got, dy, n);
        for (int64_t i = 0; i < n; i++)
            want[i] = cpu_act(act, x[i]);
        snprintf(what, sizeof what, "%s forward equals mathfn.h on the CPU", names[act]);
        tu_close(what, got, want, n, ACT_ATOL, ACT_RTOL);
        diag_ulps(what, got, want, n);
        /* backward accumulates into an existing gradient */
        to_dev(dgx, gx0, n);
        need(avsr_cuda_act_backward(act, dgx, dx, dgy, n, NULL, &err), "act_backward");
        to_host(got, dgx, n);
        for (int64_t i = 0; i < n; i++)
            want[i] = gx0[i] + gy[i] * cpu_act_grad(act, x[i]);
        snprintf(what, sizeof what, "%s backward (+=) equals mathfn.h on the CPU", names[act]);
        tu_close(what, got, want, n, ACT_ATOL, ACT_RTOL);
        diag_ulps(what, got, want, n);
    }
    /* in place forward */
    to_dev(dy, x, n);
    need(avsr_cuda_act_forward(AVSR_CUDA_RELU, dy, dy, n, NULL, &err), "act_forward in place");
    to_host(got, dy, n);
    for (int64_t i = 0; i < n; i++)
        want[i] = avsr_fn_relu(x[i]);
    tu_close("relu forward in place", got, want, n, 0, 0);
    /* bad arguments */
    tap_ok(avsr_cuda_act_forward(99, dy, dx, n, NULL, &err) < 0 &&
               strstr(err.msg, "unknown activation 99") && err.code == AVSR_ERR_INVALID,
           "act_forward: unknown activation is rejected (%s)", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_cuda_act_backward(AVSR_CUDA_GELU, dgx, dx, dgy, -1, NULL, &err) < 0 &&
               strstr(err.msg, "negative element count"),
           "act_backward: negative n is rejected (%s)", err.msg);
    avsr_error_clear(&err);
    avsr_cuda_free(dx, NULL);
    avsr_cuda_free(dy, NULL);
    avsr_cuda_free(dgy, NULL);
    avsr_cuda_free(dgx, NULL);
    free(x);
    free(gy);
    free(gx0);
    free(want);
    free(got);
}

static void test_adamw(void)
{
    const int64_t n = 100003;
    float *p = host_alloc(n), *m = host_alloc(n), *v = host_alloc(n), *g = host_alloc(n);
    float *got = host_alloc(n);
    tu_fill_uniform(p, n, 21, -1, 1);
    memset(m, 0, n * sizeof(float));
    memset(v, 0, n * sizeof(float));
    float *dp = dev_alloc(n), *dm = dev_alloc(n), *dv = dev_alloc(n), *dg = dev_alloc(n);
    to_dev(dp, p, n);
    to_dev(dm, m, n);
    to_dev(dv, v, n);
    avsr_optim_cfg cfg = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    cfg.beta2 = 0.98;
    cfg.weight_decay = 0.01;
    avsr_optim *opt = avsr_optim_create(&cfg, &err);
    avsr_adam_consts k;
    for (int t = 1; t <= 3; t++) {
        tu_fill_uniform(g, n, 100 + t, -2, 2);
        to_dev(dg, g, n);
        avsr_optim_set_step(opt, t - 1);
        need(avsr_optim_adam_consts(opt, 1e-3f, &k, &err), "adam consts");
        need(avsr_cuda_adam(dp, dm, dv, dg, n, &k, NULL, &err), "adam");
        for (int64_t i = 0; i < n; i++)
            avsr_fn_adam_k(&p[i], &m[i], &v[i], g[i], &k);
    }
    avsr_optim_destroy(opt);
    /* FMA contraction changes each step by about 1 ulp of the terms added.
     * m = 0.9 m + 0.1 g can cancel (|terms| <= 0.6): 2e-7 absolute, ~3 ulp
     * of 0.6. v adds positive terms: 8 ulp relative after 3 steps. p moves
     * by lr * mhat / sqrt(vhat) ~ 1e-3 per step; 1 ulp of p (1.2e-7) plus
     * the propagated error of mhat / sqrt(vhat) (a few 1e-7 relative to an
     * O(1) quotient, times lr) stays well under 1e-6, which is still 0.1%
     * of one update, so a wrong formula cannot pass. */
    to_host(got, dm, n);
    tu_close("adamw: first moment after 3 steps", got, m, n, 2e-7, 8 * FLT_EPSILON);
    to_host(got, dv, n);
    tu_close("adamw: second moment after 3 steps", got, v, n, 1e-9, 8 * FLT_EPSILON);
    to_host(got, dp, n);
    tu_close("adamw: parameters after 3 steps", got, p, n, 1e-6, 8 * FLT_EPSILON);
    diag_ulps("adamw parameters", got, p, n);
    k.bc2_sqrt = 0.0f;
    tap_ok(avsr_cuda_adam(dp, dm, dv, dg, n, &k, NULL, &err) < 0 &&
               strstr(err.msg, "bias correction must be > 0"),
           "adam: a zero bias correction is rejected (%s)", err.msg);
    avsr_error_clear(&err);
    avsr_cuda_free(dp, NULL);
    avsr_cuda_free(dm, NULL);
    avsr_cuda_free(dv, NULL);
    avsr_cuda_free(dg, NULL);
    free(p);
    free(m);
    free(v);
    free(g);
    free(got);
}

/* Philox on the device equals avsr_rng_u32 / avsr_rng_uniform on the host,
 * from block `block` (after init, or seeked). */
static void philox_case(uint64_t block, int64_t n)
{
    avsr_rng r;
    avsr_rng_init(&r, 1234, 7, 424242, AVSR_RNG_LAYER_BASE + 3);
    if (block)
        avsr_rng_seek(&r, block);
    uint32_t *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    float *fwant = host_alloc((size_t)n), *fgot = host_alloc((size_t)n);
    if (!want || !got)
        tap_bail("out of memory");
    avsr_rng c = r;
    for (int64_t i = 0; i < n; i++)
        want[i] = avsr_rng_u32(&c);
    c = r;
    for (int64_t i = 0; i < n; i++)
        fwant[i] = avsr_rng_uniform(&c);
    void *d = NULL;
    need(avsr_cuda_malloc(&d, (size_t)n * 4, &err), "cuda_malloc");
    need(avsr_cuda_philox_u32(d, n, &r, NULL, &err), "philox_u32");
    need(avsr_cuda_memcpy_d2h(got, d, (size_t)n * 4, &err), "memcpy_d2h");
    tap_ok(memcmp(got, want, (size_t)n * 4) == 0,
           "philox u32: %lld words from block %llu equal the CPU stream", (long long)n,
           (unsigned long long)block);
    need(avsr_cuda_philox_uniform(d, n, &r, NULL, &err), "philox_uniform");
    need(avsr_cuda_memcpy_d2h(fgot, d, (size_t)n * 4, &err), "memcpy_d2h");
    tap_ok(memcmp(fgot, fwant, (size_t)n * 4) == 0,
           "philox uniform: %lld floats from block %llu equal avsr_rng_uniform", (long long)n,
           (unsigned long long)block);
    avsr_cuda_free(d, NULL);
    free(want);
    free(got);
    free(fwant);
    free(fgot);
}

static void test_philox(void)
{
    philox_case(0, 4099);                    /* not a multiple of 4 */
    philox_case(0xFFFFFFFEull, 4096 + 3);    /* the 32-bit block counter carries */
    philox_case(1, 1);
}

/* C = alpha op(A) op(B) + beta C, row-major, in double. */
static void cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = (float)(alpha * s + beta * C[i * ldc + j]);
        }
}

static void test_sgemm(void)
{
    avsr_cublas *h = avsr_cublas_create(&err);
    if (!h)
        tap_bail("cublas_create: %s", err.msg);
    const int M = 37, N = 29, K = 53, pad = 3;
    const float alpha = 0.7f, beta = 0.3f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int arows = ta ? K : M, acols = ta ? M : K;
            int brows = tb ? N : K, bcols = tb ? K : N;
            int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
            size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)M * ldc;
            float *A = host_alloc(na), *B = host_alloc(nb), *C = host_alloc(nc);
            float *got = host_alloc(nc);
            tu_fill_uniform(A, (int64_t)na, 31, -1, 1);
            tu_fill_uniform(B, (int64_t)nb, 32, -1, 1);
            tu_fill_uniform(C, (int64_t)nc, 33, -1, 1);
            float *dA = dev_alloc(na), *dB = dev_alloc(nb), *dC = dev_alloc(nc);
            to_dev(dA, A, na);
            to_dev(dB, B, nb);
            to_dev(dC, C, nc);
            need(avsr_cublas_sgemm(h, ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc,
                                   &err),
                 "cublas_sgemm");
            to_host(got, dC, nc);
            cpu_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            char what[96];
            snprintf(what, sizeof what, "sgemm row-major trans_a=%d trans_b=%d, padded rows", ta,
                     tb);
            tu_close(what, got, C, (int64_t)nc, 1e-4, 1e-5);
            avsr_cuda_free(dA, NULL);
            avsr_cuda_free(dB, NULL);
            avsr_cuda_free(dC, NULL);
            free(A);
            free(B);
            free(C);
            free(got);
        }
    float *d = dev_alloc(16);
    tap_ok(avsr_cublas_sgemm(h, 0, 0, 4, 4, 4, 1, d, 3, d, 4, 0, d, 4, &err) < 0 &&
               strstr(err.msg, "row strides") && err.code == AVSR_ERR_INVALID,
           "sgemm: lda < K is rejected (%s)", err.msg);
    avsr_error_clear(&err);
    avsr_cuda_free(d, NULL);
    avsr_cublas_destroy(h);
}

static void test_cudnn(void)
{
    avsr_cudnn *h = avsr_cudnn_create(&err);
    tap_ok(h != NULL, "cudnn: handle created (%s)", h ? "ok" : err.msg);
    size_t v = avsr_cudnn_version();
    tap_ok(v >= 90000, "cudnn: version %zu is 9.x or later", v);
    avsr_cudnn_destroy(h);
    avsr_error_clear(&err);
}

static void test_nccl(void)
{
    avsr_nccl_id id;
    need(avsr_nccl_get_unique_id(&id, &err), "nccl_get_unique_id");
    avsr_nccl_comm *c = avsr_nccl_init_rank(&id, 1, 0, &err);
    if (!tap_ok(c != NULL, "nccl: communicator of 1 rank (%s)", c ? "ok" : err.msg)) {
        avsr_error_clear(&err);
        return;
    }
    const int64_t n = 10007;
    float *x = host_alloc(n), *got = host_alloc(n);
    tu_fill_uniform(x, n, 41, -3, 3);
    float *ds = dev_alloc(n), *dr = dev_alloc(n);
    to_dev(ds, x, n);
    need(avsr_cuda_memset(dr, 0, n * sizeof(float), &err), "memset");
    need(avsr_nccl_allreduce_sum(c, ds, dr, n, NULL, &err), "allreduce");
    need(avsr_cuda_synchronize(&err), "synchronize");
    to_host(got, dr, n);
    tu_close("nccl: all-reduce sum over 1 rank copies the input", got, x, n, 0, 0);
    need(avsr_nccl_allreduce_sum(c, ds, ds, n, NULL, &err), "allreduce in place");
    need(avsr_cuda_synchronize(&err), "synchronize");
    to_host(got, ds, n);
    tu_close("nccl: all-reduce in place over 1 rank", got, x, n, 0, 0);
    tap_ok(avsr_nccl_init_rank(&id, 2, 2, &err) == NULL && strstr(err.msg, "rank 2 of 2"),
           "nccl: rank out of range is rejected (%s)", err.msg);
    avsr_error_clear(&err);
    avsr_cuda_free(ds, NULL);
    avsr_cuda_free(dr, NULL);
    avsr_nccl_destroy(c);
    free(x);
    free(got);
}

static void test_check_macro(int ndev)
{
    /* a failing CUDA call names the call, the file and the line */
    int rc = avsr_cuda_set_device(ndev + 100, &err);
    tap_ok(rc < 0 && err.code == AVSR_ERR_BACKEND && strstr(err.msg, "cudaSetDevice(") &&
               strstr(err.msg, "cuda_device.cu:"),
           "AVSR_CUDA reports call text, file and line (%s)", err.msg);
    avsr_error_clear(&err);
}

int main(void)
{
    if (!avsr_cuda_built())
        tap_skip_all("no CUDA device (avsr was built without CUDA)");
    int ndev = avsr_cuda_device_count();
    if (ndev <= 0)
        tap_skip_all("no CUDA device");
    need(avsr_cuda_set_device(0, &err), "cuda_set_device");
    char name[256];
    if (avsr_cuda_device_name(0, name, sizeof name, &err) == 0)
        tap_diag("%d device(s); device 0: %s; cuDNN %zu", ndev, name, avsr_cudnn_version());
    avsr_error_clear(&err);

    test_memory();
    test_act();
    test_adamw();
    test_philox();
    test_sgemm();
    test_cudnn();
    test_nccl();
    test_check_macro(ndev);
    return tap_done();
}
