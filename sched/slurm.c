/* slurm: sbatch submission with dependencies and arrays, squeue tracking,
 * resubmission and dependency re-pointing (see slurm.h). */
#include "sched/slurm.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "sched/proc.h"

#define TEMPLATE "avsr-job.sbatch"

#ifndef AVSR_SLURM_TEMPLATE_DIR
#define AVSR_SLURM_TEMPLATE_DIR ""
#endif
#ifndef AVSR_SOURCE_TEMPLATE_DIR
#define AVSR_SOURCE_TEMPLATE_DIR ""
#endif

/* a growing string */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

static void sb_quoted(sbuf *b, const char *s)
{
    char *q = avsr_sched_proc_shell_quote(s);
    if (!q) {
        b->oom = true;
        return;
    }
    sb_puts(b, q);
    free(q);
}

static bool has_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, R_OK) == 0;
}

char *avsr_sched_slurm_template_dir(const avsr_sched_opts *o, avsr_error *err)
{
    const char *env = getenv("AVSR_SLURM_TEMPLATES");
    const char *cand[4] = {o->template_dir, env, AVSR_SLURM_TEMPLATE_DIR,
                           AVSR_SOURCE_TEMPLATE_DIR};
    for (int i = 0; i < 4; i++) {
        if (!cand[i] || !*cand[i])
            continue;
        if (has_file(cand[i], TEMPLATE)) {
            char *d = strdup(cand[i]);
            if (!d)
                AVSR_NOMEM(err, strlen(cand[i]));
            return d;
        }
        if (i < 2) {
            avsr_error_set(err, AVSR_ERR_IO, "%s/%s: no such template (%s)", cand[i], TEMPLATE,
                           i == 0 ? "--templates" : "AVSR_SLURM_TEMPLATES");
            return NULL;
        }
    }
    avsr_error_set(err, AVSR_ERR_IO,
                   "no Slurm template %s in %s or %s: set AVSR_SLURM_TEMPLATES to the "
                   "directory that holds it (launch/slurm in the source tree)",
                   TEMPLATE, *AVSR_SLURM_TEMPLATE_DIR ? AVSR_SLURM_TEMPLATE_DIR : "(none)",
                   *AVSR_SOURCE_TEMPLATE_DIR ? AVSR_SOURCE_TEMPLATE_DIR : "(none)");
    return NULL;
}

/* ---- the backend's context ----------------------------------------------------- */

typedef struct sl {
    avsr_sched_db *db;
    const avsr_sched_opts *o;
    char *tmpl_path;
    char *tmpl;          /* template text */
    char *exp;           /* absolute experiment directory */
    char *workdir;       /* absolute current directory (--chdir) */
    char *token;         /* random, per database: unique job names */
    char *mpirun_words;  /* quoted mpirun words for the script */
} sl;

static void sl_free(sl *S)
{
    free(S->tmpl_path);
    free(S->tmpl);
    free(S->exp);
    free(S->workdir);
    free(S->token);
    free(S->mpirun_words);
}

static bool blank_free(const char *s)
{
    return strpbrk(s, " \t\n\r") == NULL;
}

static int sl_init(sl *S, avsr_sched_db *db, const avsr_sched_opts *o, bool need_template,
                   avsr_error *err)
{
    memset(S, 0, sizeof *S);
    S->db = db;
    S->o = o;
    char buf[PATH_MAX];
    if (!realpath(avsr_sched_state_dir(db), buf))
        return avsr_error_set(err, AVSR_ERR_IO, "%s: %s", avsr_sched_state_dir(db),
                              strerror(errno));
    S->exp = strdup(buf);
    if (!getcwd(buf, sizeof buf))
        return avsr_error_set(err, AVSR_ERR_IO, "getcwd: %s", strerror(errno));
    S->workdir = strdup(buf);
    if (!S->exp || !S->workdir)
        return AVSR_NOMEM(err, PATH_MAX);
    if (!blank_free(S->exp) || !blank_free(S->workdir))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: the Slurm backend needs paths without blanks (they go into "
                              "#SBATCH lines)",
                              !blank_free(S->exp) ? S->exp : S->workdir);
    if (avsr_sched_state_meta_get(db, "token", &S->token, err) < 0)
        return -1;
    if (!S->token) {
        unsigned v = 0;
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&v, sizeof v, 1, f) != 1)
            v = (unsigned)getpid() ^ (unsigned)time(NULL);
        if (f)
            fclose(f);
        char t[16];
        snprintf(t, sizeof t, "%06x", v & 0xffffffu);
        if (avsr_sched_state_meta_set(db, "token", t, err) < 0)
            return -1;
        S->token = strdup(t);
        if (!S->token)
            return AVSR_NOMEM(err, 16);
    }
    if (!need_template)
        return 0;
    if (!(S->tmpl_path = avsr_sched_slurm_template_dir(o, err)))
        return -1;
    char tp[PATH_MAX];
    snprintf(tp, sizeof tp, "%s/%s", S->tmpl_path, TEMPLATE);
    void *text;
    size_t len;
    if (avsr_file_read_all(tp, &text, &len, err) < 0)
        return -1;
    S->tmpl = text;
    const char *launcher = o->launcher ? o->launcher : "srun";
    if (strcmp(launcher, "srun") != 0 && strcmp(launcher, "mpirun") != 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "launcher '%s': expected srun or mpirun",
                              launcher);
    for (const char *c = o->srun_mpi ? o->srun_mpi : ""; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "srun MPI type '%s': expected a name like pmix or pmi2",
                                  o->srun_mpi);
    sbuf b = {0};
    if (strcmp(launcher, "mpirun") == 0) {
        int argc;
        char **mv = avsr_sched_proc_mpirun(&argc, err);
        if (!mv)
            return -1;
        for (int i = 0; i < argc; i++) {
            if (i)
                sb_puts(&b, " ");
            sb_quoted(&b, mv[i]);
        }
        avsr_sched_proc_free_argv(mv);
    }
    sb_puts(&b, "");
    if (b.oom)
        return AVSR_NOMEM(err, b.cap);
    S->mpirun_words = b.s;
    return 0;
}

/* ---- running the Slurm commands ------------------------------------------------ */

static int slurm_cmd(char *const argv[], char **out, avsr_error *err)
{
    char *o = NULL, *e = NULL;
    int status = 0;
    if (avsr_sched_proc_capture(argv, &o, &e, &status, err) < 0) {
        avsr_error_prefix(err, "is Slurm installed? ");
        return -1;
    }
    if (status != 0) {
        size_t n = strlen(e);
        while (n && (e[n - 1] == '\n' || e[n - 1] == ' '))
            e[--n] = '\0';
        sbuf cmd = {0};
        for (int i = 0; argv[i]; i++) {
            if (i)
                sb_puts(&cmd, " ");
            sb_puts(&cmd, argv[i]);
        }
        avsr_error_set(err, AVSR_ERR_BACKEND, "%s: exit %d: %s", cmd.s ? cmd.s : argv[0],
                       status, *e ? e : "(no message)");
        free(cmd.s);
        free(o);
        free(e);
        return -1;
    }
    free(e);
    if (out)
        *out = o;
    else
        free(o);
    return 0;
}

/* squeue's view: one entry per job or array task */
typedef struct qent {
    char id[64];
    char state[32];
    char reason[64];
} qent;

static int squeue_read(const char *name, qent **out, int *n, avsr_error *err)
{
    char *args[16];
    int k = 0;
    char namearg[300];
    args[k++] = "squeue";
    args[k++] = "-h";
    args[k++] = "-r";
    args[k++] = "--states=all";
    args[k++] = "-o";
    args[k++] = "%i|%T|%r";
    if (name) {
        snprintf(namearg, sizeof namearg, "--name=%s", name);
        args[k++] = namearg;
    }
    args[k] = NULL;
    char *text;
    if (slurm_cmd(args, &text, err) < 0)
        return -1;
    qent *q = NULL;
    int m = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        qent e;
        memset(&e, 0, sizeof e);
        char *a = strchr(line, '|');
        char *b = a ? strchr(a + 1, '|') : NULL;
        if (!a || !b)
            continue;
        *a = *b = '\0';
        snprintf(e.id, sizeof e.id, "%s", line);
        snprintf(e.state, sizeof e.state, "%s", a + 1);
        snprintf(e.reason, sizeof e.reason, "%s", b + 1);
        qent *nq = realloc(q, (size_t)(m + 1) * sizeof *nq);
        if (!nq) {
            free(q);
            free(text);
            return AVSR_NOMEM(err, (size_t)(m + 1) * sizeof *nq);
        }
        q = nq;
        q[m++] = e;
    }
    free(text);
    *out = q;
    *n = m;
    return 0;
}

static const qent *q_find(const qent *q, int n, const char *id)
{
    for (int i = 0; id && i < n; i++)
        if (strcmp(q[i].id, id) == 0)
            return &q[i];
    return NULL;
}

/* states in which a job may still run (or run again, after a requeue) */
static bool q_active(const char *state)
{
    static const char *const act[] = {"PENDING",  "CONFIGURING",  "RUNNING",
                                      "COMPLETING", "SUSPENDED",  "REQUEUED",
                                      "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
                                      "SIGNALING", "STAGE_OUT",   "STOPPED",
                                      "RESV_DEL_HOLD", NULL};
    for (int i = 0; act[i]; i++)
        if (strcmp(state, act[i]) == 0)
            return true;
    return false;
}

/* ---- markers -------------------------------------------------------------------- */

/* <exp>/slurm/markers/<job>.<attempt>.exit (the script adds .<restart>) */
static void marker_base(const sl *S, const avsr_sched_row *r, int attempt, char *buf,
                        size_t size)
{
    snprintf(buf, size, "%s/slurm/markers/%s.%d.exit", S->exp, r->def.name, attempt);
}

/* The markers of r's current attempt: the status of the newest run
 * (*final, -1 if none) and how many runs ended with 75 before it. */
static void read_markers(const sl *S, const avsr_sched_row *r, int *final, int *n75)
{
    char base[PATH_MAX];
    marker_base(S, r, r->cur.n, base, sizeof base);
    *final = -1;
    *n75 = 0;
    int newest = -1;
    for (int restart = 0; restart < 10000; restart++) {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof p, "%s.%d", base, restart);
        FILE *f = fopen(p, "r");
        if (!f) {
            /* restarts are numbered without gaps, but a run killed without
             * writing its marker leaves one: look a little further */
            if (restart > newest + 3)
                break;
            continue;
        }
        int v = -1;
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
        if (newest >= 0 && *final == 75)
            (*n75)++;
        newest = restart;
        *final = v;
    }
}

/* The unix time the first run of r's current attempt started (its start
 * marker), or 0. */
static double first_start(const sl *S, const avsr_sched_row *r)
{
    char base[PATH_MAX], p[PATH_MAX + 32];
    marker_base(S, r, r->cur.n, base, sizeof base);
    snprintf(p, sizeof p, "%s.0.start", base);
    FILE *f = fopen(p, "r");
    double t = 0;
    if (f) {
        if (fscanf(f, "%lf", &t) != 1)
            t = 0;
        fclose(f);
    }
    return t;
}

/* ---- rendering and submitting ---------------------------------------------------- */

/* position of r among the members of its array group, in plan order */
static int array_index(const avsr_sched_row *rows, int n, const avsr_sched_row *r)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (&rows[i] == r)
            return k;
        if (rows[i].def.array && strcmp(rows[i].def.array, r->def.array) == 0)
            k++;
    }
    return -1;
}

static int render(const sl *S, const avsr_sched_row *rows, int n, avsr_sched_row **m, int nm,
                  const char *jobname, char **out, avsr_error *err)
{
    const avsr_sched_row *first = m[0];
    sbuf sel = {0}, lines = {0}, b = {0};
    for (int i = 0; i < nm; i++) {
        const avsr_sched_row *r = m[i];
        char marker[PATH_MAX];
        marker_base(S, r, r->cur.n, marker, sizeof marker);
        if (first->def.array)
            sb_printf(&sel, "%d)\n", array_index(rows, n, r));
        else
            sb_puts(&sel, "none)\n");
        sb_printf(&sel, "    job=%s\n    attempt=%d\n    log=", r->def.name, r->cur.n);
        sb_quoted(&sel, r->cur.log_path);
        sb_puts(&sel, "\n    marker=");
        sb_quoted(&sel, marker);
        sb_printf(&sel, "\n    mpi=%d\n    cmd=(", r->def.mpi ? 1 : 0);
        char *prog = avsr_sched_proc_resolve(r->def.argv[0], err);
        if (!prog) {
            avsr_error_prefix(err, "job %s: ", r->def.name);
            free(sel.s);
            return -1;
        }
        sb_quoted(&sel, prog);
        free(prog);
        for (int a = 1; a < r->def.argc; a++) {
            sb_puts(&sel, " ");
            sb_quoted(&sel, r->def.argv[a]);
        }
        sb_puts(&sel, ")\n    ;;");
        if (i + 1 < nm)
            sb_puts(&sel, "\n");
    }
    if (first->def.gpus_per_rank > 0)
        sb_printf(&lines, "#SBATCH --gpus-per-task=%d\n", first->def.gpus_per_rank);
    for (int i = 0; i < S->o->n_sbatch_opts; i++)
        sb_printf(&lines, "#SBATCH %s\n", S->o->sbatch_opts[i]);
    sb_puts(&lines, "");
    if (lines.len && lines.s[lines.len - 1] == '\n')
        lines.s[--lines.len] = '\0';
    sb_puts(&sel, "");
    if (sel.oom || lines.oom) {
        free(sel.s);
        free(lines.s);
        return AVSR_NOMEM(err, sel.cap + lines.cap);
    }
    char ntasks[16], maxrq[16], output[PATH_MAX + 32];
    snprintf(ntasks, sizeof ntasks, "%d", first->def.ranks);
    snprintf(maxrq, sizeof maxrq, "%d", S->o->limits.max_requeues);
    snprintf(output, sizeof output, "%s/slurm/%%x.%%j.out", S->exp);
    const char *launcher = S->o->launcher ? S->o->launcher : "srun";
    char srun_mpi[96] = "";
    if (S->o->srun_mpi && *S->o->srun_mpi && strcmp(S->o->srun_mpi, "default") != 0)
        snprintf(srun_mpi, sizeof srun_mpi, "--mpi=%s", S->o->srun_mpi);
    struct {
        const char *key, *val;
    } fields[] = {{"JOB_NAME", jobname},      {"NTASKS", ntasks},
                  {"SLURM_OUTPUT", output},   {"WORKDIR", S->workdir},
                  {"SBATCH_LINES", lines.s},  {"LAUNCHER", launcher},
                  {"MPIRUN", S->mpirun_words}, {"MAX_REQUEUES", maxrq},
                  {"SRUN_MPI", srun_mpi},     {"SELECT", sel.s}};
    const int nf = (int)(sizeof fields / sizeof fields[0]);
    int line = 1, rc = 0;
    for (const char *p = S->tmpl; *p && rc == 0;) {
        if (*p == '\n')
            line++;
        if (p[0] == '{' && p[1] == '{') {
            const char *e = p + 2;
            while ((*e >= 'A' && *e <= 'Z') || *e == '_')
                e++;
            if (e > p + 2 && e[0] == '}' && e[1] == '}') {
                size_t kl = (size_t)(e - p - 2);
                int f = -1;
                for (int k = 0; k < nf && f < 0; k++)
                    if (strlen(fields[k].key) == kl && strncmp(fields[k].key, p + 2, kl) == 0)
                        f = k;
                if (f < 0) {
                    rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                        "%s/%s:%d: unknown field {{%.*s}}", S->tmpl_path,
                                        TEMPLATE, line, (int)kl, p + 2);
                    break;
                }
                sb_puts(&b, fields[f].val);
                p = e + 2;
                continue;
            }
        }
        sb_add(&b, p, 1);
        p++;
    }
    free(sel.s);
    free(lines.s);
    if (rc == 0 && b.oom)
        rc = AVSR_NOMEM(err, b.cap);
    if (rc < 0) {
        free(b.s);
        return -1;
    }
    *out = b.s;
    return 0;
}

static int mkdirs(const sl *S, avsr_error *err)
{
    const char *sub[] = {"logs", "slurm", "slurm/markers"};
    for (int i = 0; i < 3; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", S->exp, sub[i]);
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", p,
                                  strerror(errno));
    }
    return 0;
}

/* The afterok list for r from its dependencies' current state: *ok = false
 * when a dependency is neither done nor submitted. */
static int dependency_of(const avsr_sched_row *rows, const avsr_sched_row *r, sbuf *dep, bool *ok)
{
    *ok = true;
    for (int d = 0; d < r->def.n_deps; d++) {
        const avsr_sched_row *w = r->dep_rows[d] >= 0 ? &rows[r->dep_rows[d]] : NULL;
        if (!w) {
            *ok = false;
            return 0;
        }
        if (w->state == AVSR_SCHED_DONE)
            continue;
        if (!w->active || strcmp(w->cur.backend, "slurm") != 0 || !w->cur.slurm_id) {
            *ok = false;
            return 0;
        }
        sb_puts(dep, dep->len ? ":" : "afterok:");
        sb_puts(dep, w->cur.slurm_id);
    }
    sb_puts(dep, "");
    return dep->oom ? -1 : 0;
}

static int next_submission(const sl *S, int *k, avsr_error *err)
{
    char *v = NULL;
    if (avsr_sched_state_meta_get(S->db, "slurm_submissions", &v, err) < 0)
        return -1;
    *k = v ? atoi(v) + 1 : 1;
    free(v);
    char t[16];
    snprintf(t, sizeof t, "%d", *k);
    return avsr_sched_state_meta_set(S->db, "slurm_submissions", t, err);
}

/* Submit the members m[0..nm) (one job, or tasks of one array) that share
 * their dependencies `dep`. */
static int submit(sl *S, avsr_sched_row *rows, int n, avsr_sched_row **m, int nm, const char *dep,
                  avsr_error *err)
{
    int k;
    if (next_submission(S, &k, err) < 0)
        return -1;
    char jobname[300], script[PATH_MAX];
    snprintf(jobname, sizeof jobname, "avsr.%s.%s.%d", S->token,
             m[0]->def.array ? m[0]->def.array : m[0]->def.name, k);
    snprintf(script, sizeof script, "%s/slurm/%s.sbatch", S->exp, jobname);
    /* attempts first, with the unique name: a scheduler killed after sbatch
     * finds the job by name */
    for (int i = 0; i < nm; i++) {
        avsr_sched_row *r = m[i];
        char log[PATH_MAX];
        snprintf(log, sizeof log, "%s/logs/%s.%d.log", S->exp, r->def.name, r->attempts + 1);
        if (avsr_sched_state_begin(S->db, r, "slurm", log, err) < 0)
            return -1;
        free(r->cur.slurm_name);
        free(r->cur.script);
        free(r->cur.dependency);
        r->cur.slurm_name = strdup(jobname);
        r->cur.script = strdup(script);
        r->cur.dependency = *dep ? strdup(dep) : NULL;
        if (!r->cur.slurm_name || !r->cur.script || (*dep && !r->cur.dependency))
            return AVSR_NOMEM(err, 256);
        if (avsr_sched_state_update(S->db, r, err) < 0)
            return -1;
    }
    char *text = NULL;
    if (render(S, rows, n, m, nm, jobname, &text, err) < 0)
        goto undo;
    avsr_afile af;
    if (avsr_afile_open(&af, script, err) < 0) {
        free(text);
        goto undo;
    }
    if (avsr_afile_write(&af, text, strlen(text), err) < 0) {
        avsr_afile_abort(&af);
        free(text);
        goto undo;
    }
    free(text);
    if (avsr_afile_commit(&af, err) < 0)
        goto undo;
    sbuf arr = {0};
    if (m[0]->def.array) {
        sb_puts(&arr, "--array=");
        for (int i = 0; i < nm; i++)
            sb_printf(&arr, "%s%d", i ? "," : "", array_index(rows, n, m[i]));
    }
    char deparg[PATH_MAX];
    snprintf(deparg, sizeof deparg, "--dependency=%s", dep);
    char *args[8];
    int a = 0;
    args[a++] = "sbatch";
    args[a++] = "--parsable";
    if (arr.s)
        args[a++] = arr.s;
    if (*dep)
        args[a++] = deparg;
    args[a++] = script;
    args[a] = NULL;
    char *out = NULL;
    int rc = slurm_cmd(args, &out, err);
    free(arr.s);
    if (rc < 0)
        goto undo;
    out[strcspn(out, ";\n")] = '\0'; /* "123" or "123;cluster" */
    char *end;
    long id = strtol(out, &end, 10);
    if (end == out || *end || id <= 0) {
        avsr_error_set(err, AVSR_ERR_BACKEND, "sbatch printed '%s', expected a job id", out);
        free(out);
        goto undo;
    }
    free(out);
    for (int i = 0; i < nm; i++) {
        avsr_sched_row *r = m[i];
        char sid[96];
        if (r->def.array)
            snprintf(sid, sizeof sid, "%ld_%d", id, array_index(rows, n, r));
        else
            snprintf(sid, sizeof sid, "%ld", id);
        free(r->cur.slurm_id);
        r->cur.slurm_id = strdup(sid);
        if (!r->cur.slurm_id)
            return AVSR_NOMEM(err, 64);
        r->cur.state = AVSR_SCHED_ATT_QUEUED;
        r->cur.submitted = avsr_sched_state_now();
        if (avsr_sched_state_update(S->db, r, err) < 0)
            return -1;
        avsr_sched_say(S->o->log, "%s: submitted as Slurm job %s (attempt %d%s%s)", r->def.name, sid, r->cur.n,
            *dep ? ", " : "", dep);
    }
    return 0;
undo:
    /* nothing was submitted: the attempts never started */
    for (int i = 0; i < nm; i++)
        if (m[i]->active) {
            avsr_error e2 = {0};
            avsr_sched_state_end(S->db, m[i], AVSR_SCHED_OUT_INTERRUPTED, NULL,
                                 &S->o->limits, &e2);
        }
    return -1;
}

/* Submit everything that can be: pending jobs whose dependencies are done
 * or submitted. Array members ready together go in one submission. */
static int submit_ready(sl *S, avsr_sched_row *rows, int n, int *submitted, avsr_error *err)
{
    *submitted = 0;
    avsr_sched_row **m = calloc((size_t)n, sizeof *m);
    if (!m)
        return AVSR_NOMEM(err, (size_t)n * sizeof *m);
    int rc = 0;
    bool progress = true;
    while (progress && rc == 0) {
        progress = false;
        for (int i = 0; i < n && rc == 0; i++) {
            avsr_sched_row *r = &rows[i];
            if (r->state != AVSR_SCHED_PENDING || r->active)
                continue;
            sbuf dep = {0};
            bool ok;
            if (dependency_of(rows, r, &dep, &ok) < 0) {
                free(dep.s);
                rc = AVSR_NOMEM(err, 256);
                break;
            }
            if (!ok) {
                free(dep.s);
                continue;
            }
            int nm = 0;
            m[nm++] = r;
            if (r->def.array)
                for (int k = i + 1; k < n; k++) {
                    avsr_sched_row *o = &rows[k];
                    if (o->state == AVSR_SCHED_PENDING && !o->active && o->def.array &&
                        strcmp(o->def.array, r->def.array) == 0)
                        m[nm++] = o; /* same deps: checked by the plan */
                }
            rc = submit(S, rows, n, m, nm, dep.s ? dep.s : "", err);
            free(dep.s);
            if (rc == 0) {
                *submitted += nm;
                progress = true;
            }
        }
    }
    free(m);
    return rc;
}

/* ---- tracking ------------------------------------------------------------------- */

static int scancel(const char *id, avsr_error *err)
{
    char *args[] = {"scancel", (char *)id, NULL};
    return slurm_cmd(args, NULL, err);
}

/* An attempt that squeue no longer shows as active: its outcome. */
static int finish(sl *S, avsr_sched_row *r, const qent *q, avsr_error *err)
{
    int final, n75;
    read_markers(S, r, &final, &n75);
    if (n75 > r->cur.requeues &&
        avsr_sched_state_add_requeues(S->db, r, n75 - r->cur.requeues, err) < 0)
        return -1;
    /* the runtime counts from the script's start, also when no poll saw the
     * job running */
    double t0 = first_start(S, r);
    if (t0 > 0)
        r->cur.started = t0;
    /* a final exit 75 already counted while the job looked requeued is
     * counted once more by the preempted outcome below */
    if (final == 75 && r->cur.requeues > n75)
        r->requeues -= r->cur.requeues - n75;
    avsr_sched_outcome out;
    char status[192];
    if (final >= 0) {
        snprintf(status, sizeof status, "exit %d", final);
        out = final == 0 ? AVSR_SCHED_OUT_DONE
            : final == 75 ? AVSR_SCHED_OUT_PREEMPTED
                          : AVSR_SCHED_OUT_FAILED;
    } else if (q && strcmp(q->state, "COMPLETED") == 0) {
        snprintf(status, sizeof status, "exit 0");
        out = AVSR_SCHED_OUT_DONE;
    } else if (q && strcmp(q->state, "CANCELLED") == 0 && r->cur.started <= 0) {
        /* never ran: cancelled in the queue (e.g. kill_invalid_depend) */
        snprintf(status, sizeof status, "Slurm %s before it ran", q->state);
        out = AVSR_SCHED_OUT_INTERRUPTED;
    } else if (q && strcmp(q->state, "PREEMPTED") == 0) {
        snprintf(status, sizeof status, "Slurm PREEMPTED");
        out = AVSR_SCHED_OUT_PREEMPTED;
    } else if (q) {
        snprintf(status, sizeof status, "Slurm %s (%s), no exit marker", q->state, q->reason);
        out = AVSR_SCHED_OUT_FAILED;
    } else {
        snprintf(status, sizeof status, "gone from squeue without an exit marker");
        out = AVSR_SCHED_OUT_LOST;
    }
    if (avsr_sched_state_end(S->db, r, out, status, &S->o->limits, err) < 0)
        return -1;
    const char *next = r->state == AVSR_SCHED_DONE      ? "done"
                       : r->state == AVSR_SCHED_FAILED    ? "failed: retry limit reached"
                       : r->state == AVSR_SCHED_CANCELLED ? "cancelled"
                                                          : "to be resubmitted";
    avsr_sched_say(S->o->log, "%s: Slurm job %s %s (%s, failures %d, requeues %d): %s; log %s", r->def.name,
        r->cur.slurm_id, avsr_sched_outcome_name(out), status, r->failures, r->requeues, next,
        r->cur.log_path);
    return 0;
}

/* Find submissions that a killed scheduler recorded but may not have made. */
static int recover_starting(sl *S, avsr_sched_row *rows, int n, avsr_error *err)
{
    for (int i = 0; i < n; i++) {
        avsr_sched_row *r = &rows[i];
        if (!r->active || strcmp(r->cur.backend, "slurm") != 0 ||
            r->cur.state != AVSR_SCHED_ATT_STARTING)
            continue;
        qent *q = NULL;
        int nq = 0;
        if (r->cur.slurm_name && squeue_read(r->cur.slurm_name, &q, &nq, err) < 0)
            return -1;
        char want[160] = "";
        if (nq > 0) {
            /* the job id, plus the task for array members */
            char base[64];
            snprintf(base, sizeof base, "%s", q[0].id);
            base[strcspn(base, "_")] = '\0';
            if (r->def.array)
                snprintf(want, sizeof want, "%s_%d", base, array_index(rows, n, r));
            else
                snprintf(want, sizeof want, "%s", base);
        }
        free(q);
        if (*want) {
            free(r->cur.slurm_id);
            r->cur.slurm_id = strdup(want);
            r->cur.state = AVSR_SCHED_ATT_QUEUED;
            r->cur.submitted = avsr_sched_state_now();
            if (!r->cur.slurm_id || avsr_sched_state_update(S->db, r, err) < 0)
                return r->cur.slurm_id ? -1 : AVSR_NOMEM(err, 64);
            avsr_sched_say(S->o->log, "%s: found its submission %s (Slurm job %s)", r->def.name,
                r->cur.slurm_name, want);
        } else {
            if (avsr_sched_state_end(S->db, r, AVSR_SCHED_OUT_INTERRUPTED, NULL, &S->o->limits,
                                     err) < 0)
                return -1;
        }
    }
    return 0;
}

static int poll_once(sl *S, avsr_sched_row *rows, int n, avsr_error *err)
{
    if (recover_starting(S, rows, n, err) < 0)
        return -1;
    qent *q = NULL;
    int nq = 0;
    if (squeue_read(NULL, &q, &nq, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        avsr_sched_row *r = &rows[i];
        if (!r->active || strcmp(r->cur.backend, "slurm") != 0 || !r->cur.slurm_id)
            continue;
        const qent *e = q_find(q, nq, r->cur.slurm_id);
        if (e && q_active(e->state)) {
            int final, n75;
            read_markers(S, r, &final, &n75);
            if (n75 + (final == 75 ? 1 : 0) > r->cur.requeues) {
                int add = n75 + (final == 75 ? 1 : 0) - r->cur.requeues;
                avsr_sched_say(S->o->log, "%s: Slurm job %s preempted (exit 75) and requeued", r->def.name,
                    r->cur.slurm_id);
                rc = avsr_sched_state_add_requeues(S->db, r, add, err);
            }
            int want = strcmp(e->state, "PENDING") == 0 || strcmp(e->state, "REQUEUED") == 0
                           ? AVSR_SCHED_ATT_QUEUED
                           : AVSR_SCHED_ATT_RUNNING;
            if (rc == 0 && want != r->cur.state) {
                r->cur.state = want;
                if (want == AVSR_SCHED_ATT_RUNNING)
                    avsr_sched_say(S->o->log, "%s: Slurm job %s running", r->def.name, r->cur.slurm_id);
                rc = avsr_sched_state_update(S->db, r, err);
            }
            continue;
        }
        rc = finish(S, r, e, err);
    }
    free(q);
    return rc;
}

/* Jobs that can never run: failed or cancelled, or waiting (not submitted)
 * on such a job, transitively. */
static bool *doomed_jobs(const avsr_sched_row *rows, int n)
{
    bool *doomed = calloc((size_t)n + 1, sizeof *doomed);
    if (!doomed)
        return NULL;
    for (int i = 0; i < n; i++)
        doomed[i] = rows[i].state == AVSR_SCHED_FAILED || rows[i].state == AVSR_SCHED_CANCELLED;
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < n; i++) {
            if (doomed[i] || rows[i].active || rows[i].state != AVSR_SCHED_PENDING)
                continue;
            for (int d = 0; d < rows[i].def.n_deps; d++)
                if (rows[i].dep_rows[d] >= 0 && doomed[rows[i].dep_rows[d]]) {
                    doomed[i] = changed = true;
                    break;
                }
        }
    }
    return doomed;
}

static int repoint_one(sl *S, avsr_sched_row *rows, avsr_sched_row *r,
                       const bool *doomed, avsr_error *err)
{
    if (!r->active || strcmp(r->cur.backend, "slurm") != 0 || !r->cur.slurm_id ||
        r->cur.state != AVSR_SCHED_ATT_QUEUED || r->def.n_deps == 0)
        return 0;
    bool blocked = false;
    for (int d = 0; d < r->def.n_deps; d++)
        if (r->dep_rows[d] >= 0 && doomed[r->dep_rows[d]])
            blocked = true;
    if (blocked) {
        avsr_sched_say(S->o->log, "%s: a dependency failed: Slurm job %s cancelled, the job stays pending",
            r->def.name, r->cur.slurm_id);
        avsr_error e2 = {0};
        if (scancel(r->cur.slurm_id, &e2) < 0)
            avsr_sched_say(S->o->log, "%s", e2.msg);
        if (avsr_sched_state_end(S->db, r, AVSR_SCHED_OUT_INTERRUPTED,
                                 "dependency failed", &S->o->limits, err) < 0)
            return -1;
        return 0;
    }
    sbuf dep = {0};
    bool ok;
    if (dependency_of(rows, r, &dep, &ok) < 0) {
        free(dep.s);
        return AVSR_NOMEM(err, 256);
    }
    if (!ok) {
        /* a dependency waits to be resubmitted: later */
        free(dep.s);
        return 0;
    }
    /* every id it should wait for must be in its dependency */
    bool stale = false;
    const char *have = r->cur.dependency ? r->cur.dependency : "";
    char *want = dep.s ? dep.s : "";
    char *save = NULL, *copy = strdup(want);
    if (!copy) {
        free(dep.s);
        return AVSR_NOMEM(err, strlen(want));
    }
    for (char *t = strtok_r(copy + (strncmp(copy, "afterok:", 8) == 0 ? 8 : 0), ":", &save);
         t; t = strtok_r(NULL, ":", &save)) {
        char needle[80];
        snprintf(needle, sizeof needle, ":%s", t);
        const char *h = have;
        bool found = false;
        size_t nl = strlen(needle);
        while ((h = strstr(h, needle)) != NULL) {
            if (h[nl] == '\0' || h[nl] == ':' || h[nl] == ',') {
                found = true;
                break;
            }
            h += nl;
        }
        stale = stale || !found;
    }
    free(copy);
    if (stale) {
        char jarg[96], darg[PATH_MAX];
        snprintf(jarg, sizeof jarg, "JobId=%s", r->cur.slurm_id);
        snprintf(darg, sizeof darg, "Dependency=%s", want);
        char *args[] = {"scontrol", "update", jarg, darg, NULL};
        if (slurm_cmd(args, NULL, err) < 0) {
            free(dep.s);
            return -1;
        }
        avsr_sched_say(S->o->log, "%s: Slurm job %s re-pointed: dependency %s", r->def.name,
            r->cur.slurm_id, *want ? want : "(none)");
        free(r->cur.dependency);
        r->cur.dependency = *want ? strdup(want) : NULL;
        if (avsr_sched_state_update(S->db, r, err) < 0) {
            free(dep.s);
            return -1;
        }
    }
    free(dep.s);
    return 0;
}

/* Dependents still queued whose dependency names a job that is no longer
 * the one to wait for (resubmitted) or can never succeed (failed for good,
 * or waiting on such a job). */
static int repoint(sl *S, avsr_sched_row *rows, int n, avsr_error *err)
{
    bool *doomed = doomed_jobs(rows, n);
    if (!doomed)
        return AVSR_NOMEM(err, (size_t)n);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = repoint_one(S, rows, &rows[i], doomed, err);
    free(doomed);
    return rc;
}

int avsr_sched_slurm_poll(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err)
{
    sl S;
    int rc = sl_init(&S, db, o, false, err);
    avsr_sched_row *rows = NULL;
    int n = 0;
    if (rc == 0)
        rc = avsr_sched_state_load(db, &rows, &n, err);
    if (rc == 0)
        rc = poll_once(&S, rows, n, err);
    avsr_sched_state_rows_free(rows, n);
    sl_free(&S);
    return rc;
}

int avsr_sched_slurm_run(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err)
{
    sl S;
    if (sl_init(&S, db, o, true, err) < 0 || mkdirs(&S, err) < 0) {
        sl_free(&S);
        return -1;
    }
    double poll = o->poll_s > 0 ? o->poll_s : 5.0;
    avsr_sched_say(o->log, "Slurm backend: template %s/%s, launcher %s, retries %d", S.tmpl_path, TEMPLATE,
        o->launcher ? o->launcher : "srun", o->limits.retries);
    int rc = 0;
    for (;;) {
        avsr_sched_row *rows = NULL;
        int n = 0, submitted = 0, active = 0;
        rc = avsr_sched_state_load(db, &rows, &n, err);
        if (rc == 0)
            rc = poll_once(&S, rows, n, err);
        if (rc == 0)
            rc = submit_ready(&S, rows, n, &submitted, err);
        if (rc == 0)
            rc = repoint(&S, rows, n, err);
        for (int i = 0; i < n; i++)
            active += rows[i].active;
        avsr_sched_state_rows_free(rows, n);
        if (rc < 0)
            break;
        if (o->detach) {
            avsr_sched_say(o->log, "detached: the jobs run under Slurm; `avsr-sched run` again watches them "
                   "(retries), `avsr-sched status` shows them");
            break;
        }
        if (active == 0)
            break;
        if (o->stop && *o->stop) {
            avsr_sched_say(o->log, "stopped watching: the Slurm jobs keep running; `avsr-sched run` again "
                   "continues");
            break;
        }
        for (double t = 0; t < poll && !(o->stop && *o->stop); t += 0.1)
            avsr_sched_sleep(0.1);
    }
    sl_free(&S);
    return rc;
}

int avsr_sched_slurm_cancel(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err)
{
    avsr_sched_row *rows = NULL;
    int n = 0;
    if (avsr_sched_state_load(db, &rows, &n, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        avsr_sched_row *r = &rows[i];
        if (!r->active || strcmp(r->cur.backend, "slurm") != 0)
            continue;
        if (r->cur.slurm_id) {
            avsr_error e2 = {0};
            if (scancel(r->cur.slurm_id, &e2) < 0)
                avsr_sched_say(o->log, "%s", e2.msg);
            else
                avsr_sched_say(o->log, "%s: scancel %s", r->def.name, r->cur.slurm_id);
        } else if (r->cur.slurm_name) {
            char narg[320];
            snprintf(narg, sizeof narg, "--name=%s", r->cur.slurm_name);
            char *args[] = {"scancel", narg, NULL};
            avsr_error e2 = {0};
            slurm_cmd(args, NULL, &e2);
        }
        rc = avsr_sched_state_end(db, r, AVSR_SCHED_OUT_CANCELLED, "cancelled", &o->limits, err);
    }
    avsr_sched_state_rows_free(rows, n);
    return rc;
}
