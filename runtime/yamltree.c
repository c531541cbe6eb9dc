/* yamltree: libyaml document -> positioned tree with typed lookups (see
 * yamltree.h). */
#include "yamltree.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fileio.h"

struct avsr_ynode {
    avsr_ynode_kind kind;
    int line, col;
    char *str;        /* scalar */
    bool quoted;
    int n;            /* items / pairs */
    avsr_ynode **item; /* seq items or map values */
    char **key;        /* map keys */
    bool *used;        /* map: key looked up */
    int *key_line, *key_col; /* map: key positions */
};

/* record mode: the entries and whether it is on (a separate allocation, so
 * that getters taking a const document can add to it) */
typedef struct yrecs {
    bool on, oom;
    avsr_yaml_rec *e;
    int n, cap;
} yrecs;

struct avsr_yaml {
    char *name;
    avsr_ynode *root;
    yrecs *rec;
};

static void recs_clear(yrecs *r)
{
    for (int i = 0; i < r->n; i++) {
        free((char *)r->e[i].path);
        free((char *)r->e[i].value);
    }
    free(r->e);
    r->e = NULL;
    r->n = r->cap = 0;
    r->oom = false;
}

static void node_free(avsr_ynode *n)
{
    if (!n)
        return;
    free(n->str);
    for (int i = 0; i < n->n; i++) {
        node_free(n->item[i]);
        if (n->key)
            free(n->key[i]);
    }
    free(n->item);
    free(n->key);
    free(n->used);
    free(n->key_line);
    free(n->key_col);
    free(n);
}

void avsr_yaml_free(avsr_yaml *y)
{
    if (!y)
        return;
    node_free(y->root);
    if (y->rec) {
        recs_clear(y->rec);
        free(y->rec);
    }
    free(y->name);
    free(y);
}

static int err_at(const char *name, int line, int col, avsr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int err_at(const char *name, int line, int col, avsr_error *err, const char *fmt, ...)
{
    char msg[AVSR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d:%d: %s", name, line, col, msg);
}

int avsr_yaml_error(const avsr_yaml *y, const avsr_ynode *n, avsr_error *err, const char *fmt,
                    ...)
{
    char msg[AVSR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_at(y->name, n ? n->line : 1, n ? n->col : 1, err, "%s", msg);
}

int avsr_yaml_error_at(const avsr_yaml *y, int line, int col, avsr_error *err, const char *fmt,
                       ...)
{
    char msg[AVSR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_at(y->name, line, col, err, "%s", msg);
}

/* Convert libyaml node `id` (depth-limited: aliases may form cycles). */
static avsr_ynode *convert(const char *name, yaml_document_t *doc, int id, int depth,
                           avsr_error *err)
{
    yaml_node_t *yn = yaml_document_get_node(doc, id);
    if (!yn) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: broken YAML document", name);
        return NULL;
    }
    if (depth > 64) {
        err_at(name, (int)yn->start_mark.line + 1, (int)yn->start_mark.column + 1, err,
               "nesting deeper than 64 levels (alias cycle?)");
        return NULL;
    }
    avsr_ynode *n = calloc(1, sizeof *n);
    if (!n) {
        AVSR_NOMEM(err, sizeof *n);
        return NULL;
    }
    n->line = (int)yn->start_mark.line + 1;
    n->col = (int)yn->start_mark.column + 1;
    switch (yn->type) {
    case YAML_SCALAR_NODE:
        n->kind = AVSR_Y_SCALAR;
        n->str = strndup((const char *)yn->data.scalar.value, yn->data.scalar.length);
        n->quoted = yn->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    yn->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        if (!n->str)
            goto nomem;
        if (strlen(n->str) != yn->data.scalar.length) {
            err_at(name, n->line, n->col, err, "scalar contains a NUL character");
            goto fail;
        }
        break;
    case YAML_SEQUENCE_NODE: {
        n->kind = AVSR_Y_SEQ;
        int cnt = (int)(yn->data.sequence.items.top - yn->data.sequence.items.start);
        n->item = calloc((size_t)(cnt ? cnt : 1), sizeof *n->item);
        if (!n->item)
            goto nomem;
        for (int i = 0; i < cnt; i++) {
            n->item[i] = convert(name, doc, yn->data.sequence.items.start[i], depth + 1, err);
            n->n = i + 1;
            if (!n->item[i])
                goto fail;
        }
        break;
    }
    case YAML_MAPPING_NODE: {
        n->kind = AVSR_Y_MAP;
        int cnt = (int)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
        n->item = calloc((size_t)(cnt ? cnt : 1), sizeof *n->item);
        n->key = calloc((size_t)(cnt ? cnt : 1), sizeof *n->key);
        n->used = calloc((size_t)(cnt ? cnt : 1), sizeof *n->used);
        n->key_line = calloc((size_t)(cnt ? cnt : 1), sizeof *n->key_line);
        n->key_col = calloc((size_t)(cnt ? cnt : 1), sizeof *n->key_col);
        if (!n->item || !n->key || !n->used || !n->key_line || !n->key_col)
            goto nomem;
        for (int i = 0; i < cnt; i++) {
            yaml_node_pair_t *pr = &yn->data.mapping.pairs.start[i];
            yaml_node_t *kn = yaml_document_get_node(doc, pr->key);
            if (!kn || kn->type != YAML_SCALAR_NODE) {
                err_at(name, kn ? (int)kn->start_mark.line + 1 : n->line,
                       kn ? (int)kn->start_mark.column + 1 : n->col, err,
                       "mapping keys must be plain scalars");
                goto fail;
            }
            char *k = strndup((const char *)kn->data.scalar.value, kn->data.scalar.length);
            if (!k)
                goto nomem;
            for (int j = 0; j < i; j++) {
                if (strcmp(n->key[j], k) == 0) {
                    err_at(name, (int)kn->start_mark.line + 1, (int)kn->start_mark.column + 1, err,
                           "duplicate key '%s' (first at line %d)", k, n->item[j]->line);
                    free(k);
                    goto fail;
                }
            }
            n->key[i] = k;
            n->key_line[i] = (int)kn->start_mark.line + 1;
            n->key_col[i] = (int)kn->start_mark.column + 1;
            n->n = i + 1;
            n->item[i] = convert(name, doc, pr->value, depth + 1, err);
            if (!n->item[i])
                goto fail;
        }
        break;
    }
    default:
        err_at(name, n->line, n->col, err, "empty YAML node");
        goto fail;
    }
    return n;
nomem:
    AVSR_NOMEM(err, 0);
fail:
    node_free(n);
    return NULL;
}

avsr_yaml *avsr_yaml_load_string(const char *name, const char *text, size_t len,
                                 avsr_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    avsr_yaml *y = calloc(1, sizeof *y);
    if (!y || !(y->name = strdup(name))) {
        free(y);
        AVSR_NOMEM(err, strlen(name));
        return NULL;
    }
    if (!yaml_parser_initialize(&parser)) {
        AVSR_NOMEM(err, 0);
        avsr_yaml_free(y);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        err_at(name, (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1, err,
               "YAML syntax: %s%s%s", parser.problem ? parser.problem : "error",
               parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        avsr_yaml_free(y);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        y->root = calloc(1, sizeof *y->root);
        if (y->root) {
            y->root->kind = AVSR_Y_MAP;
            y->root->line = y->root->col = 1;
        }
    } else {
        y->root = convert(name, &doc, 1, 0, err);
    }
    /* a second document is not a recipe */
    yaml_document_t doc2;
    if (y->root && yaml_parser_load(&parser, &doc2)) {
        if (yaml_document_get_root_node(&doc2)) {
            err_at(name, (int)doc2.start_mark.line + 1, (int)doc2.start_mark.column + 1, err,
                   "more than one YAML document");
            node_free(y->root);
            y->root = NULL;
        }
        yaml_document_delete(&doc2);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (!y->root) {
        avsr_yaml_free(y);
        return NULL;
    }
    return y;
}

avsr_yaml *avsr_yaml_load_file(const char *path, avsr_error *err)
{
    void *buf;
    size_t len;
    if (avsr_file_read_all(path, &buf, &len, err) < 0)
        return NULL;
    avsr_yaml *y = avsr_yaml_load_string(path, buf, len, err);
    free(buf);
    return y;
}

const char *avsr_yaml_name(const avsr_yaml *y) { return y->name; }
avsr_ynode *avsr_yaml_root(const avsr_yaml *y) { return y->root; }
avsr_ynode_kind avsr_ynode_kind_of(const avsr_ynode *n) { return n->kind; }
int avsr_ynode_line(const avsr_ynode *n) { return n->line; }
int avsr_ynode_col(const avsr_ynode *n) { return n->col; }
const char *avsr_ynode_str(const avsr_ynode *n) { return n->kind == AVSR_Y_SCALAR ? n->str : NULL; }
bool avsr_ynode_quoted(const avsr_ynode *n) { return n->quoted; }

bool avsr_ynode_is_null(const avsr_ynode *n)
{
    if (!n)
        return true;
    if (n->kind != AVSR_Y_SCALAR || n->quoted)
        return false;
    return !strcmp(n->str, "") || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
           !strcmp(n->str, "Null") || !strcmp(n->str, "NULL");
}

int avsr_ynode_len(const avsr_ynode *n) { return n->kind == AVSR_Y_SCALAR ? 0 : n->n; }
avsr_ynode *avsr_ynode_item(const avsr_ynode *seq, int i) { return seq->item[i]; }
int avsr_ynode_key_line(const avsr_ynode *map, int i) { return map->key_line[i]; }
int avsr_ynode_key_col(const avsr_ynode *map, int i) { return map->key_col[i]; }
const char *avsr_ynode_key(const avsr_ynode *map, int i) { return map->key[i]; }
avsr_ynode *avsr_ynode_value(const avsr_ynode *map, int i) { return map->item[i]; }

avsr_ynode *avsr_ynode_get(avsr_ynode *map, const char *key)
{
    if (!map || map->kind != AVSR_Y_MAP)
        return NULL;
    for (int i = 0; i < map->n; i++) {
        if (strcmp(map->key[i], key) == 0) {
            map->used[i] = true;
            return map->item[i];
        }
    }
    return NULL;
}

static const char *kind_name(avsr_ynode_kind k)
{
    return k == AVSR_Y_SCALAR ? "a scalar" : k == AVSR_Y_SEQ ? "a list" : "a mapping";
}

int avsr_ynode_to_int(const avsr_yaml *y, const avsr_ynode *n, const char *what, int64_t lo,
                      int64_t hi, int64_t *out, avsr_error *err)
{
    if (n->kind != AVSR_Y_SCALAR || n->quoted)
        return avsr_yaml_error(y, n, err, "%s: expected an integer, got %s", what,
                               n->kind == AVSR_Y_SCALAR ? "a quoted string" : kind_name(n->kind));
    char *end;
    errno = 0;
    long long v = strtoll(n->str, &end, 10);
    if (!*n->str || *end || errno == ERANGE)
        return avsr_yaml_error(y, n, err, "%s: expected an integer, got '%s'", what, n->str);
    if (v < lo || v > hi)
        return avsr_yaml_error(y, n, err, "%s: %lld is out of range [%lld, %lld]", what, v,
                               (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int avsr_ynode_to_double(const avsr_yaml *y, const avsr_ynode *n, const char *what, double lo,
                         double hi, double *out, avsr_error *err)
{
    if (n->kind != AVSR_Y_SCALAR || n->quoted)
        return avsr_yaml_error(y, n, err, "%s: expected a number, got %s", what,
                               n->kind == AVSR_Y_SCALAR ? "a quoted string" : kind_name(n->kind));
    const char *s = n->str;
    double v;
    if (!strcmp(s, ".inf") || !strcmp(s, "+.inf") || !strcmp(s, "inf"))
        v = INFINITY;
    else if (!strcmp(s, "-.inf") || !strcmp(s, "-inf"))
        v = -INFINITY;
    else {
        char *end;
        errno = 0;
        v = strtod(s, &end);
        if (!*s || *end || errno == ERANGE || isnan(v))
            return avsr_yaml_error(y, n, err, "%s: expected a number, got '%s'", what, s);
    }
    if (v < lo || v > hi)
        return avsr_yaml_error(y, n, err, "%s: %g is out of range [%g, %g]", what, v, lo, hi);
    *out = v;
    return 0;
}

/* missing/null handling shared by the getters: 1 = use default, 0 = value
 * present in *vn, -1 = error */
static int lookup(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                  bool required, avsr_ynode **vn, avsr_error *err)
{
    *vn = avsr_ynode_get(map, key);
    if (avsr_ynode_is_null(*vn)) {
        if (required)
            return avsr_yaml_error(y, map, err, "%s%smissing required key '%s'", what,
                                   what[0] ? ": " : "", key);
        return 1;
    }
    return 0;
}

/* "what.key" for messages ("key" alone at the root, what = "") */
static void key_path(char *buf, size_t n, const char *what, const char *key)
{
    if (what[0])
        snprintf(buf, n, "%s.%s", what, key);
    else
        snprintf(buf, n, "%s", key);
}

/* ---- record mode ----------------------------------------------------------- */

void avsr_yaml_record_start(avsr_yaml *y)
{
    if (!y->rec)
        y->rec = calloc(1, sizeof *y->rec);
    if (!y->rec)
        return; /* avsr_yaml_records reports it */
    recs_clear(y->rec);
    y->rec->on = true;
}

void avsr_yaml_record_stop(avsr_yaml *y)
{
    if (y->rec)
        y->rec->on = false;
}

const avsr_yaml_rec *avsr_yaml_records(const avsr_yaml *y, int *n, avsr_error *err)
{
    static const avsr_yaml_rec none[1];
    *n = 0;
    if (!y->rec) {
        AVSR_NOMEM(err, sizeof(yrecs));
        return NULL;
    }
    if (y->rec->oom) {
        AVSR_NOMEM(err, 0);
        return NULL;
    }
    *n = y->rec->n;
    return y->rec->e ? y->rec->e : none;
}

void avsr_yaml_fmt_double(double v, char *buf, size_t size)
{
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? ".inf" : "-.inf");
        return;
    }
    if (isnan(v)) {
        snprintf(buf, size, ".nan");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    /* a value that is exactly a float (the model keeps its settings as
     * floats) gets the shortest text that reads back to that float */
    bool single = (double)(float)v == v;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, v);
        double back = strtod(buf, NULL);
        if (back == v || (single && p <= 9 && (float)back == (float)v))
            return;
    }
}

char *avsr_yaml_quote(const char *s)
{
    size_t n = 3;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += *p < 0x20 ? 6 : (*p == '"' || *p == '\\') ? 2 : 1;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            if (*p == '"' || *p == '\\')
                *o++ = '\\';
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = 0;
    return out;
}

/* growing text buffer for the list renderer */
typedef struct tbuf {
    char *s;
    size_t n, cap;
    bool oom;
} tbuf;

static void tb_add(tbuf *b, const char *t)
{
    size_t k = strlen(t);
    if (b->oom)
        return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->n, t, k + 1);
    b->n += k;
}

/* a plain scalar's canonical JSON form into buf, or 0 when it is a string */
static int plain_json(const char *s, char *buf, size_t size)
{
    if (!strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
        !strcmp(s, "NULL"))
        return snprintf(buf, size, "null");
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return snprintf(buf, size, "true");
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return snprintf(buf, size, "false");
    char *end;
    errno = 0;
    long long iv = strtoll(s, &end, 10);
    if (!*end && errno != ERANGE)
        return snprintf(buf, size, "%lld", iv);
    double v;
    if (!strcmp(s, ".inf") || !strcmp(s, "+.inf") || !strcmp(s, "inf"))
        v = INFINITY;
    else if (!strcmp(s, "-.inf") || !strcmp(s, "-inf"))
        v = -INFINITY;
    else {
        errno = 0;
        v = strtod(s, &end);
        if (*end || errno == ERANGE || isnan(v))
            return 0;
    }
    avsr_yaml_fmt_double(v, buf, size);
    return 1;
}

char *avsr_ynode_list_json(const avsr_ynode *seq)
{
    if (!seq || seq->kind != AVSR_Y_SEQ)
        return NULL;
    tbuf b = {0};
    tb_add(&b, "[");
    for (int i = 0; i < seq->n; i++) {
        const avsr_ynode *it = seq->item[i];
        if (it->kind != AVSR_Y_SCALAR) {
            free(b.s);
            return NULL;
        }
        char num[64];
        if (i)
            tb_add(&b, ", ");
        if (!it->quoted && plain_json(it->str, num, sizeof num)) {
            tb_add(&b, num);
        } else {
            char *q = avsr_yaml_quote(it->str);
            if (!q)
                b.oom = true;
            else
                tb_add(&b, q);
            free(q);
        }
    }
    tb_add(&b, "]");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* "stages[1].optimizer" + "lr" -> "stages.1.optimizer.lr" */
static char *rec_path(const char *what, const char *key)
{
    size_t n = strlen(what) + strlen(key) + 2;
    char *p = malloc(n), *o = p;
    if (!p)
        return NULL;
    for (const char *c = what; *c; c++) {
        if (*c == '[')
            *o++ = '.';
        else if (*c != ']')
            *o++ = *c;
    }
    if (what[0])
        *o++ = '.';
    strcpy(o, key);
    return p;
}

int avsr_yaml_record_value(const avsr_yaml *y, const char *what, const char *key,
                           avsr_yval_type type, const char *value, const avsr_ynode *at)
{
    yrecs *r = y->rec;
    if (!r || !r->on || !value)
        return 0;
    char *path = rec_path(what, key);
    if (!path) {
        r->oom = true;
        return -1;
    }
    for (int i = 0; i < r->n; i++) {
        if (!strcmp(r->e[i].path, path)) {
            free(path);
            return 0;
        }
    }
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        avsr_yaml_rec *e = realloc(r->e, (size_t)cap * sizeof *e);
        if (!e) {
            free(path);
            r->oom = true;
            return -1;
        }
        r->e = e;
        r->cap = cap;
    }
    char *v = strdup(value);
    if (!v) {
        free(path);
        r->oom = true;
        return -1;
    }
    r->e[r->n++] = (avsr_yaml_rec){path, v, type, at == NULL, at ? at->line : 0,
                                   at ? at->col : 0};
    return 0;
}

static bool recording(const avsr_yaml *y) { return y->rec && y->rec->on; }

/* record a value a getter read (v: its node, NULL for the default) */
static int rec(const avsr_yaml *y, const char *what, const char *key, avsr_yval_type type,
               const char *value, const avsr_ynode *v)
{
    if (recording(y))
        avsr_yaml_record_value(y, what, key, type, value, v);
    return 0;
}

static int rec_int(const avsr_yaml *y, const char *what, const char *key, int64_t x,
                   const avsr_ynode *v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)x);
    return rec(y, what, key, AVSR_YV_INT, buf, v);
}

static int rec_double(const avsr_yaml *y, const char *what, const char *key, double x,
                      const avsr_ynode *v)
{
    char buf[40];
    avsr_yaml_fmt_double(x, buf, sizeof buf);
    return rec(y, what, key, AVSR_YV_FLOAT, buf, v);
}

int avsr_yaml_get_int(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, int64_t def, int64_t lo, int64_t hi, int64_t *out,
                      avsr_error *err)
{
    avsr_ynode *v;
    int r = lookup(y, map, what, key, required, &v, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        *out = def;
        return rec_int(y, what, key, def, NULL);
    }
    char path[256];
    key_path(path, sizeof path, what, key);
    if (avsr_ynode_to_int(y, v, path, lo, hi, out, err) < 0)
        return -1;
    return rec_int(y, what, key, *out, v);
}

int avsr_yaml_get_double(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                         bool required, double def, double lo, double hi, double *out,
                         avsr_error *err)
{
    avsr_ynode *v;
    int r = lookup(y, map, what, key, required, &v, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        *out = def;
        return rec_double(y, what, key, def, NULL);
    }
    char path[256];
    key_path(path, sizeof path, what, key);
    if (avsr_ynode_to_double(y, v, path, lo, hi, out, err) < 0)
        return -1;
    return rec_double(y, what, key, *out, v);
}

int avsr_yaml_get_bool(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                       bool required, bool def, bool *out, avsr_error *err)
{
    avsr_ynode *v;
    int r = lookup(y, map, what, key, required, &v, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        *out = def;
        return rec(y, what, key, AVSR_YV_BOOL, def ? "true" : "false", NULL);
    }
    if (v->kind == AVSR_Y_SCALAR && !v->quoted) {
        if (!strcmp(v->str, "true") || !strcmp(v->str, "True") || !strcmp(v->str, "TRUE")) {
            *out = true;
            return rec(y, what, key, AVSR_YV_BOOL, "true", v);
        }
        if (!strcmp(v->str, "false") || !strcmp(v->str, "False") || !strcmp(v->str, "FALSE")) {
            *out = false;
            return rec(y, what, key, AVSR_YV_BOOL, "false", v);
        }
    }
    char path[256];
    key_path(path, sizeof path, what, key);
    return avsr_yaml_error(y, v, err, "%s: expected true or false, got %s%s%s", path,
                           v->kind == AVSR_Y_SCALAR ? "'" : kind_name(v->kind),
                           v->kind == AVSR_Y_SCALAR ? v->str : "",
                           v->kind == AVSR_Y_SCALAR ? "'" : "");
}

int avsr_yaml_get_str(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, const char *def, const char *const *choices,
                      const char **out, avsr_error *err)
{
    avsr_ynode *v;
    int r = lookup(y, map, what, key, required, &v, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        *out = def;
        return rec(y, what, key, AVSR_YV_STR, def, NULL);
    }
    char path[256];
    key_path(path, sizeof path, what, key);
    if (v->kind != AVSR_Y_SCALAR)
        return avsr_yaml_error(y, v, err, "%s: expected a string, got %s", path,
                               kind_name(v->kind));
    if (choices) {
        bool ok = false;
        char list[512] = "";
        for (int i = 0; choices[i]; i++) {
            ok |= strcmp(choices[i], v->str) == 0;
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     choices[i]);
        }
        if (!ok)
            return avsr_yaml_error(y, v, err, "%s: '%s' is not one of: %s", path, v->str, list);
    }
    *out = v->str;
    return rec(y, what, key, AVSR_YV_STR, v->str, v);
}

static int get_kind(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                    bool required, avsr_ynode_kind kind, avsr_ynode **out, avsr_error *err)
{
    avsr_ynode *v;
    int r = lookup(y, map, what, key, required, &v, err);
    *out = NULL;
    if (r < 0)
        return -1;
    if (r == 1)
        return 0;
    if (v->kind != kind) {
        char path[256];
        key_path(path, sizeof path, what, key);
        return avsr_yaml_error(y, v, err, "%s: expected %s, got %s", path, kind_name(kind),
                               kind_name(v->kind));
    }
    *out = v;
    return 0;
}

int avsr_yaml_get_map(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, avsr_ynode **out, avsr_error *err)
{
    return get_kind(y, map, what, key, required, AVSR_Y_MAP, out, err);
}

int avsr_yaml_get_seq(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, avsr_ynode **out, avsr_error *err)
{
    if (get_kind(y, map, what, key, required, AVSR_Y_SEQ, out, err) < 0)
        return -1;
    if (*out && recording(y)) {
        bool scalars = true;
        for (int i = 0; i < (*out)->n; i++)
            scalars &= (*out)->item[i]->kind == AVSR_Y_SCALAR;
        if (scalars) {
            char *json = avsr_ynode_list_json(*out);
            if (!json)
                y->rec->oom = true;
            else
                avsr_yaml_record_value(y, what, key, AVSR_YV_LIST, json, *out);
            free(json);
        }
    }
    return 0;
}

int avsr_yaml_check_unused(const avsr_yaml *y, const avsr_ynode *map, const char *what,
                           avsr_error *err)
{
    if (!map || map->kind != AVSR_Y_MAP)
        return 0;
    for (int i = 0; i < map->n; i++) {
        if (map->used[i])
            continue;
        /* the keys that were looked up and found, as a hint */
        char known[512] = "";
        for (int j = 0; j < map->n; j++)
            if (map->used[j])
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         known[0] ? ", " : "", map->key[j]);
        return err_at(y->name, map->key_line[i], map->key_col[i], err,
                      "%s%sunknown key '%s'%s%s%s", what, what[0] ? ": " : "", map->key[i],
                      known[0] ? " (valid keys here include: " : "", known, known[0] ? ")" : "");
    }
    return 0;
}
