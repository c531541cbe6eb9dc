/* pack_h5: HDF5 check macro support, quiet error stack, lock-free access
 * property list and the /samples compound type (see pack_h5.h). */
#include "pack_h5.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pack_format.h"

const char *avsr_pack_kind_name(int kind)
{
    switch (kind) {
    case AVSR_PACK_KIND_AV: return "av";
    case AVSR_PACK_KIND_NOISE: return "noise";
    default: return NULL;
    }
}

void avsr_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct {
    char *buf;
    size_t cap;
} walk_ctx;

/* H5E_WALK_UPWARD visits the innermost (most specific) error first. */
static herr_t walk_first(unsigned n, const H5E_error2_t *e, void *data)
{
    walk_ctx *w = data;
    if (n == 0 && e && e->desc)
        snprintf(w->buf, w->cap, "%s", e->desc);
    return 0;
}

void avsr_h5_last_error(char *buf, size_t cap)
{
    if (!cap)
        return;
    buf[0] = '\0';
    walk_ctx w = {buf, cap};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, &w);
}

int64_t avsr_h5_check(int64_t v, avsr_error *err, const char *call, const char *file, int line)
{
    if (v >= 0)
        return v;
    char why[256];
    avsr_h5_last_error(why, sizeof why);
    avsr_error_set(err, AVSR_ERR_BACKEND, "HDF5 %s failed at %s:%d%s%s", call, file, line,
                   why[0] ? ": " : "", why);
    H5Eclear2(H5E_DEFAULT);
    return v;
}

void avsr_h5_close_any(hid_t id)
{
    if (id >= 0)
        H5Idec_ref(id);
}

hid_t avsr_h5_fapl_nolock(avsr_error *err)
{
    avsr_h5_quiet();
    hid_t fapl = AVSR_H5(err, H5Pcreate(H5P_FILE_ACCESS));
    if (fapl < 0)
        return -1;
#if H5_VERSION_GE(1, 10, 7)
    if (AVSR_H5(err, H5Pset_file_locking(fapl, 0, 1)) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#else
    /* Read at file open time by HDF5 >= 1.10.1; does not override a user's
     * setting. */
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 0);
#endif
    return fapl;
}

hid_t avsr_h5_row_type(int for_file, avsr_error *err)
{
    hid_t i64 = for_file ? H5T_STD_I64LE : H5T_NATIVE_INT64;
    hid_t t = AVSR_H5(err, H5Tcreate(H5T_COMPOUND, sizeof(avsr_pack_row)));
    hid_t sid = AVSR_H5(err, H5Tcopy(H5T_C_S1));
    hid_t sspk = AVSR_H5(err, H5Tcopy(H5T_C_S1));
    int bad = t < 0 || sid < 0 || sspk < 0;
    bad = bad || AVSR_H5(err, H5Tset_size(sid, AVSR_PACK_ID_LEN)) < 0;
    bad = bad || AVSR_H5(err, H5Tset_strpad(sid, H5T_STR_NULLPAD)) < 0;
    bad = bad || AVSR_H5(err, H5Tset_size(sspk, AVSR_PACK_SPEAKER_LEN)) < 0;
    bad = bad || AVSR_H5(err, H5Tset_strpad(sspk, H5T_STR_NULLPAD)) < 0;
#define MEMBER(name, type) \
    bad = bad || AVSR_H5(err, H5Tinsert(t, #name, offsetof(avsr_pack_row, name), type)) < 0
    MEMBER(id, sid);
    MEMBER(speaker, sspk);
    MEMBER(video_offset, i64);
    MEMBER(video_frames, i64);
    MEMBER(audio_offset, i64);
    MEMBER(audio_samples, i64);
    MEMBER(text_offset, i64);
    MEMBER(text_bytes, i64);
#undef MEMBER
    avsr_h5_close_any(sid);
    avsr_h5_close_any(sspk);
    if (bad) {
        avsr_h5_close_any(t);
        return -1;
    }
    return t;
}
