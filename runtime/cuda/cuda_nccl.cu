/* cuda_nccl: the NCCL communicator (see cuda_backend.h). The unique id is
 * made by rank 0 and broadcast over MPI by the dist layer; this file knows
 * nothing of MPI. */
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"

static_assert(sizeof(ncclUniqueId) == AVSR_NCCL_ID_BYTES,
              "AVSR_NCCL_ID_BYTES must equal sizeof(ncclUniqueId)");

struct avsr_nccl_comm {
    ncclComm_t c;
    int nranks, rank;
};

extern "C" int avsr_nccl_get_unique_id(avsr_nccl_id *id, avsr_error *err)
{
    ncclUniqueId u;
    if (!id)
        return avsr_error_set(err, AVSR_ERR_INVALID, "nccl_get_unique_id: NULL id");
    if (AVSR_NCCL(err, ncclGetUniqueId(&u)) < 0)
        return -1;
    memcpy(id->bytes, &u, sizeof u);
    return 0;
}

extern "C" avsr_nccl_comm *avsr_nccl_init_rank(const avsr_nccl_id *id, int nranks, int rank,
                                               avsr_error *err)
{
    if (!id) {
        avsr_error_set(err, AVSR_ERR_INVALID, "nccl_init_rank: NULL id");
        return NULL;
    }
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        avsr_error_set(err, AVSR_ERR_INVALID, "nccl_init_rank: rank %d of %d ranks", rank,
                       nranks);
        return NULL;
    }
    avsr_nccl_comm *c = (avsr_nccl_comm *)calloc(1, sizeof *c);
    if (!c) {
        AVSR_NOMEM(err, sizeof *c);
        return NULL;
    }
    ncclUniqueId u;
    memcpy(&u, id->bytes, sizeof u);
    if (AVSR_NCCL(err, ncclCommInitRank(&c->c, nranks, u, rank)) < 0) {
        avsr_error_prefix(err, "nccl_init_rank(rank %d of %d): ", rank, nranks);
        free(c);
        return NULL;
    }
    c->nranks = nranks;
    c->rank = rank;
    return c;
}

extern "C" int avsr_nccl_allreduce_sum(avsr_nccl_comm *c, const float *d_send, float *d_recv,
                                       int64_t n, void *stream, avsr_error *err)
{
    if (!c)
        return avsr_error_set(err, AVSR_ERR_INVALID, "nccl_allreduce_sum: NULL communicator");
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "nccl_allreduce_sum: negative element count %lld", (long long)n);
    if (n == 0)
        return 0;
    if (!d_send || !d_recv)
        return avsr_error_set(err, AVSR_ERR_INVALID, "nccl_allreduce_sum: NULL buffer");
    return AVSR_NCCL(err, ncclAllReduce(d_send, d_recv, (size_t)n, ncclFloat, ncclSum, c->c,
                                        (cudaStream_t)stream));
}

extern "C" void avsr_nccl_destroy(avsr_nccl_comm *c)
{
    if (!c)
        return;
    ncclCommDestroy(c->c);
    free(c);
}
