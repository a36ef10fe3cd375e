/* lf_arena: plans where activation buffers live in one block of memory.
 *
 * Buffers are registered with their size and lifetime (first and last step
 * that uses them, inclusive); lf_arena_plan gives each an offset so that
 * buffers alive at the same time never overlap, placing the largest first
 * into the best-fitting gap (greedy best-fit), and reports the peak: the
 * bytes the block needs. Planning happens once per graph, before running, so
 * nothing is allocated inside the sampling loop. Pure bookkeeping: no
 * memory is allocated for the buffers themselves. Not thread-safe. */
#ifndef LF_ARENA_H
#define LF_ARENA_H

#include <stddef.h>

typedef struct lf_arena lf_arena_t;

/* alignment: of every offset (power of two; 0 means 256). Caller owns;
 * NULL on out of memory. */
lf_arena_t *lf_arena_new(size_t alignment);
void lf_arena_destroy(lf_arena_t **arena_p);

/* Registers a buffer alive over steps [first, last]. Returns its id (>= 0)
 * or LF_EINVAL / LF_ENOMEM. Invalidates a previous plan. */
int lf_arena_add(lf_arena_t *arena, size_t size, int first, int last);
/* Assigns offsets. 0 or LF_ENOMEM. */
int lf_arena_plan(lf_arena_t *arena);
/* Offset of buffer id in the planned block. */
size_t lf_arena_offset(const lf_arena_t *arena, int id);
/* Bytes the planned block needs (0 before planning). */
size_t lf_arena_peak(const lf_arena_t *arena);
/* Sum of all sizes (what allocating every buffer separately would take). */
size_t lf_arena_total(const lf_arena_t *arena);
int lf_arena_count(const lf_arena_t *arena);
/* Forgets every buffer. */
void lf_arena_reset(lf_arena_t *arena);

#endif
