/* lf_runner: how the worker runs a job — the model-backend interface and the
 * runner that keeps one model resident between jobs.
 *
 * A backend is a `static const lf_runner_backend_t` table of function
 * pointers (ggml style). It enumerates the models it can run (name + kind),
 * loads one of them into a private state, runs jobs on that state, and
 * unloads it. `lf-diagnostic` (lf_diagnostic.h) is the first backend; the
 * diffusion engine plugs in later as another table, without changing the
 * worker.
 *
 * The runner (lf_runner_t) owns a fixed list of backends, the merged model
 * list (model name -> backend), and at most one resident model. A job for the
 * resident model runs at once; a job for another model unloads the resident
 * one first and loads the new one (switching is the exception).
 *
 * Threading: a backend's load/run/unload and every lf_runner_t function except
 * lf_runner_models() are called from ONE thread (the worker's compute thread).
 * The model list is fixed by lf_runner_new() and may be read from any thread
 * afterwards. Progress callbacks run on the calling (compute) thread.
 *
 * Ownership: job inputs are borrowed for the duration of run(); outputs
 * (lf_runner_output_t) are owned by the caller and released with
 * lf_runner_output_clear(). */
#ifndef LF_RUNNER_H
#define LF_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_proto.h"

/* Called by a backend after each completed step (1-based `step` of `steps`).
 * `preview` is an encoded image (PNG) or NULL, borrowed for the call only. */
typedef void (*lf_runner_progress_fn)(void *ud, uint32_t step, uint32_t steps,
                                      const uint8_t *preview, size_t preview_len);

/* Settings every backend sees (borrowed; valid for the runner's life). */
typedef struct {
    const char *device;         /* "cpu" | "cuda" | "cuda:N" */
    const char *models_dir;     /* where model files live; may be NULL */
    uint64_t max_pixels;        /* width * height limit per image; 0 = none */
    uint32_t preview_every;     /* a preview with every Nth step's progress; 0 = none */
    uint32_t step_delay_max_ms; /* diagnostic backends: cap on step_delay_ms; 0 = their own */
    const char *precision;      /* compute precision of jobs that name none (lf_engine_opts_t); NULL: f32 */
    const char *weight_pack;    /* pre-packed weights (lf_engine_opts_t.pack); NULL: auto */
    const char *pack_dir;       /* their file's folder (lf_engine_opts_t.pack_dir) */
    int n_threads;              /* CPU compute threads; 0 = all cores */
    uint64_t memory_budget;     /* bytes of weights a backend keeps resident (an SDXL refiner
                                   next to its base while both fit); 0 = no limit */
} lf_runner_env_t;

/* One job as a backend sees it. Everything is borrowed. */
typedef struct {
    const lf_job_params_t *params;
    const uint8_t *init_image; /* encoded image for img2img; NULL when none */
    size_t init_image_len;
    const uint8_t *mask;       /* inpainting mask (params->mask); NULL when none */
    size_t mask_len;
    lf_runner_progress_fn progress; /* may be NULL */
    void *progress_ud;
    /* Set by another thread to ask for a stop. A backend checks it at least
     * once per step and returns LF_ECANCELED promptly (well under a step). */
    const atomic_bool *cancel; /* may be NULL */
    /* Where run() may write why it failed, for the job's error message
     * (lf_runner_run points it at its errbuf); may be NULL. */
    char *errbuf;
    size_t errlen;
} lf_runner_job_t;

/* What a job produced: params.batch_size images (seed, seed+1, ...). */
typedef struct {
    lf_image_out_t *images; /* owned, n_images entries, each png owned */
    size_t n_images;
    char *info_json;        /* owned; generation metadata as JSON text */
} lf_runner_output_t;

/* Free everything an output owns and zero it. Accepts NULL. */
void lf_runner_output_clear(lf_runner_output_t *out);

/* A model backend. All functions are required unless marked optional.
 * Errors are negative LF_E* codes; a failing function leaves its outputs
 * untouched. */
typedef struct lf_runner_backend {
    const char *name; /* backend name for logs, e.g. "diagnostic" */

    /* Models this backend can run under `env`: sets *out to a malloc'd array
     * of *n entries (caller owns; entries' strings owned, free with
     * lf_runner_models_free). May return 0 models. */
    int (*list_models)(const lf_runner_env_t *env, lf_model_info_t **out, size_t *n);

    /* Load `model` (one of list_models') and return its state in *state.
     * LF_ENOTFOUND, LF_ENOMEM, LF_EIO, LF_EFORMAT, LF_ECUDA..., with a reason
     * for humans naming the file copied into err (errlen bytes; err may be
     * NULL), which the job's error carries. */
    int (*load)(const lf_runner_env_t *env, const char *model, void **state, char *err, size_t errlen);

    /* Optional: check a job before running it (size limits, modes); 0 = ok,
     * else LF_EINVAL / LF_ELIMIT / LF_EUNSUPPORTED with a message copied into
     * errbuf. NULL means run() does all checking. */
    int (*check)(void *state, const lf_job_params_t *params, char *errbuf, size_t errlen);

    /* Run one job on a loaded state. On success fills *out (zeroed on entry).
     * LF_ECANCELED when job->cancel was raised; other codes on failure. */
    int (*run)(void *state, const lf_runner_job_t *job, lf_runner_output_t *out);

    /* Optional: n (2..LF_RUNNER_BATCH_MAX) jobs of one batch key
     * (lf_batch.h) as one batch, each job's images byte for byte what run()
     * makes of it alone; outs[j] (zeroed on entry) for job j; stops when
     * `cancel` is raised (LF_ECANCELED). LF_EUNSUPPORTED when these jobs
     * cannot run together (the runner then runs them one by one); another
     * code fails every job of the batch. NULL: never batched. */
    int (*run_batch)(void *state, const lf_runner_job_t *jobs, size_t n, const atomic_bool *cancel,
                     lf_runner_output_t *outs);

    /* Release a state; accepts *state == NULL and sets it to NULL. */
    void (*unload)(void **state);

    /* Optional: when this backend can drive env->device (a GPU), its name
     * (e.g. "NVIDIA H100 80GB HBM3", NUL-terminated into name[n]) and memory
     * in bytes, for the worker's READY. LF_EUNSUPPORTED when it cannot; on
     * any failure name receives the reason (a sentence naming the device).
     * NULL means CPU only: the worker then describes the machine itself. */
    int (*device_info)(const lf_runner_env_t *env, char *name, size_t n, uint64_t *memory_bytes);

    /* Optional: the LoRA files this backend can apply under `env` (*out a
     * malloc'd array, strings owned; lf_runner_loras_free). NULL = none. */
    int (*list_loras)(const lf_runner_env_t *env, lf_lora_info_t **out, size_t *n);

    /* Optional: list_loras again after a start (lf_runner_rescan_loras),
     * given the files listed so far (known), so that their hashes are reused
     * where the path is the same instead of reading every file again; new
     * files are hashed. NULL: list_loras is called. */
    int (*rescan_loras)(const lf_runner_env_t *env, const lf_lora_info_t *known, size_t n_known,
                        lf_lora_info_t **out, size_t *n);

    /* Optional: separate VAE files jobs may name (params.vae), each with
     * its family and latent channels as the file's header tells
     * (lf_vaefamily): *out a malloc'd array of *n entries with malloc'd
     * strings (caller owns; lf_runner_vaes_free). */
    int (*list_vaes)(const lf_runner_env_t *env, lf_vae_info_t **out, size_t *n);
    /* Optional: the upscaler models it can run (Hires-Fix hr_upscaler,
     * extras), by name: *out a malloc'd array of *n malloc'd names (caller
     * owns). */
    int (*list_upscalers)(const lf_runner_env_t *env, char ***out, size_t *n);
    /* ADetailer detectors it can run (names, caller owns); NULL = none. */
    int (*list_ad_models)(const lf_runner_env_t *env, char ***out, size_t *n);

    /* Optional: the refiner a loaded state keeps resident next to its model
     * (borrowed), or NULL. */
    const char *(*refiner)(void *state);
} lf_runner_backend_t;

void lf_runner_loras_free(lf_lora_info_t *loras, size_t n);
/* Frees a list_vaes array and its strings. Accepts NULL. */
void lf_runner_vaes_free(lf_vae_info_t *vaes, size_t n);

void lf_runner_models_free(lf_model_info_t *models, size_t n);

typedef struct lf_runner lf_runner_t;

/* A runner over `n` backends (tables borrowed; they are static). Asks each
 * backend for its models; a model name claimed twice keeps the first
 * backend's entry. Caller owns the result; NULL on bad arguments or when no
 * memory is left. */
lf_runner_t *lf_runner_new(const lf_runner_env_t *env, const lf_runner_backend_t *const *backends,
                           size_t n);
/* Unloads the resident model. Accepts NULL; sets *self_p to NULL. */
void lf_runner_destroy(lf_runner_t **self_p);

/* All runnable models, in backend order (borrowed; fixed for the runner's
 * life; safe from any thread). */
const lf_model_info_t *lf_runner_models(const lf_runner_t *self, size_t *n);
/* Kind of `model` ("diagnostic", "sd15", ...) or NULL when unknown (borrowed). */
const char *lf_runner_model_kind(const lf_runner_t *self, const char *model);
/* Ask the backends, in order, to describe env->device (see device_info):
 * the first that can fills name and *memory_bytes. When none can, the
 * error of the last backend that tried (LF_EUNSUPPORTED when none has
 * device_info) and name holds its reason. Call before handing the runner to
 * another thread. */
int lf_runner_device_info(const lf_runner_t *self, char *name, size_t n, uint64_t *memory_bytes);

/* Name of the resident model, or NULL (borrowed until the next load/unload). */
const char *lf_runner_resident(const lf_runner_t *self);
/* Every backend's LoRA files, listed when the runner was made or at the
 * last lf_runner_rescan_loras (borrowed until the next rescan). */
const lf_lora_info_t *lf_runner_loras(const lf_runner_t *self, size_t *n);
/* Lists every backend's LoRA files again (A1111's refresh-loras): files
 * added to or removed from the folders since the start. Call it from the
 * thread that reads lf_runner_loras (the worker's main thread); jobs need
 * no rescan (the engine finds a new name itself). 0, or LF_ENOMEM (the
 * old list is kept); a backend that cannot list contributes nothing. */
int lf_runner_rescan_loras(lf_runner_t *self);
/* The LoRA set of the last job that ran to the end (lf_extranet_lora_set;
 * "" after a failed job, a model load, or none yet). Borrowed. */
const char *lf_runner_lora_set(const lf_runner_t *self);
/* The refiner resident next to it (SDXL), or NULL (borrowed until the next run). */
const char *lf_runner_refiner(const lf_runner_t *self);
/* The VAE names every backend offers, fixed at lf_runner_new (borrowed;
 * safe from any thread). */
const char *const *lf_runner_vaes(const lf_runner_t *self, size_t *n);
/* The same VAEs, in the same order, with their families and latent
 * channels (borrowed; fixed at lf_runner_new; safe from any thread). */
const lf_vae_info_t *lf_runner_vae_info(const lf_runner_t *self, size_t *n);
/* The upscaler models the backends listed (borrowed; *n set). */
const char *const *lf_runner_upscalers(const lf_runner_t *self, size_t *n);
/* The ADetailer detectors the backends can run (names; borrowed). */
const char *const *lf_runner_ad_models(const lf_runner_t *self, size_t *n);

/* Make `model` resident (unloading another one first). No-op when it already
 * is. LF_ENOTFOUND for an unknown model; the backend's code otherwise (then
 * nothing is resident, and lf_runner_run's errbuf says the backend's reason). */
int lf_runner_load(lf_runner_t *self, const char *model);
void lf_runner_unload(lf_runner_t *self);

/* Run a job: checks the limits of the env (max_pixels) and the backend's own,
 * loads job->params->model if needed, then runs it. `errbuf` gets a message
 * for humans on failure. Errors: LF_EINVAL (no model, zero size),
 * LF_ENOTFOUND (unknown model), LF_ELIMIT (too many pixels), LF_ECANCELED,
 * and the backend's codes. */
int lf_runner_run(lf_runner_t *self, const lf_runner_job_t *job, lf_runner_output_t *out,
                  char *errbuf, size_t errlen);

/* Jobs one worker takes at once at most (LF_BATCH_MAX is capped here). */
#define LF_RUNNER_BATCH_MAX 16

/* Run n (1..LF_RUNNER_BATCH_MAX) jobs the broker sent as one batch: each
 * gets lf_runner_run's checks (a job that fails them fails alone: codes[j]
 * and its reason at errbufs + j * errlen), the others run as one batch
 * through the backend's run_batch when they share a model and a batch key,
 * else (or when it fails with anything but LF_ECANCELED, so that a job
 * that fails alone fails alone) one by one with lf_runner_run.
 * A batch stops when `cancel` is raised (the caller raises it once every
 * job of the batch is cancelled; one cancelled job of a batch runs to the
 * end and the caller drops its output); one by one, each job's own
 * jobs[j].cancel counts too. codes[j]: 0 with outs[j] filled (caller owns),
 * or the job's error. Returns 0, or LF_EINVAL (bad arguments). */
int lf_runner_run_batch(lf_runner_t *self, const lf_runner_job_t *jobs, size_t n,
                        const atomic_bool *cancel, lf_runner_output_t *outs, int *codes,
                        char *errbufs, size_t errlen);
/* Jobs that ran through a backend's run_batch in batches of two or more. */
uint64_t lf_runner_batched(const lf_runner_t *self);

#endif
