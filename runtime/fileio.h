/* fileio: files that matter are written atomically.
 *
 * avsr_afile_open() opens "<path>.tmp.<pid>" for writing; avsr_afile_commit()
 * flushes, fsyncs, renames it over <path> and fsyncs the directory, so
 * readers see either the old file or the complete new one, never a part;
 * avsr_afile_abort() removes the temporary. */
#ifndef AVSR_FILEIO_H
#define AVSR_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_afile {
    FILE *f;
    char *path;
    char *tmp;
} avsr_afile;

int avsr_afile_open(avsr_afile *af, const char *path, avsr_error *err);
/* fwrite with error reporting */
int avsr_afile_write(avsr_afile *af, const void *buf, size_t n, avsr_error *err);
int avsr_afile_commit(avsr_afile *af, avsr_error *err);
void avsr_afile_abort(avsr_afile *af);

/* Read a whole file into a malloc'd buffer (*len bytes, plus a NUL after). */
int avsr_file_read_all(const char *path, void **buf, size_t *len, avsr_error *err);

/* mkdir -p: create path and its missing parents (0777 & umask). */
int avsr_mkdir_p(const char *path, avsr_error *err);
/* mkdir -p of the directory that will hold the file `path`. */
int avsr_mkdir_parent(const char *path, avsr_error *err);

/* fsync the directory containing path (after a rename). */
int avsr_fsync_dir_of(const char *path, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
