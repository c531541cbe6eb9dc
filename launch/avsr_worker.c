/* avsr-worker: trains the stages of a recipe (DESIGN.md section 1).
 *
 *     mpirun -np N avsr-worker RECIPE.yaml [--stage S] [--force-resume]
 *     avsr-worker --check RECIPE.yaml
 *     avsr-worker --summary [--vocab N] RECIPE.yaml
 *
 * Training is train/trainer.c; the recipe is read and validated by
 * train/recipe.c before any rank starts work. Exit status: 0 done, 1 a
 * training error, 2 a usage or recipe error, 75 stopped by SIGTERM/SIGUSR1
 * after a checkpoint (requeue: re-running resumes), 130 stopped by SIGINT
 * after a checkpoint. docs/tools/avsr-worker.md. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/tokenizer.h"
#include "dist/comm.h"
#include "models/builder.h"
#include "params.h"
#include "train/recipe.h"
#include "train/trainer.h"
#include "yamltree.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N avsr-worker RECIPE.yaml [--stage S] [--force-resume]\n"
            "       avsr-worker --check RECIPE.yaml\n"
            "       avsr-worker --summary [--vocab N] RECIPE.yaml\n"
            "\n"
            "Train the stages of RECIPE.yaml in order (or only stage S), data-parallel over\n"
            "the MPI ranks. Re-running the same command resumes from the newest complete\n"
            "checkpoint of the unfinished stage; finished stages are skipped.\n"
            "\n"
            "  --stage S          run only stage S\n"
            "  --force-resume     resume although the recipe changed since the checkpoint\n"
            "  --check            validate the recipe and print it with every default filled\n"
            "                     in (no MPI needed)\n"
            "  --summary          print the parameter table of the recipe's model: trainable,\n"
            "                     frozen and total parameters per module (no MPI needed)\n"
            "  --vocab N          with --summary: vocabulary size N instead of\n"
            "                     data.tokenizer's (for sentencepiece tokenizers)\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 done; 1 training failed; 2 bad usage or recipe; 75 stopped by\n"
            "SIGTERM/SIGUSR1 after a checkpoint (requeue: re-running resumes); 130 stopped\n"
            "by SIGINT after a checkpoint.\n");
}

/* data.tokenizer -> vocabulary size. Only the char tokenizer is known here. */
static int vocab_size(avsr_yaml *y, int *out, avsr_error *err)
{
    avsr_ynode *root = avsr_yaml_root(y), *data = NULL, *tok = NULL;
    if (avsr_yaml_get_map(y, root, "recipe", "data", false, &data, err) < 0 ||
        avsr_yaml_get_map(y, data, "data", "tokenizer", false, &tok, err) < 0)
        return -1;
    static const char *const types[] = {"char", "word", "sentencepiece", NULL};
    const char *type = "char";
    if (avsr_yaml_get_str(y, tok, "data.tokenizer", "type", false, "char", types, &type, err) < 0)
        return -1;
    if (strcmp(type, "char") != 0)
        return avsr_yaml_error(y, avsr_ynode_get(tok, "type"), err,
                               "data.tokenizer.type: %s: the vocabulary comes from the data "
                               "or a model file; give its size with --vocab N", type);
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

static int check(const char *path)
{
    avsr_error err = {0};
    avsr_recipe *r = avsr_recipe_load(path, &err);
    if (!r) {
        fprintf(stderr, "avsr-worker: %s\n", err.msg);
        return 2;
    }
    char *text = avsr_recipe_resolved_yaml(r);
    if (text)
        fputs(text, stdout);
    free(text);
    avsr_recipe_free(r);
    return text ? 0 : 1;
}

static int train(const char *path, const char *stage, bool force)
{
    avsr_error err = {0};
    /* every rank reads and checks the recipe itself (the same file, the
     * same verdict), before any collective work */
    avsr_recipe *r = avsr_recipe_load(path, &err);
    avsr_comm_opts co = {.timeout_s = r ? r->watchdog_s : 0};
    avsr_error cerr = {0};
    avsr_comm *c = avsr_comm_mpi_create(NULL, NULL, &co, &cerr);
    if (r && !c)
        err = cerr;
    if (!r || !c) {
        if (!c || avsr_comm_rank(c) == 0)
            fprintf(stderr, "avsr-worker: %s\n", err.msg);
        avsr_comm_destroy(c);
        avsr_recipe_free(r);
        return r ? 1 : 2;
    }
    avsr_train_opts o = {.stage = stage, .force_resume = force, .log = stderr};
    int rc = avsr_train(r, c, &o, &err);
    if (rc < 0) {
        /* the message may be this rank's alone: print it, and leave without
         * finalising so that mpirun ends the ranks still waiting */
        if (avsr_comm_size(c) > 1) {
            fprintf(stderr, "avsr-worker: rank %d: %s\n", avsr_comm_rank(c), err.msg);
            fflush(stderr);
            _exit(1);
        }
        fprintf(stderr, "avsr-worker: %s\n", err.msg);
        rc = 1;
    }
    avsr_comm_destroy(c);
    avsr_recipe_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    const char *recipe = NULL, *stage = NULL;
    int vocab = 0;
    bool want_summary = false, want_check = false, force = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--summary")) {
            want_summary = true;
        } else if (!strcmp(a, "--check")) {
            want_check = true;
        } else if (!strcmp(a, "--force-resume")) {
            force = true;
        } else if (!strcmp(a, "--stage") && i + 1 < argc) {
            stage = argv[++i];
        } else if (!strcmp(a, "--vocab") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 3 || v > 10000000) {
                fprintf(stderr, "avsr-worker: --vocab %s: expected an integer >= 3\n", argv[i]);
                return 2;
            }
            vocab = (int)v;
        } else if (a[0] != '-' && !recipe) {
            recipe = a;
        } else {
            fprintf(stderr, "avsr-worker: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!recipe || (want_summary && want_check) || (vocab && !want_summary)) {
        fprintf(stderr, "avsr-worker: %s\n",
                !recipe ? "no recipe given" : "--summary, --check and --vocab do not combine "
                                              "that way");
        usage(stderr);
        return 2;
    }
    if (want_summary)
        return summary(recipe, vocab);
    if (want_check)
        return check(recipe);
    return train(recipe, stage, force);
}
