/* lf_multipart: a multipart/form-data body split into its parts (RFC 7578),
 * for the routes that take forms (POST /v1/images/edits).
 *
 * Pure: it reads the Content-Type header's boundary and the body bytes and
 * knows nothing of sockets, so tests feed it bytes. Thread-safe. Ownership:
 * a part's name and filename are copied into the part; its data points into
 * the caller's body (borrowed: valid while the body is). */
#ifndef LF_MULTIPART_H
#define LF_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LF_MULTIPART_NAME_MAX 64  /* longest part name kept (longer: LF_EINVAL) */
#define LF_MULTIPART_FILE_MAX 128 /* longer file names are cut */

/* One part. A field has has_filename false; a file part true. */
typedef struct {
    char name[LF_MULTIPART_NAME_MAX + 1];
    char filename[LF_MULTIPART_FILE_MAX + 1];
    bool has_filename;
    const uint8_t *data; /* borrowed: points into the body */
    size_t len;
} lf_multipart_part_t;

/* Is this Content-Type multipart/form-data (any case, parameters allowed)? */
bool lf_multipart_is_form(const char *content_type);

/* Split body into at most max parts. content_type is the request's header
 * (it carries the boundary). Returns 0 and sets *n, or LF_EINVAL (no
 * boundary, a part without a name, a truncated body, no closing delimiter)
 * or LF_ELIMIT (more than max parts). On failure *n and parts are left
 * as they were. */
int lf_multipart_parse(const char *content_type, const uint8_t *body, size_t len,
                       lf_multipart_part_t *parts, size_t max, size_t *n);

#endif
