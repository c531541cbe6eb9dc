/* test_toy: the pieces compose — a conv net trained with CTC, AdamW and a
 * cosine schedule on the synthetic token stream of examples/toy.h learns it.
 * Bounds: with the defaults (300 steps) the mean CTC loss per utterance
 * starts above 10 (about 25 for the random network) and must end below 2.0, and the greedy
 * token error rate on 64 held-out utterances must be below 10%; an untrained
 * or broken network stays near 100%. */
#include <stdio.h>
#include <unistd.h>

#include "safetensors.h"
#include "tap.h"
#include "toy.h"

int main(void)
{
    avsr_toy_opts o;
    avsr_toy_defaults(&o);
    char path[] = "/tmp/avsr_test_toy_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    o.save = path;
    avsr_toy_result r;
    avsr_error err = {0};
    if (!tap_ok(avsr_toy_run(&o, &r, &err) == 0, "toy training runs: %s", err.msg))
        return tap_done();
    tap_diag("loss %.3f -> %.3f, token error %.2f%%, %.2f s", r.first_loss, r.final_loss,
             100 * r.token_error, r.seconds);
    tap_ok(r.first_loss > 10.0, "initial loss %.2f is that of an untrained network (> 10)",
           r.first_loss);
    tap_ok(r.final_loss < 2.0, "final loss %.3f < 2.0", r.final_loss);
    tap_ok(r.token_error < 0.10, "held-out token error %.2f%% < 10%%", 100 * r.token_error);
    avsr_st *st = avsr_st_open(path, &err);
    avsr_st_tensor t;
    tap_ok(st && avsr_st_count(st) == 6 && avsr_st_find(st, "ctc.weight", &t) == 0 &&
               t.shape[0] == o.tokens + 1 && t.shape[1] == o.hidden,
           "trained weights saved as safetensors");
    avsr_st_close(st);
    unlink(path);
    /* determinism: the same seed gives the same result */
    avsr_toy_result r2;
    o.save = NULL;
    o.steps = 40;
    avsr_toy_run(&o, &r, &err);
    avsr_toy_run(&o, &r2, &err);
    tap_ok(r.final_loss == r2.final_loss && r.token_error == r2.token_error,
           "two runs with the same seed give identical losses");
    return tap_done();
}
