/* bn_sync: BatchNorm statistics all-reduce hook (bn_sync.h). */
#include "bn_sync.h"

int avsr_dist_bn_allreduce(void *user, double *buf, int n, avsr_error *err)
{
    if (avsr_comm_allreduce_sum_f64(user, buf, n, err) < 0) {
        avsr_error_prefix(err, "batch_norm sync: ");
        return -1;
    }
    return 0;
}

void avsr_dist_install_bn_sync(avsr_ctx *ctx, avsr_comm *c)
{
    avsr_ctx_set_bn_sync(ctx, c ? avsr_dist_bn_allreduce : NULL, c);
}
