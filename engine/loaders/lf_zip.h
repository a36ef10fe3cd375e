/* lf_zip: reads the directory and entries of a zip archive held in memory
 * (the container of PyTorch checkpoints). Stored and deflated entries,
 * ZIP64; no encryption, no multi-disk. CRCs are not checked (entries are
 * usually mmap'd and read lazily).
 *
 * Threading: lookups are thread-safe; lf_zip_data inflates a deflated entry
 * on first use and so must not race with itself. Ownership: the image is
 * borrowed and must outlive the object; names and data are borrowed from it. */
#ifndef LF_ZIP_H
#define LF_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_zip lf_zip_t;

/* Parses the directory. Returns 0 and *out (caller owns), or LF_EFORMAT,
 * LF_EUNSUPPORTED (compression other than stored/deflate) or LF_ENOMEM with a
 * message in errstr; *out untouched on failure. */
int lf_zip_parse(lf_zip_t **out, const void *buf, size_t len, char *errstr, size_t errlen);
void lf_zip_destroy(lf_zip_t **self_p);

/* Entries are sorted by name. */
size_t lf_zip_count(const lf_zip_t *self);
const char *lf_zip_name(const lf_zip_t *self, size_t i);
/* Uncompressed size of entry i. */
uint64_t lf_zip_size(const lf_zip_t *self, size_t i);
/* Index of the entry called name: 0, or LF_ENOTFOUND. */
int lf_zip_find(const lf_zip_t *self, const char *name, size_t *index);
/* Entry i's uncompressed bytes (borrowed): 0, or LF_EFORMAT (corrupt
 * deflate data), LF_ENOMEM, LF_EINVAL (bad index). */
int lf_zip_data(lf_zip_t *self, size_t i, const unsigned char **data, char *errstr, size_t errlen);

#endif
