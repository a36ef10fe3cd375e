/* test_store: lf_store against a real redis-server (lf_testredis): the job
 * lifecycle (submit, claim, progress, complete, fail, requeue, cancel, reap),
 * fencing, racing claims from two connections, TTLs, history retention,
 * the result cap, the small stores, the reads, and a Redis restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_id.h"
#include "lf_store.h"
#include "lf_testredis.h"

static lf_testredis_t *g_redis; /* one server for the whole file */

static int64_t s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static lf_store_t *s_open(void) {
    char err[256] = "";
    lf_store_opts_t o = {.port = lf_testredis_port(g_redis), .prefix = "t:"};
    lf_store_t *s = lf_store_new(&o, err, sizeof err);
    if (!s) fprintf(stderr, "store: %s\n", err);
    assert_non_null(s);
    return s;
}

static int s_setup(void **state) {
    lf_store_t *s = s_open();
    assert_int_equal(lf_store_flush(s), 0);
    *state = s;
    return 0;
}

static int s_teardown(void **state) {
    lf_store_t *s = *state;
    lf_store_destroy(&s);
    assert_null(s);
    return 0;
}

static lf_job_params_t s_params(const char *model, uint32_t w, uint32_t h) {
    return (lf_job_params_t){.model = (char *)model, .prompt = "a cat", .width = w, .height = h,
                             .steps = 4, .batch_size = 1, .seed = 42, .cfg_scale = 7.0};
}

/* Submit job j (its params: s_params's with enhance_prompt as enhance_ms
 * asks); its id in id_out. */
static lf_store_submitted_t s_submit_j(lf_store_t *s, lf_store_submit_t j, int64_t now, char *id_out) {
    lf_job_params_t p = s_params(j.params ? j.params->model : "m1", 64, 64);
    p.enhance_prompt = j.enhance_ms > 0;
    j.params = &p;
    lf_store_submitted_t out;
    assert_int_equal(lf_store_submit(s, &j, 1, now, &out), 0);
    assert_int_equal(out.code, 0);
    assert_true(lf_id_valid(out.id));
    strcpy(id_out, out.id);
    return out;
}

/* Submit one job; returns its id in id_out. */
static int64_t s_submit(lf_store_t *s, const char *model, lf_priority_t prio, const char *idem,
                        uint32_t ttl_s, uint32_t max_attempts, int64_t now, char *id_out) {
    lf_job_params_t m = {.model = (char *)model};
    lf_store_submit_t j = {.params = &m, .priority = prio, .idem_key = idem, .ttl_s = ttl_s,
                           .max_attempts = max_attempts};
    return s_submit_j(s, j, now, id_out).position;
}

static int s_claim1(lf_store_t *s, const char *id, const char *worker, int64_t now,
                    uint32_t *attempt) {
    lf_store_pair_t p = {id, worker};
    lf_store_claim_t c;
    assert_int_equal(lf_store_claim(s, &p, 1, "b1", now, &c), 0);
    int code = c.code;
    if (!code) {
        assert_string_equal(c.params.model, "m1");
        if (attempt) *attempt = c.attempt;
    }
    lf_store_claim_clear(&c);
    return code;
}

static lf_job_status_t s_status(lf_store_t *s, const char *id) {
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    lf_job_status_t st = v.status;
    lf_job_view_clear(&v);
    return st;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_submit_claim_complete(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char id[40];
    assert_int_equal(s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, id), 0);

    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_QUEUED);
    assert_int_equal(v.position, 0);
    assert_int_equal(v.attempts, 0);
    assert_int_equal(v.max_attempts, 3);
    assert_string_equal(v.params.model, "m1");
    assert_string_equal(v.params.prompt, "a cat");
    assert_int_equal(v.created_ms, now);
    lf_job_view_clear(&v);

    lf_store_candidate_t c[8];
    size_t n;
    assert_int_equal(lf_store_peek(s, 4, c, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].id, id);
    assert_string_equal(c[0].model, "m1");
    assert_int_equal(c[0].pixels, 64 * 64);
    assert_int_equal(c[0].priority, LF_PRIO_NORMAL);
    assert_string_equal(c[0].refiner, ""); /* none */

    uint32_t att = 0;
    assert_int_equal(s_claim1(s, id, "w1", now + 10, &att), 0);
    assert_int_equal(att, 1);
    assert_int_equal(s_claim1(s, id, "w2", now + 10, NULL), LF_EBUSY); /* already taken */
    assert_int_equal(lf_store_peek(s, 4, c, 8, &n), 0);
    assert_int_equal(n, 0);

    const uint8_t prev[] = {1, 2, 3};
    assert_int_equal(lf_store_progress(s, id, "w1", 2, 4, prev, sizeof prev, now + 20), 0);
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_store_preview_get(s, id, &d, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(d, prev, 3);
    free(d);
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_RUNNING);
    assert_string_equal(v.worker_id, "w1");
    assert_int_equal(v.step, 2);
    assert_int_equal(v.steps, 4);
    assert_int_equal(v.position, -1);
    lf_job_view_clear(&v);

    uint8_t png0[] = {0x89, 'P', 'N', 'G', 0}, png1[] = {0x89, 'P', 'N', 'G', 1, 2};
    lf_image_out_t imgs[2] = {{{png0, sizeof png0}, 42, 64, 64}, {{png1, sizeof png1}, 43, 64, 64}};
    lf_store_finish_t f;
    assert_int_equal(lf_store_complete(s, id, "w1", att, imgs, 2, "{\"x\":1}", now + 100, &f), 0);
    assert_int_equal(f.status, LF_JOB_DONE);
    assert_int_equal(f.run_ms, 90);
    assert_int_equal(lf_store_complete(s, id, "w1", att, imgs, 2, "{}", now + 110, &f), LF_ESTATE);

    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_DONE);
    assert_int_equal(v.n_images, 2);
    assert_non_null(v.seeds);
    assert_int_equal(v.seeds[0], 42);
    assert_int_equal(v.seeds[1], 43);
    assert_string_equal(v.info_json, "{\"x\":1}");
    assert_int_equal(v.finished_ms, now + 100);
    assert_int_equal(v.code, 0);
    lf_job_view_clear(&v);
    assert_int_equal(lf_store_image_get(s, id, 1, &d, &len), 0);
    assert_int_equal(len, sizeof png1);
    assert_memory_equal(d, png1, len);
    free(d);
    assert_int_equal(lf_store_image_get(s, id, 2, &d, &len), LF_ENOTFOUND);
    assert_int_equal(lf_store_preview_get(s, id, &d, &len), LF_ENOTFOUND); /* dropped on finish */

    lf_job_view_t *h;
    size_t total;
    assert_int_equal(lf_store_history(s, 0, 10, &h, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    assert_string_equal(h[0].id, id);
    lf_job_view_clear(&h[0]);
    free(h);

    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.by_status[LF_JOB_DONE], 1);
    assert_int_equal(st.running, 0);
    lf_store_hist_t hist;
    assert_int_equal(lf_store_latency_get(s, LF_STORE_LAT_RUN, &hist), 0);
    assert_int_equal(hist.count, 1);
    assert_int_equal(hist.cumulative[4], 1); /* 90 ms <= 100 ms */
    assert_int_equal(hist.cumulative[3], 0);
    assert_int_equal(hist.cumulative[LF_STORE_HIST_BUCKETS - 1], 1);
    assert_int_equal(lf_store_latency_get(s, LF_STORE_LAT_QUEUE_WAIT, &hist), 0);
    assert_int_equal(hist.count, 1);
    assert_int_equal(hist.cumulative[1], 1); /* 10 ms */

    assert_int_equal(lf_store_job_get(s, "0123456789abcdef0123456789abcdef", &v), LF_ENOTFOUND);
    assert_int_equal(lf_store_job_get(s, "../etc", &v), LF_ENOTFOUND);
}

static void test_fifo_priority(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char low[40], a[40], high[40], b[40];
    assert_int_equal(s_submit(s, "m1", LF_PRIO_LOW, NULL, 0, 0, now, low), 0);
    assert_int_equal(s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, a), 0);
    assert_int_equal(s_submit(s, "m1", LF_PRIO_HIGH, NULL, 0, 0, now, high), 0);
    assert_int_equal(s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, b), 2);
    lf_store_candidate_t c[8];
    size_t n;
    assert_int_equal(lf_store_peek(s, 8, c, 8, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(c[0].id, high);
    assert_string_equal(c[1].id, a);
    assert_string_equal(c[2].id, b);
    assert_string_equal(c[3].id, low);
    assert_true(c[1].seq < c[2].seq);

    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, low, &v), 0);
    assert_int_equal(v.position, 3);
    lf_job_view_clear(&v);

    /* The active list: running first, then high, normal, low. */
    assert_int_equal(s_claim1(s, b, "w1", now, NULL), 0);
    lf_job_view_t *l;
    size_t total;
    assert_int_equal(lf_store_jobs_list(s, 0, 10, &l, &n, &total), 0);
    assert_int_equal(total, 4);
    assert_int_equal(n, 4);
    assert_string_equal(l[0].id, b);
    assert_string_equal(l[1].id, high);
    assert_string_equal(l[2].id, a);
    assert_string_equal(l[3].id, low);
    for (size_t i = 0; i < n; i++) lf_job_view_clear(&l[i]);
    free(l);
    assert_int_equal(lf_store_jobs_list(s, 2, 1, &l, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_string_equal(l[0].id, a);
    lf_job_view_clear(&l[0]);
    free(l);

    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.queued[LF_PRIO_HIGH], 1);
    assert_int_equal(st.queued[LF_PRIO_NORMAL], 1);
    assert_int_equal(st.queued[LF_PRIO_LOW], 1);
    assert_int_equal(st.running, 1);
}

/* A run of jobs nobody idle can take does not hide the ones behind it. */
/* An SDXL job's refiner, VAE and LoRA set reach the scheduler (affinity,
 * capability), by both peeks, and the claim gives them back in the params. */
static void test_refiner_candidate(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    lf_store_candidate_t c[8];
    size_t n;
    /* An SDXL job's refiner reaches the scheduler (affinity), by both peeks. */
    lf_job_params_t xp = s_params("xl", 64, 64);
    xp.refiner_checkpoint = "xl-refiner";
    xp.vae = "fixed-vae";
    xp.prompt = "a cat <lora:ink:0.5>"; /* the LoRA set rides next to the refiner and VAE */
    lf_store_submit_t xj = {.params = &xp, .priority = LF_PRIO_LOW};
    lf_store_submitted_t xo;
    assert_int_equal(lf_store_submit(s, &xj, 1, now, &xo), 0);
    assert_int_equal(xo.code, 0);
    assert_int_equal(lf_store_peek(s, 4, c, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].model, "xl");
    assert_string_equal(c[0].refiner, "xl-refiner");
    assert_string_equal(c[0].vae, "fixed-vae");
    assert_string_equal(c[0].lora_set, "ink:0.5:0.5");
    const char *xl[] = {"xl"};
    bool complete[3];
    assert_int_equal(lf_store_peek_for(s, xl, 1, 0, 4, 64, c, 8, &n, complete), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].refiner, "xl-refiner");
    assert_string_equal(c[0].vae, "fixed-vae");
    assert_string_equal(c[0].lora_set, "ink:0.5:0.5");
    lf_store_pair_t xpair = {xo.id, "w9"};
    lf_store_claim_t xc;
    assert_int_equal(lf_store_claim(s, &xpair, 1, "b1", now, &xc), 0);
    assert_int_equal(xc.code, 0);
    assert_string_equal(xc.params.refiner_checkpoint, "xl-refiner");
    lf_store_claim_clear(&xc);

}

static void test_peek_for(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char ids[80][40], big[40], last[40];
    for (int i = 0; i < 80; i++) s_submit(s, "other", LF_PRIO_NORMAL, NULL, 0, 0, now, ids[i]);
    lf_job_params_t p = s_params("m1", 4096, 4096);
    lf_store_submit_t j = {.params = &p, .priority = LF_PRIO_NORMAL};
    lf_store_submitted_t o;
    assert_int_equal(lf_store_submit(s, &j, 1, now, &o), 0);
    strcpy(big, o.id);
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, last);
    const char *models[] = {"m1"};
    lf_store_candidate_t c[8];
    size_t n;
    bool complete[3];
    assert_int_equal(lf_store_peek_for(s, models, 1, 1 << 20, 4, 1024, c, 8, &n, complete), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].id, last);
    assert_true(complete[0] && complete[1] && complete[2]);
    assert_int_equal(lf_store_peek_for(s, models, 1, 0, 4, 1024, c, 8, &n, complete), 0);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].id, big);
    assert_int_equal(lf_store_peek_for(s, models, 1, 0, 1, 1024, c, 8, &n, complete), 0);
    assert_int_equal(n, 1);
    assert_false(complete[1]); /* stopped at `per` */
    assert_int_equal(lf_store_peek_for(s, models, 1, 0, 4, 64, c, 8, &n, complete), 0);
    assert_int_equal(n, 0);
    assert_false(complete[1]); /* stopped at `scan` */
    assert_int_equal(lf_store_peek_for(s, NULL, 0, 0, 100, 1024, c, 8, &n, complete), 0);
    assert_int_equal(n, 8); /* any model; capped by cap */
}

static void test_idempotency(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    lf_job_params_t p = s_params("m1", 64, 64);
    lf_store_submit_t j[3] = {{.params = &p, .priority = LF_PRIO_NORMAL, .idem_key = "k1"},
                              {.params = &p, .priority = LF_PRIO_NORMAL, .idem_key = "k1"},
                              {.params = &p, .priority = LF_PRIO_NORMAL, .idem_key = "k2"}};
    lf_store_submitted_t out[3];
    assert_int_equal(lf_store_submit(s, j, 3, now, out), 0);
    assert_false(out[0].duplicate);
    assert_true(out[1].duplicate);
    assert_string_equal(out[0].id, out[1].id);
    assert_int_equal(out[1].position, 0);
    assert_false(out[2].duplicate);
    assert_string_not_equal(out[2].id, out[0].id);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.queued[LF_PRIO_NORMAL], 2);

    /* Bad items fail alone. */
    lf_job_params_t bad = s_params(NULL, 64, 64);
    lf_store_submit_t jb[2] = {{.params = &bad}, {.params = &p, .priority = LF_PRIO_HIGH}};
    assert_int_equal(lf_store_submit(s, jb, 2, now, out), 0);
    assert_int_equal(out[0].code, LF_EINVAL);
    assert_int_equal(out[1].code, 0);
    assert_int_equal(out[1].position, 0);
}

/* The gateway's fingerprint beside an idempotency key: recorded on first
 * use, equal on a retry, a conflict once the key names a job submitted with
 * another fingerprint, replaced while no job exists yet. */
static void test_idem_fingerprint(void **state) {
    lf_store_t *s = *state;
    char job[64] = "x";
    assert_int_equal(lf_store_idem_check(s, "k9", "aaaa", job, sizeof job), 0);
    assert_string_equal(job, "");
    /* No job yet: another request may take the key over. */
    assert_int_equal(lf_store_idem_check(s, "k9", "bbbb", job, sizeof job), 0);
    char id[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, "k9", 0, 0, s_now(), id);
    assert_int_equal(lf_store_idem_check(s, "k9", "bbbb", job, sizeof job), 0);
    assert_string_equal(job, id);
    assert_int_equal(lf_store_idem_check(s, "k9", "cccc", job, sizeof job), LF_EEXIST);
    assert_string_equal(job, id);
    /* The retry with the first fingerprint still matches. */
    assert_int_equal(lf_store_idem_check(s, "k9", "bbbb", NULL, 0), 0);
    /* A key submitted before fingerprints existed adopts the first one. */
    s_submit(s, "m1", LF_PRIO_NORMAL, "old", 0, 0, s_now(), id);
    assert_int_equal(lf_store_idem_check(s, "old", "dddd", job, sizeof job), 0);
    assert_string_equal(job, id);
    assert_int_equal(lf_store_idem_check(s, "old", "eeee", job, sizeof job), LF_EEXIST);
    assert_int_equal(lf_store_idem_check(s, "", "eeee", job, sizeof job), LF_EINVAL);
}

static void test_lease_expiry_requeue_dead_letter(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char id[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 2, now, id);
    uint32_t att;
    assert_int_equal(s_claim1(s, id, "w1", now, &att), 0);
    assert_int_equal(att, 1);

    lf_store_reaped_t r[8];
    size_t n;
    assert_int_equal(lf_store_reap(s, now + 4000, r, 8, &n), 0); /* lease 5 s: not yet */
    assert_int_equal(n, 0);
    /* A renewal pushes the lease out. */
    bool lost;
    lf_store_pair_t pair = {id, "w1"};
    assert_int_equal(lf_store_renew(s, &pair, 1, "b1", now + 4000, &lost), 0);
    assert_false(lost);
    assert_int_equal(lf_store_reap(s, now + 6000, r, 8, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lf_store_reap(s, now + 9001, r, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].id, id);
    assert_int_equal(r[0].status, LF_JOB_QUEUED);
    assert_string_equal(r[0].worker_id, "w1");

    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_QUEUED);
    assert_int_equal(v.attempts, 1);
    assert_null(v.worker_id);
    assert_int_equal(v.position, 0);
    lf_job_view_clear(&v);
    assert_int_equal(lf_store_renew(s, &pair, 1, "b1", now + 9002, &lost), 0);
    assert_true(lost); /* w1 lost it: the broker tells w1 to stop */

    assert_int_equal(s_claim1(s, id, "w2", now + 9100, &att), 0);
    assert_int_equal(att, 2);
    assert_int_equal(lf_store_reap(s, now + 20000, r, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].status, LF_JOB_FAILED);
    assert_int_equal(r[0].code, LF_ELIMIT);
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_FAILED);
    assert_int_equal(v.code, LF_ELIMIT);
    assert_non_null(v.message);
    assert_non_null(strstr(v.message, "2 attempt"));
    assert_non_null(strstr(v.message, "w2"));
    lf_job_view_clear(&v);

    char **ids;
    assert_int_equal(lf_store_dead_list(s, 10, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], id);
    free(ids[0]);
    free(ids);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.dead_letters, 1);
    assert_int_equal(st.by_status[LF_JOB_FAILED], 1);
}

static void test_requeue_refund_and_fail(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char id[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 1, now, id);
    uint32_t att;
    assert_int_equal(s_claim1(s, id, "w1", now, &att), 0);
    lf_store_finish_t f;
    /* A refusal does not use up the only attempt. */
    assert_int_equal(lf_store_requeue(s, id, "w2", NULL, true, "busy", now, &f), LF_ESTATE);
    assert_int_equal(lf_store_requeue(s, id, "w1", "b1", true, "busy", now, &f), 0);
    assert_int_equal(f.status, LF_JOB_QUEUED);
    assert_int_equal(f.attempts, 0);
    assert_int_equal(s_claim1(s, id, "w2", now, &att), 0);
    assert_int_equal(att, 1);
    assert_int_equal(lf_store_fail(s, id, "w2", 1, LF_EINVAL, "bad sampler", now + 5, &f), 0);
    assert_int_equal(f.status, LF_JOB_FAILED);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_FAILED);
    assert_int_equal(v.code, LF_EINVAL);
    assert_string_equal(v.message, "bad sampler");
    lf_job_view_clear(&v);

    /* Worker says it was cancelled. */
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, id);
    assert_int_equal(s_claim1(s, id, "w1", now, &att), 0);
    assert_int_equal(lf_store_fail(s, id, "w1", att, LF_ECANCELED, "cancelled", now, &f), 0);
    assert_int_equal(f.status, LF_JOB_CANCELLED);
}

static void test_cancel(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char q[40], r[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, q);
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, r);
    lf_job_status_t was;
    char w[128] = "x";
    assert_int_equal(lf_store_cancel(s, q, now, &was, w, sizeof w), 0);
    assert_int_equal(was, LF_JOB_QUEUED);
    assert_string_equal(w, "");
    assert_int_equal(s_status(s, q), LF_JOB_CANCELLED);
    assert_int_equal(s_claim1(s, q, "w1", now, NULL), LF_EBUSY);

    uint32_t att;
    assert_int_equal(s_claim1(s, r, "w1", now, &att), 0);
    assert_int_equal(lf_store_cancel(s, r, now, &was, w, sizeof w), 0);
    assert_int_equal(was, LF_JOB_RUNNING);
    assert_string_equal(w, "w1");
    assert_int_equal(s_status(s, r), LF_JOB_CANCELLED);
    /* The worker's late answers are fenced off. */
    lf_store_finish_t f;
    assert_int_equal(lf_store_progress(s, r, "w1", 1, 4, NULL, 0, now), LF_ESTATE);
    assert_int_equal(lf_store_complete(s, r, "w1", att, NULL, 0, NULL, now, &f), LF_ESTATE);
    assert_int_equal(lf_store_fail(s, r, "w1", att, LF_ECANCELED, "", now, &f), LF_ESTATE);
    assert_int_equal(s_status(s, r), LF_JOB_CANCELLED);

    assert_int_equal(lf_store_cancel(s, r, now, &was, NULL, 0), LF_ESTATE);
    assert_int_equal(was, LF_JOB_CANCELLED);
    assert_int_equal(lf_store_cancel(s, "0123456789abcdef0123456789abcdef", now, &was, NULL, 0),
                     LF_ENOTFOUND);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.by_status[LF_JOB_CANCELLED], 2);
    assert_int_equal(st.running, 0);
}

static void test_fencing(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char id[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 5, now, id);
    uint32_t a1, a2;
    assert_int_equal(s_claim1(s, id, "w1", now, &a1), 0);
    lf_store_reaped_t r[4];
    size_t n;
    assert_int_equal(lf_store_reap(s, now + 6000, r, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(s_claim1(s, id, "w2", now + 6100, &a2), 0);
    assert_int_equal(a2, 2);

    uint8_t png[] = {1, 2, 3};
    lf_image_out_t img = {{png, 3}, 1, 8, 8};
    lf_store_finish_t f;
    /* The worker presumed dead answers late: dropped. */
    assert_int_equal(lf_store_complete(s, id, "w1", a1, &img, 1, NULL, now + 6200, &f), LF_ESTATE);
    assert_int_equal(lf_store_complete(s, id, "w1", 0, &img, 1, NULL, now + 6200, &f), LF_ESTATE);
    assert_int_equal(lf_store_progress(s, id, "w1", 1, 2, NULL, 0, now + 6200), LF_ESTATE);
    /* The right worker with a stale attempt number: dropped too. */
    assert_int_equal(lf_store_complete(s, id, "w2", a1, &img, 1, NULL, now + 6200, &f), LF_ESTATE);
    assert_int_equal(s_status(s, id), LF_JOB_RUNNING);
    assert_int_equal(lf_store_complete(s, id, "w2", a2, &img, 1, NULL, now + 6300, &f), 0);
    assert_int_equal(s_status(s, id), LF_JOB_DONE);

    /* Adopt: only the holder; an owner that is alive keeps it. */
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, id);
    assert_int_equal(s_claim1(s, id, "w3", now, &a1), 0); /* owner b1 */
    uint32_t att;
    bool changed;
    assert_int_equal(lf_store_adopt(s, id, "w9", "b1", now, &att, &changed), LF_ESTATE);
    assert_int_equal(lf_store_adopt(s, id, "w3", "b1", now, &att, &changed), 0);
    assert_false(changed);
    assert_int_equal(att, 1);
    bool lost;
    lf_store_pair_t pair = {id, "w3"};
    assert_int_equal(lf_store_renew(s, &pair, 1, "b1", now, &lost), 0); /* b1 alive */
    assert_int_equal(lf_store_adopt(s, id, "w3", "b2", now, &att, &changed), LF_EBUSY);
    assert_int_equal(lf_store_renew(s, NULL, 0, "b2", now, NULL), 0);
}

static void test_owner_dead_adopt(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char id[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, id);
    assert_int_equal(s_claim1(s, id, "w3", now, NULL), 0); /* owner b1, never beat */
    uint32_t att;
    bool changed = false;
    assert_int_equal(lf_store_adopt(s, id, "w3", "b2", now, &att, &changed), 0);
    assert_true(changed);
    /* The first owner, back, cannot give away what the worker now answers
     * to b2 (b1's view of the worker is stale); b2 can. */
    lf_store_finish_t f;
    assert_int_equal(lf_store_requeue(s, id, "w3", "b1", true, "runs another job", now, &f),
                     LF_ESTATE);
    assert_int_equal(s_status(s, id), LF_JOB_RUNNING);
    assert_int_equal(lf_store_requeue(s, id, "w3", "b2", false, "left", now, &f), 0);
    assert_int_equal(f.status, LF_JOB_QUEUED);
}

/* Two connections race for the same jobs from two threads. */
typedef struct {
    const char *worker;
    char (*ids)[40];
    size_t n;
    int *claimed; /* per job: count */
    pthread_mutex_t *mu;
    size_t wins;
} s_racer_t;

static void *s_race(void *arg) {
    s_racer_t *r = arg;
    lf_store_t *s = s_open();
    lf_store_pair_t pairs[16];
    lf_store_claim_t out[16];
    for (size_t base = 0; base < r->n; base += 16) {
        size_t m = r->n - base < 16 ? r->n - base : 16;
        for (size_t i = 0; i < m; i++) pairs[i] = (lf_store_pair_t){r->ids[base + i], r->worker};
        if (lf_store_claim(s, pairs, m, r->worker, s_now(), out) != 0) abort();
        for (size_t i = 0; i < m; i++) {
            if (out[i].code == 0) {
                pthread_mutex_lock(r->mu);
                r->claimed[base + i]++;
                pthread_mutex_unlock(r->mu);
                r->wins++;
            } else if (out[i].code != LF_EBUSY) {
                abort();
            }
            lf_store_claim_clear(&out[i]);
        }
    }
    lf_store_destroy(&s);
    return NULL;
}

static void test_racing_claims(void **state) {
    lf_store_t *s = *state;
    enum { N = 400 };
    static char ids[N][40];
    int claimed[N] = {0};
    lf_job_params_t p = s_params("m1", 64, 64);
    lf_store_submit_t j[N];
    lf_store_submitted_t out[N];
    for (int i = 0; i < N; i++) j[i] = (lf_store_submit_t){.params = &p, .priority = i % 3};
    assert_int_equal(lf_store_submit(s, j, N, s_now(), out), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(out[i].code, 0);
        strcpy(ids[i], out[i].id);
    }
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    s_racer_t a = {"wa", ids, N, claimed, &mu, 0}, b = {"wb", ids, N, claimed, &mu, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, s_race, &a);
    pthread_create(&tb, NULL, s_race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    for (int i = 0; i < N; i++) assert_int_equal(claimed[i], 1);
    assert_int_equal(a.wins + b.wins, N);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.running, N);
    assert_int_equal(st.queued[0] + st.queued[1] + st.queued[2], 0);
}

static void test_ttl_expiry(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char a[40], b[40], c[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 1, 0, now, a);
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 1, 0, now, b);
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, c); /* no deadline */
    /* Claimed after its deadline: fails instead of running. */
    assert_int_equal(s_claim1(s, a, "w1", now + 1500, NULL), LF_ETIMEDOUT);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, a, &v), 0);
    assert_int_equal(v.status, LF_JOB_FAILED);
    assert_int_equal(v.code, LF_ETIMEDOUT);
    lf_job_view_clear(&v);
    lf_store_reaped_t r[4];
    size_t n;
    assert_int_equal(lf_store_reap(s, now + 500, r, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lf_store_reap(s, now + 1500, r, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].id, b);
    assert_int_equal(r[0].code, LF_ETIMEDOUT);
    assert_int_equal(s_status(s, b), LF_JOB_FAILED);
    assert_int_equal(s_status(s, c), LF_JOB_QUEUED);
}

static void s_finish_n(lf_store_t *s, int n, int64_t t, char ids[][40]) {
    for (int i = 0; i < n; i++) {
        s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, t, ids[i]);
        assert_int_equal(s_claim1(s, ids[i], "w1", t, NULL), 0);
        uint8_t png[] = {7};
        lf_image_out_t img = {{png, 1}, 1, 8, 8};
        lf_store_finish_t f;
        assert_int_equal(lf_store_complete(s, ids[i], "w1", 0, &img, 1, NULL, t + i, &f), 0);
    }
}

static void test_history_retention(void **state) {
    lf_store_t *s = *state;
    lf_store_set_limits(s, &(lf_store_limits_t){.history_max = 5, .history_max_age_s = 60});
    int64_t now = s_now();
    char ids[8][40];
    s_finish_n(s, 8, now, ids);
    lf_job_view_t *h;
    size_t n, total;
    assert_int_equal(lf_store_history(s, 0, 100, &h, &n, &total), 0);
    assert_int_equal(total, 5);
    assert_int_equal(n, 5);
    assert_string_equal(h[0].id, ids[7]); /* newest first */
    assert_string_equal(h[4].id, ids[3]);
    for (size_t i = 0; i < n; i++) lf_job_view_clear(&h[i]);
    free(h);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, ids[0], &v), LF_ENOTFOUND);
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_store_image_get(s, ids[0], 0, &d, &len), LF_ENOTFOUND);
    assert_int_equal(lf_store_image_get(s, ids[7], 0, &d, &len), 0);
    free(d);

    /* By age: a job finished 2 minutes later pushes the old ones out. */
    char later[1][40];
    s_finish_n(s, 1, now + 120000, later);
    assert_int_equal(lf_store_history(s, 0, 100, &h, &n, &total), 0);
    assert_int_equal(total, 1);
    assert_string_equal(h[0].id, later[0]);
    lf_job_view_clear(&h[0]);
    free(h);
    assert_int_equal(lf_store_job_get(s, ids[7], &v), LF_ENOTFOUND);
}

static void test_result_cap(void **state) {
    lf_store_t *s = *state;
    lf_store_set_limits(s, &(lf_store_limits_t){.result_max_bytes = 10});
    int64_t now = s_now();
    char id[40];
    s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, id);
    assert_int_equal(s_claim1(s, id, "w1", now, NULL), 0);
    uint8_t png[20] = {0};
    lf_image_out_t img = {{png, sizeof png}, 1, 8, 8};
    lf_store_finish_t f;
    assert_int_equal(lf_store_complete(s, id, "w1", 0, &img, 1, NULL, now, &f), 0);
    assert_int_equal(f.status, LF_JOB_FAILED);
    assert_int_equal(f.code, LF_ETOOBIG);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, id, &v), 0);
    assert_int_equal(v.code, LF_ETOOBIG);
    assert_non_null(strstr(v.message, "too large"));
    lf_job_view_clear(&v);
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_store_image_get(s, id, 0, &d, &len), LF_ENOTFOUND);
}

static void test_uploads_presets_options(void **state) {
    lf_store_t *s = *state;
    const uint8_t data[] = {0x89, 'P', 'N', 'G', 0, 1, 2};
    char up[64];
    assert_int_equal(lf_store_upload_put(s, data, sizeof data, "image/png", 8, 8, 60, up), 0);
    assert_true(lf_id_valid(up));
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_store_upload_get(s, up, &d, &len), 0);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(d, data, len);
    free(d);
    assert_int_equal(lf_store_upload_get(s, "nope", &d, &len), LF_ENOTFOUND);

    /* img2img: the claim carries the upload's bytes. */
    lf_job_params_t p = s_params("m1", 64, 64);
    p.init_image = up;
    lf_store_submit_t j = {.params = &p};
    lf_store_submitted_t o;
    assert_int_equal(lf_store_submit(s, &j, 1, s_now(), &o), 0);
    lf_store_pair_t pair = {o.id, "w1"};
    lf_store_claim_t c;
    assert_int_equal(lf_store_claim(s, &pair, 1, "b1", s_now(), &c), 0);
    assert_int_equal(c.code, 0);
    assert_int_equal(c.init_image.len, sizeof data);
    assert_string_equal(c.params.init_image, up);
    assert_int_equal(c.mask.len, 0);
    lf_store_claim_clear(&c);

    /* Inpainting: the claim carries the mask upload's bytes too; a mask whose
     * upload is gone fails the job at claim, as the init image's does. */
    const uint8_t mdata[] = {0x89, 'P', 'N', 'G', 9, 9};
    char mup[64];
    assert_int_equal(lf_store_upload_put(s, mdata, sizeof mdata, "image/png", 8, 8, 60, mup), 0);
    p.mask = mup;
    assert_int_equal(lf_store_submit(s, &j, 1, s_now(), &o), 0);
    pair = (lf_store_pair_t){o.id, "w1"};
    assert_int_equal(lf_store_claim(s, &pair, 1, "b1", s_now(), &c), 0);
    assert_int_equal(c.code, 0);
    assert_int_equal(c.init_image.len, sizeof data);
    assert_int_equal(c.mask.len, sizeof mdata);
    assert_memory_equal(c.mask.data, mdata, sizeof mdata);
    assert_string_equal(c.params.mask, mup);
    lf_store_claim_clear(&c);
    p.mask = "0123456789abcdef0123456789abcdef"; /* a valid id, never uploaded */
    assert_int_equal(lf_store_submit(s, &j, 1, s_now(), &o), 0);
    pair = (lf_store_pair_t){o.id, "w1"};
    assert_int_equal(lf_store_claim(s, &pair, 1, "b1", s_now(), &c), 0);
    assert_int_equal(c.code, LF_ENOTFOUND);
    lf_store_claim_clear(&c);
    p.mask = NULL;

    char *json;
    assert_int_equal(lf_store_preset_put(s, "b", "{\"steps\":4}"), 0);
    assert_int_equal(lf_store_preset_put(s, "a", "{}"), 0);
    assert_int_equal(lf_store_preset_get(s, "b", &json), 0);
    assert_string_equal(json, "{\"steps\":4}");
    free(json);
    char **names;
    size_t n;
    assert_int_equal(lf_store_preset_list(s, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    free(names[0]), free(names[1]), free(names);
    assert_int_equal(lf_store_preset_del(s, "a"), 0);
    assert_int_equal(lf_store_preset_del(s, "a"), LF_ENOTFOUND);
    assert_int_equal(lf_store_preset_get(s, "a", &json), LF_ENOTFOUND);
    assert_int_equal(lf_store_preset_put(s, "", "{}"), LF_EINVAL);

    char *v;
    assert_int_equal(lf_store_option_get(s, "sd_model_checkpoint", &v), LF_ENOTFOUND);
    assert_int_equal(lf_store_option_set(s, "sd_model_checkpoint", "lf-diagnostic"), 0);
    assert_int_equal(lf_store_option_get(s, "sd_model_checkpoint", &v), 0);
    assert_string_equal(v, "lf-diagnostic");
    free(v);
    double rtt;
    assert_int_equal(lf_store_ping(s, &rtt), 0);
    assert_true(rtt > 0);
}

static void test_workers_registry(void **state) {
    lf_store_t *s = *state;
    lf_model_info_t m = {.name = "m1", .kind = "diagnostic"};
    char *res = "m1";
    lf_worker_caps_t caps = {.host = "h", .pid = 7, .device_kind = "cpu", .max_pixels = 1 << 20,
                             .models = &m, .n_models = 1, .resident = &res, .n_resident = 1};
    uint8_t *blob;
    size_t len;
    assert_int_equal(lf_caps_encode(&caps, &blob, &len), 0);
    int64_t now = s_now();
    lf_store_worker_touch_t t[2] = {{"w1", blob, len, "0123456789abcdef0123456789abcdef", now, 3},
                                    {"w2", blob, len, NULL, now - 100000, 0}};
    assert_int_equal(lf_store_workers_touch(s, t, 2, "b1", now), 0);
    free(blob);
    lf_worker_view_t *w;
    size_t n;
    assert_int_equal(lf_store_workers_list(s, &w, &n), 0);
    assert_int_equal(n, 1); /* w2 is too old */
    assert_string_equal(w[0].id, "w1");
    assert_string_equal(w[0].job_id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(w[0].jobs_done, 3);
    assert_int_equal(w[0].caps.n_models, 1);
    assert_string_equal(w[0].caps.models[0].name, "m1");
    assert_int_equal(w[0].caps.max_pixels, 1 << 20);
    lf_worker_view_clear(&w[0]);
    free(w);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.live_workers, 1);
    assert_int_equal(lf_store_worker_remove(s, "w1"), 0);
    assert_int_equal(lf_store_workers_list(s, &w, &n), 0);
    assert_int_equal(n, 0);
    free(w);
}

/* Redis restarts (AOF): calls fail with LF_ECONN meanwhile, then the store
 * reconnects by itself and the acknowledged job is still there. */
static void test_redis_restart(void **state) {
    (void)state;
    lf_testredis_t *r = lf_testredis_start(&(lf_testredis_opts_t){.aof = true});
    assert_non_null(r);
    char err[256];
    lf_store_opts_t o = {.port = lf_testredis_port(r), .timeout_ms = 500};
    lf_store_t *s = lf_store_new(&o, err, sizeof err);
    assert_non_null(s);
    char id[40];
    s_submit(s, "m1", LF_PRIO_HIGH, NULL, 0, 0, s_now(), id);
    assert_int_equal(lf_testredis_kill(r), 0); /* crash, not a clean shutdown */
    lf_job_view_t v;
    int rc = lf_store_job_get(s, id, &v);
    assert_true(rc == LF_ECONN);
    assert_int_equal(lf_store_job_get(s, id, &v), LF_ECONN); /* backoff */
    assert_int_equal(lf_testredis_restart(r), 0);
    int64_t end = s_now() + 5000;
    while ((rc = lf_store_job_get(s, id, &v)) == LF_ECONN && s_now() < end) usleep(50000);
    assert_int_equal(rc, 0);
    assert_int_equal(v.status, LF_JOB_QUEUED);
    assert_int_equal(v.priority, LF_PRIO_HIGH);
    lf_job_view_clear(&v);
    lf_store_destroy(&s);
    lf_testredis_destroy(&r);

    o.port = 1; /* nothing listens there */
    assert_null(lf_store_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "redis"));
}

/* A stand-in for a Redis that is replaying a large AOF: it answers every
 * command of one connection with LOADING, as redis-server does then. */
static void *s_loading_server(void *arg) {
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) return NULL;
    static const char reply[] = "-LOADING Redis is loading the dataset in memory\r\n";
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0)
        if (write(fd, reply, sizeof reply - 1) != (ssize_t)(sizeof reply - 1)) break;
    close(fd);
    return NULL;
}

/* A Redis still loading its data set is "not there yet" (LF_ECONN, a reason
 * naming redis and the loading), not a broken Redis: that is what makes the
 * broker wait for it instead of exiting after an `up` on a large AOF. */
static void test_redis_loading(void **state) {
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_loading_server, &lfd), 0);
    char err[256] = "";
    lf_store_opts_t o = {.port = ntohs(a.sin_port), .timeout_ms = 2000};
    lf_store_t *s = lf_store_new(&o, err, sizeof err);
    assert_null(s);
    pthread_join(th, NULL);
    close(lfd);
    assert_true(!strncmp(err, "redis ", 6));
    assert_non_null(strstr(err, "loading"));
}
/* ---- prompt enhancement: the "enhancing" state -------------------------------- */

/* Submit one job that starts "enhancing" for enhance_ms. */
static void s_submit_enh(lf_store_t *s, const char *idem, uint32_t ttl_s, uint32_t enhance_ms, int64_t now,
                         char *id_out) {
    lf_store_submit_t j = {.priority = LF_PRIO_NORMAL, .idem_key = idem, .ttl_s = ttl_s, .enhance_ms = enhance_ms};
    lf_store_submitted_t out = s_submit_j(s, j, now, id_out);
    assert_int_equal(out.status, LF_JOB_ENHANCING);
    assert_int_equal(out.position, -1);
    assert_false(out.duplicate);
}

/* Not assignable, visible, settled once (the LLM's prompt, original kept),
 * at its place in the queue. */
static void test_enhancing_settled(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char a[40], b[40], e[40];
    s_submit_enh(s, "k-enh", 0, 5000, now, a);
    assert_int_equal(s_submit(s, "m1", LF_PRIO_NORMAL, NULL, 0, 0, now, b), 0); /* b is first in the queue */

    assert_int_equal(s_status(s, a), LF_JOB_ENHANCING);
    lf_job_view_t v;
    lf_store_candidate_t c[8];
    size_t n;
    assert_int_equal(lf_store_peek(s, 4, c, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].id, b);
    assert_int_equal(s_claim1(s, a, "w1", now, NULL), LF_EBUSY);
    lf_job_view_t *l = NULL;
    size_t total = 0;
    assert_int_equal(lf_store_jobs_list(s, 0, 10, &l, &n, &total), 0);
    assert_int_equal(total, 2); /* GET /v1/jobs lists it */
    for (size_t i = 0; i < n; i++) lf_job_view_clear(&l[i]);
    free(l);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.by_status[LF_JOB_ENHANCING], 1);
    assert_int_equal(st.by_status[LF_JOB_QUEUED], 1);

    /* A retried SUBMIT (same key) finds it, still enhancing. */
    lf_job_params_t p = s_params("m1", 64, 64);
    lf_store_submit_t j = {.params = &p, .priority = LF_PRIO_NORMAL, .idem_key = "k-enh", .enhance_ms = 5000};
    lf_store_submitted_t o;
    assert_int_equal(lf_store_submit(s, &j, 1, now, &o), 0);
    assert_true(o.duplicate);
    assert_string_equal(o.id, a);
    assert_int_equal(o.status, LF_JOB_ENHANCING);

    /* The LLM's prompt: queued before b (it was submitted first). */
    assert_int_equal(lf_store_enhanced(s, a, "a cat, oil painting", NULL, now + 10, &o), 0);
    assert_string_equal(o.id, a);
    assert_int_equal(o.position, 0);
    assert_int_equal(o.status, LF_JOB_QUEUED);
    assert_int_equal(lf_store_job_get(s, a, &v), 0);
    assert_int_equal(v.status, LF_JOB_QUEUED);
    assert_int_equal(v.position, 0);
    assert_string_equal(v.params.prompt, "a cat, oil painting");
    assert_string_equal(v.params.prompt_original, "a cat");
    assert_null(v.params.enhance_error);
    assert_true(v.params.enhance_prompt);
    lf_job_view_clear(&v);
    /* Settled once: a second answer (another broker, the reaper) changes nothing. */
    lf_store_t *s2 = s_open();
    assert_int_equal(lf_store_enhanced(s2, a, "something else", NULL, now + 20, NULL), LF_ESTATE);
    assert_int_equal(lf_store_enhanced(s2, a, NULL, "lost", now + 20, NULL), LF_ESTATE);
    lf_store_destroy(&s2);
    assert_int_equal(lf_store_enhance_reap(s, now + 1000000, "lost", &o, 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lf_store_job_get(s, a, &v), 0);
    assert_string_equal(v.params.prompt, "a cat, oil painting");
    lf_job_view_clear(&v);
    uint32_t att;
    assert_int_equal(s_claim1(s, a, "w1", now + 30, &att), 0);

    /* An LLM failure: the original prompt and the reason. */
    s_submit_enh(s, NULL, 0, 5000, now, e);
    assert_int_equal(lf_store_enhanced(s, e, NULL, "the LLM answered HTTP 500", now + 10, &o), 0);
    assert_int_equal(lf_store_job_get(s, e, &v), 0);
    assert_int_equal(v.status, LF_JOB_QUEUED);
    assert_string_equal(v.params.prompt, "a cat");
    assert_null(v.params.prompt_original);
    assert_string_equal(v.params.enhance_error, "the LLM answered HTTP 500");
    lf_job_view_clear(&v);
    assert_int_equal(lf_store_enhanced(s, "0123456789abcdef0123456789abcdef", "x", NULL, now, NULL), LF_ENOTFOUND);
    assert_int_equal(lf_store_enhanced(s, e, "", NULL, now, NULL), LF_EINVAL);
    assert_int_equal(lf_store_enhanced(s, e, NULL, NULL, now, NULL), LF_EINVAL);
}

/* Never answered: the reaper moves it on with the original prompt after
 * enhance_ms + the margin; its queue deadline counts from then. Cancel
 * works while enhancing. */
static void test_enhancing_reaped_cancelled(void **state) {
    lf_store_t *s = *state;
    int64_t now = s_now();
    char a[40], d[40];
    s_submit_enh(s, NULL, 1, 1000, now, a); /* queue TTL 1 s */
    lf_store_submitted_t o[4];
    size_t n = 9;
    int64_t due = now + 1000 + LF_STORE_ENHANCE_MARGIN_MS;
    assert_int_equal(lf_store_enhance_reap(s, due - 1, "lost", o, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(s_status(s, a), LF_JOB_ENHANCING);
    assert_int_equal(lf_store_enhance_reap(s, due, "enhancement lost", o, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(o[0].id, a);
    assert_int_equal(o[0].position, 0);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(s, a, &v), 0);
    assert_int_equal(v.status, LF_JOB_QUEUED);
    assert_string_equal(v.params.prompt, "a cat");
    assert_string_equal(v.params.enhance_error, "enhancement lost");
    lf_job_view_clear(&v);
    /* The 1 s TTL would have passed at now + 1000; it runs from the queueing. */
    lf_store_reaped_t r[4];
    assert_int_equal(lf_store_reap(s, due + 500, r, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(s_status(s, a), LF_JOB_QUEUED);
    assert_int_equal(lf_store_reap(s, due + 1001, r, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].code, LF_ETIMEDOUT);

    s_submit_enh(s, NULL, 0, 1000, now, d);
    lf_job_status_t was;
    assert_int_equal(lf_store_cancel(s, d, now, &was, NULL, 0), 0);
    assert_int_equal(was, LF_JOB_ENHANCING);
    assert_int_equal(s_status(s, d), LF_JOB_CANCELLED);
    assert_int_equal(lf_store_enhanced(s, d, "late", NULL, now + 10, NULL), LF_ESTATE);
    assert_int_equal(lf_store_enhance_reap(s, due + 10, "lost", o, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(s_status(s, d), LF_JOB_CANCELLED);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(s, &st), 0);
    assert_int_equal(st.by_status[LF_JOB_ENHANCING], 0);
}

int main(void) {
    g_redis = lf_testredis_start(NULL);
    if (!g_redis) return 1;
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_submit_claim_complete),
        T(test_fifo_priority),
        T(test_refiner_candidate),
        T(test_peek_for),
        T(test_idempotency),
        T(test_idem_fingerprint),
        T(test_lease_expiry_requeue_dead_letter),
        T(test_requeue_refund_and_fail),
        T(test_cancel),
        T(test_fencing),
        T(test_owner_dead_adopt),
        T(test_racing_claims),
        T(test_ttl_expiry),
        T(test_history_retention),
        T(test_result_cap),
        T(test_uploads_presets_options),
        T(test_workers_registry),
        T(test_enhancing_settled),
        T(test_enhancing_reaped_cancelled),
        cmocka_unit_test(test_redis_restart),
        cmocka_unit_test(test_redis_loading),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lf_testredis_destroy(&g_redis);
    return rc;
}
