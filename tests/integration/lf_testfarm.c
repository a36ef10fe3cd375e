/* lf_testfarm: see lf_testfarm.h. */
#include "lf_testfarm.h"
#include "lf_testhttp.h"
#include "lf_testproc.h"
#include "lf_testredis.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_MAX_ENV 256

typedef struct {
    lf_tf_role_t role;
    int index;
    pid_t pid;
    char log[512];
} s_proc_t;

struct lf_testfarm {
    lf_testfarm_opts_t opts;
    char dir[256];
    int http_port, redis_port;
    int fe_port[2], be_port[2], ev_port[2];
    char url[64];
    char fe[2][64], be[2][64], ev[2][64];
    char fe_list[160], be_list[160], ev_list[160];
    s_proc_t procs[LF_TESTFARM_MAX_PROCS];
    int n_procs;
};

long long lf_now_ms(void) { return lf_testproc_now_ms(); }

const char *lf_json_str(json_t *j, const char *key) {
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

void lf_test_rmdir(const char *dir) {
    if (!dir || !*dir || strchr(dir, '\'')) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int lf_free_port(void) { return lf_testredis_free_port(); }

static s_proc_t *s_find(lf_testfarm_t *self, lf_tf_role_t role, int index) {
    for (int i = 0; i < self->n_procs; i++)
        if (self->procs[i].role == role && self->procs[i].index == index) return &self->procs[i];
    return NULL;
}

static const char *s_role_name(lf_tf_role_t r) {
    switch (r) {
    case LF_TF_REDIS: return "redis";
    case LF_TF_BROKER: return "broker";
    case LF_TF_WORKER: return "worker";
    case LF_TF_GATEWAY: return "gateway";
    }
    return "?";
}

/* Spawns argv with environ + overrides, stdout/stderr to the proc's log. */
static int s_spawn(lf_testfarm_t *self, s_proc_t *p, char *const argv[], char **overrides,
                   int n_over) {
    char *envp[S_MAX_ENV];
    int n = 0;
    for (char **e = environ; *e && n < S_MAX_ENV - 32; e++) {
        /* Overrides win: skip inherited keys that an override sets. */
        int skip = 0;
        for (int i = 0; i < n_over; i++) {
            size_t k = strcspn(overrides[i], "=");
            if (!strncmp(*e, overrides[i], k + 1)) skip = 1;
        }
        if (!skip) envp[n++] = *e;
    }
    for (int i = 0; i < n_over && n < S_MAX_ENV - 1; i++) envp[n++] = overrides[i];
    envp[n] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "testfarm: cannot start %s: %s\n", argv[0], strerror(rc));
        p->pid = 0;
        return -1;
    }
    (void)self;
    return 0;
}

static int s_start_proc(lf_testfarm_t *self, s_proc_t *p) {
    char buf[16][256];
    char *over[24];
    int no = 0;
#define OVER(...) (snprintf(buf[no], sizeof buf[no], __VA_ARGS__), over[no] = buf[no], no++)
    OVER("LF_REDIS_HOST=127.0.0.1");
    OVER("LF_REDIS_PORT=%d", self->redis_port);
    OVER("LF_LOG_LEVEL=info");
#undef OVER
    for (int i = 0; i < 8 && self->opts.extra_env[i]; i++) over[no++] = (char *)self->opts.extra_env[i];
    char e1[256], e2[256], e3[256], e4[256];
    switch (p->role) {
    case LF_TF_REDIS: {
        char port[16], dir[300];
        snprintf(port, sizeof port, "%d", self->redis_port);
        snprintf(dir, sizeof dir, "%s/redis", self->dir);
        mkdir(dir, 0755);
        char *argv[] = {"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1",
                        "--dir", dir, "--save", "", "--appendonly",
                        self->opts.redis_aof ? "yes" : "no", "--appendfsync",
                        self->opts.redis_fsync ? (char *)self->opts.redis_fsync : "always",
                        "--daemonize", "no", NULL};
        return s_spawn(self, p, argv, over, no);
    }
    case LF_TF_BROKER: {
        int b = p->index;
        snprintf(e1, sizeof e1, "LF_BROKER_FRONTEND=%s", self->fe[b]);
        snprintf(e2, sizeof e2, "LF_BROKER_BACKEND=%s", self->be[b]);
        snprintf(e3, sizeof e3, "LF_BROKER_EVENTS=%s", self->ev[b]);
        snprintf(e4, sizeof e4, "LF_BROKER_ID=broker-%d", b);
        over[no++] = e1, over[no++] = e2, over[no++] = e3, over[no++] = e4;
        char *argv[] = {LF_BROKER_BIN, NULL};
        return s_spawn(self, p, argv, over, no);
    }
    case LF_TF_WORKER: {
        snprintf(e1, sizeof e1, "LF_BROKER_BACKEND=%s", self->be_list);
        snprintf(e2, sizeof e2, "LF_WORKER_ID=tw%d-%d", p->index, self->http_port);
        over[no++] = e1, over[no++] = e2;
        char *argv[] = {LF_WORKER_BIN, NULL};
        return s_spawn(self, p, argv, over, no);
    }
    case LF_TF_GATEWAY: {
        snprintf(e1, sizeof e1, "LF_BROKER_FRONTEND=%s", self->fe_list);
        snprintf(e2, sizeof e2, "LF_BROKER_EVENTS=%s", self->ev_list);
        snprintf(e3, sizeof e3, "LF_HTTP_PORT=%d", self->http_port);
        snprintf(e4, sizeof e4, "LF_WEB_ROOT=%s", LF_WEB_ROOT);
        over[no++] = e1, over[no++] = e2, over[no++] = e3, over[no++] = e4;
        char *argv[] = {LF_GATEWAY_BIN, NULL};
        return s_spawn(self, p, argv, over, no);
    }
    }
    return -1;
}

static s_proc_t *s_add(lf_testfarm_t *self, lf_tf_role_t role, int index) {
    if (self->n_procs >= LF_TESTFARM_MAX_PROCS) return NULL;
    s_proc_t *p = &self->procs[self->n_procs++];
    memset(p, 0, sizeof *p);
    p->role = role;
    p->index = index;
    snprintf(p->log, sizeof p->log, "%s/%s-%d.log", self->dir, s_role_name(role), index);
    return p;
}

static bool s_redis_ready(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char buf[64];
        if (write(fd, "PING\r\n", 6) == 6) {
            ssize_t r = read(fd, buf, sizeof buf - 1);
            ok = r > 0 && !strncmp(buf, "+PONG", 5);
        }
    }
    close(fd);
    return ok;
}

static bool s_wait_redis(lf_testfarm_t *self, int timeout_ms) {
    long long end = lf_now_ms() + timeout_ms;
    while (lf_now_ms() < end) {
        if (s_redis_ready(self->redis_port)) return true;
        s_sleep_ms(20);
    }
    return false;
}

static bool s_wait_health(lf_testfarm_t *self, int timeout_ms) {
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", self->url);
    long long end = lf_now_ms() + timeout_ms;
    while (lf_now_ms() < end) {
        if (lf_http_request("GET", url, NULL, NULL, 0, NULL, NULL) == 200) return true;
        s_sleep_ms(50);
    }
    return false;
}

/* Until /v1/workers lists n live workers (they registered with a broker). */
static bool s_wait_workers(lf_testfarm_t *self, int n, int timeout_ms) {
    char url[128];
    snprintf(url, sizeof url, "%s/v1/workers", self->url);
    long long end = lf_now_ms() + timeout_ms;
    while (lf_now_ms() < end) {
        json_t *j = NULL;
        int count = -1;
        if (lf_http_json("GET", url, NULL, &j) == 200 && j)
            count = (int)json_array_size(json_object_get(j, "workers"));
        json_decref(j);
        if (count >= n) return true;
        s_sleep_ms(50);
    }
    fprintf(stderr, "testfarm: %d workers did not register in time\n", n);
    return false;
}

int lf_testfarm_start(lf_testfarm_t *self, lf_tf_role_t role, int index) {
    s_proc_t *p = s_find(self, role, index);
    if (!p) p = s_add(self, role, index);
    if (!p) return -1;
    if (p->pid > 0 && kill(p->pid, 0) == 0) return 0;
    if (s_start_proc(self, p) != 0) return -1;
    if (role == LF_TF_REDIS && !s_wait_redis(self, 10000)) return -1;
    if (role == LF_TF_GATEWAY && !s_wait_health(self, 15000)) return -1;
    return 0;
}

lf_testfarm_t *lf_testfarm_new(const lf_testfarm_opts_t *opts) {
    static bool curl_ready = false; /* test-process setup only */
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    lf_testfarm_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->opts = *opts;
    if (self->opts.n_brokers < 1) self->opts.n_brokers = 1;
    if (self->opts.n_brokers > 2) self->opts.n_brokers = 2;
    snprintf(self->dir, sizeof self->dir, "/tmp/lf-testfarm-XXXXXX");
    if (!mkdtemp(self->dir)) {
        free(self);
        return NULL;
    }
    self->http_port = lf_free_port();
    self->redis_port = lf_free_port();
    snprintf(self->url, sizeof self->url, "http://127.0.0.1:%d", self->http_port);
    for (int b = 0; b < self->opts.n_brokers; b++) {
        self->fe_port[b] = lf_free_port();
        self->be_port[b] = lf_free_port();
        self->ev_port[b] = lf_free_port();
        snprintf(self->fe[b], sizeof self->fe[b], "tcp://127.0.0.1:%d", self->fe_port[b]);
        snprintf(self->be[b], sizeof self->be[b], "tcp://127.0.0.1:%d", self->be_port[b]);
        snprintf(self->ev[b], sizeof self->ev[b], "tcp://127.0.0.1:%d", self->ev_port[b]);
        const char *sep = b ? "," : "";
        strcat(self->fe_list, sep), strcat(self->fe_list, self->fe[b]);
        strcat(self->be_list, sep), strcat(self->be_list, self->be[b]);
        strcat(self->ev_list, sep), strcat(self->ev_list, self->ev[b]);
    }
    if (lf_testfarm_start(self, LF_TF_REDIS, 0) != 0) goto fail;
    for (int b = 0; b < self->opts.n_brokers; b++)
        if (lf_testfarm_start(self, LF_TF_BROKER, b) != 0) goto fail;
    for (int w = 0; w < opts->n_workers; w++)
        if (lf_testfarm_start(self, LF_TF_WORKER, w) != 0) goto fail;
    if (lf_testfarm_start(self, LF_TF_GATEWAY, 0) != 0) goto fail;
    if (!s_wait_workers(self, opts->n_workers, 15000)) goto fail;
    return self;
fail:
    fprintf(stderr, "testfarm: start failed; logs in %s\n", self->dir);
    setenv("LF_KEEP_TESTFARM", "1", 0);
    lf_testfarm_destroy(&self);
    return NULL;
}

static void s_dump_logs(lf_testfarm_t *self) {
    for (int i = 0; i < self->n_procs; i++) {
        FILE *f = fopen(self->procs[i].log, "r");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, sz > 4000 ? sz - 4000 : 0, SEEK_SET);
        fprintf(stderr, "---- %s (tail) ----\n", self->procs[i].log);
        char buf[4096];
        size_t r;
        while ((r = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, r, stderr);
        fclose(f);
    }
}

/* Sends sig and reaps the process (SIGKILL after 10 s). 0 when it exited in
 * time; *status_out gets its wait status (-1 when it was not our child). */
static int s_stop(s_proc_t *p, int sig, int *status_out) {
    kill(p->pid, sig);
    long long end = lf_now_ms() + 10000;
    int status = -1;
    while (lf_now_ms() < end) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            if (r < 0) status = -1;
            p->pid = 0;
            *status_out = status;
            return 0;
        }
        s_sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    *status_out = status;
    return -1;
}

int lf_testfarm_kill(lf_testfarm_t *self, lf_tf_role_t role, int index, int sig) {
    s_proc_t *p = s_find(self, role, index);
    if (!p || p->pid <= 0) return -1;
    int status;
    return s_stop(p, sig, &status);
}

bool lf_testfarm_alive(lf_testfarm_t *self, lf_tf_role_t role, int index) {
    s_proc_t *p = s_find(self, role, index);
    if (!p || p->pid <= 0) return false;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        p->pid = 0;
        return false;
    }
    return kill(p->pid, 0) == 0;
}

pid_t lf_testfarm_pid(lf_testfarm_t *self, lf_tf_role_t role, int index) {
    s_proc_t *p = s_find(self, role, index);
    return p ? p->pid : 0;
}

void lf_testfarm_destroy(lf_testfarm_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_testfarm_t *self = *self_p;
    /* Gateway and workers first, then brokers, redis last. */
    /* Our processes must shut down cleanly on SIGTERM: exit status 0, in
     * time, with no sanitizer report (ASan/LSan exit non-zero on a leak or an
     * error at exit). An unclean stop fails the test after the logs are shown. */
    static const lf_tf_role_t order[] = {LF_TF_GATEWAY, LF_TF_WORKER, LF_TF_BROKER, LF_TF_REDIS};
    static const char *const names[] = {"redis", "broker", "worker", "gateway"};
    int unclean = 0;
    for (size_t o = 0; o < 4; o++)
        for (int i = 0; i < self->n_procs; i++) {
            s_proc_t *p = &self->procs[i];
            if (p->role != order[o] || p->pid <= 0) continue;
            int status;
            const int late = s_stop(p, SIGTERM, &status);
            if (order[o] == LF_TF_REDIS) continue;
            if (late || status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "testfarm: %s-%d did not stop cleanly on SIGTERM (%s, status %d)\n",
                        names[order[o]], p->index, late ? "killed after 10 s" : "exited", status);
                unclean++;
            }
        }
    const char *keep = getenv("LF_KEEP_TESTFARM");
    if (unclean) s_dump_logs(self);
    if (keep && *keep == '1') {
        if (!unclean) s_dump_logs(self);
        fprintf(stderr, "testfarm: kept %s\n", self->dir);
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", self->dir);
        if (system(cmd) != 0) fprintf(stderr, "testfarm: could not remove %s\n", self->dir);
    }
    free(self);
    *self_p = NULL;
    if (unclean) abort(); /* from a test's teardown: the test fails, naming the process above */
}

const char *lf_testfarm_url(lf_testfarm_t *self) { return self->url; }
const char *lf_testfarm_frontend(lf_testfarm_t *self, int b) { return self->fe[b]; }
const char *lf_testfarm_backend(lf_testfarm_t *self, int b) { return self->be[b]; }
int lf_testfarm_http_port(lf_testfarm_t *self) { return self->http_port; }
int lf_testfarm_redis_port(lf_testfarm_t *self) { return self->redis_port; }

/* ---- HTTP client --------------------------------------------------------- */

int lf_http_request(const char *method, const char *url, const char *content_type,
                    const void *body, size_t body_len, char **resp, size_t *resp_len) {
    lf_testhttp_opts_t o = {.content_type = content_type, .timeout_ms = 30000};
    lf_testhttp_buf_t b = {0};
    long code = lf_testhttp_request(method, url, body, body_len, &o, &b);
    if (resp) {
        *resp = b.data;
        if (resp_len) *resp_len = b.len;
    } else {
        free(b.data);
    }
    return (int)code;
}

int lf_http_json(const char *method, const char *url, const char *json_body, json_t **out) {
    char *resp = NULL;
    size_t len = 0;
    int code = lf_http_request(method, url, json_body ? "application/json" : NULL, json_body,
                               json_body ? strlen(json_body) : 0, &resp, &len);
    if (out) *out = resp ? json_loadb(resp, len, 0, NULL) : NULL;
    free(resp);
    return code;
}

char *lf_testfarm_submit(lf_testfarm_t *self, int steps, int delay_ms, const char *priority) {
    char url[128], body[256];
    snprintf(url, sizeof url, "%s/v1/jobs", self->url);
    snprintf(body, sizeof body,
             "{\"model\":\"lf-diagnostic\",\"prompt\":\"test\",\"steps\":%d,"
             "\"step_delay_ms\":%d,\"width\":64,\"height\":64,\"priority\":\"%s\"}",
             steps, delay_ms, priority ? priority : "normal");
    json_t *j = NULL;
    int code = lf_http_json("POST", url, body, &j);
    char *id = NULL;
    if (code == 202 && j && json_is_string(json_object_get(j, "id")))
        id = strdup(json_string_value(json_object_get(j, "id")));
    else
        fprintf(stderr, "testfarm: submit answered %d\n", code);
    json_decref(j);
    return id;
}

json_t *lf_testfarm_wait(lf_testfarm_t *self, const char *id, int timeout_ms) {
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", self->url, id);
    long long end = lf_now_ms() + timeout_ms;
    while (lf_now_ms() < end) {
        json_t *j = NULL;
        int code = lf_http_json("GET", url, NULL, &j);
        if (code == 200 && j) {
            const char *st = json_string_value(json_object_get(j, "status"));
            if (st && (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "cancelled")))
                return j;
        }
        json_decref(j);
        s_sleep_ms(50);
    }
    return NULL;
}

int lf_testfarm_sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd) return -1;
    return system(cmd);
}

bool lf_testfarm_folder_new(lf_testfarm_folder_t *f, const char *source_dir, const char *tag, char *why,
                            size_t len) {
    static const char vocab_rel[] = "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz";
    char vocab[1200];
    struct stat sb;
    memset(f, 0, sizeof *f);
    snprintf(f->shapes, sizeof f->shapes, "%s/models/lf-tiny-shapes.safetensors", source_dir);
    if (stat(f->shapes, &sb) != 0) return snprintf(why, len, "no %s (the built-in model)", f->shapes), false;
    snprintf(vocab, sizeof vocab, "%s/assets/clip/bpe_simple_vocab_16e6.txt.gz", source_dir);
    if (stat(vocab, &sb) != 0) {
        const char *rd = getenv("LF_REFDATA_DIR");
        if (rd && *rd) snprintf(vocab, sizeof vocab, "%s/%s", rd, vocab_rel);
        else snprintf(vocab, sizeof vocab, "%s/../shared/refdata/%s", source_dir, vocab_rel);
        if (stat(vocab, &sb) != 0) return snprintf(why, len, "no CLIP merges %s (reference data)", vocab), false;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/lf-%.40s-XXXXXX", tag);
    if (!mkdtemp(f->dir)) {
        f->dir[0] = 0;
        return snprintf(why, len, "cannot make a temp dir"), false;
    }
    char *real = realpath(vocab, NULL);
    int rc = lf_testfarm_sh("mkdir -p '%s/models' '%s/assets/clip' && ln -s '%s' '%s/assets/clip/'", f->dir,
                            f->dir, real ? real : vocab, f->dir);
    free(real);
    if (rc != 0) return snprintf(why, len, "cannot prepare %s", f->dir), false;
    snprintf(f->env_models, sizeof f->env_models, "LF_MODELS_DIR=%s/models", f->dir);
    snprintf(f->env_assets, sizeof f->env_assets, "LF_ASSETS_DIR=%s/assets", f->dir);
    return true;
}

void lf_testfarm_folder_remove(lf_testfarm_folder_t *f) {
    lf_test_rmdir(f->dir);
    f->dir[0] = 0;
}

int lf_testfarm_teardown(void **state) {
    lf_testfarm_t *farm = *state;
    lf_testfarm_destroy(&farm);
    *state = NULL;
    return 0;
}
