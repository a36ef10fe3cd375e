/* lightfarm-worker: settings (lf_config: LF_* variables and --flags, flags
 * win), signals, and the worker's main loop (lf_worker.h). */
#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_config.h"
#include "lf_cpushare.h"
#include "lf_diagnostic.h"
#include "lf_engine_runner.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_proto.h"
#include "lf_worker.h"

extern char **environ;

/* The one signal flag the house rules allow: how many SIGTERM/SIGINT came. */
static volatile sig_atomic_t s_signals;

static void s_on_signal(int sig) {
    (void)sig;
    if (s_signals < 100) s_signals++;
}

int main(int argc, char **argv) {
    lf_config_t cfg = {0};
    char err[256];
    if (lf_config_load(&cfg, environ, argc, argv, err, sizeof err)) {
        fprintf(stderr, "lightfarm-worker: %s\n", err);
        lf_config_usage(stderr, "lightfarm-worker", LF_CFG_WORKER);
        return 2;
    }
    if (cfg.help || cfg.version) {
        if (cfg.help) lf_config_usage(stdout, "lightfarm-worker", LF_CFG_WORKER);
        else printf("lightfarm-worker %s (protocol %d)\n", LF_VERSION_STRING, LF_PROTO_VERSION);
        lf_config_clear(&cfg);
        return 0;
    }
    if (cfg.n_args) {
        fprintf(stderr, "lightfarm-worker: unexpected argument '%s'\n", cfg.args[0]);
        lf_config_clear(&cfg);
        return 2;
    }
    lf_log_init("worker", cfg.log_level);

    /* Local workers split the cores: this one's slice, its threads pinned there. */
    lf_cpushare_t share;
    int cores = lf_cpushare_cores();
    if (lf_cpushare_split(cores, (int)cfg.local_workers, (int)cfg.local_index, &share)) {
        fprintf(stderr, "lightfarm-worker: LF_LOCAL_INDEX %lld is not below LF_LOCAL_WORKERS %lld\n",
                (long long)cfg.local_index, (long long)cfg.local_workers);
        lf_config_clear(&cfg);
        return 2;
    }
    char cpus[256];
    lf_cpushare_list(&share, cpus, sizeof cpus); /* before pinning: positions in the mask it had */
    const char *pinning = "none";
    if (cfg.local_workers > 1) {
        if (lf_cpushare_pin(&share)) {
            lf_warn("cannot pin to cores %s: threads not pinned", cpus);
            lf_cpushare_t all = {0, lf_cpushare_cores()};
            lf_cpushare_list(&all, cpus, sizeof cpus);
        } else {
            pinning = "slice";
        }
    }
    int n_threads = lf_cpushare_threads(&share, (int)cfg.threads);
    /* LF_PIN_THREADS=1: the CPU backend pins its threads one per core (it
     * reads the variable when made); only where each thread has a core. */
    bool pin = cfg.pin_threads && n_threads > 1 && n_threads <= share.count;
    if (cfg.pin_threads && n_threads > share.count)
        lf_warn("LF_PIN_THREADS: %d threads on %d cores: threads not pinned one per core", n_threads, share.count);
    if (setenv("LF_PIN_THREADS", pin ? "1" : "0", 1)) pin = false;
    if (pin) pinning = "threads";
    /* How oneDNN's OpenMP threads wait between primitives (libgomp read it
     * before main; deploy/lightfarm chooses it per farm), and with it the CPU
     * backend's pool: oneDNN's team where they spin first, threads of its own
     * where they sleep at once (docs/PERFORMANCE.md, session 13). */
    const char *omp_wait = getenv("OMP_WAIT_POLICY"), *omp_spin = getenv("GOMP_SPINCOUNT");
    lf_info("compute threads: %d on cores %s (%d of %d usable, local worker %lld of %lld), pinning %s, OpenMP wait "
            "%s%s%s%s",
            n_threads, cpus, share.count, cores, (long long)cfg.local_index + 1, (long long)cfg.local_workers, pinning,
            omp_wait && *omp_wait ? omp_wait : "default", omp_spin && *omp_spin ? " (GOMP_SPINCOUNT " : "",
            omp_spin && *omp_spin ? omp_spin : "", omp_spin && *omp_spin ? ")" : "");

    /* czmq would turn SIGINT/SIGTERM into "interrupted" and stop every
     * socket call; the worker wants them as a request to finish and leave. */
    zsys_handler_set(NULL);
    zsys_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Backends in preference order; the diagnostic model comes last so it is
     * never anyone's first choice once a real model is installed. */
    static const lf_runner_backend_t *const backends[] = {&lf_engine_runner_backend,
                                                          &lf_diagnostic_backend};
    lf_worker_opts_t opts = {
        .worker_id = cfg.worker_id,
        .endpoints = (const char *const *)cfg.backend.items,
        .n_endpoints = cfg.backend.n,
        .device = cfg.worker_device,
        .models_dir = cfg.models_dir,
        .max_pixels = (uint64_t)cfg.max_pixels,
        .preview_every = (uint32_t)cfg.preview_every,
        .memory_budget = (uint64_t)cfg.model_memory_mb << 20,
        .precision = cfg.precision,
        .weight_pack = cfg.weight_pack,
        .pack_dir = cfg.pack_dir,
        .n_threads = n_threads,
        .pinning = pinning,
        .cpus = cpus,
        .batch_max = (uint32_t)cfg.batch_max,
        .step_delay_max_ms = (uint32_t)cfg.step_delay_max_ms,
        .heartbeat = {cfg.heartbeat_ms, cfg.heartbeat_liveness, cfg.reconnect_min_ms,
                      cfg.reconnect_max_ms},
        .drain_ms = cfg.worker_drain_ms,
        .curve_cert = cfg.curve_cert,
        .curve_server_cert = cfg.curve_server_cert,
        .ready_file = cfg.worker_ready_file,
        .preload = cfg.worker_preload,
        .backends = backends,
        .n_backends = sizeof backends / sizeof backends[0],
    };
    /* A worker that batches runs every job in the backends' batch-invariant
     * mode (one image per product / convolution call; LF_CUDA_PER_IMAGE is
     * the CUDA backend's), so a job's bytes are the same alone or batched;
     * one that does not keeps the faster calls. Set before any backend
     * exists (they read it when made). */
    if (cfg.batch_max > 1 && (setenv("LF_CPU_PER_IMAGE", "1", 0) || setenv("LF_CUDA_PER_IMAGE", "1", 0)))
        lf_warn("cannot set LF_CPU_PER_IMAGE / LF_CUDA_PER_IMAGE: batched jobs may differ from alone in the last bits");
    lf_worker_t *w = lf_worker_new(&opts);
    int rc = 1;
    if (w) {
        rc = lf_worker_run(w, &s_signals) ? 1 : 0;
        lf_worker_destroy(&w);
    } else {
        lf_error("cannot start the worker");
    }
    lf_config_clear(&cfg);
    return rc;
}
