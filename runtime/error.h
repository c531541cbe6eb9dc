/* error: status codes and the error record every library call fills in.
 *
 * Library functions return 0 on success and -1 on failure, and describe the
 * failure in an avsr_error: the first message is kept (later ones do not
 * overwrite it), so the place where things went wrong is what the user sees.
 * Callers add context in front with avsr_error_prefix(). Only programs'
 * mains print errors and exit. */
#ifndef AVSR_ERROR_H
#define AVSR_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum avsr_status {
    AVSR_OK = 0,
    AVSR_ERR_INVALID = 1,   /* bad argument or input (shape, value, file content) */
    AVSR_ERR_IO = 2,        /* file system or device I/O */
    AVSR_ERR_NOMEM = 3,     /* allocation failed */
    AVSR_ERR_BACKEND = 4,   /* a foreign library call failed (oneDNN, CUDA, MPI, ...) */
    AVSR_ERR_UNSUPPORTED = 5/* valid request this build or backend cannot do */
};

#define AVSR_ERROR_MSG_MAX 1024

typedef struct avsr_error {
    int code;                     /* enum avsr_status; 0 = no error */
    char msg[AVSR_ERROR_MSG_MAX]; /* first failure, with context */
} avsr_error;

/* Record a failure (printf-style). Keeps an earlier message if one is set.
 * Returns -1 so that `return avsr_error_set(...)` reads naturally. A NULL
 * err is allowed and ignored. */
int avsr_error_set(avsr_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int avsr_error_setv(avsr_error *err, int code, const char *fmt, va_list ap);

/* Put context in front of the recorded message ("loading x.safetensors: ..."). */
void avsr_error_prefix(avsr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void avsr_error_clear(avsr_error *err);

/* Human-readable name of a status code. */
const char *avsr_status_name(int code);

/* A failed allocation: records "out of memory (N bytes) at file:line". */
#define AVSR_NOMEM(err, bytes) \
    avsr_error_set((err), AVSR_ERR_NOMEM, "out of memory (%zu bytes) at %s:%d", \
                   (size_t)(bytes), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif
