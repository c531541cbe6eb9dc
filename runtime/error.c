/* error: the error record (see error.h). */
#include "error.h"

#include <stdio.h>
#include <string.h>

int avsr_error_setv(avsr_error *err, int code, const char *fmt, va_list ap)
{
    if (!err)
        return -1;
    if (err->code != 0)
        return -1; /* keep the first failure */
    err->code = code ? code : AVSR_ERR_INVALID;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int avsr_error_set(avsr_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    avsr_error_setv(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

void avsr_error_prefix(avsr_error *err, const char *fmt, ...)
{
    char head[AVSR_ERROR_MSG_MAX], tmp[2 * AVSR_ERROR_MSG_MAX];
    va_list ap;
    if (!err || err->code == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    snprintf(tmp, sizeof tmp, "%s%s", head, err->msg);
    memcpy(err->msg, tmp, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = '\0';
}

void avsr_error_clear(avsr_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *avsr_status_name(int code)
{
    switch (code) {
    case AVSR_OK: return "ok";
    case AVSR_ERR_INVALID: return "invalid input";
    case AVSR_ERR_IO: return "I/O error";
    case AVSR_ERR_NOMEM: return "out of memory";
    case AVSR_ERR_BACKEND: return "backend failure";
    case AVSR_ERR_UNSUPPORTED: return "unsupported";
    default: return "unknown error";
    }
}
