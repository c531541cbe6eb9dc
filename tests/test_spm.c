/* test_spm: the SentencePiece C API (datasets/spm.h): train a small model
 * on GRID-like sentences in a temporary directory, encode/decode round
 * trips, unknown characters, piece <-> id, and error messages. Skipped
 * (TAP SKIP) in a build without SentencePiece, where the calls must fail
 * with AVSR_ERR_UNSUPPORTED naming the configure option. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/spm.h"
#include "tap.h"

static const char *CMD[] = {"bin", "lay", "place", "set"};
static const char *COL[] = {"blue", "green", "red", "white"};
static const char *PRE[] = {"at", "by", "in", "with"};
static const char *DIG[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
static const char *ADV[] = {"again", "now", "please", "soon"};

static void sentence(unsigned k, char *buf, size_t n)
{
    unsigned h = k * 2654435761u;
    snprintf(buf, n, "%s %s %s %c %s %s", CMD[h % 4], COL[(h >> 4) % 4], PRE[(h >> 8) % 4],
             'a' + (char)((h >> 12) % 25), DIG[(h >> 16) % 10], ADV[(h >> 24) % 4]);
}

static void rm_rf(const char *dir)
{
    const char *names[] = {"text.txt", "m.model", "m.vocab", "b.model", "b.vocab"};
    char p[4096];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void round_trip(avsr_spm *m, const char *what, const char *text)
{
    avsr_error err = {0};
    int32_t *ids = NULL;
    int n = 0;
    int rc = avsr_spm_encode(m, text, &ids, &n, &err);
    char *back = rc == 0 ? avsr_spm_decode(m, ids, n, &err) : NULL;
    tap_ok(back && strcmp(back, text) == 0, "%s: \"%s\" -> %d ids -> \"%s\" %s", what, text, n,
           back ? back : "(null)", err.msg);
    free(ids);
    free(back);
}

int main(void)
{
    avsr_error err = {0};
    if (!avsr_spm_available()) {
        avsr_spm *m = avsr_spm_load("x.model", &err);
        bool ok = !m && err.code == AVSR_ERR_UNSUPPORTED && strstr(err.msg, "--with-sentencepiece");
        if (!ok) {
            tap_ok(false, "without SentencePiece: load fails naming the option: %s", err.msg);
            return tap_done();
        }
        tap_skip_all("built without SentencePiece (configure --with-sentencepiece)");
    }
    char dir[] = "/tmp/avsr-spm-XXXXXX";
    if (!mkdtemp(dir))
        tap_bail("mkdtemp failed");
    char text[4096], prefix[4096], model[4096];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    FILE *f = fopen(text, "w");
    if (!f)
        tap_bail("cannot write %s", text);
    char s[256];
    for (unsigned k = 0; k < 600; k++) {
        sentence(k, s, sizeof s);
        fprintf(f, "%s\n", s);
    }
    fclose(f);

    /* unigram, vocab 50 */
    snprintf(prefix, sizeof prefix, "%s/m", dir);
    int rc = avsr_spm_train(text, prefix, 50, "unigram", &err);
    tap_ok(rc == 0, "train unigram vocab 50 on 600 GRID-like sentences %s", err.msg);
    snprintf(model, sizeof model, "%s/m.model", dir);
    avsr_spm *m = avsr_spm_load(model, &err);
    tap_ok(m != NULL, "load the trained model %s", err.msg);
    if (m) {
        tap_ok(avsr_spm_vocab_size(m) == 50, "vocabulary size 50 (got %d)", avsr_spm_vocab_size(m));
        sentence(12345, s, sizeof s);
        round_trip(m, "unigram round trip (unseen sentence)", s);
        round_trip(m, "unigram round trip (empty)", "");
        /* unknown characters: map to <unk>, decode as " ⁇ " */
        int32_t *ids = NULL;
        int n = 0;
        int unk = avsr_spm_unk_id(m);
        rc = avsr_spm_encode(m, "bin blue \xc3\xbc 7", &ids, &n, &err);
        int nunk = 0;
        for (int i = 0; i < n; i++)
            nunk += ids[i] == unk;
        tap_ok(rc == 0 && unk >= 0 && nunk == 2,
               "unknown characters (u-umlaut, a digit) encode to the unk id %d (%d of %d ids)", unk,
               nunk, n);
        char *back = avsr_spm_decode(m, ids, n, &err);
        tap_ok(back && strstr(back, "bin blue") && strstr(back, "\xe2\x81\x87"),
               "decoding unk gives the \xe2\x81\x87 mark: \"%s\"", back ? back : "(null)");
        free(back);
        free(ids);
        /* piece <-> id */
        const char *p0 = avsr_spm_id_to_piece(m, unk);
        tap_ok(p0 && strcmp(p0, "<unk>") == 0, "id %d is <unk>", unk);
        int bad = 0;
        for (int i = 0; i < avsr_spm_vocab_size(m); i++)
            bad += avsr_spm_piece_to_id(m, avsr_spm_id_to_piece(m, i)) != i;
        tap_ok(bad == 0, "piece_to_id(id_to_piece(i)) == i for every id");
        tap_ok(avsr_spm_piece_to_id(m, "no-such-piece") == unk, "an unknown piece maps to unk");
        tap_ok(avsr_spm_id_to_piece(m, 50) == NULL && avsr_spm_id_to_piece(m, -1) == NULL,
               "id_to_piece out of range is NULL");
        int32_t badid[2] = {3, 50};
        avsr_error e2 = {0};
        char *d = avsr_spm_decode(m, badid, 2, &e2);
        tap_ok(!d && strstr(e2.msg, "spm decode: id 50 at position 1 outside the vocabulary [0, 50)"),
               "decode of an out-of-range id: %s", e2.msg);
        free(d);
        avsr_spm_free(m);
    }

    /* BPE */
    snprintf(prefix, sizeof prefix, "%s/b", dir);
    err = (avsr_error){0};
    rc = avsr_spm_train(text, prefix, 50, "bpe", &err);
    tap_ok(rc == 0, "train bpe vocab 50 %s", err.msg);
    snprintf(model, sizeof model, "%s/b.model", dir);
    m = avsr_spm_load(model, &err);
    if (m) {
        sentence(777, s, sizeof s);
        round_trip(m, "bpe round trip", s);
        avsr_spm_free(m);
    } else {
        tap_ok(false, "load bpe model: %s", err.msg);
    }

    /* errors */
    err = (avsr_error){0};
    snprintf(model, sizeof model, "%s/missing.model", dir);
    m = avsr_spm_load(model, &err);
    tap_ok(!m && err.code == AVSR_ERR_IO && strstr(err.msg, "loading SentencePiece model") &&
               strstr(err.msg, "missing.model"),
           "missing model file: %s", err.msg);
    err = (avsr_error){0};
    rc = avsr_spm_train(text, prefix, 50, "trigram", &err);
    tap_ok(rc < 0 && strstr(err.msg, "model_type \"trigram\", expected unigram, bpe, char or word"),
           "bad model type: %s", err.msg);
    err = (avsr_error){0};
    snprintf(model, sizeof model, "%s/none.txt", dir);
    rc = avsr_spm_train(model, prefix, 50, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "training SentencePiece on") && strstr(err.msg, "none.txt"),
           "missing training text: %s", err.msg);
    rm_rf(dir);
    return tap_done();
}
