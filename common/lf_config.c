/* lf_config: the settings table and its parser (see lf_config.h).
 *
 * Loading works on a private copy that starts from the defaults; each source
 * (environment, then argv) writes through the table's offsets, so a setting
 * needs one table row and one struct field, nothing else. */
#include "lf_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

#define B LF_CFG_BROKER
#define W LF_CFG_WORKER
#define G LF_CFG_GATEWAY
#define E LF_CFG_ENGINE
#define O(field) offsetof(lf_config_t, field)
#define STR(flag, alias, env, field, def, progs, help) \
    {flag, alias, env, LF_CFG_STR, O(field), def, 0, 0, progs, help}
#define INT(flag, alias, env, field, def, min, max, progs, help) \
    {flag, alias, env, LF_CFG_INT, O(field), def, min, max, progs, help}
#define LIST(flag, alias, env, field, def, progs, help) \
    {flag, alias, env, LF_CFG_LIST, O(field), def, 0, 0, progs, help}

static const lf_config_opt_t s_opts[] = {
    {"log-level", NULL, "LF_LOG_LEVEL", LF_CFG_LOGLEVEL, O(log_level), "info", 0, 0, LF_CFG_ALL,
     "debug | info | warn | error"},
    {"help", NULL, NULL, LF_CFG_BOOL, O(help), NULL, 0, 0, LF_CFG_ALL, "print this help"},
    {"version", NULL, NULL, LF_CFG_BOOL, O(version), NULL, 0, 0, LF_CFG_ALL, "print the version"},

    LIST("frontend", "broker-frontend", "LF_BROKER_FRONTEND", frontend, "tcp://127.0.0.1:5555",
         B | G, "broker endpoint(s) for gateways (ROUTER), comma-separated"),
    LIST("backend", "broker-backend", "LF_BROKER_BACKEND", backend, "tcp://127.0.0.1:5556", B | W,
         "broker endpoint(s) for workers (ROUTER), comma-separated"),
    LIST("events", "broker-events", "LF_BROKER_EVENTS", events, "tcp://127.0.0.1:5557", B | G,
         "broker event endpoint(s) (PUB), comma-separated"),

    STR("redis-host", NULL, "LF_REDIS_HOST", redis_host, "127.0.0.1", B | G, "Redis host"),
    INT("redis-port", NULL, "LF_REDIS_PORT", redis_port, "6379", 1, 65535, B | G, "Redis port"),
    STR("redis-prefix", NULL, "LF_REDIS_PREFIX", redis_prefix, "lf:", B | G,
        "prefix of every Redis key (two farms may share a Redis)"),
    INT("redis-timeout-ms", NULL, "LF_REDIS_TIMEOUT_MS", redis_timeout_ms, "2000", 1, 600000, B | G,
        "Redis connect/command timeout, ms"),

    INT("heartbeat-ms", NULL, "LF_HEARTBEAT_MS", heartbeat_ms, "1000", 10, 600000, B | W | G,
        "heartbeat interval, ms"),
    INT("heartbeat-liveness", NULL, "LF_HEARTBEAT_LIVENESS", heartbeat_liveness, "3", 1, 1000,
        B | W | G, "missed heartbeats before a peer counts as dead"),
    INT("reconnect-min-ms", NULL, "LF_RECONNECT_MIN_MS", reconnect_min_ms, "250", 1, 600000, W | G,
        "first reconnect delay, ms (doubles up to the max)"),
    INT("reconnect-max-ms", NULL, "LF_RECONNECT_MAX_MS", reconnect_max_ms, "8000", 1, 3600000, W | G,
        "longest reconnect delay, ms"),

    STR("broker-id", NULL, "LF_BROKER_ID", broker_id, NULL, B, "broker name (default host-pid)"),
    INT("lease-ms", NULL, "LF_LEASE_MS", lease_ms, "10000", 100, 86400000, B,
        "lease of a running job, renewed by worker heartbeats, ms"),
    INT("max-attempts", NULL, "LF_MAX_ATTEMPTS", max_attempts, "3", 1, 100, B,
        "default attempts per job before it is dead-lettered"),
    INT("queue-ttl-s", NULL, "LF_QUEUE_TTL_S", queue_ttl_s, "3600", 0, 31536000, B,
        "default time a job may wait in the queue, s (0 = forever)"),
    INT("result-ttl-s", NULL, "LF_RESULT_TTL_S", result_ttl_s, "86400", 1, 31536000, B,
        "how long result images are kept, s"),
    INT("history-max", NULL, "LF_HISTORY_MAX", history_max, "1000", 0, 100000000, B,
        "finished jobs kept in history (0 = no count limit)"),
    INT("history-max-age-s", NULL, "LF_HISTORY_MAX_AGE_S", history_max_age_s, "604800", 0,
        315360000, B, "drop finished jobs older than this, s (0 = no age limit)"),
    INT("idem-ttl-s", NULL, "LF_IDEM_TTL_S", idem_ttl_s, "86400", 1, 31536000, B,
        "how long an idempotency key maps to its job, s"),
    INT("reap-interval-ms", NULL, "LF_REAP_INTERVAL_MS", reap_interval_ms, "500", 10, 600000, B,
        "how often expired leases and queue TTLs are swept, ms"),
    INT("preview-ttl-s", NULL, "LF_PREVIEW_TTL_S", preview_ttl_s, "60", 1, 86400, B,
        "how long a job's latest preview is kept, s"),

    /* Where result images live (lf_blobstore.h; docs/operations.md). */
    STR("image-store", NULL, "LF_IMAGE_STORE", image_store, "redis", B | G,
        "where result images live: redis | dir:/path | s3://bucket[/prefix]"),
    STR("s3-endpoint", NULL, "LF_S3_ENDPOINT", s3_endpoint, NULL, B | G,
        "S3-compatible endpoint, http(s)://host[:port], path-style (unset = AWS)"),
    STR("s3-region", NULL, "LF_S3_REGION", s3_region, "us-east-1", B | G, "S3 region (signing scope)"),
    STR("s3-access-key-id", NULL, "LF_S3_ACCESS_KEY_ID", s3_access_key, NULL, B | G, "S3 access key id"),
    STR("s3-secret-access-key", NULL, "LF_S3_SECRET_ACCESS_KEY", s3_secret_key, NULL, B | G,
        "S3 secret access key (prefer the variable: flags show in ps)"),
    INT("image-store-timeout-ms", NULL, "LF_IMAGE_STORE_TIMEOUT_MS", image_store_timeout_ms, "5000", 100,
        600000, B | G, "longest one image store request may take, ms"),

    STR("http-host", NULL, "LF_HTTP_HOST", http_host, "127.0.0.1", G,
        "address the HTTP server listens on (0.0.0.0 = all)"),
    INT("http-port", "port", "LF_HTTP_PORT", http_port, "7860", 1, 65535, G, "HTTP port"),
    INT("http-threads", NULL, "LF_HTTP_THREADS", http_threads, "4", 1, 256, G, "HTTP threads"),
    INT("http-max-body", NULL, "LF_HTTP_MAX_BODY", http_max_body, "50331648", 1024, 1073741824, G,
        "largest request body, bytes"),
    LIST("api-keys", NULL, "LF_API_KEYS", api_keys, NULL, G,
         "accepted API keys, comma-separated (empty = no authentication)"),
    INT("rate-limit", NULL, "LF_RATE_LIMIT", rate_limit, "0", 0, 1000000, G,
        "requests per second per key or client (0 = off)"),
    INT("rate-burst", NULL, "LF_RATE_BURST", rate_burst, "20", 0, 1000000, G,
        "requests allowed above the rate in a burst"),
    INT("request-timeout-ms", NULL, "LF_REQUEST_TIMEOUT_MS", request_timeout_ms, "10000", 10,
        600000, G, "wait for a broker reply before answering 503, ms"),
    INT("sync-timeout-s", NULL, "LF_SYNC_TIMEOUT_S", sync_timeout_s, "600", 1, 86400, G,
        "longest a blocking (A1111) request waits for its job, s"),
    INT("upload-ttl-s", NULL, "LF_UPLOAD_TTL_S", upload_ttl_s, "3600", 1, 31536000, G,
        "how long uploaded images are kept, s"),
    INT("upload-max-bytes", NULL, "LF_UPLOAD_MAX_BYTES", upload_max_bytes, "33554432", 1024,
        1073741824, G, "largest upload, bytes"),
    INT("upload-max-pixels", NULL, "LF_UPLOAD_MAX_PIXELS", upload_max_pixels, "16777216", 1,
        1000000000000, G, "largest upload, width*height"),
    STR("web-root", NULL, "LF_WEB_ROOT", web_root, NULL, G, "folder of the web UI (static files)"),
    STR("cors-origin", NULL, "LF_CORS_ORIGIN", cors_origin, NULL, G,
        "Access-Control-Allow-Origin value (unset = no CORS)"),
    STR("default-model", NULL, "LF_DEFAULT_MODEL", default_model, "lf-diagnostic", G | E,
        "model used when a request names none"),

    /* Prompt enhancement (gateway/lf_enhance.h; docs/api.md, "Prompt enhancement"). */
    STR("enhance-url", NULL, "LF_ENHANCE_URL", enhance_url, NULL, G,
        "LLM chat endpoint that rewrites prompts of jobs with enhance_prompt (unset = off): "
        "http://host:port/v1/chat/completions (openai) or http://host:11434/api/chat (ollama); "
        "a base URL gets the API's path"),
    STR("enhance-api", NULL, "LF_ENHANCE_API", enhance_api, "openai", G,
        "API of the enhancement endpoint: openai (OpenAI-compatible) | ollama"),
    STR("enhance-model", NULL, "LF_ENHANCE_MODEL", enhance_model, NULL, G,
        "model name sent to the enhancement endpoint"),
    STR("enhance-system-prompt", NULL, "LF_ENHANCE_SYSTEM_PROMPT", enhance_system, NULL, G,
        "system prompt of the enhancement (unset = the built-in one)"),
    STR("enhance-api-key", NULL, "LF_ENHANCE_API_KEY", enhance_api_key, NULL, G,
        "Bearer key for the enhancement endpoint (prefer the variable: flags show in ps)"),
    INT("enhance-timeout-ms", NULL, "LF_ENHANCE_TIMEOUT_MS", enhance_timeout_ms, "20000", 100, 600000, G,
        "longest one prompt enhancement may take, ms (then the original prompt is used)"),
    INT("enhance-max-chars", NULL, "LF_ENHANCE_MAX_CHARS", enhance_max_chars, "2000", 1, 32768, G,
        "longest enhanced prompt accepted, characters (a longer reply keeps the original prompt)"),
    INT("enhance-threads", NULL, "LF_ENHANCE_THREADS", enhance_threads, "4", 1, 64, G,
        "prompt enhancements that run at once (more wait their turn)"),

    STR("worker-id", NULL, "LF_WORKER_ID", worker_id, NULL, W, "worker id (default host-pid-random)"),
    STR("worker-device", "device", "LF_WORKER_DEVICE", worker_device, "cpu", W | E,
        "compute device: cpu | cuda | cuda:N (also LF_DEVICE)"),
    INT("max-pixels", NULL, "LF_MAX_PIXELS", max_pixels, "4194304", 0, 1000000000000, W | E,
        "largest width*height accepted (0 = no limit)"),
    STR("models-dir", NULL, "LF_MODELS_DIR", models_dir, NULL, W | E, "folder of model files"),
    INT("drain-ms", "worker-drain-ms", "LF_WORKER_DRAIN_MS", worker_drain_ms, "5000", 0, 600000, W,
        "on stop, how long to wait for a broker to take the last result, ms"),
    STR("preload", NULL, "LF_WORKER_PRELOAD", worker_preload, NULL, W,
        "model to load at start, before the worker offers itself: with a ready file, ready means "
        "this model is resident (a model that cannot load stops the worker)"),
    STR("ready-file", NULL, "LF_WORKER_READY_FILE", worker_ready_file, NULL, W,
        "file that exists while the worker is ready (a broker answered, models listed, not "
        "draining), rewritten every heartbeat; for exec probes"),
    INT("step-delay-max-ms", NULL, "LF_STEP_DELAY_MAX_MS", step_delay_max_ms, "1000", 0, 600000, W,
        "cap on the diagnostic model's per-step delay, ms"),
    INT("preview-every", NULL, "LF_PREVIEW_EVERY", preview_every, "4", 0, 10000, W | E,
        "send a preview every N steps (0 = off)"),
    INT("model-memory-mb", NULL, "LF_MODEL_MEMORY_MB", model_memory_mb, "0", 0, 100000000, W | E,
        "MiB of weights a worker keeps resident: an SDXL refiner stays next to its base while both fit; a model "
        "larger than this is not offered (0 = no limit)"),
    STR("precision", NULL, "LF_PRECISION", precision, "f32", W | E,
        "compute precision of jobs that name none: f32 (the reference) | bf16 | auto (bf16 matrix "
        "products where the CPU has AVX512_BF16, else f32)"),
    STR("weight-pack", NULL, "LF_WEIGHT_PACK", weight_pack, "auto", W | E,
        "where the CPU keeps weights pre-packed for bf16 products: file (in --pack-dir, pages given back per "
        "layer) | memory | off | auto (file where --pack-dir is on a disk, else memory within "
        "--model-memory-mb, else off)"),
    STR("pack-dir", NULL, "LF_PACK_DIR", pack_dir, NULL, W | E,
        "folder on a disk (not tmpfs) for the pre-packed weights' unlinked file (default $TMPDIR, else /var/tmp)"),
    INT("threads", NULL, "LF_THREADS", threads, "0", 0, 1024, W,
        "CPU compute threads (0 = the cores of this worker's slice: usable cores / local-workers)"),
    INT("local-workers", NULL, "LF_LOCAL_WORKERS", local_workers, "1", 1, 1024, W,
        "CPU workers sharing this machine: each pins its threads to its own slice of the cores"),
    INT("local-index", NULL, "LF_LOCAL_INDEX", local_index, "0", 0, 1023, W,
        "this worker's place among the local workers (0-based): which slice of the cores it takes"),
    INT("pin-threads", NULL, "LF_PIN_THREADS", pin_threads, "0", 0, 1, W,
        "1 = pin each compute thread (the pool's and oneDNN's OpenMP team's) to its own core of this "
        "worker's cores; 0 = threads move freely within them (docs/PERFORMANCE.md: measured no faster)"),
    INT("batch-max", NULL, "LF_BATCH_MAX", batch_max, "1", 1, 16, W | E,
        "compatible queued jobs (same model, size, steps, sampler...; prompts and seeds may differ) a "
        "worker takes at once and runs as one batch, each job's bytes as alone (> 1 also runs every job in "
        "the CPU's batch-invariant mode, LF_CPU_PER_IMAGE=1; 1 = one at a time: on a CPU batching measured "
        "no faster, docs/PERFORMANCE.md)"),

    STR("curve-cert", NULL, "LF_CURVE_CERT", curve_cert, NULL, B | W | G,
        "this program's CURVE certificate file (secret); unset = plain TCP"),
    STR("curve-server-cert", NULL, "LF_CURVE_SERVER_CERT", curve_server_cert, NULL, W | G,
        "the broker's public CURVE certificate file"),
    STR("curve-clients-dir", NULL, "LF_CURVE_CLIENTS_DIR", curve_clients_dir, NULL, B,
        "folder of allowed client public certificates (broker)"),
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

const lf_config_opt_t *lf_config_options(size_t *n) {
    if (n) *n = S_NOPTS;
    return s_opts;
}

/* ---------------------------------------------------------------- lists */

void lf_strlist_clear(lf_strlist_t *l) {
    if (!l) return;
    for (size_t i = 0; l->items && i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int lf_config_split_list(const char *s, lf_strlist_t *out) {
    if (!s || !out) return LF_EINVAL;
    lf_strlist_t l = {0};
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '\0') {
        *out = l;
        return 0;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        const char *stop = end ? end : p + strlen(p);
        const char *a = p, *b = stop;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a == b) {
            lf_strlist_clear(&l);
            return LF_EINVAL;
        }
        char **ni = realloc(l.items, (l.n + 1) * sizeof *ni);
        if (!ni) {
            lf_strlist_clear(&l);
            return LF_ENOMEM;
        }
        l.items = ni;
        if (!(l.items[l.n] = strndup(a, (size_t)(b - a)))) {
            lf_strlist_clear(&l);
            return LF_ENOMEM;
        }
        l.n++;
        if (!end) break;
        p = end + 1;
    }
    *out = l;
    return 0;
}

/* --------------------------------------------------------------- values */

static void s_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int s_parse_bool(const char *v, bool *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0) return *out = false, 0;
    }
    return LF_EINVAL;
}

static int s_parse_level(const char *v, lf_log_level_t *out) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(v, names[i]) == 0) return *out = (lf_log_level_t)i, 0;
    if (strcasecmp(v, "warning") == 0) return *out = LF_LOG_WARN, 0;
    return LF_EINVAL;
}

/* Stores text v into the field of o; `src` names the source for messages. */
static int s_set(lf_config_t *c, const lf_config_opt_t *o, const char *v, const char *src, char *err,
                 size_t errlen) {
    void *field = (char *)c + o->offset;
    switch (o->type) {
    case LF_CFG_STR: {
        char *s = strdup(v);
        if (!s) return LF_ENOMEM;
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case LF_CFG_INT: {
        char *end = NULL;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || isspace((unsigned char)*v) || errno || !end || *end || x < o->min || x > o->max) {
            s_fail(err, errlen, "%s: '%s' is not a whole number in %lld..%lld", src, v,
                   (long long)o->min, (long long)o->max);
            return LF_EINVAL;
        }
        *(int64_t *)field = x;
        return 0;
    }
    case LF_CFG_BOOL:
        if (s_parse_bool(v, (bool *)field) != 0) {
            s_fail(err, errlen, "%s: '%s' is not yes/no, true/false, on/off or 1/0", src, v);
            return LF_EINVAL;
        }
        return 0;
    case LF_CFG_LIST: {
        lf_strlist_t l = {0};
        int r = lf_config_split_list(v, &l);
        if (r == LF_EINVAL) s_fail(err, errlen, "%s: '%s' has an empty item", src, v);
        if (r) return r;
        lf_strlist_clear((lf_strlist_t *)field);
        *(lf_strlist_t *)field = l;
        return 0;
    }
    case LF_CFG_LOGLEVEL:
        if (s_parse_level(v, (lf_log_level_t *)field) != 0) {
            s_fail(err, errlen, "%s: '%s' is not debug, info, warn or error", src, v);
            return LF_EINVAL;
        }
        return 0;
    }
    return LF_EINVAL;
}

static const lf_config_opt_t *s_find_flag(const char *name, size_t len) {
    for (size_t i = 0; i < S_NOPTS; i++) {
        const lf_config_opt_t *o = &s_opts[i];
        if ((strlen(o->flag) == len && strncmp(o->flag, name, len) == 0) ||
            (o->alias && strlen(o->alias) == len && strncmp(o->alias, name, len) == 0))
            return o;
    }
    return NULL;
}

/* Endpoint lists must look like ZeroMQ endpoints: at least one, "scheme://rest". */
static int s_check(const lf_config_t *c, char *err, size_t errlen) {
    const struct {
        const lf_strlist_t *l;
        const char *name;
    } lists[] = {{&c->frontend, "frontend (LF_BROKER_FRONTEND)"},
                 {&c->backend, "backend (LF_BROKER_BACKEND)"},
                 {&c->events, "events (LF_BROKER_EVENTS)"}};
    for (size_t i = 0; i < 3; i++) {
        if (lists[i].l->n == 0) {
            s_fail(err, errlen, "%s: no endpoint given", lists[i].name);
            return LF_EINVAL;
        }
        for (size_t k = 0; k < lists[i].l->n; k++) {
            const char *e = lists[i].l->items[k], *sep = strstr(e, "://");
            if (!sep || sep == e || sep[3] == '\0') {
                s_fail(err, errlen, "%s: '%s' is not an endpoint like tcp://host:port", lists[i].name, e);
                return LF_EINVAL;
            }
        }
    }
    if (c->reconnect_max_ms < c->reconnect_min_ms) {
        s_fail(err, errlen, "reconnect-max-ms (%lld) is below reconnect-min-ms (%lld)",
               (long long)c->reconnect_max_ms, (long long)c->reconnect_min_ms);
        return LF_EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------------ load */

void lf_config_clear(lf_config_t *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < S_NOPTS; i++) {
        void *field = (char *)cfg + s_opts[i].offset;
        if (s_opts[i].type == LF_CFG_STR) free(*(char **)field);
        else if (s_opts[i].type == LF_CFG_LIST) lf_strlist_clear((lf_strlist_t *)field);
    }
    free((void *)cfg->args);
    memset(cfg, 0, sizeof *cfg);
}

/* Shorter environment names some settings also answer to: {alias, the
 * table's name}. The table's name wins when both are set. */
static const char *const s_env_alias[][2] = {
    {"LF_DEVICE", "LF_WORKER_DEVICE"}, /* what users of one-GPU tools expect */
};

/* The value of NAME in envp (first occurrence), or NULL when absent or empty. */
static const char *s_env_get(char *const *envp, const char *name) {
    size_t nl = strlen(name);
    for (char *const *e = envp; *e; e++) {
        if (strncmp(*e, name, nl) != 0 || (*e)[nl] != '=') continue;
        return (*e)[nl + 1] ? *e + nl + 1 : NULL; /* empty = unset */
    }
    return NULL;
}

static int s_load(lf_config_t *c, char *const *envp, int argc, char *const *argv, char *err,
                  size_t errlen) {
    char src[160];
    int r;
    for (size_t i = 0; i < S_NOPTS; i++) {
        if (!s_opts[i].def) continue;
        snprintf(src, sizeof src, "default of --%s", s_opts[i].flag);
        if ((r = s_set(c, &s_opts[i], s_opts[i].def, src, err, errlen)) != 0) return r;
    }
    /* Environment: only the table's names matter (and the short aliases of
     * s_env_alias, used when the table's name is unset). A name present
     * twice: the first wins, as with getenv(). */
    for (size_t i = 0; envp && i < S_NOPTS; i++) {
        const char *name = s_opts[i].env;
        if (!name) continue;
        const char *v = s_env_get(envp, name);
        for (size_t k = 0; !v && k < sizeof s_env_alias / sizeof s_env_alias[0]; k++)
            if (!strcmp(s_env_alias[k][1], name) && (v = s_env_get(envp, s_env_alias[k][0]))) name = s_env_alias[k][0];
        if (v) {
            snprintf(src, sizeof src, "%s", name);
            if ((r = s_set(c, &s_opts[i], v, src, err, errlen)) != 0) return r;
        }
    }
    char **args = NULL;
    size_t n_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!a) break;
        bool positional = a[0] != '-' || a[1] == '\0'; /* "-" alone is an argument */
        if (strcmp(a, "--") == 0) {
            for (int k = i + 1; k < argc && argv[k]; k++) {
                char **na = realloc(args, (n_args + 1) * sizeof *na);
                if (!na) return free(args), LF_ENOMEM;
                args = na;
                args[n_args++] = argv[k];
            }
            break;
        }
        if (positional) {
            char **na = realloc(args, (n_args + 1) * sizeof *na);
            if (!na) return free(args), LF_ENOMEM;
            args = na;
            args[n_args++] = (char *)a;
            continue;
        }
        if (strcmp(a, "-h") == 0) {
            c->help = true;
            continue;
        }
        if (a[1] != '-') {
            s_fail(err, errlen, "unknown option '%s' (options are --long; see --help)", a);
            free(args);
            return LF_EINVAL;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const lf_config_opt_t *o = s_find_flag(name, len);
        if (!o) {
            s_fail(err, errlen, "unknown option '--%.*s' (see --help)", (int)len, name);
            free(args);
            return LF_EINVAL;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && o->type == LF_CFG_BOOL) v = "true";
        if (!v) {
            if (i + 1 >= argc || !argv[i + 1]) {
                s_fail(err, errlen, "--%s needs a value", o->flag);
                free(args);
                return LF_EINVAL;
            }
            v = argv[++i];
        }
        snprintf(src, sizeof src, "--%s", o->flag);
        if ((r = s_set(c, o, v, src, err, errlen)) != 0) {
            free(args);
            return r;
        }
    }
    c->args = args;
    c->n_args = n_args;
    return s_check(c, err, errlen);
}

int lf_config_load(lf_config_t *out, char *const *envp, int argc, char *const *argv, char *err,
                   size_t errlen) {
    if (!out || argc < 0 || (argc > 0 && !argv)) return LF_EINVAL;
    if (err && errlen) err[0] = '\0';
    lf_config_t c = {0};
    int r = s_load(&c, envp, argc, argv, err, errlen);
    if (r) {
        if (r == LF_ENOMEM) s_fail(err, errlen, "out of memory");
        lf_config_clear(&c);
        return r;
    }
    *out = c;
    return 0;
}

/* ----------------------------------------------------------------- usage */

void lf_config_usage(FILE *f, const char *program, unsigned programs) {
    fprintf(f, "usage: %s [--option value | --option=value]...\n\n", program ? program : "lightfarm");
    fprintf(f, "Each option can also be set by its environment variable; flags win.\n\n");
    for (size_t i = 0; i < S_NOPTS; i++) {
        const lf_config_opt_t *o = &s_opts[i];
        if (!(o->programs & programs)) continue;
        char flag[48];
        snprintf(flag, sizeof flag, "--%s", o->flag);
        fprintf(f, "  %-22s %-24s %s", flag, o->env ? o->env : "", o->help);
        if (o->def) fprintf(f, " [%s]", o->def);
        if (o->alias) fprintf(f, " (also --%s)", o->alias);
        fputc('\n', f);
    }
}
