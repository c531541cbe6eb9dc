/* pack_h5: HDF5 helpers shared by the pack writer and reader (internal).
 *
 * AVSR_H5(err, call) evaluates an HDF5 call once; a negative result (the
 * failure value of herr_t, hid_t and htri_t alike) records the call text,
 * file, line and HDF5's innermost error description in err. The value is
 * returned, so `hid_t d = AVSR_H5(err, H5Dopen2(...)); if (d < 0) goto fail;`
 * reads naturally. HDF5's own printing of its error stack is switched off
 * (avsr_h5_quiet) so errors reach the user only through our messages. */
#ifndef AVSR_PACK_H5_H
#define AVSR_PACK_H5_H

#include <hdf5.h>
#include <stdint.h>

#include "error.h"

#define AVSR_H5(err, call) avsr_h5_check((int64_t)(call), (err), #call, __FILE__, __LINE__)

int64_t avsr_h5_check(int64_t v, avsr_error *err, const char *call, const char *file, int line);

/* Innermost message of the current thread's HDF5 error stack ("" if none),
 * copied into buf. */
void avsr_h5_last_error(char *buf, size_t cap);

/* Turn off HDF5's automatic error-stack printing for the calling thread. */
void avsr_h5_quiet(void);

/* File access property list for read-only opens without file locking
 * (H5Pset_file_locking where available, else HDF5_USE_FILE_LOCKING=FALSE). */
hid_t avsr_h5_fapl_nolock(avsr_error *err);

/* The compound type of avsr_pack_row with the struct's member offsets:
 * little-endian int64 members for the file (for_file), native for memory. */
hid_t avsr_h5_row_type(int for_file, avsr_error *err);

/* Close an id if it is valid (>= 0); for cleanup paths. */
void avsr_h5_close_any(hid_t id);

#endif
