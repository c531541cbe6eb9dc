/* comm_mpi: what MPI-calling code of the dist layer shares (includes
 * <mpi.h>, so only sources compiled with MPI_CFLAGS may include it; the
 * public interface is comm.h).
 *
 * AVSR_MPI(err, call) evaluates an MPI call once; on failure it records
 * "<file>:<line>: <call text> failed: <MPI_Error_string>" in err and
 * evaluates to -1, else to 0:
 *
 *     if (AVSR_MPI(err, MPI_Barrier(comm)) < 0)
 *         return -1;
 *
 * Errors come back as return codes only on communicators that have
 * MPI_ERRORS_RETURN (the comm's own duplicate of MPI_COMM_WORLD does). */
#ifndef AVSR_DIST_COMM_MPI_H
#define AVSR_DIST_COMM_MPI_H

#include <mpi.h>

#include "comm.h"

int avsr_mpi_check(int rc, const char *call, const char *file, int line, avsr_error *err);

#define AVSR_MPI(err, call) avsr_mpi_check((call), #call, __FILE__, __LINE__, (err))

/* The MPI communicator behind an MPI avsr_comm (NULL for other backends). */
MPI_Comm *avsr_comm_mpi_handle(avsr_comm *c);

#endif
