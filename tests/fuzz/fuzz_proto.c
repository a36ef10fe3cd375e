/* libFuzzer target for the wire codec.
 *
 * Any bytes: lf_msg_decode (and the params/caps blob decoders) return a code
 * or a message, never crash, hang or leak. A message that decodes must encode
 * again, and that encoding must be a fixed point: decode + encode gives the
 * same bytes, so nothing the decoder accepts is lost or invented. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lf_codec_stats_t st = {0};
    lf_msg_t m = {0};
    if (lf_msg_decode(data, size, &m, &st) == 0) {
        uint8_t *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        LF_ASSERT(lf_msg_encode(&m, &a, &alen) == 0);
        lf_msg_t m2 = {0};
        LF_ASSERT(lf_msg_decode(a, alen, &m2, &st) == 0);
        LF_ASSERT(m2.type == m.type);
        LF_ASSERT(lf_msg_encode(&m2, &b, &blen) == 0);
        LF_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
        lf_msg_clear(&m2);
        free(a);
        free(b);
    }
    lf_msg_clear(&m);
    LF_ASSERT(st.ok + st.malformed + st.truncated + st.oversized + st.unknown + st.version +
                  st.missing >= 1);

    lf_job_params_t p = {0};
    if (lf_params_decode(data, size, &p) == 0) {
        uint8_t *a = NULL;
        size_t alen = 0;
        LF_ASSERT(lf_params_encode(&p, &a, &alen) == 0);
        free(a);
    }
    lf_params_clear(&p);

    lf_worker_caps_t c = {0};
    if (lf_caps_decode(data, size, &c) == 0) {
        uint8_t *a = NULL;
        size_t alen = 0;
        LF_ASSERT(lf_caps_encode(&c, &a, &alen) == 0);
        free(a);
    }
    lf_caps_clear(&c);
    return 0;
}
