/* bn_sync: the BatchNorm synchronisation hook over a communicator.
 *
 * avsr_op_batch_norm (runtime/op_norm.h) calls the context's
 * avsr_allreduce_fn with its per-channel sums, sums of squares and frame
 * count in forward, and the sums of dy and dy * x_hat in backward; this hook
 * sums them over all ranks (avsr_comm_allreduce_sum_f64), so every rank
 * normalises with the statistics of the global batch (SyncBatchNorm) and
 * results do not depend on the number of ranks (DESIGN.md section 7).
 *
 *     avsr_dist_install_bn_sync(ctx, comm);
 *
 * Every rank must then run the same batch-norm layers in the same order
 * (each one is a collective), also a rank whose batch is empty. */
#ifndef AVSR_DIST_BN_SYNC_H
#define AVSR_DIST_BN_SYNC_H

#include "ctx.h"
#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An avsr_allreduce_fn: user is the avsr_comm *. */
int avsr_dist_bn_allreduce(void *user, double *buf, int n, avsr_error *err);

/* avsr_ctx_set_bn_sync(ctx, avsr_dist_bn_allreduce, c); c == NULL removes
 * the hook (statistics of this rank only). */
void avsr_dist_install_bn_sync(avsr_ctx *ctx, avsr_comm *c);

#ifdef __cplusplus
}
#endif

#endif
