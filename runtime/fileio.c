/* fileio: atomic writes and whole-file reads (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int avsr_afile_open(avsr_afile *af, const char *path, avsr_error *err)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) {
        free(af->path);
        free(af->tmp);
        return AVSR_NOMEM(err, n);
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int e = errno;
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create: %s", af->tmp, strerror(e));
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return -1;
    }
    return 0;
}

int avsr_afile_write(avsr_afile *af, const void *buf, size_t n, avsr_error *err)
{
    if (n && fwrite(buf, 1, n, af->f) != n)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: write failed: %s", af->tmp, strerror(errno));
    return 0;
}

int avsr_fsync_dir_of(const char *path, avsr_error *err)
{
    char *dir = strdup(path);
    if (!dir)
        return AVSR_NOMEM(err, strlen(path));
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: cannot fsync directory: %s", dir,
                            strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int avsr_afile_commit(avsr_afile *af, avsr_error *err)
{
    int rc = 0;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: flush failed: %s", af->tmp, strerror(errno));
    if (fclose(af->f) != 0 && rc == 0)
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: close failed: %s", af->tmp, strerror(errno));
    af->f = NULL;
    if (rc == 0 && rename(af->tmp, af->path) != 0)
        rc = avsr_error_set(err, AVSR_ERR_IO, "rename %s -> %s failed: %s", af->tmp, af->path,
                            strerror(errno));
    if (rc == 0)
        rc = avsr_fsync_dir_of(af->path, err);
    else
        unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    return rc;
}

void avsr_afile_abort(avsr_afile *af)
{
    if (af->f)
        fclose(af->f);
    if (af->tmp)
        unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

int avsr_file_read_all(const char *path, void **buf, size_t *len, avsr_error *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        fclose(f);
        return AVSR_NOMEM(err, n + 1);
    }
    if (n && fread(b, 1, n, f) != n) {
        int e = errno;
        fclose(f);
        free(b);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: read failed: %s", path, strerror(e));
    }
    fclose(f);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int avsr_mkdir_p(const char *path, avsr_error *err)
{
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf)
        return AVSR_NOMEM(err, n + 1);
    memcpy(buf, path, n + 1);
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            struct stat sb;
            if (mkdir(buf, 0777) < 0 && (errno != EEXIST || stat(buf, &sb) < 0 ||
                                         !S_ISDIR(sb.st_mode))) {
                int e = errno == EEXIST ? ENOTDIR : errno;
                avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", buf,
                               strerror(e));
                free(buf);
                return -1;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(buf);
    return 0;
}

int avsr_mkdir_parent(const char *path, avsr_error *err)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir)
        return AVSR_NOMEM(err, n + 1);
    memcpy(dir, path, n);
    dir[n] = 0;
    int rc = avsr_mkdir_p(dir, err);
    free(dir);
    return rc;
}
