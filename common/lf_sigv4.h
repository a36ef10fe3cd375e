/* lf_sigv4: AWS Signature Version 4 for one HTTP request (S3 and every
 * S3-compatible store: MinIO, Ceph RGW, R2, moto).
 *
 * The three steps of the specification, each exposed so tests can compare
 * them with AWS's published test suite and with botocore's signer:
 *   1. the canonical request: method, canonical URI, canonical query,
 *      canonical headers (lower-case names, sorted, values trimmed with
 *      inner runs of blanks folded to one), signed header list, payload hash;
 *   2. the string to sign: "AWS4-HMAC-SHA256", the date, the credential scope
 *      (date/region/service/aws4_request), hex SHA-256 of step 1;
 *   3. the signature: HMAC-SHA256 chain "AWS4"+secret → date → region →
 *      service → "aws4_request", then over the string to sign.
 * lf_sigv4_sign returns the Authorization header value.
 *
 * The caller supplies the path already URI-encoded (lf_sigv4_uri_encode:
 * S3 encodes each key once and keeps '/'), the canonical query (sorted
 * name=value pairs, encoded; "" for none) and every header to sign, host
 * and x-amz-date included. Pure: no clock, no I/O; thread-safe. */
#ifndef LF_SIGV4_H
#define LF_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;  /* any case; signed lower-cased */
    const char *value;
} lf_sigv4_header_t;

/* One request to sign; everything borrowed for the call. */
typedef struct {
    const char *method;            /* "GET", "PUT", ... */
    const char *path;              /* canonical URI, already encoded ("/" for none) */
    const char *query;             /* canonical query string, or NULL / "" */
    const lf_sigv4_header_t *headers;
    size_t n_headers;              /* at most 32; names unique (case-insensitively) */
    const char *payload_sha256;    /* 64 hex digits, or "UNSIGNED-PAYLOAD" */
    const char *access_key, *secret_key;
    const char *region;            /* "us-east-1" */
    const char *service;           /* "s3" */
    const char *amz_date;          /* ISO 8601 basic, UTC: "20150830T123600Z" */
} lf_sigv4_request_t;

/* Step 1 into buf (NUL-terminated). LF_EINVAL: a missing field, a bad
 * date, too many headers; LF_ETOOBIG: buf too small. */
int lf_sigv4_canonical(const lf_sigv4_request_t *r, char *buf, size_t size);
/* Step 2 into buf. Same errors. */
int lf_sigv4_string_to_sign(const lf_sigv4_request_t *r, char *buf, size_t size);
/* Step 3: the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=..."). Same errors. */
int lf_sigv4_sign(const lf_sigv4_request_t *r, char *auth, size_t size);

/* RFC 3986 encoding as SigV4 wants it: unreserved characters (A-Z a-z 0-9
 * - . _ ~) stay, every other byte becomes %XX (upper-case hex); '/' stays
 * when keep_slash. LF_ETOOBIG when out is too small. */
int lf_sigv4_uri_encode(const char *s, bool keep_slash, char *out, size_t size);

/* "YYYYMMDDTHHMMSSZ" of a Unix time (UTC) into out (>= 17 bytes). */
void lf_sigv4_amz_date(long long unix_s, char out[17]);

#endif
