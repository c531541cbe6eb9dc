/* arena: the per-step activation allocator.
 *
 * A bump allocator: allocation is a pointer increment, everything is freed
 * at once by avsr_arena_reset() at the end of a step. When a step needs more
 * than the current block, further blocks are chained; the next reset replaces
 * them by one block of the high-water size, so from the second step on a
 * training loop makes no allocations at all. Large blocks are mapped with
 * mmap, and that replacement grows the block the step used most (mremap),
 * so the pages earlier steps touched are not faulted in again. Allocations
 * are 64-byte aligned (one cache line, one AVX-512 vector). */
#ifndef AVSR_ARENA_H
#define AVSR_ARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_arena avsr_arena;

/* initial_bytes may be 0 (the first step sizes the arena). */
avsr_arena *avsr_arena_create(size_t initial_bytes);
void avsr_arena_destroy(avsr_arena *a);

/* Uninitialised memory, 64-byte aligned; NULL only when the system is out of
 * memory. */
void *avsr_arena_alloc(avsr_arena *a, size_t bytes);
/* Zeroed memory. */
void *avsr_arena_calloc(avsr_arena *a, size_t bytes);

/* Free everything allocated since the last reset. */
void avsr_arena_reset(avsr_arena *a);

/* Bytes in use now, the high-water mark since creation, and the bytes the
 * arena holds from the system. */
size_t avsr_arena_used(const avsr_arena *a);
size_t avsr_arena_peak(const avsr_arena *a);
size_t avsr_arena_capacity(const avsr_arena *a);

#ifdef __cplusplus
}
#endif

#endif
