/* lf_vaefamily: a VAE's family from its channels and hints, and the fit
 * rule the gateway and the listings share (see the header). */
#include "lf_vaefamily.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive substring. */
static bool s_has(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; s && *s; s++)
        if (strncasecmp(s, needle, n) == 0) return true;
    return false;
}

/* "sdxl", "sd15" or NULL from a text that names a family. SDXL is looked for
 * first: its names contain SD1's words ("stable-diffusion-xl-v1"). */
static const char *s_named(const char *s)
{
    if (!s || !*s) return NULL;
    if (s_has(s, "xl")) return "sdxl";
    static const char *const sd1[] = {"sd15", "sd1.5", "sd1_5", "sd-1-5", "sd_1_5", "v1-5", "v1.5", "sd1x",
                                      "sd1.x", "stable-diffusion-v1", "ft-mse", "ft_mse", "ft-ema", "ft_ema"};
    for (size_t i = 0; i < sizeof sd1 / sizeof sd1[0]; i++)
        if (s_has(s, sd1[i])) return "sd15";
    return NULL;
}

const char *lf_vaefamily_guess(uint32_t latent, const char *name, const char *hint)
{
    if (latent == 16) return "flux";
    if (latent != 4 && latent != 0) return NULL;
    const char *h = s_named(hint);
    if (!h) h = s_named(name);
    /* Unknown channels (no decoder key this reader knows): a hint alone. */
    return h ? h : latent ? "sd" : NULL;
}

/* sd15 / sdxl / flux from a model kind ("sdxl-refiner" is sdxl), else NULL. */
static const char *s_base(const char *kind)
{
    if (!kind) return NULL;
    if (!strncmp(kind, "sdxl", 4)) return "sdxl";
    if (!strncmp(kind, "sd15", 4)) return "sd15";
    if (!strncmp(kind, "flux", 4)) return "flux";
    return NULL;
}

uint32_t lf_vaefamily_latent(const char *family)
{
    const char *b = s_base(family);
    if (b) return !strcmp(b, "flux") ? 16 : 4;
    return family && !strcmp(family, "sd") ? 4 : 0;
}

bool lf_vaefamily_fits(const char *vae_kind, uint32_t vae_latent, const char *model_kind)
{
    const char *m = s_base(model_kind);
    if (!m) return true;
    if (vae_latent && vae_latent != lf_vaefamily_latent(m)) return false;
    const char *v = s_base(vae_kind);
    if (v) return !strcmp(v, m);
    /* "sd": a 4-channel VAE of either SD family. */
    return !(vae_kind && !strcmp(vae_kind, "sd") && !strcmp(m, "flux"));
}
