/* test_safetensors: the reader against hostile files (each rejection's
 * message is asserted), and the writer: every dtype, a 10 MB tensor, no
 * temporary left behind, the old file kept when a write fails. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "tap.h"

static char dir[512]; /* scratch directory for this run */

static const char *path_in(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

static void write_raw(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n) || fclose(f) != 0)
        tap_bail("cannot write %s", path);
}

/* A file: 8-byte little-endian `hlen` (the real header length unless
 * hlen_override >= 0), the header text, then `datalen` bytes of data. */
static const char *make_file(const char *name, const char *header, size_t datalen,
                             long long hlen_override)
{
    size_t hl = strlen(header);
    uint64_t v = hlen_override >= 0 ? (uint64_t)hlen_override : hl;
    size_t n = 8 + hl + datalen;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < datalen; i++)
        b[8 + hl + i] = (unsigned char)(i * 7 + 1);
    const char *p = path_in(name);
    write_raw(p, b, n);
    free(b);
    return p;
}

/* The file must be rejected with a message containing `want` (and naming
 * the file). */
static void reject(const char *path, const char *want, const char *what)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(path, &err);
    bool ok = !st && err.code != 0 && strstr(err.msg, want) && strstr(err.msg, path);
    tap_ok(ok, "rejects %s: \"%s\"", what, err.msg);
    if (!ok && !st)
        tap_diag("  expected a message containing \"%s\"", want);
    avsr_st_close(st);
}

static void accept(const char *path, int ntensors, const char *what)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(path, &err);
    tap_ok(st && avsr_st_count(st) == ntensors, "accepts %s (%d tensors) %s", what,
           st ? avsr_st_count(st) : -1, err.msg);
    avsr_st_close(st);
}

#define T4 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"

static void test_hostile(void)
{
    /* sizes and the length field */
    write_raw(path_in("empty"), "", 0);
    reject(path_in("empty"), "0 bytes: too short for a safetensors header", "an empty file");
    write_raw(path_in("short"), "\x02\0\0\0\0", 5);
    reject(path_in("short"), "5 bytes: too short for a safetensors header",
           "a file shorter than 8 bytes");
    reject(make_file("hl_past", "{}", 0, 100),
           "header length 100 is past the end of the file (10 bytes; truncated?)",
           "a header length past the end of the file");
    reject(make_file("hl_huge", "{}", 0, 200000000),
           "header length 200000000 exceeds the 104857600-byte limit",
           "a header length over the 100 MB limit");
    reject(make_file("hl_max", "{}", 0, 0x7fffffffffffffffLL), "exceeds the 104857600-byte limit",
           "a header length of 2^63-1");
    reject(make_file("trunc_data", "{\"a\":" T4 "[0,4]},\"b\":" T4 "[4,8]}}", 6, -1),
           "tensor 'b': data_offsets end 8 is past the data region (6 bytes; file truncated?)",
           "a data region shorter than the offsets");

    /* JSON */
    reject(make_file("badjson", "{\"a\": ", 0, -1), "header JSON:", "bad JSON");
    reject(make_file("zerohdr", "", 0, 0), "header JSON:", "a zero-length header");
    reject(make_file("notobj", "[1, 2]", 0, -1), "header JSON is not an object",
           "a header that is an array");
    reject(make_file("notobj2", "\"x\"", 0, -1), "header JSON:", "a header that is a string");
    reject(make_file("dupname", "{\"a\":" T4 "[0,4]},\"a\":" T4 "[4,8]}}", 8, -1),
           "duplicate object key", "duplicate tensor names");
    reject(make_file("badutf8", "{\"a\xff\":" T4 "[0,4]}}", 4, -1), "header JSON:",
           "a name that is not UTF-8");
    reject(make_file("nul", "{\"a\\u0000b\":" T4 "[0,4]}}", 4, -1), "header JSON:",
           "a name with an escaped NUL");
    {
        /* nesting deep enough to overflow a recursive parser's stack */
        size_t depth = 100000;
        char *h = malloc(depth + 3);
        memset(h, '[', depth);
        h[depth] = '\0';
        reject(make_file("deep", h, 0, -1), "header JSON:", "100000 nested arrays");
        free(h);
    }
    reject(make_file("bigint", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                               "\"data_offsets\":[0,99999999999999999999]}}",
                     4, -1),
           "header JSON:", "an integer beyond 64 bits");

    /* tensor entries */
    reject(make_file("entry", "{\"a\":[1]}", 0, -1), "tensor 'a': entry is not an object",
           "a tensor entry that is not an object");
    reject(make_file("nodtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1),
           "tensor 'a': missing string \"dtype\"", "a missing dtype");
    reject(make_file("dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                     -1),
           "tensor 'a': unknown dtype \"F8\"", "an unknown dtype");
    reject(make_file("dtypecase",
                     "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1),
           "unknown dtype \"f32\"", "a lower-case dtype");
    reject(make_file("noshape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, -1),
           "tensor 'a': missing array \"shape\"", "a missing shape");
    reject(make_file("negshape",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
                     -1),
           "tensor 'a': shape[1] is not a non-negative integer", "a negative dimension");
    reject(make_file("fshape",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, -1),
           "tensor 'a': shape[0] is not a non-negative integer", "a non-integer dimension");
    reject(make_file("sshape",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                     -1),
           "shape[0] is not a non-negative integer", "a dimension given as a string");
    reject(make_file("dims",
                     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                     1, -1),
           "tensor 'a': 7 dimensions (at most 6 supported)", "too many dimensions");
    reject(make_file("ovf",
                     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
                     "\"data_offsets\":[0,1]}}",
                     1, -1),
           "tensor 'a': shape overflows", "a shape whose element count overflows");
    reject(make_file("bytesovf",
                     "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
                     "\"data_offsets\":[0,8]}}",
                     8, -1),
           "tensor 'a': 8 bytes for 2305843009213693952 elements of F64",
           "an element count whose byte size overflows");
    reject(path_in("bytesovf"), "(byte size overflows)", "byte size overflow named");
    reject(make_file("count", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                     8, -1),
           "tensor 'a': 8 bytes for 3 elements of F32 (expected 12)",
           "a byte count that does not match dtype x shape");
    reject(make_file("offs3", "{\"a\":" T4 "[0,4,8]}}", 8, -1),
           "tensor 'a': \"data_offsets\" must be [begin, end]", "three data offsets");
    reject(make_file("offsneg", "{\"a\":" T4 "[-4,0]}}", 4, -1),
           "tensor 'a': data_offsets are not non-negative integers", "a negative offset");
    reject(make_file("beginend", "{\"a\":" T4 "[8,4]}}", 8, -1),
           "tensor 'a': data_offsets begin 8 > end 4", "begin > end");

    /* coverage of the data region */
    reject(make_file("overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                     12, -1),
           "tensor 'b' overlaps tensor 'a'", "overlapping offsets");
    reject(make_file("same", "{\"a\":" T4 "[0,4]},\"b\":" T4 "[0,4]}}", 4, -1),
           "overlaps tensor", "two tensors on the same bytes");
    reject(make_file("hole", "{\"a\":" T4 "[0,4]},\"b\":" T4 "[8,12]}}", 12, -1),
           "bytes 4..8 of the data region belong to no tensor", "a hole in the data region");
    reject(make_file("lead", "{\"a\":" T4 "[4,8]}}", 8, -1),
           "bytes 0..4 of the data region belong to no tensor", "a hole at the start");
    reject(make_file("trail", "{\"a\":" T4 "[0,4]}}", 8, -1),
           "data region has 8 bytes, tensors cover 4 (trailing bytes)", "trailing bytes");
    reject(make_file("trail0", "{}", 3, -1),
           "data region has 3 bytes, tensors cover 0 (trailing bytes)",
           "data bytes with no tensors");

    /* metadata */
    reject(make_file("metaint", "{\"__metadata__\":{\"k\":\"v\",\"n\":1}}", 0, -1),
           "__metadata__ value of 'n' is not a string", "__metadata__ with a number value");
    reject(make_file("metaobj", "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, -1),
           "__metadata__ value of 'k' is not a string", "__metadata__ with an object value");
    reject(make_file("metanull", "{\"__metadata__\":{\"k\":null}}", 0, -1),
           "__metadata__ value of 'k' is not a string", "__metadata__ with a null value");
    reject(make_file("metaarr", "{\"__metadata__\":[\"a\"]}", 0, -1),
           "__metadata__ is not an object", "__metadata__ that is an array");

    /* not files */
    char d[1100];
    snprintf(d, sizeof d, "%s/adir.safetensors", dir);
    mkdir(d, 0755);
    reject(d, "not a regular file", "a directory");
    reject(path_in("missing.safetensors"), "cannot open: No such file or directory",
           "a missing file");

    /* what is valid at the edges */
    accept(make_file("ok_empty", "{}", 0, -1), 0, "an empty header object");
    accept(make_file("ok_pad", "{\"a\":" T4 "[0,4]}}     ", 4, -1), 1,
           "a header padded with spaces");
    accept(make_file("ok_zero",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                     "\"b\":" T4 "[0,4]},\"s\":{\"dtype\":\"I64\",\"shape\":[],"
                     "\"data_offsets\":[4,12]}}",
                     12, -1),
           3, "a zero-size tensor and a scalar");
    accept(make_file("ok_order", "{\"z\":" T4 "[4,8]},\"a\":" T4 "[0,4]}}", 8, -1), 2,
           "tensors listed out of offset order");
    {
        avsr_error err = {0};
        avsr_st *st = avsr_st_open(path_in("ok_order"), &err);
        avsr_st_tensor t0, t1;
        if (st) {
            avsr_st_get(st, 0, &t0);
            avsr_st_get(st, 1, &t1);
        }
        tap_ok(st && strcmp(t0.name, "a") == 0 && strcmp(t1.name, "z") == 0 &&
                   avsr_st_find(st, "nope", NULL) < 0 && avsr_st_meta(st, "x") == NULL &&
                   avsr_st_meta_count(st) == 0,
               "tensors are listed in data order; absent names and keys are not found");
        avsr_st_close(st);
    }
    /* parse() of a buffer names it by `what` */
    avsr_error err = {0};
    avsr_st *st = avsr_st_parse("\x10\0\0\0\0\0\0\0{}", 10, "net buffer", &err);
    tap_ok(!st && strstr(err.msg, "net buffer: header length 16 is past the end"),
           "parse() names the buffer: \"%s\"", err.msg);
}

/* ---- writer ---------------------------------------------------------------- */

static bool no_temporaries(void)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    bool none = true;
    while (dp && (e = readdir(dp)))
        if (strstr(e->d_name, ".tmp."))
            none = false;
    if (dp)
        closedir(dp);
    return none;
}

static void test_writer_dtypes(void)
{
    float f32[5] = {1.5f, -2.25f, 0.0f, 1e-30f, 3e38f};
    double f64[3] = {1.0 / 3.0, -1e300, 0.5};
    /* F16 1.5 = 0x3e00, -2 = 0xc000; BF16 1.5 = 0x3fc0, -2 = 0xc000 */
    uint16_t f16[2] = {0x3e00, 0xc000}, bf16[2] = {0x3fc0, 0xc000};
    int8_t i8[3] = {-128, 0, 127};
    int16_t i16[2] = {-32768, 32767};
    int32_t i32[2] = {-7, 2147483647};
    int64_t i64[2] = {-3, 1LL << 40};
    uint8_t u8[4] = {0, 1, 200, 255}, b8[3] = {1, 0, 1};
    float scalar = 42.0f;
    const struct {
        const char *name;
        avsr_dtype dt;
        int ndim;
        int64_t shape[3];
        const void *data;
        float first; /* read_f32 of element 0 */
    } t[] = {
        {"w.f32", AVSR_F32, 1, {5}, f32, 1.5f},
        {"w.f64", AVSR_F64, 2, {3, 1}, f64, (float)(1.0 / 3.0)},
        {"w.f16", AVSR_F16, 1, {2}, f16, 1.5f},
        {"w.bf16", AVSR_BF16, 1, {2}, bf16, 1.5f},
        {"w.i8", AVSR_I8, 1, {3}, i8, -128.0f},
        {"w.i16", AVSR_I16, 1, {2}, i16, -32768.0f},
        {"w.i32", AVSR_I32, 1, {2}, i32, -7.0f},
        {"w.i64", AVSR_I64, 1, {2}, i64, -3.0f},
        {"w.u8", AVSR_U8, 2, {2, 2}, u8, 0.0f},
        {"w.bool", AVSR_BOOL, 1, {3}, b8, 1.0f},
        {"scalar", AVSR_F32, 0, {0}, &scalar, 42.0f},
        {"empty", AVSR_F32, 3, {2, 0, 3}, NULL, 0.0f},
    };
    int nt = (int)(sizeof t / sizeof *t);
    avsr_error err = {0};
    avsr_st_writer *w = avsr_st_writer_create();
    for (int i = 0; i < nt; i++)
        if (avsr_st_writer_add(w, t[i].name, t[i].dt, t[i].ndim, t[i].shape, t[i].data, &err) <
            0)
            tap_bail("writer_add %s: %s", t[i].name, err.msg);
    avsr_st_writer_meta(w, "format", "pt", &err);
    avsr_st_writer_meta(w, "config", "{\"d\": 1}", &err);
    const char *path = path_in("all.safetensors");
    tap_ok(avsr_st_writer_write(w, path, &err) == 0, "writer: every dtype written %s", err.msg);
    avsr_st_writer_destroy(w);
    tap_ok(no_temporaries(), "writer: no temporary file left after success");

    avsr_st *st = avsr_st_open(path, &err);
    tap_ok(st && avsr_st_count(st) == nt, "writer: %d tensors read back %s", nt, err.msg);
    if (!st)
        return;
    for (int i = 0; i < nt; i++) {
        avsr_st_tensor r;
        bool ok = avsr_st_find(st, t[i].name, &r) == 0 && r.dtype == t[i].dt &&
                  r.ndim == t[i].ndim;
        for (int d = 0; ok && d < t[i].ndim; d++)
            ok = r.shape[d] == t[i].shape[d];
        int64_t n = 1;
        for (int d = 0; d < t[i].ndim; d++)
            n *= t[i].shape[d];
        ok = ok && r.numel == n && r.nbytes == (size_t)n * avsr_dtype_size(t[i].dt);
        ok = ok && (n == 0 || memcmp(r.data, t[i].data, r.nbytes) == 0);
        float first = 0;
        if (ok && n > 0) {
            float *buf = malloc(sizeof(float) * (size_t)n);
            ok = avsr_st_read_f32(st, t[i].name, t[i].ndim, t[i].shape, buf, &err) == 0;
            first = buf[0];
            free(buf);
            ok = ok && first == t[i].first;
        }
        tap_ok(ok, "writer round trip: %s (%s, %lld elements%s)", t[i].name,
               avsr_dtype_name(t[i].dt), (long long)n, n > 0 ? ", read_f32 converts" : "");
    }
    const char *m = avsr_st_meta(st, "config");
    tap_ok(m && strcmp(m, "{\"d\": 1}") == 0 && avsr_st_meta_count(st) == 2,
           "writer: metadata round trip");
    avsr_st_close(st);

    /* data region 8-byte aligned in the file */
    FILE *f = fopen(path, "rb");
    unsigned char l8[8];
    uint64_t hl = 0;
    if (f && fread(l8, 1, 8, f) == 8)
        for (int i = 7; i >= 0; i--)
            hl = (hl << 8) | l8[i];
    if (f)
        fclose(f);
    tap_ok(hl > 0 && hl % 8 == 0, "writer: header padded to a multiple of 8 (%llu)",
           (unsigned long long)hl);
}

static void test_writer_big(void)
{
    int64_t n = 10 * 1024 * 1024 / 4; /* 10 MB of f32 */
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)i * 0.5f - 7.0f;
    avsr_error err = {0};
    avsr_st_writer *w = avsr_st_writer_create();
    avsr_st_writer_add(w, "big", AVSR_F32, 1, &n, x, &err);
    const char *path = path_in("big.safetensors");
    tap_ok(avsr_st_writer_write(w, path, &err) == 0, "writer: 10 MB tensor written %s",
           err.msg);
    avsr_st_writer_destroy(w);
    avsr_st *st = avsr_st_open(path, &err);
    avsr_st_tensor t;
    tap_ok(st && avsr_st_find(st, "big", &t) == 0 && t.numel == n &&
               memcmp(t.data, x, (size_t)n * 4) == 0,
           "writer: 10 MB tensor read back bit for bit");
    avsr_st_close(st);
    free(x);
}

static bool file_equals(const char *path, const void *want, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char *b = malloc(n + 1);
    size_t got = fread(b, 1, n + 1, f);
    fclose(f);
    bool eq = got == n && memcmp(b, want, n) == 0;
    free(b);
    return eq;
}

static void test_writer_failures(void)
{
    avsr_error err = {0};
    float a[3] = {1, 2, 3};
    int64_t s3 = 3;

    /* target directory missing */
    avsr_st_writer *w = avsr_st_writer_create();
    avsr_st_writer_add(w, "a", AVSR_F32, 1, &s3, a, &err);
    const char *nodir = path_in("no/such/dir/x.safetensors");
    tap_ok(avsr_st_writer_write(w, nodir, &err) < 0 && strstr(err.msg, "cannot create") &&
               strstr(err.msg, "No such file or directory"),
           "writer: missing directory: \"%s\"", err.msg);
    avsr_st_writer_destroy(w);

    /* an existing file survives a failed rewrite */
    const char *path = path_in("keep.safetensors");
    w = avsr_st_writer_create();
    avsr_st_writer_add(w, "a", AVSR_F32, 1, &s3, a, &err);
    avsr_st_writer_write(w, path, &err);
    avsr_st_writer_destroy(w);
    FILE *f = fopen(path, "rb");
    static char old[4096];
    size_t oldn = f ? fread(old, 1, sizeof old, f) : 0;
    if (f)
        fclose(f);

    /* (1) the temporary cannot be created: a directory sits at its name */
    char tmpname[1200];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    mkdir(tmpname, 0755);
    float b[3] = {9, 9, 9};
    w = avsr_st_writer_create();
    avsr_st_writer_add(w, "a", AVSR_F32, 1, &s3, b, &err);
    avsr_error_clear(&err);
    tap_ok(avsr_st_writer_write(w, path, &err) < 0 && strstr(err.msg, "cannot create"),
           "writer: temporary cannot be created: \"%s\"", err.msg);
    avsr_st_writer_destroy(w);
    rmdir(tmpname);
    tap_ok(oldn > 0 && file_equals(path, old, oldn), "writer: old file intact after that");

    /* (2) the disk fills up half way (file size limit): the write fails,
     * the temporary is removed, the old file stays */
    struct rlimit save, lim;
    getrlimit(RLIMIT_FSIZE, &save);
    lim = save;
    lim.rlim_cur = 1 << 20;
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    int64_t n = 4 << 20; /* 16 MB */
    float *big = calloc((size_t)n, sizeof(float));
    w = avsr_st_writer_create();
    avsr_st_writer_add(w, "a", AVSR_F32, 1, &n, big, &err);
    avsr_error_clear(&err);
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = avsr_st_writer_write(w, path, &err);
    setrlimit(RLIMIT_FSIZE, &save);
    signal(SIGXFSZ, oldsig);
    tap_ok(rc < 0 && (strstr(err.msg, "write failed") || strstr(err.msg, "flush failed")) &&
               strstr(err.msg, "File too large"),
           "writer: write error half way: \"%s\"", err.msg);
    avsr_st_writer_destroy(w);
    free(big);
    tap_ok(file_equals(path, old, oldn), "writer: old file intact after a failed write");
    tap_ok(no_temporaries(), "writer: failed writes leave no temporary");
    avsr_st *st = avsr_st_open(path, &err);
    tap_ok(st != NULL, "writer: old file still parses");
    avsr_st_close(st);

    /* bad arguments */
    w = avsr_st_writer_create();
    avsr_error_clear(&err);
    avsr_st_writer_add(w, "a", AVSR_F32, 1, &s3, a, &err);
    tap_ok(avsr_st_writer_add(w, "a", AVSR_F32, 1, &s3, a, &err) < 0 &&
               strstr(err.msg, "safetensors: duplicate tensor 'a'"),
           "writer: duplicate name: \"%s\"", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_st_writer_add(w, "__metadata__", AVSR_F32, 1, &s3, a, &err) < 0 &&
               strstr(err.msg, "reserved tensor name '__metadata__'"),
           "writer: reserved name: \"%s\"", err.msg);
    avsr_error_clear(&err);
    int64_t neg = -2;
    tap_ok(avsr_st_writer_add(w, "n", AVSR_F32, 1, &neg, a, &err) < 0 &&
               strstr(err.msg, "tensor 'n': bad shape"),
           "writer: negative dimension: \"%s\"", err.msg);
    avsr_error_clear(&err);
    int64_t seven[7] = {1, 1, 1, 1, 1, 1, 1};
    tap_ok(avsr_st_writer_add(w, "s", AVSR_F32, 7, seven, a, &err) < 0 &&
               strstr(err.msg, "tensor 's': bad shape"),
           "writer: 7 dimensions: \"%s\"", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_st_writer_meta(w, "k", "bad \xff utf8", &err) < 0 &&
               strstr(err.msg, "metadata 'k' is not valid UTF-8"),
           "writer: metadata that is not UTF-8: \"%s\"", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_st_writer_add(w, "d", (avsr_dtype)99, 1, &s3, a, &err) < 0 &&
               strstr(err.msg, "tensor 'd': unknown dtype 99"),
           "writer: unknown dtype rejected: \"%s\"", err.msg);
    avsr_st_writer_destroy(w);
}

static void rm_rf(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    char p[2048];
    while (dp && (e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        struct stat s;
        if (lstat(p, &s) == 0 && S_ISDIR(s.st_mode))
            rm_rf(p);
        else
            unlink(p);
    }
    if (dp)
        closedir(dp);
    rmdir(d);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/avsr-st-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s: %s", dir, strerror(errno));
    test_hostile();
    test_writer_dtypes();
    test_writer_big();
    test_writer_failures();
    rm_rf(dir);
    return tap_done();
}
