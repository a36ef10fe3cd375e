/* cli_decode: family names for inspect and the decode command. */
#include "cli_decode.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_image.h"
#include "lf_safetensors.h"
#ifdef LF_HAVE_MODEL
#include <jansson.h>

#include "lf_backend.h"
#include "lf_keymap.h"
#include "lf_model.h"
#include "lf_pool.h"
#include "lf_taesd.h"
#include "lf_vae.h"
#include "lf_weights.h"
#endif

static int s_starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* TAESD keys: "<i>.conv.<j>.weight" in the .pth files, the same under
 * "decoder.layers." / "encoder.layers." in the safetensors ones. */
static int s_taesd_key(const char *s)
{
    if (s_starts(s, "decoder.layers.")) s += strlen("decoder.layers.");
    else if (s_starts(s, "encoder.layers.")) s += strlen("encoder.layers.");
    if (!isdigit((unsigned char)*s)) return 0;
    while (isdigit((unsigned char)*s)) s++;
    return *s == '.';
}

const char *lf_cli_family(const char *const *names, size_t n)
{
#ifdef LF_HAVE_MODEL
    lf_family_t f = lf_model_detect_family(names, n);
    if (f != LF_FAMILY_UNKNOWN) return lf_family_name(f);
#endif
    size_t taesd = 0, vae = 0;
    for (size_t i = 0; i < n; i++) {
        if (s_taesd_key(names[i])) taesd++;
        if (s_starts(names[i], "decoder.up.") || s_starts(names[i], "decoder.up_blocks.") ||
            s_starts(names[i], "first_stage_model.decoder.") || s_starts(names[i], "vae.decoder."))
            vae++;
    }
    if (n && taesd == n) return "taesd";
    if (vae) return "vae";
    return "unknown";
}

static int s_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "lightfarm-engine: %s%s%s\n(run 'lightfarm-engine --help' for usage)\n", msg,
            arg ? " " : "", arg ? arg : "");
    return 2;
}

static int s_fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "lightfarm-engine: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* The "latent" tensor as floats: [C][h][w] (a leading batch of 1 allowed). */
static int s_read_latent(const char *path, float **out, int *C, int *h, int *w)
{
    char err[512] = "";
    lf_safetensors_t *st = NULL;
    if (lf_safetensors_open(&st, path, err, sizeof err)) return s_fail("%s%s", err, "");
    const lf_tensor_info_t *t = lf_safetensors_find(st, "latent");
    int rc = 0;
    if (!t) rc = s_fail("%s: no tensor named 'latent'%s", path, "");
    else if (!(t->ndim == 3 || (t->ndim == 4 && t->shape[0] == 1)) || t->shape[t->ndim - 1] < 1 ||
             t->shape[t->ndim - 1] > 1024 || t->shape[t->ndim - 2] < 1 || t->shape[t->ndim - 2] > 1024 ||
             t->shape[t->ndim - 3] < 1 || t->shape[t->ndim - 3] > 64)
        rc = s_fail("%s: 'latent' must be [1,C,h,w] or [C,h,w] (C <= 64, h, w <= 1024)%s", path, "");
    else if (t->dtype != LF_DTYPE_F32 && t->dtype != LF_DTYPE_F16 && t->dtype != LF_DTYPE_BF16)
        rc = s_fail("%s: 'latent' must be F32, F16 or BF16%s", path, "");
    if (rc == 0) {
        *C = (int)t->shape[t->ndim - 3];
        *h = (int)t->shape[t->ndim - 2];
        *w = (int)t->shape[t->ndim - 1];
        int64_t n = lf_tensorinfo_numel(t);
        float *z = malloc((size_t)n * sizeof *z);
        if (!z) rc = s_fail("out of memory%s%s", "", "");
        for (int64_t i = 0; z && i < n; i++) z[i] = lf_tensorinfo_get_f32(t, i);
        *out = z;
    }
    lf_safetensors_destroy(&st);
    return rc;
}

#ifdef LF_HAVE_MODEL
/* z [C][h][w] (the sampler's scaled latent) -> rgb in [0, 1], [3][H][W]:
 * TAESD takes it as is, a VAE after division by its scaling factor. */
static int s_decode_net(const char *path, float *z, int C, int h, int w, int tile, float **rgb, int *W,
                        int *H)
{
    char err[512] = "";
    lf_weights_t *wt = NULL;
    if (lf_weights_open(&wt, path, err, sizeof err)) return s_fail("%s%s", err, "");
    size_t n = lf_weights_count(wt);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) {
        lf_weights_destroy(&wt);
        return s_fail("out of memory%s%s", "", "");
    }
    for (size_t i = 0; i < n; i++) names[i] = lf_weights_at(wt, i)->name;
    int taesd = !strcmp(lf_cli_family(names, n), "taesd");
    free(names);
    lf_backend_t *be = lf_backend_cpu_new(0);
    lf_pool_t *pool = be ? lf_pool_new(be, 0) : NULL;
    lf_taesd_t *td = NULL;
    lf_vae_t *vae = NULL;
    json_t *meta = NULL;
    float *out = NULL;
    int rc = 0;
    if (!pool) {
        rc = s_fail("cannot start the CPU backend%s%s", "", "");
    } else if (taesd) {
        if (lf_taesd_new(&td, path, be, pool, err, sizeof err)) rc = s_fail("%s%s", err, "");
        else if (lf_taesd_latent_channels(td) != C)
            rc = s_fail("%s: the decoder takes %s latent channels; the latent has another count", path,
                        lf_taesd_latent_channels(td) == 4 ? "4" : "32");
        else {
            int sc = lf_taesd_scale(td);
            *W = w * sc;
            *H = h * sc;
            out = malloc((size_t)3 * *W * *H * sizeof *out);
            if (!out || lf_taesd_decode(td, z, h, w, out)) rc = s_fail("%s: TAESD decoding failed%s", path, "");
        }
    } else {
        lf_keymap_t km;
        if (lf_keymap_probe_vae(&km, wt)) {
            rc = s_fail("%s: neither a VAE nor a TAESD decoder (layout not recognised)%s", path, "");
        } else {
            const char *ms = lf_weights_metadata(wt, "lf.config");
            json_error_t je;
            meta = ms ? json_loads(ms, 0, &je) : NULL;
            const json_t *jv = meta ? json_object_get(meta, "vae") : NULL;
            if (lf_vae_new(&vae, &km, jv, be, pool, -1, "vae.", err, sizeof err)) rc = s_fail("%s%s", err, "");
        }
        if (!rc) {
            const lf_vae_config_t *cfg = lf_vae_config(vae);
            int sc = lf_vae_scale(vae);
            if (cfg->latent_ch != C) {
                rc = s_fail("%s: the VAE takes a different number of latent channels than the latent has%s", path, "");
            } else {
                *W = w * sc;
                *H = h * sc;
                for (size_t i = 0; i < (size_t)C * h * w; i++) z[i] /= cfg->scaling_factor;
                out = malloc((size_t)3 * *W * *H * sizeof *out);
                if (!out || lf_vae_decode(vae, z, 1, h, w, tile, out)) rc = s_fail("%s: VAE decoding failed%s", path, "");
                for (size_t i = 0; out && !rc && i < (size_t)3 * *W * *H; i++) out[i] = (out[i] + 1.0f) / 2.0f;
            }
        }
    }
    json_decref(meta);
    lf_taesd_destroy(&td);
    lf_vae_destroy(&vae);
    lf_weights_destroy(&wt);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    if (rc) {
        free(out);
        return rc;
    }
    *rgb = out;
    return 0;
}
#endif

int lf_cli_decode(int argc, char **argv)
{
    static const struct option lo[] = {{"vae", required_argument, NULL, 'v'},
                                       {"latent", required_argument, NULL, 'l'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"tile", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    const char *vae = NULL, *latent = NULL, *outp = NULL;
    int tile = 0;
    optind = 0;
    int c;
    while ((opterr = 0, c = getopt_long(argc, argv, ":o:", lo, NULL)) != -1) {
        if (c == 'v') vae = optarg;
        else if (c == 'l') latent = optarg;
        else if (c == 'o') outp = optarg;
        else if (c == 't') {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 4096) return s_usage("--tile: not 0..4096:", optarg);
            tile = (int)v;
        }
        else if (c == ':') return s_usage("option needs a value:", argv[optind - 1]);
        else return s_usage("unknown option", argv[optind - 1]);
    }
    if (optind < argc) return s_usage("decode: unexpected argument", argv[optind]);
    if (!vae || !latent || !outp) return s_usage("decode: --vae FILE, --latent FILE and -o OUT.png are required", NULL);
    float *z = NULL;
    int C, h, w;
    if (s_read_latent(latent, &z, &C, &h, &w)) return 1;
#ifdef LF_HAVE_MODEL
    float *rgb = NULL;
    int W = 0, H = 0;
    int rc = s_decode_net(vae, z, C, h, w, tile, &rgb, &W, &H);
    free(z);
    if (rc) return rc;
    lf_image_t im = {.pixels = malloc((size_t)W * H * 3), .width = (uint32_t)W, .height = (uint32_t)H, .channels = 3};
    uint8_t *png = NULL;
    size_t len = 0;
    rc = im.pixels ? 0 : LF_ENOMEM;
    for (size_t p = 0; !rc && p < (size_t)W * H; p++)
        for (int ch = 0; ch < 3; ch++) {
            float v = rgb[(size_t)ch * W * H + p];
            v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
            im.pixels[p * 3 + ch] = (uint8_t)(v * 255.0f);
        }
    free(rgb);
    char err[256] = "";
    if (!rc) rc = lf_image_png_encode(&im, NULL, 0, -1, &png, &len, err, sizeof err);
    lf_image_clear(&im);
    if (rc) return s_fail("cannot encode the PNG: %s%s", err[0] ? err : lf_strerror(rc), "");
    FILE *f = fopen(outp, "wb");
    int ok = f && fwrite(png, 1, len, f) == len;
    if (f) ok = (fclose(f) == 0) && ok;
    free(png);
    if (!ok) return s_fail("%s: cannot write: %s", outp, strerror(errno));
    printf("%s (%dx%d)\n", outp, W, H);
    return 0;
#else
    int rc = s_fail("%s: decoding needs the model networks, which this build lacks%s", vae, "");
    (void)C, (void)h, (void)w, (void)tile;
    free(z);
    return rc;
#endif
}
