/* lf_schedule: the discrete SD schedule and the k-diffusion / ComfyUI
 * schedulers. Arithmetic is done in double; the training sigmas are rounded
 * to float like the reference implementations store them, so the results
 * agree with them to float precision. */
#include "lf_schedule.h"

#include <math.h>
#include <strings.h>

#include "lf_error.h"

int lf_schedule_init_scaled_linear(lf_schedule_t *out, int n_train, double beta_start, double beta_end)
{
    if (n_train < 2 || n_train > LF_SCHEDULE_TRAIN_STEPS || !(beta_start > 0) || !(beta_end < 1))
        return LF_EINVAL;
    out->n = n_train;
    double a = sqrt(beta_start), b = sqrt(beta_end), cum = 1.0;
    for (int i = 0; i < n_train; i++) {
        double r = a + (b - a) * i / (n_train - 1);
        cum *= 1.0 - r * r;
        out->alphas_cumprod[i] = cum;
        /* LDM keeps alphas_cumprod as float32 and derives sigma in float32. */
        float acf = (float)cum;
        out->sigmas[i] = sqrtf((1.0f - acf) / acf);
        out->log_sigmas[i] = logf(out->sigmas[i]);
    }
    return 0;
}

void lf_schedule_init_sd15(lf_schedule_t *out)
{
    int rc = lf_schedule_init_scaled_linear(out, 1000, 0.00085, 0.012);
    LF_ASSERT(rc == 0);
}

double lf_schedule_t_to_sigma(const lf_schedule_t *s, double t)
{
    if (!(t > 0)) t = 0;
    if (t > s->n - 1) t = s->n - 1;
    int lo = (int)floor(t), hi = (int)ceil(t);
    double w = t - lo;
    return exp((1.0 - w) * s->log_sigmas[lo] + w * s->log_sigmas[hi]);
}

double lf_schedule_sigma_to_t(const lf_schedule_t *s, double sigma)
{
    double ls = log(sigma);
    /* low: the last index whose log sigma is <= ls (0 if none), at most n-2. */
    int lo = 0;
    for (int i = 0; i < s->n; i++)
        if (ls - s->log_sigmas[i] >= 0) lo = i;
    if (lo > s->n - 2) lo = s->n - 2;
    double l = s->log_sigmas[lo], h = s->log_sigmas[lo + 1];
    double w = (l - ls) / (l - h);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1.0 - w) * lo + w * (lo + 1);
}

int lf_schedule_sigma_to_t_nearest(const lf_schedule_t *s, double sigma)
{
    double ls = log(sigma), best = INFINITY;
    int bi = 0;
    for (int i = 0; i < s->n; i++) {
        double d = fabs(ls - s->log_sigmas[i]);
        if (d < best) {
            best = d;
            bi = i;
        }
    }
    return bi;
}

void lf_schedule_karras(double sigma_min, double sigma_max, double rho, int steps, double *out)
{
    double lo = pow(sigma_min, 1.0 / rho), hi = pow(sigma_max, 1.0 / rho);
    for (int i = 0; i < steps; i++) {
        double ramp = steps == 1 ? 0.0 : (double)i / (steps - 1);
        out[i] = pow(hi + ramp * (lo - hi), rho);
    }
    out[steps] = 0.0;
}

void lf_schedule_exponential(double sigma_min, double sigma_max, int steps, double *out)
{
    double a = log(sigma_max), b = log(sigma_min);
    for (int i = 0; i < steps; i++) out[i] = exp(steps == 1 ? a : a + (b - a) * i / (steps - 1));
    out[steps] = 0.0;
}

int lf_schedule_sigmas(const lf_schedule_t *s, lf_scheduler_t kind, int steps, double *out)
{
    if (steps < 1) return LF_EINVAL;
    double smin = lf_schedule_sigma_min(s), smax = lf_schedule_sigma_max(s);
    /* k-diffusion uses t_max = n - 1 directly; ComfyUI's nearest-timestep
     * lookup of sigma_max / sigma_min gives the same 999 and 0. */
    double tmax = s->n - 1, tmin = 0.0;
    switch (kind) {
    case LF_SCHEDULER_NORMAL:
    case LF_SCHEDULER_SGM_UNIFORM: {
        int pts = kind == LF_SCHEDULER_SGM_UNIFORM ? steps + 1 : steps;
        for (int i = 0; i < steps; i++) {
            double t = pts == 1 ? tmax : tmax + (tmin - tmax) * i / (pts - 1);
            out[i] = lf_schedule_t_to_sigma(s, t);
        }
        out[steps] = 0.0;
        return 0;
    }
    case LF_SCHEDULER_KARRAS: lf_schedule_karras(smin, smax, 7.0, steps, out); return 0;
    case LF_SCHEDULER_EXPONENTIAL: lf_schedule_exponential(smin, smax, steps, out); return 0;
    case LF_SCHEDULER_SIMPLE: {
        double ss = (double)s->n / steps;
        for (int i = 0; i < steps; i++) out[i] = s->sigmas[s->n - 1 - (int)(i * ss)];
        out[steps] = 0.0;
        return 0;
    }
    case LF_SCHEDULER_DDIM_UNIFORM: {
        /* Indices 1, 1+ss, ... below n, reversed. This can give a count other
         * than steps when n is not a multiple of steps; ComfyUI has the same
         * property, and it is clamped to steps here (extra low sigmas dropped). */
        int ss = s->n / steps > 1 ? s->n / steps : 1, k = 0;
        for (int x = 1; x < s->n; x += ss) k++;
        int start = k > steps ? k - steps : 0, j = 0;
        for (int idx = k - 1; idx >= start; idx--) out[j++] = s->sigmas[1 + idx * ss];
        for (; j < steps; j++) out[j] = s->sigmas[1];
        out[steps] = 0.0;
        return 0;
    }
    default: return LF_EINVAL;
    }
}

static const char *const s_names[LF_SCHEDULER_COUNT] = {"normal", "karras", "exponential",
                                                        "sgm_uniform", "simple", "ddim_uniform"};

const char *lf_scheduler_name(lf_scheduler_t kind)
{
    return (unsigned)kind < LF_SCHEDULER_COUNT ? s_names[kind] : "?";
}

int lf_scheduler_parse(const char *name, lf_scheduler_t *out)
{
    static const struct {
        const char *name;
        lf_scheduler_t kind;
    } alias[] = {{"automatic", LF_SCHEDULER_NORMAL}, {"uniform", LF_SCHEDULER_NORMAL},
                 {"sgm uniform", LF_SCHEDULER_SGM_UNIFORM}, {"ddim", LF_SCHEDULER_DDIM_UNIFORM}};
    for (int i = 0; i < LF_SCHEDULER_COUNT; i++)
        if (strcasecmp(name, s_names[i]) == 0) {
            *out = (lf_scheduler_t)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (strcasecmp(name, alias[i].name) == 0) {
            *out = alias[i].kind;
            return 0;
        }
    return LF_ENOTFOUND;
}
