/* fuzz_safetensors: libFuzzer target for the safetensors reader.
 *
 * Every input goes through avsr_st_parse(). A rejected input must come with
 * a message; an accepted one must be self-consistent, and every byte of
 * every tensor, every name and every metadata string is read (so
 * AddressSanitizer sees any pointer that escapes the buffer), and each
 * tensor is converted with avsr_st_read_f32. Built by `make fuzz`
 * (mk/optim.am) and run by scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_safetensors: invariant violated: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_parse(data, size, "fuzz", &err);
    if (!st) {
        check(err.code != 0 && err.msg[0] != '\0', "a rejection has a message");
        return 0;
    }
    volatile unsigned acc = 0;
    size_t covered = 0;
    int n = avsr_st_count(st);
    check(n >= 0, "tensor count is non-negative");
    for (int i = 0; i < n; i++) {
        avsr_st_tensor t, u;
        avsr_st_get(st, i, &t);
        check(t.name != NULL, "tensor has a name");
        acc += (unsigned)strlen(t.name);
        check((unsigned)t.dtype < AVSR_DTYPE_COUNT, "dtype is known");
        check(t.ndim >= 0 && t.ndim <= AVSR_MAX_DIMS, "ndim in range");
        check(avsr_shape_numel(t.ndim, t.shape) == t.numel, "numel matches the shape");
        check(t.nbytes == (size_t)t.numel * avsr_dtype_size(t.dtype), "byte count");
        covered += t.nbytes;
        const unsigned char *b = t.data;
        for (size_t k = 0; k < t.nbytes; k++)
            acc += b[k];
        check(avsr_st_find(st, t.name, &u) == 0 && u.data == t.data, "find by name");
        if (t.numel > 0) {
            float *f = malloc(sizeof(float) * (size_t)t.numel);
            check(f != NULL, "allocation");
            check(avsr_st_read_f32(st, t.name, t.ndim, t.shape, f, &err) == 0, "read_f32");
            for (int64_t k = 0; k < t.numel; k++)
                acc += (unsigned)(f[k] == f[k]);
            free(f);
        }
    }
    check(covered <= size, "tensors fit in the input");
    int nm = avsr_st_meta_count(st);
    for (int i = 0; i < nm; i++) {
        const char *k, *v;
        avsr_st_meta_at(st, i, &k, &v);
        check(k && v, "metadata strings");
        acc += (unsigned)(strlen(k) + strlen(v));
        check(avsr_st_meta(st, k) != NULL, "metadata lookup");
    }
    avsr_st_close(st);
    (void)acc;
    return 0;
}
