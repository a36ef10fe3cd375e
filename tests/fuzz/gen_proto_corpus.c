/* gen_proto_corpus: writes the seed corpus for fuzz_proto.
 *
 * Usage: gen_proto_corpus DIR   (tests/fuzz/corpus/proto in the source tree)
 * One file per message type (every field set), a few minimal messages, and
 * the params and caps blobs the store keeps. Deterministic output. */
#include <stdio.h>
#include <stdlib.h>

#include "lf_proto.h"
#include "proto_samples.h"

static int s_write(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    int rc = 0;
    uint8_t *buf;
    size_t len;
    char name[64];
    for (int t = LF_MSG_NONE + 1; t < LF_MSG__COUNT; t++) {
        lf_msg_t m;
        if (lf_test_sample_msg(t, &m) || lf_msg_encode(&m, &buf, &len)) return 1;
        snprintf(name, sizeof name, "full-%s.msgpack", lf_msg_type_name(t));
        rc |= s_write(argv[1], name, buf, len);
        free(buf);
        if (t == LF_MSG_SUBMIT) {
            if (lf_params_encode(&m.params, &buf, &len)) return 1;
            rc |= s_write(argv[1], "blob-params.msgpack", buf, len);
            free(buf);
        }
        if (t == LF_MSG_READY) {
            if (lf_caps_encode(&m.caps, &buf, &len)) return 1;
            rc |= s_write(argv[1], "blob-caps.msgpack", buf, len);
            free(buf);
        }
        lf_msg_clear(&m);
    }
    const lf_msg_t minimal[] = {
        {.type = LF_MSG_HEARTBEAT},
        {.type = LF_MSG_DISCONNECT},
        {.type = LF_MSG_CANCEL, .job_id = "j"},
        {.type = LF_MSG_EVENT, .job_id = "j", .event = LF_EV_PROGRESS, .step = 1, .steps = 2},
    };
    for (size_t i = 0; i < sizeof minimal / sizeof minimal[0]; i++) {
        if (lf_msg_encode(&minimal[i], &buf, &len)) return 1;
        snprintf(name, sizeof name, "min-%s.msgpack", lf_msg_type_name(minimal[i].type));
        rc |= s_write(argv[1], name, buf, len);
        free(buf);
    }
    return rc;
}
