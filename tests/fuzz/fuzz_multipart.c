/* libFuzzer target for lf_multipart and the OpenAI edit mapping on arbitrary
 * bytes: the input is "CONTENT-TYPE\nBODY". Parsing never crashes, hangs or
 * leaks; every part it returns lies inside the body with a non-empty name;
 * the parts then go through lf_openai_map_form and lf_openai_map_job as an
 * edit does, which must succeed or fail cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_multipart.h"
#include "lf_openai_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || nl - data > 300) return 0;
    char ct[301];
    memcpy(ct, data, (size_t)(nl - data));
    ct[nl - data] = 0;
    const uint8_t *body = nl + 1;
    size_t len = size - (size_t)(body - data);
    lf_multipart_part_t parts[8];
    size_t n = 0;
    if (lf_multipart_parse(ct, body, len, parts, 8, &n) != 0) return 0;
    LF_ASSERT(n <= 8);
    for (size_t i = 0; i < n; i++) {
        LF_ASSERT(parts[i].name[0] && memchr(parts[i].name, 0, sizeof parts[i].name));
        LF_ASSERT(memchr(parts[i].filename, 0, sizeof parts[i].filename));
        LF_ASSERT(parts[i].data >= body && parts[i].data + parts[i].len <= body + len);
    }
    json_t *fields = NULL;
    const lf_multipart_part_t *image = NULL, *mask = NULL;
    lf_verr_t e;
    if (lf_openai_map_form(parts, n, &fields, &image, &mask, &e) != 0) return 0;
    LF_ASSERT(json_is_object(fields));
    lf_openai_ctx_t ctx = {.default_model = "lf-diagnostic", .random_seed = 1, .init_image = "up-1",
                           .image_width = 64, .image_height = 64};
    lf_job_request_t r;
    lf_openai_format_t fmt;
    if (lf_openai_map_job(fields, &ctx, &r, &fmt, &e) == 0) {
        LF_ASSERT(!strcmp(r.params.init_image, "up-1"));
        lf_job_request_clear(&r);
    } else {
        LF_ASSERT(e.status >= 400 && e.status < 600);
        json_decref(lf_openai_map_error(e.status, e.code, e.field, e.message));
    }
    json_decref(fields);
    return 0;
}
