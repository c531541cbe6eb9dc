/* pack_write: spool clips, then write the HDF5 file atomically (see
 * pack_write.h and docs/formats/pack.md). */
#include "pack_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "pack_h5.h"

/* one spooled stream: an unlinked temporary file and its length */
typedef struct spool {
    int fd;
    int64_t n;       /* elements along the first axis (frames, samples, bytes) */
    size_t esize;    /* bytes per element */
} spool;

struct avsr_pack_writer {
    char *path, *tmp;
    avsr_pack_write_opts o;
    char sha[65], created_by[128];
    spool video, audio, text;
    avsr_pack_row *rows;
    int64_t n, cap;
};

static int spool_open(spool *s, const char *path, const char *what, size_t esize,
                      avsr_error *err)
{
    size_t n = strlen(path) + 32;
    char *t = malloc(n);
    if (!t)
        return AVSR_NOMEM(err, n);
    snprintf(t, n, "%s.%s.XXXXXX", path, what);
    s->fd = mkstemp(t);
    if (s->fd < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create a spool file beside it: %s", path,
                       strerror(errno));
        free(t);
        return -1;
    }
    unlink(t); /* gone on any exit, also kill -9 */
    free(t);
    s->n = 0;
    s->esize = esize;
    return 0;
}

static int spool_put(spool *s, const void *p, int64_t count, avsr_error *err)
{
    const char *b = p;
    size_t left = (size_t)count * s->esize;
    off_t at = (off_t)(s->n * (int64_t)s->esize);
    while (left) {
        ssize_t k = pwrite(s->fd, b, left, at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return avsr_error_set(err, AVSR_ERR_IO, "spool write failed: %s",
                                  k < 0 ? strerror(errno) : "no progress");
        b += k;
        at += k;
        left -= (size_t)k;
    }
    s->n += count;
    return 0;
}

static int spool_get(const spool *s, void *p, int64_t first, int64_t count, avsr_error *err)
{
    char *b = p;
    size_t left = (size_t)count * s->esize;
    off_t at = (off_t)(first * (int64_t)s->esize);
    while (left) {
        ssize_t k = pread(s->fd, b, left, at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return avsr_error_set(err, AVSR_ERR_IO, "spool read failed: %s",
                                  k < 0 ? strerror(errno) : "short file");
        b += k;
        at += k;
        left -= (size_t)k;
    }
    return 0;
}

static void spool_close(spool *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static void writer_free(avsr_pack_writer *w)
{
    spool_close(&w->video);
    spool_close(&w->audio);
    spool_close(&w->text);
    free(w->rows);
    free(w->path);
    free(w->tmp);
    free(w);
}

avsr_pack_writer *avsr_pack_writer_create(const char *path, const avsr_pack_write_opts *o,
                                          avsr_error *err)
{
    if (!avsr_pack_kind_name(o->kind)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: unknown pack kind %d", path, o->kind);
        return NULL;
    }
    if (o->kind == AVSR_PACK_KIND_AV &&
        (o->roi_h < 1 || o->roi_w < 1 || o->roi_h > AVSR_PACK_MAX_ROI ||
         o->roi_w > AVSR_PACK_MAX_ROI)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: ROI %dx%d out of range 1..%d", path,
                       o->roi_h, o->roi_w, AVSR_PACK_MAX_ROI);
        return NULL;
    }
    avsr_pack_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + 32;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
        AVSR_NOMEM(err, n);
        if (w)
            free(w->path);
        free(w);
        return NULL;
    }
    w->video.fd = w->audio.fd = w->text.fd = -1;
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->o = *o;
    snprintf(w->sha, sizeof w->sha, "%s", o->manifest_sha256 ? o->manifest_sha256 : "");
    snprintf(w->created_by, sizeof w->created_by, "%s", o->created_by ? o->created_by : "avsr");
    w->o.manifest_sha256 = w->sha;
    w->o.created_by = w->created_by;
    if (o->kind == AVSR_PACK_KIND_NOISE)
        w->o.roi_h = w->o.roi_w = 0;
    if ((o->kind == AVSR_PACK_KIND_AV && spool_open(&w->video, path, "video", (size_t)o->roi_h * o->roi_w, err) < 0) ||
        spool_open(&w->audio, path, "audio", sizeof(int16_t), err) < 0 ||
        spool_open(&w->text, path, "text", 1, err) < 0) {
        writer_free(w);
        return NULL;
    }
    return w;
}

int64_t avsr_pack_writer_count(const avsr_pack_writer *w) { return w->n; }

const char *avsr_pack_writer_tmp_path(const avsr_pack_writer *w) { return w->tmp; }

int avsr_pack_writer_add(avsr_pack_writer *w, const char *id, const char *speaker,
                         const uint8_t *video, int64_t frames, const int16_t *audio,
                         int64_t samples, const char *text, int64_t text_bytes,
                         avsr_error *err)
{
    size_t nid = strlen(id), nsp = speaker ? strlen(speaker) : 0;
    if (nid == 0 || nid >= AVSR_PACK_ID_LEN)
        return avsr_error_set(err, AVSR_ERR_INVALID, "clip id '%s': %zu bytes, expected 1..%d",
                              id, nid, AVSR_PACK_ID_LEN - 1);
    if (nsp >= AVSR_PACK_SPEAKER_LEN)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: speaker is %zu bytes, expected <= %d",
                              id, nsp, AVSR_PACK_SPEAKER_LEN - 1);
    if (w->o.kind == AVSR_PACK_KIND_AV) {
        if (!video || frames < 1 || samples != frames * AVSR_PACK_SAMPLES_PER_FRAME)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: %lld frames and %lld samples (need >= 1 frame and "
                                  "640 samples per frame)", id, (long long)frames,
                                  (long long)samples);
    } else if (video || frames || samples < 1) {
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: a noise clip has no video and >= 1 sample", id);
    }
    if (text_bytes < 0 || (text_bytes > 0 && !text))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: bad text length", id);
    if (w->n == w->cap) {
        int64_t nc = w->cap ? 2 * w->cap : 1024;
        avsr_pack_row *p = realloc(w->rows, (size_t)nc * sizeof *p);
        if (!p)
            return AVSR_NOMEM(err, (size_t)nc * sizeof *p);
        w->rows = p;
        w->cap = nc;
    }
    avsr_pack_row r;
    memset(&r, 0, sizeof r);
    memcpy(r.id, id, nid);
    if (nsp)
        memcpy(r.speaker, speaker, nsp);
    r.video_offset = w->o.kind == AVSR_PACK_KIND_AV ? w->video.n : 0;
    r.video_frames = frames;
    r.audio_offset = w->audio.n;
    r.audio_samples = samples;
    r.text_offset = w->text.n;
    r.text_bytes = text_bytes;
    if (frames && spool_put(&w->video, video, frames, err) < 0)
        return -1;
    if (spool_put(&w->audio, audio, samples, err) < 0 ||
        (text_bytes && spool_put(&w->text, text, text_bytes, err) < 0))
        return -1;
    w->rows[w->n++] = r;
    return 0;
}

/* ---- commit ----------------------------------------------------------- */

static int attr_str(hid_t loc, const char *name, const char *v, avsr_error *err)
{
    hid_t t = AVSR_H5(err, H5Tcopy(H5T_C_S1));
    if (t < 0)
        return -1;
    hid_t sp = -1, a = -1;
    int rc = -1;
    if (AVSR_H5(err, H5Tset_size(t, strlen(v) + 1)) < 0 ||
        AVSR_H5(err, H5Tset_strpad(t, H5T_STR_NULLTERM)) < 0 ||
        AVSR_H5(err, H5Tset_cset(t, H5T_CSET_UTF8)) < 0)
        goto done;
    if ((sp = AVSR_H5(err, H5Screate(H5S_SCALAR))) < 0 ||
        (a = AVSR_H5(err, H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT))) < 0 ||
        AVSR_H5(err, H5Awrite(a, t, v)) < 0)
        goto done;
    rc = 0;
done:
    avsr_h5_close_any(a);
    avsr_h5_close_any(sp);
    avsr_h5_close_any(t);
    return rc;
}

static int attr_num(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v,
                    avsr_error *err)
{
    hid_t sp = AVSR_H5(err, H5Screate(H5S_SCALAR)), a = -1;
    int rc = -1;
    if (sp >= 0 && (a = AVSR_H5(err, H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT,
                                                H5P_DEFAULT))) >= 0 &&
        AVSR_H5(err, H5Awrite(a, mtype, v)) >= 0)
        rc = 0;
    avsr_h5_close_any(a);
    avsr_h5_close_any(sp);
    return rc;
}

static int attr_i32(hid_t loc, const char *name, int32_t v, avsr_error *err)
{
    return attr_num(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v, err);
}

static int attr_f64(hid_t loc, const char *name, double v, avsr_error *err)
{
    return attr_num(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, err);
}

/* Create dataset `name` of rank 1 or 3 ([n] or [n, h, w]) and copy the
 * spool into it in blocks of whole chunks. */
static int write_stream(hid_t file, const char *name, hid_t ftype, hid_t mtype, const spool *s,
                        int rank, int h, int w, int compress, int64_t chunk_elems,
                        avsr_error *err)
{
    hsize_t dims[3] = {(hsize_t)s->n, (hsize_t)h, (hsize_t)w};
    hid_t sp = AVSR_H5(err, H5Screate_simple(rank, dims, NULL));
    hid_t dcpl = AVSR_H5(err, H5Pcreate(H5P_DATASET_CREATE));
    hid_t ds = -1, fsp = -1, msp = -1;
    void *buf = NULL;
    int rc = -1;
    if (sp < 0 || dcpl < 0)
        goto done;
    if (compress && s->n > 0) {
        hsize_t cd[3] = {(hsize_t)(chunk_elems < s->n ? chunk_elems : s->n), (hsize_t)h,
                         (hsize_t)w};
        if (AVSR_H5(err, H5Pset_chunk(dcpl, rank, cd)) < 0 ||
            AVSR_H5(err, H5Pset_deflate(dcpl, 1)) < 0)
            goto done;
    } else {
        if (AVSR_H5(err, H5Pset_layout(dcpl, H5D_CONTIGUOUS)) < 0 ||
            AVSR_H5(err, H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY)) < 0)
            goto done;
    }
    if (AVSR_H5(err, H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)) < 0 ||
        AVSR_H5(err, H5Pset_obj_track_times(dcpl, 0)) < 0) /* reproducible bytes */
        goto done;
    ds = AVSR_H5(err, H5Dcreate2(file, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    if (ds < 0)
        goto done;
    size_t row = s->esize; /* bytes per first-axis element */
    /* blocks of about 8 MB, a whole number of chunks */
    int64_t blk = chunk_elems * (int64_t)((8u << 20) / ((size_t)chunk_elems * row) + 1);
    if (blk > s->n)
        blk = s->n;
    if (s->n > 0 && !(buf = malloc((size_t)blk * row))) {
        AVSR_NOMEM(err, (size_t)blk * row);
        goto done;
    }
    for (int64_t at = 0; at < s->n; at += blk) {
        int64_t k = s->n - at < blk ? s->n - at : blk;
        if (spool_get(s, buf, at, k, err) < 0)
            goto done;
        hsize_t start[3] = {(hsize_t)at, 0, 0}, count[3] = {(hsize_t)k, (hsize_t)h, (hsize_t)w};
        avsr_h5_close_any(fsp);
        avsr_h5_close_any(msp);
        fsp = AVSR_H5(err, H5Dget_space(ds));
        msp = AVSR_H5(err, H5Screate_simple(rank, count, NULL));
        if (fsp < 0 || msp < 0 ||
            AVSR_H5(err, H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL)) < 0 ||
            AVSR_H5(err, H5Dwrite(ds, mtype, msp, fsp, H5P_DEFAULT, buf)) < 0)
            goto done;
    }
    rc = 0;
done:
    free(buf);
    avsr_h5_close_any(fsp);
    avsr_h5_close_any(msp);
    avsr_h5_close_any(ds);
    avsr_h5_close_any(dcpl);
    avsr_h5_close_any(sp);
    if (rc < 0)
        avsr_error_prefix(err, "writing /%s: ", name);
    return rc;
}

static int write_rows(hid_t file, const avsr_pack_writer *w, avsr_error *err)
{
    hsize_t dims[1] = {(hsize_t)w->n};
    hid_t ft = avsr_h5_row_type(1, err), mt = avsr_h5_row_type(0, err);
    hid_t sp = AVSR_H5(err, H5Screate_simple(1, dims, NULL)), ds = -1;
    hid_t dcpl = AVSR_H5(err, H5Pcreate(H5P_DATASET_CREATE));
    int rc = -1;
    if (ft >= 0 && mt >= 0 && sp >= 0 && dcpl >= 0 &&
        AVSR_H5(err, H5Pset_obj_track_times(dcpl, 0)) >= 0 &&
        (ds = AVSR_H5(err, H5Dcreate2(file, "samples", ft, sp, H5P_DEFAULT, dcpl,
                                      H5P_DEFAULT))) >= 0 &&
        (w->n == 0 || AVSR_H5(err, H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->rows)) >= 0))
        rc = 0;
    avsr_h5_close_any(ds);
    avsr_h5_close_any(dcpl);
    avsr_h5_close_any(sp);
    avsr_h5_close_any(ft);
    avsr_h5_close_any(mt);
    return rc;
}

int avsr_pack_writer_commit(avsr_pack_writer *w, avsr_error *err)
{
    avsr_h5_quiet();
    const avsr_pack_write_opts *o = &w->o;
    hid_t fapl = AVSR_H5(err, H5Pcreate(H5P_FILE_ACCESS)), fcpl = -1, file = -1;
    int rc = -1, created = 0;
    /* superblock v2 and v2 object headers carry checksums (HDF5 >= 1.8) */
    if (fapl < 0 || AVSR_H5(err, H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18)) < 0)
        goto done;
    fcpl = AVSR_H5(err, H5Pcreate(H5P_FILE_CREATE));
    if (fcpl < 0 || AVSR_H5(err, H5Pset_obj_track_times(fcpl, 0)) < 0)
        goto done;
    file = AVSR_H5(err, H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl));
    if (file < 0)
        goto done;
    created = 1;
    int64_t chunk = AVSR_PACK_CHUNK_FRAMES;
    if (attr_str(file, "format", AVSR_PACK_FORMAT, err) < 0 ||
        attr_i32(file, "version", AVSR_PACK_VERSION, err) < 0 ||
        attr_str(file, "kind", avsr_pack_kind_name(o->kind), err) < 0 ||
        attr_i32(file, "sample_rate", AVSR_PACK_SAMPLE_RATE, err) < 0 ||
        attr_i32(file, "fps", AVSR_PACK_FPS, err) < 0 ||
        attr_i32(file, "roi_height", o->roi_h, err) < 0 ||
        attr_i32(file, "roi_width", o->roi_w, err) < 0 ||
        attr_f64(file, "video_mean", AVSR_PACK_VIDEO_MEAN, err) < 0 ||
        attr_f64(file, "video_std", AVSR_PACK_VIDEO_STD, err) < 0 ||
        attr_str(file, "manifest_sha256", o->manifest_sha256, err) < 0 ||
        attr_str(file, "created_by", o->created_by, err) < 0)
        goto done;
    if (o->kind == AVSR_PACK_KIND_AV &&
        write_stream(file, "video", H5T_STD_U8LE, H5T_NATIVE_UINT8, &w->video, 3, o->roi_h,
                     o->roi_w, o->compress, chunk, err) < 0)
        goto done;
    if (write_stream(file, "audio", H5T_STD_I16LE, H5T_NATIVE_INT16, &w->audio, 1, 1, 1,
                     o->compress, chunk * AVSR_PACK_SAMPLES_PER_FRAME, err) < 0 ||
        write_stream(file, "text", H5T_STD_U8LE, H5T_NATIVE_UINT8, &w->text, 1, 1, 1,
                     o->compress, 1 << 16, err) < 0 ||
        write_rows(file, w, err) < 0)
        goto done;
    herr_t cr = AVSR_H5(err, H5Fclose(file));
    file = -1;
    if (cr < 0)
        goto done;
    int fd = open(w->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: fsync failed: %s", w->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto done;
    }
    close(fd);
    if (rename(w->tmp, w->path) != 0) {
        avsr_error_set(err, AVSR_ERR_IO, "rename %s -> %s failed: %s", w->tmp, w->path,
                       strerror(errno));
        goto done;
    }
    created = 0;
    rc = avsr_fsync_dir_of(w->path, err);
done:
    if (file >= 0)
        H5Fclose(file);
    avsr_h5_close_any(fapl);
    avsr_h5_close_any(fcpl);
    if (created)
        unlink(w->tmp);
    if (rc < 0)
        avsr_error_prefix(err, "%s: ", w->path);
    writer_free(w);
    return rc;
}

void avsr_pack_writer_abort(avsr_pack_writer *w)
{
    if (!w)
        return;
    unlink(w->tmp); /* in case a commit was interrupted half-way */
    writer_free(w);
}
