/* lf_schedule: noise schedules (sigma sequences) for the samplers.
 *
 * The model side is a discrete VP schedule: SD1.x uses scaled_linear betas
 * from 0.00085 to 0.012 over 1000 training steps; alphas_cumprod is computed
 * in double and stored as float, and sigma_t = sqrt((1 - a_t) / a_t) is
 * computed from it in float, as in the LDM / k-diffusion code. Schedulers
 * turn it into n+1 sigmas for n steps,
 * descending, with a final 0 (k-diffusion / ComfyUI definitions).
 *
 * Pure functions and an immutable object; thread-safe after construction. */
#ifndef LF_SCHEDULE_H
#define LF_SCHEDULE_H

#include <stddef.h>

#define LF_SCHEDULE_TRAIN_STEPS 1000

/* Which Align Your Steps noise levels a model's schedule uses. */
typedef enum { LF_AYS_SD1 = 0, LF_AYS_SDXL } lf_ays_t;

typedef struct {
    int n;                                   /* training steps (1000) */
    float sigmas[LF_SCHEDULE_TRAIN_STEPS];   /* ascending, sigma of timestep t */
    float log_sigmas[LF_SCHEDULE_TRAIN_STEPS];
    double alphas_cumprod[LF_SCHEDULE_TRAIN_STEPS];
    lf_ays_t ays;                            /* AYS levels (LF_AYS_SD1 after init) */
} lf_schedule_t;

typedef enum {
    LF_SCHEDULER_NORMAL = 0,   /* t = linspace(999, 0, n), log-sigma interpolation (k-diffusion "discrete") */
    LF_SCHEDULER_KARRAS,       /* Karras et al. 2022, rho = 7 */
    LF_SCHEDULER_EXPONENTIAL,  /* log-linear between sigma_max and sigma_min */
    LF_SCHEDULER_SGM_UNIFORM,  /* t = linspace(999, 0, n + 1)[:-1] */
    LF_SCHEDULER_SIMPLE,       /* ComfyUI "simple": every 1000/n-th training sigma from the top */
    LF_SCHEDULER_DDIM_UNIFORM, /* ComfyUI "ddim_uniform": every 1000//n-th from index 1, reversed */
    LF_SCHEDULER_BETA,         /* ComfyUI "beta" (Lee et al. 2024): training sigmas at the
                                  Beta(0.6, 0.6) quantiles 1 - i/n of the timesteps */
    LF_SCHEDULER_KL_OPTIMAL,   /* tan of linspace(atan sigma_max, atan sigma_min), n points */
    LF_SCHEDULER_LINEAR_QUADRATIC, /* ComfyUI (from Mochi): linear then quadratic in sigma/sigma_max */
    LF_SCHEDULER_AYS,          /* Align Your Steps: NVIDIA's 10-step noise levels for the
                                  model's family (lf_schedule_t.ays), log-linearly resampled */
    LF_SCHEDULER_TRAILING,     /* diffusers timestep_spacing="trailing" (SDXL-Lightning, Turbo,
                                  DMD2): t = round(1000 - 1000 i / n) - 1, integer timesteps */
    LF_SCHEDULER_LCM,          /* diffusers LCMScheduler / TCDScheduler's default timesteps:
                                  t = 999 - 20 floor(50 i / n) (original_inference_steps 50),
                                  n <= 50 */
    LF_SCHEDULER_COUNT
} lf_scheduler_t;

/* Fills *out with the SD1.x schedule (scaled_linear, 0.00085 -> 0.012). */
void lf_schedule_init_sd15(lf_schedule_t *out);
/* Fills *out from explicit scaled_linear betas over n_train steps (<= 1000).
 * Returns 0 or LF_EINVAL. */
int lf_schedule_init_scaled_linear(lf_schedule_t *out, int n_train, double beta_start, double beta_end);

static inline double lf_schedule_sigma_min(const lf_schedule_t *s) { return s->sigmas[0]; }
static inline double lf_schedule_sigma_max(const lf_schedule_t *s) { return s->sigmas[s->n - 1]; }

/* Continuous timestep -> sigma, interpolating log sigma between integer
 * timesteps; t is clamped to [0, n-1]. */
double lf_schedule_t_to_sigma(const lf_schedule_t *s, double t);
/* sigma -> continuous timestep, the inverse of the above (k-diffusion
 * sigma_to_t); clamped to [0, n-1]. */
double lf_schedule_sigma_to_t(const lf_schedule_t *s, double sigma);
/* sigma -> nearest integer timestep (ComfyUI model_sampling.timestep). */
int lf_schedule_sigma_to_t_nearest(const lf_schedule_t *s, double sigma);

/* Writes steps + 1 sigmas (descending, the last 0) into out for the given
 * scheduler over the schedule's sigma range. Returns 0, or LF_EINVAL for
 * steps < 1 or an unknown scheduler. The definitions are ComfyUI's
 * (comfy/samplers.py; AYS: comfy_extras/nodes_align_your_steps.py), checked
 * against them by tests/engine/test_schedule.c, with two choices where
 * ComfyUI's would not give `steps` steps: kl_optimal with one step is
 * [sigma_max, 0] (ComfyUI divides by steps - 1), and beta, where rounding
 * maps two quantiles to one timestep (from 139 steps on; ComfyUI drops the
 * repeat and runs fewer steps), takes the next lower unused timestep.
 * A1111's "Beta" and "KL Optimal" differ from ComfyUI's (sigma-space beta
 * quantiles; kl_optimal ending at sigma_min without the 0): these follow
 * ComfyUI, whose names the API uses.
 *
 * trailing and lcm are diffusers' (ComfyUI has neither; "trailing" and
 * "lcm" are lightfarm's names, as stable-diffusion.cpp names its LCM one):
 * the training sigmas at integer timesteps. trailing equals ComfyUI's
 * "simple" whenever n divides 1000 (1, 2, 4, 5, 8, 10, ...; simple floors
 * 1000 i / n where trailing rounds it, so 3 steps give 999, 666, 332 against
 * simple's 999, 666, 333), and differs from sgm_uniform (which SDXL-
 * Lightning's model card names for ComfyUI), whose continuous t = 999 -
 * 999 i / n lies up to one timestep above (4 steps: 999, 749.25, 499.5,
 * 249.75 against 999, 749, 499, 249). lcm returns LF_EINVAL above 50 steps,
 * as diffusers refuses them. */
int lf_schedule_sigmas(const lf_schedule_t *s, lf_scheduler_t kind, int steps, double *out);
/* Explicit training timesteps (diffusers' pipeline `timesteps=` argument,
 * e.g. Hyper-SD's 1-step [800] or DMD2's [999, 749, 499, 249]): writes
 * steps + 1 sigmas, the training sigma at each timestep then 0, as
 * trailing does for its own. The timesteps must be strictly descending
 * integers in [0, n-1]; else LF_EINVAL (out untouched). */
int lf_schedule_sigmas_at(const lf_schedule_t *s, const int *timesteps, int steps, double *out);
/* Karras schedule between arbitrary bounds; steps + 1 values, last 0. */
void lf_schedule_karras(double sigma_min, double sigma_max, double rho, int steps, double *out);
/* Exponential schedule between arbitrary bounds; steps + 1 values, last 0. */
void lf_schedule_exponential(double sigma_min, double sigma_max, int steps, double *out);

/* ---- Flow matching (Flux): x_t = (1 - sigma) x0 + sigma noise, sigma in
 * [0, 1], the model predicting the velocity noise - x0. ---- */
/* diffusers FluxPipeline's calculate_shift: mu linear in the image's token
 * count, base_shift at base_seq tokens and max_shift at max_seq (Flux: 0.5,
 * 1.15, 256, 4096); not clamped (larger images shift more). */
double lf_schedule_flow_mu(int seq_len, double base_shift, double max_shift, int base_seq,
                           int max_seq);
/* The sigma one step count starts from, shifted: with dynamic (FLUX.1-dev's
 * use_dynamic_shifting) exp(mu) / (exp(mu) + 1/s - 1), else
 * shift * s / (1 + (shift - 1) s) (schnell: shift 1 = none). */
double lf_schedule_flow_shift(double s, int dynamic, double mu, double shift);
/* diffusers FlowMatchEulerDiscreteScheduler as FluxPipeline sets it:
 * steps + 1 values, sigmas = linspace(1, 1/steps, steps) shifted as above
 * (float64, then rounded to float32 as the scheduler stores them), then 0.
 * Returns 0, or LF_EINVAL for steps < 1. */
int lf_schedule_flow_sigmas(int steps, int dynamic, double mu, double shift, double *out);

/* "normal", "karras", ... (ComfyUI names); never NULL. */
const char *lf_scheduler_name(lf_scheduler_t kind);
/* Parses a ComfyUI or A1111 name ("karras", "Karras", "sgm_uniform", "SGM Uniform",
 * "Automatic" = normal). Returns 0 or LF_ENOTFOUND. */
int lf_scheduler_parse(const char *name, lf_scheduler_t *out);

#endif
