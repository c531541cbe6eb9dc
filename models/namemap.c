/* namemap: parameter-name maps between avsr and external checkpoints, and
 * loading a safetensors file through one (builder.h; format in
 * docs/models/model.md).
 *
 * A map is lines "OURS THEIRS" (whitespace separated; '#' starts a
 * comment). Patterns are literal text with placeholders: {NAME} where NAME
 * is a lowercase word matches a decimal integer, {*} matches any non-empty
 * text. THEIRS may use the placeholders captured by OURS. THEIRS "-" means
 * "not in the external file: keep the initialised value"; OURS "-" means
 * "external tensors matching THEIRS are ignored". The first matching line
 * wins. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"
#include "fileio.h"
#include "params.h"
#include "safetensors.h"

#define MAX_CAPS 8
#define CAP_LEN 128

typedef struct line {
    char *ours, *theirs; /* "-" for none */
    int lineno;
} line;

struct avsr_namemap {
    char name[256];
    line *l;
    int n;
};

typedef struct caps {
    int n;
    char key[MAX_CAPS][16];
    char val[MAX_CAPS][CAP_LEN];
} caps;

void avsr_namemap_free(avsr_namemap *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        free(m->l[i].ours);
        free(m->l[i].theirs);
    }
    free(m->l);
    free(m);
}

/* placeholder at p ("{...}"): writes its key, returns its length or 0 */
static int placeholder(const char *p, char key[16])
{
    if (*p != '{')
        return 0;
    const char *e = strchr(p, '}');
    if (!e || e - p - 1 < 1 || e - p - 1 > 15)
        return 0;
    memcpy(key, p + 1, (size_t)(e - p - 1));
    key[e - p - 1] = 0;
    if (strcmp(key, "*") != 0)
        for (const char *k = key; *k; k++)
            if (!islower((unsigned char)*k) && *k != '_')
                return 0;
    return (int)(e - p + 1);
}

static bool match(const char *pat, const char *s, caps *c)
{
    while (*pat) {
        char key[16];
        int pl = placeholder(pat, key);
        if (pl) {
            if (c->n >= MAX_CAPS)
                return false;
            bool any = strcmp(key, "*") == 0;
            size_t maxlen = any ? strlen(s) : strspn(s, "0123456789");
            /* try the longest capture first, backtrack */
            for (size_t len = maxlen; len >= 1; len--) {
                if (len >= CAP_LEN)
                    continue;
                int save = c->n;
                memcpy(c->key[c->n], key, sizeof key);
                memcpy(c->val[c->n], s, len);
                c->val[c->n][len] = 0;
                c->n++;
                if (match(pat + pl, s + len, c))
                    return true;
                c->n = save;
            }
            return false;
        }
        if (*pat != *s)
            return false;
        pat++;
        s++;
    }
    return *s == 0;
}

static int substitute(const char *pat, const caps *c, char *buf, size_t n)
{
    size_t k = 0;
    while (*pat) {
        char key[16];
        int pl = placeholder(pat, key);
        const char *add = NULL;
        char one[2] = {*pat, 0};
        if (pl) {
            for (int i = 0; i < c->n; i++)
                if (!strcmp(c->key[i], key))
                    add = c->val[i];
            if (!add)
                return -1;
            pat += pl;
        } else {
            add = one;
            pat++;
        }
        size_t len = strlen(add);
        if (k + len + 1 > n)
            return -1;
        memcpy(buf + k, add, len);
        k += len;
    }
    buf[k] = 0;
    return 0;
}

/* every placeholder of theirs must occur in ours */
static bool placeholders_known(const char *ours, const char *theirs)
{
    for (const char *p = theirs; *p; p++) {
        char key[16], k2[16];
        if (!placeholder(p, key))
            continue;
        bool found = false;
        for (const char *q = ours; *q && !found; q++)
            found = placeholder(q, k2) && !strcmp(key, k2);
        if (!found)
            return false;
    }
    return true;
}

avsr_namemap *avsr_namemap_parse(const char *name, const char *text, avsr_error *err)
{
    avsr_namemap *m = calloc(1, sizeof *m);
    if (!m) {
        AVSR_NOMEM(err, sizeof *m);
        return NULL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    int cap = 0, lineno = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char buf[1024];
        lineno++;
        if (len >= sizeof buf) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: line too long", name, lineno);
            goto fail;
        }
        memcpy(buf, p, len);
        buf[len] = 0;
        p = eol ? eol + 1 : p + len;
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = 0;
        char a[512], b[512], extra[8];
        int k = sscanf(buf, "%511s %511s %7s", a, b, extra);
        if (k <= 0)
            continue;
        if (k != 2) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: expected two patterns (ours theirs), "
                           "got %d field%s", name, lineno, k, k == 1 ? "" : "s");
            goto fail;
        }
        if (!strcmp(a, "-") && !strcmp(b, "-")) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: '- -' maps nothing", name, lineno);
            goto fail;
        }
        if (strcmp(a, "-") && strcmp(b, "-") && !placeholders_known(a, b)) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: '%s' uses a placeholder that '%s' does "
                           "not capture", name, lineno, b, a);
            goto fail;
        }
        if (m->n == cap) {
            cap = cap ? 2 * cap : 32;
            line *nl = realloc(m->l, sizeof *nl * (size_t)cap);
            if (!nl) {
                AVSR_NOMEM(err, sizeof *nl * (size_t)cap);
                goto fail;
            }
            m->l = nl;
        }
        m->l[m->n].ours = strdup(a);
        m->l[m->n].theirs = strdup(b);
        m->l[m->n].lineno = lineno;
        m->n++;
        if (!m->l[m->n - 1].ours || !m->l[m->n - 1].theirs) {
            AVSR_NOMEM(err, len);
            goto fail;
        }
    }
    return m;
fail:
    avsr_namemap_free(m);
    return NULL;
}

avsr_namemap *avsr_namemap_load(const char *path, avsr_error *err)
{
    void *buf;
    size_t len;
    if (avsr_file_read_all(path, &buf, &len, err) < 0)
        return NULL;
    char *text = malloc(len + 1);
    if (!text) {
        free(buf);
        AVSR_NOMEM(err, len + 1);
        return NULL;
    }
    memcpy(text, buf, len);
    text[len] = 0;
    free(buf);
    if (strlen(text) != len) {
        free(text);
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: contains a NUL byte", path);
        return NULL;
    }
    avsr_namemap *m = avsr_namemap_parse(path, text, err);
    free(text);
    return m;
}

static int apply(const avsr_namemap *m, const char *name, char *buf, size_t n, int *lineno,
                 avsr_error *err)
{
    if (!m) { /* identity: our names are the file's */
        *lineno = 0;
        if (strlen(name) >= n)
            return avsr_error_set(err, AVSR_ERR_INVALID, "parameter name '%s' too long", name);
        strcpy(buf, name);
        return 1;
    }
    for (int i = 0; i < m->n; i++) {
        caps c = {0};
        if (!strcmp(m->l[i].ours, "-") || !match(m->l[i].ours, name, &c))
            continue;
        *lineno = m->l[i].lineno;
        if (!strcmp(m->l[i].theirs, "-"))
            return 0;
        if (substitute(m->l[i].theirs, &c, buf, n) < 0)
            return avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d: external name for '%s' too long",
                                  m->name, m->l[i].lineno, name);
        return 1;
    }
    return avsr_error_set(err, AVSR_ERR_INVALID, "%s: no line maps parameter '%s'", m->name,
                          name);
}

int avsr_namemap_apply(const avsr_namemap *m, const char *name, char *buf, size_t bufsize,
                       avsr_error *err)
{
    int lineno;
    return apply(m, name, buf, bufsize, &lineno, err);
}

/* external tensor ignored by a "- THEIRS" line */
static bool ignored(const avsr_namemap *m, const char *ext)
{
    if (!m)
        return false;
    for (int i = 0; i < m->n; i++) {
        caps c = {0};
        if (!strcmp(m->l[i].ours, "-") && match(m->l[i].theirs, ext, &c))
            return true;
    }
    return false;
}

int avsr_model_load_mapped(avsr_params *p, const char *st_file, const char *map_file,
                           avsr_error *err)
{
    avsr_namemap *m = NULL;
    if (map_file && !(m = avsr_namemap_load(map_file, err)))
        return -1;
    avsr_st *st = avsr_st_open(st_file, err);
    if (!st) {
        avsr_namemap_free(m);
        return -1;
    }
    int nst = avsr_st_count(st), loaded = 0, rc = -1;
    bool *used = calloc((size_t)(nst ? nst : 1), sizeof *used);
    if (!used) {
        AVSR_NOMEM(err, (size_t)nst);
        goto out;
    }
    for (int i = 0; i < avsr_params_count(p); i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        char ext[512];
        int lineno = 0;
        int r = apply(m, t->name, ext, sizeof ext, &lineno, err);
        if (r < 0)
            goto out;
        if (r == 0)
            continue;
        avsr_st_tensor s;
        if (avsr_st_find(st, ext, &s) < 0) {
            if (!m)
                avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is missing", st_file, ext);
            else
                avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' (for '%s', %s:%d) is missing",
                           st_file, ext, t->name, map_file, lineno);
            goto out;
        }
        bool same_shape = s.ndim == t->ndim;
        for (int d = 0; same_shape && d < s.ndim; d++)
            same_shape = s.shape[d] == t->shape[d];
        if (!same_shape) {
            char a[128] = "[", b[128] = "[";
            for (int d = 0; d < s.ndim; d++)
                snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? ", " : "",
                         (long long)s.shape[d]);
            avsr_shape_str(t, b, sizeof b);
            strcat(a, "]");
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' has shape %s, but '%s' needs %s",
                           st_file, ext, a, t->name, b);
            goto out;
        }
        if (t->dtype == AVSR_F32) {
            if (avsr_st_read_f32(st, ext, t->ndim, t->shape, avsr_f32(t), err) < 0)
                goto out;
        } else {
            if (s.dtype != t->dtype) {
                avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is %s, but '%s' needs %s",
                               st_file, ext, avsr_dtype_name(s.dtype), t->name,
                               avsr_dtype_name(t->dtype));
                goto out;
            }
            memcpy(t->data, s.data, s.nbytes);
        }
        for (int k = 0; k < nst; k++) {
            avsr_st_tensor q;
            avsr_st_get(st, k, &q);
            if (!strcmp(q.name, ext)) {
                used[k] = true;
                break;
            }
        }
        loaded++;
    }
    for (int k = 0; k < nst; k++) {
        avsr_st_tensor q;
        avsr_st_get(st, k, &q);
        if (!used[k] && !m) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: tensor '%s' is not a parameter or buffer of the model", st_file,
                           q.name);
            goto out;
        }
        if (!used[k] && !ignored(m, q.name)) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is not used by the model "
                           "(no map line leads to it; ignore it with '- %s' in %s)",
                           st_file, q.name, q.name, map_file);
            goto out;
        }
    }
    rc = loaded;
out:
    free(used);
    avsr_st_close(st);
    avsr_namemap_free(m);
    return rc;
}
