/* lf_shapestats: see lf_shapestats.h (a mirror of tools/train/eval_shapes.py). */
#include "lf_shapestats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

const lf_shapes_colour_t lf_shapes_palette[LF_SHAPES_N_COLOURS] = {
    {"red", {220, 30, 30}},    {"green", {40, 170, 60}},   {"blue", {40, 70, 220}},
    {"yellow", {245, 215, 40}}, {"orange", {245, 140, 20}}, {"purple", {140, 50, 180}},
    {"pink", {245, 130, 190}}, {"cyan", {40, 210, 220}},   {"white", {250, 250, 250}},
    {"black", {15, 15, 15}},   {"gray", {128, 128, 128}},  {"brown", {130, 80, 40}},
};

const char *const lf_shapes_shape_names[LF_SHAPES_N_SHAPES] = {"circle", "square", "triangle", "star"};

/* eval_shapes.py PROTOTYPES: (fill ratio, centroid y offset / box height). */
static const double s_proto[LF_SHAPES_N_SHAPES][2] = {{0.84, 0.0}, {1.0, 0.0}, {0.61, 0.133}, {0.49, 0.036}};
#define S_PROTO_Y_WEIGHT 2.0
#define S_MIN_FG 12
#define S_MIN_CORE 6
#define S_BORDER 3

int lf_shapes_nearest(const double rgb[3])
{
    int best = 0;
    double bd = INFINITY;
    for (int i = 0; i < LF_SHAPES_N_COLOURS; i++) {
        double d = 0;
        for (int c = 0; c < 3; c++) {
            double t = rgb[c] - lf_shapes_palette[i].rgb[c];
            d += t * t;
        }
        if (d < bd) bd = d, best = i;
    }
    return best;
}

/* The k-th smallest (0-based) value of a 256-bin histogram. */
static int s_hist_kth(const long h[256], long k)
{
    long acc = 0;
    for (int v = 0; v < 256; v++) {
        acc += h[v];
        if (acc > k) return v;
    }
    return 255;
}

/* The k-th smallest coordinate from a histogram of n bins. */
static long s_coord_kth(const long *h, int n, long k)
{
    long acc = 0;
    for (int v = 0; v < n; v++) {
        acc += h[v];
        if (acc > k) return v;
    }
    return n - 1;
}

/* numpy.percentile (linear interpolation) of count values given by a histogram. */
static double s_percentile(const long *h, int n, long count, double p)
{
    double idx = p / 100.0 * (double)(count - 1);
    long lo = (long)floor(idx);
    double frac = idx - (double)lo;
    double a = (double)s_coord_kth(h, n, lo);
    if (frac == 0.0 || lo + 1 >= count) return a;
    double b = (double)s_coord_kth(h, n, lo + 1);
    return a + frac * (b - a);
}

int lf_shapestats_analyse(const uint8_t *rgb, int W, int H, lf_shapestats_t *out)
{
    if (!rgb || !out || W < 2 * S_BORDER + 2 || H < 2 * S_BORDER + 2) return LF_EINVAL;
    memset(out, 0, sizeof *out);

    /* Background: per-channel median of the border rows and columns, as
     * np.concatenate of the four strips (the corners count twice). */
    long hist[3][256];
    memset(hist, 0, sizeof hist);
    long nb = 0;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int times = (y < S_BORDER || y >= H - S_BORDER) + (x < S_BORDER || x >= W - S_BORDER);
            if (!times) continue;
            const uint8_t *p = rgb + ((size_t)y * (size_t)W + (size_t)x) * 3;
            for (int c = 0; c < 3; c++) hist[c][p[c]] += times;
            nb += times;
        }
    }
    for (int c = 0; c < 3; c++) {
        if (nb % 2)
            out->bg_rgb[c] = s_hist_kth(hist[c], nb / 2);
        else
            out->bg_rgb[c] = (s_hist_kth(hist[c], nb / 2 - 1) + s_hist_kth(hist[c], nb / 2)) / 2.0;
    }
    int bg = lf_shapes_nearest(out->bg_rgb);
    out->bg = lf_shapes_palette[bg].name;

    size_t npx = (size_t)W * (size_t)H;
    uint8_t *fg = calloc(npx, 1);
    long *xh = calloc((size_t)W, sizeof *xh);
    long *yh = calloc((size_t)H, sizeof *yh);
    if (!fg || !xh || !yh) {
        free(fg), free(xh), free(yh);
        return LF_ENOMEM;
    }
    const double lim = LF_SHAPES_FG_DIST * LF_SHAPES_FG_DIST;
    long nfg = 0;
    for (size_t i = 0; i < npx; i++) {
        double d = 0;
        for (int c = 0; c < 3; c++) {
            double t = rgb[i * 3 + (size_t)c] - out->bg_rgb[c];
            d += t * t;
        }
        if (d > lim) fg[i] = 1, nfg++;
    }
    out->fg_pixels = nfg;
    if (nfg < S_MIN_FG) goto done;

    /* Colour: the core (3x3 erosion, never on the image edge). */
    long core = 0;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            int all = 1;
            for (int dy = -1; dy <= 1 && all; dy++)
                for (int dx = -1; dx <= 1 && all; dx++) all = fg[(size_t)(y + dy) * (size_t)W + (size_t)(x + dx)];
            if (all) fg[(size_t)y * (size_t)W + (size_t)x] |= 2, core++;
        }
    int want = core >= S_MIN_CORE ? 2 : 1;
    long votes[LF_SHAPES_N_COLOURS] = {0};
    for (size_t i = 0; i < npx; i++) {
        if (!(fg[i] & want)) continue;
        double px[3] = {rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]};
        int k = lf_shapes_nearest(px);
        if (k != bg) votes[k]++;
    }
    int best = -1;
    for (int k = 0; k < LF_SHAPES_N_COLOURS; k++) {
        if (!votes[k]) continue;
        /* numpy.unique sorts the names: ties go to the alphabetically first. */
        if (best < 0 || votes[k] > votes[best] ||
            (votes[k] == votes[best] && strcmp(lf_shapes_palette[k].name, lf_shapes_palette[best].name) < 0))
            best = k;
    }
    out->colour = best >= 0 ? lf_shapes_palette[best].name : NULL;

    /* Shape: percentile box, fill ratio, centroid offset; moments. */
    double sx = 0, sy = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (fg[(size_t)y * (size_t)W + (size_t)x]) xh[x]++, yh[y]++, sx += x, sy += y;
    double mx = sx / (double)nfg, my = sy / (double)nfg;
    double x0 = s_percentile(xh, W, nfg, 1), x1 = s_percentile(xh, W, nfg, 99);
    double y0 = s_percentile(yh, H, nfg, 1), y1 = s_percentile(yh, H, nfg, 99);
    double bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    long inbox = 0;
    double mu20 = 0, mu02 = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (!fg[(size_t)y * (size_t)W + (size_t)x]) continue;
            if (x >= x0 && x <= x1 && y >= y0 && y <= y1) inbox++;
            mu20 += (x - mx) * (x - mx);
            mu02 += (y - my) * (y - my);
        }
    out->fill = (double)inbox / (bw * bh);
    out->yoff = (my - (y0 + y1) / 2) / bh;
    out->compactness = (mu20 + mu02) / ((double)nfg * (double)nfg);
    int shape = 0;
    double sd = INFINITY;
    for (int s = 0; s < LF_SHAPES_N_SHAPES; s++) {
        double a = out->fill - s_proto[s][0], b = S_PROTO_Y_WEIGHT * (out->yoff - s_proto[s][1]);
        double d = a * a + b * b;
        if (d < sd) sd = d, shape = s;
    }
    out->shape = lf_shapes_shape_names[shape];

    out->cx = mx / W;
    out->cy = my / H;
    static const char *const names[3][3] = {{"top left", "top", "top right"},
                                            {"left", "center", "right"},
                                            {"bottom left", "bottom", "bottom right"}};
    int h = out->cx < 0.4 ? 0 : out->cx > 0.6 ? 2 : 1;
    int v = out->cy < 0.4 ? 0 : out->cy > 0.6 ? 2 : 1;
    out->position = names[v][h];
done:
    free(fg), free(xh), free(yh);
    return 0;
}
