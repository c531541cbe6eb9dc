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
 * empty) and strings; a quoted scalar is always a string. */
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

/* Record "<name>:LINE:COL: message" at node n (or the document start if n
 * is NULL); returns -1. */
int avsr_yaml_error(const avsr_yaml *y, const avsr_ynode *n, avsr_error *err, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

/* Typed lookups in a mapping. A missing or null key gives the default when
 * `required` is false, an error naming the key when true. Wrong types and
 * values outside [lo, hi] are errors at the value's position. `what` names
 * the section for messages ("stages[1].optimizer"). Each returns 0 or -1. */
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

#ifdef __cplusplus
}
#endif

#endif
