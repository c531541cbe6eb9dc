// spm_shim: the C API of spm.h over Debian's libsentencepiece (C++).
// Every entry point catches all exceptions: nothing C++ crosses into C.
#include "spm.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

struct avsr_spm {
    sentencepiece::SentencePieceProcessor sp;
};

namespace {

int fail_exc(avsr_error *err, const char *what, const std::exception &e)
{
    return avsr_error_set(err, AVSR_ERR_BACKEND, "%s: sentencepiece: %s", what, e.what());
}

int fail_unknown(avsr_error *err, const char *what)
{
    return avsr_error_set(err, AVSR_ERR_BACKEND, "%s: sentencepiece: unknown C++ exception",
                          what);
}

}  // namespace

extern "C" {

bool avsr_spm_available(void) { return true; }

avsr_spm *avsr_spm_load(const char *path, avsr_error *err)
{
    if (!path) {
        avsr_error_set(err, AVSR_ERR_INVALID, "spm load: path is NULL");
        return nullptr;
    }
    avsr_spm *m = nullptr;
    try {
        m = new avsr_spm;
        auto st = m->sp.Load(path);
        if (!st.ok()) {
            avsr_error_set(err, AVSR_ERR_IO, "loading SentencePiece model %s: %s", path,
                           st.ToString().c_str());
            delete m;
            return nullptr;
        }
        return m;
    } catch (const std::bad_alloc &) {
        AVSR_NOMEM(err, sizeof *m);
    } catch (const std::exception &e) {
        fail_exc(err, path, e);
    } catch (...) {
        fail_unknown(err, path);
    }
    delete m;
    return nullptr;
}

void avsr_spm_free(avsr_spm *spm)
{
    try {
        delete spm;
    } catch (...) {
    }
}

int avsr_spm_vocab_size(const avsr_spm *spm)
{
    if (!spm)
        return -1;
    try {
        return spm->sp.GetPieceSize();
    } catch (...) {
        return -1;
    }
}

int avsr_spm_unk_id(const avsr_spm *spm)
{
    if (!spm)
        return -1;
    try {
        return spm->sp.unk_id();
    } catch (...) {
        return -1;
    }
}

int avsr_spm_encode(const avsr_spm *spm, const char *text, int32_t **ids, int *n,
                    avsr_error *err)
{
    if (ids)
        *ids = nullptr;
    if (n)
        *n = 0;
    if (!spm || !text || !ids || !n)
        return avsr_error_set(err, AVSR_ERR_INVALID, "spm encode: NULL argument");
    try {
        std::vector<int> v;
        auto st = spm->sp.Encode(text, &v);
        if (!st.ok())
            return avsr_error_set(err, AVSR_ERR_INVALID, "spm encode: %s",
                                  st.ToString().c_str());
        int32_t *out = static_cast<int32_t *>(std::malloc(sizeof(int32_t) * (v.size() + 1)));
        if (!out)
            return AVSR_NOMEM(err, sizeof(int32_t) * (v.size() + 1));
        for (size_t i = 0; i < v.size(); i++)
            out[i] = v[i];
        *ids = out;
        *n = static_cast<int>(v.size());
        return 0;
    } catch (const std::exception &e) {
        return fail_exc(err, "spm encode", e);
    } catch (...) {
        return fail_unknown(err, "spm encode");
    }
}

char *avsr_spm_decode(const avsr_spm *spm, const int32_t *ids, int n, avsr_error *err)
{
    if (!spm || (!ids && n > 0) || n < 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "spm decode: NULL argument or negative count");
        return nullptr;
    }
    try {
        int size = spm->sp.GetPieceSize();
        std::vector<int> v(static_cast<size_t>(n));
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= size) {
                avsr_error_set(err, AVSR_ERR_INVALID,
                               "spm decode: id %d at position %d outside the vocabulary "
                               "[0, %d)",
                               static_cast<int>(ids[i]), i, size);
                return nullptr;
            }
            v[static_cast<size_t>(i)] = ids[i];
        }
        std::string s;
        auto st = spm->sp.Decode(v, &s);
        if (!st.ok()) {
            avsr_error_set(err, AVSR_ERR_INVALID, "spm decode: %s", st.ToString().c_str());
            return nullptr;
        }
        char *out = static_cast<char *>(std::malloc(s.size() + 1));
        if (!out) {
            AVSR_NOMEM(err, s.size() + 1);
            return nullptr;
        }
        std::memcpy(out, s.data(), s.size());
        out[s.size()] = '\0';
        return out;
    } catch (const std::exception &e) {
        fail_exc(err, "spm decode", e);
    } catch (...) {
        fail_unknown(err, "spm decode");
    }
    return nullptr;
}

const char *avsr_spm_id_to_piece(const avsr_spm *spm, int id)
{
    if (!spm)
        return nullptr;
    try {
        if (id < 0 || id >= spm->sp.GetPieceSize())
            return nullptr;
        return spm->sp.IdToPiece(id).c_str();
    } catch (...) {
        return nullptr;
    }
}

int avsr_spm_piece_to_id(const avsr_spm *spm, const char *piece)
{
    if (!spm || !piece)
        return -1;
    try {
        return spm->sp.PieceToId(piece);
    } catch (...) {
        return -1;
    }
}

int avsr_spm_train(const char *text_file, const char *model_prefix, int vocab_size,
                   const char *model_type, avsr_error *err)
{
    if (!text_file || !model_prefix)
        return avsr_error_set(err, AVSR_ERR_INVALID, "spm train: NULL path");
    if (vocab_size < 2)
        return avsr_error_set(err, AVSR_ERR_INVALID, "spm train: vocab_size %d, expected >= 2",
                              vocab_size);
    const char *type = model_type ? model_type : "unigram";
    if (std::strcmp(type, "unigram") && std::strcmp(type, "bpe") && std::strcmp(type, "char") &&
        std::strcmp(type, "word"))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "spm train: model_type \"%s\", expected unigram, bpe, char or word",
                              type);
    try {
        std::unordered_map<std::string, std::string> kw = {
            {"input", text_file},
            {"model_prefix", model_prefix},
            {"vocab_size", std::to_string(vocab_size)},
            {"model_type", type},
            {"minloglevel", "2"},
        };
        auto st = sentencepiece::SentencePieceTrainer::Train(kw);
        if (!st.ok())
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "training SentencePiece on %s (vocab %d, %s): %s", text_file,
                                  vocab_size, type, st.ToString().c_str());
        return 0;
    } catch (const std::exception &e) {
        return fail_exc(err, "spm train", e);
    } catch (...) {
        return fail_unknown(err, "spm train");
    }
}

}  // extern "C"
