/* yamltree: YAML documents (recipes) with positions, typed lookups and
 * error messages of the form "recipe.yaml:LINE:COL: message".
 *
 * A document is loaded with libyaml into a tree of scalars, sequences and
 * mappings, each with its 1-based line and column. Lookups mark mapping
 * keys as used; avsr_yaml_check_unused() then reports the first key that no
 * lookup asked for ("unknown key 'lrr' (expected one of: lr, betas, eps)"),
 * so a schema is just the sequence of lookups a reader makes. Duplicate keys
 * in a mapping are errors at load time. Scalars are read with YAML 1.2 core
 * rules for the types asked for: integers (decimal, optional sign),
 * floats (incl. 1e-3, .inf, -.inf), booleans (true/false), null (~, null,
 * empty) and strings; a quoted scalar is always a string.
 *
 * Record mode (avsr_yaml_record_start) keeps, for every key a reader looked
 * up with a typed getter, its key path and its value, the default included:
 * the "resolved" form of a document (what the recipe layer stores and
 * hashes; docs/runtime/core.md). */
#ifndef AVSR_YAMLTREE_H
#define AVSR_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_yaml avsr_yaml;
typedef struct avsr_ynode avsr_ynode;

typedef enum avsr_ynode_kind { AVSR_Y_SCALAR = 1, AVSR_Y_SEQ = 2, AVSR_Y_MAP = 3 } avsr_ynode_kind;

/* Load a file, or text named `name` (for messages). An empty document gives
 * an empty mapping as root. */
avsr_yaml *avsr_yaml_load_file(const char *path, avsr_error *err);
avsr_yaml *avsr_yaml_load_string(const char *name, const char *text, size_t len,
                                 avsr_error *err);
void avsr_yaml_free(avsr_yaml *y);
const char *avsr_yaml_name(const avsr_yaml *y);
avsr_ynode *avsr_yaml_root(const avsr_yaml *y);

avsr_ynode_kind avsr_ynode_kind_of(const avsr_ynode *n);
int avsr_ynode_line(const avsr_ynode *n);
int avsr_ynode_col(const avsr_ynode *n);
/* Scalar text (NULL for other kinds); true if it was quoted. */
const char *avsr_ynode_str(const avsr_ynode *n);
bool avsr_ynode_quoted(const avsr_ynode *n);
bool avsr_ynode_is_null(const avsr_ynode *n);
/* Items of a sequence, pairs of a mapping. */
int avsr_ynode_len(const avsr_ynode *n);
avsr_ynode *avsr_ynode_item(const avsr_ynode *seq, int i);
const char *avsr_ynode_key(const avsr_ynode *map, int i);
avsr_ynode *avsr_ynode_value(const avsr_ynode *map, int i);
/* Value of key in a mapping (marks the key used), or NULL. */
avsr_ynode *avsr_ynode_get(avsr_ynode *map, const char *key);

/* Position of the i-th key of a mapping (the key itself, not its value). */
int avsr_ynode_key_line(const avsr_ynode *map, int i);
int avsr_ynode_key_col(const avsr_ynode *map, int i);

/* Record "<name>:LINE:COL: message" at node n (or the document start if n
 * is NULL); returns -1. */
int avsr_yaml_error(const avsr_yaml *y, const avsr_ynode *n, avsr_error *err, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

/* The same at a given position (e.g. a mapping key's). */
int avsr_yaml_error_at(const avsr_yaml *y, int line, int col, avsr_error *err, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

/* Typed lookups in a mapping. A missing or null key gives the default when
 * `required` is false, an error naming the key when true. Wrong types and
 * values outside [lo, hi] are errors at the value's position. `what` names
 * the section for messages ("stages[1].optimizer"; "" for the root, whose
 * keys are then named alone). map may be NULL (an absent section): every
 * optional key gives its default. Each returns 0 or -1. */
int avsr_yaml_get_int(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, int64_t def, int64_t lo, int64_t hi, int64_t *out,
                      avsr_error *err);
int avsr_yaml_get_double(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                         bool required, double def, double lo, double hi, double *out,
                         avsr_error *err);
int avsr_yaml_get_bool(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                       bool required, bool def, bool *out, avsr_error *err);
/* choices: NULL-terminated list of allowed values, or NULL for any string.
 * *out points into the document (valid until avsr_yaml_free) or is def. */
int avsr_yaml_get_str(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, const char *def, const char *const *choices,
                      const char **out, avsr_error *err);
/* A mapping-valued key: *out = the mapping, or NULL when absent and not
 * required. */
int avsr_yaml_get_map(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, avsr_ynode **out, avsr_error *err);
int avsr_yaml_get_seq(const avsr_yaml *y, avsr_ynode *map, const char *what, const char *key,
                      bool required, avsr_ynode **out, avsr_error *err);

/* Scalar conversions on a node (errors at the node). */
int avsr_ynode_to_int(const avsr_yaml *y, const avsr_ynode *n, const char *what, int64_t lo,
                      int64_t hi, int64_t *out, avsr_error *err);
int avsr_ynode_to_double(const avsr_yaml *y, const avsr_ynode *n, const char *what, double lo,
                         double hi, double *out, avsr_error *err);

/* The first key of the mapping that no lookup used: an error listing the
 * keys that were looked up. 0 if every key was used. */
int avsr_yaml_check_unused(const avsr_yaml *y, const avsr_ynode *map, const char *what,
                           avsr_error *err);

/* ---- record mode -----------------------------------------------------------
 *
 * While recording is on, each successful typed lookup adds one entry:
 *   path   "what.key" with "[i]" written ".i" ("stages[0].optimizer" + "lr"
 *          -> "stages.0.optimizer.lr"); the root's keys are named alone;
 *   value  canonical text: integers in decimal; numbers in the shortest
 *          form that reads back to the same double, or, for a double that
 *          is exactly a float (settings the model keeps as floats), to the
 *          same float; whole numbers without exponent; ".inf", "-.inf";
 *          true / false; strings as they are;
 *   type, whether the value was the default, and the value's position.
 * get_int, _double, _bool and _str record their key (_str only when there
 * is a value: a NULL default records nothing). get_seq records a list whose
 * items are all scalars (a list of mappings is a container: what is read
 * inside it is recorded by those lookups) as a JSON array: items that read
 * as numbers in their canonical form, true / false / null, the rest as JSON
 * strings. _map, ynode_get and the ynode_to_* conversions record nothing.
 * A path that is already recorded is not recorded again (the first value
 * stays). Readers add what the getters cannot know (a list's default, a
 * value read by hand) with avsr_yaml_record_value. */

typedef enum avsr_yval_type {
    AVSR_YV_INT = 1,
    AVSR_YV_FLOAT = 2,
    AVSR_YV_BOOL = 3,
    AVSR_YV_STR = 4,
    AVSR_YV_LIST = 5 /* value is a JSON array */
} avsr_yval_type;

typedef struct avsr_yaml_rec {
    const char *path;
    const char *value;
    avsr_yval_type type;
    bool is_default;  /* the document did not give the key */
    int line, col;    /* the value's position; 0, 0 for a default */
} avsr_yaml_rec;

/* Start recording (clears earlier records) / stop (records are kept). */
void avsr_yaml_record_start(avsr_yaml *y);
void avsr_yaml_record_stop(avsr_yaml *y);
/* Add an entry for what.key by hand (at: the node that gave the value, NULL
 * for a default). Does nothing when recording is off or the path is
 * already recorded. 0, or -1 when out of memory (also remembered, see
 * avsr_yaml_records). */
int avsr_yaml_record_value(const avsr_yaml *y, const char *what, const char *key,
                           avsr_yval_type type, const char *value, const avsr_ynode *at);
/* The entries in the order they were recorded (valid until the next
 * record_start or avsr_yaml_free). NULL with err set if recording ran out
 * of memory; *n = 0 and a non-NULL pointer when nothing was recorded. */
const avsr_yaml_rec *avsr_yaml_records(const avsr_yaml *y, int *n, avsr_error *err);

/* Canonical text of a double (see record mode) into buf (>= 32 bytes). */
void avsr_yaml_fmt_double(double v, char *buf, size_t size);
/* s as a JSON string (double quotes, \" \\ and \uXXXX for control
 * characters), which is also a YAML double-quoted scalar; malloc'd, NULL
 * when out of memory. */
char *avsr_yaml_quote(const char *s);
/* A list of scalars as the JSON array that record mode stores, malloc'd
 * (NULL when out of memory or when an item is not a scalar). */
char *avsr_ynode_list_json(const avsr_ynode *seq);

#ifdef __cplusplus
}
#endif

#endif
