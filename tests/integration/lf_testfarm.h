/* lf_testfarm: a real farm for integration tests — redis-server, brokers,
 * workers and a gateway as separate processes on free loopback ports, with
 * a small HTTP client (libcurl) to drive it.
 *
 * Nothing here is a test double: the binaries are the ones users run. Each
 * process is started with its own environment and a log file in the farm's
 * temp dir; lf_testfarm_destroy stops everything and removes the dir (kept
 * when LF_KEEP_TESTFARM=1, for debugging). Not thread safe: one farm per test. */
#ifndef LF_TESTFARM_H
#define LF_TESTFARM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#define LF_TESTFARM_MAX_PROCS 16

typedef struct lf_testfarm lf_testfarm_t;

typedef struct {
    int n_workers;      /* workers started by lf_testfarm_new */
    int n_brokers;      /* 1 or 2; all share one redis */
    bool redis_aof;     /* appendonly yes + appendfsync always (or redis_fsync) */
    const char *redis_fsync; /* with redis_aof: "always" (NULL) or "everysec" */
    const char *extra_env[8]; /* "KEY=VALUE" passed to every farm process */
} lf_testfarm_opts_t;

/* Start redis, brokers, workers, gateway and wait for /healthz. NULL on
 * failure (the reason is printed). Caller owns the result. */
lf_testfarm_t *lf_testfarm_new(const lf_testfarm_opts_t *opts);
/* Stops everything (SIGTERM; gateway, workers, brokers, then redis) and aborts
 * (failing the test) when one of our processes does not exit 0 in time:
 * a crash, a hang or a sanitizer report at shutdown is a bug. */
void lf_testfarm_destroy(lf_testfarm_t **self_p);

/* A cmocka group/test teardown: destroys the farm in *state (may be NULL),
 * then sets it NULL. Returns 0. */
int lf_testfarm_teardown(void **state);

/* Process control by role. Index is 0-based within the role. */
typedef enum { LF_TF_REDIS, LF_TF_BROKER, LF_TF_WORKER, LF_TF_GATEWAY } lf_tf_role_t;
pid_t lf_testfarm_pid(lf_testfarm_t *self, lf_tf_role_t role, int index);
/* Send sig and wait for the process to exit (up to 10 s). */
int lf_testfarm_kill(lf_testfarm_t *self, lf_tf_role_t role, int index, int sig);
/* Start a stopped (or a new, index == count) process of the role again. */
int lf_testfarm_start(lf_testfarm_t *self, lf_tf_role_t role, int index);
/* Is it still running? */
bool lf_testfarm_alive(lf_testfarm_t *self, lf_tf_role_t role, int index);

/* Endpoints (borrowed strings). */
const char *lf_testfarm_url(lf_testfarm_t *self);              /* http://127.0.0.1:PORT */
const char *lf_testfarm_frontend(lf_testfarm_t *self, int broker); /* tcp://... */
const char *lf_testfarm_backend(lf_testfarm_t *self, int broker);
int lf_testfarm_http_port(lf_testfarm_t *self);
int lf_testfarm_redis_port(lf_testfarm_t *self);

/* HTTP: returns the status code (or -1 on a transport error); *body (caller
 * owns, may be NULL) receives the response body, NUL-terminated. */
int lf_http_request(const char *method, const char *url, const char *content_type,
                    const void *body, size_t body_len, char **resp, size_t *resp_len);
/* JSON convenience: status code; *out (caller owns; json_decref) the parsed body or NULL. */
int lf_http_json(const char *method, const char *url, const char *json_body, json_t **out);

/* Submit a diagnostic job; returns its id (caller owns, free()) or NULL. */
char *lf_testfarm_submit(lf_testfarm_t *self, int steps, int delay_ms, const char *priority);
/* Poll GET /v1/jobs/{id} until a terminal status or timeout; returns the job
 * JSON (caller owns) or NULL on timeout. */
json_t *lf_testfarm_wait(lf_testfarm_t *self, const char *id, int timeout_ms);

/* A farm's folders for a test: <dir>/models (LF_MODELS_DIR) and
 * <dir>/assets/clip (LF_ASSETS_DIR) with CLIP's merges file linked in (from
 * the checkout's assets/, else the reference data beside it). */
typedef struct {
    char dir[64];              /* /tmp/lf-<tag>-XXXXXX */
    char shapes[1200];         /* the built-in model lf-tiny-shapes.safetensors in the checkout */
    char env_models[128];      /* "LF_MODELS_DIR=<dir>/models" */
    char env_assets[128];      /* "LF_ASSETS_DIR=<dir>/assets" */
} lf_testfarm_folder_t;
/* Makes the folders; false with the reason in why when something needed is
 * absent (the caller skips) or cannot be made. source_dir: the checkout. */
bool lf_testfarm_folder_new(lf_testfarm_folder_t *f, const char *source_dir, const char *tag, char *why,
                            size_t len);
/* Removes the folders (once made; safe to call again). */
void lf_testfarm_folder_remove(lf_testfarm_folder_t *f);
/* system() of a formatted shell command: its status (0: done). */
int lf_testfarm_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A free TCP port on 127.0.0.1. */
int lf_free_port(void);
/* Monotonic milliseconds. */
long long lf_now_ms(void);
/* A JSON object's string member, or "" (borrowed). */
const char *lf_json_str(json_t *j, const char *key);
/* Removes a test's temp folder (rm -rf); nothing for NULL or "". */
void lf_test_rmdir(const char *dir);

#endif
