/* test_core: arena, context, tape, parameter store, safetensors basics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "ctx.h"
#include "op_basic.h"
#include "params.h"
#include "safetensors.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

static void test_arena(void)
{
    avsr_arena *a = avsr_arena_create(0);
    char *p = avsr_arena_alloc(a, 10);
    char *q = avsr_arena_alloc(a, 100);
    tap_ok(((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "arena: 64-byte alignment");
    tap_ok(q >= p + 64, "arena: allocations do not overlap");
    /* outgrow the first block, then reset: one block of the peak size */
    for (int i = 0; i < 5; i++)
        avsr_arena_alloc(a, 1 << 20);
    size_t peak = avsr_arena_peak(a);
    tap_ok(peak >= 5u << 20, "arena: peak %zu bytes recorded", peak);
    avsr_arena_reset(a);
    tap_ok(avsr_arena_used(a) == 0 && avsr_arena_capacity(a) == peak,
           "arena: reset keeps one block of the peak size (%zu)", avsr_arena_capacity(a));
    size_t cap = avsr_arena_capacity(a);
    for (int i = 0; i < 5; i++)
        avsr_arena_alloc(a, 1 << 20);
    tap_ok(avsr_arena_capacity(a) == cap, "arena: second step makes no new block");
    avsr_arena_destroy(a);
}

static avsr_tensor *op_reshape_sum(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    (void)user;
    int64_t s[2] = {-1, 3};
    avsr_tensor *r = avsr_op_reshape(ctx, in[0], 2, s);
    return avsr_op_dot_const(ctx, r, avsr_f32(in[1]));
}

static void test_tape(avsr_ctx *ctx)
{
    int64_t shape[3] = {2, 3, 3};
    avsr_tensor *x = tu_rand(3, shape, 1, -1, 1, true);
    avsr_tensor *w = tu_rand(3, shape, 2, -1, 1, false);
    avsr_tensor *in[2] = {x, w};
    tu_gradcheck("reshape+dot_const", ctx, op_reshape_sum, NULL, 2, in, NULL);
    /* exact: d/dx sum(x*w) = w */
    memset(x->grad, 0, sizeof(float) * 18);
    avsr_tensor *L = op_reshape_sum(ctx, in, NULL);
    avsr_backward(ctx, L, NULL);
    tu_close("dot_const gradient equals the constant", x->grad, avsr_f32(w), 18, 0, 0);
    /* no-grad mode records nothing */
    avsr_ctx_reset(ctx);
    avsr_ctx_set_grad(ctx, false);
    L = op_reshape_sum(ctx, in, NULL);
    tap_ok(L && avsr_tape_size(ctx) == 0 && !avsr_tensor_requires_grad(L),
           "no-grad mode records no tape entries");
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_reset(ctx);
    /* inputs without grad: no entries */
    avsr_tensor *c = tu_rand(3, shape, 3, -1, 1, false);
    avsr_tensor *in2[2] = {c, w};
    L = op_reshape_sum(ctx, in2, NULL);
    tap_ok(L && avsr_tape_size(ctx) == 0, "no tape entries when no input requires grad");
    tap_ok(avsr_backward(ctx, L, NULL) < 0 &&
               strstr(avsr_ctx_errmsg(ctx), "does not depend on anything that requires grad"),
           "backward on a constant loss fails with a message");
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    /* sticky error: a bad reshape poisons the chain, the first message stays */
    int64_t bad[1] = {7};
    avsr_tensor *r = avsr_op_reshape(ctx, x, 1, bad);
    avsr_tensor *s = avsr_op_sum_all(ctx, r);
    tap_ok(!r && !s && strstr(avsr_ctx_errmsg(ctx), "reshape: [2, 3, 3] has 18 elements, new shape has 7"),
           "sticky error keeps the first message: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(w);
    avsr_tensor_free(c);
}

static void test_params(void)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    int64_t s1[2] = {3, 5}, s2[1] = {7}, s3[1] = {1};
    avsr_tensor *a = avsr_params_add(p, "encoder.layers.0.linear.weight", 2, s1, &err);
    avsr_tensor *b = avsr_params_add(p, "encoder.layers.0.linear.bias", 1, s2, &err);
    avsr_tensor *rm = avsr_params_add_buffer(p, "frontend.bn.running_mean", AVSR_F32, 1, s2, &err);
    avsr_tensor *nb = avsr_params_add_buffer(p, "frontend.bn.num_batches_tracked", AVSR_I64, 0, s3, &err);
    avsr_tensor *c = avsr_params_add(p, "decoder.embed.weight", 1, s2, &err);
    tap_ok(avsr_params_add(p, "decoder.embed.weight", 1, s2, &err) == NULL &&
               strstr(err.msg, "duplicate name 'decoder.embed.weight'"),
           "params: duplicate name rejected: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_params_finalize(p, &err) == 0, "params: finalize");
    tap_ok(avsr_params_count(p) == 5 && avsr_params_count_trainable(p) == 3, "params: counts");
    tap_ok(a->data == avsr_params_data(p) && ((uintptr_t)b->data % 64) == 0 &&
               ((uintptr_t)c->data % 64) == 0,
           "params: views into the flat buffer, 64-byte aligned");
    tap_ok(a->grad == avsr_params_grad(p) && b->grad == avsr_params_grad(p) + avsr_params_offset(p, 1),
           "params: gradients are views into the flat gradient buffer");
    tap_ok(avsr_params_numel(p) == 15 + 7 + 7, "params: numel %lld", (long long)avsr_params_numel(p));
    tap_ok(rm->data && nb->data && !avsr_tensor_requires_grad(rm), "params: buffers allocated, no grad");
    tap_ok(avsr_params_set_requires_grad(p, "encoder.*", false) == 2 &&
               !avsr_tensor_requires_grad(a) && !avsr_tensor_requires_grad(b) &&
               avsr_tensor_requires_grad(c),
           "params: freezing by pattern");
    tap_ok(avsr_params_numel_trainable(p) == 7, "params: trainable numel after freezing");
    tap_ok(avsr_params_find(p, "decoder.embed.weight") == c, "params: find by name");
    float *m0 = avsr_params_moment(p, 0, &err);
    tap_ok(m0 && m0 != avsr_params_moment(p, 1, &err) && m0 == avsr_params_moment(p, 0, &err),
           "params: two moment buffers, allocated once");
    /* initialisation rules: keyed by name, independent of the other tensors */
    tap_ok(avsr_params_set_init(p, a, AVSR_INIT_UNIFORM, 0.5f, &err) == 0 &&
               avsr_params_set_init(p, c, AVSR_INIT_NORMAL, 1.0f, &err) == 0 &&
               avsr_params_set_init(p, rm, AVSR_INIT_ONES, 0, &err) == 0,
           "params: init rules recorded");
    tap_ok(avsr_params_init(p, 7, &err) == 0, "params: init applied");
    bool in_range = true, nonzero = false;
    for (int i = 0; i < 15; i++) {
        float v = avsr_f32(a)[i];
        in_range &= v >= -0.5f && v <= 0.5f;
        nonzero |= v != 0.0f;
    }
    tap_ok(in_range && nonzero && avsr_f32(b)[0] == 0.0f && avsr_f32(rm)[3] == 1.0f,
           "params: uniform in [-a, a], default zeros, ones");
    float first = avsr_f32(a)[0];
    avsr_params *q = avsr_params_create();
    avsr_tensor *qx = avsr_params_add(q, "other.weight", 1, s2, &err);
    avsr_tensor *qa = avsr_params_add(q, "encoder.layers.0.linear.weight", 2, s1, &err);
    avsr_params_finalize(q, &err);
    avsr_params_set_init(q, qa, AVSR_INIT_UNIFORM, 0.5f, &err);
    avsr_params_set_init(q, qx, AVSR_INIT_UNIFORM, 0.5f, &err);
    avsr_params_init(q, 7, &err);
    tap_ok(avsr_f32(qa)[0] == first, "params: a tensor's init depends on its name and seed only");
    avsr_params_destroy(q);
    avsr_params_destroy(p);
}

static void test_safetensors(void)
{
    avsr_error err = {0};
    char path[] = "/tmp/avsr_test_core_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t ia[2] = {-3, 1LL << 40};
    unsigned char u[3] = {0, 128, 255};
    int64_t sa[2] = {2, 3}, si[1] = {2}, su[1] = {3};
    avsr_st_writer *w = avsr_st_writer_create();
    avsr_st_writer_add(w, "a.weight", AVSR_F32, 2, sa, a, &err);
    avsr_st_writer_add(w, "counter", AVSR_I64, 1, si, ia, &err);
    avsr_st_writer_add(w, "bytes", AVSR_U8, 1, su, u, &err);
    avsr_st_writer_meta(w, "config", "{\"dim\": 3}", &err);
    avsr_st_writer_meta(w, "text", "caf\xc3\xa9", &err);
    tap_ok(avsr_st_writer_write(w, path, &err) == 0, "safetensors: write %s", err.msg);
    avsr_st_writer_destroy(w);
    avsr_st *st = avsr_st_open(path, &err);
    tap_ok(st != NULL, "safetensors: read back %s", err.msg);
    if (st) {
        avsr_st_tensor t;
        tap_ok(avsr_st_count(st) == 3, "safetensors: 3 tensors");
        tap_ok(avsr_st_find(st, "a.weight", &t) == 0 && t.dtype == AVSR_F32 && t.ndim == 2 &&
                   t.shape[0] == 2 && t.shape[1] == 3 && memcmp(t.data, a, sizeof a) == 0,
               "safetensors: f32 tensor round trip");
        tap_ok(avsr_st_find(st, "counter", &t) == 0 && t.dtype == AVSR_I64 &&
                   memcmp(t.data, ia, sizeof ia) == 0,
               "safetensors: i64 tensor round trip");
        tap_ok(avsr_st_find(st, "bytes", &t) == 0 && t.dtype == AVSR_U8 && memcmp(t.data, u, 3) == 0,
               "safetensors: u8 tensor round trip");
        const char *m = avsr_st_meta(st, "text");
        tap_ok(m && strcmp(m, "caf\xc3\xa9") == 0 && avsr_st_meta(st, "config"),
               "safetensors: metadata round trip");
        float back[6];
        tap_ok(avsr_st_read_f32(st, "a.weight", 2, sa, back, &err) == 0 && back[5] == 6.0f,
               "safetensors: read_f32");
        int64_t wrong[2] = {3, 2};
        tap_ok(avsr_st_read_f32(st, "a.weight", 2, wrong, back, &err) < 0 &&
                   strstr(err.msg, "tensor 'a.weight' has shape [2, 3], expected [3, 2]"),
               "safetensors: shape mismatch message: %s", err.msg);
        avsr_st_close(st);
    }
    unlink(path);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    test_arena();
    test_tape(ctx);
    test_params();
    test_safetensors();
    avsr_ctx_destroy(ctx);
    return tap_done();
}
