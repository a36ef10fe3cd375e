/* lf_worker: links, job state and the main loop. See lf_worker.h. */
#include "lf_worker.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lf_backend.h"
#include "lf_compute.h"
#include "lf_device.h"
#include "lf_error.h"
#include "lf_link.h"
#include "lf_log.h"
#include "lf_proto.h"
#include "lf_readyfile.h"
#include "lf_sysinfo.h"

/* The longest the main loop sleeps, so a signal caught by another thread is
 * still seen quickly. */
#define S_MAX_WAIT_MS 100
/* How long the ASSIGNs of a batch may take to arrive after its first. */
#define S_COLLECT_MS 2000
/* Linger on the last messages (RESULT, DISCONNECT) when leaving. */
#define S_CLOSE_LINGER_MS 2000
/* Jobs (id and attempt) remembered as finished here, newest last. */
#define S_RECENT 8

/* A run's final messages (RESULT/FAILED: one per job of a batch) for one
 * broker. They are kept until
 * the broker shows it was alive after the message went out (any message
 * received afterwards): a message sent into a connection whose broker had
 * just died is lost with that connection, so it is sent again right after
 * the READY of the next one. A broker that gets it twice keeps the first
 * (results are fenced by lease and attempt). */
typedef struct {
    uint8_t *buf[LF_RUNNER_BATCH_MAX];
    size_t len[LF_RUNNER_BATCH_MAX];
    size_t n;
    bool sent; /* queued on the current connection, not yet confirmed */
    char job[64]; /* the job it answers */
} s_pending_t;

/* A job this worker finished: an ASSIGN of the same id and attempt (a
 * standby broker adopting the job re-sends it) must not run it again. */
typedef struct {
    char job[64];
    uint32_t attempt;
} s_finished_t;

struct lf_worker {
    char *id;
    char *device;
    char device_name[256];  /* the CPU's model name, or the GPU's from a backend */
    char precision[8];      /* jobs' default compute precision in effect: f32 | bf16 | f16 */
    char weight_pack[8];    /* LF_WEIGHT_PACK as set (the engine logs the one in effect per model) */
    uint32_t threads;       /* CPU compute threads (LF_THREADS or cores / local workers) */
    char pinning[16];       /* none | slice | threads (lf_worker_opts_t) */
    char cpus[256];         /* the cores they run on ("" = not said) */
    uint64_t device_memory; /* RAM, or the GPU's memory */
    char *models_dir;
    uint64_t max_pixels;
    int64_t drain_ms;
    lf_sysinfo_t sys;
    /* CURVE keys the links borrow (Z85 text; empty = plain TCP). */
    char curve_server[41], curve_public[41], curve_secret[41];
    lf_link_t **links;
    s_pending_t *pending; /* one slot per link */
    bool *registered;     /* per link: the broker has spoken since our READY */
    uint32_t *assigns;    /* per link: ASSIGNs received on its current socket (in READY and
                             HEARTBEAT, so a broker can tell a report that predates its ASSIGN) */
    size_t n_links;
    lf_compute_t *compute;
    char *resident; /* the compute thread's resident models, as last reported ("base\nrefiner") */
    bool preload;   /* a model was preloaded: ready means one is resident */
    char *resident_v[2]; /* into resident (split at '\n') */
    size_t n_resident;
    char *lora_set; /* the LoRA set merged into the base, as last reported (NULL = none) */

    /* The job running now (busy) and the link it came from: a batch's
     * first job (the one heartbeats name); jobs[] every job of the run. */
    bool busy;
    char *job_id;
    uint32_t job_attempt;
    size_t job_link;
    s_finished_t recent[S_RECENT]; /* ring of the last jobs finished here */
    size_t n_recent;               /* total ever finished (recent[n % S_RECENT] is next) */
    char *jobs[LF_RUNNER_BATCH_MAX];
    uint32_t attempts[LF_RUNNER_BATCH_MAX]; /* their attempts (recorded in recent[] when answered) */
    bool open[LF_RUNNER_BATCH_MAX];         /* not answered yet (READY/HEARTBEAT list these) */
    size_t n_jobs, n_open; /* jobs of the run, and those not answered yet */
    /* A batch's ASSIGNs arriving (batch > 1): collected until all are here
     * or the deadline, then run together; cancels that came meanwhile. */
    lf_msg_t collect[LF_RUNNER_BATCH_MAX];
    size_t n_collect, want;
    int64_t collect_until; /* mono ms; 0 = not collecting */
    bool cancel_early[LF_RUNNER_BATCH_MAX];
    uint32_t batch_max;    /* LF_BATCH_MAX */
    uint64_t batched;      /* jobs run in batches of two or more (the compute thread's count) */

    bool stopping;
    int64_t stop_deadline;
    lf_readyfile_t *ready;  /* NULL: no ready file */
    int64_t ready_next;     /* when the ready file is due a rewrite */
    int64_t ready_every_ms; /* the heartbeat interval */
    lf_codec_stats_t codec;
    lf_worker_stats_t stats;
};

/* ---- construction -------------------------------------------------------- */

static char *s_default_id(const lf_sysinfo_t *sys) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint32_t)zclock_time() ^ ((uint32_t)getpid() << 16); /* good enough for an id */
    char buf[320];
    snprintf(buf, sizeof buf, "%s-%d-%08x", sys->host, (int)sys->pid, r);
    return strdup(buf);
}

/* Load the CURVE keys, if any. */
static int s_load_curve(lf_worker_t *self, const char *cert_path, const char *server_path) {
    if (!server_path || !*server_path) {
        if (cert_path && *cert_path)
            lf_warn("a CURVE certificate without the broker's (curve-server-cert): plain TCP");
        return 0;
    }
    if (!zsys_has_curve()) {
        lf_error("CURVE requested but this libzmq has no CURVE support");
        return LF_EUNSUPPORTED;
    }
    zcert_t *server = zcert_load(server_path);
    if (!server) {
        lf_error("cannot read the broker certificate %s", server_path);
        return LF_EIO;
    }
    zcert_t *own = cert_path && *cert_path ? zcert_load(cert_path) : zcert_new();
    if (!own) {
        lf_error("cannot read the certificate %s", cert_path);
        zcert_destroy(&server);
        return LF_EIO;
    }
    snprintf(self->curve_server, sizeof self->curve_server, "%s", zcert_public_txt(server));
    snprintf(self->curve_public, sizeof self->curve_public, "%s", zcert_public_txt(own));
    snprintf(self->curve_secret, sizeof self->curve_secret, "%s", zcert_secret_txt(own));
    zcert_destroy(&server);
    zcert_destroy(&own);
    /* A public-only file loads with an all-zero secret: it cannot work. */
    if (!strcmp(self->curve_secret, "0000000000000000000000000000000000000000")) {
        lf_error("certificate %s has no secret key", cert_path);
        return LF_EINVAL;
    }
    return 0;
}

static int s_add_links(lf_worker_t *self, const lf_worker_opts_t *opts) {
    int rc = 0;
    int64_t now = zclock_mono();
    lf_link_curve_t curve = {0};
    if (self->curve_server[0])
        curve = (lf_link_curve_t){self->curve_server, self->curve_public, self->curve_secret};
    for (size_t i = 0; i < opts->n_endpoints; i++) {
        const char *tok = opts->endpoints[i];
        if (!tok || !*tok) continue;
        lf_link_t **links = realloc(self->links, (self->n_links + 1) * sizeof *links);
        s_pending_t *pend = realloc(self->pending, (self->n_links + 1) * sizeof *pend);
        bool *reg = realloc(self->registered, (self->n_links + 1) * sizeof *reg);
        uint32_t *asg = realloc(self->assigns, (self->n_links + 1) * sizeof *asg);
        if (links) self->links = links;
        if (pend) self->pending = pend;
        if (reg) self->registered = reg;
        if (asg) self->assigns = asg;
        if (!links || !pend || !reg || !asg) {
            rc = LF_ENOMEM;
            break;
        }
        lf_link_t *l = lf_link_new(tok, &opts->heartbeat, &curve, now);
        if (!l) {
            lf_error("invalid broker endpoint '%s'", tok);
            rc = LF_EINVAL;
            break;
        }
        self->links[self->n_links] = l;
        self->pending[self->n_links] = (s_pending_t){0};
        self->registered[self->n_links] = false;
        self->assigns[self->n_links] = 0;
        self->n_links++;
    }
    if (!rc && !self->n_links) {
        lf_error("no broker endpoint given (LF_BROKER_BACKEND)");
        rc = LF_EINVAL;
    }
    return rc;
}

lf_worker_t *lf_worker_new(const lf_worker_opts_t *opts) {
    if (!opts) return NULL;
    const char *device = opts->device && *opts->device ? opts->device : "cpu";
    lf_worker_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    lf_sysinfo_probe(&self->sys);
    self->id = opts->worker_id && *opts->worker_id ? strdup(opts->worker_id)
                                                   : s_default_id(&self->sys);
    self->device = strdup(device);
    self->models_dir = opts->models_dir ? strdup(opts->models_dir) : NULL;
    self->max_pixels = opts->max_pixels;
    self->drain_ms = opts->drain_ms >= 0 ? opts->drain_ms : 5000;
    self->batch_max = opts->batch_max < LF_RUNNER_BATCH_MAX ? opts->batch_max : LF_RUNNER_BATCH_MAX;
    self->ready_every_ms = opts->heartbeat.interval_ms > 0 ? opts->heartbeat.interval_ms : 1000;
    if (!self->id || !self->device ||
        s_load_curve(self, opts->curve_cert, opts->curve_server_cert) || s_add_links(self, opts)) {
        lf_worker_destroy(&self);
        return NULL;
    }
    if (opts->ready_file && *opts->ready_file && !(self->ready = lf_readyfile_new(opts->ready_file))) {
        lf_worker_destroy(&self);
        return NULL;
    }
    /* LF_PRECISION: what jobs that name none run in; reported as the one in
     * effect on the device (bf16 and auto are f32 on a CPU without
     * AVX512_BF16; on CUDA bf16 from sm_80, f16 on sm_70/75, f32 below: the
     * backend's own rule, lf_backend_cuda_precision). */
    lf_precision_t prec = LF_PRECISION_F32;
    lf_device_t dev = {.kind = LF_DEVICE_CPU};
    if (opts->precision && *opts->precision && lf_precision_parse(opts->precision, &prec)) {
        lf_error("LF_PRECISION '%s': f32, bf16 or auto", opts->precision);
        lf_worker_destroy(&self);
        return NULL;
    }
    if (prec == LF_PRECISION_F32 || lf_device_parse(device, &dev, NULL, 0)) {
        prec = LF_PRECISION_F32; /* a bad device is refused below, by the runner */
    } else if (dev.kind == LF_DEVICE_CUDA) {
        prec = lf_backend_cuda_precision(dev.index, prec);
    } else {
        lf_backend_t *be = lf_backend_cpu_new(1);
        prec = be ? lf_backend_set_precision(be, prec) : LF_PRECISION_F32;
        lf_backend_destroy(&be);
    }
    snprintf(self->precision, sizeof self->precision, "%s", lf_precision_name(prec));
    const char *wp = opts->weight_pack && *opts->weight_pack ? opts->weight_pack : "auto";
    lf_pack_t pk;
    if (strcmp(wp, "auto") && lf_pack_parse(wp, &pk)) {
        lf_error("LF_WEIGHT_PACK '%s': file, memory, off or auto", wp);
        lf_worker_destroy(&self);
        return NULL;
    }
    snprintf(self->weight_pack, sizeof self->weight_pack, "%s", wp);
    self->threads = opts->n_threads > 0 ? (uint32_t)opts->n_threads : 0;
    snprintf(self->pinning, sizeof self->pinning, "%s", opts->pinning ? opts->pinning : "none");
    snprintf(self->cpus, sizeof self->cpus, "%s", opts->cpus ? opts->cpus : "");
    /* The runner borrows these strings; the worker outlives it. */
    lf_runner_env_t env = {.device = self->device, .models_dir = self->models_dir,
                           .max_pixels = opts->max_pixels, .preview_every = opts->preview_every,
                           .memory_budget = opts->memory_budget,
                           .step_delay_max_ms = opts->step_delay_max_ms, .precision = opts->precision,
                           .weight_pack = opts->weight_pack, .pack_dir = opts->pack_dir,
                           .n_threads = opts->n_threads};
    lf_runner_t *runner = lf_runner_new(&env, opts->backends, opts->n_backends);
    if (!runner) {
        lf_worker_destroy(&self);
        return NULL;
    }
    if (strcmp(device, "cpu")) {
        /* A GPU must be one a backend can drive: advertising a device the
         * worker cannot use would mislead the scheduler. */
        if (lf_runner_device_info(runner, self->device_name, sizeof self->device_name,
                                  &self->device_memory)) {
            lf_error("device '%s' is not usable: %s", device, self->device_name);
            lf_runner_destroy(&runner);
            lf_worker_destroy(&self);
            return NULL;
        }
    } else {
        snprintf(self->device_name, sizeof self->device_name, "%s", self->sys.cpu_name);
        self->device_memory = self->sys.memory_bytes;
    }
    size_t n_models = 0;
    lf_runner_models(runner, &n_models);
    if (!n_models) lf_warn("no models available; the worker will refuse every job");
    if (opts->preload && *opts->preload) {
        /* Load before the runner moves to the compute thread: a worker that
         * offers itself already holds its model (readiness that means "can
         * serve now"; a model that cannot load is a start failure, not a
         * first job that fails). */
        int64_t t0 = zclock_mono();
        int rc = lf_runner_load(runner, opts->preload);
        if (rc) {
            lf_error("cannot preload model '%s': %s", opts->preload,
                     rc == LF_ENOTFOUND ? "no such model in the models folder" : lf_strerror(rc));
            lf_runner_destroy(&runner);
            lf_worker_destroy(&self);
            return NULL;
        }
        if (!(self->resident = strdup(lf_runner_resident(runner)))) {
            lf_runner_destroy(&runner);
            lf_worker_destroy(&self);
            return NULL;
        }
        self->resident_v[0] = self->resident;
        self->n_resident = 1;
        self->preload = true;
        lf_info("preloaded %s in %lld ms", self->resident, (long long)(zclock_mono() - t0));
    }
    self->compute = lf_compute_new(&runner, self->id);
    if (!self->compute) {
        lf_runner_destroy(&runner);
        lf_worker_destroy(&self);
        return NULL;
    }
    return self;
}

void lf_worker_destroy(lf_worker_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_worker_t *self = *self_p;
    lf_compute_destroy(&self->compute);
    lf_readyfile_destroy(&self->ready);
    for (size_t i = 0; i < self->n_links; i++) {
        lf_link_destroy(&self->links[i], 0);
        for (size_t k = 0; k < self->pending[i].n; k++) free(self->pending[i].buf[k]);
    }
    free(self->links);
    free(self->pending);
    free(self->registered);
    free(self->assigns);
    free(self->resident);
    free(self->lora_set);
    free(self->job_id);
    for (size_t k = 0; k < self->n_jobs; k++) free(self->jobs[k]);
    for (size_t k = 0; k < self->n_collect; k++) lf_msg_clear(&self->collect[k]);
    free(self->device);
    free(self->models_dir);
    free(self->id);
    explicit_bzero(self->curve_secret, sizeof self->curve_secret);
    free(self);
    *self_p = NULL;
}

const char *lf_worker_id(const lf_worker_t *self) { return self->id; }
lf_worker_stats_t lf_worker_stats(const lf_worker_t *self) { return self->stats; }

/* ---- messages out -------------------------------------------------------- */

static int s_send(lf_worker_t *self, size_t li, const lf_msg_t *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lf_msg_encode(m, &buf, &len);
    if (rc) {
        lf_error("cannot encode %s: %s", lf_msg_type_name(m->type), lf_strerror(rc));
        return rc;
    }
    rc = lf_link_send(self->links[li], buf, len);
    free(buf);
    if (rc && rc != LF_ECONN)
        lf_warn("%s to %s not sent: %s", lf_msg_type_name(m->type),
                lf_link_endpoint(self->links[li]), lf_strerror(rc));
    return rc;
}

/* The caps borrow the worker's strings; the message is encoded, never cleared. */
static void s_caps(const lf_worker_t *self, lf_worker_caps_t *c) {
    size_t n = 0, nv = 0;
    const lf_model_info_t *models = lf_runner_models(lf_compute_runner(self->compute), &n);
    const char *const *vaes = lf_runner_vaes(lf_compute_runner(self->compute), &nv);
    const lf_vae_info_t *vae_info = lf_runner_vae_info(lf_compute_runner(self->compute), &nv);
    *c = (lf_worker_caps_t){
        .host = (char *)self->sys.host,
        .pid = self->sys.pid,
        .device_kind = self->device,
        .device_name = (char *)self->device_name,
        .precision = (char *)self->precision,
        .threads = self->threads,
        .pinning = (char *)self->pinning,
        .cpus = self->cpus[0] ? (char *)self->cpus : NULL,
        .memory_bytes = self->device_memory,
        .max_pixels = self->max_pixels,
        .models = (lf_model_info_t *)models,
        .n_models = n,
        .resident = self->n_resident ? (char **)self->resident_v : NULL,
        .n_resident = self->n_resident,
        .vaes = nv ? (char **)vaes : NULL,
        .n_vaes = nv,
        .vae_info = nv ? (lf_vae_info_t *)vae_info : NULL,
        .n_vae_info = nv,
        .jobs_done = self->stats.jobs_done,
        .lora_set = self->lora_set,
        .batch_max = self->batch_max,
        .batched = self->batched,
    };
    c->loras = (lf_lora_info_t *)lf_runner_loras(lf_compute_runner(self->compute), &c->n_loras);
    c->upscalers = (char **)lf_runner_upscalers(lf_compute_runner(self->compute), &c->n_upscalers);
    if (!c->n_upscalers) c->upscalers = NULL;
    c->ad_models = (char **)lf_runner_ad_models(lf_compute_runner(self->compute), &c->n_ad_models);
    if (!c->n_ad_models) c->ad_models = NULL;
}

/* The jobs a READY/HEARTBEAT lists (borrowed ids): every job of the run not
 * answered yet, or of the batch arriving, with its attempt. A broker taking
 * over mid-batch adopts each of them (job_id names only the first). */
static size_t s_job_refs(const lf_worker_t *self, lf_job_ref_t *out) {
    size_t n = 0;
    for (size_t j = 0; self->busy && self->collect_until && j < self->n_collect; j++)
        out[n++] = (lf_job_ref_t){self->collect[j].job_id, self->collect[j].attempt};
    for (size_t j = 0; self->busy && !self->collect_until && j < self->n_jobs; j++)
        if (self->open[j]) out[n++] = (lf_job_ref_t){self->jobs[j], self->attempts[j]};
    return n;
}

/* READY or HEARTBEAT: what this worker runs (busy, the first job, all open
 * jobs) and its caps. */
static void s_send_state(lf_worker_t *self, size_t li, lf_msg_type_t type) {
    lf_job_ref_t refs[LF_RUNNER_BATCH_MAX];
    lf_msg_t m = {.type = type, .worker_id = self->id, .busy = self->busy,
                  .job_id = self->busy ? self->job_id : NULL, .assigns = self->assigns[li],
                  .has_assigns = true, .jobs = refs};
    m.n_jobs = s_job_refs(self, refs);
    s_caps(self, &m.caps);
    s_send(self, li, &m);
}

static void s_send_ready(lf_worker_t *self, size_t li) { s_send_state(self, li, LF_MSG_READY); }

static void s_send_heartbeat(lf_worker_t *self, size_t li) { s_send_state(self, li, LF_MSG_HEARTBEAT); }

static void s_send_failed(lf_worker_t *self, size_t li, const char *job_id, int code,
                          const char *message) {
    lf_msg_t m = {.type = LF_MSG_FAILED, .worker_id = self->id, .job_id = (char *)job_id,
                  .code = code, .message = (char *)message};
    s_send(self, li, &m);
}

/* (Re)send a link's final message on its current connection; true when it
 * went out now. */
static bool s_flush_pending(lf_worker_t *self, size_t li) {
    s_pending_t *p = &self->pending[li];
    if (!p->n || p->sent) return false;
    for (size_t k = 0; k < p->n; k++)
        if (lf_link_send(self->links[li], p->buf[k], p->len[k])) return false;
    p->sent = true;
    return true;
}

static void s_pending_clear(s_pending_t *p) {
    for (size_t k = 0; k < p->n; k++) free(p->buf[k]);
    *p = (s_pending_t){0};
}

static bool s_any_pending(const lf_worker_t *self) {
    for (size_t i = 0; i < self->n_links; i++)
        if (self->pending[i].n) return true;
    return false;
}

/* ---- messages in --------------------------------------------------------- */

/* An ASSIGN of a job (and attempt) finished here: true after re-sending its
 * answer on li when another link still holds it unconfirmed (its broker
 * went silent: the one asking now adopted the job). */
static bool s_repeat(lf_worker_t *self, size_t li, const lf_msg_t *m) {
    size_t n = self->n_recent < S_RECENT ? self->n_recent : S_RECENT;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = self->recent[i].attempt == m->attempt && !strcmp(self->recent[i].job, m->job_id);
    if (!found) return false;
    self->stats.jobs_repeated++;
    lf_warn("job %s (attempt %u) assigned again after it finished here: not run twice",
            m->job_id, (unsigned)m->attempt);
    for (size_t k = 0; k < self->n_links; k++) {
        s_pending_t *p = &self->pending[k];
        if (k == li || !p->n || strcmp(p->job, m->job_id) || self->pending[li].n) continue;
        s_pending_t copy = {0};
        for (size_t j = 0; j < p->n; j++) {
            if (!(copy.buf[j] = malloc(p->len[j]))) break;
            memcpy(copy.buf[j], p->buf[j], p->len[j]);
            copy.len[j] = p->len[j], copy.n++;
        }
        if (copy.n < p->n) {
            s_pending_clear(&copy);
            break;
        }
        snprintf(copy.job, sizeof copy.job, "%s", m->job_id);
        self->pending[li] = copy;
        s_flush_pending(self, li);
        lf_info("job %s: its held answer sent to %s", m->job_id, lf_link_endpoint(self->links[li]));
        break;
    }
    return true;
}

/* Start the run of n ASSIGNs (moved out on success) from link li. */
static int s_start(lf_worker_t *self, size_t li, lf_msg_t *assigns, size_t n) {
    char *ids[LF_RUNNER_BATCH_MAX] = {0};
    uint32_t attempts[LF_RUNNER_BATCH_MAX] = {0}; /* read now: the start moves the ASSIGNs out */
    int rc = 0;
    for (size_t j = 0; j < n && !rc; j++)
        if (!(ids[j] = strdup(assigns[j].job_id))) rc = LF_ENOMEM;
        else attempts[j] = assigns[j].attempt;
    if (!rc && !(self->job_id = strdup(assigns[0].job_id))) rc = LF_ENOMEM;
    if (!rc) rc = lf_compute_start_batch(self->compute, assigns, n);
    if (rc) {
        for (size_t j = 0; j < n; j++) free(ids[j]);
        free(self->job_id);
        self->job_id = NULL;
        self->busy = false;
        return rc;
    }
    for (size_t j = 0; j < n; j++) self->jobs[j] = ids[j], self->attempts[j] = attempts[j], self->open[j] = true;
    self->job_attempt = attempts[0];
    self->n_jobs = self->n_open = n;
    self->busy = true;
    self->job_link = li;
    for (size_t j = 0; j < n; j++)
        if (self->cancel_early[j]) lf_compute_cancel_job(self->compute, j);
    memset(self->cancel_early, 0, sizeof self->cancel_early);
    return 0;
}

/* A batch's ASSIGNs are here (or the deadline passed): run those. */
static void s_collected(lf_worker_t *self) {
    size_t n = self->n_collect, li = self->job_link;
    if (n < self->want)
        lf_warn("batch of job %s: %zu of its %zu jobs arrived; running those", self->job_id, n, self->want);
    self->collect_until = 0;
    self->n_collect = 0;
    free(self->job_id); /* s_start sets it again */
    self->job_id = NULL;
    int rc = s_start(self, li, self->collect, n);
    for (size_t j = 0; j < n; j++) {
        if (rc) s_send_failed(self, li, self->collect[j].job_id, rc, "cannot start the job");
        lf_msg_clear(&self->collect[j]);
    }
}

/* Index of job_id among the jobs of the run (or of the batch arriving), or SIZE_MAX. */
static size_t s_job_index(const lf_worker_t *self, const char *job_id) {
    for (size_t j = 0; job_id && self->busy && j < LF_RUNNER_BATCH_MAX; j++) {
        const char *id = self->collect_until ? (j < self->n_collect ? self->collect[j].job_id : NULL)
                                             : (j < self->n_jobs ? self->jobs[j] : NULL);
        if (id && !strcmp(id, job_id)) return j;
    }
    return SIZE_MAX;
}

static void s_on_assign(lf_worker_t *self, size_t li, lf_msg_t *m) {
    if (!m->job_id || !*m->job_id) {
        lf_warn("ASSIGN without a job id from %s; ignored", lf_link_endpoint(self->links[li]));
        self->stats.bad_frames++;
        return;
    }
    if (self->busy && (!strcmp(self->job_id, m->job_id) || s_job_index(self, m->job_id) != SIZE_MAX)) {
        /* A broker that restarted (or adopted the run) re-sends a job we
         * are running, the batch's first or another: it is ours already,
         * and the heartbeats tell it so. Refusing a batch member here would
         * requeue it while it runs. */
        lf_info("job %s assigned again while running; keeping the run", m->job_id);
        if (li != self->job_link) self->job_link = li;
        return;
    }
    if (s_repeat(self, li, m)) return;
    if (m->batch_of && self->collect_until && li == self->job_link && !strcmp(m->batch_of, self->job_id) &&
        self->n_collect < self->want) {
        self->collect[self->n_collect++] = *m; /* moved */
        memset(m, 0, sizeof *m);
        if (self->n_collect == self->want) s_collected(self);
        return;
    }
    if (self->busy || self->stopping) {
        char why[160];
        snprintf(why, sizeof why, self->stopping ? "worker %s is shutting down"
                                                 : "worker %s is busy with another job",
                 self->id);
        lf_warn("job %s refused: %s", m->job_id, why);
        self->stats.jobs_refused++;
        s_send_failed(self, li, m->job_id, LF_EBUSY, why);
        return;
    }
    memset(self->cancel_early, 0, sizeof self->cancel_early);
    if (m->batch > 1 && self->batch_max > 1) {
        /* The first of a batch: the others follow on this link. */
        if (!(self->job_id = strdup(m->job_id))) {
            s_send_failed(self, li, m->job_id, LF_ENOMEM, "out of memory");
            return;
        }
        self->busy = true;
        self->job_link = li;
        self->collect[0] = *m; /* moved */
        memset(m, 0, sizeof *m);
        self->n_collect = 1;
        self->want = self->collect[0].batch < LF_RUNNER_BATCH_MAX ? self->collect[0].batch : LF_RUNNER_BATCH_MAX;
        self->collect_until = zclock_mono() + S_COLLECT_MS;
        return;
    }
    int rc = s_start(self, li, m, 1);
    if (rc) s_send_failed(self, li, m->job_id, rc, "cannot start the job");
}

/* A broker relays a refresh-loras: list the LoRA folders again, answer it
 * with the new caps (it writes them to the registry before it answers the
 * gateway) and tell the other brokers at once, so that none of them writes
 * the old list back at its next registry update. */
static void s_on_rescan(lf_worker_t *self, size_t li) {
    int rc = lf_compute_rescan_loras(self->compute);
    if (rc) lf_warn("LoRA rescan failed: %s; the old list stays", lf_strerror(rc));
    lf_msg_t m = {.type = LF_MSG_RESCAN, .worker_id = self->id};
    s_caps(self, &m.caps);
    s_send(self, li, &m);
    for (size_t i = 0; i < self->n_links; i++)
        if (i != li && self->registered[i]) s_send_heartbeat(self, i);
}

static void s_on_frame(lf_worker_t *self, size_t li, const uint8_t *buf, size_t len,
                       int64_t now) {
    lf_msg_t m = {0};
    int rc = lf_msg_decode(buf, len, &m, &self->codec);
    if (rc) {
        self->stats.bad_frames++;
        lf_warn("bad message from %s (%zu bytes): %s", lf_link_endpoint(self->links[li]), len,
                lf_strerror(rc));
        return;
    }
    switch (m.type) {
    case LF_MSG_HEARTBEAT: break; /* liveness was refreshed on receipt */
    case LF_MSG_RESCAN: s_on_rescan(self, li); break;
    case LF_MSG_ASSIGN:
        self->assigns[li]++;
        s_on_assign(self, li, &m);
        break;
    case LF_MSG_CANCEL: {
        size_t j = s_job_index(self, m.job_id);
        if (j != SIZE_MAX) {
            lf_info("job %s: cancel requested", m.job_id);
            if (self->collect_until) self->cancel_early[j] = true; /* applied at the start */
            else lf_compute_cancel_job(self->compute, j);
        } else {
            lf_debug("cancel for job %s, not running here; ignored", m.job_id ? m.job_id : "?");
        }
        break;
    }
    case LF_MSG_DISCONNECT:
        lf_info("broker %s sent DISCONNECT%s%s; reconnecting", lf_link_endpoint(self->links[li]),
                m.message ? ": " : "", m.message ? m.message : "");
        lf_link_drop(self->links[li], now);
        self->pending[li].sent = false;
        self->registered[li] = false;
        self->stats.reconnects++;
        break;
    default:
        lf_warn("unexpected %s from %s; ignored", lf_msg_type_name(m.type),
                lf_link_endpoint(self->links[li]));
        break;
    }
    lf_msg_clear(&m);
}

static void s_read_link(lf_worker_t *self, size_t li, int64_t now) {
    bool heard = false;
    /* A bounded batch per wake-up keeps one chatty broker from starving the
     * others and the compute pipe. */
    for (int k = 0; k < 64 && lf_link_up(self->links[li]); k++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = lf_link_recv(self->links[li], now, &buf, &len);
        if (rc == LF_EAGAIN || rc == LF_ECONN) break;
        heard = true;
        if (rc) {
            self->stats.bad_frames++;
            lf_warn("bad frame from %s: %s", lf_link_endpoint(self->links[li]), lf_strerror(rc));
            continue;
        }
        s_on_frame(self, li, buf, len, now);
        free(buf);
    }
    /* A broker that answers after our READY has registered us. */
    if (heard && lf_link_up(self->links[li])) self->registered[li] = true;
    /* The broker spoke after our final message went out: it has it. */
    if (heard && self->pending[li].sent && lf_link_up(self->links[li]))
        s_pending_clear(&self->pending[li]);
}

/* ---- compute events ------------------------------------------------------ */

static void s_on_done(lf_worker_t *self, lf_compute_event_t *ev) {
    size_t li = self->job_link;
    if (ev->code == 0)
        self->stats.jobs_done++;
    else
        self->stats.jobs_failed++;
    if (ev->batched) self->batched = ev->batched;
    if (!ev->msg) {
        /* The compute thread could not encode its answer: say so plainly. */
        uint8_t *buf = NULL;
        size_t len = 0;
        lf_msg_t f = {.type = LF_MSG_FAILED, .worker_id = self->id,
                      .job_id = ev->job_id ? ev->job_id : self->job_id,
                      .code = ev->code ? ev->code : LF_EINTERNAL,
                      .message = "the worker could not encode the job's answer"};
        if (lf_msg_encode(&f, &buf, &len)) buf = NULL;
        ev->msg = buf;
        ev->len = buf ? len : 0;
    }
    if (ev->msg) {
        /* A previous run's answers still unconfirmed on this link are
         * superseded: the broker has spoken since it assigned this job. The
         * answers of one run (a batch) stay together. */
        s_pending_t *p = &self->pending[li];
        if (self->n_open >= self->n_jobs) {
            s_pending_clear(p);
            snprintf(p->job, sizeof p->job, "%s", self->job_id); /* the run's first job (heartbeats name it) */
        }
        if (p->n < LF_RUNNER_BATCH_MAX) {
            p->buf[p->n] = ev->msg, p->len[p->n++] = ev->len;
            ev->msg = NULL;
            if (p->sent && lf_link_send(self->links[li], p->buf[p->n - 1], p->len[p->n - 1]))
                p->sent = false; /* all again at the next connection */
            else if (!p->sent)
                s_flush_pending(self, li);
        }
        if (!p->sent)
            lf_warn("job %s: broker %s unreachable; holding the answer until it is back",
                    ev->job_id ? ev->job_id : self->job_id, lf_link_endpoint(self->links[li]));
    }
    for (size_t j = 0; ev->job_id && j < self->n_jobs; j++)
        if (self->open[j] && !strcmp(self->jobs[j], ev->job_id)) {
            self->open[j] = false;
            break;
        }
    if (self->n_open) self->n_open--;
    if (self->n_open) return; /* more jobs of the batch to answer */
    for (size_t j = 0; j < self->n_jobs; j++) {
        s_finished_t *r = &self->recent[self->n_recent++ % S_RECENT];
        snprintf(r->job, sizeof r->job, "%s", self->jobs[j]);
        r->attempt = self->attempts[j];
        free(self->jobs[j]), self->jobs[j] = NULL;
    }
    self->n_jobs = 0;
    free(self->job_id);
    self->job_id = NULL;
    self->busy = false;
}

static void s_read_compute(lf_worker_t *self) {
    for (int k = 0; k < 256; k++) {
        lf_compute_event_t ev = {0};
        if (lf_compute_recv(self->compute, &ev)) break;
        switch (ev.kind) {
        case LF_COMPUTE_PROGRESS:
            if (self->busy && ev.msg) lf_link_send(self->links[self->job_link], ev.msg, ev.len);
            break;
        case LF_COMPUTE_RESIDENT:
            free(self->resident);
            self->resident = ev.resident && *ev.resident ? ev.resident : NULL;
            if (self->resident) ev.resident = NULL;
            self->n_resident = 0;
            for (char *s = self->resident, *nl; s && self->n_resident < 2; s = nl ? nl + 1 : NULL) {
                if ((nl = strchr(s, '\n'))) *nl = '\0';
                self->resident_v[self->n_resident++] = s;
            }
            free(self->lora_set);
            self->lora_set = ev.lora_set && *ev.lora_set ? ev.lora_set : NULL;
            if (self->lora_set) ev.lora_set = NULL;
            break;
        case LF_COMPUTE_DONE: s_on_done(self, &ev); break;
        }
        lf_compute_event_clear(&ev);
    }
}

/* ---- the loop ------------------------------------------------------------ */

static void s_tick_links(lf_worker_t *self, int64_t now) {
    for (size_t i = 0; i < self->n_links; i++) {
        lf_link_t *l = self->links[i];
        lf_heartbeat_action_t a;
        while ((a = lf_link_poll(l, now)) != LF_HB_NONE) {
            switch (a) {
            case LF_HB_CONNECT:
                if (lf_link_deaths(l))
                    lf_info("reconnecting to broker %s", lf_link_endpoint(l));
                else
                    lf_info("connecting to broker %s", lf_link_endpoint(l));
                self->registered[i] = false;
                self->assigns[i] = 0; /* a new socket: the broker counts afresh */
                s_send_ready(self, i);
                if (s_flush_pending(self, i))
                    lf_info("sent the held job answer to %s again", lf_link_endpoint(l));
                break;
            case LF_HB_SEND: s_send_heartbeat(self, i); break;
            case LF_HB_DEAD:
                self->stats.reconnects++;
                self->pending[i].sent = false; /* lost with the connection, maybe */
                self->registered[i] = false;
                if (lf_link_refusals(l))
                    lf_warn("broker %s silent: it refuses this worker's CURVE key (see above); "
                            "reconnecting after backoff", lf_link_endpoint(l));
                else
                    lf_warn("broker %s silent; reconnecting after backoff", lf_link_endpoint(l));
                break;
            case LF_HB_NONE: break;
            }
        }
    }
}

/* Keep the ready file true: ready = not draining, models to offer and a
 * broker that has answered; rewritten every heartbeat interval while ready
 * (a fresh mtime says this loop runs), removed the moment that stops. */
static void s_update_ready(lf_worker_t *self, int64_t now) {
    if (!self->ready) return;
    size_t n_models = 0, n_brokers = 0;
    lf_runner_models(lf_compute_runner(self->compute), &n_models);
    for (size_t i = 0; i < self->n_links; i++)
        n_brokers += self->registered[i] && lf_link_up(self->links[i]);
    if (self->stopping || !n_models || !n_brokers || (self->preload && !self->n_resident)) {
        if (lf_readyfile_ready(self->ready)) lf_readyfile_set(self->ready, NULL);
        return;
    }
    if (lf_readyfile_ready(self->ready) && now < self->ready_next) return;
    char text[512];
    snprintf(text, sizeof text, "ready worker=%s brokers=%zu models=%zu resident=%s busy=%d",
             self->id, n_brokers, n_models, self->resident ? self->resident : "-",
             (int)self->busy);
    lf_readyfile_set(self->ready, text);
    self->ready_next = now + self->ready_every_ms;
}

static void s_leave(lf_worker_t *self) {
    for (size_t i = 0; i < self->n_links; i++) {
        if (!lf_link_up(self->links[i])) continue;
        lf_msg_t m = {.type = LF_MSG_DISCONNECT, .worker_id = self->id};
        s_send(self, i, &m);
        /* Linger so the DISCONNECT (and a result just sent) can leave. */
        lf_link_destroy(&self->links[i], S_CLOSE_LINGER_MS);
        /* Keep the array dense for lf_worker_destroy: a NULL link is skipped. */
    }
}

int lf_worker_run(lf_worker_t *self, volatile sig_atomic_t *signals) {
    lf_info("worker %s: %zu broker(s), device %s (%s), %" PRIu64 " MiB, max %" PRIu64
            " pixels, precision %s, weight pack %s",
            self->id, self->n_links, self->device, self->device_name, self->device_memory >> 20,
            self->max_pixels, self->precision, self->weight_pack);
    size_t n_models = 0;
    const lf_model_info_t *models = lf_runner_models(lf_compute_runner(self->compute), &n_models);
    for (size_t i = 0; i < n_models; i++)
        lf_info("model %s (%s)", models[i].name, models[i].kind);

    zmq_pollitem_t *items = calloc(self->n_links + 1, sizeof *items);
    size_t *which = calloc(self->n_links + 1, sizeof *which);
    if (!items || !which) {
        free(items);
        free(which);
        return LF_ENOMEM;
    }
    int seen_signals = 0;
    for (;;) {
        int64_t now = zclock_mono();
        int sig = signals ? (int)*signals : 0;
        if (sig > seen_signals) {
            seen_signals = sig;
            if (!self->stopping) {
                self->stopping = true;
                lf_info("stopping%s", self->busy ? ": finishing the running job first" : "");
                s_update_ready(self, now); /* not ready from this moment */
            } else if (self->busy) {
                lf_info("second signal: cancelling job %s", self->job_id);
                lf_compute_cancel(self->compute);
            }
        }
        if (self->stopping && !self->busy) {
            /* A second signal means "now": no waiting for a broker. */
            if (!s_any_pending(self) || seen_signals >= 2) break;
            if (!self->stop_deadline) self->stop_deadline = now + self->drain_ms;
            if (now >= self->stop_deadline) {
                bool unsent = false;
                for (size_t i = 0; i < self->n_links; i++)
                    unsent |= self->pending[i].n && !self->pending[i].sent;
                if (unsent)
                    lf_warn("leaving with an undelivered job answer (no broker in %" PRId64 " ms)",
                            self->drain_ms);
                else
                    lf_info("leaving before the broker confirmed the last job answer");
                break;
            }
        }

        s_tick_links(self, now);
        s_update_ready(self, now);
        if (self->collect_until && now >= self->collect_until) s_collected(self);

        size_t n = 0;
        items[n] = (zmq_pollitem_t){.socket = lf_compute_handle(self->compute),
                                    .events = ZMQ_POLLIN};
        which[n++] = SIZE_MAX;
        int64_t deadline = now + S_MAX_WAIT_MS;
        for (size_t i = 0; i < self->n_links; i++) {
            int64_t d = lf_link_deadline(self->links[i]);
            if (d < deadline) deadline = d;
            void *h = lf_link_handle(self->links[i]);
            if (!h) continue;
            items[n] = (zmq_pollitem_t){.socket = h, .events = ZMQ_POLLIN};
            which[n++] = i;
        }
        if (self->ready && lf_readyfile_ready(self->ready) && self->ready_next < deadline)
            deadline = self->ready_next;
        if (self->collect_until && self->collect_until < deadline) deadline = self->collect_until;
        long timeout = deadline > now ? (long)(deadline - now) : 0;
        int rc = zmq_poll(items, (int)n, timeout);
        if (rc < 0) {
            if (errno == EINTR) continue; /* a signal: handled at the top */
            lf_error("poll failed: %s", zmq_strerror(errno));
            break;
        }
        now = zclock_mono();
        for (size_t k = 0; k < n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN)) continue;
            if (which[k] == SIZE_MAX)
                s_read_compute(self);
            else
                s_read_link(self, which[k], now);
        }
    }
    free(items);
    free(which);
    if (self->ready) lf_readyfile_set(self->ready, NULL);
    s_leave(self);
    lf_info("worker %s stopped: %" PRIu64 " done, %" PRIu64 " failed, %" PRIu64 " refused",
            self->id, self->stats.jobs_done, self->stats.jobs_failed, self->stats.jobs_refused);
    return 0;
}
