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
    out->ays = LF_AYS_SD1;
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

/* The regularized incomplete beta function I_x(a, b), by its continued
 * fraction (modified Lentz), on the side where it converges fast. */
static double s_betainc_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-16) break;
    }
    return h;
}

static double s_betainc(double a, double b, double x)
{
    if (x <= 0) return 0.0;
    if (x >= 1) return 1.0;
    double lnf = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0)) return exp(lnf) * s_betainc_cf(a, b, x) / a;
    return 1.0 - exp(lnf) * s_betainc_cf(b, a, 1.0 - x) / b;
}

/* The Beta(a, b) quantile of p: bisection on the monotone CDF, to double
 * precision (the result is only rounded to a timestep). */
static double s_beta_ppf(double p, double a, double b)
{
    if (p <= 0) return 0.0;
    if (p >= 1) return 1.0;
    /* The median of a symmetric Beta is 1/2 exactly: bisection would stop a
     * hair below it, and 0.5 * 999 must round to 500 as numpy's rint does. */
    if (a == b && p == 0.5) return 0.5;
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < 200 && hi - lo > 1e-17; i++) {
        double mid = 0.5 * (lo + hi);
        if (s_betainc(a, b, mid) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* NVIDIA's Align Your Steps 10-step noise levels (as ComfyUI publishes
 * them), highest first. */
static const double s_ays_levels[2][11] = {
    {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
     0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582},
    {14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
     0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582},
};

/* AYS: the 11 levels resampled to steps + 1 points, linearly in log sigma
 * over an even grid (numpy.interp of the reversed logs), the last set to
 * 0; rounded to float as ComfyUI returns a FloatTensor. */
static void s_ays(lf_ays_t which, int steps, double *out)
{
    const double *lv = s_ays_levels[which == LF_AYS_SDXL ? 1 : 0];
    const int n = 11, m = steps + 1;
    for (int j = 0; j < m; j++) {
        double v;
        if (m == n) {
            v = lv[j];
        } else {
            /* Output j (descending) is point m-1-j of the ascending grid. */
            double x = (double)(m - 1 - j) / (m - 1) * (n - 1);
            int k = (int)floor(x);
            if (k >= n - 1) k = n - 2;
            double w = x - k;
            double y0 = log(lv[n - 1 - k]), y1 = log(lv[n - 2 - k]);
            v = exp(y0 + w * (y1 - y0));
        }
        out[j] = (float)v;
    }
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
    case LF_SCHEDULER_BETA: {
        int last = -1;
        for (int i = 0; i < steps; i++) {
            double q = 1.0 - (double)i / steps;
            int t = (int)nearbyint(s_beta_ppf(q, 0.6, 0.6) * (s->n - 1));
            if (last >= 0 && t >= last) t = last - 1; /* a repeat: the next lower timestep */
            if (t < 0) t = 0;
            out[i] = s->sigmas[t];
            last = t;
        }
        out[steps] = 0.0;
        return 0;
    }
    case LF_SCHEDULER_KL_OPTIMAL: {
        double amin = atan(smin), amax = atan(smax);
        for (int i = 0; i < steps; i++) {
            /* ComfyUI computes in float32: adj = i / (n - 1), then tan. */
            float adj = steps == 1 ? 0.0f : (float)i / (float)(steps - 1);
            out[i] = tanf(adj * (float)amin + (1.0f - adj) * (float)amax);
        }
        out[steps] = 0.0;
        return 0;
    }
    case LF_SCHEDULER_LINEAR_QUADRATIC: {
        const double thr = 0.025;
        if (steps == 1) {
            out[0] = (float)smax;
            out[1] = 0.0;
            return 0;
        }
        int ls = steps / 2, qs = steps - ls;
        double diff = ls - thr * steps;
        double qc = diff / (ls * (double)qs * qs), lc = thr / ls - 2.0 * diff / ((double)qs * qs);
        double cst = qc * (double)ls * ls;
        for (int i = 0; i < steps; i++) {
            double v = i < ls ? i * thr / ls : qc * (double)i * i + lc * i + cst;
            out[i] = (float)(1.0 - v) * (float)smax;
        }
        out[steps] = 0.0;
        return 0;
    }
    case LF_SCHEDULER_AYS: s_ays(s->ays, steps, out); return 0;
    case LF_SCHEDULER_TRAILING:
        /* numpy: round(arange(1000, 0, -1000 / n)) - 1 (half to even, as
         * nearbyint in the default rounding mode). */
        for (int i = 0; i < steps; i++) {
            int t = (int)nearbyint((double)s->n - i * ((double)s->n / steps)) - 1;
            out[i] = s->sigmas[t < 0 ? 0 : t];
        }
        out[steps] = 0.0;
        return 0;
    case LF_SCHEDULER_LCM: {
        /* LCMScheduler.set_timesteps with original_inference_steps = 50:
         * origin timesteps (1..50) * 20 - 1 reversed, at floor(linspace(0,
         * 50, n, endpoint=False)). */
        const int orig = 50, k = s->n / orig;
        if (steps > orig || k < 1) return LF_EINVAL;
        for (int i = 0; i < steps; i++) {
            int j = (int)floor(i * ((double)orig / steps));
            out[i] = s->sigmas[(orig - j) * k - 1];
        }
        out[steps] = 0.0;
        return 0;
    }
    default: return LF_EINVAL;
    }
}

int lf_schedule_sigmas_at(const lf_schedule_t *s, const int *timesteps, int steps, double *out)
{
    if (steps < 1 || !timesteps) return LF_EINVAL;
    for (int i = 0; i < steps; i++)
        if (timesteps[i] < 0 || timesteps[i] >= s->n || (i > 0 && timesteps[i] >= timesteps[i - 1]))
            return LF_EINVAL;
    for (int i = 0; i < steps; i++) out[i] = s->sigmas[timesteps[i]];
    out[steps] = 0.0;
    return 0;
}

static const char *const s_names[LF_SCHEDULER_COUNT] = {
    "normal", "karras",     "exponential",      "sgm_uniform", "simple",
    "ddim_uniform", "beta", "kl_optimal", "linear_quadratic", "ays", "trailing", "lcm"};

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
                 {"sgm uniform", LF_SCHEDULER_SGM_UNIFORM}, {"ddim", LF_SCHEDULER_DDIM_UNIFORM},
                 {"kl optimal", LF_SCHEDULER_KL_OPTIMAL}, {"align your steps", LF_SCHEDULER_AYS},
                 {"align_your_steps", LF_SCHEDULER_AYS}, {"linear quadratic", LF_SCHEDULER_LINEAR_QUADRATIC}};
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

/* ---- flow matching ---- */

double lf_schedule_flow_mu(int seq_len, double base_shift, double max_shift, int base_seq,
                           int max_seq) {
    const double m = (max_shift - base_shift) / (double)(max_seq - base_seq);
    return (double)seq_len * m + (base_shift - m * (double)base_seq);
}

double lf_schedule_flow_shift(double s, int dynamic, double mu, double shift) {
    if (dynamic) return exp(mu) / (exp(mu) + (1.0 / s - 1.0));
    return shift * s / (1.0 + (shift - 1.0) * s);
}

int lf_schedule_flow_sigmas(int steps, int dynamic, double mu, double shift, double *out) {
    if (steps < 1) return LF_EINVAL;
    const double last = 1.0 / steps;
    for (int i = 0; i < steps; i++) {
        /* numpy linspace(1, 1/steps, steps): start + i * step, the end exact */
        double s = steps == 1 ? 1.0 : (i == steps - 1 ? last : 1.0 + i * ((last - 1.0) / (steps - 1)));
        out[i] = (float)lf_schedule_flow_shift(s, dynamic, mu, shift);
    }
    out[steps] = 0.0;
    return 0;
}
