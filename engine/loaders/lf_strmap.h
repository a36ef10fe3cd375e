/* lf_strmap: a small open-addressing hash map from strings to int64 values,
 * used by the tokenizer for its vocabulary, merge ranks and word cache.
 * Keys are copied. Not thread-safe; one owner. */
#ifndef LF_STRMAP_H
#define LF_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_strmap lf_strmap_t;

/* Caller owns the new map, or NULL when out of memory. */
lf_strmap_t *lf_strmap_new(void);
void lf_strmap_destroy(lf_strmap_t **self_p);
/* Inserts or replaces key (len bytes, need not be NUL-terminated).
 * Returns 0 or LF_ENOMEM. */
int lf_strmap_put(lf_strmap_t *self, const char *key, size_t len, int64_t value);
/* Looks key up; returns 1 and *value when found, else 0. */
int lf_strmap_get(const lf_strmap_t *self, const char *key, size_t len, int64_t *value);
size_t lf_strmap_size(const lf_strmap_t *self);

#endif
