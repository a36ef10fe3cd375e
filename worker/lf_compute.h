/* lf_compute: the worker's compute thread — runs one job at a time through
 * the runner and reports back over an inproc pipe.
 *
 * The main thread hands over an ASSIGN message (lf_compute_start), may raise
 * the cancel flag (lf_compute_cancel), and reads events from the pipe
 * (lf_compute_recv) when lf_compute_handle() polls readable: PROGRESS for
 * every step, RESIDENT when the resident model changed, DONE once per job.
 * A batch (lf_compute_start_batch: the ASSIGNs of one broker batch) runs
 * through lf_runner_run_batch and gives each job its PROGRESS and its DONE.
 * PROGRESS and DONE carry a ready-to-send encoded protocol message
 * (PROGRESS, RESULT or FAILED), so the main thread only forwards bytes.
 *
 * Threading: every function is for the owning (main) thread; the runner is
 * used only on the compute thread after lf_compute_new (its model list is
 * fixed and may still be read from the main thread). */
#ifndef LF_COMPUTE_H
#define LF_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include "lf_proto.h"
#include "lf_runner.h"

typedef enum {
    LF_COMPUTE_PROGRESS = 1, /* msg: encoded PROGRESS */
    LF_COMPUTE_RESIDENT,     /* resident: model now loaded ("" = none; "base\nrefiner" with an
                                SDXL refiner); lora_set: the LoRA set merged into the base
                                ("" = none) */
    LF_COMPUTE_DONE,         /* msg: encoded RESULT or FAILED; code: 0 or LF_E* */
} lf_compute_kind_t;

typedef struct {
    lf_compute_kind_t kind;
    uint8_t *msg; /* owned */
    size_t len;
    int code;
    char *resident; /* owned */
    char *lora_set; /* owned */
    char *job_id;   /* DONE: the job it answers (owned) */
    uint64_t batched; /* DONE: jobs run in batches of two or more so far (lf_runner_batched) */
} lf_compute_event_t;

void lf_compute_event_clear(lf_compute_event_t *ev);

typedef struct lf_compute lf_compute_t;

/* Start the compute thread over *runner_p (ownership taken; *runner_p set to
 * NULL on success). `worker_id` is copied into every message. NULL on
 * failure (the runner is then left with the caller). Caller owns. */
lf_compute_t *lf_compute_new(lf_runner_t **runner_p, const char *worker_id);
/* Raises cancel, waits for the thread to finish its job and end, frees the
 * runner (unloading the model). Accepts NULL; sets *self_p to NULL. */
void lf_compute_destroy(lf_compute_t **self_p);

/* The pipe's libzmq socket handle, to poll for ZMQ_POLLIN. */
void *lf_compute_handle(lf_compute_t *self);
/* Borrowed, immutable model list of the runner. */
const lf_runner_t *lf_compute_runner(const lf_compute_t *self);
/* The runner's LoRA list made again (lf_runner_rescan_loras), from the
 * caller's thread (the main thread, the only reader of that list; the
 * compute thread never touches it, so a job may run meanwhile). */
int lf_compute_rescan_loras(lf_compute_t *self);

/* Run the job of an ASSIGN message; the message's contents are moved out
 * (*assign is cleared). The cancel flag is lowered first. LF_EINVAL when
 * assign has no job id; LF_ENOMEM; LF_EIO when the pipe refused it. */
int lf_compute_start(lf_compute_t *self, lf_msg_t *assign);
/* The jobs of n (1..LF_RUNNER_BATCH_MAX) ASSIGNs as one batch, in that
 * order (job j = assigns[j]); moved out like lf_compute_start's. */
int lf_compute_start_batch(lf_compute_t *self, lf_msg_t *assigns, size_t n);
/* Ask the running job (every job of a batch) to stop at its next step (no-op when idle). */
void lf_compute_cancel(lf_compute_t *self);
/* Cancel job j of the running batch alone: it stops sending progress and
 * answers FAILED/LF_ECANCELED (its images, if made, are dropped); the
 * batch stops once every job of it is cancelled. */
void lf_compute_cancel_job(lf_compute_t *self, size_t j);
/* Take one event (non-blocking). LF_EAGAIN when none is waiting. */
int lf_compute_recv(lf_compute_t *self, lf_compute_event_t *ev);

#endif
