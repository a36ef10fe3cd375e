/* libFuzzer target for the request validators (gateway/lf_validate.c) and
 * the parameter table they walk (common/lf_params.c).
 *
 * Any bytes: if they parse as JSON, lf_validate_job and lf_validate_a1111
 * (txt2img and img2img) return 0 or LF_EINVAL, never crash, hang or leak.
 * A refusal's message and field are valid UTF-8 (they are echoed to the
 * client as JSON strings); an accepted request's parameters pass the
 * table's own check and survive the msgpack codec unchanged. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_params.h"
#include "lf_proto.h"
#include "lf_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int rc, const lf_job_request_t *r, const lf_verr_t *e) {
    if (rc) {
        LF_ASSERT(rc == LF_EINVAL);
        json_t *m = json_string(e->message), *f = json_string(e->field);
        LF_ASSERT(m && f); /* echoed as JSON: must be UTF-8 */
        json_decref(m);
        json_decref(f);
        return;
    }
    LF_ASSERT(lf_params_check(&r->params, false, NULL) == 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    LF_ASSERT(lf_params_encode(&r->params, &buf, &len) == 0);
    lf_job_params_t q = {0};
    LF_ASSERT(lf_params_decode(buf, len, &q) == 0);
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    LF_ASSERT(lf_params_encode(&q, &buf2, &len2) == 0);
    LF_ASSERT(len == len2 && memcmp(buf, buf2, len) == 0);
    free(buf);
    free(buf2);
    lf_params_clear(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!body) return 0;
    const lf_validate_ctx_t ctx = {.default_model = "lf-diagnostic", .random_seed = 7, .option_model = NULL};
    for (int dialect = 0; dialect < 3; dialect++) {
        lf_job_request_t r;
        lf_verr_t e = {0};
        int rc = dialect == 0 ? lf_validate_job(body, &ctx, &r, &e) : lf_validate_a1111(body, dialect == 2, &ctx, &r, &e);
        s_check(rc, &r, &e);
        if (rc == 0) lf_job_request_clear(&r);
    }
    json_decref(body);
    return 0;
}
