/* train_compare: the comparisons the trainer's MPI tests make between two
 * runs (tests/test_train_*.sh).
 *
 *   train_compare bitwise A.safetensors B.safetensors
 *       every tensor of A and B has the same name, dtype, shape and bytes
 *       (metadata is not compared: it records e.g. the world size)
 *   train_compare params A.safetensors B.safetensors TOL
 *       same names and shapes, and max |a - b| over all float tensors
 *       <= TOL * max |a| (the largest parameter magnitude)
 *   train_compare losses A.jsonl B.jsonl RTOL N
 *       the first N "step" records of both metrics files have the same
 *       step numbers and losses with |a - b| <= RTOL * |a|
 *
 * Prints one line saying what it found; exit 0 when the comparison holds,
 * 1 when it does not, 2 on bad input. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static avsr_st *open_or_die(const char *path)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(path, &err);
    if (!st) {
        fprintf(stderr, "train_compare: %s\n", err.msg);
        exit(2);
    }
    return st;
}

static double load_f(const avsr_st_tensor *t, int64_t i)
{
    if (t->dtype == AVSR_F64) {
        double v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        return v;
    }
    float v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}

static int compare_st(const char *a, const char *b, bool bitwise, double tol)
{
    avsr_st *sa = open_or_die(a), *sb = open_or_die(b);
    int n = avsr_st_count(sa), bad = 0;
    double maxdiff = 0, maxmag = 0;
    const char *worst = "";
    if (n != avsr_st_count(sb)) {
        printf("tensor counts differ: %d vs %d\n", n, avsr_st_count(sb));
        return 1;
    }
    for (int i = 0; i < n && !bad; i++) {
        avsr_st_tensor x, y;
        avsr_st_get(sa, i, &x);
        if (avsr_st_find(sb, x.name, &y) < 0 || x.dtype != y.dtype || x.ndim != y.ndim ||
            x.numel != y.numel) {
            printf("tensor '%s' is missing or has another dtype/shape in %s\n", x.name, b);
            bad = 1;
            break;
        }
        if (bitwise) {
            if (memcmp(x.data, y.data, x.nbytes) != 0) {
                printf("tensor '%s' differs\n", x.name);
                bad = 1;
            }
            continue;
        }
        if (x.dtype != AVSR_F32 && x.dtype != AVSR_F64)
            continue;
        for (int64_t k = 0; k < x.numel; k++) {
            double u = load_f(&x, k), v = load_f(&y, k), d = fabs(u - v);
            if (!(d <= maxdiff)) {
                maxdiff = d;
                worst = x.name;
            }
            if (fabs(u) > maxmag)
                maxmag = fabs(u);
        }
    }
    if (!bad && bitwise)
        printf("%d tensors bitwise identical\n", n);
    if (!bad && !bitwise) {
        bad = !(maxdiff <= tol * maxmag);
        printf("%d tensors: max |diff| %.3g (in '%s'), max |param| %.3g, ratio %.3g (bound %.3g)\n",
               n, maxdiff, worst, maxmag, maxmag > 0 ? maxdiff / maxmag : 0.0, tol);
    }
    avsr_st_close(sa);
    avsr_st_close(sb);
    return bad;
}

static int step_losses(const char *path, double *loss, long *step, int n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "train_compare: cannot open %s\n", path);
        exit(2);
    }
    char line[8192];
    int k = 0;
    while (k < n && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (kind && !strcmp(kind, "step")) {
            step[k] = (long)json_integer_value(json_object_get(o, "step"));
            json_t *l = json_object_get(o, "loss");
            loss[k] = json_is_number(l) ? json_number_value(l) : NAN;
            k++;
        }
        json_decref(o);
    }
    fclose(f);
    return k;
}

static int compare_losses(const char *a, const char *b, double rtol, int n)
{
    double la[1024], lb[1024];
    long sa[1024], sb[1024];
    if (n < 1 || n > 1024)
        return 2;
    int ka = step_losses(a, la, sa, n), kb = step_losses(b, lb, sb, n);
    if (ka != n || kb != n) {
        printf("step records: %d in %s, %d in %s, %d wanted\n", ka, a, kb, b, n);
        return 1;
    }
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double r = fabs(la[i] - lb[i]) / fabs(la[i]);
        if (sa[i] != sb[i] || !(r <= rtol)) {
            printf("step %ld: loss %.9g vs %.9g (step %ld; rel %.3g, bound %.3g)\n", sa[i], la[i],
                   lb[i], sb[i], r, rtol);
            return 1;
        }
        worst = r > worst ? r : worst;
    }
    printf("%d steps: losses agree, worst relative difference %.3g (bound %.3g)\n", n, worst,
           rtol);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "bitwise"))
        return compare_st(argv[2], argv[3], true, 0);
    if (argc == 5 && !strcmp(argv[1], "params"))
        return compare_st(argv[2], argv[3], false, atof(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "losses"))
        return compare_losses(argv[2], argv[3], atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: train_compare bitwise|params|losses ...\n");
    return 2;
}
