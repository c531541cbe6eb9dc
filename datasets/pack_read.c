/* pack_read: validated, lock-free, read-only access to packed files (see
 * pack_read.h and docs/formats/pack.md). */
#include "pack_read.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pack_h5.h"

/* every HDF5 call of the reader runs under this lock */
static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct shard {
    char *path;
    hid_t file, video, audio, text;
    avsr_pack_row *rows;
    int64_t n, first;              /* rows, global index of row 0 */
    int64_t n_video, n_audio, n_text;
    char created_by[256], sha[80];
    double mean, std;
    int compressed;
    int kind, roi_h, roi_w;
} shard;

struct avsr_pack {
    shard *s;
    int ns;
    int64_t n;
    int kind, roi_h, roi_w;
};

static void shard_close(shard *s)
{
    avsr_h5_close_any(s->video);
    avsr_h5_close_any(s->audio);
    avsr_h5_close_any(s->text);
    if (s->file >= 0)
        H5Fclose(s->file);
    free(s->rows);
    free(s->path);
}

void avsr_pack_close(avsr_pack *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&h5_lock);
    for (int i = 0; i < p->ns; i++)
        shard_close(&p->s[i]);
    pthread_mutex_unlock(&h5_lock);
    free(p->s);
    free(p);
}

/* ---- attributes ----------------------------------------------------- */

static int attr_open(hid_t f, const char *name, int required, hid_t *a, avsr_error *err)
{
    *a = -1;
    htri_t ex = H5Aexists(f, name);
    if (ex < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cannot query root attribute '%s'", name);
    if (!ex)
        return required ? avsr_error_set(err, AVSR_ERR_INVALID, "no root attribute '%s'", name)
                        : 0;
    *a = H5Aopen(f, name, H5P_DEFAULT);
    if (*a < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "cannot open root attribute '%s'", name);
    hid_t sp = H5Aget_space(*a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    avsr_h5_close_any(sp);
    if (np != 1) {
        H5Aclose(*a);
        *a = -1;
        return avsr_error_set(err, AVSR_ERR_INVALID, "root attribute '%s' is not a scalar", name);
    }
    return 0;
}

/* fixed- or variable-length string attribute into buf */
static int attr_str(hid_t f, const char *name, int required, char *buf, size_t cap,
                    avsr_error *err)
{
    hid_t a, t = -1, mt = -1;
    buf[0] = '\0';
    if (attr_open(f, name, required, &a, err) < 0)
        return -1;
    if (a < 0)
        return 0; /* absent and optional */
    int rc = -1;
    t = H5Aget_type(a);
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        avsr_error_set(err, AVSR_ERR_INVALID, "root attribute '%s' is not a string", name);
        goto done;
    }
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &v) < 0 || !v) {
            avsr_error_set(err, AVSR_ERR_INVALID, "cannot read root attribute '%s'", name);
            goto done;
        }
        snprintf(buf, cap, "%s", v);
        H5free_memory(v);
    } else {
        size_t sz = H5Tget_size(t);
        char *v = calloc(1, sz + 1);
        if (!v) {
            AVSR_NOMEM(err, sz + 1);
            goto done;
        }
        if (H5Aread(a, t, v) < 0) {
            free(v);
            avsr_error_set(err, AVSR_ERR_INVALID, "cannot read root attribute '%s'", name);
            goto done;
        }
        snprintf(buf, cap, "%s", v);
        free(v);
    }
    rc = 0;
done:
    avsr_h5_close_any(mt);
    avsr_h5_close_any(t);
    H5Aclose(a);
    return rc;
}

static int attr_num(hid_t f, const char *name, int want_float, double *out, avsr_error *err)
{
    hid_t a;
    if (attr_open(f, name, 1, &a, err) < 0)
        return -1;
    hid_t t = H5Aget_type(a);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int rc = 0;
    if (c != H5T_INTEGER && !(want_float && c == H5T_FLOAT)) {
        rc = avsr_error_set(err, AVSR_ERR_INVALID, "root attribute '%s' is not %s", name,
                            want_float ? "a number" : "an integer");
    } else if (H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0) {
        rc = avsr_error_set(err, AVSR_ERR_INVALID, "cannot read root attribute '%s'", name);
    }
    avsr_h5_close_any(t);
    H5Aclose(a);
    return rc;
}

/* ---- datasets ----------------------------------------------------------- */

/* Open /name and check its element type (integer of esize bytes and the
 * given signedness) and rank; dims out. */
static hid_t open_data(hid_t f, const char *name, size_t esize, int is_signed, int rank,
                       hsize_t *dims, avsr_error *err)
{
    htri_t ex = H5Lexists(f, name, H5P_DEFAULT);
    if (ex <= 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "no dataset /%s", name);
        return -1;
    }
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        char why[200];
        avsr_h5_last_error(why, sizeof why);
        avsr_error_set(err, AVSR_ERR_INVALID, "cannot open dataset /%s (%s)", name, why);
        return -1;
    }
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == esize &&
             (H5Tget_sign(t) == H5T_SGN_2) == !!is_signed;
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (ok && r == rank)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    avsr_h5_close_any(t);
    avsr_h5_close_any(sp);
    if (!ok || r != rank) {
        H5Dclose(d);
        avsr_error_set(err, AVSR_ERR_INVALID, "dataset /%s is not %s%zu of rank %d", name,
                       is_signed ? "int" : "uint", 8 * esize, rank);
        return -1;
    }
    return d;
}

static const char *row_ints[] = {"video_offset", "video_frames", "audio_offset",
                                 "audio_samples", "text_offset", "text_bytes"};

static int read_rows(shard *s, avsr_error *err)
{
    hid_t d = -1, t = -1, sp = -1, mt = -1;
    int rc = -1;
    if (H5Lexists(s->file, "samples", H5P_DEFAULT) <= 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "no dataset /samples");
        return -1;
    }
    d = H5Dopen2(s->file, "samples", H5P_DEFAULT);
    t = d >= 0 ? H5Dget_type(d) : -1;
    sp = d >= 0 ? H5Dget_space(d) : -1;
    if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_COMPOUND ||
        H5Sget_simple_extent_ndims(sp) != 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "/samples is not a one-dimensional compound table");
        goto done;
    }
    static const char *strs[] = {"id", "speaker"};
    for (int k = 0; k < 8; k++) {
        const char *m = k < 2 ? strs[k] : row_ints[k - 2];
        int idx = H5Tget_member_index(t, m);
        H5T_class_t want = k < 2 ? H5T_STRING : H5T_INTEGER;
        if (idx < 0 || H5Tget_member_class(t, (unsigned)idx) != want) {
            avsr_error_set(err, AVSR_ERR_INVALID, "/samples has no %s member '%s'",
                           k < 2 ? "string" : "integer", m);
            goto done;
        }
    }
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    if (n > (hsize_t)(SIZE_MAX / sizeof(avsr_pack_row) / 2)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "/samples has %llu rows", (unsigned long long)n);
        goto done;
    }
    s->n = (int64_t)n;
    s->rows = calloc(n ? n : 1, sizeof *s->rows);
    if (!s->rows) {
        AVSR_NOMEM(err, n * sizeof *s->rows);
        goto done;
    }
    if ((mt = avsr_h5_row_type(0, err)) < 0)
        goto done;
    if (n && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->rows) < 0) {
        char why[200];
        avsr_h5_last_error(why, sizeof why);
        avsr_error_set(err, AVSR_ERR_INVALID, "cannot read /samples (%s)", why);
        goto done;
    }
    rc = 0;
done:
    avsr_h5_close_any(mt);
    avsr_h5_close_any(sp);
    avsr_h5_close_any(t);
    avsr_h5_close_any(d);
    return rc;
}

/* off + len inside [0, extent], overflow-safe */
static int span_ok(int64_t off, int64_t len, int64_t extent)
{
    return off >= 0 && len >= 0 && off <= extent && len <= extent - off;
}

static int check_rows(shard *s, int kind, avsr_error *err)
{
    for (int64_t i = 0; i < s->n; i++) {
        avsr_pack_row *r = &s->rows[i];
        const char *what = NULL;
        char buf[200];
        if (memchr(r->id, '\0', sizeof r->id) == NULL || r->id[0] == '\0')
            what = r->id[0] ? "id is not NUL-terminated" : "empty id";
        else if (memchr(r->speaker, '\0', sizeof r->speaker) == NULL)
            what = "speaker is not NUL-terminated";
        else if (kind == AVSR_PACK_KIND_AV && !span_ok(r->video_offset, r->video_frames, s->n_video)) {
            snprintf(buf, sizeof buf,
                     "video_offset %" PRId64 " + video_frames %" PRId64
                     " is outside /video's %" PRId64 " frames",
                     r->video_offset, r->video_frames, s->n_video);
            what = buf;
        } else if (kind == AVSR_PACK_KIND_AV && r->video_frames < 1)
            what = "no video frames";
        else if (kind == AVSR_PACK_KIND_NOISE && (r->video_offset || r->video_frames))
            what = "video fields are not 0 in a noise file";
        else if (!span_ok(r->audio_offset, r->audio_samples, s->n_audio)) {
            snprintf(buf, sizeof buf,
                     "audio_offset %" PRId64 " + audio_samples %" PRId64
                     " is outside /audio's %" PRId64 " samples",
                     r->audio_offset, r->audio_samples, s->n_audio);
            what = buf;
        } else if (kind == AVSR_PACK_KIND_AV &&
                   r->audio_samples != r->video_frames * AVSR_PACK_SAMPLES_PER_FRAME) {
            snprintf(buf, sizeof buf,
                     "audio_samples %" PRId64 " != video_frames %" PRId64 " * 640",
                     r->audio_samples, r->video_frames);
            what = buf;
        } else if (!span_ok(r->text_offset, r->text_bytes, s->n_text)) {
            snprintf(buf, sizeof buf,
                     "text_offset %" PRId64 " + text_bytes %" PRId64
                     " is outside /text's %" PRId64 " bytes",
                     r->text_offset, r->text_bytes, s->n_text);
            what = buf;
        }
        if (what) {
            if (memchr(r->id, '\0', sizeof r->id))
                return avsr_error_set(err, AVSR_ERR_INVALID, "/samples row %" PRId64 " (%s): %s",
                                      i, r->id, what);
            return avsr_error_set(err, AVSR_ERR_INVALID, "/samples row %" PRId64 ": %s", i, what);
        }
    }
    return 0;
}

static int open_shard(shard *s, const char *path, avsr_error *err)
{
    s->file = s->video = s->audio = s->text = -1;
    s->path = strdup(path);
    if (!s->path)
        return AVSR_NOMEM(err, strlen(path));
    struct stat st;
    if (stat(path, &st) != 0)
        return avsr_error_set(err, AVSR_ERR_IO, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return avsr_error_set(err, AVSR_ERR_IO, "not a regular file");
    hid_t fapl = avsr_h5_fapl_nolock(err);
    if (fapl < 0)
        return -1;
    s->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    char why[200];
    avsr_h5_last_error(why, sizeof why); /* before the next call clears the stack */
    H5Pclose(fapl);
    if (s->file < 0) {
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "not a readable HDF5 file (%lld bytes; %s)", (long long)st.st_size,
                              why[0] ? why : "unknown HDF5 error");
    }
    char fmt[64], kind[32];
    if (attr_str(s->file, "format", 0, fmt, sizeof fmt, err) < 0)
        return -1;
    if (strcmp(fmt, AVSR_PACK_FORMAT) != 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              fmt[0] ? "not an avsr-pack file (format attribute is '%s')"
                                     : "not an avsr-pack file (no format attribute)%s", fmt);
    double v;
    if (attr_num(s->file, "version", 0, &v, err) < 0)
        return -1;
    if (v != AVSR_PACK_VERSION)
        return avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                              "format version %g; this reader knows version %d", v,
                              AVSR_PACK_VERSION);
    if (attr_str(s->file, "kind", 1, kind, sizeof kind, err) < 0)
        return -1;
    int k = !strcmp(kind, "av") ? AVSR_PACK_KIND_AV : !strcmp(kind, "noise") ? AVSR_PACK_KIND_NOISE : -1;
    if (k < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "unknown kind '%s' (expected av or noise)",
                              kind);
    double sr, fps, rh, rw;
    if (attr_num(s->file, "sample_rate", 0, &sr, err) < 0 ||
        attr_num(s->file, "fps", 0, &fps, err) < 0 ||
        attr_num(s->file, "roi_height", 0, &rh, err) < 0 ||
        attr_num(s->file, "roi_width", 0, &rw, err) < 0 ||
        attr_num(s->file, "video_mean", 1, &s->mean, err) < 0 ||
        attr_num(s->file, "video_std", 1, &s->std, err) < 0)
        return -1;
    if (sr != AVSR_PACK_SAMPLE_RATE || fps != AVSR_PACK_FPS)
        return avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                              "sample_rate %g and fps %g; expected %d and %d", sr, fps,
                              AVSR_PACK_SAMPLE_RATE, AVSR_PACK_FPS);
    if (k == AVSR_PACK_KIND_AV &&
        !(rh >= 1 && rh <= AVSR_PACK_MAX_ROI && rw >= 1 && rw <= AVSR_PACK_MAX_ROI))
        return avsr_error_set(err, AVSR_ERR_INVALID, "ROI %gx%g out of range 1..%d", rh, rw,
                              AVSR_PACK_MAX_ROI);
    if (attr_str(s->file, "created_by", 0, s->created_by, sizeof s->created_by, err) < 0 ||
        attr_str(s->file, "manifest_sha256", 0, s->sha, sizeof s->sha, err) < 0)
        return -1;
    hsize_t dims[3];
    if (k == AVSR_PACK_KIND_AV) {
        if ((s->video = open_data(s->file, "video", 1, 0, 3, dims, err)) < 0)
            return -1;
        if (dims[1] != (hsize_t)rh || dims[2] != (hsize_t)rw)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "/video frames are %llux%llu, the ROI attributes say %gx%g",
                                  (unsigned long long)dims[1], (unsigned long long)dims[2], rh,
                                  rw);
        s->n_video = (int64_t)dims[0];
    }
    if ((s->audio = open_data(s->file, "audio", 2, 1, 1, dims, err)) < 0)
        return -1;
    s->n_audio = (int64_t)dims[0];
    hid_t dcpl = H5Dget_create_plist(s->audio);
    if (dcpl >= 0) {
        s->compressed = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) > 0;
        H5Pclose(dcpl);
    }
    if ((s->text = open_data(s->file, "text", 1, 0, 1, dims, err)) < 0)
        return -1;
    s->n_text = (int64_t)dims[0];
    if (read_rows(s, err) < 0 || check_rows(s, k, err) < 0)
        return -1;
    s->kind = k;
    s->roi_h = k == AVSR_PACK_KIND_AV ? (int)rh : 0;
    s->roi_w = k == AVSR_PACK_KIND_AV ? (int)rw : 0;
    return 0;
}

avsr_pack *avsr_pack_open(const char *const *paths, int n, avsr_error *err)
{
    if (n < 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "avsr_pack_open: no files");
        return NULL;
    }
    avsr_pack *p = calloc(1, sizeof *p);
    if (!p || !(p->s = calloc((size_t)n, sizeof *p->s))) {
        free(p);
        AVSR_NOMEM(err, (size_t)n * sizeof(shard));
        return NULL;
    }
    pthread_mutex_lock(&h5_lock);
    avsr_h5_quiet();
    int fail = 0;
    for (int i = 0; i < n && !fail; i++) {
        shard *s = &p->s[i];
        p->ns = i + 1;
        if (open_shard(s, paths[i], err) < 0) {
            H5Eclear2(H5E_DEFAULT);
            avsr_error_prefix(err, "%s: ", paths[i]);
            fail = 1;
            break;
        }
        int kind = s->kind, rh = s->roi_h, rw = s->roi_w;
        if (i == 0) {
            p->kind = kind;
            p->roi_h = rh;
            p->roi_w = rw;
        } else if (kind != p->kind || rh != p->roi_h || rw != p->roi_w) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: kind %s ROI %dx%d differs from %s (kind %s ROI %dx%d)", paths[i],
                           avsr_pack_kind_name(kind), rh, rw, paths[0],
                           avsr_pack_kind_name(p->kind), p->roi_h, p->roi_w);
            fail = 1;
            break;
        }
        s->first = p->n;
        p->n += s->n;
    }
    pthread_mutex_unlock(&h5_lock);
    if (fail) {
        avsr_pack_close(p);
        return NULL;
    }
    return p;
}

int64_t avsr_pack_count(const avsr_pack *p) { return p->n; }
int avsr_pack_kind(const avsr_pack *p) { return p->kind; }
int avsr_pack_roi_height(const avsr_pack *p) { return p->roi_h; }
int avsr_pack_roi_width(const avsr_pack *p) { return p->roi_w; }
int avsr_pack_shards(const avsr_pack *p) { return p->ns; }

/* shard and row of global clip i */
static const avsr_pack_row *locate(const avsr_pack *p, int64_t i, const shard **sh,
                                   avsr_error *err)
{
    if (i < 0 || i >= p->n) {
        avsr_error_set(err, AVSR_ERR_INVALID, "clip index %" PRId64 " out of range (%" PRId64
                       " clips)", i, p->n);
        return NULL;
    }
    int lo = 0, hi = p->ns - 1;
    while (lo < hi) { /* last shard with first <= i */
        int mid = (lo + hi + 1) / 2;
        if (p->s[mid].first <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    while (p->s[lo].n == 0 || i - p->s[lo].first >= p->s[lo].n)
        lo++; /* skip empty shards sharing the same first index */
    *sh = &p->s[lo];
    return &p->s[lo].rows[i - p->s[lo].first];
}

int avsr_pack_clip_info(const avsr_pack *p, int64_t i, avsr_pack_clip *c, avsr_error *err)
{
    const shard *s;
    const avsr_pack_row *r = locate(p, i, &s, err);
    if (!r)
        return -1;
    c->id = r->id;
    c->speaker = r->speaker;
    c->frames = r->video_frames;
    c->samples = r->audio_samples;
    c->text_bytes = r->text_bytes;
    c->shard = (int)(s - p->s);
    return 0;
}

/* read count[0] elements along the first axis from start into dst */
static int read_slab(const shard *s, hid_t d, const char *name, hid_t mtype, int rank,
                     int64_t start, int64_t count, int h, int w, void *dst, avsr_error *err)
{
    if (count == 0)
        return 0;
    hsize_t st[3] = {(hsize_t)start, 0, 0}, ct[3] = {(hsize_t)count, (hsize_t)h, (hsize_t)w};
    pthread_mutex_lock(&h5_lock);
    avsr_h5_quiet(); /* per thread in thread-safe HDF5 builds */
    hid_t fsp = H5Dget_space(d), msp = H5Screate_simple(rank, ct, NULL);
    int rc = 0;
    if (fsp < 0 || msp < 0 || H5Sselect_hyperslab(fsp, H5S_SELECT_SET, st, NULL, ct, NULL) < 0 ||
        H5Dread(d, mtype, msp, fsp, H5P_DEFAULT, dst) < 0) {
        char why[200];
        avsr_h5_last_error(why, sizeof why);
        H5Eclear2(H5E_DEFAULT);
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: reading /%s [%" PRId64 ", +%" PRId64 "): %s",
                            s->path, name, start, count, why[0] ? why : "HDF5 read failed");
    }
    avsr_h5_close_any(fsp);
    avsr_h5_close_any(msp);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int avsr_pack_read_video(avsr_pack *p, int64_t i, uint8_t *dst, avsr_error *err)
{
    const shard *s;
    const avsr_pack_row *r = locate(p, i, &s, err);
    if (!r)
        return -1;
    if (p->kind != AVSR_PACK_KIND_AV)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: a noise file has no video", s->path);
    return read_slab(s, s->video, "video", H5T_NATIVE_UINT8, 3, r->video_offset,
                     r->video_frames, p->roi_h, p->roi_w, dst, err);
}

int avsr_pack_read_audio_range(avsr_pack *p, int64_t i, int64_t first, int64_t n,
                               int16_t *dst, avsr_error *err)
{
    const shard *s;
    const avsr_pack_row *r = locate(p, i, &s, err);
    if (!r)
        return -1;
    if (!span_ok(first, n, r->audio_samples))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: clip %s: samples [%" PRId64 ", +%" PRId64
                              ") outside its %" PRId64 " samples",
                              s->path, r->id, first, n, r->audio_samples);
    return read_slab(s, s->audio, "audio", H5T_NATIVE_INT16, 1, r->audio_offset + first, n, 1,
                     1, dst, err);
}

int avsr_pack_read_audio(avsr_pack *p, int64_t i, int16_t *dst, avsr_error *err)
{
    avsr_pack_clip c;
    if (avsr_pack_clip_info(p, i, &c, err) < 0)
        return -1;
    return avsr_pack_read_audio_range(p, i, 0, c.samples, dst, err);
}

int avsr_pack_read_text(avsr_pack *p, int64_t i, char *dst, size_t cap, avsr_error *err)
{
    const shard *s;
    const avsr_pack_row *r = locate(p, i, &s, err);
    if (!r)
        return -1;
    if (cap < (size_t)r->text_bytes + 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: clip %s: text needs %" PRId64 " bytes, buffer has %zu",
                              s->path, r->id, r->text_bytes + 1, cap);
    if (read_slab(s, s->text, "text", H5T_NATIVE_UINT8, 1, r->text_offset, r->text_bytes, 1, 1,
                  dst, err) < 0)
        return -1;
    dst[r->text_bytes] = '\0';
    return 0;
}

int avsr_pack_shard_info(const avsr_pack *p, int shard_i, avsr_pack_shard_meta *m)
{
    if (shard_i < 0 || shard_i >= p->ns)
        return -1;
    const shard *s = &p->s[shard_i];
    m->path = s->path;
    m->created_by = s->created_by;
    m->manifest_sha256 = s->sha;
    m->video_mean = s->mean;
    m->video_std = s->std;
    m->compressed = s->compressed;
    m->clips = s->n;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int avsr_pack_summarize(const avsr_pack *p, avsr_pack_summary *sm, avsr_error *err)
{
    memset(sm, 0, sizeof *sm);
    const char **spk = malloc((p->n ? p->n : 1) * sizeof *spk);
    if (!spk)
        return AVSR_NOMEM(err, p->n * sizeof *spk);
    int64_t k = 0;
    sm->min_s = p->n ? 1e300 : 0;
    for (int si = 0; si < p->ns; si++) {
        const shard *s = &p->s[si];
        for (int64_t i = 0; i < s->n; i++) {
            const avsr_pack_row *r = &s->rows[i];
            double sec = (double)r->audio_samples / AVSR_PACK_SAMPLE_RATE;
            sm->frames += r->video_frames;
            sm->samples += r->audio_samples;
            sm->text_bytes += r->text_bytes;
            if (sec < sm->min_s)
                sm->min_s = sec;
            if (sec > sm->max_s)
                sm->max_s = sec;
            spk[k++] = r->speaker;
        }
    }
    sm->clips = p->n;
    sm->seconds = (double)sm->samples / AVSR_PACK_SAMPLE_RATE;
    sm->mean_s = p->n ? sm->seconds / p->n : 0;
    qsort(spk, (size_t)k, sizeof *spk, cmp_str);
    for (int64_t i = 0; i < k; i++)
        if (i == 0 || strcmp(spk[i], spk[i - 1]))
            sm->speakers++;
    free(spk);
    static const double steps[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600};
    sm->bin_s = 3600;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        if (steps[i] * AVSR_PACK_HIST_BINS > sm->max_s) {
            sm->bin_s = steps[i];
            break;
        }
    for (int si = 0; si < p->ns; si++)
        for (int64_t i = 0; i < p->s[si].n; i++) {
            double sec = (double)p->s[si].rows[i].audio_samples / AVSR_PACK_SAMPLE_RATE;
            int b = (int)(sec / sm->bin_s);
            sm->hist[b < AVSR_PACK_HIST_BINS ? b : AVSR_PACK_HIST_BINS - 1]++;
        }
    return 0;
}

int avsr_pack_print_info(const avsr_pack *p, FILE *f, avsr_error *err)
{
    avsr_pack_summary s;
    if (avsr_pack_summarize(p, &s, err) < 0)
        return -1;
    for (int i = 0; i < p->ns; i++) {
        avsr_pack_shard_meta m;
        avsr_pack_shard_info(p, i, &m);
        fprintf(f, "file: %s (%" PRId64 " clips, %s, created by %s)\n", m.path, m.clips,
                m.compressed ? "gzip chunks" : "contiguous",
                m.created_by[0] ? m.created_by : "?");
        fprintf(f, "manifest_sha256: %s\n", m.manifest_sha256[0] ? m.manifest_sha256 : "-");
    }
    fprintf(f, "format: avsr-pack v%d, kind %s, %d Hz, %d fps", AVSR_PACK_VERSION,
            avsr_pack_kind_name(p->kind), AVSR_PACK_SAMPLE_RATE, AVSR_PACK_FPS);
    if (p->kind == AVSR_PACK_KIND_AV)
        fprintf(f, ", ROI %dx%d, normalisation mean %.3f std %.3f", p->roi_h, p->roi_w,
                p->s[0].mean, p->s[0].std);
    fprintf(f, "\n");
    fprintf(f, "clips: %" PRId64 "\nspeakers: %" PRId64 "\nhours: %.4f (%.1f s)\n", s.clips,
            s.speakers, s.seconds / 3600, s.seconds);
    fprintf(f, "frames: %" PRId64 "\nsamples: %" PRId64 "\ntext bytes: %" PRId64 "\n", s.frames,
            s.samples, s.text_bytes);
    fprintf(f, "clip length (s): min %.2f, mean %.2f, max %.2f\n", s.min_s, s.mean_s, s.max_s);
    fprintf(f, "length histogram (s):\n");
    int64_t mx = 1;
    for (int b = 0; b < AVSR_PACK_HIST_BINS; b++)
        if (s.hist[b] > mx)
            mx = s.hist[b];
    for (int b = 0; b < AVSR_PACK_HIST_BINS; b++) {
        int bar = (int)((40 * s.hist[b] + mx - 1) / mx);
        fprintf(f, "  %7.1f - %7.1f %8" PRId64 " %.*s\n", b * s.bin_s, (b + 1) * s.bin_s,
                s.hist[b], bar, "########################################");
    }
    return 0;
}
