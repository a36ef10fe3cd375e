/* lf_diagnostic: the test-card model. See lf_diagnostic.h.
 *
 * Drawing uses integer arithmetic only, so a card is the same bytes on every
 * machine and compiler; the PNG writer adds no time chunk. */
#include "lf_diagnostic.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_error.h"
#include "lf_image.h"

/* ---- font: 5x7, rows top to bottom, bit 4 = leftmost column ------------- */

typedef struct {
    char c;
    uint8_t rows[7];
} s_glyph_t;

static const s_glyph_t s_font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
};

static const uint8_t *s_glyph(char c) {
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof s_font / sizeof s_font[0]; i++)
        if (s_font[i].c == c) return s_font[i].rows;
    return NULL; /* space and anything unknown: blank */
}

/* ---- drawing ----------------------------------------------------------- */

typedef struct {
    uint8_t *rgb;
    uint32_t w, h;
} s_canvas_t;

static uint64_t s_mix(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* h in [0, 1536) (six sectors of 256), s and v in [0, 255]. */
static void s_hsv(uint32_t h, uint32_t s, uint32_t v, uint8_t *px) {
    h %= 1536;
    uint32_t f = h % 256;
    uint32_t p = v * (255 - s) / 255;
    uint32_t q = v * (255 - s * f / 255) / 255;
    uint32_t t = v * (255 - s * (255 - f) / 255) / 255;
    uint32_t r, g, b;
    switch (h / 256) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    px[0] = (uint8_t)r, px[1] = (uint8_t)g, px[2] = (uint8_t)b;
}

static inline uint8_t *s_px(const s_canvas_t *c, uint32_t x, uint32_t y) {
    return c->rgb + ((size_t)y * c->w + x) * 3;
}

static void s_fill(const s_canvas_t *c, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                   const uint8_t col[3], int darken) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > c->w) x1 = c->w;
    if (y1 > c->h) y1 = c->h;
    for (int64_t y = y0; y < y1; y++)
        for (int64_t x = x0; x < x1; x++) {
            uint8_t *p = s_px(c, (uint32_t)x, (uint32_t)y);
            if (darken) {
                p[0] /= 3, p[1] /= 3, p[2] /= 3;
            } else {
                p[0] = col[0], p[1] = col[1], p[2] = col[2];
            }
        }
}

static void s_text(const s_canvas_t *c, int64_t x, int64_t y, uint32_t scale, const char *s) {
    static const uint8_t white[3] = {255, 255, 255};
    for (; *s; s++, x += 6 * (int64_t)scale) {
        const uint8_t *g = s_glyph(*s);
        if (!g) continue;
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (g[r] & (0x10 >> col))
                    s_fill(c, x + col * (int64_t)scale, y + r * (int64_t)scale,
                           x + (col + 1) * (int64_t)scale, y + (r + 1) * (int64_t)scale, white, 0);
    }
}

void lf_diagnostic_render(int64_t seed, uint32_t w, uint32_t h, uint32_t reveal, uint8_t *rgb) {
    if (!w || !h || !rgb) return;
    const s_canvas_t c = {rgb, w, h};
    const uint32_t hue = (uint32_t)(s_mix((uint64_t)seed) % 1536);
    const uint32_t side = w < h ? w : h;
    const uint32_t cell = side / 8 > 8 ? side / 8 : 8;
    const uint32_t bars_h = h / 6 ? h / 6 : 1;
    static const uint8_t bars[8][3] = {{235, 235, 235}, {235, 235, 16}, {16, 235, 235},
                                       {16, 235, 16},   {235, 16, 235}, {235, 16, 16},
                                       {16, 16, 235},   {16, 16, 16}};
    const int64_t cx = w / 2, cy = h / 2, rad = (int64_t)side * 3 / 8;
    uint32_t base_x = UINT32_MAX, base_y = UINT32_MAX; /* the cell whose colour is in base */
    uint8_t base[3] = {0, 0, 0};

    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = s_px(&c, x, y);
            if (y >= h - bars_h) {
                memcpy(p, bars[(uint64_t)x * 8 / w], 3);
            } else {
                /* Flat cells (hue across, light down): a test card, and
                 * rows that repeat compress fast (the farm bench encodes
                 * thousands a second). */
                uint32_t qx = x / cell * cell, qy = y / cell * cell;
                if (qx != base_x || qy != base_y) {
                    s_hsv(hue + (uint32_t)((uint64_t)qx * 256 / w), 170,
                          230 - (uint32_t)((uint64_t)qy * 130 / h), base);
                    base_x = qx, base_y = qy;
                }
                memcpy(p, base, 3);
                if (x % cell == 0 || y % cell == 0)
                    for (int k = 0; k < 3; k++) p[k] = (uint8_t)(p[k] + (255 - p[k]) * 2 / 5);
                int64_t dx = (int64_t)x - cx, dy = (int64_t)y - cy;
                int64_t d2 = dx * dx + dy * dy, r2 = rad * rad;
                bool ring = rad > 2 && d2 >= r2 - 2 * rad && d2 <= r2 + 2 * rad;
                bool cross = (x == cx || y == cy) && d2 <= r2;
                if (ring || cross) p[0] = p[1] = p[2] = 250;
            }
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1) p[0] = p[1] = p[2] = 255;
        }
    }

    /* Labels on a darkened box, top left. */
    char lines[3][48];
    snprintf(lines[0], sizeof lines[0], "LF-DIAGNOSTIC");
    snprintf(lines[1], sizeof lines[1], "SEED %" PRId64, seed);
    snprintf(lines[2], sizeof lines[2], "%" PRIu32 "X%" PRIu32, w, h);
    const uint32_t scale = side / 160 ? side / 160 : 1;
    size_t longest = 0;
    for (int i = 0; i < 3; i++)
        if (strlen(lines[i]) > longest) longest = strlen(lines[i]);
    const int64_t m = 4 * (int64_t)scale, lh = 9 * (int64_t)scale;
    s_fill(&c, m / 2, m / 2, m + (int64_t)longest * 6 * scale + m / 2, m + 3 * lh + m / 2, NULL, 1);
    for (int i = 0; i < 3; i++) s_text(&c, m, m + i * lh, scale, lines[i]);

    /* Rows not yet "sampled" in a preview: grey, keeping the light. */
    for (uint32_t y = reveal < h ? reveal : h; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = s_px(&c, x, y);
            uint8_t g = (uint8_t)((p[0] * 77u + p[1] * 150u + p[2] * 29u) >> 9);
            p[0] = p[1] = p[2] = g;
        }
}

/* ---- backend ------------------------------------------------------------ */

/* The diagnostic model has no weights; its state holds the settings it
 * took from the env at load time. */
typedef struct {
    uint32_t preview_every;
    uint32_t delay_cap_ms;
} s_state_t;

static int s_list_models(const lf_runner_env_t *env, lf_model_info_t **out, size_t *n) {
    (void)env;
    lf_model_info_t *m = calloc(1, sizeof *m);
    if (!m) return LF_ENOMEM;
    m->name = strdup(LF_DIAGNOSTIC_MODEL);
    m->kind = strdup(LF_DIAGNOSTIC_KIND);
    if (!m->name || !m->kind) {
        lf_runner_models_free(m, 1);
        return LF_ENOMEM;
    }
    *out = m;
    *n = 1;
    return 0;
}

static int s_load(const lf_runner_env_t *env, const char *model, void **state, char *err, size_t errlen) {
    (void)err, (void)errlen; /* nothing to read: only the name can be wrong */
    if (!model || strcmp(model, LF_DIAGNOSTIC_MODEL)) return LF_ENOTFOUND;
    s_state_t *s = calloc(1, sizeof *s);
    if (!s) return LF_ENOMEM;
    s->preview_every = env ? env->preview_every : 0;
    uint32_t cap = env ? env->step_delay_max_ms : 0;
    s->delay_cap_ms = cap && cap < LF_DIAGNOSTIC_MAX_DELAY_MS ? cap : LF_DIAGNOSTIC_MAX_DELAY_MS;
    *state = s;
    return 0;
}

static void s_unload(void **state) {
    if (!state) return;
    free(*state);
    *state = NULL;
}

static int s_check(void *state, const lf_job_params_t *p, char *errbuf, size_t errlen) {
    (void)state;
    if (!p->width || !p->height || p->width > LF_DIAGNOSTIC_MAX_SIDE ||
        p->height > LF_DIAGNOSTIC_MAX_SIDE) {
        snprintf(errbuf, errlen, "width and height must be 1..%u", LF_DIAGNOSTIC_MAX_SIDE);
        return LF_EINVAL;
    }
    if (p->batch_size > LF_DIAGNOSTIC_MAX_BATCH) {
        snprintf(errbuf, errlen, "batch_size must be at most %u", LF_DIAGNOSTIC_MAX_BATCH);
        return LF_ELIMIT;
    }
    if (p->steps > LF_DIAGNOSTIC_MAX_STEPS) {
        snprintf(errbuf, errlen, "steps must be at most %u", LF_DIAGNOSTIC_MAX_STEPS);
        return LF_ELIMIT;
    }
    return 0;
}

static bool s_cancelled(const lf_runner_job_t *job) {
    return job->cancel && atomic_load(job->cancel);
}

/* Sleep ms milliseconds in short slices; true when cancel interrupted it. */
static bool s_sleep(const lf_runner_job_t *job, uint32_t ms) {
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) end.tv_sec++, end.tv_nsec -= 1000000000L;
    for (;;) {
        if (s_cancelled(job)) return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = (long long)(end.tv_sec - now.tv_sec) * 1000000000LL +
                         (end.tv_nsec - now.tv_nsec);
        if (left <= 0) return false;
        struct timespec slice = {0, left < 5000000 ? (long)left : 5000000L};
        nanosleep(&slice, NULL);
    }
}

/* Encode one card (zlib level 1: the card is a load-test tool, and level 6
 * spent half the worker's time compressing); *png owned by the caller. `parameters` (may be NULL)
 * becomes the A1111 "parameters" text chunk. */
static int s_card_png(int64_t seed, uint32_t w, uint32_t h, uint32_t reveal,
                      const char *parameters, uint8_t **png, size_t *len) {
    lf_image_t img = {.pixels = malloc((size_t)w * h * 3), .width = w, .height = h,
                      .channels = 3};
    if (!img.pixels) return LF_ENOMEM;
    lf_diagnostic_render(seed, w, h, reveal, img.pixels);
    lf_image_text_t text = {"parameters", (char *)parameters};
    int rc = lf_image_png_encode(&img, &text, parameters ? 1 : 0, 1, png, len, NULL, 0);
    lf_image_clear(&img);
    return rc;
}

/* The one infotext (lf_params_infotext), so the cards read back like real
 * generations; the step delay is the one actually used. */
static char *s_parameters(const lf_job_params_t *p, uint32_t index, uint32_t delay_ms) {
    lf_job_params_t view = *p; /* a shallow view: borrowed strings, never cleared */
    view.step_delay_ms = delay_ms;
    char *s = NULL;
    return lf_params_infotext(&view, LF_DIAGNOSTIC_MODEL, (int)index, &s) ? NULL : s;
}

static void s_preview(const lf_runner_job_t *job, uint32_t step, uint32_t steps) {
    const lf_job_params_t *p = job->params;
    uint32_t pw = p->width, ph = p->height, max = LF_DIAGNOSTIC_PREVIEW_SIDE;
    if (pw > max || ph > max) {
        if (pw >= ph) {
            ph = (uint32_t)((uint64_t)ph * max / pw), pw = max;
        } else {
            pw = (uint32_t)((uint64_t)pw * max / ph), ph = max;
        }
    }
    if (!pw) pw = 1;
    if (!ph) ph = 1;
    uint8_t *png = NULL;
    size_t len = 0;
    /* A preview that cannot be made is skipped; progress still goes out. */
    if (s_card_png(p->seed, pw, ph, (uint32_t)((uint64_t)ph * step / steps), NULL, &png, &len))
        png = NULL;
    job->progress(job->progress_ud, step, steps, png, png ? len : 0);
    free(png);
}

static char *s_info_json(const lf_job_params_t *p, uint32_t batch, uint32_t delay_ms) {
    json_t *o = json_object();
    json_t *seeds = json_array(), *texts = json_array();
    if (!o || !seeds || !texts) {
        json_decref(o);
        json_decref(seeds);
        json_decref(texts);
        return NULL;
    }
    for (uint32_t i = 0; i < batch; i++) {
        json_array_append_new(seeds, json_integer((json_int_t)((uint64_t)p->seed + i)));
        char *t = s_parameters(p, i, delay_ms);
        json_array_append_new(texts, t ? json_string(t) : json_null());
        free(t);
    }
    json_object_set_new(o, "infotexts", texts);
    json_object_set_new(o, "model", json_string(LF_DIAGNOSTIC_MODEL));
    json_object_set_new(o, "kind", json_string(LF_DIAGNOSTIC_KIND));
    json_object_set_new(o, "mode", json_string(p->mode ? p->mode : "txt2img"));
    if (p->prompt) json_object_set_new(o, "prompt", json_string(p->prompt));
    if (p->negative_prompt)
        json_object_set_new(o, "negative_prompt", json_string(p->negative_prompt));
    json_object_set_new(o, "seed", json_integer((json_int_t)p->seed));
    json_object_set_new(o, "seeds", seeds);
    json_object_set_new(o, "width", json_integer(p->width));
    json_object_set_new(o, "height", json_integer(p->height));
    json_object_set_new(o, "steps", json_integer(p->steps));
    json_object_set_new(o, "step_delay_ms", json_integer(delay_ms));
    json_object_set_new(o, "batch_size", json_integer(batch));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s; /* malloc'd by jansson's default allocator */
}

static int s_run(void *state, const lf_runner_job_t *job, lf_runner_output_t *out) {
    const s_state_t *st = state;
    const lf_job_params_t *p = job->params;
    char err[128];
    int rc = s_check(state, p, err, sizeof err);
    if (rc) return rc;
    const uint32_t steps = p->steps, batch = p->batch_size ? p->batch_size : 1;
    const uint32_t every = st->preview_every;
    const uint32_t delay =
        p->step_delay_ms < st->delay_cap_ms ? p->step_delay_ms : st->delay_cap_ms;

    if (s_cancelled(job)) return LF_ECANCELED;
    for (uint32_t s = 1; s <= steps; s++) {
        if (s_sleep(job, delay)) return LF_ECANCELED;
        if (!job->progress) continue;
        /* No preview with the last step: the result follows at once. */
        if (every && s % every == 0 && s != steps)
            s_preview(job, s, steps);
        else
            job->progress(job->progress_ud, s, steps, NULL, 0);
    }

    lf_runner_output_t o = {0};
    o.images = calloc(batch, sizeof *o.images);
    if (!o.images) return LF_ENOMEM;
    for (uint32_t i = 0; i < batch; i++) {
        if (s_cancelled(job)) {
            rc = LF_ECANCELED;
            break;
        }
        lf_image_out_t *im = &o.images[i];
        im->seed = (int64_t)((uint64_t)p->seed + i);
        im->width = p->width;
        im->height = p->height;
        char *params = s_parameters(p, i, delay);
        rc = params ? s_card_png(im->seed, p->width, p->height, p->height, params,
                                 &im->png.data, &im->png.len)
                    : LF_ENOMEM;
        free(params);
        if (rc) break;
        o.n_images++;
    }
    if (!rc && !(o.info_json = s_info_json(p, batch, delay))) rc = LF_ENOMEM;
    if (rc) {
        lf_runner_output_clear(&o);
        return rc;
    }
    *out = o;
    return 0;
}

const lf_runner_backend_t lf_diagnostic_backend = {
    .name = "diagnostic",
    .list_models = s_list_models,
    .load = s_load,
    .check = s_check,
    .run = s_run,
    .unload = s_unload,
};
