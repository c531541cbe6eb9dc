/* arena: chained bump allocator (see arena.h).
 *
 * Blocks of ARENA_MAP_MIN bytes or more are mapped with mmap. When a reset
 * replaces several blocks by one of the peak size, the mapped block the
 * step used most is grown with mremap instead of mapping a new one: its pages, touched by
 * the steps before, stay in place, so only the added part is new memory.
 * (A fresh block of a few GB costs the kernel about a second of page
 * faults and page clearing the first time a step fills it, which a training
 * run would otherwise pay again after every step that set a new peak.) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mremap */
#endif
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_BLOCK ((size_t)1 << 20)
#define ARENA_MAP_MIN ((size_t)32 << 20)

struct block {
    struct block *next;
    size_t size;   /* usable bytes after the header */
    size_t used;
    size_t mapped; /* bytes mapped with mmap (header included); 0: aligned_alloc */
    /* data follows, aligned */
};

struct avsr_arena {
    struct block *head;   /* current block (most recent) */
    size_t used_total;    /* bytes handed out since reset (incl. padding) */
    size_t peak;
    size_t capacity;
};

static size_t header_size(void)
{
    return (sizeof(struct block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static size_t page_round(size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t p = pg > 0 ? (size_t)pg : 4096;
    return (n + p - 1) / p * p;
}

static struct block *block_new(size_t size)
{
    struct block *b;
    size_t mapped = 0;
    if (header_size() + size >= ARENA_MAP_MIN) {
        mapped = page_round(header_size() + size);
        void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        b = p; /* page aligned */
    } else {
        b = aligned_alloc(ARENA_ALIGN, header_size() + size);
        if (!b)
            return NULL;
    }
    b->next = NULL;
    b->size = size;
    b->used = 0;
    b->mapped = mapped;
    return b;
}

static void block_free(struct block *b)
{
    if (b->mapped)
        munmap(b, b->mapped);
    else
        free(b);
}

/* One block of `size` usable bytes in place of the chain at head: the
 * mapped block with the most bytes in use grown with mremap when there is
 * one, else a new block. NULL when out of memory (the chain is freed either way). */
static struct block *chain_replace(struct block *head, size_t size)
{
    struct block *keep = NULL;
#ifdef MREMAP_MAYMOVE
    /* the block this step used most: an older block that overflowed, whose
     * pages were touched, rather than the new one it overflowed into */
    for (struct block *b = head; b; b = b->next)
        if (b->mapped && (!keep || b->used > keep->used))
            keep = b;
    if (keep && header_size() + size < ARENA_MAP_MIN)
        keep = NULL;
#endif
    for (struct block *b = head; b;) {
        struct block *n = b->next;
        if (b != keep)
            block_free(b);
        b = n;
    }
#ifdef MREMAP_MAYMOVE
    if (keep) {
        size_t mapped = page_round(header_size() + size);
        void *p = mremap(keep, keep->mapped, mapped, MREMAP_MAYMOVE);
        if (p != MAP_FAILED) {
            struct block *b = p;
            b->next = NULL;
            b->size = size;
            b->used = 0;
            b->mapped = mapped;
            return b;
        }
        munmap(keep, keep->mapped);
    }
#endif
    return block_new(size);
}

avsr_arena *avsr_arena_create(size_t initial_bytes)
{
    avsr_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (initial_bytes) {
        a->head = block_new((initial_bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1));
        if (!a->head) {
            free(a);
            return NULL;
        }
        a->capacity = a->head->size;
    }
    return a;
}

void avsr_arena_destroy(avsr_arena *a)
{
    if (!a)
        return;
    struct block *b = a->head;
    while (b) {
        struct block *n = b->next;
        block_free(b);
        b = n;
    }
    free(a);
}

void *avsr_arena_alloc(avsr_arena *a, size_t bytes)
{
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0)
        need = ARENA_ALIGN;
    struct block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t size = a->capacity > ARENA_MIN_BLOCK ? a->capacity : ARENA_MIN_BLOCK;
        if (size < need)
            size = need;
        struct block *nb = block_new(size);
        if (!nb)
            return NULL;
        nb->next = b;
        a->head = nb;
        a->capacity += size;
        b = nb;
    }
    void *p = (char *)b + header_size() + b->used;
    b->used += need;
    a->used_total += need;
    if (a->used_total > a->peak)
        a->peak = a->used_total;
    return p;
}

void *avsr_arena_calloc(avsr_arena *a, size_t bytes)
{
    void *p = avsr_arena_alloc(a, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void avsr_arena_reset(avsr_arena *a)
{
    if (a->head && a->head->next) {
        /* Several blocks were needed: replace them by one of the peak size. */
        size_t want = a->peak;
        a->head = chain_replace(a->head, want);
        a->capacity = a->head ? want : 0;
    }
    if (a->head)
        a->head->used = 0;
    a->used_total = 0;
}

size_t avsr_arena_used(const avsr_arena *a) { return a->used_total; }
size_t avsr_arena_peak(const avsr_arena *a) { return a->peak; }
size_t avsr_arena_capacity(const avsr_arena *a) { return a->capacity; }
