/* spm_none: the SentencePiece API in a build without libsentencepiece: every
 * call fails with AVSR_ERR_UNSUPPORTED (see spm.h). */
#include "spm.h"

#include <stddef.h>

#define SPM_MISSING                                                                     \
    "SentencePiece support is not built in: install libsentencepiece-dev and run "   \
    "configure --with-sentencepiece"

bool avsr_spm_available(void) { return false; }

avsr_spm *avsr_spm_load(const char *path, avsr_error *err)
{
    avsr_error_set(err, AVSR_ERR_UNSUPPORTED, "loading %s: " SPM_MISSING, path ? path : "(null)");
    return NULL;
}

void avsr_spm_free(avsr_spm *spm) { (void)spm; }
int avsr_spm_vocab_size(const avsr_spm *spm) { (void)spm; return -1; }
int avsr_spm_unk_id(const avsr_spm *spm) { (void)spm; return -1; }

int avsr_spm_encode(const avsr_spm *spm, const char *text, int32_t **ids, int *n,
                    avsr_error *err)
{
    (void)spm;
    (void)text;
    if (ids)
        *ids = NULL;
    if (n)
        *n = 0;
    return avsr_error_set(err, AVSR_ERR_UNSUPPORTED, "spm encode: " SPM_MISSING);
}

char *avsr_spm_decode(const avsr_spm *spm, const int32_t *ids, int n, avsr_error *err)
{
    (void)spm;
    (void)ids;
    (void)n;
    avsr_error_set(err, AVSR_ERR_UNSUPPORTED, "spm decode: " SPM_MISSING);
    return NULL;
}

const char *avsr_spm_id_to_piece(const avsr_spm *spm, int id)
{
    (void)spm;
    (void)id;
    return NULL;
}

int avsr_spm_piece_to_id(const avsr_spm *spm, const char *piece)
{
    (void)spm;
    (void)piece;
    return -1;
}

int avsr_spm_train(const char *text_file, const char *model_prefix, int vocab_size,
                   const char *model_type, avsr_error *err)
{
    (void)model_prefix;
    (void)vocab_size;
    (void)model_type;
    return avsr_error_set(err, AVSR_ERR_UNSUPPORTED, "training on %s: " SPM_MISSING,
                          text_file ? text_file : "(null)");
}
