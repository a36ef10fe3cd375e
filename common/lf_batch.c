/* lf_batch: see lf_batch.h. */
#include "lf_batch.h"

#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_extranet.h"
#include "lf_proto.h"
#include "lf_sha256.h"

static int s_set(const char *s) { return s && *s; }

int lf_batch_key(const lf_job_params_t *p, char key[LF_BATCH_KEY_LEN + 1]) {
    if (!p || !key) return LF_EINVAL;
    key[0] = '\0';
    if (s_set(p->init_image) || s_set(p->mask) || p->enable_hr || s_set(p->refiner_checkpoint) ||
        s_set(p->adetailer) || (s_set(p->mode) && strcmp(p->mode, "txt2img")) ||
        (s_set(p->cache_kind) && strcmp(p->cache_kind, "none")))
        return 0;
    char set[1024];
    int rc = lf_extranet_lora_set(p, set, sizeof set);
    if (rc) return rc;
    /* A view: the struct's pointers borrowed, the per-job fields cleared. */
    lf_job_params_t v = *p;
    v.prompt = v.negative_prompt = v.prompt_original = v.enhance_instruction = v.enhance_error = NULL;
    v.enhance_prompt = false;
    v.seed = 0;
    v.batch_size = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if ((rc = lf_params_encode(&v, &buf, &len)) != 0) return rc;
    lf_sha256_t h;
    uint8_t d[32];
    lf_sha256_init(&h);
    lf_sha256_update(&h, buf, len);
    lf_sha256_update(&h, "\0", 1);
    lf_sha256_update(&h, set, strlen(set));
    lf_sha256_final(&h, d);
    free(buf);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < LF_BATCH_KEY_LEN / 2; i++) {
        key[2 * i] = hex[d[i] >> 4];
        key[2 * i + 1] = hex[d[i] & 15];
    }
    key[LF_BATCH_KEY_LEN] = '\0';
    return 0;
}
