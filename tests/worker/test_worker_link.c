/* test_worker_link: the real lightfarm-worker binary against a broker played
 * by this test (a ROUTER and lf_proto): READY and caps, a job with PROGRESS
 * for every step and a RESULT with valid PNGs, cancel, a busy refusal, bad
 * jobs, malformed frames, reconnects after a silent or departing broker
 * (also mid-job, with a busy heartbeat a new broker can adopt), two brokers,
 * SIGTERM (finish the job, DISCONNECT, exit 0), and the ready file for
 * probes (LF_WORKER_READY_FILE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>

#include <czmq.h>
#include <fnmatch.h>
#include <png.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_link.h"
#include "lf_proto.h"

#ifndef LF_WORKER_BIN
#error "LF_WORKER_BIN must name the lightfarm-worker binary"
#endif

extern char **environ;

#define HB_MS 400 /* the worker's heartbeat in these tests; liveness 3 (200 ms was flaky on a loaded 2-core machine) */

/* ---- a broker played by the test ---------------------------------------- */

typedef struct {
    zsock_t *router;
    char endpoint[128];
    zframe_t *peer;     /* identity of the worker's current connection */
    bool beating;       /* send heartbeats to peer */
    int64_t next_beat;
    lf_msg_t last_hb;   /* the last HEARTBEAT received */
    pid_t pid;          /* the worker this broker serves; others are ignored */
    int n_hb;
} s_broker_t;

typedef struct {
    s_broker_t b, b2;
    pid_t pid;
    pid_t others[8]; /* more workers of one test, stopped by the teardown */
    size_t n_others;
    lf_msg_t ready;
} s_fix_t;

/* Bind to `endpoint` (a free port when NULL); a CURVE server when `cert`
 * is given. */
static void s_broker_bind_curve(s_broker_t *b, const char *endpoint, zcert_t *cert) {
    memset(b, 0, sizeof *b);
    b->router = zsock_new(ZMQ_ROUTER);
    assert_non_null(b->router);
    zsock_set_linger(b->router, 0);
    if (cert) {
        zsock_set_curve_server(b->router, 1);
        zcert_apply(cert, b->router);
    }
    /* Rebinding the port of a socket just closed (a broker restart) can
     * race the kernel releasing it: retry for a while. */
    int port = -1;
    for (int i = 0; i < 100; i++) {
        port = zsock_bind(b->router, "%s", endpoint ? endpoint : "tcp://127.0.0.1:*");
        if (port > 0) break;
        zclock_sleep(50);
    }
    assert_true(port > 0);
    snprintf(b->endpoint, sizeof b->endpoint, "%s", zsock_endpoint(b->router));
    b->beating = true;
}

static void s_broker_bind(s_broker_t *b, const char *endpoint) {
    s_broker_bind_curve(b, endpoint, NULL);
}

static void s_broker_init(s_broker_t *b) { s_broker_bind(b, NULL); }

static void s_broker_fini(s_broker_t *b) {
    zframe_destroy(&b->peer);
    lf_msg_clear(&b->last_hb);
    zsock_destroy(&b->router);
}

static void s_send_to(s_broker_t *b, const zframe_t *to, const lf_msg_t *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(lf_msg_encode(m, &buf, &len), 0);
    zmsg_t *z = zmsg_new();
    zmsg_append(z, &(zframe_t *){zframe_dup((zframe_t *)to)});
    zmsg_addmem(z, buf, len);
    assert_int_equal(zmsg_send(&z, b->router), 0);
    free(buf);
}

static void s_send_raw(s_broker_t *b, const void *data, size_t len, bool more_frames) {
    zmsg_t *z = zmsg_new();
    zmsg_append(z, &(zframe_t *){zframe_dup(b->peer)});
    zmsg_addmem(z, data, len);
    if (more_frames) zmsg_addstr(z, "extra");
    assert_int_equal(zmsg_send(&z, b->router), 0);
}

/* Next non-heartbeat message within timeout_ms (0 on success, -1 on
 * timeout). Heartbeats are answered and remembered on the way. */
static int s_next(s_broker_t *b, int timeout_ms, lf_msg_t *out) {
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t now = zclock_mono();
        if (b->beating && b->peer && now >= b->next_beat) {
            lf_msg_t hb = {.type = LF_MSG_HEARTBEAT};
            s_send_to(b, b->peer, &hb);
            b->next_beat = now + HB_MS;
        }
        if (now >= end) return -1;
        int64_t wait = end - now;
        if (b->beating && b->peer && b->next_beat - now < wait) wait = b->next_beat - now;
        zsock_set_rcvtimeo(b->router, (int)(wait > 0 ? wait : 0));
        zmsg_t *z = zmsg_recv(b->router);
        if (!z) continue;
        assert_int_equal(zmsg_size(z), 2); /* identity + one payload frame */
        zframe_t *id = zmsg_pop(z);
        zframe_t *body = zmsg_pop(z);
        lf_msg_t m = {0};
        assert_int_equal(lf_msg_decode(zframe_data(body), zframe_size(body), &m, NULL), 0);
        zframe_destroy(&body);
        zmsg_destroy(&z);
        /* Ports are reused at once, so a worker of another test or program
         * on this machine may reach us: only our worker's READY counts, and
         * then only the connection it came from. */
        bool ours = m.type == LF_MSG_READY ? !b->pid || m.caps.pid == b->pid
                                           : b->peer && zframe_eq(b->peer, id);
        if (!ours) {
            if (m.type == LF_MSG_READY)
                fprintf(stderr, "note: READY from pid %d ignored (expecting %d)\n",
                        (int)m.caps.pid, (int)b->pid);
            lf_msg_clear(&m);
            zframe_destroy(&id);
            continue;
        }
        /* Like a broker, take the worker's address from its READY (a late
         * message from a closed connection must not redirect us). */
        if (m.type == LF_MSG_READY) {
            zframe_destroy(&b->peer);
            b->peer = id;
        } else {
            zframe_destroy(&id);
        }
        if (m.type == LF_MSG_HEARTBEAT) {
            lf_msg_clear(&b->last_hb);
            b->last_hb = m;
            b->n_hb++;
            continue;
        }
        *out = m;
        return 0;
    }
}

/* Next message, which must be of `type`. */
static void s_expect(s_broker_t *b, lf_msg_type_t type, int timeout_ms, lf_msg_t *out) {
    lf_msg_t m = {0};
    if (s_next(b, timeout_ms, &m))
        fail_msg("no %s within %d ms", lf_msg_type_name(type), timeout_ms);
    if (m.type != type)
        fail_msg("expected %s, got %s (code %d %s)", lf_msg_type_name(type),
                 lf_msg_type_name(m.type), m.code, m.message ? m.message : "");
    *out = m;
}

/* Keep the link alive for ms, failing on any non-heartbeat message. */
static void s_quiet(s_broker_t *b, int ms) {
    lf_msg_t m = {0};
    if (s_next(b, ms, &m) == 0) fail_msg("unexpected %s", lf_msg_type_name(m.type));
}

static void s_assign_attempt(s_broker_t *b, const char *job_id, uint32_t attempt,
                             const char *model, uint32_t w, uint32_t h, uint32_t steps,
                             uint32_t delay_ms, uint32_t batch, int64_t seed) {
    lf_msg_t m = {.type = LF_MSG_ASSIGN, .job_id = (char *)job_id, .attempt = attempt};
    m.params = (lf_job_params_t){.model = (char *)model, .width = w, .height = h,
                                 .steps = steps, .step_delay_ms = delay_ms,
                                 .batch_size = batch, .seed = seed, .prompt = "a test card"};
    s_send_to(b, b->peer, &m);
}

static void s_assign(s_broker_t *b, const char *job_id, const char *model, uint32_t w,
                     uint32_t h, uint32_t steps, uint32_t delay_ms, uint32_t batch, int64_t seed) {
    s_assign_attempt(b, job_id, 1, model, w, h, steps, delay_ms, batch, seed);
}

static void s_cancel(s_broker_t *b, const char *job_id) {
    lf_msg_t m = {.type = LF_MSG_CANCEL, .job_id = (char *)job_id};
    s_send_to(b, b->peer, &m);
}

/* ---- the worker process --------------------------------------------------- */

/* Start the worker on `endpoints`, with `extra` ("K=V" strings, NULL-ended;
 * may be NULL) added to its environment and `arg` (may be NULL) as its one
 * argument. */
static pid_t s_spawn_with(const char *endpoints, const char *const *extra, const char *arg) {
    char e1[300], e2[64];
    snprintf(e1, sizeof e1, "LF_BROKER_BACKEND=%s", endpoints);
    snprintf(e2, sizeof e2, "LF_HEARTBEAT_MS=%d", HB_MS);
    size_t n = 0;
    while (environ[n]) n++;
    size_t n_extra = 0;
    while (extra && extra[n_extra]) n_extra++;
    char **env = calloc(n + n_extra + 12, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LF_", 3)) env[k++] = environ[i];
    const char *const ours[] = {e1, e2, "LF_WORKER_ID=test-worker", "LF_HEARTBEAT_LIVENESS=3",
                                "LF_RECONNECT_MIN_MS=250", "LF_MAX_PIXELS=1048576",
                                "LF_LOG_LEVEL=info", "LF_PREVIEW_EVERY=2"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        bool overridden = false;
        size_t klen = strcspn(ours[i], "=") + 1;
        for (size_t j = 0; j < n_extra; j++) overridden |= !strncmp(extra[j], ours[i], klen);
        if (!overridden) env[k++] = (char *)ours[i];
    }
    for (size_t i = 0; i < n_extra; i++) env[k++] = (char *)extra[i];
    char *argv[] = {LF_WORKER_BIN, (char *)arg, NULL};
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, LF_WORKER_BIN, NULL, NULL, argv, env), 0);
    free(env);
    return pid;
}

static pid_t s_spawn(const char *endpoints) { return s_spawn_with(endpoints, NULL, NULL); }

/* Exit status of the worker within timeout_ms, or -1 when still running. */
static int s_wait_exit(pid_t pid, int timeout_ms) {
    int64_t end = zclock_mono() + timeout_ms;
    do {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        zclock_sleep(20);
    } while (zclock_mono() < end);
    return -1;
}

static int s_setup(void **state) {
    s_fix_t *f = calloc(1, sizeof *f);
    s_broker_init(&f->b);
    f->pid = f->b.pid = s_spawn(f->b.endpoint);
    s_expect(&f->b, LF_MSG_READY, 10000, &f->ready);
    *state = f;
    return 0;
}

/* Stop a worker unless it has exited (or was reaped) already; only our
 * own children are ever signalled (waitpid says which are). */
static void s_reap(pid_t pid) {
    if (pid <= 0 || waitpid(pid, NULL, WNOHANG) != 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Another worker for this test; the teardown stops it if the test fails. */
static pid_t s_other(s_fix_t *f, pid_t pid) {
    assert_true(f->n_others < sizeof f->others / sizeof f->others[0]);
    f->others[f->n_others++] = pid;
    return pid;
}

static int s_teardown(void **state) {
    s_fix_t *f = *state;
    s_reap(f->pid);
    for (size_t i = 0; i < f->n_others; i++) s_reap(f->others[i]);
    lf_msg_clear(&f->ready);
    s_broker_fini(&f->b);
    if (f->b2.router) s_broker_fini(&f->b2);
    free(f);
    return 0;
}

static void s_check_png(const lf_bytes_t *png, uint32_t w, uint32_t h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_memory(&img, png->data, png->len));
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
    free(buf);
    assert_int_equal(img.width, w);
    assert_int_equal(img.height, h);
}

/* Expect PROGRESS 1..steps of job_id, then its RESULT (returned); returns
 * how many progress messages carried a (valid PNG) preview. */
static int s_expect_run(s_broker_t *b, const char *job_id, uint32_t steps, int timeout_ms,
                        lf_msg_t *result) {
    int previews = 0;
    for (uint32_t s = 1; s <= steps; s++) {
        lf_msg_t p = {0};
        s_expect(b, LF_MSG_PROGRESS, timeout_ms, &p);
        assert_string_equal(p.job_id, job_id);
        assert_int_equal(p.step, s);
        assert_int_equal(p.steps, steps);
        if (p.preview.len) {
            png_image img;
            memset(&img, 0, sizeof img);
            img.version = PNG_IMAGE_VERSION;
            assert_true(png_image_begin_read_from_memory(&img, p.preview.data, p.preview.len));
            png_image_free(&img);
            previews++;
        }
        lf_msg_clear(&p);
    }
    s_expect(b, LF_MSG_RESULT, timeout_ms, result);
    assert_string_equal(result->job_id, job_id);
    return previews;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_ready_caps(void **state) {
    s_fix_t *f = *state;
    const lf_msg_t *r = &f->ready;
    assert_string_equal(r->worker_id, "test-worker");
    assert_non_null(r->caps.host);
    assert_true(r->caps.host[0] != '\0');
    assert_int_equal(r->caps.pid, f->pid);
    assert_string_equal(r->caps.device_kind, "cpu");
    assert_non_null(r->caps.device_name);
    assert_true(r->caps.memory_bytes > 0);
    assert_int_equal(r->caps.max_pixels, 1048576);
    bool diag = false;
    for (size_t i = 0; i < r->caps.n_models; i++)
        if (!strcmp(r->caps.models[i].name, "lf-diagnostic")) {
            diag = true;
            assert_string_equal(r->caps.models[i].kind, "diagnostic");
        }
    assert_true(diag);
    assert_int_equal(r->caps.n_resident, 0);
    /* Its compute threads: every usable core (the only local worker), not pinned. */
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    assert_true(r->caps.threads >= 1 && (int)r->caps.threads <= CPU_COUNT(&mine));
    assert_string_equal(r->caps.pinning, "none");
    assert_non_null(r->caps.cpus);
    /* Heartbeats flow both ways and keep the link up: no second READY. */
    s_quiet(&f->b, 5 * HB_MS);
    assert_true(f->b.n_hb >= 3);
    assert_false(f->b.last_hb.busy);
    assert_string_equal(f->b.last_hb.worker_id, "test-worker");
}

static void test_job_progress_result(void **state) {
    s_fix_t *f = *state;
    s_assign(&f->b, "job-1", "lf-diagnostic", 64, 48, 5, 20, 2, 7);
    lf_msg_t res = {0};
    assert_true(s_expect_run(&f->b, "job-1", 5, 3000, &res) >= 1);
    assert_int_equal(res.n_images, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(res.images[i].seed, 7 + (int64_t)i);
        assert_int_equal(res.images[i].width, 64);
        assert_int_equal(res.images[i].height, 48);
        s_check_png(&res.images[i].png, 64, 48);
    }
    assert_non_null(res.info_json);
    assert_non_null(strstr(res.info_json, "\"seeds\":[7,8]"));
    /* The worker adds its own run time: 5 steps of 20 ms at least. */
    json_t *info = json_loads(res.info_json, 0, NULL);
    assert_non_null(info);
    json_t *run = json_object_get(info, "run_ms");
    assert_true(json_is_real(run));
    assert_true(json_real_value(run) >= 100.0);
    assert_true(json_real_value(run) < 3000.0);
    json_decref(info);
    lf_msg_clear(&res);
    /* Idle again, with the model resident and the job counted. */
    int before = f->b.n_hb;
    s_quiet(&f->b, 3 * HB_MS);
    assert_true(f->b.n_hb > before);
    assert_false(f->b.last_hb.busy);
    assert_int_equal(f->b.last_hb.caps.jobs_done, 1);
    assert_int_equal(f->b.last_hb.caps.n_resident, 1);
    assert_string_equal(f->b.last_hb.caps.resident[0], "lf-diagnostic");
}

static void test_cancel_mid_job(void **state) {
    s_fix_t *f = *state;
    s_assign(&f->b, "job-c", "lf-diagnostic", 32, 32, 150, 50, 1, 1); /* the table's most steps */
    lf_msg_t m = {0};
    /* Let it run past a heartbeat or two (the first may predate the job). */
    int hb0 = f->b.n_hb;
    while (f->b.n_hb < hb0 + 2) {
        s_expect(&f->b, LF_MSG_PROGRESS, 3000, &m);
        lf_msg_clear(&m);
    }
    /* While it runs the heartbeats say busy with this job. */
    assert_true(f->b.last_hb.busy);
    assert_string_equal(f->b.last_hb.job_id, "job-c");
    int64_t t0 = zclock_mono();
    s_cancel(&f->b, "job-other"); /* not ours: ignored */
    s_cancel(&f->b, "job-c");
    int progress_after = 0;
    for (;;) {
        assert_int_equal(s_next(&f->b, 3000, &m), 0);
        if (m.type != LF_MSG_PROGRESS) break;
        progress_after++;
        lf_msg_clear(&m);
    }
    assert_int_equal(m.type, LF_MSG_FAILED);
    assert_string_equal(m.job_id, "job-c");
    assert_int_equal(m.code, LF_ECANCELED);
    lf_msg_clear(&m);
    assert_true(progress_after <= 2);
    assert_true(zclock_mono() - t0 < 1000);
    /* Free for the next job at once. */
    s_assign(&f->b, "job-d", "lf-diagnostic", 16, 16, 2, 1, 1, 2);
    s_expect_run(&f->b, "job-d", 2, 3000, &m);
    lf_msg_clear(&m);
}

/* A batch (issue 18) to a worker with LF_BATCH_MAX=3: the first ASSIGN says
 * batch 3, the others name it (batch_of). The worker says batch_max 3 in its
 * caps, heartbeats busy with the first job, answers every job on its own,
 * and a CANCEL of one job of the batch ends that job alone (the diagnostic
 * backend has no run_batch: the runner runs the batch's jobs one by one). */
static void test_batch_jobs(void **state) {
    s_fix_t *f = *state;
    s_reap(f->pid); /* this test's worker batches */
    const char *const extra[] = {"LF_BATCH_MAX=3", "LF_THREADS=3", NULL};
    f->b.pid = s_other(f, s_spawn_with(f->b.endpoint, extra, NULL));
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_READY, 10000, &m);
    assert_int_equal(m.caps.batch_max, 3);
    assert_int_equal(m.caps.threads, 3); /* an explicit LF_THREADS wins over the cores */
    lf_msg_clear(&m);
    static const char *const ids[3] = {"job-b1", "job-b2", "job-b3"};
    for (int i = 0; i < 3; i++) {
        lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = (char *)ids[i], .attempt = 1, .batch = i ? 0 : 3,
                      .batch_of = i ? "job-b1" : NULL};
        a.params = (lf_job_params_t){.model = "lf-diagnostic", .width = 32, .height = 32, .steps = 16,
                                     .step_delay_ms = 60, .batch_size = 1, .seed = 1 + i, .prompt = "a test card"};
        s_send_to(&f->b, f->b.peer, &a);
    }
    int results = 0, cancelled = 0, hb_busy = 0, hb_all = 0, hb_after = 0;
    bool sent = false, again = false;
    int64_t end = zclock_mono() + 20000;
    while (results + cancelled < 3 && zclock_mono() < end) {
        int n_hb = f->b.n_hb;
        assert_int_equal(s_next(&f->b, 5000, &m), 0);
        const lf_msg_t *hb = &f->b.last_hb;
        if (hb->busy && hb->job_id && !strcmp(hb->job_id, "job-b1")) hb_busy++;
        /* Its heartbeats list every open job of the batch with its attempt
         * (a broker taking over mid-batch adopts each): all three while
         * they run, b2 no more once it has answered. */
        if (f->b.n_hb != n_hb && hb->busy && !cancelled && hb->n_jobs == 3) {
            for (size_t j = 0; j < 3; j++) {
                assert_string_equal(hb->jobs[j].id, ids[j]);
                assert_int_equal(hb->jobs[j].attempt, 1);
            }
            hb_all++;
        }
        if (f->b.n_hb != n_hb && hb->busy && cancelled && !results) {
            assert_int_equal(hb->n_jobs, 2);
            assert_string_equal(hb->jobs[0].id, "job-b1");
            assert_string_equal(hb->jobs[1].id, "job-b3");
            hb_after++;
        }
        if (m.type == LF_MSG_PROGRESS && !again && hb_all) {
            /* A standby broker that adopted the batch re-sends a member's
             * ASSIGN: it is one of the run's, not refused (a refusal
             * requeued it while it ran). */
            lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = "job-b3", .attempt = 1};
            a.params = (lf_job_params_t){.model = "lf-diagnostic", .width = 32, .height = 32, .steps = 16,
                                         .step_delay_ms = 60, .batch_size = 1, .seed = 3, .prompt = "a test card"};
            s_send_to(&f->b, f->b.peer, &a);
            again = true;
        }
        if (m.type == LF_MSG_PROGRESS && !sent && hb_all && !strcmp(m.job_id, "job-b2")) {
            s_cancel(&f->b, "job-b2");
            sent = true;
        } else if (m.type == LF_MSG_RESULT) {
            assert_string_not_equal(m.job_id, "job-b2");
            assert_int_equal(m.n_images, 1);
            results++;
        } else if (m.type == LF_MSG_FAILED) {
            assert_string_equal(m.job_id, "job-b2");
            assert_int_equal(m.code, LF_ECANCELED);
            cancelled++;
        }
        lf_msg_clear(&m);
    }
    assert_int_equal(results, 2);
    assert_int_equal(cancelled, 1);
    assert_true(hb_busy > 0);
    assert_true(hb_all > 0);
    assert_true(again);
    /* Idle again: the next job runs at once. */
    s_assign(&f->b, "job-b4", "lf-diagnostic", 16, 16, 2, 1, 1, 2);
    s_expect_run(&f->b, "job-b4", 2, 5000, &m);
    lf_msg_clear(&m);
}

static void test_busy_and_bad_jobs(void **state) {
    s_fix_t *f = *state;
    lf_msg_t m = {0};
    s_assign(&f->b, "job-x", "no-such-model", 64, 64, 2, 1, 1, 1);
    s_expect(&f->b, LF_MSG_FAILED, 3000, &m);
    assert_string_equal(m.job_id, "job-x");
    assert_int_equal(m.code, LF_ENOTFOUND);
    lf_msg_clear(&m);
    s_assign(&f->b, "job-y", "lf-diagnostic", 2048, 2048, 2, 1, 1, 1); /* > LF_MAX_PIXELS */
    s_expect(&f->b, LF_MSG_FAILED, 3000, &m);
    assert_int_equal(m.code, LF_ELIMIT);
    lf_msg_clear(&m);
    s_assign(&f->b, "job-z", "lf-diagnostic", 0, 64, 2, 1, 1, 1);
    s_expect(&f->b, LF_MSG_FAILED, 3000, &m);
    assert_int_equal(m.code, LF_EINVAL);
    lf_msg_clear(&m);

    /* One job at a time: a second ASSIGN is refused, the first one finishes. */
    s_assign(&f->b, "job-a", "lf-diagnostic", 32, 32, 4, 50, 1, 1);
    s_expect(&f->b, LF_MSG_PROGRESS, 3000, &m);
    lf_msg_clear(&m);
    s_assign(&f->b, "job-b", "lf-diagnostic", 32, 32, 4, 50, 1, 1);
    bool refused = false, done = false;
    while (!done) {
        assert_int_equal(s_next(&f->b, 3000, &m), 0);
        if (m.type == LF_MSG_FAILED) {
            assert_string_equal(m.job_id, "job-b");
            assert_int_equal(m.code, LF_EBUSY);
            refused = true;
        } else if (m.type == LF_MSG_RESULT) {
            assert_string_equal(m.job_id, "job-a");
            done = true;
        } else {
            assert_int_equal(m.type, LF_MSG_PROGRESS);
            assert_string_equal(m.job_id, "job-a");
        }
        lf_msg_clear(&m);
    }
    assert_true(refused);
}

static void test_malformed_frames(void **state) {
    s_fix_t *f = *state;
    static const uint8_t junk[] = {0xc1, 0xff, 0x00, 0x13, 0x37};
    s_send_raw(&f->b, junk, sizeof junk, false);
    s_send_raw(&f->b, "", 0, false);
    s_send_raw(&f->b, "\x81\xa1v\x01", 4, false); /* a map without a type */
    s_send_raw(&f->b, junk, sizeof junk, true);    /* two frames */
    /* A well-formed map of an unknown type, and a truncated ASSIGN. */
    s_send_raw(&f->b, "\x82\xa1v\x01\xa1t\xa4nope", 11, false);
    lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = "j", .attempt = 1};
    a.params = (lf_job_params_t){.model = "lf-diagnostic", .width = 8, .height = 8};
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(lf_msg_encode(&a, &buf, &len), 0);
    s_send_raw(&f->b, buf, len / 2, false);
    free(buf);
    /* A message meant for brokers. */
    lf_msg_t odd = {.type = LF_MSG_READY, .worker_id = "x", .caps = {.host = "h"}};
    s_send_to(&f->b, f->b.peer, &odd);
    s_quiet(&f->b, 2 * HB_MS);
    assert_int_equal(s_wait_exit(f->pid, 0), -1); /* still running */
    lf_msg_t m = {0};
    s_assign(&f->b, "job-ok", "lf-diagnostic", 24, 24, 1, 0, 1, 3);
    s_expect_run(&f->b, "job-ok", 1, 3000, &m);
    s_check_png(&m.images[0].png, 24, 24);
    lf_msg_clear(&m);
}

static void test_reconnect_after_silence(void **state) {
    s_fix_t *f = *state;
    zframe_t *first = zframe_dup(f->b.peer);
    f->b.beating = false;
    int64_t t0 = zclock_mono();
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_READY, 10000, &m);
    int64_t waited = zclock_mono() - t0;
    /* Dead after 3 missed beats (3 * HB_MS), then the 250 ms backoff. */
    assert_true(waited >= 2 * HB_MS);
    assert_true(waited < 8000);
    assert_false(zframe_eq(first, f->b.peer)); /* a fresh connection */
    assert_string_equal(m.worker_id, "test-worker");
    lf_msg_clear(&m);
    zframe_destroy(&first);
    /* Answering again keeps the new connection: no further READY. */
    f->b.beating = true;
    f->b.next_beat = 0;
    s_quiet(&f->b, 8 * HB_MS);
    /* A broker that says DISCONNECT gets a fresh READY soon after. */
    lf_msg_t bye = {.type = LF_MSG_DISCONNECT};
    s_send_to(&f->b, f->b.peer, &bye);
    s_expect(&f->b, LF_MSG_READY, 3000, &m);
    lf_msg_clear(&m);
}

static void test_reconnect_mid_job_adoptable(void **state) {
    s_fix_t *f = *state;
    s_assign(&f->b, "job-r", "lf-diagnostic", 32, 32, 25, 100, 1, 5);
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_PROGRESS, 3000, &m);
    lf_msg_clear(&m);
    /* The broker "restarts": silent until the worker gives up on it. */
    f->b.beating = false;
    zframe_t *old = zframe_dup(f->b.peer);
    for (;;) {
        assert_int_equal(s_next(&f->b, 5000, &m), 0);
        if (m.type == LF_MSG_READY) break;
        assert_int_equal(m.type, LF_MSG_PROGRESS); /* still going on the old link */
        lf_msg_clear(&m);
    }
    lf_msg_clear(&m);
    assert_false(zframe_eq(old, f->b.peer));
    zframe_destroy(&old);
    f->b.beating = true;
    f->b.next_beat = 0;
    /* The new connection hears busy heartbeats naming the job, then gets the
     * progress and the result. */
    int hb0 = f->b.n_hb;
    bool got_result = false;
    while (!got_result) {
        assert_int_equal(s_next(&f->b, 5000, &m), 0);
        if (m.type == LF_MSG_RESULT) {
            assert_string_equal(m.job_id, "job-r");
            got_result = true;
        } else {
            assert_int_equal(m.type, LF_MSG_PROGRESS);
        }
        lf_msg_clear(&m);
        if (f->b.n_hb > hb0 && !got_result) {
            assert_true(f->b.last_hb.busy);
            assert_string_equal(f->b.last_hb.job_id, "job-r");
        }
    }
    assert_true(f->b.n_hb > hb0);
}

/* The worker counts the ASSIGNs it reads (READY, heartbeats: the broker
 * tells a report that crossed its ASSIGN), and never runs a job it has
 * finished again when the same attempt is assigned once more (a standby
 * broker adopting the job re-sends it); a new attempt runs. */
static void test_assign_counted_finished_not_rerun(void **state) {
    s_fix_t *f = *state;
    assert_true(f->ready.has_assigns);
    assert_int_equal(f->ready.assigns, 0);
    s_assign(&f->b, "job-r", "lf-diagnostic", 32, 32, 2, 1, 1, 3);
    lf_msg_t m = {0};
    s_expect_run(&f->b, "job-r", 2, 3000, &m);
    lf_msg_clear(&m);
    s_assign(&f->b, "job-r", "lf-diagnostic", 32, 32, 2, 1, 1, 3);
    s_quiet(&f->b, 3 * HB_MS);
    assert_true(f->b.last_hb.has_assigns);
    assert_int_equal(f->b.last_hb.assigns, 2);
    assert_false(f->b.last_hb.busy);
    assert_int_equal(f->b.last_hb.caps.jobs_done, 1);
    s_assign_attempt(&f->b, "job-r", 2, "lf-diagnostic", 32, 32, 2, 1, 1, 3);
    s_expect_run(&f->b, "job-r", 2, 3000, &m);
    lf_msg_clear(&m);
}

static void test_broker_restart_result_kept(void **state) {
    s_fix_t *f = *state;
    s_assign(&f->b, "job-k", "lf-diagnostic", 32, 32, 3, 100, 1, 6);
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_PROGRESS, 3000, &m);
    lf_msg_clear(&m);
    /* The broker crashes; the job ends (~200 ms) before the worker can
     * notice (>= 400 ms), so its RESULT goes into a dead connection. */
    char ep[128];
    snprintf(ep, sizeof ep, "%s", f->b.endpoint);
    s_broker_fini(&f->b);
    zclock_sleep(1200);
    s_broker_bind(&f->b, ep); /* restarted on the same port */
    s_expect(&f->b, LF_MSG_READY, 5000, &m);
    lf_msg_clear(&m);
    s_expect(&f->b, LF_MSG_RESULT, 3000, &m);
    assert_string_equal(m.job_id, "job-k");
    s_check_png(&m.images[0].png, 32, 32);
    lf_msg_clear(&m);
    /* Delivered once the broker is heard from: not sent again. */
    s_quiet(&f->b, 6 * HB_MS);
}

static void test_sigterm_finishes_job(void **state) {
    s_fix_t *f = *state;
    s_assign(&f->b, "job-t", "lf-diagnostic", 40, 32, 8, 100, 1, 9);
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_PROGRESS, 3000, &m);
    lf_msg_clear(&m);
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    /* New work is refused while it drains. */
    s_assign(&f->b, "job-late", "lf-diagnostic", 8, 8, 1, 0, 1, 1);
    uint32_t last_step = 1;
    bool refused = false;
    for (;;) {
        assert_int_equal(s_next(&f->b, 3000, &m), 0);
        if (m.type == LF_MSG_RESULT) break;
        if (m.type == LF_MSG_FAILED) {
            assert_string_equal(m.job_id, "job-late");
            assert_int_equal(m.code, LF_EBUSY);
            refused = true;
        } else {
            assert_int_equal(m.type, LF_MSG_PROGRESS);
            assert_int_equal(m.step, last_step + 1);
            last_step = m.step;
        }
        lf_msg_clear(&m);
    }
    assert_string_equal(m.job_id, "job-t");
    assert_int_equal(last_step, 8); /* every step ran */
    s_check_png(&m.images[0].png, 40, 32);
    lf_msg_clear(&m);
    assert_true(refused);
    s_expect(&f->b, LF_MSG_DISCONNECT, 3000, &m);
    assert_string_equal(m.worker_id, "test-worker");
    lf_msg_clear(&m);
    assert_int_equal(s_wait_exit(f->pid, 5000), 0);
    f->pid = 0;
}

static void test_sigterm_idle(void **state) {
    s_fix_t *f = *state;
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_DISCONNECT, 3000, &m);
    lf_msg_clear(&m);
    assert_int_equal(s_wait_exit(f->pid, 5000), 0);
    f->pid = 0;
}

static void test_two_brokers(void **state) {
    s_fix_t *f = *state;
    /* Replace the fixture's worker by one connected to two brokers. */
    s_reap(f->pid);
    s_broker_init(&f->b2);
    char list[300];
    snprintf(list, sizeof list, "%s, %s", f->b.endpoint, f->b2.endpoint);
    f->pid = f->b.pid = f->b2.pid = s_spawn(list);
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_READY, 10000, &m);
    lf_msg_clear(&m);
    s_expect(&f->b2, LF_MSG_READY, 3000, &m);
    lf_msg_clear(&m);
    /* A job from the second broker answers there. */
    s_assign(&f->b2, "job-2", "lf-diagnostic", 16, 16, 3, 10, 1, 4);
    s_expect_run(&f->b2, "job-2", 3, 3000, &m);
    lf_msg_clear(&m);
    s_quiet(&f->b, 2 * HB_MS); /* nothing of it went to the first */
    /* The first broker falls silent right after an ASSIGN; the second,
     * adopting the job, assigns it again: the worker, done with it, sends
     * its held answer there instead of running the job a second time. */
    s_assign(&f->b, "job-3", "lf-diagnostic", 16, 16, 1, 1, 1, 5);
    s_quiet(&f->b2, HB_MS); /* job-3 is done in ms; b2 keeps beating, b says nothing */
    s_assign(&f->b2, "job-3", "lf-diagnostic", 16, 16, 1, 1, 1, 5);
    s_expect(&f->b2, LF_MSG_RESULT, 3000, &m);
    assert_string_equal(m.job_id, "job-3");
    assert_int_equal(m.images[0].seed, 5);
    lf_msg_clear(&m);
}

static void test_bad_settings_exit(void **state) {
    s_fix_t *f = *state;
    static const char *const cuda[] = {"LF_WORKER_DEVICE=cuda", NULL};
    static const char *const hb[] = {"LF_HEARTBEAT_MS=abc", NULL};
    static const char *const cert[] = {"LF_CURVE_SERVER_CERT=/nonexistent/broker.cert", NULL};
#define EXIT_OF(endpoint, env, arg) s_wait_exit(s_other(f, s_spawn_with(endpoint, env, arg)), 10000)
    assert_int_equal(EXIT_OF(f->b.endpoint, NULL, "--bogus"), 2);
    assert_int_equal(EXIT_OF(f->b.endpoint, hb, NULL), 2);
    assert_int_equal(EXIT_OF("tcp://no-port", NULL, NULL), 1);
    assert_int_equal(EXIT_OF(f->b.endpoint, cuda, NULL), 1);
    assert_int_equal(EXIT_OF(f->b.endpoint, cert, NULL), 1);
    assert_int_equal(EXIT_OF(f->b.endpoint, NULL, "--help"), 0);
#undef EXIT_OF
}

static void test_curve(void **state) {
    s_fix_t *f = *state;
    if (!zsys_has_curve()) skip();
    s_reap(f->pid);
    /* An encrypting broker with its own certificate; the worker has its own
     * too (saved with the secret part, as czmq writes them). */
    char dir[] = "/tmp/lf-curve-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char server_path[96], client_path[96], client_secret[112];
    snprintf(server_path, sizeof server_path, "%s/broker.cert", dir);
    snprintf(client_path, sizeof client_path, "%s/worker.cert", dir);
    snprintf(client_secret, sizeof client_secret, "%s_secret", client_path);
    zcert_t *server = zcert_new(), *client = zcert_new();
    assert_int_equal(zcert_save_public(server, server_path), 0);
    assert_int_equal(zcert_save(client, client_path), 0);
    s_broker_t *b = &f->b2;
    s_broker_bind_curve(b, NULL, server);
    char e1[160], e2[160];
    snprintf(e1, sizeof e1, "LF_CURVE_SERVER_CERT=%s", server_path);
    snprintf(e2, sizeof e2, "LF_CURVE_CERT=%s", client_secret);
    const char *const env[] = {e1, e2, NULL};
    f->pid = b->pid = s_spawn_with(b->endpoint, env, NULL);
    lf_msg_t m = {0};
    s_expect(b, LF_MSG_READY, 10000, &m);
    lf_msg_clear(&m);
    s_assign(b, "job-sec", "lf-diagnostic", 16, 16, 2, 10, 1, 1);
    s_expect_run(b, "job-sec", 2, 3000, &m);
    lf_msg_clear(&m);
    /* A plain-TCP worker gets nowhere with it. */
    pid_t plain = s_other(f, s_spawn(b->endpoint));
    b->pid = 0; /* any READY now fails the test (plain peers cannot reach us) */
    s_quiet(b, 5 * HB_MS);
    s_reap(plain);
    f->n_others = 0;
    zcert_destroy(&server);
    zcert_destroy(&client);
    unlink(server_path);
    unlink(client_path);
    unlink(client_secret);
    rmdir(dir);
}

/* Drive a link (in this process) for up to ms against b; true once the
 * broker's ROUTER has received something from it. */
static bool s_link_run(lf_link_t *l, s_broker_t *b, int ms) {
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        int64_t now = zclock_mono();
        lf_heartbeat_action_t a;
        while ((a = lf_link_poll(l, now)) != LF_HB_NONE)
            if (a == LF_HB_CONNECT || a == LF_HB_SEND) lf_link_send(l, (const uint8_t *)"hi", 2);
        zsock_set_rcvtimeo(b->router, 20);
        zmsg_t *m = zmsg_recv(b->router);
        if (m) {
            zmsg_destroy(&m);
            return true;
        }
        if (lf_link_refusals(l)) return false;
    }
    return false;
}

/* A broker whose authenticator does not know the worker's key refuses the
 * CURVE handshake; the link counts the refusal and logs it as such (not
 * only as a silent broker). The same link with the key allowed gets
 * through and counts nothing. */
static void test_curve_refused(void **state) {
    (void)state;
    if (!zsys_has_curve()) skip();
    char dir[] = "/tmp/lf-curve-refused-XXXXXX";
    assert_non_null(mkdtemp(dir));
    zactor_t *auth = zactor_new(zauth, NULL);
    assert_non_null(auth);
    assert_int_equal(zstr_sendx(auth, "CURVE", dir, NULL), 0); /* allow only the keys in dir */
    assert_int_equal(zsock_wait(auth), 0);
    zcert_t *server = zcert_new(), *client = zcert_new();
    s_broker_t b;
    s_broker_bind_curve(&b, NULL, server);
    lf_heartbeat_cfg_t hb = {.interval_ms = 100, .liveness = 3, .backoff_min_ms = 100,
                             .backoff_max_ms = 200};
    lf_link_curve_t kc = {zcert_public_txt(server), zcert_public_txt(client),
                          zcert_secret_txt(client)};
    lf_link_t *l = lf_link_new(b.endpoint, &hb, &kc, zclock_mono());
    assert_non_null(l);
    /* The link logs to stderr: catch it in a file for this part. */
    char logpath[] = "/tmp/lf-curve-refused-log-XXXXXX";
    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(logfd, STDERR_FILENO);
    bool got = s_link_run(l, &b, 5000);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_false(got);
    assert_true(lf_link_refusals(l) >= 1);
    char text[4096] = "";
    ssize_t n = pread(logfd, text, sizeof text - 1, 0);
    close(logfd);
    unlink(logpath);
    text[n > 0 ? n : 0] = '\0';
    fprintf(stderr, "%s", text);
    assert_non_null(strstr(text, "refused this worker's CURVE key"));
    lf_link_destroy(&l, 0);

    /* Allowed: the same keys get through. */
    char cpath[160];
    snprintf(cpath, sizeof cpath, "%s/worker.cert", dir);
    assert_int_equal(zcert_save_public(client, cpath), 0);
    zstr_sendx(auth, "CURVE", dir, NULL);
    assert_int_equal(zsock_wait(auth), 0);
    l = lf_link_new(b.endpoint, &hb, &kc, zclock_mono());
    assert_non_null(l);
    assert_true(s_link_run(l, &b, 5000));
    assert_int_equal(lf_link_refusals(l), 0);
    lf_link_destroy(&l, 0);
    s_broker_fini(&b);
    zactor_destroy(&auth);
    zcert_destroy(&server);
    zcert_destroy(&client);
    unlink(cpath);
    rmdir(dir);
}

/* Pump the link for ms: heartbeats answered, a READY (a reconnect) taken;
 * anything else fails. */
static void s_pump(s_broker_t *b, int ms) {
    int64_t end = zclock_mono() + ms;
    for (int64_t now; (now = zclock_mono()) < end;) {
        lf_msg_t m = {0};
        if (s_next(b, (int)(end - now), &m)) return;
        if (m.type != LF_MSG_READY) fail_msg("unexpected %s", lf_msg_type_name(m.type));
        lf_msg_clear(&m);
    }
}

static bool s_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Pump until the file's existence is `want` (true within timeout_ms). */
static bool s_wait_file(s_broker_t *b, const char *path, bool want, int timeout_ms) {
    int64_t end = zclock_mono() + timeout_ms;
    while (s_exists(path) != want) {
        if (zclock_mono() >= end) return false;
        s_pump(b, 50);
    }
    return true;
}

static int64_t s_mtime_ns(const char *path) {
    struct stat st;
    if (stat(path, &st)) return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

/* LF_WORKER_READY_FILE: absent until a broker answers the READY, then
 * written (one line naming the worker) and rewritten every heartbeat;
 * removed while no broker answers and back after the reconnect; removed as
 * soon as SIGTERM starts the drain, while the running job still finishes;
 * absent after exit. A folder that cannot hold it stops the worker at start. */
static void test_ready_file(void **state) {
    (void)state;
    char dir[] = "/tmp/lf-test-ready.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], tmp[160], env[160];
    snprintf(path, sizeof path, "%s/worker.ready", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(env, sizeof env, "LF_WORKER_READY_FILE=%s", path);
    const char *const extra[] = {env, NULL};

    s_fix_t *f = calloc(1, sizeof *f);
    s_broker_init(&f->b);
    f->b.beating = false; /* registered only once the broker answers */
    f->pid = f->b.pid = s_spawn_with(f->b.endpoint, extra, NULL);
    s_expect(&f->b, LF_MSG_READY, 10000, &f->ready);
    s_pump(&f->b, HB_MS); /* less than the 3 beats that would declare the broker dead */
    assert_false(s_exists(path));

    f->b.beating = true;
    f->b.next_beat = 0;
    assert_true(s_wait_file(&f->b, path, true, 3000));
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_int_equal(strncmp(line, "ready worker=test-worker brokers=1 models=", 42), 0);
    assert_false(s_exists(tmp));

    /* Rewritten every heartbeat interval: the mtime moves on. */
    int64_t t1 = s_mtime_ns(path);
    s_pump(&f->b, 3 * HB_MS);
    assert_true(s_mtime_ns(path) > t1);

    /* A silent broker: not ready once the worker declares it dead; ready
     * again once the new connection is answered. */
    f->b.beating = false;
    assert_true(s_wait_file(&f->b, path, false, 8000));
    f->b.beating = true;
    f->b.next_beat = 0;
    assert_true(s_wait_file(&f->b, path, true, 10000));

    /* SIGTERM mid-job: the file goes at once, the job still finishes. */
    s_assign(&f->b, "job-r", "lf-diagnostic", 16, 16, 8, 100, 1, 3);
    lf_msg_t m = {0};
    s_expect(&f->b, LF_MSG_PROGRESS, 3000, &m);
    lf_msg_clear(&m);
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    bool gone_before_result = false;
    for (;;) {
        assert_int_equal(s_next(&f->b, 3000, &m), 0);
        if (m.type == LF_MSG_RESULT) break;
        assert_int_equal(m.type, LF_MSG_PROGRESS);
        gone_before_result |= !s_exists(path);
        lf_msg_clear(&m);
    }
    assert_string_equal(m.job_id, "job-r");
    lf_msg_clear(&m);
    assert_true(gone_before_result);
    s_expect(&f->b, LF_MSG_DISCONNECT, 3000, &m);
    lf_msg_clear(&m);
    assert_int_equal(s_wait_exit(f->pid, 5000), 0);
    f->pid = 0;
    assert_false(s_exists(path));

    /* A folder that does not exist: exit 1 at start, not a worker that is
     * never ready. */
    static const char *const bad[] = {"LF_WORKER_READY_FILE=/nonexistent-lf/dir/ready", NULL};
    assert_int_equal(s_wait_exit(s_other(f, s_spawn_with(f->b.endpoint, bad, NULL)), 10000), 1);

    /* LF_WORKER_PRELOAD: the model is resident before the worker offers
     * itself (READY says so, and so does the ready file); a model that is
     * not there stops the worker at start. */
    char env2[200];
    snprintf(env2, sizeof env2, "LF_WORKER_READY_FILE=%s", path);
    const char *const pre[] = {env2, "LF_WORKER_PRELOAD=lf-diagnostic", NULL};
    s_fix_t *g = calloc(1, sizeof *g);
    s_broker_init(&g->b);
    g->pid = g->b.pid = s_spawn_with(g->b.endpoint, pre, NULL);
    s_expect(&g->b, LF_MSG_READY, 10000, &g->ready);
    assert_int_equal(g->ready.caps.n_resident, 1);
    assert_string_equal(g->ready.caps.resident[0], "lf-diagnostic");
    assert_true(s_wait_file(&g->b, path, true, 5000));
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_non_null(strstr(line, "resident=lf-diagnostic"));
    void *gfix = g;
    s_teardown(&gfix);
    static const char *const nosuch[] = {"LF_WORKER_PRELOAD=no-such-model", NULL};
    assert_int_equal(s_wait_exit(s_other(f, s_spawn_with(f->b.endpoint, nosuch, NULL)), 10000), 1);
    unlink(path);

    rmdir(dir);
    void *fix = f;
    s_teardown(&fix);
}

/* argv[1], when given, selects tests by name (a glob: "test_curve",
 * "*reconnect*"); a pattern that selects nothing is an error. */
int main(int argc, char **argv) {
    zsys_init();
    zsys_set_linger(0);
#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_ready_caps),
        T(test_job_progress_result),
        T(test_cancel_mid_job),
        T(test_batch_jobs),
        T(test_busy_and_bad_jobs),
        T(test_malformed_frames),
        T(test_reconnect_after_silence),
        T(test_reconnect_mid_job_adoptable),
        T(test_broker_restart_result_kept),
        T(test_assign_counted_finished_not_rerun),
        T(test_sigterm_finishes_job),
        T(test_sigterm_idle),
        T(test_two_brokers),
        T(test_bad_settings_exit),
        T(test_curve),
        cmocka_unit_test(test_curve_refused),
        cmocka_unit_test(test_ready_file),
    };
    if (argc > 1) {
        bool any = false;
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
            any |= fnmatch(argv[1], tests[i].name, 0) == 0;
        if (!any) {
            fprintf(stderr, "no test matches '%s'\n", argv[1]);
            return 1;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
