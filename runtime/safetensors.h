/* safetensors: reading and writing the safetensors format.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {"key": "value"}}), then the data region. The reader
 * validates everything against the file before handing out a pointer:
 * header length, JSON syntax, duplicate names, known dtypes, shapes
 * (non-negative, at most AVSR_MAX_DIMS dimensions), offsets within the data
 * region, byte counts equal to numel x dtype size, no overlaps and no holes.
 * A hostile file gives an error message, never a crash. The writer writes
 * atomically (fileio.h). */
#ifndef AVSR_SAFETENSORS_H
#define AVSR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The header may be at most this long (the HF implementation's limit). */
#define AVSR_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct avsr_st avsr_st;

typedef struct avsr_st_tensor {
    const char *name;
    avsr_dtype dtype;
    int ndim;
    int64_t shape[AVSR_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the file buffer; little-endian, maybe unaligned */
    size_t nbytes;
} avsr_st_tensor;

/* Read and validate a file. Errors name the file. */
avsr_st *avsr_st_open(const char *path, avsr_error *err);
/* Validate a buffer (copied); `what` names it in messages. */
avsr_st *avsr_st_parse(const void *buf, size_t len, const char *what, avsr_error *err);
void avsr_st_close(avsr_st *st);

int avsr_st_count(const avsr_st *st);
/* Tensor i (in data-offset order). */
void avsr_st_get(const avsr_st *st, int i, avsr_st_tensor *out);
/* By name: 0 and *out filled, or -1 if absent. */
int avsr_st_find(const avsr_st *st, const char *name, avsr_st_tensor *out);

/* Metadata: value for key or NULL; and iteration. */
const char *avsr_st_meta(const avsr_st *st, const char *key);
int avsr_st_meta_count(const avsr_st *st);
void avsr_st_meta_at(const avsr_st *st, int i, const char **key, const char **value);

/* Copy tensor `name` into dst as f32 (converting F16/BF16/F64/ints), checking
 * that its shape is exactly ndim/shape. Errors name the tensor and shapes. */
int avsr_st_read_f32(const avsr_st *st, const char *name, int ndim, const int64_t *shape,
                     float *dst, avsr_error *err);

typedef struct avsr_st_writer avsr_st_writer;

avsr_st_writer *avsr_st_writer_create(void);
void avsr_st_writer_destroy(avsr_st_writer *w);
/* Add a tensor; data is borrowed until avsr_st_writer_write returns. */
int avsr_st_writer_add(avsr_st_writer *w, const char *name, avsr_dtype dtype, int ndim,
                       const int64_t *shape, const void *data, avsr_error *err);
int avsr_st_writer_meta(avsr_st_writer *w, const char *key, const char *value, avsr_error *err);
/* Write to path atomically (temp name, fsync, rename). */
int avsr_st_writer_write(avsr_st_writer *w, const char *path, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
