/* lf_blobstore_impl: the backend table shared by lf_blobstore.c (the
 * facade and the directory backend) and lf_blobstore_s3.c. Not public. */
#ifndef LF_BLOBSTORE_IMPL_H
#define LF_BLOBSTORE_IMPL_H

#include "lf_blobstore.h"

/* One backend: a static const table (style of the kernel backends). Each
 * function gets the backend's own state and the caller's err buffer. */
typedef struct {
    const char *name;
    int (*put)(void *st, const char *name, const void *data, size_t len, const char *mime, char *err,
               size_t errlen);
    int (*get)(void *st, const char *name, uint8_t **data, size_t *len, char *err, size_t errlen);
    int (*del)(void *st, const char *name, char *err, size_t errlen);
    int (*check)(void *st, char *err, size_t errlen);
    void (*destroy)(void *st);
} lf__blob_backend_t;

/* The S3 backend: state for bucket/prefix (from "s3://bucket/prefix") and
 * the options; NULL with err. *desc (caller's buffer) receives the
 * description. */
void *lf__blob_s3_new(const char *bucket, const char *prefix, const lf_blobstore_opts_t *o,
                      char *desc, size_t desclen, char *err, size_t errlen);
extern const lf__blob_backend_t lf__blob_s3;

#endif
