/* lf_taesd: TAESD decoder graph. */
#include "lf_taesd.h"

#include <stdio.h>
#include <stdlib.h>

#include "lf_error.h"

struct lf_taesd {
    int latent_ch;
};

int lf_taesd_new(lf_taesd_t **out, const char *path, lf_backend_t *be, lf_pool_t *pool, char *err,
                 size_t errlen) {
    (void)out, (void)be, (void)pool;
    if (errlen) snprintf(err, errlen, "%s: TAESD previews not implemented yet", path);
    return LF_EUNSUPPORTED;
}

void lf_taesd_destroy(lf_taesd_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

int lf_taesd_latent_channels(const lf_taesd_t *self) { return self->latent_ch; }
int lf_taesd_scale(const lf_taesd_t *self) { (void)self; return 8; }

int lf_taesd_decode(lf_taesd_t *self, const float *z, int h, int w, float *rgb) {
    (void)self, (void)z, (void)h, (void)w, (void)rgb;
    return LF_EUNSUPPORTED;
}
