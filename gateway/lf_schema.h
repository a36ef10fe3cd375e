/* lf_schema: the documents the gateway generates from the parameter table
 * (lf_params.h) — the OpenAPI job schemas and GET /v1/params, which the web
 * UI builds its form from — so no range, default or value list is written
 * twice.
 *
 * Pure (jansson only), thread-safe. Every function returns a new reference
 * (caller owns) or NULL when out of memory or when `embedded` is not JSON. */
#ifndef LF_SCHEMA_H
#define LF_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

/* The OpenAPI document: the embedded gateway/openapi.json with the
 * generation parameters filled into components.schemas JobRequest (native
 * names, additionalProperties false), A1111Txt2Img and A1111Img2Img (the
 * rows A1111 carries at the top level). */
json_t *lf_schema_openapi(const char *embedded, size_t len);

/* GET /v1/params: {"params": [row...], "envelope": [row...]} — every table
 * row (lf_params_describe) and the native request's envelope fields
 * (priority, idempotency_key, ttl_s), in the same row shape. */
json_t *lf_schema_params(void);

#endif
