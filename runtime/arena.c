/* arena: chained bump allocator (see arena.h). */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_BLOCK ((size_t)1 << 20)

struct block {
    struct block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
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

static struct block *block_new(size_t size)
{
    struct block *b = aligned_alloc(ARENA_ALIGN, header_size() + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
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
        free(b);
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
        struct block *b = a->head;
        while (b) {
            struct block *n = b->next;
            free(b);
            b = n;
        }
        a->head = block_new(want);
        a->capacity = a->head ? want : 0;
    }
    if (a->head)
        a->head->used = 0;
    a->used_total = 0;
}

size_t avsr_arena_used(const avsr_arena *a) { return a->used_total; }
size_t avsr_arena_peak(const avsr_arena *a) { return a->peak; }
size_t avsr_arena_capacity(const avsr_arena *a) { return a->capacity; }
