/* lf_config: settings of every lightfarm program, from the environment and
 * the command line.
 *
 * One table (lf_config_options()) lists every setting once: its --flag, its
 * LF_* environment variable, its type, default, the programs it concerns and
 * a help line. Precedence: built-in default < environment < command line.
 * Every binary accepts every known flag (a setting for another program is
 * parsed, validated and ignored, so one launch script may pass a common
 * set); unknown flags are errors. The usage text lists only the settings of
 * the program asking.
 *
 * Syntax: `--flag value` or `--flag=value`; boolean flags take no value
 * (`--flag`) or an explicit `--flag=yes|no|true|false|on|off|1|0`; `--` ends
 * the options; other arguments are collected as positional. An empty
 * environment variable counts as unset. Lists (endpoints, API keys) are
 * comma-separated; blanks around items are trimmed; empty items are errors.
 *
 * Pure: the environment and the arguments are passed in, nothing is read
 * from the process, nothing is printed except by lf_config_usage. Reentrant.
 * Ownership: an lf_config_t owns its strings and lists (lf_config_clear);
 * `args` points into the caller's argv (borrowed). */
#ifndef LF_CONFIG_H
#define LF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lf_log.h"

/* A list of owned strings. */
typedef struct {
    char **items;
    size_t n;
} lf_strlist_t;

/* Which programs a setting concerns (for the usage text). */
enum {
    LF_CFG_BROKER = 1u << 0,
    LF_CFG_WORKER = 1u << 1,
    LF_CFG_GATEWAY = 1u << 2,
    LF_CFG_ENGINE = 1u << 3,
    LF_CFG_ALL = 0xfu,
};

/* Every setting. Defaults in brackets; env variable and flag in the table in
 * lf_config.c (and docs via lf_config_usage). Times are in the unit their
 * name says; 0 means "off"/"no limit" where stated. */
typedef struct {
    /* --- every program */
    lf_log_level_t log_level;  /* [info] LF_LOG_LEVEL --log-level */
    bool help;                 /* --help / -h given */
    bool version;              /* --version given */
    char *const *args;         /* positional arguments (borrowed from argv) */
    size_t n_args;

    /* --- broker endpoints: brokers bind them, gateways/workers connect to every item */
    lf_strlist_t frontend;     /* [tcp://127.0.0.1:5555] LF_BROKER_FRONTEND: gateways' ROUTER */
    lf_strlist_t backend;      /* [tcp://127.0.0.1:5556] LF_BROKER_BACKEND: workers' ROUTER */
    lf_strlist_t events;       /* [tcp://127.0.0.1:5557] LF_BROKER_EVENTS: PUB */

    /* --- Redis (broker, gateway) */
    char *redis_host;          /* [127.0.0.1] */
    int64_t redis_port;        /* [6379] */
    char *redis_prefix;        /* [lf:] key prefix, so farms can share a Redis */
    int64_t redis_timeout_ms;  /* [2000] connect/command timeout */

    /* --- liveness (all ZeroMQ peers; see docs/protocol.md) */
    int64_t heartbeat_ms;      /* [1000] */
    int64_t heartbeat_liveness;/* [3] missed beats before a peer is dead */
    int64_t reconnect_min_ms;  /* [250] first reconnect delay, doubling... */
    int64_t reconnect_max_ms;  /* [8000] ...up to this */

    /* --- broker */
    char *broker_id;           /* [NULL = host-pid] name in the store and logs */
    int64_t lease_ms;          /* [10000] a running job's lease, renewed by heartbeats/progress */
    int64_t max_attempts;      /* [3] default attempts per job (SUBMIT may lower/raise it) */
    int64_t queue_ttl_s;       /* [3600] default time a job may wait queued; 0 = forever */
    int64_t result_ttl_s;      /* [86400] how long result images are kept */
    int64_t history_max;       /* [1000] finished jobs kept in history; 0 = no count limit */
    int64_t history_max_age_s; /* [604800] finished jobs older than this are dropped; 0 = no age limit */
    int64_t idem_ttl_s;        /* [86400] how long an idempotency key maps to its job */
    int64_t reap_interval_ms;  /* [500] how often expired leases and TTLs are swept */
    int64_t preview_ttl_s;     /* [60] how long the latest preview of a job is kept */

    /* --- image store (broker, gateway; lf_blobstore.h) */
    char *image_store;         /* [redis] redis | dir:/path | s3://bucket[/prefix] */
    char *s3_endpoint;         /* [NULL = AWS] http(s)://host[:port], path-style */
    char *s3_region;           /* [us-east-1] */
    char *s3_access_key;       /* [NULL] LF_S3_ACCESS_KEY_ID */
    char *s3_secret_key;       /* [NULL] LF_S3_SECRET_ACCESS_KEY */
    int64_t image_store_timeout_ms; /* [5000] per request */

    /* --- gateway */
    char *http_host;           /* [127.0.0.1] address to listen on; 0.0.0.0 for all */
    int64_t http_port;         /* [7860] */
    int64_t http_threads;      /* [4] libmicrohttpd worker threads */
    int64_t http_max_body;     /* [50331648] largest request body (48 MiB: base64 images) */
    lf_strlist_t api_keys;     /* [empty = no auth] accepted bearer keys, comma-separated */
    int64_t rate_limit;        /* [0 = off] requests per second per key (or client address) */
    int64_t rate_burst;        /* [20] extra requests allowed in a burst */
    int64_t request_timeout_ms;/* [10000] wait for a broker reply before 503 */
    int64_t sync_timeout_s;    /* [600] longest a blocking (A1111) call waits for its job */
    int64_t upload_ttl_s;      /* [3600] how long uploaded images are kept */
    int64_t upload_max_bytes;  /* [33554432] largest upload, encoded */
    int64_t upload_max_pixels; /* [16777216] largest upload, width*height */
    char *web_root;            /* [NULL = no static files] folder of the web UI */
    char *cors_origin;         /* [NULL = no CORS headers] Access-Control-Allow-Origin value */
    char *default_model;       /* [lf-diagnostic] model used when a request names none */
    /* prompt enhancement (gateway/lf_enhance.h): an LLM rewrites a job's prompt before it is queued */
    char *enhance_url;         /* [NULL = off] OpenAI-compatible or Ollama chat endpoint */
    char *enhance_api;         /* [openai] openai | ollama */
    char *enhance_model;       /* [NULL] model name sent to the endpoint */
    char *enhance_system;      /* [NULL = built-in] system prompt */
    char *enhance_api_key;     /* [NULL] Bearer key for the endpoint */
    int64_t enhance_timeout_ms;/* [20000] longest one enhancement may take */
    int64_t enhance_max_chars; /* [2000] longer replies are refused (the original prompt is kept) */
    int64_t enhance_threads;   /* [4] enhancements run at once */

    /* --- worker */
    char *worker_id;           /* [NULL = host-pid-random] */
    char *worker_device;       /* [cpu] cpu | cuda | cuda:N */
    int64_t max_pixels;        /* [4194304] largest width*height a worker accepts; 0 = no limit */
    char *models_dir;          /* [NULL] folder of model files */
    int64_t worker_drain_ms;   /* [5000] on stop, time to hand over the last result */
    char *worker_ready_file;   /* worker: readiness file for probes (lf_readyfile.h); NULL = none */
    char *worker_preload;      /* worker: model loaded at start (ready = resident); NULL = lazily */
    int64_t step_delay_max_ms; /* [1000] cap on the diagnostic model's per-step delay */
    int64_t preview_every;     /* [0 = off] send a preview every N steps */
    int64_t model_memory_mb;   /* [0 = no limit] base + SDXL refiner kept resident together up to this */
    char *precision;           /* [f32] f32 | bf16 | auto: jobs' compute precision unless they name one */
    char *weight_pack;         /* [auto] file | memory | off | auto: pre-packed weights (lf_engine_opts_t.pack) */
    char *pack_dir;            /* [NULL = $TMPDIR, /var/tmp] folder of the pre-packed weights' file */
    int64_t threads;           /* [0 = cores / local_workers] CPU compute threads of a worker */
    int64_t local_workers;     /* [1] CPU workers sharing this machine's cores (lf_cpushare.h) */
    int64_t local_index;       /* [0] this worker's place among them: its slice of the cores */
    int64_t pin_threads;       /* [0] 1: each compute thread on its own core (LF_PIN_THREADS) */
    int64_t batch_max;         /* [1] compatible jobs a worker runs as one batch (LF_BATCH_MAX) */

    /* --- CURVE security (ZeroMQ; all NULL = plain TCP) */
    char *curve_cert;          /* this program's certificate file (czmq zcert, secret part) */
    char *curve_server_cert;   /* the broker's public certificate (gateways, workers) */
    char *curve_clients_dir;   /* broker: folder of allowed client public certificates */
} lf_config_t;

typedef enum { LF_CFG_STR, LF_CFG_INT, LF_CFG_BOOL, LF_CFG_LIST, LF_CFG_LOGLEVEL } lf_config_type_t;

/* One row of the settings table (static data, borrowed). */
typedef struct {
    const char *flag;       /* without the dashes: "http-port" */
    const char *alias;      /* another accepted flag name, or NULL */
    const char *env;        /* "LF_HTTP_PORT", or NULL (flag only) */
    lf_config_type_t type;
    size_t offset;          /* of the field in lf_config_t */
    const char *def;        /* default as text, or NULL */
    int64_t min, max;       /* LF_CFG_INT range */
    unsigned programs;      /* LF_CFG_* mask */
    const char *help;
} lf_config_opt_t;

/* The settings table; *n receives its length. Borrowed, static. */
const lf_config_opt_t *lf_config_options(size_t *n);

/* Builds a configuration: defaults, then envp ("NAME=value" strings, NULL-
 * terminated; may be NULL), then argv[1..argc) (argv[0] is the program; argv
 * may be NULL when argc is 0). *out must be zeroed or cleared; it is set
 * only on success. Errors: LF_EINVAL (unknown flag, missing value, bad
 * number or range, bad list; a sentence naming the flag or variable goes to
 * err, which may be NULL), LF_ENOMEM. */
int lf_config_load(lf_config_t *out, char *const *envp, int argc, char *const *argv, char *err,
                   size_t errlen);

/* Frees everything and zeroes the struct. Accepts NULL. */
void lf_config_clear(lf_config_t *cfg);

/* Splits a comma-separated list, trimming blanks. An empty or all-blank s
 * gives an empty list. LF_EINVAL for an empty item ("a,,b", "a,"),
 * LF_ENOMEM. *out must be zeroed; set only on success. */
int lf_config_split_list(const char *s, lf_strlist_t *out);
void lf_strlist_clear(lf_strlist_t *l);

/* Prints "usage: program [options]" and the settings of `programs` (a
 * LF_CFG_* mask): flag, variable, default, help. */
void lf_config_usage(FILE *f, const char *program, unsigned programs);

#endif
