/* lightfarm-broker: settings (lf_config: LF_* variables and --flags), logging,
 * and the broker's reactor (lf_broker.h) until SIGTERM/SIGINT.
 *
 * CURVE: LF_CURVE_CERT (--curve-cert) is the broker's certificate with its
 * secret key, LF_CURVE_CLIENTS_DIR (--curve-clients-dir) the folder of
 * allowed client public certificates. LF_CURVE_SECRET / LF_CURVE_ALLOW are
 * accepted as older spellings of the two. */
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_blobstore.h"
#include "lf_broker.h"
#include "lf_config.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_proto.h"

#ifndef LF_VERSION_STRING
#define LF_VERSION_STRING "0"
#endif

extern char **environ;

/* "a,b,c" from a list; caller frees. */
static char *s_join(const lf_strlist_t *l) {
    size_t n = 1;
    for (size_t i = 0; i < l->n; i++) n += strlen(l->items[i]) + 1;
    char *s = calloc(1, n);
    if (!s) return NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (i) strcat(s, ",");
        strcat(s, l->items[i]);
    }
    return s;
}

static const char *s_env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int main(int argc, char **argv) {
    lf_config_t cfg = {0};
    char err[512];
    if (lf_config_load(&cfg, environ, argc, argv, err, sizeof err)) {
        fprintf(stderr, "lightfarm-broker: %s\n", err);
        lf_config_usage(stderr, "lightfarm-broker", LF_CFG_BROKER);
        return 2;
    }
    if (cfg.help || cfg.version) {
        if (cfg.help) lf_config_usage(stdout, "lightfarm-broker", LF_CFG_BROKER);
        else printf("lightfarm-broker %s (protocol %d)\n", LF_VERSION_STRING, LF_PROTO_VERSION);
        lf_config_clear(&cfg);
        return 0;
    }
    if (cfg.n_args) {
        fprintf(stderr, "lightfarm-broker: unexpected argument '%s'\n", cfg.args[0]);
        lf_config_clear(&cfg);
        return 2;
    }
    lf_log_init("broker", cfg.log_level);
    /* czmq's handler turns SIGINT/SIGTERM into zsys_interrupted, which ends
     * the zloop; the broker then says goodbye to its workers and exits. */
    zsys_init();
    zsys_handler_reset();
    zsys_catch_interrupts();

    char *fe = s_join(&cfg.frontend), *be = s_join(&cfg.backend), *ev = s_join(&cfg.events);
    const char *starve = s_env("LF_SCHED_STARVE_MS");
    const char *grace = s_env("LF_UNRUNNABLE_GRACE_S"); /* seconds; 0 or negative: never */
    lf_broker_opts_t o = {
        .id = cfg.broker_id,
        .frontend = fe,
        .backend = be,
        .events = ev,
        .redis = {.host = cfg.redis_host, .port = (int)cfg.redis_port,
                  .prefix = cfg.redis_prefix, .timeout_ms = (int)cfg.redis_timeout_ms},
        .limits = {.lease_ms = (uint32_t)cfg.lease_ms,
                   .max_attempts = (uint32_t)cfg.max_attempts,
                   .queue_ttl_s = (uint32_t)cfg.queue_ttl_s,
                   .idem_ttl_s = (uint32_t)cfg.idem_ttl_s,
                   .result_ttl_s = (uint32_t)cfg.result_ttl_s,
                   .history_max = cfg.history_max ? (uint32_t)cfg.history_max : UINT32_MAX,
                   .history_max_age_s = cfg.history_max_age_s ? (uint32_t)cfg.history_max_age_s
                                                              : UINT32_MAX / 1000,
                   .preview_ttl_s = (uint32_t)cfg.preview_ttl_s},
        .heartbeat_ms = (int)cfg.heartbeat_ms,
        .liveness = (int)cfg.heartbeat_liveness,
        .starve_ms = starve ? atoll(starve) : 0,
        .reap_ms = (int)cfg.reap_interval_ms,
        .unrunnable_grace_ms = !grace ? 0 : atof(grace) > 0 ? (int64_t)(atof(grace) * 1000) : -1,
        .curve_secret = cfg.curve_cert ? cfg.curve_cert : s_env("LF_CURVE_SECRET"),
        .curve_allow = cfg.curve_clients_dir ? cfg.curve_clients_dir : s_env("LF_CURVE_ALLOW"),
    };
    /* Result images outside Redis (LF_IMAGE_STORE): the store is ours, the
     * broker's lf_store borrows it. */
    lf_blobstore_t *blobs = NULL;
    int rc = 1;
    if (!lf_blobstore_spec_is_redis(cfg.image_store)) {
        lf_blobstore_opts_t bo = {.spec = cfg.image_store, .endpoint = cfg.s3_endpoint,
                                  .region = cfg.s3_region, .access_key = cfg.s3_access_key,
                                  .secret_key = cfg.s3_secret_key,
                                  .timeout_ms = (int)cfg.image_store_timeout_ms};
        blobs = lf_blobstore_new(&bo, err, sizeof err);
        if (!blobs) {
            lf_error("cannot start: %s", err);
            free(fe), free(be), free(ev);
            lf_config_clear(&cfg);
            return 1;
        }
        char berr[512];
        if (lf_blobstore_check(blobs, berr, sizeof berr))
            lf_warn("%s (jobs that finish now fail until the store answers)", berr);
        else
            lf_info("images go to %s", lf_blobstore_describe(blobs));
        o.redis.blobs = blobs;
    }
    if (fe && be && ev) {
        /* Redis may not be up yet, restarting, or still loading a large AOF
         * (the store reports all three as "redis ..."): keep trying with
         * backoff, quietly after the first complaint of each kind, until it
         * is ready or we are told to stop. */
        lf_broker_t *b = NULL;
        int delay_ms = 100;
        bool warned = false, said_loading = false;
        while (!zsys_interrupted) {
            b = lf_broker_new(&o, err, sizeof err);
            if (b || !strstr(err, "redis")) break;
            bool loading = strstr(err, "loading") != NULL;
            if (!warned || (loading && !said_loading)) lf_warn("waiting for redis: %s", err);
            warned = true;
            said_loading = said_loading || loading;
            zclock_sleep(delay_ms);
            delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
        }
        if (b && warned) lf_info("redis is ready");
        if (b) {
            lf_broker_run(b, NULL);
            lf_broker_stats_t st;
            lf_broker_stats(b, &st);
            lf_info("stopping: %" PRIu64 " submitted, %" PRIu64 " assigned, %" PRIu64
                    " done, %" PRIu64 " failed, %" PRIu64 " requeued",
                    st.submitted, st.assigned, st.completed, st.failed, st.requeued);
            lf_info("queue wait at assignment (ms buckets <1 <5 <10 <50 <100 <500 <1000 "
                    ">=1000): %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                    " %" PRIu64 " %" PRIu64 " %" PRIu64,
                    st.wait_hist[0], st.wait_hist[1], st.wait_hist[2], st.wait_hist[3],
                    st.wait_hist[4], st.wait_hist[5], st.wait_hist[6], st.wait_hist[7]);
            lf_info("handlers over 20 ms: %" PRIu64 " (longest %lld ms)", st.slow_handlers,
                    (long long)st.slowest_handler_ms);
            lf_broker_destroy(&b);
            rc = 0;
        } else {
            lf_error("cannot start: %s", err);
        }
    }
    free(fe), free(be), free(ev);
    lf_blobstore_destroy(&blobs);
    lf_config_clear(&cfg);
    return rc;
}
