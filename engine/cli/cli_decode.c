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
#include "lf_model.h"
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

int lf_cli_decode(int argc, char **argv)
{
    static const struct option lo[] = {{"vae", required_argument, NULL, 'v'},
                                       {"latent", required_argument, NULL, 'l'},
                                       {"output", required_argument, NULL, 'o'},
                                       {NULL, 0, NULL, 0}};
    const char *vae = NULL, *latent = NULL, *outp = NULL;
    optind = 0;
    int c;
    while ((opterr = 0, c = getopt_long(argc, argv, ":o:", lo, NULL)) != -1) {
        if (c == 'v') vae = optarg;
        else if (c == 'l') latent = optarg;
        else if (c == 'o') outp = optarg;
        else if (c == ':') return s_usage("option needs a value:", argv[optind - 1]);
        else return s_usage("unknown option", argv[optind - 1]);
    }
    if (optind < argc) return s_usage("decode: unexpected argument", argv[optind]);
    if (!vae || !latent || !outp) return s_usage("decode: --vae FILE, --latent FILE and -o OUT.png are required", NULL);
    float *z = NULL;
    int C, h, w;
    if (s_read_latent(latent, &z, &C, &h, &w)) return 1;
    int rc = s_fail("%s: decoding needs the model networks, which this build lacks%s", vae, "");
    (void)C, (void)h, (void)w;
    free(z);
    return rc;
}
