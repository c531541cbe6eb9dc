/* manifest: CSV and AV-HuBERT .tsv/.wrd manifests (see manifest.h). */
#include "manifest.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/sha.h>

#include "pack_format.h"
#include "fileio.h"

int avsr_utf8_valid(const char *str, size_t n, size_t *bad_at)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (i + len > n)
            goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += len;
    }
    return 1;
bad:
    if (bad_at)
        *bad_at = i;
    return 0;
}

void avsr_manifest_row_msg(const avsr_manifest *m, const avsr_manifest_row *r,
                           const char *what, char *buf, size_t cap)
{
    if (r->id && r->id[0])
        snprintf(buf, cap, "%s:%d: %s: %s", m->path, r->line, r->id, what);
    else
        snprintf(buf, cap, "%s:%d: %s", m->path, r->line, what);
}

void avsr_manifest_free(avsr_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        avsr_manifest_row *r = &m->rows[i];
        free(r->id);
        free(r->video);
        free(r->audio);
        free(r->text);
        free(r->speaker);
        free(r->bad);
    }
    free(m->rows);
    free(m->path);
    memset(m, 0, sizeof *m);
}

/* ---- helpers ----------------------------------------------------------- */

static void sha256_hex(const void *a, size_t na, const void *b, size_t nb, char out[65])
{
    struct AVSHA *sha = av_sha_alloc();
    uint8_t dig[32];
    memset(dig, 0, sizeof dig);
    if (sha) {
        av_sha_init(sha, 256);
        av_sha_update(sha, a, na);
        if (b)
            av_sha_update(sha, b, nb);
        av_sha_final(sha, dig);
        av_free(sha);
    }
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", dig[i]);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* directory part of path ("" for a bare name), malloc'd */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return dup_n("", 0);
    return dup_n(path, slash == path ? 1 : (size_t)(slash - path));
}

static char *join(const char *dir, const char *p)
{
    if (!p[0] || p[0] == '/' || !dir[0])
        return dup_n(p, strlen(p));
    size_t nd = strlen(dir), np = strlen(p);
    char *r = malloc(nd + np + 2);
    if (r) {
        memcpy(r, dir, nd);
        size_t k = nd;
        if (dir[nd - 1] != '/')
            r[k++] = '/';
        memcpy(r + k, p, np + 1);
    }
    return r;
}

static void set_bad(avsr_manifest_row *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_bad(avsr_manifest_row *r, const char *fmt, ...)
{
    if (r->bad)
        return; /* keep the first problem */
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->bad = strdup(buf);
    if (!r->bad)
        r->bad = NULL;
}

static int only_space(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    return 1;
}

/* Checks shared by both manifest kinds, then duplicate ids. */
static int check_rows(avsr_manifest *m, int flags, avsr_error *err)
{
    int noise = flags & AVSR_MANIFEST_NOISE;
    for (size_t i = 0; i < m->n; i++) {
        avsr_manifest_row *r = &m->rows[i];
        size_t at, nid = strlen(r->id);
        if (nid == 0)
            set_bad(r, "empty id");
        else if (!avsr_utf8_valid(r->id, nid, &at))
            set_bad(r, "id is not valid UTF-8 (byte %zu)", at + 1);
        else if (nid >= AVSR_PACK_ID_LEN)
            set_bad(r, "id is %zu bytes, longer than %d", nid, AVSR_PACK_ID_LEN - 1);
        size_t ns = strlen(r->speaker);
        if (!avsr_utf8_valid(r->speaker, ns, &at))
            set_bad(r, "speaker is not valid UTF-8 (byte %zu)", at + 1);
        else if (ns >= AVSR_PACK_SPEAKER_LEN)
            set_bad(r, "speaker '%s' is %zu bytes, longer than %d", r->speaker, ns,
                    AVSR_PACK_SPEAKER_LEN - 1);
        if (!noise && !r->video[0])
            set_bad(r, "empty video path");
        if (noise && !r->audio[0] && !r->video[0])
            set_bad(r, "empty audio path");
        size_t nt = strlen(r->text);
        if (!avsr_utf8_valid(r->text, nt, &at))
            set_bad(r, "text is not valid UTF-8 (byte %zu)", at + 1);
        else if (!noise && only_space(r->text))
            set_bad(r, "empty text");
    }
    /* duplicate ids: open addressing over the row indices */
    size_t cap = 16;
    while (cap < 2 * m->n)
        cap *= 2;
    size_t *tab = malloc(cap * sizeof *tab);
    if (!tab)
        return AVSR_NOMEM(err, cap * sizeof *tab);
    for (size_t k = 0; k < cap; k++)
        tab[k] = SIZE_MAX;
    for (size_t i = 0; i < m->n; i++) {
        avsr_manifest_row *r = &m->rows[i];
        if (!r->id[0])
            continue;
        uint64_t h = 1469598103934665603ull;
        for (const unsigned char *p = (const unsigned char *)r->id; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        size_t k = (size_t)h & (cap - 1);
        for (; tab[k] != SIZE_MAX; k = (k + 1) & (cap - 1))
            if (!strcmp(m->rows[tab[k]].id, r->id))
                break;
        if (tab[k] == SIZE_MAX)
            tab[k] = i;
        else
            set_bad(r, "duplicate id (first on line %d)", m->rows[tab[k]].line);
    }
    free(tab);
    return 0;
}

/* ---- CSV ------------------------------------------------------------- */

typedef struct csv_rec {
    char **f;
    int n, cap;
    int line;
    char bad[160];
} csv_rec;

static int rec_push(csv_rec *r, const char *s, size_t n)
{
    if (r->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 8;
        char **p = realloc(r->f, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        r->f = p;
        r->cap = nc;
    }
    if (!(r->f[r->n] = dup_n(s, n)))
        return -1;
    r->n++;
    return 0;
}

static void rec_clear(csv_rec *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->f[i]);
    r->n = 0;
    r->bad[0] = '\0';
}

/* Parse one record starting at *pos; *line is the current line number.
 * Returns 1 with a record, 0 at the end of the buffer, -1 out of memory. */
static int csv_next(const char *b, size_t len, size_t *pos, int *line, csv_rec *r)
{
    rec_clear(r);
    size_t i = *pos;
    /* skip blank lines */
    while (i < len && (b[i] == '\n' || (b[i] == '\r' && i + 1 < len && b[i + 1] == '\n'))) {
        i += b[i] == '\r' ? 2 : 1;
        (*line)++;
    }
    if (i >= len)
        return 0;
    r->line = *line;
    char *fld = NULL;
    size_t nf = 0, capf = 0;
    for (;;) {
        nf = 0;
        int quoted = 0;
        if (i < len && b[i] == '"') {
            quoted = 1;
            i++;
            for (;;) {
                if (i >= len) {
                    if (!r->bad[0])
                        snprintf(r->bad, sizeof r->bad,
                                 "bad CSV quoting: field %d: quoted field not closed before "
                                 "end of file", r->n + 1);
                    break;
                }
                char c = b[i];
                if (c == '"') {
                    if (i + 1 < len && b[i + 1] == '"') {
                        c = '"';
                        i += 2;
                    } else {
                        i++;
                        break;
                    }
                } else {
                    if (c == '\n')
                        (*line)++;
                    i++;
                }
                if (nf + 1 >= capf) {
                    capf = capf ? 2 * capf : 64;
                    char *p = realloc(fld, capf);
                    if (!p) {
                        free(fld);
                        return -1;
                    }
                    fld = p;
                }
                fld[nf++] = c;
            }
            /* after the closing quote: a separator, a line end or the end */
            if (i < len && b[i] != ',' && b[i] != '\n' &&
                !(b[i] == '\r' && (i + 1 >= len || b[i + 1] == '\n'))) {
                if (!r->bad[0])
                    snprintf(r->bad, sizeof r->bad,
                             "bad CSV quoting: field %d: text after the closing quote", r->n + 1);
                while (i < len && b[i] != ',' && b[i] != '\n')
                    i++;
            }
        } else {
            size_t s = i;
            while (i < len && b[i] != ',' && b[i] != '\n') {
                if (b[i] == '"' && !r->bad[0])
                    snprintf(r->bad, sizeof r->bad,
                             "bad CSV quoting: field %d: quote inside an unquoted field",
                             r->n + 1);
                i++;
            }
            size_t e = i;
            if (e > s && b[e - 1] == '\r' && (e == len || b[e] == '\n'))
                e--;
            if (e - s + 1 > capf) {
                capf = e - s + 64;
                char *p = realloc(fld, capf);
                if (!p) {
                    free(fld);
                    return -1;
                }
                fld = p;
            }
            memcpy(fld, b + s, e - s);
            nf = e - s;
        }
        (void)quoted;
        if (rec_push(r, fld ? fld : "", nf) < 0) {
            free(fld);
            return -1;
        }
        if (i < len && b[i] == ',') {
            i++;
            continue;
        }
        if (i < len && b[i] == '\r')
            i++;
        if (i < len && b[i] == '\n') {
            i++;
            (*line)++;
        }
        break;
    }
    free(fld);
    *pos = i;
    return 1;
}

enum { COL_ID, COL_VIDEO, COL_AUDIO, COL_TEXT, COL_SPEAKER, NCOL };
static const char *col_names[NCOL] = {"id", "video", "audio", "text", "speaker"};

int avsr_manifest_load_csv(const char *path, int flags, avsr_manifest *m, avsr_error *err)
{
    memset(m, 0, sizeof *m);
    void *vbuf;
    size_t len;
    if (avsr_file_read_all(path, &vbuf, &len, err) < 0)
        return -1;
    const char *b = vbuf;
    int rc = -1, line = 1;
    size_t pos = 0;
    char *dir = dir_of(path);
    csv_rec rec;
    memset(&rec, 0, sizeof rec);
    int col[NCOL];
    size_t cap = 0;
    m->path = strdup(path);
    if (!dir || !m->path) {
        AVSR_NOMEM(err, strlen(path));
        goto done;
    }
    sha256_hex(b, len, NULL, 0, m->sha256);
    if (len >= 3 && !memcmp(b, "\xEF\xBB\xBF", 3))
        pos = 3;
    int got = csv_next(b, len, &pos, &line, &rec);
    if (got < 0) {
        AVSR_NOMEM(err, len);
        goto done;
    }
    if (got == 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: empty manifest (no header line)", path);
        goto done;
    }
    if (rec.bad[0]) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: header: %s", path, rec.line, rec.bad);
        goto done;
    }
    for (int c = 0; c < NCOL; c++)
        col[c] = -1;
    for (int k = 0; k < rec.n; k++) {
        int c = 0;
        while (c < NCOL && strcmp(rec.f[k], col_names[c]))
            c++;
        if (c == NCOL) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s:%d: header: unknown column '%s' (expected "
                           "id,video,audio,text[,speaker])", path, rec.line, rec.f[k]);
            goto done;
        }
        if (col[c] >= 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: header: column '%s' appears twice",
                           path, rec.line, rec.f[k]);
            goto done;
        }
        col[c] = k;
    }
    int noise = flags & AVSR_MANIFEST_NOISE;
    const char *missing = col[COL_ID] < 0 ? "id"
                          : col[COL_AUDIO] < 0 ? "audio"
                          : !noise && col[COL_VIDEO] < 0 ? "video"
                          : !noise && col[COL_TEXT] < 0 ? "text" : NULL;
    if (missing) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s:%d: header: no '%s' column (expected id,video,audio,text[,speaker]%s)",
                       path, rec.line, missing, noise ? ", or id,audio for noise" : "");
        goto done;
    }
    m->has_video = col[COL_VIDEO] >= 0;
    m->has_text = col[COL_TEXT] >= 0;
    m->has_speaker = col[COL_SPEAKER] >= 0;
    int ncols = rec.n;
    while ((got = csv_next(b, len, &pos, &line, &rec)) == 1) {
        if (m->n == cap) {
            cap = cap ? 2 * cap : 256;
            avsr_manifest_row *p = realloc(m->rows, cap * sizeof *p);
            if (!p) {
                AVSR_NOMEM(err, cap * sizeof *p);
                goto done;
            }
            m->rows = p;
        }
        avsr_manifest_row *r = &m->rows[m->n++];
        memset(r, 0, sizeof *r);
        r->line = rec.line;
        const char *v[NCOL];
        for (int c = 0; c < NCOL; c++)
            v[c] = col[c] >= 0 && col[c] < rec.n ? rec.f[col[c]] : "";
        r->id = strdup(v[COL_ID]);
        r->video = join(dir, v[COL_VIDEO]);
        r->audio = join(dir, v[COL_AUDIO]);
        r->text = strdup(v[COL_TEXT]);
        r->speaker = strdup(v[COL_SPEAKER]);
        if (!r->id || !r->video || !r->audio || !r->text || !r->speaker) {
            AVSR_NOMEM(err, 4096);
            goto done;
        }
        if (rec.bad[0])
            set_bad(r, "%s", rec.bad);
        else if (rec.n != ncols)
            set_bad(r, "%d fields, the header has %d", rec.n, ncols);
    }
    if (got < 0) {
        AVSR_NOMEM(err, len);
        goto done;
    }
    rc = check_rows(m, flags, err);
done:
    rec_clear(&rec);
    free(rec.f);
    free(dir);
    free(vbuf);
    if (rc < 0)
        avsr_manifest_free(m);
    return rc;
}

/* ---- AV-HuBERT .tsv + .wrd ------------------------------------------- */

/* next line of b (without its LF/CRLF) into [*s, *e); 0 at the end */
static int next_line(const char *b, size_t len, size_t *pos, size_t *s, size_t *e)
{
    if (*pos >= len)
        return 0;
    *s = *pos;
    const char *nl = memchr(b + *pos, '\n', len - *pos);
    size_t end = nl ? (size_t)(nl - b) : len;
    *pos = nl ? end + 1 : len;
    if (end > *s && b[end - 1] == '\r')
        end--;
    *e = end;
    return 1;
}

int avsr_manifest_load_tsv(const char *tsv, const char *wrd, int flags, avsr_manifest *m,
                           avsr_error *err)
{
    memset(m, 0, sizeof *m);
    char *wrd_path = NULL, *dir = NULL, *root = NULL;
    void *tb = NULL, *wb = NULL;
    size_t tl, wl;
    int rc = -1;
    if (!wrd) {
        size_t n = strlen(tsv);
        wrd_path = malloc(n + 5);
        if (!wrd_path)
            return AVSR_NOMEM(err, n + 5);
        memcpy(wrd_path, tsv, n + 1);
        if (n > 4 && !strcmp(tsv + n - 4, ".tsv"))
            wrd_path[n - 4] = '\0';
        strcat(wrd_path, ".wrd");
        wrd = wrd_path;
    }
    if (avsr_file_read_all(tsv, &tb, &tl, err) < 0 || avsr_file_read_all(wrd, &wb, &wl, err) < 0)
        goto done;
    m->path = strdup(tsv);
    dir = dir_of(tsv);
    if (!m->path || !dir) {
        AVSR_NOMEM(err, strlen(tsv));
        goto done;
    }
    sha256_hex(tb, tl, wb, wl, m->sha256);
    m->has_video = m->has_text = m->has_speaker = 1;
    const char *b = tb, *w = wb;
    size_t pos = 0, s, e, wpos = 0, ws, we;
    if (!next_line(b, tl, &pos, &s, &e) || e == s) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s:1: the first line must be the root directory",
                       tsv);
        goto done;
    }
    char *r0 = dup_n(b + s, e - s);
    root = r0 ? join(dir, r0) : NULL;
    free(r0);
    if (!root) {
        AVSR_NOMEM(err, e - s);
        goto done;
    }
    size_t cap = 0;
    int line = 1, wline = 0;
    while (next_line(b, tl, &pos, &s, &e)) {
        line++;
        if (e == s)
            continue;
        if (m->n == cap) {
            cap = cap ? 2 * cap : 256;
            avsr_manifest_row *p = realloc(m->rows, cap * sizeof *p);
            if (!p) {
                AVSR_NOMEM(err, cap * sizeof *p);
                goto done;
            }
            m->rows = p;
        }
        avsr_manifest_row *r = &m->rows[m->n++];
        memset(r, 0, sizeof *r);
        r->line = line;
        /* fields: id, video, audio[, nframes_video, nframes_audio] */
        const char *f[3] = {"", "", ""};
        size_t fl[3] = {0, 0, 0};
        int nfield = 0;
        size_t k = s;
        while (k <= e && nfield < 5) {
            const char *tab = memchr(b + k, '\t', e - k);
            size_t fe = tab ? (size_t)(tab - b) : e;
            if (nfield < 3) {
                f[nfield] = b + k;
                fl[nfield] = fe - k;
            }
            nfield++;
            k = fe + 1;
            if (!tab)
                break;
        }
        char *fs[3];
        for (int q = 0; q < 3; q++)
            fs[q] = dup_n(f[q], fl[q]);
        r->id = fs[0];
        r->video = fs[1] ? join(root, fs[1]) : NULL;
        r->audio = fs[2] ? join(root, fs[2]) : NULL;
        free(fs[1]);
        free(fs[2]);
        /* speaker: second-to-last component of the id */
        const char *id = r->id ? r->id : "";
        const char *last = strrchr(id, '/');
        const char *sp = "";
        size_t spn = 0;
        if (last) {
            const char *p = last;
            while (p > id && p[-1] != '/')
                p--;
            sp = p;
            spn = (size_t)(last - p);
        }
        r->speaker = dup_n(sp, spn);
        if (next_line(w, wl, &wpos, &ws, &we)) {
            wline++;
            r->text = dup_n(w + ws, we - ws);
        } else {
            r->text = dup_n("", 0);
        }
        if (!r->id || !r->video || !r->audio || !r->speaker || !r->text) {
            AVSR_NOMEM(err, e - s);
            goto done;
        }
        if (nfield < 3)
            set_bad(r, "%d fields, expected id<TAB>video<TAB>audio[<TAB>nframes<TAB>nsamples]",
                    nfield);
    }
    int wtotal = wline;
    while (next_line(w, wl, &wpos, &ws, &we))
        wtotal++;
    if ((size_t)wtotal != m->n) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s has %d lines but %s has %zu rows", wrd, wtotal,
                       tsv, m->n);
        goto done;
    }
    rc = check_rows(m, flags, err);
done:
    free(wrd_path);
    free(dir);
    free(root);
    free(tb);
    free(wb);
    if (rc < 0)
        avsr_manifest_free(m);
    return rc;
}

int avsr_manifest_load(const char *path, const char *wrd, int flags, avsr_manifest *m,
                       avsr_error *err)
{
    size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".tsv"))
        return avsr_manifest_load_tsv(path, wrd, flags, m, err);
    return avsr_manifest_load_csv(path, flags, m, err);
}
