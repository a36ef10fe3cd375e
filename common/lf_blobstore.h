/* lf_blobstore: where result images live when they do not live in Redis —
 * a directory (a shared volume, a Kubernetes PVC) or an S3-compatible object
 * store (AWS S3, MinIO, Ceph RGW, R2; moto in the tests).
 *
 * The image store setting (LF_IMAGE_STORE, docs/operations.md) is one of
 *   redis                 the PNGs in Redis next to the job (the default; no
 *                         lf_blobstore at all: lf_store keeps the bytes in the
 *                         same atomic step that finishes the job)
 *   dir:/path             one file per image in /path (made if missing)
 *   s3://bucket[/prefix]  one object per image under prefix/ in bucket, over
 *                         HTTP(S) with AWS Signature V4 (lf_sigv4); the
 *                         endpoint (LF_S3_ENDPOINT, path-style URLs) or AWS's
 *                         https://bucket.s3.REGION.amazonaws.com
 * lf_store uses it (lf_store_opts_t.blobs) so the broker writes, the gateway
 * reads and retention deletes through one interface; Redis then keeps only
 * the name of each image (imgref:{id}:{i}) and a deletion schedule.
 *
 * Names are flat: [A-Za-z0-9._-], 1..200 characters, not starting with '.'.
 *
 * Threading: every call is thread-safe (the S3 backend uses one curl handle
 * per call; the directory backend only whole-file operations), so one
 * lf_blobstore_t serves every thread of a gateway. Errors: LF_ENOTFOUND (no
 * such image), LF_ECONN (store unreachable, timed out), LF_EAUTH (403:
 * credentials or permissions), LF_EIO (anything else); a sentence for humans
 * goes to the caller's err buffer (may be NULL) and names the store and the
 * object. This module is the only libcurl user. */
#ifndef LF_BLOBSTORE_H
#define LF_BLOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lf_blobstore lf_blobstore_t;

typedef struct {
    const char *spec;        /* "dir:/path" | "s3://bucket[/prefix]" */
    const char *endpoint;    /* S3: "http://host:port" (path-style); NULL = AWS */
    const char *region;      /* S3: default "us-east-1" */
    const char *access_key;  /* S3: required */
    const char *secret_key;  /* S3: required */
    int timeout_ms;          /* per request; default 10000 */
} lf_blobstore_opts_t;

/* True when spec means "keep images in Redis" (NULL, "", "redis"). */
bool lf_blobstore_spec_is_redis(const char *spec);

/* A store for opts->spec; NULL with a sentence in err (a bad spec, missing
 * S3 keys, a directory that cannot be made). Nothing is contacted: an
 * unreachable store shows in lf_blobstore_check and in each call. Caller
 * owns the result. */
lf_blobstore_t *lf_blobstore_new(const lf_blobstore_opts_t *opts, char *err, size_t errlen);
void lf_blobstore_destroy(lf_blobstore_t **self_p);

/* "dir:/data/images" or "s3://bucket/prefix at http://host:port" (borrowed). */
const char *lf_blobstore_describe(const lf_blobstore_t *self);

/* Store len bytes under name (replacing any). The object exists whole or
 * not at all (dir: written aside, then renamed). */
int lf_blobstore_put(lf_blobstore_t *self, const char *name, const void *data, size_t len,
                     const char *mime, char *err, size_t errlen);
/* Read an object; *data caller owns (free()). LF_ENOTFOUND when absent. */
int lf_blobstore_get(lf_blobstore_t *self, const char *name, uint8_t **data, size_t *len,
                     char *err, size_t errlen);
/* Delete an object; an absent one is not an error. */
int lf_blobstore_del(lf_blobstore_t *self, const char *name, char *err, size_t errlen);
/* Is the store usable now? dir: the folder exists and is writable; S3: the
 * bucket answers a signed HEAD. For health reports. */
int lf_blobstore_check(lf_blobstore_t *self, char *err, size_t errlen);

#endif
