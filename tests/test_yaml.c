/* test_yaml: the recipe reader's tree, typed lookups and messages. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "yamltree.h"

static const char *doc =
    "name: demo\n"                      /* 1 */
    "run:\n"                            /* 2 */
    "  seed: 1234\n"                    /* 3 */
    "  threads: auto\n"                 /* 4 */
    "  lr: 1.0e-3\n"                    /* 5 */
    "  snr: [.inf, 10, -5]\n"           /* 6 */
    "  quoted: \"42\"\n"                /* 7 */
    "  flag: true\n"                    /* 8 */
    "  empty:\n"                        /* 9 */
    "stages:\n"                         /* 10 */
    "  - name: a\n"                     /* 11 */
    "    optimizer: {type: adamw, lrr: 3}\n"; /* 12 */

static bool msg_is(const avsr_error *e, const char *want)
{
    bool ok = strstr(e->msg, want) != NULL;
    if (!ok)
        tap_diag("got: %s", e->msg);
    return ok;
}

int main(void)
{
    avsr_error err = {0};
    avsr_yaml *y = avsr_yaml_load_string("recipe.yaml", doc, strlen(doc), &err);
    if (!tap_ok(y != NULL, "loads a recipe-like document %s", err.msg))
        return tap_done();
    avsr_ynode *root = avsr_yaml_root(y);
    const char *name = NULL;
    tap_ok(avsr_yaml_get_str(y, root, "recipe", "name", true, NULL, NULL, &name, &err) == 0 &&
               !strcmp(name, "demo"),
           "string lookup");
    avsr_ynode *run = NULL;
    tap_ok(avsr_yaml_get_map(y, root, "recipe", "run", true, &run, &err) == 0 && run &&
               avsr_ynode_line(run) == 3 && avsr_ynode_col(run) == 3,
           "mapping lookup with position 3:3 (got %d:%d)", run ? avsr_ynode_line(run) : 0,
           run ? avsr_ynode_col(run) : 0);
    int64_t seed = 0, dflt = 0;
    tap_ok(avsr_yaml_get_int(y, run, "run", "seed", true, 0, 0, INT64_MAX, &seed, &err) == 0 &&
               seed == 1234,
           "integer lookup");
    tap_ok(avsr_yaml_get_int(y, run, "run", "absent", false, 7, 0, 10, &dflt, &err) == 0 &&
               dflt == 7,
           "missing optional key gives the default");
    tap_ok(avsr_yaml_get_int(y, run, "run", "empty", false, 9, 0, 10, &dflt, &err) == 0 &&
               dflt == 9,
           "null value gives the default");
    double lr = 0;
    tap_ok(avsr_yaml_get_double(y, run, "run", "lr", true, 0, 0, 1, &lr, &err) == 0 && lr == 1e-3,
           "float with exponent");
    bool flag = false;
    tap_ok(avsr_yaml_get_bool(y, run, "run", "flag", true, false, &flag, &err) == 0 && flag,
           "boolean");
    avsr_ynode *snr = NULL;
    double v0 = 0, v2 = 0;
    tap_ok(avsr_yaml_get_seq(y, run, "run", "snr", true, &snr, &err) == 0 &&
               avsr_ynode_len(snr) == 3 &&
               avsr_ynode_to_double(y, avsr_ynode_item(snr, 0), "snr[0]", -INFINITY, INFINITY,
                                    &v0, &err) == 0 &&
               avsr_ynode_to_double(y, avsr_ynode_item(snr, 2), "snr[2]", -INFINITY, INFINITY,
                                    &v2, &err) == 0 &&
               isinf(v0) && v2 == -5,
           "flow sequence with .inf");

    /* errors carry file:line:col */
    int64_t t;
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_get_int(y, run, "run", "threads", true, 0, 0, 64, &t, &err) < 0 &&
               msg_is(&err, "recipe.yaml:4:12: run.threads: expected an integer, got 'auto'"),
           "wrong type: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_get_int(y, run, "run", "quoted", true, 0, 0, 64, &t, &err) < 0 &&
               msg_is(&err, "recipe.yaml:7:11: run.quoted: expected an integer, got a quoted string"),
           "quoted number is a string: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_get_int(y, run, "run", "seed", true, 0, 0, 100, &t, &err) < 0 &&
               msg_is(&err, "recipe.yaml:3:9: run.seed: 1234 is out of range [0, 100]"),
           "out of range: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_get_int(y, run, "run", "steps", true, 0, 0, 100, &t, &err) < 0 &&
               msg_is(&err, "recipe.yaml:3:3: run: missing required key 'steps'"),
           "missing required key: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_check_unused(y, run, "run", &err) == 0,
           "every key of run was looked up: no unknown key");
    avsr_ynode *stages = NULL;
    avsr_yaml_get_seq(y, root, "recipe", "stages", true, &stages, &err);
    avsr_ynode *opt = avsr_ynode_get(avsr_ynode_item(stages, 0), "optimizer");
    const char *type;
    static const char *const types[] = {"adamw", "adam", "sgd", NULL};
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_get_str(y, opt, "stages[0].optimizer", "type", true, NULL, types, &type,
                             &err) == 0 &&
               avsr_yaml_check_unused(y, opt, "stages[0].optimizer", &err) < 0 &&
               msg_is(&err, "recipe.yaml:12:30: stages[0].optimizer: unknown key 'lrr' (valid "
                            "keys here include: type)"),
           "unknown key in a flow mapping: %s", err.msg);
    static const char *const sgd_only[] = {"sgd", NULL};
    avsr_error_clear(&err);
    tap_ok(avsr_yaml_get_str(y, opt, "stages[0].optimizer", "type", true, NULL, sgd_only, &type,
                             &err) < 0 &&
               msg_is(&err, "stages[0].optimizer.type: 'adamw' is not one of: sgd"),
           "choices: %s", err.msg);
    avsr_yaml_free(y);

    const char *bad[][2] = {
        {"a: 1\na: 2\n", "recipe.yaml:2:1: duplicate key 'a' (first at line 1)"},
        {"a: [1, 2\n", "recipe.yaml:2:1: YAML syntax: did not find expected ',' or ']'"},
        {"a: 1\n---\nb: 2\n", "recipe.yaml:2:1: more than one YAML document"},
        {"a: &x [*x]\n", "recipe.yaml:1:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        avsr_error_clear(&err);
        avsr_yaml *b = avsr_yaml_load_string("recipe.yaml", bad[i][0], strlen(bad[i][0]), &err);
        tap_ok(!b && msg_is(&err, bad[i][1]), "bad document %zu: %s", i, err.msg);
        avsr_yaml_free(b);
    }
    avsr_error_clear(&err);
    tap_ok(!avsr_yaml_load_file("/nonexistent/recipe.yaml", &err) &&
               msg_is(&err, "/nonexistent/recipe.yaml: cannot open"),
           "missing file: %s", err.msg);
    /* record mode: every typed lookup leaves (path, canonical value) */
    static const char *rdoc = "run:\n"                              /* 1 */
                              "  seed: +0012\n"                     /* 2 */
                              "  lr: 1.0e-3\n"                      /* 3 */
                              "  list: [a, \"5\", 7, 2.50, .inf, true, '*']\n" /* 4 */
                              "stages:\n"                           /* 5 */
                              "  - {name: \"x\\\"y\"}\n";             /* 6 */
    avsr_yaml *ry = avsr_yaml_load_string("r.yaml", rdoc, strlen(rdoc), &err);
    if (!tap_ok(ry != NULL, "record document loads"))
        return tap_done();
    avsr_ynode *rroot = avsr_yaml_root(ry), *rrun = NULL, *rlist = NULL, *rstages = NULL;
    int64_t iv;
    double dv;
    bool bv;
    const char *sv;
    avsr_yaml_get_int(ry, rroot, "", "before", false, 1, 0, 9, &iv, &err);
    avsr_yaml_record_start(ry);
    avsr_yaml_get_map(ry, rroot, "", "run", true, &rrun, &err);
    avsr_yaml_get_int(ry, rrun, "run", "seed", false, 0, 0, 100, &iv, &err);
    avsr_yaml_get_double(ry, rrun, "run", "lr", false, 0, 0, 1, &dv, &err);
    avsr_yaml_get_double(ry, rrun, "run", "missing", false, 0.25, 0, 1, &dv, &err);
    avsr_yaml_get_seq(ry, rrun, "run", "list", false, &rlist, &err);
    avsr_yaml_get_bool(ry, NULL, "run.absent", "flag", false, true, &bv, &err);
    avsr_yaml_get_str(ry, rrun, "run", "nothing", false, NULL, NULL, &sv, &err);
    avsr_yaml_get_int(ry, rrun, "run", "seed", false, 0, 0, 100, &iv, &err); /* again */
    avsr_yaml_get_seq(ry, rroot, "", "stages", true, &rstages, &err);
    avsr_yaml_get_str(ry, avsr_ynode_item(rstages, 0), "stages[0]", "name", true, NULL, NULL,
                      &sv, &err);
    avsr_yaml_record_value(ry, "stages[0]", "extra", AVSR_YV_LIST, "[]", NULL);
    avsr_yaml_record_stop(ry);
    avsr_yaml_get_int(ry, rrun, "run", "after", false, 3, 0, 9, &iv, &err);
    int nrec = 0;
    const avsr_yaml_rec *recs = avsr_yaml_records(ry, &nrec, &err);
    static const struct {
        const char *path, *value;
        avsr_yval_type type;
        bool dflt;
        int line, col;
    } want[] = {
        {"run.seed", "12", AVSR_YV_INT, false, 2, 9},
        {"run.lr", "0.001", AVSR_YV_FLOAT, false, 3, 7},
        {"run.missing", "0.25", AVSR_YV_FLOAT, true, 0, 0},
        {"run.list", "[\"a\", \"5\", 7, 2.5, .inf, true, \"*\"]", AVSR_YV_LIST, false, 4, 9},
        {"run.absent.flag", "true", AVSR_YV_BOOL, true, 0, 0},
        {"stages.0.name", "x\"y", AVSR_YV_STR, false, 6, 12},
        {"stages.0.extra", "[]", AVSR_YV_LIST, true, 0, 0},
    };
    int nwant = (int)(sizeof want / sizeof want[0]);
    tap_ok(recs && nrec == nwant, "record mode: %d entries (want %d: the second lookup of a "
           "path, a NULL default and lookups outside recording add none)", nrec, nwant);
    for (int i = 0; recs && i < nrec && i < nwant; i++)
        tap_ok(!strcmp(recs[i].path, want[i].path) && !strcmp(recs[i].value, want[i].value) &&
                   recs[i].type == want[i].type && recs[i].is_default == want[i].dflt &&
                   recs[i].line == want[i].line && recs[i].col == want[i].col,
               "record %d: %s = %s (default %d, %d:%d)", i, recs[i].path, recs[i].value,
               recs[i].is_default, recs[i].line, recs[i].col);
    avsr_yaml_free(ry);

    char num[40];
    static const struct {
        double v;
        const char *text;
    } fmts[] = {{0.001, "0.001"}, {20, "20"}, {-5, "-5"}, {1e-8, "1e-08"}, {0.1f, "0.1"},
                {1.0 / 3, "0.3333333333333333"}, {INFINITY, ".inf"}, {-INFINITY, "-.inf"},
                {1e20, "1e+20"}};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        avsr_yaml_fmt_double(fmts[i].v, num, sizeof num);
        tap_ok(!strcmp(num, fmts[i].text) &&
                   (isinf(fmts[i].v) || strtod(num, NULL) == fmts[i].v ||
                    (float)strtod(num, NULL) == (float)fmts[i].v),
               "canonical number %s (want %s)", num, fmts[i].text);
    }
    char *q = avsr_yaml_quote("a\"b\\c\n");
    tap_ok(q && !strcmp(q, "\"a\\\"b\\\\c\\u000a\""), "quote: %s", q ? q : "(null)");
    free(q);

    avsr_yaml *e = avsr_yaml_load_string("empty.yaml", "", 0, &err);
    tap_ok(e && avsr_ynode_kind_of(avsr_yaml_root(e)) == AVSR_Y_MAP &&
               avsr_ynode_len(avsr_yaml_root(e)) == 0,
           "empty document is an empty mapping");
    avsr_yaml_free(e);
    return tap_done();
}
