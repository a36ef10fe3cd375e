/* lf_worker: the worker process's context — broker links, the compute
 * thread, the one job it runs at a time, and the main loop.
 *
 * The main thread owns every broker link (one DEALER per broker endpoint):
 * it sends READY (capabilities) on each (re)connect, heartbeats every
 * interval (busy + job id while a job runs, so a restarted broker can adopt
 * the job), receives ASSIGN and CANCEL, and forwards what the compute thread
 * reports (PROGRESS every step, then RESULT or FAILED) to the broker that
 * assigned the job. A job's final message whose broker is unreachable is kept
 * and sent right after that link's next READY.
 *
 * Stopping: the first SIGTERM/SIGINT (counted in the flag given to
 * lf_worker_run) lets the running job finish and deliver its result, then the
 * worker says DISCONNECT to every broker and returns 0; a second signal
 * cancels the job first. While stopping, new ASSIGNs are refused with FAILED
 * LF_EBUSY. The ready file, when set, disappears as soon as draining starts,
 * so an orchestrator stops counting the worker at once.
 *
 * Threading: everything here runs on the thread that calls lf_worker_run.
 * Ownership: lf_worker_new returns an object the caller owns; options are
 * copied. */
#ifndef LF_WORKER_H
#define LF_WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_heartbeat.h"
#include "lf_runner.h"

typedef struct {
    const char *worker_id;             /* NULL: "<host>-<pid>-<random hex>" */
    const char *const *endpoints;      /* broker backend endpoints, one link each */
    size_t n_endpoints;
    const char *device;                /* "cpu" (default); others need a backend's device_info */
    const char *models_dir;            /* may be NULL */
    uint64_t max_pixels;               /* 0: no limit */
    uint32_t preview_every;            /* preview every N steps; 0: none */
    uint64_t memory_budget;            /* bytes of weights kept resident (base + refiner); 0: no limit */
    uint32_t step_delay_max_ms;        /* cap on the diagnostic delay; 0: the model's own */
    const char *precision;             /* jobs' default compute precision (f32 | bf16 | auto); NULL: f32 */
    const char *weight_pack;           /* pre-packed weights: file | memory | off | auto (lf_engine_opts_t.pack) */
    const char *pack_dir;              /* their file's folder (lf_engine_opts_t.pack_dir); NULL: $TMPDIR, /var/tmp */
    int n_threads;                     /* CPU compute threads; 0: all cores */
    const char *pinning;               /* how they are pinned, as reported: "none" | "slice" (the
                                          process on its cores) | "threads" (one per core); NULL: "none" */
    const char *cpus;                  /* the cores they run on ("0-3"); NULL: not said */
    uint32_t batch_max;                /* jobs taken as one batch (LF_BATCH_MAX, capped at
                                          LF_RUNNER_BATCH_MAX); 0 or 1: one at a time */
    lf_heartbeat_cfg_t heartbeat;
    int64_t drain_ms; /* on stop, how long to wait for a broker to take the last result;
                         0 = do not wait, < 0 = 5000 */
    /* CURVE: our certificate file (czmq zcert, with its secret part) and the
     * brokers' public certificate file. No server cert = plain TCP; a server
     * cert without our own = a fresh key pair per run. */
    const char *curve_cert;
    const char *curve_server_cert;
    /* Readiness file for probes (lf_readyfile.h): written once a broker has
     * answered and models are listed, rewritten every heartbeat interval,
     * removed when no broker is left or the worker starts to drain. NULL or
     * "": none. A folder that is not writable fails lf_worker_new. */
    const char *ready_file;
    /* A model to make resident before the worker starts (NULL or "": load
     * on the first job). It must be one of the listed models and load, or
     * lf_worker_new fails saying why; with a ready file, ready then also
     * means "this model is resident". */
    const char *preload;
    /* Model backends, in preference order (tables borrowed). */
    const lf_runner_backend_t *const *backends;
    size_t n_backends;
} lf_worker_opts_t;

typedef struct lf_worker lf_worker_t;

/* Counters, for tests and logs. */
typedef struct {
    uint64_t jobs_done, jobs_failed, jobs_refused;
    uint64_t jobs_repeated; /* ASSIGNs of a job (and attempt) this worker had finished: not
                               run again (its answer is re-sent where still held) */
    uint64_t reconnects;  /* brokers declared dead */
    uint64_t bad_frames;  /* undecodable messages received */
} lf_worker_stats_t;

/* A worker ready to run: links created (not yet connected), compute thread
 * started. NULL on bad options (an empty or invalid endpoint list, an
 * unsupported device, unreadable certificates) or no memory; the reason is
 * logged. Caller owns. */
lf_worker_t *lf_worker_new(const lf_worker_opts_t *opts);
/* Stops the compute thread (cancelling a job still running) and closes the
 * links. Accepts NULL; sets *self_p to NULL. */
void lf_worker_destroy(lf_worker_t **self_p);

/* Borrowed; valid for the worker's life. */
const char *lf_worker_id(const lf_worker_t *self);

/* Serve until *signals becomes non-zero (see above). 0 on a clean stop. */
int lf_worker_run(lf_worker_t *self, volatile sig_atomic_t *signals);

lf_worker_stats_t lf_worker_stats(const lf_worker_t *self);

#endif
