/* lf_origin: where each resident weight came from — the file and the tensor
 * in it that lf_weights_upload converted into a pool tensor — so that the
 * tensor's load-time bytes can be read again instead of kept in a copy (a
 * LoRA patch restores the layers it touched from the model's own files).
 *
 * lf_keymap records every upload of a loader whose lf_keymap_t.origin is
 * set. lf_origin_open maps the files again once the load is done (each
 * must still be the one loaded: the same device, inode, size and
 * modification time, else LF_EIO) and keeps them mapped, so that a file
 * renamed over or deleted later still reads as loaded; the mapping costs
 * no memory until read, and the pages of a read are let go at the next
 * read or lf_origin_release. A read gives the bytes exactly as the upload
 * stored them: straight from the mapping when the file holds the tensor in
 * the pool's type, else converted as the upload converted them (same
 * rounding). A file rewritten in place changes what it reads.
 *
 * Threading: one thread at a time. Ownership: lf_origin_new hands the
 * caller the object; tensors are identified by their pool descriptors
 * (borrowed, compared by address: the pool must outlive the records). */
#ifndef LF_ORIGIN_H
#define LF_ORIGIN_H

#include <stddef.h>

#include "lf_tensor.h"

typedef struct lf_origin lf_origin_t;

/* Caller owns; NULL when out of memory. */
lf_origin_t *lf_origin_new(void);
/* Unmaps the files. Takes NULL. */
void lf_origin_destroy(lf_origin_t **self_p);

/* Records that pool tensor t holds tensor name of the file at path (the
 * path as opened, stat'ed now). 0, LF_ENOMEM, LF_EIO (path does not stat). */
int lf_origin_add(lf_origin_t *self, const lf_tensor_t *t, const char *path, const char *name);
/* Maps every recorded file (see above). 0, LF_EIO naming a file gone or
 * changed, or lf_weights_open's error. */
int lf_origin_open(lf_origin_t *self, char *err, size_t errlen);
/* Whether t was recorded. */
int lf_origin_has(const lf_origin_t *self, const lf_tensor_t *t);
/* t's load-time bytes (lf_tensor_nbytes(t) of t's type): *bytes is
 * borrowed until the next read or lf_origin_release. LF_ENOTFOUND (not
 * recorded), LF_EIO (the file is gone or changed since the load: err names
 * it), LF_EFORMAT (the tensor is no longer in it), LF_ENOMEM. */
int lf_origin_read(lf_origin_t *self, const lf_tensor_t *t, const void **bytes, char *err,
                   size_t errlen);
/* Lets the pages of the last read go (the files stay mapped). */
void lf_origin_release(lf_origin_t *self);
/* Tensors recorded. */
size_t lf_origin_count(const lf_origin_t *self);

#endif
