/* avsr-worker: trains the stages of a recipe (DESIGN.md §1).
 *
 * This build supports the model summary only:
 *     avsr-worker --summary recipe.yaml
 * loads the recipe, reads data.tokenizer for the vocabulary size, builds the
 * model from the `model:` section (parameters registered, no values
 * allocated) and prints the parameter table. Training, --check and --stage
 * come with the trainer; until then any other invocation exits with status 2
 * and says what this build supports. docs/tools/avsr-worker.md. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/tokenizer.h"
#include "models/builder.h"
#include "params.h"
#include "yamltree.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: avsr-worker --summary [--vocab N] RECIPE.yaml\n"
            "\n"
            "Options supported by this build:\n"
            "  --summary RECIPE.yaml  build the model of the recipe's `model:` section (with the\n"
            "                         vocabulary of data.tokenizer) and print its parameter\n"
            "                         table: trainable, frozen and total parameters per module\n"
            "                         (visual frontend, audio frontend, fusion, encoder, decoder,\n"
            "                         ctc) and the grand total. No parameter memory is allocated.\n"
            "  --vocab N              with --summary: vocabulary size N (blank and eos\n"
            "                         included) instead of data.tokenizer's; needed for\n"
            "                         sentencepiece tokenizers (this build knows only the\n"
            "                         41-symbol char vocabulary)\n"
            "  -h, --help             this text\n"
            "\n"
            "Not in this build (they come with the trainer): training a recipe\n"
            "(`avsr-worker RECIPE.yaml [--stage S]`), --check. Such invocations exit with\n"
            "status 2.\n");
}

/* data.tokenizer -> vocabulary size. Only the char tokenizer is known here. */
static int vocab_size(avsr_yaml *y, int *out, avsr_error *err)
{
    avsr_ynode *root = avsr_yaml_root(y), *data = NULL, *tok = NULL;
    if (avsr_yaml_get_map(y, root, "recipe", "data", false, &data, err) < 0 ||
        avsr_yaml_get_map(y, data, "data", "tokenizer", false, &tok, err) < 0)
        return -1;
    static const char *const types[] = {"char", "sentencepiece", NULL};
    const char *type = "char";
    if (avsr_yaml_get_str(y, tok, "data.tokenizer", "type", false, "char", types, &type, err) < 0)
        return -1;
    if (strcmp(type, "char") != 0)
        return avsr_yaml_error(y, avsr_ynode_get(tok, "type"), err,
                               "data.tokenizer.type: sentencepiece vocabularies are not "
                               "read by this build; give the size with --vocab N");
    avsr_vocab *v;
    if (avsr_vocab_default(&v, err) < 0)
        return -1;
    *out = avsr_vocab_size(v);
    avsr_vocab_free(v);
    return 0;
}

static int summary(const char *path, int vocab_override)
{
    avsr_error err = {0};
    avsr_yaml *y = avsr_yaml_load_file(path, &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    avsr_ynode *model = NULL;
    int V = 0, rc = 1;
    if (!y || !p)
        goto out;
    if (vocab_override > 0)
        V = vocab_override;
    if ((V == 0 && vocab_size(y, &V, &err) < 0) ||
        avsr_yaml_get_map(y, avsr_yaml_root(y), "recipe", "model", true, &model, &err) < 0 ||
        avsr_model_build(y, model, V, &m, p, &err) < 0)
        goto out;
    const char *name = NULL;
    avsr_yaml_get_str(y, avsr_yaml_root(y), "recipe", "name", false, "(unnamed)", NULL, &name,
                      &err);
    printf("recipe %s (%s): model with vocabulary %d\n\n", name ? name : "(unnamed)", path, V);
    avsr_model_summary(m, p, stdout);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "avsr-worker: %s\n", err.msg[0] ? err.msg : "out of memory");
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_yaml_free(y);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    const char *recipe = NULL;
    int vocab = 0;
    bool want_summary = false, bad = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--summary")) {
            want_summary = true;
        } else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 3 || v > 10000000) {
                fprintf(stderr, "avsr-worker: --vocab %s: expected an integer >= 3\n", argv[i]);
                return 2;
            }
            vocab = (int)v;
        } else if (argv[i][0] != '-' && !recipe) {
            recipe = argv[i];
        } else {
            bad = true;
        }
    }
    if (want_summary && recipe && !bad)
        return summary(recipe, vocab);
    fprintf(stderr, "avsr-worker: this build supports only --summary RECIPE.yaml and --help; "
                    "training (and --check, --stage) is not implemented yet\n");
    usage(stderr);
    return 2;
}
