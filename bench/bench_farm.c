/* bench_farm: end-to-end throughput and overhead of the farm (issue: backbone).
 *
 * Starts a real farm (redis-server, broker, workers, gateway: the release
 * binaries) on free loopback ports and measures, in one run:
 *   1. a bare Redis round trip (PING), the reference;
 *   2. jobs per second end to end through HTTP with lf-diagnostic at zero
 *      delay and 4 workers (POST /v1/jobs from client threads until every
 *      job is in the history);
 *   3. per-job latency (p50, p99) of blocking /sdapi/v1/txt2img calls paced
 *      at 500 jobs/s, and the overhead: each round trip minus the run_ms
 *      the worker measured for that job (what HTTP, gateway, broker, Redis
 *      and the links add), beside the Redis round trip;
 *   4. 1,000 simulated workers connected to the broker (DEALER sockets that
 *      speak the protocol): dispatch latency p50/p99 from SUBMIT to ASSIGN.
 *   5. "batch" (not in the default parts): batched jobs (issue 18) — 8
 *      compatible jobs (the built-in model lf-tiny-shapes at 256x256, 20
 *      steps, CFG 5; prompts and seeds differ) submitted at once to a farm
 *      of one worker with LF_BATCH_MAX = 1, 2 and 4 (a farm each): wall time
 *      from the first POST to the last job done, images per minute, and the
 *      jobs the worker ran batched ("small" in parts: 128x128, 10 steps).
 * Usage: bench_farm [jobs=4000] [workers=4] [parts=redis,tput,lat,many] (a
 * comma list of the parts to run, e.g. "tput" alone for a profile; add "aof"
 * for Redis with AOF + appendfsync always, as deploy/lightfarm runs it, and
 * "everysec" with it for appendfsync everysec). Prints
 * ratios, asserts nothing:
 * figures go to docs/PERFORMANCE.md with this command. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <czmq.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lf_image.h"
#include "lf_proto.h"
#include "lf_testfarm.h"

static double s_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int s_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_pct(double *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, s_cmp_d);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* ---- 1. redis round trip ---------------------------------------------- */

static double s_redis_rtt_us(int port, int n, double *p99) {
    /* A raw RESP PING over TCP, the cheapest thing a client can do. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    double *v = malloc(sizeof(double) * (size_t)n);
    char buf[16];
    for (int i = 0; i < n; i++) {
        double t = s_now_us();
        if (write(fd, "PING\r\n", 6) != 6 || read(fd, buf, sizeof buf) <= 0) break;
        v[i] = s_now_us() - t;
    }
    close(fd);
    double p50 = s_pct(v, (size_t)n, 0.5);
    *p99 = s_pct(v, (size_t)n, 0.99);
    free(v);
    return p50;
}

/* ---- a keep-alive HTTP client per thread ------------------------------- */

static size_t s_discard(char *p, size_t sz, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return sz * n;
}

typedef struct {
    char *p;
    size_t n, cap;
} s_buf_t;

static size_t s_keep(char *p, size_t sz, size_t n, void *ud) {
    s_buf_t *b = ud;
    size_t k = sz * n;
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, p, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

/* POST body on a reused connection; returns the HTTP status or -1. The
 * response body goes to *out when out is given (reset first), else away. */
static int s_post_keep(CURL *c, const char *url, const char *body, s_buf_t *out) {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    if (out) out->n = 0;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, out ? s_keep : s_discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    long code = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    return (int)code;
}

static int s_post(CURL *c, const char *url, const char *body) { return s_post_keep(c, url, body, NULL); }

/* run_ms the worker measured, from an /sdapi/v1/txt2img answer's info
 * (info is a JSON string; the worker's metadata is its
 * extra_generation_params); -1 when absent. */
static double s_run_ms(const char *resp) {
    double ms = -1;
    json_t *r = resp ? json_loads(resp, 0, NULL) : NULL;
    const char *info = json_string_value(json_object_get(r, "info"));
    json_t *i = info ? json_loads(info, 0, NULL) : NULL;
    json_t *v = json_object_get(json_object_get(i, "extra_generation_params"), "run_ms");
    if (json_is_number(v)) ms = json_number_value(v);
    json_decref(i);
    json_decref(r);
    return ms;
}

static CURL *s_client(void) {
    CURL *c = curl_easy_init();
    static const char *hdr[] = {"Content-Type: application/json", "Expect:"};
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < 2; i++) h = curl_slist_append(h, hdr[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h); /* leaked once per thread: bench only */
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    return c;
}

/* ---- 2. throughput ------------------------------------------------------ */

typedef struct {
    lf_testfarm_t *farm;
    int n;
    int failed;
} s_submit_arg_t;

static void *s_submitter(void *ud) {
    s_submit_arg_t *a = ud;
    CURL *c = s_client();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(a->farm));
    const char *body = "{\"model\":\"lf-diagnostic\",\"prompt\":\"bench\",\"steps\":1,"
                       "\"width\":64,\"height\":64}";
    for (int i = 0; i < a->n; i++)
        if (s_post(c, url, body) != 202) a->failed++;
    curl_easy_cleanup(c);
    return NULL;
}

/* Jobs done so far, from the Prometheus counter (history is trimmed by
 * retention, the counter is not). */
static long long s_history_total(lf_testfarm_t *farm) {
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", lf_testfarm_url(farm));
    char *body = NULL;
    long long t = -1;
    if (lf_http_request("GET", url, NULL, NULL, 0, &body, NULL) == 200 && body) {
        const char *k = strstr(body, "lf_jobs_total{state=\"done\"} ");
        if (k) t = atoll(k + strlen("lf_jobs_total{state=\"done\"} "));
    }
    free(body);
    return t;
}

static double s_throughput(lf_testfarm_t *farm, int jobs, int threads, int *failed) {
    long long before = s_history_total(farm);
    pthread_t th[16];
    s_submit_arg_t args[16];
    double t0 = s_now_us();
    for (int i = 0; i < threads; i++) {
        args[i] = (s_submit_arg_t){farm, jobs / threads, 0};
        pthread_create(&th[i], NULL, s_submitter, &args[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    *failed = 0;
    for (int i = 0; i < threads; i++) *failed += args[i].failed;
    long long want = before + (jobs / threads) * threads - *failed;
    double deadline = s_now_us() + 300e6;
    while (s_history_total(farm) < want && s_now_us() < deadline) usleep(2000);
    double secs = (s_now_us() - t0) / 1e6;
    return ((jobs / threads) * threads - *failed) / secs;
}

/* ---- 3. paced latency ---------------------------------------------------- */

typedef struct {
    lf_testfarm_t *farm;
    int n;
    double interval_us;
    double start_us;
    double *lat;
    double *over; /* round trip minus the worker's run_ms */
    int errors;
} s_paced_arg_t;

static void *s_paced(void *ud) {
    s_paced_arg_t *a = ud;
    char url[256];
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(a->farm));
    const char *body = "{\"prompt\":\"bench\",\"steps\":1,\"width\":64,\"height\":64,"
                       "\"override_settings\":{\"sd_model_checkpoint\":\"lf-diagnostic\"}}";
    CURL *c = s_client();
    s_buf_t resp = {0};
    for (int i = 0; i < a->n; i++) {
        double due = a->start_us + i * a->interval_us;
        double now = s_now_us();
        if (due > now) usleep((useconds_t)(due - now));
        double t = s_now_us();
        int code = s_post_keep(c, url, body, &resp);
        a->lat[i] = (s_now_us() - t) / 1000.0;
        double run = code == 200 ? s_run_ms(resp.p) : -1;
        a->over[i] = run >= 0 ? a->lat[i] - run : a->lat[i];
        if (code != 200 || run < 0) a->errors++;
    }
    free(resp.p);
    curl_easy_cleanup(c);
    return NULL;
}

static void s_latency(lf_testfarm_t *farm, double rate, int total, double *p50, double *p99,
                      double *o50, double *o99, int *errors) {
    enum { T = 8 };
    pthread_t th[T];
    s_paced_arg_t a[T];
    double start = s_now_us() + 100000;
    double *all = malloc(sizeof(double) * (size_t)total);
    double *over = malloc(sizeof(double) * (size_t)total);
    int per = total / T;
    for (int i = 0; i < T; i++) {
        a[i] = (s_paced_arg_t){farm, per, 1e6 * T / rate, start + i * 1e6 / rate, all + i * per,
                               over + i * per, 0};
        pthread_create(&th[i], NULL, s_paced, &a[i]);
    }
    *errors = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        *errors += a[i].errors;
    }
    *p50 = s_pct(all, (size_t)(per * T), 0.5);
    *p99 = s_pct(all, (size_t)(per * T), 0.99);
    *o50 = s_pct(over, (size_t)(per * T), 0.5);
    *o99 = s_pct(over, (size_t)(per * T), 0.99);
    free(all);
    free(over);
}

/* ---- 4. many simulated workers ------------------------------------------ */

static int s_send_msg(zsock_t *s, const lf_msg_t *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lf_msg_encode(m, &buf, &len);
    if (rc) return rc;
    zframe_t *f = zframe_new(buf, len);
    free(buf);
    return zframe_send(&f, s, 0);
}

/* The simulated workers: one thread owns all their sockets (a ZeroMQ
 * socket belongs to one thread). It answers every ASSIGN at once with a
 * RESULT, heartbeats each worker about twice a second (spread over the
 * second, as real workers are not synchronised), and records when each
 * job's ASSIGN arrived. */
typedef struct {
    lf_testfarm_t *farm;
    int n;
    volatile int stop;
    volatile int ready;
    pthread_mutex_t mu;
    char (*ids)[64];    /* job id of each ASSIGN seen, in arrival order */
    double *at_us;      /* when it arrived */
    int n_seen, cap;
    double max_gap_ms;  /* longest time between two looks at the sockets */
} s_sim_t;

static void *s_sim_thread(void *ud) {
    s_sim_t *sim = ud;
    zsock_t **w = calloc((size_t)sim->n, sizeof *w);
    zmq_pollitem_t *items = calloc((size_t)sim->n, sizeof *items);
    char host[64];
    gethostname(host, sizeof host);
    lf_model_info_t model = {.name = "lf-diagnostic", .kind = "diagnostic"};
    for (int i = 0; i < sim->n; i++) {
        w[i] = zsock_new_dealer(lf_testfarm_backend(sim->farm, 0));
        items[i] = (zmq_pollitem_t){.socket = zsock_resolve(w[i]), .events = ZMQ_POLLIN};
        char id[64];
        snprintf(id, sizeof id, "sim-%d", i);
        lf_msg_t m = {.type = LF_MSG_READY, .worker_id = id};
        m.caps = (lf_worker_caps_t){.host = host, .pid = getpid(), .device_kind = "cpu",
                                    .device_name = "simulated", .max_pixels = 1u << 22,
                                    .models = &model, .n_models = 1};
        s_send_msg(w[i], &m);
    }
    uint8_t pix[3] = {0, 0, 0};
    lf_image_t one = {.width = 1, .height = 1, .channels = 3, .pixels = pix};
    uint8_t *png = NULL;
    size_t png_len = 0;
    lf_image_png_encode(&one, NULL, 0, 1, &png, &png_len, NULL, 0);
    double t0 = s_now_us();
    int next_beat = 0;
    double last_wait = 0; /* when the last poll returned */
    sim->ready = 1;
    while (!sim->stop) {
        /* Heartbeats: worker i beats at t0 + i/n s, then every 500 ms. */
        double elapsed = s_now_us() - t0;
        while ((next_beat / sim->n) * 500e3 + (next_beat % sim->n) * 500e3 / sim->n <= elapsed) {
            int i = next_beat % sim->n;
            char id[64];
            snprintf(id, sizeof id, "sim-%d", i);
            lf_msg_t m = {.type = LF_MSG_HEARTBEAT, .worker_id = id};
            s_send_msg(w[i], &m);
            next_beat++;
        }
        double before = s_now_us();
        if (last_wait && (before - last_wait) / 1000.0 > sim->max_gap_ms)
            sim->max_gap_ms = (before - last_wait) / 1000.0;
        /* Every ready socket is served in each pass (zpoller returns only the
         * first ready one, so low-numbered workers' heartbeats would starve
         * the others' ASSIGNs). */
        int nr = zmq_poll(items, sim->n, 2);
        last_wait = s_now_us();
        for (int i = 0; nr > 0 && i < sim->n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN)) continue;
            zsock_t *s = w[i];
            zframe_t *f;
            while ((f = zframe_recv_nowait(s)) != NULL) {
                lf_msg_t as = {0};
                if (lf_msg_decode(zframe_data(f), zframe_size(f), &as, NULL) == 0 &&
                    as.type == LF_MSG_ASSIGN) {
                    double now = s_now_us();
                    pthread_mutex_lock(&sim->mu);
                    if (sim->n_seen < sim->cap) {
                        snprintf(sim->ids[sim->n_seen], 64, "%s", as.job_id);
                        sim->at_us[sim->n_seen++] = now;
                    }
                    pthread_mutex_unlock(&sim->mu);
                    lf_image_out_t img = {.png = {png, png_len}, .seed = as.params.seed,
                                          .width = 1, .height = 1};
                    lf_msg_t r = {.type = LF_MSG_RESULT, .job_id = as.job_id, .images = &img,
                                  .n_images = 1, .info_json = "{}"};
                    s_send_msg(s, &r);
                }
                lf_msg_clear(&as);
                zframe_destroy(&f);
            }
        }
    }
    free(png);
    free(items);
    for (int i = 0; i < sim->n; i++) zsock_destroy(&w[i]);
    free(w);
    return NULL;
}

/* Submits `jobs` jobs at `rate`/s straight to the broker's frontend and
 * measures SUBMIT -> ASSIGN at the simulated workers. */
static void s_many_workers(lf_testfarm_t *farm, int n_workers, int jobs, double rate,
                           double *p50, double *p99, int *got) {
    s_sim_t sim = {.farm = farm, .n = n_workers, .cap = jobs * 2};
    pthread_mutex_init(&sim.mu, NULL);
    sim.ids = calloc((size_t)sim.cap, sizeof *sim.ids);
    sim.at_us = calloc((size_t)sim.cap, sizeof *sim.at_us);
    pthread_t th;
    pthread_create(&th, NULL, s_sim_thread, &sim);
    while (!sim.ready) usleep(1000);
    usleep(2000000); /* every READY lands and the heartbeats settle */
    zsock_t *fe = zsock_new_dealer(lf_testfarm_frontend(farm, 0));
    char (*ids)[64] = calloc((size_t)jobs, sizeof *ids);
    double *sent = calloc((size_t)jobs, sizeof *sent);
    double *acc_ms = calloc((size_t)jobs, sizeof *acc_ms);
    double start = s_now_us();
    for (int j = 0; j < jobs; j++) {
        double due = start + j * 1e6 / rate, now = s_now_us();
        if (due > now) usleep((useconds_t)(due - now));
        lf_msg_t m = {.type = LF_MSG_SUBMIT, .req_id = (uint64_t)j + 1, .priority = LF_PRIO_NORMAL};
        m.params = (lf_job_params_t){.model = "lf-diagnostic", .prompt = "sim", .width = 64,
                                     .height = 64, .steps = 1, .batch_size = 1, .seed = j};
        sent[j] = s_now_us();
        s_send_msg(fe, &m);
        zframe_t *f = zframe_recv(fe);
        acc_ms[j] = (s_now_us() - sent[j]) / 1000.0;
        lf_msg_t acc = {0};
        if (f && lf_msg_decode(zframe_data(f), zframe_size(f), &acc, NULL) == 0 && acc.job_id)
            snprintf(ids[j], 64, "%s", acc.job_id);
        zframe_destroy(&f);
        lf_msg_clear(&acc);
    }
    usleep(2000000); /* the last assignments */
    sim.stop = 1;
    pthread_join(th, NULL);
    printf("  simulated workers' thread: longest time between two polls %.1f ms\n", sim.max_gap_ms);
    double *lat = calloc((size_t)jobs, sizeof *lat);
    double *bylat = calloc((size_t)jobs, sizeof *bylat);
    *got = 0;
    for (int j = 0; j < jobs; j++) {
        bylat[j] = -1;
        for (int k = 0; k < sim.n_seen; k++)
            if (ids[j][0] && !strcmp(ids[j], sim.ids[k])) {
                bylat[j] = lat[(*got)++] = (sim.at_us[k] - sent[j]) / 1000.0;
                break;
            }
    }
    /* The tail, to tell a slow broker (ACCEPTED late too) from a slow
     * simulated-worker thread (ACCEPTED on time, ASSIGN seen late). */
    printf("  slowest SUBMIT->ASSIGN (submitted at, SUBMIT->ACCEPTED):");
    for (int r = 0; r < 6; r++) {
        int worst = -1;
        for (int j = 0; j < jobs; j++)
            if (bylat[j] >= 0 && (worst < 0 || bylat[j] > bylat[worst])) worst = j;
        if (worst < 0) break;
        printf(" %.1f ms (%.2f s, %.2f ms);", bylat[worst], (sent[worst] - start) / 1e6, acc_ms[worst]);
        bylat[worst] = -1;
    }
    printf("\n");
    free(bylat);
    free(acc_ms);
    *p50 = s_pct(lat, (size_t)*got, 0.5);
    *p99 = s_pct(lat, (size_t)*got, 0.99);
    free(lat);
    free(ids);
    free(sent);
    free(sim.ids);
    free(sim.at_us);
    pthread_mutex_destroy(&sim.mu);
    zsock_destroy(&fe);
}

/* ---- 5. batched jobs ---------------------------------------------------- */

static int s_batch_submit(lf_testfarm_t *farm, int i, int size, int steps) {
    static const char *const colors[8] = {"red", "green", "blue", "yellow", "cyan", "orange", "pink", "brown"};
    char url[256], body[512];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    snprintf(body, sizeof body,
             "{\"prompt\":\"a %s circle on a %s background\",\"seed\":%d,\"width\":%d,\"height\":%d,"
             "\"steps\":%d,\"cfg_scale\":5}",
             colors[i % 8], colors[(i + 3) % 8], 3000 + i, size, size, steps);
    return lf_http_request("POST", url, "application/json", body, strlen(body), NULL, NULL);
}

/* The worker's batched_jobs from /v1/workers (-1 when unreadable); 0 workers: -2. */
static long long s_worker_batched(lf_testfarm_t *farm) {
    char url[256];
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    json_t *j = NULL;
    long long n = -1;
    if (lf_http_json("GET", url, NULL, &j) == 200) {
        json_t *w = json_array_get(json_object_get(j, "workers"), 0);
        n = w ? (long long)json_integer_value(json_object_get(w, "batched_jobs")) : -2;
    }
    json_decref(j);
    return n;
}

static void s_batch_part(bool small) {
    int size = small ? 128 : 256, steps = small ? 10 : 20, n = 8;
    printf("batched jobs: %d compatible jobs, lf-tiny-shapes %dx%d, %d steps, CFG 5, one worker\n", n, size, size,
           steps);
    printf("%-13s %9s %11s %9s %13s\n", "LF_BATCH_MAX", "seconds", "images/min", "vs 1", "jobs batched");
    static const int maxes[3] = {1, 2, 4};
    double t1 = 0;
    for (int k = 0; k < 3; k++) {
        char env_b[64];
        snprintf(env_b, sizeof env_b, "LF_BATCH_MAX=%d", maxes[k]);
        lf_testfarm_opts_t o = {.n_workers = 1,
                                .extra_env = {"LF_MODELS_DIR=" LF_SOURCE_DIR "/models",
                                              "LF_ASSETS_DIR=" LF_SOURCE_DIR "/assets", "LF_PREVIEW_EVERY=0", env_b}};
        lf_testfarm_t *farm = lf_testfarm_new(&o);
        if (!farm) return;
        while (s_worker_batched(farm) < 0) usleep(100000); /* the worker has joined */
        long long base = s_history_total(farm);
        s_batch_submit(farm, 99, size, steps); /* warm-up: the model, oneDNN's primitives */
        while (s_history_total(farm) < base + 1) usleep(50000);
        double t0 = s_now_us();
        for (int i = 0; i < n; i++)
            if (s_batch_submit(farm, i, size, steps) != 202) printf("submit %d refused\n", i);
        while (s_history_total(farm) < base + 1 + n) usleep(20000);
        double s = (s_now_us() - t0) / 1e6;
        if (k == 0) t1 = s;
        printf("%-13d %9.1f %11.2f %8.2fx %13lld\n", maxes[k], s, n * 60.0 / s, t1 / s, s_worker_batched(farm));
        fflush(stdout);
        lf_testfarm_destroy(&farm);
    }
}

int main(int argc, char **argv) {
    int jobs = argc > 1 ? atoi(argv[1]) : 4000;
    int workers = argc > 2 ? atoi(argv[2]) : 4;
    const char *parts = argc > 3 ? argv[3] : "redis,tput,lat,many";
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    zsys_set_max_sockets(4096);
    zsys_init();
    if (strstr(parts, "batch")) {
        s_batch_part(strstr(parts, "small") != NULL);
        if (!strstr(parts, "redis") && !strstr(parts, "tput") && !strstr(parts, "lat") && !strstr(parts, "many"))
            return 0;
    }

    /* "aof" in parts: Redis with AOF and appendfsync always, as deploy/lightfarm runs it
     * (default: no persistence, the engine's overhead alone). */
    lf_testfarm_opts_t o = {.n_workers = workers, .redis_aof = strstr(parts, "aof") != NULL,
                            .redis_fsync = strstr(parts, "everysec") ? "everysec" : NULL};
    if (o.redis_aof) printf("redis: AOF on, appendfsync %s\n", o.redis_fsync ? o.redis_fsync : "always");
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return 1;
    double rp99 = 0, rp50 = 1;
    if (strstr(parts, "redis")) {
        rp50 = s_redis_rtt_us(lf_testfarm_redis_port(farm), 20000, &rp99);
        printf("redis PING round trip: p50 %.1f us, p99 %.1f us\n", rp50, rp99);
    }
    if (strstr(parts, "tput")) {
        int failed = 0;
        s_throughput(farm, 400, 4, &failed); /* warm-up */
        double jps = s_throughput(farm, jobs, 8, &failed);
        printf("throughput: %d jobs through HTTP (POST /v1/jobs, lf-diagnostic, 1 step, 64x64), "
               "%d workers: %.0f jobs/s (%d submit errors)\n", jobs, workers, jps, failed);
    }
    double p50, p99, o50, o99;
    if (strstr(parts, "lat")) {
        int errors;
        s_latency(farm, 500, 2000, &p50, &p99, &o50, &o99, &errors);
        printf("latency at 500 jobs/s (blocking /sdapi/v1/txt2img, whole round trip): p50 %.2f ms, "
               "p99 %.2f ms (%d errors); ratio to redis p50: %.1fx\n", p50, p99, errors,
               p50 * 1000 / rp50);
        printf("overhead at 500 jobs/s (round trip minus the worker's own run_ms: HTTP client and "
               "server, gateway, broker, Redis, links): p50 %.2f ms, p99 %.2f ms\n", o50, o99);
    }
    lf_testfarm_destroy(&farm);
    if (!strstr(parts, "many")) return 0;

    /* A farm with no real worker: 1000 simulated ones. */
    lf_testfarm_opts_t o2 = {.n_workers = 0};
    farm = lf_testfarm_new(&o2);
    if (!farm) return 1;
    int got = 0;
    s_many_workers(farm, 1000, 1000, 100, &p50, &p99, &got);
    printf("dispatch with 1000 simulated workers (1000 jobs at 100/s straight to the broker, "
           "2000 heartbeats/s): %d/1000 assigned, SUBMIT->ASSIGN p50 %.2f ms, p99 %.2f ms\n",
           got, p50, p99);
    lf_testfarm_destroy(&farm);
    return 0;
}
