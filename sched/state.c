/* state: the scheduler's SQLite database and its retry policy (see state.h). */
#include "sched/state.h"

#include "fileio.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SCHEMA_VERSION "1"

struct avsr_sched_db {
    sqlite3 *h;
    char *dir;
    char *path;
};

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS jobs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  seq INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  ranks INTEGER NOT NULL,\n"
    "  mpi INTEGER NOT NULL,\n"
    "  gpus_per_rank INTEGER NOT NULL DEFAULT 0,\n"
    "  argv TEXT NOT NULL,\n"
    "  array_group TEXT,\n"
    "  point TEXT,\n"
    "  result TEXT,\n"
    "  state TEXT NOT NULL CHECK(state IN ('pending','queued','running','done','failed',"
    "'cancelled')),\n"
    "  attempts INTEGER NOT NULL DEFAULT 0,\n"
    "  failures INTEGER NOT NULL DEFAULT 0,\n"
    "  requeues INTEGER NOT NULL DEFAULT 0,\n"
    "  exit_status TEXT,\n"
    "  log_path TEXT,\n"
    "  created REAL NOT NULL,\n"
    "  started REAL,\n"
    "  finished REAL,\n"
    "  runtime REAL NOT NULL DEFAULT 0);\n"
    "CREATE TABLE IF NOT EXISTS deps(\n"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,\n"
    "  dep INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,\n"
    "  PRIMARY KEY(job, dep));\n"
    "CREATE TABLE IF NOT EXISTS attempts(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,\n"
    "  n INTEGER NOT NULL,\n"
    "  backend TEXT NOT NULL,\n"
    "  state TEXT NOT NULL CHECK(state IN ('starting','queued','running','ended')),\n"
    "  pid INTEGER,\n"
    "  pid_start INTEGER,\n"
    "  boot_id TEXT,\n"
    "  slurm_id TEXT,\n"
    "  slurm_name TEXT,\n"
    "  script TEXT,\n"
    "  dependency TEXT,\n"
    "  requeues INTEGER NOT NULL DEFAULT 0,\n"
    "  submitted REAL,\n"
    "  started REAL,\n"
    "  ended REAL,\n"
    "  exit_status TEXT,\n"
    "  outcome TEXT,\n"
    "  log_path TEXT NOT NULL,\n"
    "  UNIQUE(job, n));\n";

static const char *const JSTATE[] = {"pending", "queued", "running",
                                     "done",    "failed", "cancelled"};
static const char *const OUTCOME[] = {"done", "failed", "preempted",
                                      "interrupted", "lost", "cancelled"};
static const char *const ASTATE[] = {"starting", "queued", "running", "ended"};

const char *avsr_sched_jstate_name(avsr_sched_jstate s)
{
    return (unsigned)s < 6 ? JSTATE[s] : "?";
}

const char *avsr_sched_outcome_name(avsr_sched_outcome o)
{
    return (unsigned)o < 6 ? OUTCOME[o] : "?";
}

static int parse_enum(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

double avsr_sched_state_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int db_fail(avsr_sched_db *db, avsr_error *err, const char *what)
{
    return avsr_error_set(err, AVSR_ERR_IO, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

static int exec_sql(avsr_sched_db *db, const char *sql, avsr_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: %s", db->path, msg ? msg : "SQL error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int tx_begin(avsr_sched_db *db, avsr_error *err)
{
    return exec_sql(db, "BEGIN IMMEDIATE", err);
}

static int tx_end(avsr_sched_db *db, int rc, avsr_error *err)
{
    if (rc == 0)
        return exec_sql(db, "COMMIT", err);
    exec_sql(db, "ROLLBACK", NULL);
    return -1;
}

avsr_sched_db *avsr_sched_state_open(const char *exp_dir, avsr_error *err)
{
    if (avsr_mkdir_p(exp_dir, err) < 0)
        return NULL;
    avsr_sched_db *db = calloc(1, sizeof *db);
    if (!db) {
        AVSR_NOMEM(err, sizeof *db);
        return NULL;
    }
    size_t n = strlen(exp_dir) + 16;
    db->dir = strdup(exp_dir);
    db->path = malloc(n);
    if (!db->dir || !db->path) {
        avsr_sched_state_close(db);
        AVSR_NOMEM(err, n);
        return NULL;
    }
    snprintf(db->path, n, "%s/sched.db", exp_dir);
    if (sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open: %s", db->path,
                       db->h ? sqlite3_errmsg(db->h) : "out of memory");
        avsr_sched_state_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db->h, 60000);
    char *ver = NULL;
    if (exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                     "PRAGMA foreign_keys=ON;", err) < 0 ||
        tx_begin(db, err) < 0)
        goto fail;
    if (tx_end(db, exec_sql(db, SCHEMA, err), err) < 0)
        goto fail;
    if (avsr_sched_state_meta_get(db, "schema_version", &ver, err) < 0)
        goto fail;
    if (!ver) {
        if (avsr_sched_state_meta_set(db, "schema_version", SCHEMA_VERSION, err) < 0)
            goto fail;
    } else if (strcmp(ver, SCHEMA_VERSION) != 0) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: schema version %s, this avsr-sched reads version %s", db->path,
                       ver, SCHEMA_VERSION);
        goto fail;
    }
    free(ver);
    return db;
fail:
    free(ver);
    avsr_sched_state_close(db);
    return NULL;
}

void avsr_sched_state_close(avsr_sched_db *db)
{
    if (!db)
        return;
    if (db->h)
        sqlite3_close(db->h);
    free(db->dir);
    free(db->path);
    free(db);
}

const char *avsr_sched_state_dir(const avsr_sched_db *db)
{
    return db->dir;
}

static sqlite3_stmt *prep(avsr_sched_db *db, const char *sql, avsr_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        db_fail(db, err, "prepare");
        return NULL;
    }
    return st;
}

/* step a statement that returns no rows */
static int run_stmt(avsr_sched_db *db, sqlite3_stmt *st, avsr_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(db, err, "write");
    return 0;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? strdup((const char *)s) : NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_time(sqlite3_stmt *st, int i, double t)
{
    if (t > 0)
        sqlite3_bind_double(st, i, t);
    else
        sqlite3_bind_null(st, i);
}

int avsr_sched_state_meta_get(avsr_sched_db *db, const char *key, char **value, avsr_error *err)
{
    *value = NULL;
    sqlite3_stmt *st = prep(db, "SELECT value FROM meta WHERE key = ?", err);
    if (!st)
        return -1;
    bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *value = col_dup(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(db, err, "read meta");
    return 0;
}

int avsr_sched_state_meta_set(avsr_sched_db *db, const char *key, const char *value,
                              avsr_error *err)
{
    sqlite3_stmt *st = value ? prep(db, "INSERT INTO meta(key, value) VALUES(?, ?) "
                                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                    err)
                             : prep(db, "DELETE FROM meta WHERE key = ?", err);
    if (!st)
        return -1;
    bind_text(st, 1, key);
    if (value)
        bind_text(st, 2, value);
    return run_stmt(db, st, err);
}

static char *argv_json(const avsr_sched_job *j)
{
    json_t *a = json_array();
    for (int i = 0; a && i < j->argc; i++)
        json_array_append_new(a, json_string(j->argv[i]));
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

static int64_t job_id_by_name(avsr_sched_db *db, const char *name, avsr_error *err)
{
    sqlite3_stmt *st = prep(db, "SELECT id FROM jobs WHERE name = ?", err);
    if (!st)
        return -1;
    bind_text(st, 1, name);
    int64_t id = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(db, err, "read jobs");
    return id;
}

static int define_job(avsr_sched_db *db, const avsr_sched_job *j, int seq, avsr_error *err)
{
    int64_t id = job_id_by_name(db, j->name, err);
    if (id < 0)
        return -1;
    char *argv = argv_json(j);
    if (!argv)
        return AVSR_NOMEM(err, 256);
    sqlite3_stmt *st;
    if (id == 0) {
        st = prep(db,
                  "INSERT INTO jobs(name, seq, kind, ranks, mpi, gpus_per_rank, argv, "
                  "array_group, point, result, state, created) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11)",
                  err);
    } else {
        /* a done job keeps its definition and state; a failed or cancelled one
         * is asked for again: pending with a fresh failure budget */
        st = prep(db,
                  "UPDATE jobs SET seq = ?2, kind = ?3, ranks = ?4, mpi = ?5, "
                  "gpus_per_rank = ?6, argv = ?7, array_group = ?8, point = ?9, result = ?10, "
                  "state = CASE WHEN state IN ('failed', 'cancelled') THEN 'pending' "
                  "ELSE state END, "
                  "failures = CASE WHEN state IN ('failed', 'cancelled') THEN 0 "
                  "ELSE failures END, "
                  "finished = CASE WHEN state IN ('failed', 'cancelled') THEN NULL "
                  "ELSE finished END "
                  "WHERE name = ?1 AND state != 'done'",
                  err);
    }
    if (!st) {
        free(argv);
        return -1;
    }
    bind_text(st, 1, j->name);
    sqlite3_bind_int(st, 2, seq);
    bind_text(st, 3, j->kind);
    sqlite3_bind_int(st, 4, j->ranks);
    sqlite3_bind_int(st, 5, j->mpi);
    sqlite3_bind_int(st, 6, j->gpus_per_rank);
    bind_text(st, 7, argv);
    bind_text(st, 8, j->array);
    bind_text(st, 9, j->point);
    bind_text(st, 10, j->result);
    if (id == 0)
        sqlite3_bind_double(st, 11, avsr_sched_state_now());
    free(argv);
    if (id != 0) {
        /* the order is updated for done jobs too */
        if (run_stmt(db, st, err) < 0)
            return -1;
        st = prep(db, "UPDATE jobs SET seq = ? WHERE name = ?", err);
        if (!st)
            return -1;
        sqlite3_bind_int(st, 1, seq);
        bind_text(st, 2, j->name);
    }
    return run_stmt(db, st, err);
}

int avsr_sched_state_define(avsr_sched_db *db, const avsr_sched_plan *p, avsr_error *err)
{
    if (tx_begin(db, err) < 0)
        return -1;
    int rc = 0;
    /* jobs no longer in the plan */
    sqlite3_stmt *st = prep(db, "SELECT name, state FROM jobs", err);
    if (!st)
        return tx_end(db, -1, err);
    char **gone = NULL;
    int n_gone = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        if (avsr_sched_plan_find(p, name) >= 0)
            continue;
        if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0) {
            rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                "%s: job %s is %s but no longer in the plan: cancel it first "
                                "(avsr-sched cancel)",
                                db->path, name, state);
            break;
        }
        char **ng = realloc(gone, (size_t)(n_gone + 1) * sizeof *ng);
        if (!ng || !(ng[n_gone] = strdup(name))) {
            if (ng)
                gone = ng;
            rc = AVSR_NOMEM(err, 64);
            break;
        }
        gone = ng;
        n_gone++;
    }
    sqlite3_finalize(st);
    for (int i = 0; rc == 0 && i < n_gone; i++) {
        st = prep(db, "DELETE FROM jobs WHERE name = ?", err);
        if (!st) {
            rc = -1;
            break;
        }
        bind_text(st, 1, gone[i]);
        rc = run_stmt(db, st, err);
    }
    for (int i = 0; i < n_gone; i++)
        free(gone[i]);
    free(gone);
    for (int i = 0; rc == 0 && i < p->n_jobs; i++)
        rc = define_job(db, &p->jobs[i], i, err);
    if (rc == 0)
        rc = exec_sql(db, "DELETE FROM deps", err);
    for (int i = 0; rc == 0 && i < p->n_jobs; i++) {
        const avsr_sched_job *j = &p->jobs[i];
        for (int d = 0; rc == 0 && d < j->n_deps; d++) {
            st = prep(db,
                      "INSERT INTO deps(job, dep) SELECT a.id, b.id FROM jobs a, jobs b "
                      "WHERE a.name = ? AND b.name = ?",
                      err);
            if (!st) {
                rc = -1;
                break;
            }
            bind_text(st, 1, j->name);
            bind_text(st, 2, j->deps[d]);
            rc = run_stmt(db, st, err);
        }
    }
    return tx_end(db, rc, err);
}

static void attempt_free(avsr_sched_attempt *a)
{
    free(a->boot_id);
    free(a->slurm_id);
    free(a->slurm_name);
    free(a->script);
    free(a->dependency);
    free(a->exit_status);
    free(a->log_path);
    memset(a, 0, sizeof *a);
}

void avsr_sched_state_rows_free(avsr_sched_row *rows, int n)
{
    if (!rows)
        return;
    for (int i = 0; i < n; i++) {
        avsr_sched_row *r = &rows[i];
        avsr_sched_job *j = &r->def;
        free(j->name);
        free(j->kind);
        for (int k = 0; k < j->argc; k++)
            free(j->argv[k]);
        free(j->argv);
        for (int k = 0; k < j->n_deps; k++)
            free(j->deps[k]);
        free(j->deps);
        free(j->array);
        free(j->point);
        free(j->result);
        free(r->dep_rows);
        free(r->exit_status);
        free(r->log_path);
        attempt_free(&r->cur);
    }
    free(rows);
}

static double col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_double(st, i);
}

static int read_attempt(sqlite3_stmt *st, avsr_sched_attempt *a)
{
    a->id = sqlite3_column_int64(st, 0);
    a->n = sqlite3_column_int(st, 1);
    snprintf(a->backend, sizeof a->backend, "%s",
             sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
    int s = parse_enum((const char *)sqlite3_column_text(st, 3), ASTATE, 4);
    a->state = s < 0 ? AVSR_SCHED_ATT_ENDED : s;
    a->pid = (long)sqlite3_column_int64(st, 4);
    a->pid_start = sqlite3_column_int64(st, 5);
    a->boot_id = col_dup(st, 6);
    a->slurm_id = col_dup(st, 7);
    a->slurm_name = col_dup(st, 8);
    a->script = col_dup(st, 9);
    a->submitted = col_time(st, 10);
    a->started = col_time(st, 11);
    a->ended = col_time(st, 12);
    a->exit_status = col_dup(st, 13);
    a->log_path = col_dup(st, 14);
    a->dependency = col_dup(st, 15);
    a->requeues = sqlite3_column_int(st, 16);
    return 0;
}

#define ATT_COLS                                                                            \
    "id, n, backend, state, pid, pid_start, boot_id, slurm_id, slurm_name, script, "        \
    "submitted, started, ended, exit_status, log_path, dependency, requeues"

static int load_attempt(avsr_sched_db *db, avsr_sched_row *r, avsr_error *err)
{
    attempt_free(&r->cur);
    r->active = false;
    sqlite3_stmt *st =
        prep(db, "SELECT " ATT_COLS " FROM attempts WHERE job = ? ORDER BY n DESC LIMIT 1", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, r->id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_attempt(st, &r->cur);
        r->active = r->cur.state != AVSR_SCHED_ATT_ENDED;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(db, err, "read attempts");
    return 0;
}

static int parse_argv(const char *text, avsr_sched_job *j)
{
    json_t *a = json_loads(text ? text : "[]", 0, NULL);
    if (!json_is_array(a)) {
        json_decref(a);
        return -1;
    }
    size_t n = json_array_size(a);
    j->argv = calloc(n + 1, sizeof *j->argv);
    if (!j->argv) {
        json_decref(a);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        j->argv[i] = strdup(s ? s : "");
        if (!j->argv[i]) {
            json_decref(a);
            return -1;
        }
        j->argc = (int)i + 1;
    }
    json_decref(a);
    return 0;
}

int avsr_sched_state_load(avsr_sched_db *db, avsr_sched_row **rows_out, int *n_out,
                          avsr_error *err)
{
    *rows_out = NULL;
    *n_out = 0;
    sqlite3_stmt *st = prep(db,
                            "SELECT id, name, kind, ranks, mpi, gpus_per_rank, argv, array_group, "
                            "point, result, state, attempts, failures, requeues, exit_status, "
                            "log_path, created, started, finished, runtime FROM jobs "
                            "ORDER BY seq",
                            err);
    if (!st)
        return -1;
    avsr_sched_row *rows = NULL;
    int n = 0, rc = 0, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        avsr_sched_row *nr = realloc(rows, (size_t)(n + 1) * sizeof *nr);
        if (!nr) {
            rc = AVSR_NOMEM(err, (size_t)(n + 1) * sizeof *nr);
            break;
        }
        rows = nr;
        avsr_sched_row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        r->def.name = col_dup(st, 1);
        r->def.kind = col_dup(st, 2);
        r->def.ranks = sqlite3_column_int(st, 3);
        r->def.mpi = sqlite3_column_int(st, 4) != 0;
        r->def.gpus_per_rank = sqlite3_column_int(st, 5);
        if (parse_argv((const char *)sqlite3_column_text(st, 6), &r->def) < 0) {
            rc = avsr_error_set(err, AVSR_ERR_INVALID, "%s: job %s: bad argv", db->path,
                                r->def.name ? r->def.name : "?");
            break;
        }
        r->def.array = col_dup(st, 7);
        r->def.point = col_dup(st, 8);
        r->def.result = col_dup(st, 9);
        int js = parse_enum((const char *)sqlite3_column_text(st, 10), JSTATE, 6);
        r->state = js < 0 ? AVSR_SCHED_PENDING : (avsr_sched_jstate)js;
        r->attempts = sqlite3_column_int(st, 11);
        r->failures = sqlite3_column_int(st, 12);
        r->requeues = sqlite3_column_int(st, 13);
        r->exit_status = col_dup(st, 14);
        r->log_path = col_dup(st, 15);
        r->created = col_time(st, 16);
        r->started = col_time(st, 17);
        r->finished = col_time(st, 18);
        r->runtime = col_time(st, 19);
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = db_fail(db, err, "read jobs");
    sqlite3_finalize(st);
    /* dependencies and attempts */
    for (int i = 0; rc == 0 && i < n; i++) {
        avsr_sched_row *r = &rows[i];
        st = prep(db,
                  "SELECT j.name FROM deps d JOIN jobs j ON j.id = d.dep WHERE d.job = ? "
                  "ORDER BY j.seq",
                  err);
        if (!st) {
            rc = -1;
            break;
        }
        sqlite3_bind_int64(st, 1, r->id);
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
            char **nd = realloc(r->def.deps, (size_t)(r->def.n_deps + 1) * sizeof *nd);
            int *ni = realloc(r->dep_rows, (size_t)(r->def.n_deps + 1) * sizeof *ni);
            if (nd)
                r->def.deps = nd;
            if (ni)
                r->dep_rows = ni;
            if (!nd || !ni || !(nd[r->def.n_deps] = col_dup(st, 0))) {
                rc = AVSR_NOMEM(err, 64);
                break;
            }
            int w = -1;
            for (int k = 0; k < n && w < 0; k++)
                if (strcmp(rows[k].def.name, nd[r->def.n_deps]) == 0)
                    w = k;
            ni[r->def.n_deps++] = w;
        }
        sqlite3_finalize(st);
        if (rc == 0)
            rc = load_attempt(db, r, err);
    }
    if (rc < 0) {
        avsr_sched_state_rows_free(rows, n);
        return -1;
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

static int write_job(avsr_sched_db *db, const avsr_sched_row *r, avsr_error *err)
{
    sqlite3_stmt *st = prep(db,
                            "UPDATE jobs SET state = ?, attempts = ?, failures = ?, requeues = ?, "
                            "exit_status = ?, log_path = ?, started = ?, finished = ?, "
                            "runtime = ? WHERE id = ?",
                            err);
    if (!st)
        return -1;
    bind_text(st, 1, JSTATE[r->state]);
    sqlite3_bind_int(st, 2, r->attempts);
    sqlite3_bind_int(st, 3, r->failures);
    sqlite3_bind_int(st, 4, r->requeues);
    bind_text(st, 5, r->exit_status);
    bind_text(st, 6, r->log_path);
    bind_time(st, 7, r->started);
    bind_time(st, 8, r->finished);
    sqlite3_bind_double(st, 9, r->runtime);
    sqlite3_bind_int64(st, 10, r->id);
    return run_stmt(db, st, err);
}

static int write_attempt(avsr_sched_db *db, const avsr_sched_attempt *a, const char *outcome,
                         avsr_error *err)
{
    sqlite3_stmt *st = prep(db,
                            "UPDATE attempts SET state = ?, pid = ?, pid_start = ?, boot_id = ?, "
                            "slurm_id = ?, slurm_name = ?, script = ?, submitted = ?, "
                            "started = ?, ended = ?, exit_status = ?, outcome = ?, "
                            "dependency = ?, requeues = ? WHERE id = ?",
                            err);
    if (!st)
        return -1;
    bind_text(st, 1, ASTATE[a->state]);
    if (a->pid > 0) {
        sqlite3_bind_int64(st, 2, a->pid);
        sqlite3_bind_int64(st, 3, a->pid_start);
    } else {
        sqlite3_bind_null(st, 2);
        sqlite3_bind_null(st, 3);
    }
    bind_text(st, 4, a->boot_id);
    bind_text(st, 5, a->slurm_id);
    bind_text(st, 6, a->slurm_name);
    bind_text(st, 7, a->script);
    bind_time(st, 8, a->submitted);
    bind_time(st, 9, a->started);
    bind_time(st, 10, a->ended);
    bind_text(st, 11, a->exit_status);
    bind_text(st, 12, outcome);
    bind_text(st, 13, a->dependency);
    sqlite3_bind_int(st, 14, a->requeues);
    sqlite3_bind_int64(st, 15, a->id);
    return run_stmt(db, st, err);
}

static int set_str(char **dst, const char *src, avsr_error *err)
{
    char *d = src ? strdup(src) : NULL;
    if (src && !d)
        return AVSR_NOMEM(err, strlen(src));
    free(*dst);
    *dst = d;
    return 0;
}

int avsr_sched_state_begin(avsr_sched_db *db, avsr_sched_row *r, const char *backend,
                           const char *log_path, avsr_error *err)
{
    if (tx_begin(db, err) < 0)
        return -1;
    int n = 0, rc = 0;
    sqlite3_stmt *st = prep(db, "SELECT COALESCE(MAX(n), 0) FROM attempts WHERE job = ?", err);
    if (!st)
        return tx_end(db, -1, err);
    sqlite3_bind_int64(st, 1, r->id);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    n++;
    st = prep(db,
              "INSERT INTO attempts(job, n, backend, state, log_path) "
              "VALUES(?, ?, ?, 'starting', ?)",
              err);
    if (!st)
        return tx_end(db, -1, err);
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_int(st, 2, n);
    bind_text(st, 3, backend);
    bind_text(st, 4, log_path);
    rc = run_stmt(db, st, err);
    if (rc == 0) {
        attempt_free(&r->cur);
        r->cur.id = sqlite3_last_insert_rowid(db->h);
        r->cur.n = n;
        r->cur.state = AVSR_SCHED_ATT_STARTING;
        snprintf(r->cur.backend, sizeof r->cur.backend, "%s", backend);
        r->active = true;
        rc = set_str(&r->cur.log_path, log_path, err);
        if (rc == 0)
            rc = set_str(&r->log_path, log_path, err);
        r->attempts++;
        r->state = strcmp(backend, "slurm") == 0 ? AVSR_SCHED_QUEUED : AVSR_SCHED_RUNNING;
        if (rc == 0)
            rc = write_job(db, r, err);
    }
    return tx_end(db, rc, err);
}

int avsr_sched_state_update(avsr_sched_db *db, avsr_sched_row *r, avsr_error *err)
{
    if (tx_begin(db, err) < 0)
        return -1;
    if (r->cur.state == AVSR_SCHED_ATT_RUNNING) {
        r->state = AVSR_SCHED_RUNNING;
        if (r->cur.started <= 0)
            r->cur.started = avsr_sched_state_now();
        if (r->started <= 0)
            r->started = r->cur.started;
    } else if (r->cur.state == AVSR_SCHED_ATT_QUEUED) {
        r->state = AVSR_SCHED_QUEUED;
    }
    int rc = write_attempt(db, &r->cur, NULL, err);
    if (rc == 0)
        rc = write_job(db, r, err);
    return tx_end(db, rc, err);
}

int avsr_sched_state_end(avsr_sched_db *db, avsr_sched_row *r, avsr_sched_outcome outcome,
                         const char *exit_status, const avsr_sched_limits *lim,
                         avsr_error *err)
{
    double now = avsr_sched_state_now();
    if (set_str(&r->cur.exit_status, exit_status, err) < 0)
        return -1;
    r->cur.state = AVSR_SCHED_ATT_ENDED;
    r->cur.ended = now;
    r->active = false;
    if (r->cur.started > 0) {
        r->runtime += now - r->cur.started;
        if (r->started <= 0)
            r->started = r->cur.started;
    }
    if (exit_status && set_str(&r->exit_status, exit_status, err) < 0)
        return -1;
    switch (outcome) {
    case AVSR_SCHED_OUT_DONE:
        r->state = AVSR_SCHED_DONE;
        r->finished = now;
        break;
    case AVSR_SCHED_OUT_PREEMPTED:
        r->requeues++;
        if (r->requeues > lim->max_requeues) {
            /* a worker that only ever says "requeue me" is a failure too */
            r->failures++;
            r->state = r->failures > lim->retries ? AVSR_SCHED_FAILED : AVSR_SCHED_PENDING;
        } else {
            r->state = AVSR_SCHED_PENDING;
        }
        break;
    case AVSR_SCHED_OUT_INTERRUPTED:
        r->state = AVSR_SCHED_PENDING;
        break;
    case AVSR_SCHED_OUT_CANCELLED:
        r->state = AVSR_SCHED_CANCELLED;
        break;
    case AVSR_SCHED_OUT_FAILED:
    case AVSR_SCHED_OUT_LOST:
    default:
        r->failures++;
        r->state = r->failures > lim->retries ? AVSR_SCHED_FAILED : AVSR_SCHED_PENDING;
        break;
    }
    if (r->state == AVSR_SCHED_FAILED)
        r->finished = now;
    if (tx_begin(db, err) < 0)
        return -1;
    int rc = write_attempt(db, &r->cur, OUTCOME[outcome], err);
    if (rc == 0)
        rc = write_job(db, r, err);
    return tx_end(db, rc, err);
}

int avsr_sched_state_add_requeues(avsr_sched_db *db, avsr_sched_row *r, int n, avsr_error *err)
{
    if (n <= 0)
        return 0;
    r->requeues += n;
    r->cur.requeues += n;
    if (tx_begin(db, err) < 0)
        return -1;
    int rc = write_attempt(db, &r->cur, NULL, err);
    if (rc == 0)
        rc = write_job(db, r, err);
    return tx_end(db, rc, err);
}

int avsr_sched_state_set(avsr_sched_db *db, avsr_sched_row *r, avsr_sched_jstate s,
                         avsr_error *err)
{
    r->state = s;
    if ((s == AVSR_SCHED_CANCELLED || s == AVSR_SCHED_FAILED) && r->finished <= 0)
        r->finished = avsr_sched_state_now();
    if (tx_begin(db, err) < 0)
        return -1;
    return tx_end(db, write_job(db, r, err), err);
}
