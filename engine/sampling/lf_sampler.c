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
    return (lf_sampler_opts_t){.denoise = denoise, .denoise_ctx = ctx, .eta = 1.0, .s_noise = 1.0,
                               .gamma = 0.3};
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

int lf_sampler_needs_uncond(lf_sampler_kind_t kind)
{
    return kind == LF_SAMPLER_EULER_CFG_PP || kind == LF_SAMPLER_DPMPP_2M_CFG_PP;
}

int lf_sampler_model_calls(lf_sampler_kind_t kind, const double *sigmas, int steps)
{
    int calls = 0;
    if (kind == LF_SAMPLER_UNI_PC || kind == LF_SAMPLER_UNI_PC_BH2) return steps; /* 1 + (steps - 1) */
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

/* ComfyUI's sample_euler_ancestral_RF step (flow models): an Euler step
 * down to sigma_down = sn (1 + (sn / s - 1) eta), then scaled back to sn's
 * signal level with fresh noise of the variance that makes it up. */
static int s_ancestral_rf(s_run_t *r, double s, double sn)
{
    const lf_sampler_opts_t *o = r->o;
    float *x = r->x;
    const float *den = r->den;
    if (sn == 0) {
        memcpy(x, den, r->n * sizeof *x);
        return 0;
    }
    const double down = sn * (1 + (sn / s - 1) * o->eta), a1 = 1 - sn, ad = 1 - down;
    const double renoise = sqrt(sn * sn - down * down * a1 * a1 / (ad * ad)), ratio = down / s;
    for (size_t k = 0; k < r->n; k++) x[k] = (float)(ratio * x[k] + (1 - ratio) * den[k]);
    if (o->eta > 0) {
        int rc = s_noise(r);
        if (rc) return rc;
        for (size_t k = 0; k < r->n; k++)
            x[k] = (float)(a1 / ad * x[k] + r->noise[k] * o->s_noise * renoise);
    }
    return 0;
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
            if (o->flow) {
                if ((rc = s_ancestral_rf(r, s, sn)) != 0) return rc;
                break;
            }
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
        case LF_SAMPLER_EULER_CFG_PP: {
            /* x = den + sn * (x - uncond) / s: the direction back to the noise
             * is the unconditional one (ComfyUI's alpha_s = alpha_t = 1 for
             * eps/v models). */
            const float *u = o->uncond;
            if (sn == 0) {
                memcpy(x, den, n * sizeof *x);
                break;
            }
            for (size_t k = 0; k < n; k++) x[k] = (float)(den[k] + (x[k] - u[k]) / s * sn);
            break;
        }
        case LF_SAMPLER_DPMPP_2M_CFG_PP: {
            const float *u = o->uncond;
            if (sn == 0) { /* h = inf: exp(-h) = 0 */
                memcpy(x, den, n * sizeof *x);
            } else {
                double t = -log(s), h = -log(sn) - t, e = exp(-h);
                if (!have_old) {
                    for (size_t k = 0; k < n; k++) x[k] = (float)(den[k] - e * u[k] + e * x[k]);
                } else {
                    double hl = t + log(sg[i - 1]), c = -expm1(-h) / (2 * (hl / h));
                    for (size_t k = 0; k < n; k++)
                        x[k] = (float)(den[k] - e * u[k] + c * (den[k] - r->old[k]) + e * x[k]);
                }
            }
            memcpy(r->old, u, n * sizeof *u);
            have_old = 1;
            break;
        }
        case LF_SAMPLER_TCD: {
            /* In VP terms (x_vp = x / sqrt(1 + s^2)): noised = sqrt(a_s) x0 +
             * sqrt(1 - a_s) eps at s = floor((1 - gamma) t_next), then
             * x_vp' = sqrt(a_next / a_s) noised + sqrt(1 - a_next / a_s) z;
             * back in k-diffusion terms x' = x_vp' * sqrt(1 + sn^2). */
            const lf_schedule_t *sc = o->schedule;
            int tn = sn > 0 ? lf_schedule_sigma_to_t_nearest(sc, sn) : 0;
            int ts = (int)floor((1.0 - o->gamma) * tn);
            double as = (float)sc->alphas_cumprod[ts], ca = sqrt(as), cb = sqrt(1.0 - as);
            if (sn > 0) {
                double m = sqrt(1.0 + sn * sn), var = 1.0 - (1.0 / (1.0 + sn * sn)) / as;
                double cn = var > 0 ? sqrt(var) * m * o->s_noise : 0.0;
                for (size_t k = 0; k < n; k++) {
                    double eps = (x[k] - den[k]) / s;
                    /* noised / sqrt(a_s) * sqrt(a_next) * m == noised / sqrt(a_s) */
                    x[k] = (float)((ca * den[k] + cb * eps) / ca);
                }
                if (o->gamma > 0) {
                    if ((rc = s_noise(r)) != 0) return rc;
                    for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + r->noise[k] * cn);
                }
            } else {
                for (size_t k = 0; k < n; k++) x[k] = (float)(ca * den[k] + cb * (x[k] - den[k]) / s);
            }
            break;
        }
        case LF_SAMPLER_LCM: {
            memcpy(x, den, n * sizeof *x);
            if (sn > 0) {
                if ((rc = s_noise(r)) != 0) return rc;
                if (o->flow) /* ComfyUI's CONST noise_scaling */
                    for (size_t k = 0; k < n; k++) x[k] = (float)(sn * r->noise[k] + (1 - sn) * x[k]);
                else
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

/* ---- UniPC (ComfyUI, sigma space) ----------------------------------------------
 * VP quantities of a sigma: alpha = 1/sqrt(1 + s^2), std = s * alpha,
 * lambda = log(alpha) - log(std). The latent is kept VP-scaled; the "model"
 * is the data prediction (x0) computed through the eps form as ComfyUI does. */

/* These are evaluated in float, as ComfyUI does on float32 tensors: for small
 * sigmas 1 - exp(2 log alpha) cancels badly, and the reference's result is
 * what a seed must reproduce. */
static double s_lalpha(double s)
{
    float f = (float)s;
    return 0.5f * logf(1.0f / (f * f + 1.0f));
}
static double s_alpha(double s) { return expf((float)s_lalpha(s)); }
static double s_std(double s) { return sqrtf(1.0f - expf(2.0f * (float)s_lalpha(s))); }
static double s_lambda(double s)
{
    float la = (float)s_lalpha(s);
    return la - 0.5f * logf(1.0f - expf(2.0f * la));
}

typedef struct {
    s_run_t *r;
    float *m[3];   /* model (x0) history, oldest first */
    double t[3];
    int len;       /* entries in use */
    float *d1[2], *xin, *base;
    int bh2;
} s_unipc_t;

static int s_unipc_model(s_unipc_t *u, const float *xv, double s, float *out)
{
    size_t n = u->r->n;
    double scale = sqrt(s * s + 1.0), a = s_alpha(s), sd = s_std(s);
    for (size_t k = 0; k < n; k++) u->xin[k] = (float)(xv[k] * scale);
    int rc = s_model(u->r, u->xin, s, out);
    if (rc) return rc;
    for (size_t k = 0; k < n; k++) {
        float eps = (float)((u->xin[k] - out[k]) / s);
        out[k] = (float)((xv[k] - sd * eps) / a);
    }
    return 0;
}

/* Solves the k x k system A y = b (k <= 3) by elimination with partial pivoting. */
static void s_solve(double a[3][3], double *b, int k, double *y)
{
    for (int c = 0; c < k; c++) {
        int p = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(a[r][c]) > fabs(a[p][c])) p = r;
        for (int j = 0; j < k; j++) {
            double t = a[c][j];
            a[c][j] = a[p][j];
            a[p][j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int r = c + 1; r < k; r++) {
            double f = a[r][c] / a[c][c];
            for (int j = c; j < k; j++) a[r][j] -= f * a[c][j];
            b[r] -= f * b[c];
        }
    }
    for (int r = k - 1; r >= 0; r--) {
        double acc = b[r];
        for (int j = r + 1; j < k; j++) acc -= a[r][j] * y[j];
        y[r] = acc / a[r][r];
    }
}

/* One multistep UniPC update of x (VP-scaled) to sigma t; writes the model
 * output at the new point into mt when use_corrector. */
static int s_unipc_update(s_unipc_t *u, float *x, double t, int order, int use_corrector, float *mt)
{
    size_t n = u->r->n;
    const float *m0 = u->m[u->len - 1];
    double t0 = u->t[u->len - 1], l0 = s_lambda(t0), h = (float)(s_lambda(t) - l0);
    double rks[3];
    int nd = order - 1;
    for (int i = 1; i < order; i++) {
        rks[i - 1] = (float)((float)(s_lambda(u->t[u->len - 1 - i]) - l0) / h);
        const float *mi = u->m[u->len - 1 - i];
        for (size_t k = 0; k < n; k++) u->d1[i - 1][k] = (float)((mi[k] - m0[k]) / rks[i - 1]);
    }
    rks[order - 1] = 1.0;
    double hh = -h, h_phi_1 = expm1f((float)hh), h_phi_k = (float)((float)(h_phi_1 / hh) - 1.0f), fact = 1.0;
    double bh = u->bh2 ? expm1f((float)hh) : hh, R[3][3], b[3];
    for (int i = 1; i <= order; i++) {
        for (int j = 0; j < order; j++) R[i - 1][j] = pow(rks[j], i - 1);
        b[i - 1] = (float)((float)(h_phi_k * fact) / bh);
        fact *= i + 1;
        h_phi_k = (float)((float)(h_phi_k / hh) - (float)(1.0 / fact));
    }
    double rp[3] = {0}, rc[3] = {0};
    if (nd > 0) {
        if (order == 2) {
            rp[0] = 0.5;
        } else {
            double A[3][3], bb[3];
            for (int i = 0; i < nd; i++) {
                for (int j = 0; j < nd; j++) A[i][j] = R[i][j];
                bb[i] = b[i];
            }
            s_solve(A, bb, nd, rp);
        }
    }
    double at = s_alpha(t), c1 = s_std(t) / s_std(t0), c2 = at * h_phi_1, cb = at * bh;
    for (size_t k = 0; k < n; k++) {
        u->base[k] = (float)(c1 * x[k] - c2 * m0[k]);
        double pred = 0;
        for (int i = 0; i < nd; i++) pred += rp[i] * u->d1[i][k];
        x[k] = (float)(u->base[k] - cb * pred);
    }
    if (!use_corrector) return 0;
    if (order == 1) {
        rc[0] = 0.5;
    } else {
        double A[3][3], bb[3];
        memcpy(A, R, sizeof A);
        memcpy(bb, b, sizeof bb);
        s_solve(A, bb, order, rc);
    }
    int err = s_unipc_model(u, x, t, mt);
    if (err) return err;
    for (size_t k = 0; k < n; k++) {
        double corr = 0;
        for (int i = 0; i < nd; i++) corr += rc[i] * u->d1[i][k];
        x[k] = (float)(u->base[k] - cb * (corr + rc[order - 1] * (mt[k] - m0[k])));
    }
    return 0;
}

static int s_run_unipc(s_run_t *r, const double *sigmas, int bh2)
{
    size_t n = r->n;
    int steps = r->steps, rc = 0;
    if (steps < 2) return s_run(LF_SAMPLER_EULER, r, sigmas);
    if (n > SIZE_MAX / (8 * sizeof(float))) return LF_ENOMEM;
    float *mem = malloc(8 * n * sizeof *mem);
    double *ts = malloc((size_t)(steps + 1) * sizeof *ts);
    if (!mem || !ts) {
        free(mem);
        free(ts);
        return LF_ENOMEM;
    }
    memcpy(ts, sigmas, (size_t)(steps + 1) * sizeof *ts);
    if (ts[steps] == 0) ts[steps] = 0.001;
    s_unipc_t u = {.r = r, .bh2 = bh2, .m = {mem, mem + n, mem + 2 * n}, .d1 = {mem + 3 * n, mem + 4 * n},
                   .xin = mem + 5 * n, .base = mem + 6 * n};
    float *mt = mem + 7 * n, *x = r->x;
    int order = steps - 1 < 3 ? steps - 1 : 3;
    double s0 = 1.0 / sqrt(1.0 + ts[0] * ts[0]);
    for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] * s0);
    for (int si = 0; si < steps && rc == 0; si++) {
        if (si == 0) {
            rc = s_unipc_model(&u, x, ts[0], u.m[0]);
            u.t[0] = ts[0];
            u.len = 1;
        } else if (si < order) {
            rc = s_unipc_update(&u, x, ts[si], si, 1, u.m[u.len]);
            u.t[u.len++] = ts[si];
        } else {
            int last = si == steps - 1 ? si + 1 : si;
            for (int st = si; st <= last && rc == 0; st++) {
                int so = order < steps + 1 - st ? order : steps + 1 - st;
                rc = s_unipc_update(&u, x, ts[st], so, st != steps, mt);
                if (rc) break;
                /* Shift the history left by one and append. */
                float *oldest = u.m[0];
                for (int i = 0; i < order - 1; i++) {
                    u.t[i] = u.t[i + 1];
                    u.m[i] = u.m[i + 1];
                }
                u.m[order - 1] = oldest;
                u.t[order - 1] = ts[st];
                if (st < steps) {
                    memcpy(u.m[order - 1], mt, n * sizeof *mt);
                } else {
                    /* The reference keeps the old value in the last slot
                     * (never used again); nothing to store. */
                }
            }
        }
        if (rc == 0 && r->o->step &&
            r->o->step(r->o->step_ctx, si, steps, (float)sigmas[si], x, u.m[u.len - 1], n))
            rc = LF_ECANCELED;
    }
    if (rc == 0) {
        double a = s_alpha(ts[steps]);
        for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] / a);
    }
    free(mem);
    free(ts);
    return rc;
}

int lf_sampler_run(lf_sampler_kind_t kind, const lf_sampler_opts_t *o, const double *sigmas,
                   int steps, float *x, size_t n)
{
    if ((unsigned)kind >= LF_SAMPLER_COUNT || !o || !o->denoise || !sigmas || steps < 0 || !x || n == 0)
        return LF_EINVAL;
    int needs_noise = kind == LF_SAMPLER_EULER_ANCESTRAL || kind == LF_SAMPLER_DPMPP_2M_SDE ||
                      kind == LF_SAMPLER_DPMPP_SDE || kind == LF_SAMPLER_LCM ||
                      (kind == LF_SAMPLER_TCD && o->gamma > 0);
    if (needs_noise && !o->noise) return LF_EINVAL;
    if (kind == LF_SAMPLER_TCD && (!o->schedule || !(o->gamma >= 0 && o->gamma <= 1))) return LF_EINVAL;
    if (lf_sampler_needs_uncond(kind) && !o->uncond) return LF_EINVAL;
    if (o->flow && (kind == LF_SAMPLER_DPMPP_2M_SDE || kind == LF_SAMPLER_DPMPP_SDE ||
                    kind == LF_SAMPLER_TCD || lf_sampler_needs_uncond(kind)))
        return LF_EUNSUPPORTED;
    for (int i = 0; i < steps; i++)
        if (!(sigmas[i] > 0) || !(sigmas[i + 1] >= 0)) return LF_EINVAL;
    if (n > SIZE_MAX / (6 * sizeof(float))) return LF_ENOMEM;
    float *buf = malloc(6 * n * sizeof(float));
    if (!buf) return LF_ENOMEM;
    s_run_t r = {.o = o, .n = n, .steps = steps, .x = buf, .den = buf + n, .tmp = buf + 2 * n,
                 .den2 = buf + 3 * n, .old = buf + 4 * n, .noise = buf + 5 * n};
    memcpy(r.x, x, n * sizeof *x);
    int rc = kind == LF_SAMPLER_UNI_PC || kind == LF_SAMPLER_UNI_PC_BH2
                 ? s_run_unipc(&r, sigmas, kind == LF_SAMPLER_UNI_PC_BH2)
                 : s_run(kind, &r, sigmas);
    if (rc == 0) memcpy(x, r.x, n * sizeof *x);
    free(buf);
    return rc;
}
