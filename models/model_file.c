/* model_file: load and save model files that carry their configuration and
 * vocabulary in the safetensors metadata. */
#include "model_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"
#include "safetensors.h"
#include "yamltree.h"

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

int avsr_model_file_meta(const char *path, char **model_json, char **vocab_json,
                         avsr_error *err)
{
    *model_json = *vocab_json = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int rc = -1;
    char *hdr = NULL;
    json_t *root = NULL;
    unsigned char lb[8];
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
        goto out;
    }
    if (size < 8 || fread(lb, 1, 8, f) != 8) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: not a safetensors file: %ld bytes, shorter than the 8-byte header "
                       "length", path, size);
        goto out;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | lb[i];
    if (n < 2 || n > AVSR_ST_MAX_HEADER || n > (uint64_t)size - 8) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: not a safetensors file: header length %llu does not fit the file "
                       "(%ld bytes)", path, (unsigned long long)n, size);
        goto out;
    }
    hdr = malloc((size_t)n);
    if (!hdr) {
        AVSR_NOMEM(err, (size_t)n);
        goto out;
    }
    if (fread(hdr, 1, (size_t)n, f) != (size_t)n) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot read the header: %s", path,
                       ferror(f) ? strerror(errno) : "short read");
        goto out;
    }
    json_error_t je;
    root = json_loadb(hdr, (size_t)n, 0, &je);
    if (!json_is_object(root)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: not a safetensors file: header is not a "
                       "JSON object (%s)", path, root ? "other JSON value" : je.text);
        goto out;
    }
    json_t *meta = json_object_get(root, "__metadata__");
    if (meta && !json_is_object(meta)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: __metadata__ is not an object", path);
        goto out;
    }
    json_t *m = meta ? json_object_get(meta, AVSR_MODEL_FILE_META_MODEL) : NULL;
    json_t *v = meta ? json_object_get(meta, AVSR_MODEL_FILE_META_TOKENIZER) : NULL;
    if ((m && !json_is_string(m)) || (v && !json_is_string(v))) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: metadata \"%s\" is not a string", path,
                       m && !json_is_string(m) ? AVSR_MODEL_FILE_META_MODEL
                                               : AVSR_MODEL_FILE_META_TOKENIZER);
        goto out;
    }
    *model_json = dup_str(m ? json_string_value(m) : NULL);
    *vocab_json = dup_str(v ? json_string_value(v) : NULL);
    if ((m && !*model_json) || (v && !*vocab_json)) {
        free(*model_json);
        free(*vocab_json);
        *model_json = *vocab_json = NULL;
        AVSR_NOMEM(err, 0);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    free(hdr);
    fclose(f);
    return rc;
}

void avsr_model_file_free(avsr_model_file *mf)
{
    if (!mf)
        return;
    avsr_model_free(mf->model);
    avsr_params_destroy(mf->params);
    avsr_vocab_free(mf->vocab);
    free(mf->model_json);
    free(mf->vocab_json);
    free(mf->path);
    memset(mf, 0, sizeof *mf);
}

int avsr_model_file_load(const char *path, avsr_model_file *out, avsr_error *err)
{
    memset(out, 0, sizeof *out);
    if (avsr_model_file_meta(path, &out->model_json, &out->vocab_json, err) < 0)
        return -1;
    avsr_yaml *y = NULL;
    char *yname = NULL;
    if (!out->model_json || !out->vocab_json) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: not a model file: metadata \"%s\" is missing (model files written "
                       "by avsr-worker checkpoints and avsr-avg carry the model configuration "
                       "and the tokenizer)",
                       path, !out->model_json ? AVSR_MODEL_FILE_META_MODEL
                                              : AVSR_MODEL_FILE_META_TOKENIZER);
        goto fail;
    }
    if (!(out->path = strdup(path)))
        goto nomem;
    if (avsr_vocab_from_json(&out->vocab, out->vocab_json, err) < 0) {
        avsr_error_prefix(err, "%s: metadata \"%s\": ", path, AVSR_MODEL_FILE_META_TOKENIZER);
        goto fail;
    }
    size_t nl = strlen(path) + sizeof "[" AVSR_MODEL_FILE_META_MODEL "]";
    if (!(yname = malloc(nl)))
        goto nomem;
    snprintf(yname, nl, "%s[%s]", path, AVSR_MODEL_FILE_META_MODEL);
    y = avsr_yaml_load_string(yname, out->model_json, strlen(out->model_json), err);
    if (!y)
        goto fail;
    avsr_ynode *root = avsr_yaml_root(y);
    if (avsr_ynode_kind_of(root) != AVSR_Y_MAP) {
        avsr_yaml_error(y, root, err, "model: expected a JSON object (the `model:` section)");
        goto fail;
    }
    if (!(out->params = avsr_params_create()))
        goto nomem;
    if (avsr_model_build(y, root, avsr_vocab_size(out->vocab), &out->model, out->params, err) < 0 ||
        avsr_params_finalize(out->params, err) < 0 ||
        avsr_model_load_mapped(out->params, path, NULL, err) < 0)
        goto fail;
    avsr_yaml_free(y);
    free(yname);
    return 0;
nomem:
    AVSR_NOMEM(err, 0);
fail:
    avsr_yaml_free(y);
    free(yname);
    avsr_model_file_free(out);
    return -1;
}

int avsr_model_file_save(const char *path, const avsr_params *p, const char *model_json,
                         const char *vocab_json, avsr_error *err)
{
    if (!model_json || !vocab_json)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: a model file needs the model configuration and the "
                              "tokenizer", path);
    avsr_st_writer *w = avsr_st_writer_create();
    if (!w)
        return AVSR_NOMEM(err, 0);
    int rc = 0;
    for (int i = 0; rc == 0 && i < avsr_params_count(p); i++) {
        const avsr_tensor *t = avsr_params_at(p, i);
        rc = avsr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err);
    }
    if (rc == 0)
        rc = avsr_st_writer_meta(w, "format", "pt", err) ||
                     avsr_st_writer_meta(w, "avsr.kind", "model", err) ||
                     avsr_st_writer_meta(w, AVSR_MODEL_FILE_META_MODEL, model_json, err) ||
                     avsr_st_writer_meta(w, AVSR_MODEL_FILE_META_TOKENIZER, vocab_json, err)
                 ? -1
                 : 0;
    if (rc == 0)
        rc = avsr_st_writer_write(w, path, err);
    avsr_st_writer_destroy(w);
    return rc;
}
