/* lf_detailer: the ADetailer pass (lf_detailer.h). */
#include "lf_detailer.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_image.h"

void lf_detailer_unit_defaults(lf_detailer_unit_t *u)
{
    *u = (lf_detailer_unit_t){.model = "None", .prompt = "", .negative = "", .confidence = 0.3,
                              .mask_max_ratio = 1.0, .dilate_erode = 4, .mask_blur = 4,
                              .denoising_strength = 0.4, .inpaint_only_masked = 1,
                              .inpaint_padding = 32, .inpaint_width = 512, .inpaint_height = 512,
                              .steps = 28, .cfg = 7.0, .sampler = "DPM++ 2M Karras",
                              .scheduler = "Use same scheduler", .noise_multiplier = 1.0,
                              .clip_skip = 1};
}

/* ---- mask steps ---- */

static double s_area(const lf_detailer_box_t *b) { return ((double)b->x2 - b->x1) * ((double)b->y2 - b->y1); }

int lf_detailer_filter(lf_detailer_box_t *boxes, int n, int w, int h, double min_ratio,
                       double max_ratio, int k_largest)
{
    int m = 0;
    const double orig = (double)w * (double)h;
    for (int i = 0; i < n; i++) {
        double r = s_area(&boxes[i]) / orig;
        if (min_ratio <= r && r <= max_ratio) boxes[m++] = boxes[i];
    }
    if (k_largest <= 0 || m == 0) return m;
    /* np.argsort(areas) (small arrays: a stable insertion sort), then the
     * last k, reversed: largest first, among equal areas the later first. */
    int idx[LF_DETAILER_MAX_DETECTIONS];
    if (m > LF_DETAILER_MAX_DETECTIONS) m = LF_DETAILER_MAX_DETECTIONS;
    for (int i = 0; i < m; i++) {
        int j = i;
        while (j > 0 && s_area(&boxes[idx[j - 1]]) > s_area(&boxes[i])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    int k = k_largest < m ? k_largest : m;
    lf_detailer_box_t tmp[LF_DETAILER_MAX_DETECTIONS];
    for (int i = 0; i < k; i++) tmp[i] = boxes[idx[m - 1 - i]];
    memcpy(boxes, tmp, (size_t)k * sizeof *boxes);
    return k;
}

void lf_detailer_box_mask(const lf_detailer_box_t *b, int w, int h, uint8_t *m)
{
    memset(m, 0, (size_t)w * (size_t)h);
    /* Pillow's draw.rectangle: (int) of each coordinate, inclusive, clipped. */
    int x0 = (int)b->x1, y0 = (int)b->y1, x1 = (int)b->x2, y1 = (int)b->y2;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > w - 1) x1 = w - 1;
    if (y1 > h - 1) y1 = h - 1;
    for (int y = y0; y <= y1; y++)
        if (x0 <= x1) memset(m + (size_t)y * w + x0, 255, (size_t)(x1 - x0 + 1));
}

int lf_detailer_offset(uint8_t *m, int w, int h, int x, int y)
{
    if (!x && !y) return 0;
    uint8_t *t = malloc((size_t)w * (size_t)h);
    if (!t) return LF_ENOMEM;
    memcpy(t, m, (size_t)w * (size_t)h);
    /* ImageChops.offset(img, dx, dy): out[(i + dy) % h][(j + dx) % w] = in[i][j]; dy = -y. */
    int dx = ((x % w) + w) % w, dy = (((-y) % h) + h) % h;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) m[(size_t)((i + dy) % h) * w + (j + dx) % w] = t[(size_t)i * w + j];
    free(t);
    return 0;
}

/* One axis of the separable rectangular morphology: window offsets
 * [-a, k - 1 - a] around each pixel, pixels outside ignored. */
static void s_morph_line(const uint8_t *src, size_t stride, int n, int k, int dilate, uint8_t *dst,
                         size_t dstride)
{
    const int a = k / 2;
    for (int i = 0; i < n; i++) {
        int lo = i - a, hi = i + k - 1 - a;
        if (lo < 0) lo = 0;
        if (hi > n - 1) hi = n - 1;
        uint8_t v = dilate ? 0 : 255;
        for (int j = lo; j <= hi; j++) {
            uint8_t s = src[(size_t)j * stride];
            if (dilate ? s > v : s < v) v = s;
        }
        dst[(size_t)i * dstride] = v;
    }
}

int lf_detailer_dilate_erode(uint8_t *m, int w, int h, int value)
{
    if (!m || w <= 0 || h <= 0) return LF_EINVAL;
    if (value == 0) return 0;
    int dil = value > 0, k = value > 0 ? value : -value;
    if (k == 1) return 0;
    uint8_t *t = malloc((size_t)w * (size_t)h);
    if (!t) return LF_ENOMEM;
    for (int y = 0; y < h; y++) s_morph_line(m + (size_t)y * w, 1, w, k, dil, t + (size_t)y * w, 1);
    for (int x = 0; x < w; x++) s_morph_line(t + x, (size_t)w, h, k, dil, m + x, (size_t)w);
    free(t);
    return 0;
}

int lf_detailer_all_black(const uint8_t *m, int w, int h)
{
    for (size_t p = 0; p < (size_t)w * (size_t)h; p++)
        if (m[p]) return 0;
    return 1;
}

/* ---- prompts ---- */

void lf_detailer_parts_free(char **parts, int n)
{
    if (!parts) return;
    for (int i = 0; i < n; i++) free(parts[i]);
    free(parts);
}

static char *s_strndup(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) memcpy(r, s, n), r[n] = '\0';
    return r;
}

/* s with every "[PROMPT]" replaced by " dflt ". */
static char *s_replace_prompt(const char *s, const char *dflt)
{
    static const char tag[] = "[PROMPT]";
    size_t nt = 0, dl = strlen(dflt);
    for (const char *p = strstr(s, tag); p; p = strstr(p + 8, tag)) nt++;
    char *r = malloc(strlen(s) + nt * (dl + 2) + 1), *o = r;
    if (!r) return NULL;
    for (const char *p = s;;) {
        const char *q = strstr(p, tag);
        if (!q) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(q - p)), o += q - p;
        *o++ = ' ', memcpy(o, dflt, dl), o += dl, *o++ = ' ';
        p = q + 8;
    }
    return r;
}

int lf_detailer_prompt_parts(const char *ad_prompt, const char *dflt, char ***parts)
{
    static const char sep[] = "[SEP]";
    if (!ad_prompt) ad_prompt = "";
    if (!dflt) dflt = "";
    int n = 1;
    for (const char *p = strstr(ad_prompt, sep); p; p = strstr(p + 5, sep)) n++;
    char **r = calloc((size_t)n, sizeof *r);
    if (!r) return LF_ENOMEM;
    const char *p = ad_prompt;
    for (int i = 0; i < n; i++) {
        const char *q = i < n - 1 ? strstr(p, sep) : p + strlen(p);
        /* re.split(r"\s*\[SEP\]\s*"): the whitespace next to a separator goes. */
        const char *b = p, *e = q;
        if (i > 0)
            while (b < e && isspace((unsigned char)*b)) b++;
        if (i < n - 1)
            while (e > b && isspace((unsigned char)e[-1])) e--;
        char *part = s_strndup(b, (size_t)(e - b));
        if (part && !*part) {
            free(part);
            part = strdup(dflt);
        } else if (part && strstr(part, "[PROMPT]")) {
            char *t = s_replace_prompt(part, dflt);
            free(part);
            part = t;
        }
        if (!part) {
            lf_detailer_parts_free(r, n);
            return LF_ENOMEM;
        }
        r[i] = part;
        if (i < n - 1) p = q + 5;
    }
    *parts = r;
    return n;
}

/* ---- infotext ---- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} s_buf_t;

static void s_put(s_buf_t *b, const char *fmt, ...)
{
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)(n < 0 ? 0 : n) + 1) * 2 + 64;
        char *s = realloc(b->s, cap);
        if (!s || n < 0) {
            b->oom = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Python's str(float): the shortest repr that reads back, ".0" on integers. */
static void s_pyfloat(char *out, size_t n, double v)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".eEn")) strncat(out, ".0", n - strlen(out) - 1);
}

/* A1111's quote(): as is unless it has ',', '\n' or ':'; then json.dumps. */
static void s_put_str(s_buf_t *b, const char *key, const char *sfx, const char *v)
{
    if (!strpbrk(v, ",\n:")) {
        s_put(b, ", %s%s: %s", key, sfx, v);
        return;
    }
    json_t *j = json_string(v);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!d) {
        b->oom = 1;
        return;
    }
    s_put(b, ", %s%s: %s", key, sfx, d);
    free(d);
}

static void s_put_f(s_buf_t *b, const char *key, const char *sfx, double v)
{
    char f[40];
    s_pyfloat(f, sizeof f, v);
    s_put(b, ", %s%s: %s", key, sfx, f);
}

static void s_suffix(size_t n, char *out, size_t len)
{
    if (n == 0) {
        out[0] = '\0';
        return;
    }
    size_t k = n + 1;
    const char *o = "th";
    if (k % 100 < 11 || k % 100 > 13) {
        if (k % 10 == 1) o = "st";
        else if (k % 10 == 2) o = "nd";
        else if (k % 10 == 3) o = "rd";
    }
    snprintf(out, len, " %zu%s", k, o);
}

static int s_enabled(const lf_detailer_unit_t *u) { return u->model && strcmp(u->model, "None"); }

int lf_detailer_infotext(const lf_detailer_unit_t *units, size_t n, char **out)
{
    s_buf_t b = {0};
    static const char *merge[] = {"None", "Merge", "Merge and Invert"};
    int any = 0;
    s_put(&b, "%s", "");
    for (size_t i = 0; i < n; i++) {
        const lf_detailer_unit_t *u = &units[i];
        char sx[32]; /* " <any size_t>th" fits */
        s_suffix(i, sx, sizeof sx);
        if (!s_enabled(u)) continue;
        any = 1;
        /* extra_params: ALL_ARGS's order, the ppop rules of args.py. */
        s_put_str(&b, "ADetailer model", sx, u->model);
        if (u->prompt && *u->prompt) s_put_str(&b, "ADetailer prompt", sx, u->prompt);
        if (u->negative && *u->negative) s_put_str(&b, "ADetailer negative prompt", sx, u->negative);
        s_put_f(&b, "ADetailer confidence", sx, u->confidence);
        if (u->mask_k_largest) s_put(&b, ", ADetailer mask only top k largest%s: %d", sx, u->mask_k_largest);
        if (u->mask_min_ratio != 0.0) s_put_f(&b, "ADetailer mask min ratio", sx, u->mask_min_ratio);
        if (u->mask_max_ratio != 1.0) s_put_f(&b, "ADetailer mask max ratio", sx, u->mask_max_ratio);
        if (u->x_offset) s_put(&b, ", ADetailer x offset%s: %d", sx, u->x_offset);
        if (u->y_offset) s_put(&b, ", ADetailer y offset%s: %d", sx, u->y_offset);
        s_put(&b, ", ADetailer dilate erode%s: %d", sx, u->dilate_erode);
        if (u->merge_invert > 0 && u->merge_invert <= 2)
            s_put(&b, ", ADetailer mask merge invert%s: %s", sx, merge[u->merge_invert]);
        s_put(&b, ", ADetailer mask blur%s: %d", sx, u->mask_blur);
        s_put_f(&b, "ADetailer denoising strength", sx, u->denoising_strength);
        s_put(&b, ", ADetailer inpaint only masked%s: %s", sx, u->inpaint_only_masked ? "True" : "False");
        if (u->inpaint_only_masked) s_put(&b, ", ADetailer inpaint padding%s: %d", sx, u->inpaint_padding);
        if (u->use_inpaint_size)
            s_put(&b, ", ADetailer use inpaint width height%s: True, ADetailer inpaint width%s: %d, "
                      "ADetailer inpaint height%s: %d",
                  sx, sx, u->inpaint_width, sx, u->inpaint_height);
        if (u->use_steps) s_put(&b, ", ADetailer use separate steps%s: True, ADetailer steps%s: %d", sx, sx, u->steps);
        if (u->use_cfg) {
            s_put(&b, ", ADetailer use separate CFG scale%s: True", sx);
            s_put_f(&b, "ADetailer CFG scale", sx, u->cfg);
        }
        if (u->use_sampler) {
            s_put(&b, ", ADetailer use separate sampler%s: True", sx);
            s_put_str(&b, "ADetailer sampler", sx, u->sampler ? u->sampler : "");
            if (u->scheduler && strcmp(u->scheduler, "Use same scheduler"))
                s_put_str(&b, "ADetailer scheduler", sx, u->scheduler);
        }
        if (u->use_noise_multiplier) {
            s_put(&b, ", ADetailer use separate noise multiplier%s: True", sx);
            s_put_f(&b, "ADetailer noise multiplier", sx, u->noise_multiplier);
        }
        if (u->use_clip_skip)
            s_put(&b, ", ADetailer use separate CLIP skip%s: True, ADetailer CLIP skip%s: %d", sx, sx,
                  u->clip_skip);
    }
    if (any) s_put(&b, ", ADetailer version: %s", LF_DETAILER_VERSION);
    if (b.oom) {
        free(b.s);
        return LF_ENOMEM;
    }
    *out = b.s;
    return 0;
}

/* ---- the pass ---- */

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

typedef struct {
    const lf_pipeline_hooks_t *outer;
    int base;
} s_prog_t;

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_prog_t *p = ud;
    p->outer->progress(p->outer->progress_ud, p->base + step, p->base + steps, preview, len);
}

static int s_png(const uint8_t *px, int w, int h, const char *info, int level, uint8_t **out,
                 size_t *len)
{
    lf_image_t im = {.pixels = (uint8_t *)px, .width = (uint32_t)w, .height = (uint32_t)h,
                     .channels = 3};
    lf_image_text_t t = {.key = "parameters", .value = (char *)info};
    return lf_image_png_encode(&im, info ? &t : NULL, info ? 1 : 0, level, out, len,
                               NULL, 0);
}

/* One unit on the current image (cur: owned PNG, replaced as masks run). */
static int s_unit(const lf_detailer_t *d, const lf_detailer_unit_t *u, const lf_pipeline_ctx_t *ctx,
                  const lf_pipeline_request_t *job, int index, const lf_pipeline_hooks_t *hooks,
                  uint8_t **cur, size_t *cur_len, int *steps_done, char *err, size_t errlen)
{
    lf_image_t im = {0};
    int rc = lf_image_decode(*cur, *cur_len, NULL, &im, err, errlen);
    if (rc) return rc;
    const int w = (int)im.width, h = (int)im.height;
    lf_detailer_box_t boxes[LF_DETAILER_MAX_DETECTIONS];
    int n = d->detect(d->detect_ud, u->model, im.pixels, w, h, u->confidence, boxes,
                      LF_DETAILER_MAX_DETECTIONS);
    lf_image_clear(&im);
    if (n < 0) {
        if (err && errlen && !err[0]) s_fail(err, errlen, n, "ad_model '%s': %s", u->model, lf_strerror(n));
        return n;
    }
    if (n > LF_DETAILER_MAX_DETECTIONS) n = LF_DETAILER_MAX_DETECTIONS;
    n = lf_detailer_filter(boxes, n, w, h, u->mask_min_ratio, u->mask_max_ratio, u->mask_k_largest);
    if (n == 0) return 0;

    /* The masks (mask_preprocess). */
    size_t np = (size_t)w * (size_t)h;
    uint8_t *masks = malloc(np * (size_t)n);
    if (!masks) return LF_ENOMEM;
    int nm = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *m = masks + np * (size_t)nm;
        if (boxes[i].mask) memcpy(m, boxes[i].mask, np); /* a segmentation mask (mask_to_pil) */
        else lf_detailer_box_mask(&boxes[i], w, h, m);
        if ((rc = lf_detailer_offset(m, w, h, u->x_offset, u->y_offset)) ||
            (rc = lf_detailer_dilate_erode(m, w, h, u->dilate_erode))) {
            free(masks);
            return rc;
        }
        if (u->dilate_erode != 0 && lf_detailer_all_black(m, w, h)) continue;
        nm++;
    }
    if (nm > 0 && u->merge_invert != LF_DETAILER_MERGE_NONE) {
        for (int i = 1; i < nm; i++)
            for (size_t p = 0; p < np; p++) masks[p] |= masks[np * (size_t)i + p];
        if (u->merge_invert == LF_DETAILER_MERGE_INVERT)
            for (size_t p = 0; p < np; p++) masks[p] = (uint8_t)(255 - masks[p]);
        nm = 1;
    }

    char **pp = NULL, **np_ = NULL;
    int npp = lf_detailer_prompt_parts(u->prompt, job->prompt, &pp);
    int nnp = npp < 0 ? npp : lf_detailer_prompt_parts(u->negative, job->negative, &np_);
    if (npp < 0 || nnp < 0) {
        lf_detailer_parts_free(pp, npp);
        free(masks);
        return LF_ENOMEM;
    }

    lf_pipeline_request_t r = *job;
    r.batch = 1;
    r.denoise = u->denoising_strength;
    r.mask_blur_x = r.mask_blur_y = u->mask_blur;
    r.inpainting_fill = 1;
    r.inpaint_full_res = u->inpaint_only_masked;
    r.inpaint_full_res_padding = u->inpaint_padding;
    r.inpainting_mask_invert = 0;
    r.refiner_switch_at = 0;
    r.preview_every = 0;
    r.infotext_prompt = NULL;
    r.lora_hashes = NULL;
    r.inpainting_mask_weight = job->inpainting_mask_weight;
    r.initial_noise_multiplier = u->use_noise_multiplier ? u->noise_multiplier : 0;
    if (u->use_inpaint_size) {
        r.width = u->inpaint_width / 8 * 8;
        r.height = u->inpaint_height / 8 * 8;
    }
    r.orig_width = r.orig_height = r.target_width = r.target_height = 0;
    r.crop_top = r.crop_left = 0;
    if (u->use_steps) r.steps = u->steps;
    if (u->use_steps || u->use_sampler) r.timesteps = NULL, r.n_timesteps = 0; /* they were the job's */
    if (u->use_cfg) r.cfg = u->cfg;
    if (u->use_clip_skip) r.clip_skip = u->clip_skip;
    if (u->use_sampler) {
        if (u->sampler && lf_sampler_parse(u->sampler, &r.sampler)) rc = LF_EINVAL;
        if (!rc && u->scheduler && strcmp(u->scheduler, "Use same scheduler") &&
            lf_scheduler_parse(u->scheduler, &r.scheduler))
            rc = LF_EINVAL;
        if (rc) s_fail(err, errlen, rc, "ad_sampler '%s' / ad_scheduler '%s' unknown", u->sampler,
                       u->scheduler ? u->scheduler : "");
    }
    lf_pipeline_ctx_t c = *ctx;
    c.refiner = NULL;
    const uint64_t seed = job->seed + (uint64_t)index;
    for (int j = 0; j < nm && !rc; j++) {
        const char *pr = pp[j < npp ? j : npp - 1], *ng = np_[j < nnp ? j : nnp - 1];
        const char *s = pr;
        while (isspace((unsigned char)*s)) s++;
        if (!strncmp(s, "[SKIP]", 6)) {
            s += 6;
            while (isspace((unsigned char)*s)) s++;
            if (!*s) continue;
        }
        uint8_t *mpng = NULL;
        size_t mlen = 0;
        /* The mask as a grey RGB PNG (the pipeline reads its luma: exact). */
        uint8_t *rgb = malloc(np * 3);
        if (!rgb) {
            rc = LF_ENOMEM;
            break;
        }
        for (size_t p = 0; p < np; p++) rgb[p * 3] = rgb[p * 3 + 1] = rgb[p * 3 + 2] = masks[np * (size_t)j + p];
        rc = s_png(rgb, w, h, NULL, 1, &mpng, &mlen);
        free(rgb);
        if (rc) break;
        r.prompt = pr;
        r.negative = ng;
        r.seed = seed + (uint64_t)j;
        r.init_image = *cur;
        r.init_image_len = *cur_len;
        r.mask = mpng;
        r.mask_len = mlen;
        s_prog_t sp = {hooks, *steps_done};
        lf_pipeline_hooks_t hk = {.cancel = hooks ? hooks->cancel : NULL};
        if (hooks && hooks->progress) hk.progress = s_progress, hk.progress_ud = &sp;
        lf_pipeline_result_t res = {0};
        rc = lf_pipeline_run(&c, &r, &hk, &res, err, errlen);
        free(mpng);
        if (rc) break;
        *steps_done += res.steps_run;
        free(*cur);
        *cur = res.images[0].png, *cur_len = res.images[0].png_len;
        res.images[0].png = NULL;
        lf_pipeline_result_clear(&res);
    }
    lf_detailer_parts_free(pp, npp);
    lf_detailer_parts_free(np_, nnp);
    free(masks);
    return rc;
}

int lf_detailer_run(const lf_detailer_t *d, const lf_pipeline_ctx_t *ctx,
                    const lf_pipeline_request_t *job, int index, const lf_pipeline_hooks_t *hooks,
                    lf_pipeline_image_t *img, int *steps_done, char *err, size_t errlen)
{
    if (!d || !ctx || !job || !img || !img->png || !steps_done) return LF_EINVAL;
    if (d->n_units > LF_DETAILER_MAX_UNITS)
        return s_fail(err, errlen, LF_EINVAL, "adetailer: at most %d units", LF_DETAILER_MAX_UNITS);
    int any = 0;
    for (size_t i = 0; i < d->n_units; i++) any |= s_enabled(&d->units[i]);
    char *extra = NULL;
    int rc = lf_detailer_infotext(d->units, d->n_units, &extra);
    if (rc) return rc;
    if (!any) {
        free(extra);
        return 0;
    }
    if (!d->detect) {
        free(extra);
        return s_fail(err, errlen, LF_EINVAL, "adetailer: no detector");
    }
    if (err && errlen) err[0] = '\0';
    uint8_t *cur = malloc(img->png_len);
    size_t cur_len = img->png_len;
    if (!cur) {
        free(extra);
        return LF_ENOMEM;
    }
    memcpy(cur, img->png, cur_len);
    int done = *steps_done;
    for (size_t i = 0; i < d->n_units && !rc; i++) {
        const lf_detailer_unit_t *u = &d->units[i];
        if (!s_enabled(u)) continue;
        if (hooks && hooks->cancel && atomic_load(hooks->cancel)) rc = LF_ECANCELED;
        else rc = s_unit(d, u, ctx, job, index, hooks, &cur, &cur_len, &done, err, errlen);
    }
    /* The final image with the job's parameters and the extension's. */
    char *info = NULL;
    uint8_t *png = NULL;
    size_t len = 0;
    lf_image_t im = {0};
    if (!rc) {
        const char *base = img->infotext ? img->infotext : "";
        info = malloc(strlen(base) + strlen(extra) + 1);
        if (!info) rc = LF_ENOMEM;
        else strcat(strcpy(info, base), extra);
    }
    if (!rc) rc = lf_image_decode(cur, cur_len, NULL, &im, err, errlen);
    if (!rc) rc = s_png(im.pixels, (int)im.width, (int)im.height, info, -1, &png, &len);
    lf_image_clear(&im);
    free(cur);
    free(extra);
    if (rc) {
        free(info);
        return rc;
    }
    free(img->png);
    free(img->infotext);
    img->png = png, img->png_len = len, img->infotext = info;
    *steps_done = done;
    return 0;
}
