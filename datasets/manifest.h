/* manifest: the list of clips avsr-pack reads.
 *
 * CSV (RFC 4180: comma separated, "..." quoting with "" for a quote, quoted
 * fields may hold commas and newlines; LF or CRLF line ends; a UTF-8 byte
 * order mark is ignored) with a header naming the columns, in any order:
 *     id,video,audio,text[,speaker]
 * `audio` may be empty: the audio track of the video file is used. Relative
 * paths are relative to the directory of the manifest. For noise corpora
 * (AVSR_MANIFEST_NOISE) only id and audio are required.
 *
 * AV-HuBERT pairs: NAME.tsv whose first line is the root directory and each
 * further line `id<TAB>video<TAB>audio<TAB>nframes_video<TAB>nframes_audio`
 * (paths relative to the root, the root relative to the .tsv's directory),
 * with NAME.wrd holding one transcript per line in the same order. The
 * speaker is the id's second-to-last '/'-separated component ("" if none).
 *
 * Whole-file problems (unreadable file, bad header, .wrd line count) fail
 * the load. Problems of one row (bad quoting, field count, empty or long id,
 * duplicate id, empty or non-UTF-8 text, missing path) only mark the row
 * (row.bad), so the caller can stop or skip it; avsr_manifest_row_msg
 * formats them as "<manifest>:<line>: <id>: <what>". */
#ifndef AVSR_MANIFEST_H
#define AVSR_MANIFEST_H

#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum avsr_manifest_flags {
    AVSR_MANIFEST_NOISE = 1 /* noise corpus: video and text columns optional */
};

typedef struct avsr_manifest_row {
    int line;       /* 1-based line where the row starts */
    char *id;       /* never NULL ("" when missing) */
    char *video;    /* resolved path; "" if none */
    char *audio;    /* resolved path; "" = the audio track of video */
    char *text;     /* UTF-8 transcript; "" if none */
    char *speaker;  /* "" if none */
    char *bad;      /* NULL, or what is wrong with this row */
} avsr_manifest_row;

typedef struct avsr_manifest {
    char *path;              /* as given */
    avsr_manifest_row *rows;
    size_t n;
    int has_video, has_text, has_speaker; /* columns present */
    char sha256[65];         /* hex SHA-256 of the manifest bytes (.tsv then .wrd) */
} avsr_manifest;

/* Load a CSV manifest (or, for a path ending in .tsv, a .tsv/.wrd pair with
 * wrd = NULL meaning the .wrd beside it). Returns 0 or -1 with err set. */
int avsr_manifest_load(const char *path, const char *wrd, int flags, avsr_manifest *m,
                       avsr_error *err);
int avsr_manifest_load_csv(const char *path, int flags, avsr_manifest *m, avsr_error *err);
int avsr_manifest_load_tsv(const char *tsv, const char *wrd, int flags, avsr_manifest *m,
                           avsr_error *err);
void avsr_manifest_free(avsr_manifest *m);

/* "<manifest>:<line>: <id>: <what>" into buf (truncated to cap). */
void avsr_manifest_row_msg(const avsr_manifest *m, const avsr_manifest_row *r,
                           const char *what, char *buf, size_t cap);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF); else 0 with *bad_at set to the first bad byte. */
int avsr_utf8_valid(const char *s, size_t n, size_t *bad_at);

#ifdef __cplusplus
}
#endif

#endif
