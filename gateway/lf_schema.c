/* lf_schema: OpenAPI job schemas and GET /v1/params from the parameter
 * table. */
#include "lf_schema.h"

#include <string.h>

#include "lf_params.h"
#include "lf_validate.h"

/* The native envelope (lf_validate.c reads these fields), as /v1/params rows. */
static json_t *s_envelope(void) {
    return json_pack("[{s:s,s:s,s:s,s:[sss],s:s,s:s},{s:s,s:s,s:s,s:i,s:s},{s:s,s:s,s:s,s:i,s:i,s:s}]",
                     "name", "priority", "kind", "enum", "type", "string", "enum", "high", "normal", "low", "default",
                     "normal", "description", "queue priority",
                     "name", "idempotency_key", "kind", "string", "type", "string", "maxLength", LF_V_NAME_MAX,
                     "description", "a resubmit with the same key returns the first job (also the Idempotency-Key header)",
                     "name", "ttl_s", "kind", "integer", "type", "integer", "minimum", 1, "maximum", LF_V_TTL_MAX,
                     "description", "drop the job if it is still queued after this many seconds");
}

/* Merges the properties in add into schema.properties (schema borrowed). */
static int s_merge(json_t *schema, json_t *add) {
    json_t *props = json_object_get(schema, "properties");
    if (!json_is_object(props) || !add) {
        json_decref(add);
        return -1;
    }
    int rc = json_object_update(props, add);
    json_decref(add);
    return rc;
}

json_t *lf_schema_openapi(const char *embedded, size_t len) {
    json_t *doc = json_loadb(embedded, len, 0, NULL);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    if (!json_is_object(schemas) ||
        s_merge(json_object_get(schemas, "JobRequest"), lf_params_schema_properties(false)) ||
        s_merge(json_object_get(schemas, "A1111Txt2Img"), lf_params_schema_properties(true)) ||
        s_merge(json_object_get(schemas, "A1111Img2Img"), lf_params_schema_properties(true))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

json_t *lf_schema_params(void) {
    json_t *rows = lf_params_describe(), *env = s_envelope();
    if (!rows || !env) {
        json_decref(rows);
        json_decref(env);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "params", rows, "envelope", env);
}
