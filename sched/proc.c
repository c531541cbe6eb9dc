/* proc: process identity, program lookup, mpirun words, captured helper
 * commands and shell quoting (see proc.h). */
#define _GNU_SOURCE /* pipe2 */
#include "sched/proc.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int avsr_sched_proc_start_time(pid_t pid, long long *ticks)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name (field 2) may hold spaces and ')': skip to the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    char state = 0;
    long long v = 0;
    /* fields 3 (state) .. 22 (starttime) */
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3)
            state = tok[0];
        if (field == 22) {
            v = strtoll(tok, NULL, 10);
            break;
        }
    }
    if (field != 22 || state == 'Z' || state == 'X')
        return -1;
    *ticks = v;
    return 0;
}

void avsr_sched_proc_boot_id(char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return;
    if (fgets(buf, (int)size, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

bool avsr_sched_proc_same(pid_t pid, long long start, const char *boot)
{
    char now[64];
    avsr_sched_proc_boot_id(now, sizeof now);
    if (boot && *boot && *now && strcmp(boot, now) != 0)
        return false;
    long long t;
    return avsr_sched_proc_start_time(pid, &t) == 0 && t == start;
}

static bool is_exec(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* dir/prog into a malloc'd string if it is executable. */
static char *try_dir(const char *dir, size_t dlen, const char *prog)
{
    if (dlen == 0)
        return NULL;
    size_t n = dlen + strlen(prog) + 2;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%.*s/%s", (int)dlen, dir, prog);
    if (is_exec(p))
        return p;
    free(p);
    return NULL;
}

char *avsr_sched_proc_resolve(const char *prog, avsr_error *err)
{
    if (strchr(prog, '/')) {
        char *p = strdup(prog);
        if (!p)
            AVSR_NOMEM(err, strlen(prog));
        return p;
    }
    const char *bin = getenv("AVSR_BIN_DIR");
    char *r;
    if (bin && *bin && (r = try_dir(bin, strlen(bin), prog)))
        return r;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *exedir = NULL;
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            exedir = exe;
            if ((r = try_dir(exe, strlen(exe), prog)))
                return r;
            /* a libtool build tree runs the real program from .libs/ */
            char *up = strrchr(exe, '/');
            if (up && strcmp(up + 1, ".libs") == 0 && (r = try_dir(exe, (size_t)(up - exe), prog)))
                return r;
        }
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *s = path;;) {
        const char *e = strchr(s, ':');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if ((r = try_dir(len ? s : ".", len ? len : 1, prog)))
            return r;
        if (!e)
            break;
        s = e + 1;
    }
    avsr_error_set(err, AVSR_ERR_INVALID, "%s: not found in %s%s%s%sPATH", prog,
                   bin && *bin ? "AVSR_BIN_DIR (" : "", bin && *bin ? bin : "",
                   bin && *bin ? "), " : "", exedir ? "avsr-sched's directory, " : "");
    return NULL;
}

void avsr_sched_proc_free_argv(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

static int push(char ***v, int *n, const char *s)
{
    char **nv = realloc(*v, (size_t)(*n + 2) * sizeof *nv);
    if (!nv)
        return -1;
    *v = nv;
    nv[*n] = strdup(s);
    if (!nv[*n])
        return -1;
    (*n)++;
    nv[*n] = NULL;
    return 0;
}

char **avsr_sched_proc_mpirun(int *argc, avsr_error *err)
{
    const char *env = getenv("MPIRUN");
    char *words = strdup(env && *env ? env : "mpirun");
    char **v = calloc(1, sizeof *v);
    int n = 0;
    if (!words || !v) {
        free(words);
        free(v);
        AVSR_NOMEM(err, 64);
        return NULL;
    }
    char *save = NULL;
    bool bad = false, first = true, oversub = false, bind = false;
    for (char *w = strtok_r(words, " \t\n", &save); w && !bad; w = strtok_r(NULL, " \t\n", &save)) {
        if (first) {
            char *abs = avsr_sched_proc_resolve(w, err);
            if (!abs) {
                avsr_error_prefix(err, "the MPI launcher ($MPIRUN or mpirun): ");
                bad = true;
                break;
            }
            bad = push(&v, &n, abs) < 0;
            free(abs);
            first = false;
            continue;
        }
        oversub = oversub || strcmp(w, "--oversubscribe") == 0;
        bind = bind || strcmp(w, "--bind-to") == 0;
        bad = push(&v, &n, w) < 0;
    }
    free(words);
    if (!bad && n == 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "MPIRUN is blank: expected the mpirun command");
        bad = true;
    }
    /* several jobs share the machine: no binding (Open MPI would bind every
     * job's rank 0 to core 0), and more ranks than cores are allowed */
    if (!bad && !oversub)
        bad = push(&v, &n, "--oversubscribe") < 0;
    if (!bad && !bind)
        bad = push(&v, &n, "--bind-to") < 0 || push(&v, &n, "none") < 0;
    if (!bad && geteuid() == 0)
        bad = push(&v, &n, "--allow-run-as-root") < 0;
    if (bad) {
        if (err && !err->code)
            AVSR_NOMEM(err, 64);
        avsr_sched_proc_free_argv(v);
        return NULL;
    }
    if (argc)
        *argc = n;
    return v;
}

/* Read what is available on fd into a growing buffer; 1 at EOF. */
static int drain(int fd, char **buf, size_t *len, size_t *cap)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : 1;
    if (r == 0)
        return 1;
    if (*len + (size_t)r + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 8192);
        while (nc < *len + (size_t)r + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return 1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, tmp, (size_t)r);
    *len += (size_t)r;
    (*buf)[*len] = '\0';
    return 0;
}

int avsr_sched_proc_capture(char *const argv[], char **out, char **errout, int *status,
                            avsr_error *err)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: pipe: %s", argv[0], strerror(errno));
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: pipe: %s", argv[0], strerror(errno));
    }
    /* the exec failure is reported through this pipe (closed on exec) */
    int px[2];
    if (pipe2(px, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: pipe: %s", argv[0], strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        close(px[0]);
        close(px[1]);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: fork: %s", argv[0], strerror(e));
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(px[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    close(px[1]);
    char *ob = NULL, *eb = NULL;
    size_t ol = 0, oc = 0, el = 0, ec = 0;
    bool odone = false, edone = false;
    while (!odone || !edone) {
        struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
        if (odone)
            pf[0].fd = -1;
        if (edone)
            pf[1].fd = -1;
        int r = poll(pf, 2, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (!odone && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            odone = drain(po[0], &ob, &ol, &oc) != 0;
        if (!edone && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
            edone = drain(pe[0], &eb, &el, &ec) != 0;
    }
    close(po[0]);
    close(pe[0]);
    int exec_errno = 0;
    ssize_t got = read(px[0], &exec_errno, sizeof exec_errno);
    close(px[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof exec_errno) {
        free(ob);
        free(eb);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot run: %s", argv[0],
                              strerror(exec_errno));
    }
    if (!ob)
        ob = strdup("");
    if (!eb)
        eb = strdup("");
    if (out)
        *out = ob;
    else
        free(ob);
    if (errout)
        *errout = eb;
    else
        free(eb);
    if (status)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

char *avsr_sched_proc_shell_quote(const char *s)
{
    size_t n = 3;
    for (const char *c = s; *c; c++)
        n += *c == '\'' ? 4 : 1;
    char *q = malloc(n);
    if (!q)
        return NULL;
    char *o = q;
    *o++ = '\'';
    for (const char *c = s; *c; c++) {
        if (*c == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *c;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

void avsr_sched_say(FILE *log, const char *fmt, ...)
{
    if (!log)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("avsr-sched: ", log);
    vfprintf(log, fmt, ap);
    fputc('\n', log);
    fflush(log);
    va_end(ap);
}

void avsr_sched_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}
