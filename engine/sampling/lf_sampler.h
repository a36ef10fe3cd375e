/* lf_sampler: k-diffusion / ComfyUI samplers as pure functions over a
 * denoiser callback.
 *
 * The latent follows the k-diffusion convention x = x0 + sigma * eps: the
 * caller passes x already noised for sigmas[0] (e.g. noise * sigmas[0]) and
 * gets the denoised latent back. The denoiser returns the model's estimate
 * of x0 (for an eps model: x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma)),
 * classifier-free guidance included). Ancestral and SDE samplers draw noise
 * of the latent's size through the noise callback (ComfyUI's default noise
 * sampler: torch.randn from one generator seeded once; lf_rng_noise_fn
 * with an lf_rng_t seeded with the job's seed reproduces it).
 *
 * Samplers: euler, euler_ancestral, heun, dpm_2, dpmpp_2m, dpmpp_2m_sde
 * (midpoint), dpmpp_sde (r = 1/2), ddim (ComfyUI: deterministic DDIM is Euler
 * in sigma space, so it runs euler; pair it with the ddim_uniform schedule)
 * lcm (x = denoised + sigma_next * noise; diffusers' LCMScheduler also
 * scales the estimate by its boundary condition, c_skip = 0.25 / ((10 t)^2 +
 * 0.25), c_out = 10 t / sqrt((10 t)^2 + 0.25): under 7e-6 from (0, 1) for
 * t >= 19, every timestep of an lcm or trailing schedule up to 50 steps, so
 * lightfarm leaves them out as ComfyUI's default model sampling does; the
 * LCMScheduler runs of test_pipeline_fewstep.c agree to 5e-7), and
 * uni_pc / uni_pc_bh2 (ComfyUI's sigma-space UniPC: multistep,
 * data prediction, order min(3, steps - 1), B(h) = h or expm1(h); for
 * uni_pc the step callback's x is the VP-scaled latent x / sqrt(1 + sigma^2),
 * and a 1-step run falls back to euler, where ComfyUI would not move x),
 * and the CFG++ samplers euler_cfg_pp and dpmpp_2m_cfg_pp (Chung et al.
 * 2024, as ComfyUI writes them for eps/v models: the step re-noises along the
 * UNconditional estimate, so the caller's denoiser also writes its
 * unconditional estimate into opts.uncond on every call — and computes it
 * even at cfg 1, where guidance would otherwise skip it; CFG++ is meant for
 * small scales, about 0.5..2), and tcd (Trajectory Consistency
 * Distillation's strategic stochastic sampling, diffusers' TCDScheduler,
 * the sampler TCD LoRAs and Hyper-SD use: from the step's x0 estimate the
 * latent is re-noised to timestep s = floor((1 - gamma) * t_next), then
 * forward-diffused to t_next with fresh noise; gamma 0 is deterministic
 * DDIM-like, gamma 1 LCM-like; needs the model's discrete schedule in
 * opts.schedule; the last step ends at s = 0 as diffusers' does, i.e. the
 * returned latent is the x0 estimate noised to timestep 0).
 *
 * Threading: reentrant; the callbacks run on the calling thread. */
#ifndef LF_SAMPLER_H
#define LF_SAMPLER_H

#include <stddef.h>

#include "lf_schedule.h"

/* Writes the denoised estimate for x at noise level sigma into out (n
 * floats; x and out do not alias). Returns 0 or a negative LF_E* code, which
 * aborts sampling and is returned by lf_sampler_run. */
typedef int (*lf_denoise_fn)(void *ctx, const float *x, float sigma, float *out_denoised, size_t n);
/* Writes n standard normal values into out. Returns 0 or a negative code. */
typedef int (*lf_noise_fn)(void *ctx, float *out, size_t n);
/* Progress: called once per step after the step's first model call, with the
 * step index, step count, sigma, the current x and its denoised estimate
 * (borrowed, valid during the call). Nonzero cancels (LF_ECANCELED). */
typedef int (*lf_step_fn)(void *ctx, int step, int steps, float sigma, const float *x,
                          const float *denoised, size_t n);

#define LF_SAMPLER_MAP(X)                                                      \
    X(EULER, "euler", "Euler")                                                 \
    X(EULER_ANCESTRAL, "euler_ancestral", "Euler a")                           \
    X(HEUN, "heun", "Heun")                                                    \
    X(DPM_2, "dpm_2", "DPM2")                                                  \
    X(DPMPP_2M, "dpmpp_2m", "DPM++ 2M")                                        \
    X(DPMPP_2M_SDE, "dpmpp_2m_sde", "DPM++ 2M SDE")                            \
    X(DPMPP_SDE, "dpmpp_sde", "DPM++ SDE")                                     \
    X(DDIM, "ddim", "DDIM")                                                    \
    X(LCM, "lcm", "LCM")                                                       \
    X(UNI_PC, "uni_pc", "UniPC")                                               \
    X(UNI_PC_BH2, "uni_pc_bh2", "UniPC BH2")                                   \
    X(EULER_CFG_PP, "euler_cfg_pp", "Euler CFG++")                             \
    X(DPMPP_2M_CFG_PP, "dpmpp_2m_cfg_pp", "DPM++ 2M CFG++")                   \
    X(TCD, "tcd", "TCD")

typedef enum {
#define LF__SAMPLER_ENUM(name, comfy, a1111) LF_SAMPLER_##name,
    LF_SAMPLER_MAP(LF__SAMPLER_ENUM)
#undef LF__SAMPLER_ENUM
    LF_SAMPLER_COUNT
} lf_sampler_kind_t;

typedef struct {
    lf_denoise_fn denoise; /* required */
    void *denoise_ctx;
    lf_noise_fn noise;     /* required by euler_ancestral, dpmpp_2m_sde, dpmpp_sde, lcm, tcd */
    void *noise_ctx;
    lf_step_fn step;       /* optional */
    void *step_ctx;
    double eta;            /* ancestral / SDE noise amount; 1 is the reference default */
    double s_noise;        /* noise scale; 1 is the reference default */
    float *uncond;         /* CFG++ samplers (lf_sampler_needs_uncond): n floats the denoiser
                              fills with its unconditional estimate on every call; else NULL */
    const lf_schedule_t *schedule; /* tcd: the model's discrete schedule (borrowed; required) */
    double gamma;          /* tcd: stochasticity in [0, 1] (diffusers' TCD eta); 0.3 default */
    int flow;              /* 1: a flow-matching model (x = (1 - sigma) x0 + sigma noise, sigma
                              <= 1; ComfyUI's CONST model sampling, Flux), where re-noising
                              differs: euler_ancestral is ComfyUI's sample_euler_ancestral_RF,
                              lcm re-noises as (1 - sigma) x0 + sigma noise; the deterministic
                              samplers run unchanged; dpmpp_2m_sde, dpmpp_sde, tcd and the
                              CFG++ samplers are LF_EUNSUPPORTED */
} lf_sampler_opts_t;

/* Options with eta = s_noise = 1, gamma = 0.3 and the given denoiser. */
lf_sampler_opts_t lf_sampler_opts(lf_denoise_fn denoise, void *ctx);

/* Runs `steps` steps over sigmas[0..steps] (descending; normally ending in 0)
 * on x[0..n) in place. Returns 0; LF_EINVAL (bad arguments, missing noise
 * callback); LF_ECANCELED (step callback asked to stop); LF_ENOMEM; or the
 * code a callback returned. On failure x is left as it was. */
int lf_sampler_run(lf_sampler_kind_t kind, const lf_sampler_opts_t *opts, const double *sigmas,
                   int steps, float *x, size_t n);

/* True for the samplers that need the unconditional estimate (opts.uncond). */
int lf_sampler_needs_uncond(lf_sampler_kind_t kind);

/* Model calls the sampler makes for `steps` steps (for progress bars). */
int lf_sampler_model_calls(lf_sampler_kind_t kind, const double *sigmas, int steps);
/* ComfyUI name ("dpmpp_2m") and A1111 name ("DPM++ 2M"); never NULL. */
const char *lf_sampler_name(lf_sampler_kind_t kind);
const char *lf_sampler_a1111_name(lf_sampler_kind_t kind);
/* Parses either name (case-insensitive). Returns 0 or LF_ENOTFOUND. */
int lf_sampler_parse(const char *name, lf_sampler_kind_t *out);

#endif
