/* plan: the job graph, its checks and its JSON form (see plan.h). */
#include "sched/plan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static char **dup_strv(char *const *v, int n, bool *oom)
{
    if (n <= 0)
        return NULL;
    char **d = calloc((size_t)n, sizeof *d);
    if (!d) {
        *oom = true;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        d[i] = dup_or_null(v[i], oom);
    return d;
}

static void free_strv(char **v, int n)
{
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void job_free(avsr_sched_job *j)
{
    free(j->name);
    free(j->kind);
    free_strv(j->argv, j->argc);
    free_strv(j->deps, j->n_deps);
    free(j->array);
    free(j->point);
    free(j->result);
    memset(j, 0, sizeof *j);
}

avsr_sched_plan *avsr_sched_plan_new(const char *name, const char *exp_dir, avsr_error *err)
{
    avsr_sched_plan *p = calloc(1, sizeof *p);
    if (!p) {
        AVSR_NOMEM(err, sizeof *p);
        return NULL;
    }
    p->name = strdup(name ? name : "");
    p->exp_dir = strdup(exp_dir ? exp_dir : "");
    if (!p->name || !p->exp_dir) {
        avsr_sched_plan_free(p);
        AVSR_NOMEM(err, 64);
        return NULL;
    }
    return p;
}

void avsr_sched_plan_free(avsr_sched_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_jobs; i++)
        job_free(&p->jobs[i]);
    free(p->jobs);
    free(p->name);
    free(p->exp_dir);
    free(p);
}

int avsr_sched_plan_add(avsr_sched_plan *p, const avsr_sched_job *job, avsr_error *err)
{
    avsr_sched_job *nj = realloc(p->jobs, (size_t)(p->n_jobs + 1) * sizeof *nj);
    if (!nj)
        return AVSR_NOMEM(err, (size_t)(p->n_jobs + 1) * sizeof *nj);
    p->jobs = nj;
    avsr_sched_job *j = &p->jobs[p->n_jobs];
    memset(j, 0, sizeof *j);
    bool oom = false;
    j->name = dup_or_null(job->name ? job->name : "", &oom);
    j->kind = dup_or_null(job->kind ? job->kind : "command", &oom);
    j->ranks = job->ranks;
    j->mpi = job->mpi;
    j->gpus_per_rank = job->gpus_per_rank;
    j->argv = dup_strv(job->argv, job->argc, &oom);
    j->argc = job->argv ? job->argc : 0;
    j->deps = dup_strv(job->deps, job->n_deps, &oom);
    j->n_deps = job->deps ? job->n_deps : 0;
    j->array = dup_or_null(job->array, &oom);
    j->point = dup_or_null(job->point, &oom);
    j->result = dup_or_null(job->result, &oom);
    if (oom) {
        job_free(j);
        return AVSR_NOMEM(err, 256);
    }
    p->n_jobs++;
    return 0;
}

int avsr_sched_plan_find(const avsr_sched_plan *p, const char *name)
{
    for (int i = 0; i < p->n_jobs; i++)
        if (strcmp(p->jobs[i].name, name) == 0)
            return i;
    return -1;
}

bool avsr_sched_plan_name_ok(const char *name)
{
    if (!name || !*name || name[0] == '.' || name[0] == '-' || strlen(name) > 200)
        return false;
    for (const char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == ':' ||
                  *c == '+' || *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool same_deps(const avsr_sched_job *a, const avsr_sched_job *b)
{
    if (a->n_deps != b->n_deps)
        return false;
    for (int i = 0; i < a->n_deps; i++) {
        bool found = false;
        for (int k = 0; k < b->n_deps && !found; k++)
            found = strcmp(a->deps[i], b->deps[k]) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Depth-first search for a cycle; on one, the path is written to err. */
static int find_cycle(const avsr_sched_plan *p, const int *dep_idx, const int *dep_off,
                      int v, int *color, int *stack, int depth, avsr_error *err)
{
    color[v] = 1;
    stack[depth] = v;
    for (int k = dep_off[v]; k < dep_off[v + 1]; k++) {
        int w = dep_idx[k];
        if (color[w] == 1) {
            /* the cycle is stack[i..depth] -> w */
            int i = depth;
            while (i > 0 && stack[i] != w)
                i--;
            char buf[AVSR_ERROR_MSG_MAX];
            size_t len = 0;
            buf[0] = '\0';
            for (int t = i; t <= depth && len < sizeof buf - 1; t++)
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s -> ",
                                        p->jobs[stack[t]].name);
            if (len < sizeof buf - 1)
                snprintf(buf + len, sizeof buf - len, "%s", p->jobs[w].name);
            return avsr_error_set(err, AVSR_ERR_INVALID, "dependency cycle: %s", buf);
        }
        if (color[w] == 0 &&
            find_cycle(p, dep_idx, dep_off, w, color, stack, depth + 1, err) < 0)
            return -1;
    }
    color[v] = 2;
    return 0;
}

int avsr_sched_plan_check(const avsr_sched_plan *p, avsr_error *err)
{
    if (!p->exp_dir || !*p->exp_dir)
        return avsr_error_set(err, AVSR_ERR_INVALID, "plan %s: no experiment directory",
                              p->name);
    if (p->n_jobs == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "plan %s: no jobs", p->name);
    int total_deps = 0;
    for (int i = 0; i < p->n_jobs; i++) {
        const avsr_sched_job *j = &p->jobs[i];
        if (!avsr_sched_plan_name_ok(j->name))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "jobs[%d]: job name '%s': expected letters, digits and "
                                  "_ . : + - (not starting with '.' or '-')",
                                  i, j->name);
        for (int k = 0; k < i; k++)
            if (strcmp(p->jobs[k].name, j->name) == 0)
                return avsr_error_set(err, AVSR_ERR_INVALID,
                                      "jobs[%d]: duplicate job name '%s' (also jobs[%d])", i,
                                      j->name, k);
        if (j->argc < 1 || !j->argv[0] || !*j->argv[0])
            return avsr_error_set(err, AVSR_ERR_INVALID, "jobs[%d] (%s): empty command", i,
                                  j->name);
        if (j->ranks < 1)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "jobs[%d] (%s): ranks %d: expected at least 1", i, j->name,
                                  j->ranks);
        if (!j->mpi && j->ranks != 1)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "jobs[%d] (%s): %d ranks but not an MPI job: a plain "
                                  "command runs once, on 1 rank",
                                  i, j->name, j->ranks);
        if (j->gpus_per_rank < 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "jobs[%d] (%s): gpus_per_rank %d: expected 0 or more", i,
                                  j->name, j->gpus_per_rank);
        if (j->array && !avsr_sched_plan_name_ok(j->array))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "jobs[%d] (%s): array group '%s': expected a name like a "
                                  "job name",
                                  i, j->name, j->array);
        for (int d = 0; d < j->n_deps; d++) {
            int w = avsr_sched_plan_find(p, j->deps[d]);
            if (w < 0)
                return avsr_error_set(err, AVSR_ERR_INVALID,
                                      "jobs[%d] (%s): dependency '%s' is not a job of the plan",
                                      i, j->name, j->deps[d]);
            for (int e = 0; e < d; e++)
                if (strcmp(j->deps[e], j->deps[d]) == 0)
                    return avsr_error_set(err, AVSR_ERR_INVALID,
                                          "jobs[%d] (%s): dependency '%s' is listed twice", i,
                                          j->name, j->deps[d]);
        }
        total_deps += j->n_deps;
        if (j->array)
            for (int k = 0; k < i; k++) {
                const avsr_sched_job *o = &p->jobs[k];
                if (!o->array || strcmp(o->array, j->array) != 0)
                    continue;
                if (o->ranks != j->ranks || o->mpi != j->mpi ||
                    o->gpus_per_rank != j->gpus_per_rank || !same_deps(o, j))
                    return avsr_error_set(err, AVSR_ERR_INVALID,
                                          "jobs[%d] (%s): array '%s': its jobs must have the "
                                          "same ranks, mpi, gpus_per_rank and deps as '%s'",
                                          i, j->name, j->array, o->name);
                break;
            }
    }
    /* cycles */
    int n = p->n_jobs;
    int *dep_off = calloc((size_t)n + 1, sizeof *dep_off);
    int *dep_idx = calloc((size_t)total_deps + 1, sizeof *dep_idx);
    int *color = calloc((size_t)n, sizeof *color);
    int *stack = calloc((size_t)n + 1, sizeof *stack);
    int rc = 0;
    if (!dep_off || !dep_idx || !color || !stack) {
        rc = AVSR_NOMEM(err, (size_t)n * 16);
        goto out;
    }
    for (int i = 0, k = 0; i < n; i++) {
        dep_off[i] = k;
        for (int d = 0; d < p->jobs[i].n_deps; d++)
            dep_idx[k++] = avsr_sched_plan_find(p, p->jobs[i].deps[d]);
        dep_off[i + 1] = k;
    }
    for (int i = 0; i < n && rc == 0; i++)
        if (color[i] == 0)
            rc = find_cycle(p, dep_idx, dep_off, i, color, stack, 0, err);
out:
    free(dep_off);
    free(dep_idx);
    free(color);
    free(stack);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static int json_strv(json_t *a, const char *path, int i, const char *job, const char *key,
                     bool nonempty, char ***out, int *n, avsr_error *err)
{
    if (!json_is_array(a))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: jobs[%d] (%s): '%s': expected an array of strings", path, i,
                              job, key);
    size_t len = json_array_size(a);
    if (nonempty && len == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: jobs[%d] (%s): '%s': expected at least one string", path, i,
                              job, key);
    char **v = calloc(len + 1, sizeof *v);
    if (!v)
        return AVSR_NOMEM(err, (len + 1) * sizeof *v);
    for (size_t k = 0; k < len; k++) {
        json_t *s = json_array_get(a, k);
        if (!json_is_string(s)) {
            free_strv(v, (int)k);
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: jobs[%d] (%s): '%s'[%zu]: expected a string", path, i,
                                  job, key, k);
        }
        v[k] = strdup(json_string_value(s));
        if (!v[k]) {
            free_strv(v, (int)k);
            return AVSR_NOMEM(err, 64);
        }
    }
    *out = v;
    *n = (int)len;
    return 0;
}

static int json_opt_str(json_t *o, const char *key, const char *path, int i, const char *job,
                        const char **out, avsr_error *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: jobs[%d] (%s): '%s': expected a string", path, i, job, key);
    *out = json_string_value(v);
    return 0;
}

static int parse_job(json_t *o, const char *path, int i, avsr_sched_plan *p, avsr_error *err)
{
    static const char *const keys[] = {"name", "kind", "ranks", "mpi", "gpus_per_rank",
                                       "argv", "deps", "array", "point", "result", NULL};
    if (!json_is_object(o))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: jobs[%d]: expected an object", path,
                              i);
    json_t *jn = json_object_get(o, "name");
    if (!json_is_string(jn))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: jobs[%d]: 'name': expected a string", path, i);
    const char *name = json_string_value(jn);
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        bool known = false;
        for (int k = 0; keys[k] && !known; k++)
            known = strcmp(keys[k], key) == 0;
        if (!known)
            return avsr_error_set(err, AVSR_ERR_INVALID, "%s: jobs[%d] (%s): unknown key '%s'",
                                  path, i, name, key);
    }
    avsr_sched_job j = {0};
    j.name = (char *)name;
    j.ranks = 1;
    const char *kind, *array, *point, *result;
    if (json_opt_str(o, "kind", path, i, name, &kind, err) < 0 ||
        json_opt_str(o, "array", path, i, name, &array, err) < 0 ||
        json_opt_str(o, "point", path, i, name, &point, err) < 0 ||
        json_opt_str(o, "result", path, i, name, &result, err) < 0)
        return -1;
    j.kind = (char *)kind;
    j.array = (char *)array;
    j.point = (char *)point;
    j.result = (char *)result;
    json_t *v;
    if ((v = json_object_get(o, "ranks"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: jobs[%d] (%s): 'ranks': expected an integer >= 1", path,
                                  i, name);
        j.ranks = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "gpus_per_rank"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1024)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: jobs[%d] (%s): 'gpus_per_rank': expected an integer >= 0",
                                  path, i, name);
        j.gpus_per_rank = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "mpi"))) {
        if (!json_is_boolean(v))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: jobs[%d] (%s): 'mpi': expected true or false", path, i,
                                  name);
        j.mpi = json_is_true(v);
    }
    v = json_object_get(o, "argv");
    if (!v)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: jobs[%d] (%s): 'argv' is missing",
                              path, i, name);
    if (json_strv(v, path, i, name, "argv", true, &j.argv, &j.argc, err) < 0)
        return -1;
    int rc = 0;
    if ((v = json_object_get(o, "deps")))
        rc = json_strv(v, path, i, name, "deps", false, &j.deps, &j.n_deps, err);
    if (rc == 0)
        rc = avsr_sched_plan_add(p, &j, err);
    free_strv(j.argv, j.argc);
    free_strv(j.deps, j.n_deps);
    return rc;
}

avsr_sched_plan *avsr_sched_plan_read(const char *path, avsr_error *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 1)
            avsr_error_set(err, AVSR_ERR_IO, "%s: %s", path, je.text);
        else
            avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d:%d: %s", path, je.line, je.column,
                           je.text);
        return NULL;
    }
    avsr_sched_plan *p = NULL;
    if (!json_is_object(root)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: expected a JSON object", path);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "name") && strcmp(key, "exp_dir") && strcmp(key, "jobs")) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: unknown key '%s' (expected name, exp_dir, jobs)", path, key);
            goto fail;
        }
    }
    json_t *name = json_object_get(root, "name");
    json_t *exp = json_object_get(root, "exp_dir");
    json_t *jobs = json_object_get(root, "jobs");
    if (!json_is_string(name) || !json_is_string(exp) || !json_is_array(jobs)) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: expected 'name' (string), 'exp_dir' (string) and 'jobs' (array)",
                       path);
        goto fail;
    }
    p = avsr_sched_plan_new(json_string_value(name), json_string_value(exp), err);
    if (!p)
        goto fail;
    for (size_t i = 0; i < json_array_size(jobs); i++)
        if (parse_job(json_array_get(jobs, i), path, (int)i, p, err) < 0)
            goto fail;
    if (avsr_sched_plan_check(p, err) < 0) {
        avsr_error_prefix(err, "%s: ", path);
        goto fail;
    }
    json_decref(root);
    return p;
fail:
    avsr_sched_plan_free(p);
    json_decref(root);
    return NULL;
}

static json_t *strv_json(char *const *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

char *avsr_sched_plan_json(const avsr_sched_plan *p)
{
    json_t *root = json_object();
    json_t *jobs = json_array();
    if (!root || !jobs) {
        json_decref(root);
        json_decref(jobs);
        return NULL;
    }
    json_object_set_new(root, "name", json_string(p->name));
    json_object_set_new(root, "exp_dir", json_string(p->exp_dir));
    for (int i = 0; i < p->n_jobs; i++) {
        const avsr_sched_job *j = &p->jobs[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(j->name));
        json_object_set_new(o, "kind", json_string(j->kind));
        json_object_set_new(o, "ranks", json_integer(j->ranks));
        json_object_set_new(o, "mpi", json_boolean(j->mpi));
        if (j->gpus_per_rank)
            json_object_set_new(o, "gpus_per_rank", json_integer(j->gpus_per_rank));
        json_object_set_new(o, "argv", strv_json(j->argv, j->argc));
        json_object_set_new(o, "deps", strv_json(j->deps, j->n_deps));
        if (j->array)
            json_object_set_new(o, "array", json_string(j->array));
        if (j->point)
            json_object_set_new(o, "point", json_string(j->point));
        if (j->result)
            json_object_set_new(o, "result", json_string(j->result));
        json_array_append_new(jobs, o);
    }
    json_object_set_new(root, "jobs", jobs);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    return t;
}
