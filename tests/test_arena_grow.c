/* test_arena_grow: when a step outgrows a large (mmap'ed) arena block, the
 * reset that replaces the chain by one block of the peak size keeps the
 * pages the earlier steps touched (runtime/arena.c grows the most used
 * block with mremap), so the next step does not fault them in again. The
 * page faults are counted with getrusage (ru_minflt). */
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include "arena.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

int main(void)
{
    const size_t big = 48 * MIB, pages = big / 4096;
    avsr_arena *a = avsr_arena_create(0);
    /* step 1: a block of 48 MiB, filled */
    char *p = avsr_arena_alloc(a, big);
    memset(p, 1, big);
    avsr_arena_reset(a);
    tap_ok(avsr_arena_capacity(a) == big, "one block of %zu bytes after the first step",
           avsr_arena_capacity(a));
    /* step 2: the block filled again, then 8 MiB more (a second block) */
    long f0 = minflt();
    p = avsr_arena_alloc(a, big);
    memset(p, 2, big);
    long f1 = minflt();
    tap_ok(f1 - f0 < (long)pages / 20, "step 2 reuses the pages of step 1 (%ld faults, %zu pages)",
           f1 - f0, pages);
    char *q = avsr_arena_alloc(a, 8 * MIB);
    memset(q, 3, 8 * MIB);
    size_t peak = avsr_arena_peak(a);
    tap_ok(peak >= big + 8 * MIB, "peak %zu covers both allocations", peak);
    avsr_arena_reset(a);
    tap_ok(avsr_arena_used(a) == 0 && avsr_arena_capacity(a) == peak,
           "reset after the overflow: one block of the peak size (%zu)", avsr_arena_capacity(a));
    /* step 3: the first 48 MiB were step 1's and 2's pages: few faults; the
     * rest is new memory */
    f0 = minflt();
    p = avsr_arena_alloc(a, big);
    memset(p, 4, big);
    f1 = minflt();
    tap_ok(f1 - f0 < (long)pages / 20,
           "step 3: the first %zu bytes fault %ld times (pages kept by the grown block)", big,
           f1 - f0);
    q = avsr_arena_alloc(a, peak - big);
    tap_ok(q && (uintptr_t)q % 64 == 0 && q >= p + big, "the rest of the block follows, aligned");
    memset(q, 5, peak - big);
    tap_ok(p[0] == 4 && p[big - 1] == 4 && q[0] == 5 && q[peak - big - 1] == 5,
           "the whole block is writable");
    tap_ok(avsr_arena_capacity(a) == peak, "step 3 fits in the block");
    avsr_arena_destroy(a);
    return tap_done();
}
