/* test_tokenizer: character vocabularies (datasets/tokenizer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/tokenizer.h"
#include "tap.h"

static avsr_vocab *must_default(void)
{
    avsr_vocab *v;
    avsr_error err = {0};
    if (avsr_vocab_default(&v, &err))
        tap_bail("default vocab: %s", err.msg);
    return v;
}

/* encode then decode; returns malloc'd text */
static char *roundtrip(const avsr_vocab *v, const char *text, int64_t *nids, avsr_error *err)
{
    size_t len = strlen(text);
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    int64_t n = avsr_vocab_encode(v, text, len, ids, (int64_t)len, err);
    char *out = n < 0 ? NULL : avsr_vocab_decode(v, ids, n, err);
    if (nids)
        *nids = n;
    free(ids);
    return out;
}

static void test_default(void)
{
    avsr_vocab *v = must_default();
    tap_ok(avsr_vocab_size(v) == 41 && avsr_vocab_eos(v) == 40 &&
               !strcmp(avsr_vocab_symbol(v, 0), "<blank>") &&
               !strcmp(avsr_vocab_symbol(v, 1), "<unk>") && !strcmp(avsr_vocab_symbol(v, 2), " ") &&
               !strcmp(avsr_vocab_symbol(v, 3), "'") && !strcmp(avsr_vocab_symbol(v, 4), "A") &&
               !strcmp(avsr_vocab_symbol(v, 29), "Z") && !strcmp(avsr_vocab_symbol(v, 30), "0") &&
               !strcmp(avsr_vocab_symbol(v, 39), "9") && !strcmp(avsr_vocab_symbol(v, 40), "<eos>") &&
               avsr_vocab_symbol(v, 41) == NULL,
           "default vocab: blank, unk, ' ', ', A-Z, 0-9, eos (41 ids)");
    const char *t = "  it's\tA  test\n of 42 ";
    int32_t ids[64];
    avsr_error err = {0};
    int64_t n = avsr_vocab_encode(v, t, strlen(t), ids, 64, &err);
    char *d = avsr_vocab_decode(v, ids, n, &err);
    tap_ok(n == 17 && d && !strcmp(d, "IT'S A TEST OF 42"),
           "encode normalises (uppercase, whitespace collapsed, trimmed): \"%s\" (%lld ids)",
           d ? d : "(null)", (long long)n);
    free(d);
    tap_ok(ids[0] == avsr_vocab_id(v, 'I') && ids[2] == 3 && ids[4] == 2,
           "ids: I, ', space as expected");
    /* out of vocabulary: unk (default) or dropped */
    const char *u = "caf\xc3\xa9, ok?";
    char *du = roundtrip(v, u, &n, &err);
    tap_ok(du && !strcmp(du, "CAF<unk><unk> OK<unk>"), "OOV -> <unk>: \"%s\"", du ? du : "");
    free(du);
    avsr_vocab_set_oov(v, AVSR_OOV_DROP);
    const char *u2 = "a , b ?";
    du = roundtrip(v, u2, &n, &err);
    tap_ok(du && !strcmp(du, "A B") && n == 3, "OOV dropped, spaces re-collapsed: \"%s\"",
           du ? du : "");
    free(du);
    du = roundtrip(v, "?!", &n, &err);
    tap_ok(du && n == 0 && !strcmp(du, ""), "all dropped -> empty");
    free(du);
    avsr_vocab_set_oov(v, AVSR_OOV_UNK);
    /* decode skips blank, eos and -1; rejects out-of-range ids */
    int32_t d_ids[6] = {0, 4, -1, 5, 40, 0};
    d = avsr_vocab_decode(v, d_ids, 6, &err);
    tap_ok(d && !strcmp(d, "AB"), "decode skips blank, eos and -1: \"%s\"", d ? d : "");
    free(d);
    int32_t bad[3] = {4, 41, 5};
    d = avsr_vocab_decode(v, bad, 3, &err);
    tap_ok(!d && strstr(err.msg, "avsr_vocab_decode: id 41 at position 1 out of range [0, 41)"),
           "decode rejects id 41: %s", err.msg);
    avsr_error_clear(&err);
    /* buffer too small */
    n = avsr_vocab_encode(v, "abc", 3, ids, 2, &err);
    tap_ok(n == -1 && strstr(err.msg, "output buffer of 2 ids is too small"),
           "encode: small buffer rejected");
    avsr_error_clear(&err);
    avsr_vocab_free(v);
}

static void test_utf8_errors(void)
{
    avsr_vocab *v = must_default();
    struct {
        const char *s;
        size_t off;
        const char *what;
    } cases[] = {
        {"ab\xff", 2, "0xff byte"},
        {"abc\xc3", 3, "truncated 2-byte sequence"},
        {"a\xc0\xaf", 1, "overlong '/'"},
        {"a\xed\xa0\x80z", 1, "UTF-16 surrogate"},
        {"xy\xf4\x90\x80\x80", 2, "above U+10FFFF"},
        {"\xe2\x82 ", 0, "bad continuation byte"},
        {"ok \x80", 3, "lone continuation byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        avsr_error err = {0};
        int32_t ids[16];
        char want[96];
        snprintf(want, sizeof want, "avsr_vocab_encode: invalid UTF-8 at byte offset %zu",
                 cases[i].off);
        int64_t n = avsr_vocab_encode(v, cases[i].s, strlen(cases[i].s), ids, 16, &err);
        tap_ok(n == -1 && strstr(err.msg, want), "invalid UTF-8 (%s): %s", cases[i].what,
               err.msg);
    }
    avsr_error err = {0};
    char *s = avsr_vocab_normalize_text("ok\xc3(", 4, &err);
    tap_ok(!s && strstr(err.msg, "avsr_vocab_normalize_text: invalid UTF-8 at byte offset 2 (byte 0xc3)"),
           "normalize: %s", err.msg);
    avsr_error_clear(&err);
    const char *texts[2] = {"fine", "bro\xa0ken"};
    avsr_vocab *b;
    tap_ok(avsr_vocab_build(&b, texts, 2, &err) == -1 &&
               strstr(err.msg, "text 1: avsr_vocab_build: invalid UTF-8 at byte offset 3"),
           "build names the text and offset: %s", err.msg);
    s = avsr_vocab_normalize_text(" \t héllo   wörld \n", strlen(" \t héllo   wörld \n"), NULL);
    tap_ok(s && !strcmp(s, "HéLLO WöRLD"), "normalize: ASCII uppercase only, spaces collapsed");
    free(s);
    avsr_vocab_free(v);
}

static void test_built(void)
{
    const char *texts[] = {
        "Grüße aus Köln",
        "naïve café\tdéjà vu",
        "日本語のテキスト",
        "emoji \xf0\x9f\x99\x82 ok",
        "Ελληνικά κείμενο",
    };
    avsr_vocab *v, *v2;
    avsr_error err = {0};
    if (avsr_vocab_build(&v, texts, 5, &err))
        tap_bail("build: %s", err.msg);
    /* build from a permutation of the texts: same vocabulary */
    const char *perm[] = {texts[3], texts[0], texts[4], texts[2], texts[1]};
    avsr_vocab_build(&v2, perm, 5, &err);
    char *j1 = avsr_vocab_to_json(v, &err), *j2 = avsr_vocab_to_json(v2, &err);
    tap_ok(j1 && j2 && !strcmp(j1, j2), "build: deterministic, independent of text order");
    bool sorted = true;
    const unsigned char *prev = (const unsigned char *)"";
    for (int32_t id = 2; id < avsr_vocab_size(v) - 1; id++) {
        const unsigned char *s = (const unsigned char *)avsr_vocab_symbol(v, id);
        sorted &= strcmp((const char *)prev, (const char *)s) < 0; /* UTF-8 order = code point order */
        prev = s;
    }
    tap_ok(sorted && !strcmp(avsr_vocab_symbol(v, 2), " ") &&
               avsr_vocab_id(v, 0x1F642) > 0 && avsr_vocab_id(v, 'a') < 0 &&
               avsr_vocab_id(v, 'A') > 0,
           "build: %d characters sorted by code point, space first, lower-case ASCII folded",
           avsr_vocab_size(v) - 3);
    bool rt = true;
    for (int i = 0; i < 5; i++) {
        char *norm = avsr_vocab_normalize_text(texts[i], strlen(texts[i]), &err);
        char *d = roundtrip(v, texts[i], NULL, &err);
        rt &= norm && d && !strcmp(norm, d);
        if (!(norm && d && !strcmp(norm, d)))
            tap_diag("'%s' -> '%s'", norm ? norm : "", d ? d : "");
        free(norm);
        free(d);
    }
    tap_ok(rt, "non-ASCII round trip: decode(encode(t)) = normalise(t) for all texts");
    /* JSON round trip keeps ids and oov mode */
    avsr_vocab_set_oov(v, AVSR_OOV_DROP);
    free(j1);
    j1 = avsr_vocab_to_json(v, &err);
    avsr_vocab *v3;
    int rc = avsr_vocab_from_json(&v3, j1, &err);
    bool same = rc == 0 && avsr_vocab_size(v3) == avsr_vocab_size(v) &&
                avsr_vocab_oov(v3) == AVSR_OOV_DROP;
    for (int32_t id = 0; same && id < avsr_vocab_size(v); id++)
        same = !strcmp(avsr_vocab_symbol(v, id), avsr_vocab_symbol(v3, id));
    tap_ok(same, "JSON round trip (%zu bytes, ASCII-escaped) keeps symbols, ids, oov", strlen(j1));
    tap_diag("%.160s...", j1);
    avsr_vocab *d0 = must_default();
    char *jd = avsr_vocab_to_json(d0, &err);
    tap_ok(jd && strstr(jd, "{\"type\":\"char\",\"version\":1,\"oov\":\"unk\",\"blank\":0,"
                            "\"unk\":1,\"eos\":40,\"symbols\":[\"<blank>\",\"<unk>\",\" \",\"'\",\"A\""),
           "default JSON: %.90s...", jd ? jd : "");
    free(jd);
    avsr_vocab_free(d0);
    avsr_vocab_free(v3);
    free(j1);
    free(j2);
    avsr_vocab_free(v);
    avsr_vocab_free(v2);
}

static void test_json_errors(void)
{
    struct {
        const char *json, *want;
    } cases[] = {
        {"{\"type\":\"char\",", "avsr_vocab_from_json: line 1 column"},
        {"{\"type\":\"bpe\",\"version\":1}", "not a character or word vocabulary"},
        {"{\"type\":\"char\",\"version\":2,\"symbols\":[]}", "unsupported \"version\""},
        {"{\"type\":\"char\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"<eos>\"]}",
         "at least 4 strings"},
        {"{\"type\":\"char\",\"version\":1,\"symbols\":[\"<unk>\",\"<blank>\",\"A\",\"<eos>\"]}",
         "symbol 0 must be \"<blank>\""},
        {"{\"type\":\"char\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"AB\",\"<eos>\"]}",
         "symbol 2 must be one normalised, non-control character"},
        {"{\"type\":\"char\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"a\",\"<eos>\"]}",
         "symbol 2 must be one normalised"},
        {"{\"type\":\"char\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"A\",\"B\",\"A\","
         "\"<eos>\"]}",
         "duplicate symbol \"A\" at ids 2 and 4"},
        {"{\"type\":\"char\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"\\u00e9\",\"B\","
         "\"\\u00e9\",\"<eos>\"]}",
         "duplicate symbol"},
        {"{\"type\":\"char\",\"version\":1,\"oov\":\"skip\",\"symbols\":[\"<blank>\",\"<unk>\","
         "\"A\",\"<eos>\"]}",
         "\"oov\" must be \"unk\" or \"drop\""},
        {"{\"type\":\"char\",\"version\":1,\"eos\":5,\"symbols\":[\"<blank>\",\"<unk>\",\"A\","
         "\"<eos>\"]}",
         "\"eos\" must be 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        avsr_vocab *v = NULL;
        avsr_error err = {0};
        int rc = avsr_vocab_from_json(&v, cases[i].json, &err);
        tap_ok(rc == -1 && !v && strstr(err.msg, cases[i].want), "bad JSON %zu: %s", i, err.msg);
    }
}

/* word vocabularies: built from text, encode/decode, OOV, JSON round trip */
static void test_words(void)
{
    const char *texts[] = {"bin blue at f two now", "SET  RED by A nine\tsoon", "BIN RED AT A ONE NOW",
                           NULL};
    avsr_vocab *v = NULL;
    avsr_error err = {0};
    int rc = avsr_vocab_build_words(&v, texts, 4, &err);
    tap_ok(rc == 0 && v && avsr_vocab_is_words(v), "word vocabulary built: %s", err.msg);
    if (!v)
        return;
    /* 12 distinct words, sorted: A AT BIN BLUE BY F NINE NOW ONE RED SET SOON TWO -> 13 */
    tap_ok(avsr_vocab_size(v) == 16 && !strcmp(avsr_vocab_symbol(v, 2), "A") &&
               !strcmp(avsr_vocab_symbol(v, 3), "AT") && !strcmp(avsr_vocab_symbol(v, 14), "TWO") &&
               !strcmp(avsr_vocab_symbol(v, 15), "<eos>") && avsr_vocab_id(v, 'A') == -1,
           "13 words sorted by byte order between <unk> and <eos> (size %d)", avsr_vocab_size(v));
    int32_t ids[64];
    const char *t = "  set blue by f nine soon ";
    int64_t n = avsr_vocab_encode(v, t, strlen(t), ids, (int64_t)strlen(t), &err);
    char *back = n == 6 ? avsr_vocab_decode(v, ids, n, &err) : NULL;
    tap_ok(n == 6 && ids[0] == 12 && ids[5] == 13 && back && !strcmp(back, "SET BLUE BY F NINE SOON"),
           "encode -> 6 word ids, decode -> '%s'", back ? back : err.msg);
    free(back);
    /* blank, <eos> and IGNORE write nothing; words are joined by one space */
    int32_t mix[] = {0, 4, 0, AVSR_VOCAB_IGNORE, 4, 15, 1};
    back = avsr_vocab_decode(v, mix, 7, &err);
    tap_ok(back && !strcmp(back, "BIN BIN <unk>"), "decode skips blank/eos/ignore: '%s'",
           back ? back : err.msg);
    free(back);
    t = "BIN GREEN AT Q";
    n = avsr_vocab_encode(v, t, strlen(t), ids, 64, &err);
    tap_ok(n == 4 && ids[1] == AVSR_VOCAB_UNK && ids[3] == AVSR_VOCAB_UNK, "unseen words -> <unk>");
    avsr_vocab_set_oov(v, AVSR_OOV_DROP);
    n = avsr_vocab_encode(v, t, strlen(t), ids, 64, &err);
    tap_ok(n == 2 && ids[0] == 4 && ids[1] == 3, "unseen words dropped with AVSR_OOV_DROP");
    n = avsr_vocab_encode(v, "BIN\xff", 4, ids, 64, &err);
    tap_ok(n == -1 && strstr(err.msg, "invalid UTF-8 at byte offset 3"), "bad UTF-8: %s", err.msg);
    err = (avsr_error){0};
    n = avsr_vocab_encode(v, "BIN AT A", 8, ids, 2, &err);
    tap_ok(n == -1 && strstr(err.msg, "output buffer of 2 ids is too small"), "small buffer: %s",
           err.msg);

    /* JSON round trip */
    char *js = avsr_vocab_to_json(v, &err);
    avsr_vocab *w = NULL;
    rc = js ? avsr_vocab_from_json(&w, js, &err) : -1;
    bool same = rc == 0 && w && avsr_vocab_is_words(w) && avsr_vocab_size(w) == avsr_vocab_size(v) &&
                avsr_vocab_oov(w) == AVSR_OOV_DROP;
    for (int32_t i = 0; same && i < avsr_vocab_size(v); i++)
        same = !strcmp(avsr_vocab_symbol(v, i), avsr_vocab_symbol(w, i));
    tap_ok(same && strstr(js, "\"type\":\"word\""), "JSON round trip: %.80s", js ? js : err.msg);
    free(js);
    avsr_vocab_free(w);
    avsr_vocab_free(v);

    /* errors */
    const char *none[] = {"   ", ""};
    err = (avsr_error){0};
    rc = avsr_vocab_build_words(&v, none, 2, &err);
    tap_ok(rc == -1 && !v && strstr(err.msg, "the texts have no words"), "no words: %s", err.msg);
    struct {
        const char *json, *want;
    } cases[] = {
        {"{\"type\":\"word\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"BIN\",\"AT\","
         "\"BIN\",\"<eos>\"]}",
         "duplicate word \"BIN\" at ids 2 and 4"},
        {"{\"type\":\"word\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"bin\",\"<eos>\"]}",
         "symbol 2 must be one normalised word"},
        {"{\"type\":\"word\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"BIN AT\","
         "\"<eos>\"]}",
         "symbol 2 must be one normalised word"},
        {"{\"type\":\"bpe\",\"version\":1,\"symbols\":[\"<blank>\",\"<unk>\",\"A\",\"<eos>\"]}",
         "not a character or word vocabulary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        v = NULL;
        err = (avsr_error){0};
        rc = avsr_vocab_from_json(&v, cases[i].json, &err);
        tap_ok(rc == -1 && !v && strstr(err.msg, cases[i].want), "bad word JSON %zu: %s", i,
               err.msg);
    }
}

int main(void)
{
    test_default();
    test_utf8_errors();
    test_built();
    test_json_errors();
    test_words();
    return tap_done();
}
