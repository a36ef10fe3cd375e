/* lf_sampler: the samplers, written from k-diffusion's sampling.py and
 * ComfyUI's descriptions. Coefficients are computed in double; latents stay
 * float. Each sampler works on a private copy so a failed run leaves the
 * caller's x untouched. */
#include "lf_sampler.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"

static const struct {
    const char *comfy, *a1111;
} s_names[] = {
#define LF__SAMPLER_ROW(name, comfy, a1111) {comfy, a1111},
    LF_SAMPLER_MAP(LF__SAMPLER_ROW)
#undef LF__SAMPLER_ROW
};
_Static_assert(sizeof s_names / sizeof s_names[0] == LF_SAMPLER_COUNT, "sampler table");

lf_sampler_opts_t lf_sampler_opts(lf_denoise_fn denoise, void *ctx)
{
    return (lf_sampler_opts_t){.denoise = denoise, .denoise_ctx = ctx, .eta = 1.0, .s_noise = 1.0};
}

const char *lf_sampler_name(lf_sampler_kind_t k)
{
    return (unsigned)k < LF_SAMPLER_COUNT ? s_names[k].comfy : "?";
}

const char *lf_sampler_a1111_name(lf_sampler_kind_t k)
{
    return (unsigned)k < LF_SAMPLER_COUNT ? s_names[k].a1111 : "?";
}

int lf_sampler_parse(const char *name, lf_sampler_kind_t *out)
{
    for (int i = 0; i < LF_SAMPLER_COUNT; i++)
        if (!strcasecmp(name, s_names[i].comfy) || !strcasecmp(name, s_names[i].a1111)) {
            *out = (lf_sampler_kind_t)i;
            return 0;
        }
    return LF_ENOTFOUND;
}

int lf_sampler_model_calls(lf_sampler_kind_t kind, const double *sigmas, int steps)
{
    int calls = 0;
    for (int i = 0; i < steps; i++) {
        int two = (kind == LF_SAMPLER_HEUN || kind == LF_SAMPLER_DPM_2 || kind == LF_SAMPLER_DPMPP_SDE) &&
                  sigmas[i + 1] > 0;
        calls += two ? 2 : 1;
    }
    return calls;
}

typedef struct {
    const lf_sampler_opts_t *o;
    size_t n;
    float *x, *den, *tmp, *den2, *old, *noise;
    int steps;
} s_run_t;

/* k-diffusion get_ancestral_step. */
static void s_ancestral(double from, double to, double eta, double *down, double *up)
{
    if (eta == 0.0) {
        *down = to;
        *up = 0.0;
        return;
    }
    double u = eta * sqrt(to * to * (from * from - to * to) / (from * from));
    *up = u < to ? u : to;
    *down = sqrt(to * to - *up * *up);
}

static int s_model(s_run_t *r, const float *x, double sigma, float *out)
{
    return r->o->denoise(r->o->denoise_ctx, x, (float)sigma, out, r->n);
}

static int s_progress(s_run_t *r, int i, double sigma)
{
    if (!r->o->step) return 0;
    return r->o->step(r->o->step_ctx, i, r->steps, (float)sigma, r->x, r->den, r->n) ? LF_ECANCELED : 0;
}

static int s_noise(s_run_t *r)
{
    return r->o->noise(r->o->noise_ctx, r->noise, r->n);
}

/* x += d * dt with d = (x - den) / sigma. */
static void s_euler_step(float *x, const float *xin, const float *den, size_t n, double sigma, double dt)
{
    for (size_t k = 0; k < n; k++) x[k] = (float)(xin[k] + (xin[k] - den[k]) / sigma * dt);
}

static int s_run(lf_sampler_kind_t kind, s_run_t *r, const double *sg)
{
    const lf_sampler_opts_t *o = r->o;
    size_t n = r->n;
    float *x = r->x, *den = r->den;
    double h_last = 0.0;
    int have_old = 0, rc;
    for (int i = 0; i < r->steps; i++) {
        double s = sg[i], sn = sg[i + 1];
        if ((rc = s_model(r, x, s, den)) != 0) return rc;
        if ((rc = s_progress(r, i, s)) != 0) return rc;
        switch (kind) {
        case LF_SAMPLER_EULER:
        case LF_SAMPLER_DDIM: s_euler_step(x, x, den, n, s, sn - s); break;
        case LF_SAMPLER_EULER_ANCESTRAL: {
            double down, up;
            s_ancestral(s, sn, o->eta, &down, &up);
            s_euler_step(x, x, den, n, s, down - s);
            if (sn > 0) {
                if ((rc = s_noise(r)) != 0) return rc;
                for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + r->noise[k] * o->s_noise * up);
            }
            break;
        }
        case LF_SAMPLER_HEUN:
        case LF_SAMPLER_DPM_2: {
            if (sn == 0) {
                s_euler_step(x, x, den, n, s, sn - s);
                break;
            }
            /* d is kept in tmp; x_2 in den2 then its estimate in old. */
            double mid = kind == LF_SAMPLER_HEUN ? sn : exp(0.5 * (log(s) + log(sn)));
            for (size_t k = 0; k < n; k++) r->tmp[k] = (float)((x[k] - den[k]) / s);
            for (size_t k = 0; k < n; k++) r->den2[k] = (float)(x[k] + r->tmp[k] * (mid - s));
            if ((rc = s_model(r, r->den2, mid, r->old)) != 0) return rc;
            for (size_t k = 0; k < n; k++) {
                double d2 = (r->den2[k] - r->old[k]) / mid;
                if (kind == LF_SAMPLER_HEUN) x[k] = (float)(x[k] + (r->tmp[k] + d2) / 2 * (sn - s));
                else x[k] = (float)(x[k] + d2 * (sn - s));
            }
            break;
        }
        case LF_SAMPLER_DPMPP_2M: {
            double t = -log(s), tn = -log(sn), h = tn - t;
            double ratio = sn / s, c = -expm1(-h);
            if (!have_old || sn == 0) {
                for (size_t k = 0; k < n; k++) x[k] = (float)(ratio * x[k] + c * den[k]);
            } else {
                double hl = t + log(sg[i - 1]), rr = hl / h;
                double a = 1 + 1 / (2 * rr), b = 1 / (2 * rr);
                for (size_t k = 0; k < n; k++) {
                    double dd = a * den[k] - b * r->old[k];
                    x[k] = (float)(ratio * x[k] + c * dd);
                }
            }
            break;
        }
        case LF_SAMPLER_DPMPP_2M_SDE: {
            if (sn == 0) {
                memcpy(x, den, n * sizeof *x);
                break;
            }
            double t = -log(s), tt = -log(sn), h = tt - t, eh = o->eta * h;
            double a = sn / s * exp(-eh), c = -expm1(-h - eh);
            for (size_t k = 0; k < n; k++) x[k] = (float)(a * x[k] + c * den[k]);
            if (have_old) {
                double rr = h_last / h, m = 0.5 * c / rr;
                for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + m * (den[k] - r->old[k]));
            }
            if (o->eta != 0) {
                if ((rc = s_noise(r)) != 0) return rc;
                double m = sn * sqrt(-expm1(-2 * eh)) * o->s_noise;
                for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + r->noise[k] * m);
            }
            h_last = h;
            break;
        }
        case LF_SAMPLER_DPMPP_SDE: {
            if (sn == 0) {
                s_euler_step(x, x, den, n, s, sn - s);
                break;
            }
            const double rr = 0.5, fac = 1 / (2 * rr);
            double t = -log(s), tn = -log(sn), h = tn - t, ts = t + h * rr;
            double sd, su;
            s_ancestral(exp(-t), exp(-ts), o->eta, &sd, &su);
            double s_ = -log(sd);
            double a = exp(-s_) / exp(-t), c = -expm1(t - s_);
            if ((rc = s_noise(r)) != 0) return rc;
            for (size_t k = 0; k < n; k++) {
                float x2 = (float)(a * x[k] + c * den[k]);
                r->den2[k] = (float)(x2 + r->noise[k] * o->s_noise * su);
            }
            if ((rc = s_model(r, r->den2, exp(-ts), r->tmp)) != 0) return rc;
            s_ancestral(exp(-t), exp(-tn), o->eta, &sd, &su);
            double tn_ = -log(sd);
            a = exp(-tn_) / exp(-t);
            c = -expm1(t - tn_);
            if ((rc = s_noise(r)) != 0) return rc;
            for (size_t k = 0; k < n; k++) {
                double dd = (1 - fac) * den[k] + fac * r->tmp[k];
                float xn = (float)(a * x[k] + c * dd);
                x[k] = (float)(xn + r->noise[k] * o->s_noise * su);
            }
            break;
        }
        case LF_SAMPLER_LCM: {
            memcpy(x, den, n * sizeof *x);
            if (sn > 0) {
                if ((rc = s_noise(r)) != 0) return rc;
                for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + r->noise[k] * sn);
            }
            break;
        }
        default: return LF_EINVAL;
        }
        /* Keep this step's estimate for the multistep samplers. */
        if (kind == LF_SAMPLER_DPMPP_2M || kind == LF_SAMPLER_DPMPP_2M_SDE) {
            memcpy(r->old, den, n * sizeof *den);
            have_old = 1;
        }
    }
    return 0;
}

int lf_sampler_run(lf_sampler_kind_t kind, const lf_sampler_opts_t *o, const double *sigmas,
                   int steps, float *x, size_t n)
{
    if ((unsigned)kind >= LF_SAMPLER_COUNT || !o || !o->denoise || !sigmas || steps < 0 || !x || n == 0)
        return LF_EINVAL;
    int needs_noise = kind == LF_SAMPLER_EULER_ANCESTRAL || kind == LF_SAMPLER_DPMPP_2M_SDE ||
                      kind == LF_SAMPLER_DPMPP_SDE || kind == LF_SAMPLER_LCM;
    if (needs_noise && !o->noise) return LF_EINVAL;
    for (int i = 0; i < steps; i++)
        if (!(sigmas[i] > 0) || !(sigmas[i + 1] >= 0)) return LF_EINVAL;
    if (n > SIZE_MAX / (6 * sizeof(float))) return LF_ENOMEM;
    float *buf = malloc(6 * n * sizeof(float));
    if (!buf) return LF_ENOMEM;
    s_run_t r = {.o = o, .n = n, .steps = steps, .x = buf, .den = buf + n, .tmp = buf + 2 * n,
                 .den2 = buf + 3 * n, .old = buf + 4 * n, .noise = buf + 5 * n};
    memcpy(r.x, x, n * sizeof *x);
    int rc = s_run(kind, &r, sigmas);
    if (rc == 0) memcpy(x, r.x, n * sizeof *x);
    free(buf);
    return rc;
}
