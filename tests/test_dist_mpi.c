/* test_dist_mpi: the distributed layer under mpirun (run by the tests/test_dist*.sh scripts with
 * -np 2 and -np 3).
 *
 *   test_dist_mpi all          collectives, bucketed gradient sync, params
 *                              broadcast, BN sync, plan broadcast and hash
 *                              mismatch, metrics, flags, error messages
 *   test_dist_mpi kill DIR     ranks loop in all-reduces; rank 1 writes its
 *                              pid to DIR/pid (the script kill -9s it)
 *   test_dist_mpi hang         rank 1 never arrives at a barrier; the
 *                              watchdog (2 s) of the others must end the job
 *   test_dist_mpi abort        a failing collective under the default
 *                              policy must abort the job
 *   test_dist_mpi signal DIR   step loop with flag agreement; rank 1 writes
 *                              its pid to DIR/pid (the script sends USR1);
 *                              every rank exits 75 at the same step
 *
 * Checks are collective: each rank evaluates the condition, the results are
 * combined with a MAX all-reduce and rank 0 prints one TAP line. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"
#include "dist/bn_sync.h"
#include "dist/comm.h"
#include "dist/coord.h"
#include "dist/grad_sync.h"
#include "dist/signals.h"
#include "dist/threads.h"
#include "op_basic.h"
#include "op_norm.h"
#include "params.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

static avsr_comm *C;
static int R, N;

static void die(const char *what, const avsr_error *err)
{
    fprintf(stderr, "rank %d: %s: %s\n", R, what, err ? err->msg : "");
    exit(1);
}

/* One TAP line on rank 0 for a condition evaluated on every rank. */
static bool check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool cond, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int bad = cond ? 0 : R + 1;
    avsr_error err = {0};
    if (!cond)
        fprintf(stderr, "rank %d: failed: %s\n", R, msg);
    if (avsr_comm_allreduce_max_int(C, &bad, 1, &err) < 0)
        die("check", &err);
    if (R == 0)
        tap_ok(bad == 0, "%s [np=%d]%s", msg, N, bad ? " (failed on some rank)" : "");
    return bad == 0;
}

/* Worst |a-b| / (atol + rtol |b|): <= 1 passes. */
static double worst(const float *a, const float *b, int64_t n, double atol, double rtol)
{
    double w = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= w))
            w = isnan(e) ? INFINITY : e;
    }
    return w;
}

/* ---- collectives --------------------------------------------------------- */

static void test_collectives(void)
{
    avsr_error err = {0};
    check(avsr_comm_size(C) == N && avsr_comm_rank(C) == R && strcmp(avsr_comm_name(C), "mpi") == 0 &&
              avsr_comm_device(C) == AVSR_DEV_CPU,
          "comm: rank/size/name");
    check(avsr_comm_local_size(C) == N && avsr_comm_local_rank(C) == R,
          "comm: local rank/size from MPI_COMM_TYPE_SHARED (one node: local = global)");
    check(avsr_comm_barrier(C, &err) == 0, "comm: barrier");

    const int64_t n = 100003; /* odd, not a multiple of anything */
    float *f = malloc(sizeof(float) * n);
    double *d = malloc(sizeof(double) * n);
    int S = N * (N + 1) / 2; /* sum of (r + 1) */
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)((R + 1) * (int)(i % 13 - 6));
        d[i] = (R + 1) * 0.25 * (double)(i % 9);
    }
    int rc1 = avsr_comm_allreduce_sum_f32(C, f, n, &err);
    int rc2 = avsr_comm_allreduce_sum_f64(C, d, n, &err);
    bool okf = rc1 == 0, okd = rc2 == 0;
    for (int64_t i = 0; i < n; i++) {
        okf = okf && f[i] == (float)(S * (int)(i % 13 - 6));
        okd = okd && d[i] == S * 0.25 * (double)(i % 9);
    }
    check(okf, "comm: all-reduce sum of %lld floats is exact", (long long)n);
    check(okd, "comm: all-reduce sum of %lld doubles is exact", (long long)n);
    check(avsr_comm_allreduce_sum_f32(C, f, 0, &err) == 0, "comm: all-reduce of 0 floats");
    free(f);
    free(d);

    int m[7], want[7];
    for (int i = 0; i < 7; i++) {
        m[i] = (R * 7 + i * 3) % 5 - 2;
        want[i] = -100;
        for (int r = 0; r < N; r++) {
            int v = (r * 7 + i * 3) % 5 - 2;
            if (v > want[i])
                want[i] = v;
        }
    }
    check(avsr_comm_allreduce_max_int(C, m, 7, &err) == 0 && memcmp(m, want, sizeof m) == 0,
          "comm: all-reduce max of ints");

    unsigned char b[1001];
    for (int i = 0; i < 1001; i++)
        b[i] = R == N - 1 ? (unsigned char)(i * 7 + 3) : 0;
    bool okb = avsr_comm_bcast(C, b, sizeof b, N - 1, &err) == 0;
    for (int i = 0; i < 1001; i++)
        okb = okb && b[i] == (unsigned char)(i * 7 + 3);
    check(okb, "comm: broadcast of 1001 bytes from the last rank");

    struct rec {
        int rank, size;
        double v;
        char tag[16];
    } mine = {R, N, R * 1.5, ""}, *all = NULL;
    snprintf(mine.tag, sizeof mine.tag, "rank-%d", R);
    if (R == 0)
        all = calloc((size_t)N, sizeof *all);
    bool okg = avsr_comm_gather(C, &mine, sizeof mine, all, &err) == 0;
    if (R == 0) {
        for (int r = 0; r < N; r++) {
            char t[16];
            snprintf(t, sizeof t, "rank-%d", r);
            okg = okg && all[r].rank == r && all[r].size == N && all[r].v == r * 1.5 &&
                  strcmp(all[r].tag, t) == 0;
        }
    }
    free(all);
    check(okg, "comm: gather of fixed-size records to rank 0 in rank order");

    /* an MPI error comes back as a message (this comm has no_abort) */
    avsr_error e2 = {0};
    int rc = avsr_comm_bcast(C, b, 4, N + 5, &e2);
    check(rc < 0 && strstr(e2.msg, "comm_mpi.c:") && strstr(e2.msg, "MPI_Bcast(") &&
              strstr(e2.msg, "failed: MPI_ERR_ROOT"),
          "comm: invalid root -> AVSR_MPI message with file:line, call and MPI_Error_string: %s",
          e2.msg);
    check(avsr_comm_seconds(C) > 0.0, "comm: time inside collectives is counted (%.4f s)",
          avsr_comm_seconds(C));
    avsr_threads_choice t = {0};
    int rt = avsr_threads_resolve("auto", avsr_comm_local_size(C), &t, &err);
    check(rt == 0 && t.threads >= 1,
          "threads: auto with %d local ranks -> %d (%s)%s%s", avsr_comm_local_size(C), t.threads,
          t.source, t.warning[0] ? ": " : "", t.warning);
}

/* ---- gradient sync ------------------------------------------------------- */

static const int64_t shapes[][3] = {{1, 3}, {2, 5, 7}, {1, 1}, {1, 33}, {2, 17, 3},
                                    {1, 1000}, {3, 2, 2}, {1, 129}, {1, 64}, {1, 7}};
#define NP ((int)(sizeof shapes / sizeof shapes[0]))

static avsr_params *make_store(bool extra, const char *freeze_also)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    char name[32];
    for (int i = 0; i < NP; i++) {
        int nd = (int)shapes[i][0];
        int64_t s[2] = {shapes[i][1], nd > 1 ? shapes[i][2] : 0};
        if (nd == 3) { /* {2,2,2} */
            s[0] = 2;
            s[1] = 4;
            nd = 2;
        }
        snprintf(name, sizeof name, "layer%d.w", i);
        if (!avsr_params_add(p, name, nd, s, &err))
            die("params_add", &err);
    }
    if (extra) {
        int64_t s = 3;
        avsr_params_add(p, "extra.w", 1, &s, &err);
    }
    int64_t c = 5, one = 1;
    if (!avsr_params_add_buffer(p, "bn.running_mean", AVSR_F32, 1, &c, &err) ||
        !avsr_params_add_buffer(p, "bn.num_batches", AVSR_I64, 1, &one, &err) ||
        avsr_params_finalize(p, &err) < 0)
        die("params", &err);
    /* frozen: 1, 4, 8 and the last (a run ends at the store's end) */
    avsr_params_set_requires_grad(p, "layer1.w", false);
    avsr_params_set_requires_grad(p, "layer4.w", false);
    avsr_params_set_requires_grad(p, "layer8.w", false);
    avsr_params_set_requires_grad(p, "layer9.w", false);
    if (freeze_also)
        avsr_params_set_requires_grad(p, freeze_also, false);
    return p;
}

static float gval(int rank, int64_t j)
{
    return (float)((rank + 1) * (int)(j % 11 - 5));
}

static void fill_grads(avsr_params *p)
{
    float *g = avsr_params_grad(p);
    avsr_params_zero_grad(p); /* padding = 0 */
    for (int i = 0; i < avsr_params_count_trainable(p); i++) {
        int64_t off = avsr_params_offset(p, i);
        for (int64_t k = 0; k < avsr_params_at(p, i)->numel; k++)
            g[off + k] = gval(R, off + k);
    }
}

/* Every element of a parameter that requires grad is in exactly one piece;
 * no frozen element is in any; no bucket exceeds its size. */
static bool plan_ok(avsr_params *p, avsr_grad_sync *gs, int64_t bucket_floats, bool *multi)
{
    int64_t flat = avsr_params_flat_size(p);
    int *cover = calloc((size_t)flat, sizeof *cover);
    bool ok = true;
    *multi = false;
    for (int b = 0; b < avsr_grad_sync_nbuckets(gs); b++) {
        int64_t tot = 0;
        int np = avsr_grad_sync_bucket_pieces(gs, b);
        if (np > 1)
            *multi = true;
        for (int k = 0; k < np; k++) {
            int64_t off, n;
            avsr_grad_sync_piece(gs, b, k, &off, &n);
            tot += n;
            for (int64_t j = off; j < off + n && j < flat; j++)
                cover[j]++;
            ok = ok && off >= 0 && off + n <= flat && n > 0;
        }
        ok = ok && tot <= bucket_floats;
    }
    for (int i = 0; i < avsr_params_count_trainable(p); i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        int64_t off = avsr_params_offset(p, i);
        int want = avsr_tensor_requires_grad(t) ? 1 : 0;
        for (int64_t k = 0; k < t->numel; k++)
            ok = ok && cover[off + k] == want;
    }
    free(cover);
    return ok;
}

static void test_grad_sync(void)
{
    avsr_error err = {0};
    avsr_params *p = make_store(false, NULL);
    int S = N * (N + 1) / 2;
    int64_t trainable = avsr_params_numel_trainable(p);
    const size_t sizes[] = {4, 64, 100, 1000, 0};
    for (int si = 0; si < 5; si++) {
        avsr_grad_sync_opts o = {sizes[si]};
        avsr_grad_sync *gs = avsr_grad_sync_create(p, C, &o, &err);
        if (!gs)
            die("grad_sync_create", &err);
        int64_t bf = sizes[si] ? (int64_t)sizes[si] / 4 : (int64_t)(AVSR_GRAD_SYNC_DEFAULT_BUCKET_BYTES / 4);
        bool multi;
        bool pok = plan_ok(p, gs, bf, &multi);
        int64_t fl = avsr_grad_sync_floats(gs);
        check(pok && fl >= trainable && avsr_grad_sync_nbuckets(gs) == (int)((fl + bf - 1) / bf),
              "grad_sync: bucket %zu B: %d buckets over %lld floats cover exactly the trainable "
              "parameters%s",
              sizes[si] ? sizes[si] : AVSR_GRAD_SYNC_DEFAULT_BUCKET_BYTES,
              avsr_grad_sync_nbuckets(gs), (long long)fl, multi ? " (some packed from pieces)" : "");
        if (sizes[si] == 100)
            check(multi, "grad_sync: a 100-byte bucket packs pieces of several runs");
        float scale = si == 2 ? 0.5f : 1.0f;
        fill_grads(p);
        avsr_grad_sync_stats st;
        int rc = avsr_grad_sync_run(gs, scale, &st, &err);
        float *g = avsr_params_grad(p);
        bool ok = rc == 0;
        for (int i = 0; i < avsr_params_count_trainable(p); i++) {
            avsr_tensor *t = avsr_params_at(p, i);
            int64_t off = avsr_params_offset(p, i);
            for (int64_t k = 0; k < t->numel; k++) {
                int64_t j = off + k;
                float want = avsr_tensor_requires_grad(t) ? scale * (float)S * gval(0, j) : gval(R, j);
                ok = ok && g[j] == want;
            }
        }
        for (int64_t j = 0; j < avsr_params_flat_size(p); j++) { /* padding untouched */
            bool inside = false;
            for (int i = 0; i < avsr_params_count_trainable(p); i++) {
                int64_t off = avsr_params_offset(p, i);
                inside = inside || (j >= off && j < off + avsr_params_at(p, i)->numel);
            }
            ok = ok && (inside || g[j] == 0.0f);
        }
        check(ok && st.buckets == avsr_grad_sync_nbuckets(gs) && st.comm_seconds >= 0 &&
                  st.total_seconds >= st.comm_seconds,
              "grad_sync: bucket %zu B, scale %g: trainable = scaled sum over ranks, frozen and "
              "padding untouched (comm %.2g s)",
              sizes[si] ? sizes[si] : AVSR_GRAD_SYNC_DEFAULT_BUCKET_BYTES, scale, st.comm_seconds);
        avsr_grad_sync_destroy(gs);
    }
    avsr_params_destroy(p);

    /* a rank with a different frozen set: every rank gets the same error */
    p = make_store(false, R == 1 ? "layer0.w" : NULL);
    avsr_error e2 = {0};
    avsr_grad_sync *gs = avsr_grad_sync_create(p, C, NULL, &e2);
    check(!gs && strstr(e2.msg, "grad_sync: bucket plan (parameter layout or frozen set) differs "
                                "across ranks: rank 0 has hash 0x") &&
              strstr(e2.msg, ", rank 1 has 0x"),
          "grad_sync: frozen sets that differ across ranks are an error: %s", e2.msg);
    avsr_grad_sync_destroy(gs);
    avsr_params_destroy(p);
}

/* ---- parameter broadcast -------------------------------------------------- */

static void fill_params(avsr_params *p, int rank)
{
    float *d = avsr_params_data(p);
    for (int i = 0; i < avsr_params_count_trainable(p); i++) {
        int64_t off = avsr_params_offset(p, i);
        for (int64_t k = 0; k < avsr_params_at(p, i)->numel; k++)
            d[off + k] = (float)(rank * 1000 + (off + k) % 97);
    }
    avsr_tensor *rm = avsr_params_find(p, "bn.running_mean");
    for (int c = 0; c < 5; c++)
        avsr_f32(rm)[c] = (float)rank + 0.5f * (float)c;
    *(int64_t *)avsr_params_find(p, "bn.num_batches")->data = rank * 10 + 1;
}

static bool params_equal(avsr_params *a, avsr_params *b)
{
    bool ok = memcmp(avsr_params_data(a), avsr_params_data(b),
                     sizeof(float) * (size_t)avsr_params_flat_size(a)) == 0;
    ok = ok && memcmp(avsr_params_find(a, "bn.running_mean")->data,
                      avsr_params_find(b, "bn.running_mean")->data, 5 * sizeof(float)) == 0;
    return ok && *(int64_t *)avsr_params_find(a, "bn.num_batches")->data ==
                     *(int64_t *)avsr_params_find(b, "bn.num_batches")->data;
}

static void test_bcast_params(void)
{
    avsr_error err = {0};
    avsr_params *p = make_store(false, NULL), *want = make_store(false, NULL);
    for (int root = 0; root < 2; root++) {
        fill_params(p, R);
        fill_params(want, root);
        int rc = avsr_dist_bcast_params(C, p, root, &err);
        check(rc == 0 && params_equal(p, want),
              "bcast_params: parameters (trainable and frozen) and buffers equal rank %d's", root);
    }
    avsr_params_destroy(want);
    avsr_params_destroy(p);
    /* a rank with another layout */
    p = make_store(R == N - 1, NULL);
    avsr_error e2 = {0};
    int rc = avsr_dist_bcast_params(C, p, 0, &e2);
    char want_msg[64];
    snprintf(want_msg, sizeof want_msg, ", rank %d has 0x", N - 1);
    check(rc < 0 && strstr(e2.msg, "bcast_params: parameter store layout differs across ranks") &&
              strstr(e2.msg, want_msg),
          "bcast_params: a layout mismatch is an error: %s", e2.msg);
    avsr_params_destroy(p);
}

/* ---- BatchNorm sync ------------------------------------------------------ */

static void test_bn_sync(void)
{
    avsr_error err = {0};
    const int64_t B = 6, Cc = 5, T = 7;
    const int len[6] = {7, 5, 3, 7, 6, 2};
    int64_t xs[3] = {B, Cc, T}, cs[1] = {Cc}, ms[2] = {B, T};
    avsr_tensor *x = tu_rand(3, xs, 11, -2, 2, true);
    avsr_tensor *Rw = tu_rand(3, xs, 12, -1, 1, false);
    avsr_tensor *mask = avsr_tensor_create(AVSR_U8, 2, ms, false);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            ((unsigned char *)mask->data)[b * T + t] = t < len[b];
    avsr_tensor *g0 = tu_rand(1, cs, 13, 0.5f, 1.5f, true);
    avsr_tensor *b0 = tu_rand(1, cs, 14, -0.5f, 0.5f, true);
    avsr_tensor *rm0 = avsr_tensor_create(AVSR_F32, 1, cs, false);
    avsr_tensor *rv0 = avsr_tensor_create(AVSR_F32, 1, cs, false);
    for (int c = 0; c < Cc; c++) {
        avsr_f32(rm0)[c] = 0.1f * (float)c;
        avsr_f32(rv0)[c] = 1.0f + 0.2f * (float)c;
    }
    for (int masked = 0; masked < 2; masked++) {
        /* reference: one rank, the whole batch, no sync */
        avsr_ctx *ref = tu_ctx();
        avsr_ctx_set_training(ref, true);
        memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
        memset(g0->grad, 0, sizeof(float) * Cc);
        memset(b0->grad, 0, sizeof(float) * Cc);
        float rm_ref[5], rv_ref[5];
        memcpy(rm_ref, rm0->data, sizeof rm_ref);
        memcpy(rv_ref, rv0->data, sizeof rv_ref);
        avsr_tensor *rmr = avsr_tensor_wrap(ref, AVSR_F32, 1, cs, rm_ref);
        avsr_tensor *rvr = avsr_tensor_wrap(ref, AVSR_F32, 1, cs, rv_ref);
        avsr_tensor *yr = avsr_op_batch_norm(ref, x, g0, b0, rmr, rvr, masked ? mask : NULL, 0.1f,
                                             1e-5f);
        avsr_tensor *Lr = avsr_op_dot_const(ref, yr, avsr_f32(Rw));
        if (!Lr || avsr_backward(ref, Lr, NULL) < 0)
            die("bn reference", avsr_ctx_error(ref));

        /* this rank: rows [b0r, b1r) with the sync hook; gamma and beta in a
         * parameter store whose gradient is then summed by grad_sync */
        int64_t r0 = R * B / N, r1 = (R + 1) * B / N, nb = r1 - r0;
        avsr_params *p = avsr_params_create();
        avsr_tensor *gp = avsr_params_add(p, "bn.weight", 1, cs, &err);
        avsr_tensor *bp = avsr_params_add(p, "bn.bias", 1, cs, &err);
        if (!gp || !bp || avsr_params_finalize(p, &err) < 0)
            die("bn params", &err);
        memcpy(gp->data, g0->data, sizeof(float) * Cc);
        memcpy(bp->data, b0->data, sizeof(float) * Cc);
        avsr_params_zero_grad(p);
        int64_t xls[3] = {nb, Cc, T}, mls[2] = {nb, T};
        avsr_tensor *xl = avsr_tensor_create(AVSR_F32, 3, xls, true);
        memcpy(xl->data, avsr_f32(x) + r0 * Cc * T, sizeof(float) * (size_t)xl->numel);
        memset(xl->grad, 0, sizeof(float) * (size_t)xl->numel);
        avsr_ctx *ctx = tu_ctx();
        avsr_ctx_set_training(ctx, true);
        avsr_dist_install_bn_sync(ctx, C);
        float rm[5], rv[5];
        memcpy(rm, rm0->data, sizeof rm);
        memcpy(rv, rv0->data, sizeof rv);
        avsr_tensor *rml = avsr_tensor_wrap(ctx, AVSR_F32, 1, cs, rm);
        avsr_tensor *rvl = avsr_tensor_wrap(ctx, AVSR_F32, 1, cs, rv);
        avsr_tensor *ml = avsr_tensor_wrap(ctx, AVSR_U8, 2, mls,
                                           (unsigned char *)mask->data + r0 * T);
        avsr_tensor *y = avsr_op_batch_norm(ctx, xl, gp, bp, rml, rvl, masked ? ml : NULL, 0.1f,
                                            1e-5f);
        avsr_tensor *L = avsr_op_dot_const(ctx, y, avsr_f32(Rw) + r0 * Cc * T);
        if (!L || avsr_backward(ctx, L, NULL) < 0)
            die("bn sync", avsr_ctx_error(ctx));
        avsr_grad_sync *gs = avsr_grad_sync_create(p, C, NULL, &err);
        if (!gs || avsr_grad_sync_run(gs, 1.0f, NULL, &err) < 0)
            die("bn grad sync", &err);
        /* float sums in another order: outputs and gradients agree to ~1e-6
         * relative; 1e-5/1e-4 leaves room for the reduction order */
        const char *mk = masked ? "masked" : "unmasked";
        double wy = worst(avsr_f32(y), avsr_f32(yr) + r0 * Cc * T, y->numel, 1e-5, 1e-5);
        double wx = worst(xl->grad, x->grad + r0 * Cc * T, xl->numel, 1e-5, 1e-4);
        double wg = worst(gp->grad, g0->grad, Cc, 1e-5, 1e-4);
        double wb = worst(bp->grad, b0->grad, Cc, 1e-5, 1e-4);
        double wm = worst(rm, rm_ref, Cc, 1e-6, 1e-5);
        double wv = worst(rv, rv_ref, Cc, 1e-6, 1e-5);
        check(wy <= 1, "bn_sync (%s): each rank's half of the batch gives the full-batch output (%.2g)", mk, wy);
        check(wx <= 1, "bn_sync (%s): dx equals the full-batch dx (%.2g)", mk, wx);
        check(wg <= 1 && wb <= 1, "bn_sync (%s): summed dgamma/dbeta equal the full batch's (%.2g, %.2g)", mk, wg, wb);
        check(wm <= 1 && wv <= 1, "bn_sync (%s): running statistics equal the full batch's (%.2g, %.2g)", mk, wm, wv);
        avsr_grad_sync_destroy(gs);
        avsr_tensor_free(xl);
        avsr_params_destroy(p);
        avsr_ctx_destroy(ctx);
        avsr_ctx_destroy(ref);
    }
    avsr_tensor_free(x);
    avsr_tensor_free(Rw);
    avsr_tensor_free(mask);
    avsr_tensor_free(g0);
    avsr_tensor_free(b0);
    avsr_tensor_free(rm0);
    avsr_tensor_free(rv0);
}

/* ---- coordinator ------------------------------------------------------- */

static void test_coord(void)
{
    avsr_error err = {0};
    size_t n = 10007;
    unsigned char *plan = NULL;
    if (R == 0) {
        plan = malloc(n);
        for (size_t i = 0; i < n; i++)
            plan[i] = (unsigned char)(i * 31 + 7);
    }
    void *data = plan;
    size_t bytes = R == 0 ? n : 0;
    uint64_t h = 0;
    int rc = avsr_coord_bcast_plan(C, &data, &bytes, &h, &err);
    bool ok = rc == 0 && bytes == n;
    unsigned char *got = data;
    for (size_t i = 0; ok && i < n; i++)
        ok = got[i] == (unsigned char)(i * 31 + 7);
    check(ok && h == avsr_fnv1a64(got, n), "coord: epoch plan of %zu bytes arrives intact, hash 0x%016llx",
          n, (unsigned long long)h);

    /* forced mismatch: rank 1 corrupts its copy before the check */
    uint64_t good = avsr_fnv1a64(got, n);
    got[5] ^= 0x40;
    uint64_t badh = avsr_fnv1a64(got, n);
    got[5] ^= 0x40;
    if (R == 1)
        got[5] ^= 0x40;
    avsr_error e2 = {0};
    rc = avsr_coord_check_hash(C, avsr_fnv1a64(got, n), "coord: epoch plan", &e2);
    char want[200];
    snprintf(want, sizeof want,
             "coord: epoch plan differs across ranks: rank 0 has hash 0x%016llx, rank 1 has 0x%016llx",
             (unsigned long long)good, (unsigned long long)badh);
    check(rc < 0 && strcmp(e2.msg, want) == 0, "coord: a hash mismatch names both hashes on every rank: %s",
          e2.msg);
    if (R != 0)
        free(data);
    free(plan);

    void *empty = NULL;
    size_t zero = 0;
    check(avsr_coord_bcast_plan(C, &empty, &zero, NULL, &err) == 0 && zero == 0 && !empty,
          "coord: an empty plan");

    double vals[3] = {R + 1.0, 10.0 * R, 0.5};
    avsr_metric_stat st[3];
    rc = avsr_coord_gather_metrics(C, vals, 3, st, &err);
    ok = rc == 0;
    if (R == 0)
        ok = ok && st[0].sum == N * (N + 1) / 2.0 && st[0].mean == (N + 1) / 2.0 &&
             st[0].min == 1.0 && st[0].max == N && st[1].max == 10.0 * (N - 1) && st[1].min == 0 &&
             st[2].sum == 0.5 * N && st[2].mean == 0.5;
    check(ok, "coord: metrics gather: rank 0 gets sum/mean/min/max per field");

    /* flags: OR over ranks (a MAX of the word would lose bits) */
    unsigned local = (R == 1 ? AVSR_CTL_CHECKPOINT : 0u) | (R == N - 1 ? AVSR_CTL_STOP : 0u);
    unsigned g = 0;
    rc = avsr_coord_agree_flags(C, local, &g, &err);
    check(rc == 0 && g == (AVSR_CTL_CHECKPOINT | AVSR_CTL_STOP),
          "coord: flags agree to the OR over ranks (0x%x)", g);
    rc = avsr_coord_agree_flags(C, 0, &g, &err);
    check(rc == 0 && g == 0, "coord: no flags anywhere -> 0");
}

/* ---- failure and signal modes --------------------------------------------- */

static void write_pid(const char *dir)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/pid", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "rank %d: cannot write %s\n", R, path);
        exit(1);
    }
}

static int mode_kill(const char *dir)
{
    avsr_error err = {0};
    const int64_t n = 1 << 20;
    float *buf = calloc((size_t)n, sizeof(float));
    for (int it = 0; it < 4000; it++) { /* ends on its own after ~20 s at most */
        if (avsr_comm_allreduce_sum_f32(C, buf, n, &err) < 0)
            die("allreduce", &err);
        if (it == 0 && R == 1)
            write_pid(dir);
        if (it % 50 == 0)
            usleep(1000);
    }
    free(buf);
    return 0;
}

static int mode_signal(const char *dir)
{
    avsr_error err = {0};
    if (avsr_signals_install(&err) < 0)
        die("signals", &err);
    if (avsr_comm_barrier(C, &err) < 0) /* handlers are in place everywhere */
        die("barrier", &err);
    if (R == 1)
        write_pid(dir);
    for (int step = 0; step < 500; step++) {
        double work[64] = {0};
        if (avsr_comm_allreduce_sum_f64(C, work, 64, &err) < 0)
            die("allreduce", &err);
        usleep(20000);
        unsigned g, local = avsr_signals_ctl_flags(avsr_signals_take());
        if (avsr_coord_agree_flags(C, local, &g, &err) < 0)
            die("flags", &err);
        if (g & AVSR_CTL_STOP) {
            int s[2] = {step, -step};
            if (avsr_comm_allreduce_max_int(C, s, 2, &err) < 0)
                die("allreduce", &err);
            if (s[0] != -s[1] || g != (AVSR_CTL_STOP | AVSR_CTL_CHECKPOINT | AVSR_CTL_PREEMPTED)) {
                fprintf(stderr, "rank %d: ranks disagree (steps %d..%d, flags 0x%x)\n", R, -s[1],
                        s[0], g);
                return 1;
            }
            if (R == 0)
                printf("all %d ranks stop at step %d with flags 0x%x (signal seen on rank 1 "
                       "only); exiting %d\n", N, step, g, AVSR_EXIT_REQUEUE);
            fflush(stdout);
            avsr_comm_destroy(C);
            return AVSR_EXIT_REQUEUE;
        }
    }
    fprintf(stderr, "rank %d: no signal arrived\n", R);
    return 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    avsr_error err = {0};
    avsr_comm_opts o = {0};
    if (strcmp(mode, "all") == 0) {
        o.no_abort = true;  /* error messages are checked */
        o.timeout_s = 20.0; /* a bug that desynchronises ranks fails instead of hanging */
    } else if (strcmp(mode, "kill") == 0) {
        o.timeout_s = -1.0; /* measure what Open MPI itself does */
    } else if (strcmp(mode, "hang") == 0) {
        o.timeout_s = 2.0;
    }
    C = avsr_comm_mpi_create(&argc, &argv, &o, &err);
    if (!C)
        die("comm", &err);
    R = avsr_comm_rank(C);
    N = avsr_comm_size(C);
    if (R != 0 && strcmp(mode, "all") == 0) /* only rank 0 prints TAP */
        if (!freopen("/dev/null", "w", stdout))
            die("freopen", NULL);
    int rc = 0;
    if (strcmp(mode, "all") == 0) {
        test_collectives();
        test_grad_sync();
        test_bcast_params();
        test_bn_sync();
        test_coord();
        rc = R == 0 ? tap_done() : 0;
    } else if (strcmp(mode, "kill") == 0 && argc > 2) {
        rc = mode_kill(argv[2]);
    } else if (strcmp(mode, "hang") == 0) {
        if (R == 1)
            sleep(60); /* alive, but never arrives */
        avsr_comm_barrier(C, &err);
        rc = 1; /* the watchdog should have ended the job */
    } else if (strcmp(mode, "abort") == 0) {
        char b[4] = {0};
        avsr_comm_bcast(C, b, sizeof b, N + 5, &err); /* invalid root: aborts */
        rc = 1;
    } else if (strcmp(mode, "signal") == 0 && argc > 2) {
        return mode_signal(argv[2]);
    } else {
        fprintf(stderr, "usage: test_dist_mpi all|kill DIR|hang|abort|signal DIR\n");
        rc = 2;
    }
    avsr_comm_destroy(C);
    return rc;
}
