/* lf_upscaler_set: named upscaler models with one resident (see the
 * header). */
#include "lf_upscaler_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_pool.h"
#include "lf_upscaler.h"

#define S_TILE 192
#define S_OVERLAP 32
#define S_MAX_DIRS 8

struct lf_upscaler_set {
    char *dirs;
    lf_backend_t *be, *own_be;
    int n_threads;
    lf_upscaler_entry_t *entries; /* the last scan */
    size_t n_entries;
    lf_pool_t *pool;
    lf_upscaler_t *model;
    char *model_name;
};

lf_upscaler_set_t *lf_upscaler_set_new(const char *dirs, lf_backend_t *be, int n_threads)
{
    lf_upscaler_set_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (dirs && !(s->dirs = strdup(dirs))) {
        free(s);
        return NULL;
    }
    s->be = be;
    s->n_threads = n_threads;
    return s;
}

static void s_unload(lf_upscaler_set_t *s)
{
    lf_upscaler_destroy(&s->model);
    lf_pool_destroy(&s->pool);
    free(s->model_name);
    s->model_name = NULL;
}

void lf_upscaler_set_destroy(lf_upscaler_set_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_upscaler_set_t *s = *self_p;
    s_unload(s);
    lf_upscaler_entries_free(s->entries, s->n_entries);
    lf_backend_destroy(&s->own_be);
    free(s->dirs);
    free(s);
    *self_p = NULL;
}

static int s_scan(lf_upscaler_set_t *s)
{
    char *copy = s->dirs ? strdup(s->dirs) : NULL;
    if (s->dirs && !copy) return LF_ENOMEM;
    const char *dirs[S_MAX_DIRS];
    size_t n = 0;
    for (char *save = NULL, *t = copy ? strtok_r(copy, ":", &save) : NULL; t && n < S_MAX_DIRS;
         t = strtok_r(NULL, ":", &save))
        dirs[n++] = t;
    lf_upscaler_entry_t *e = NULL;
    size_t ne = 0;
    int rc = lf_upscaler_scan(dirs, n, &e, &ne, NULL, NULL);
    free(copy);
    if (rc) return rc;
    lf_upscaler_entries_free(s->entries, s->n_entries);
    s->entries = e;
    s->n_entries = ne;
    return 0;
}

static const lf_upscaler_entry_t *s_find(const lf_upscaler_set_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_entries; i++)
        if (!strcmp(s->entries[i].name, name)) return &s->entries[i];
    return NULL;
}

int lf_upscaler_set_use(lf_upscaler_set_t *s, const char *name, char *err, size_t errlen)
{
    if (!s || !name) return LF_EINVAL;
    if (s->model && !strcmp(s->model_name, name)) return 0;
    const lf_upscaler_entry_t *e = s_find(s, name);
    int rc = 0;
    if (!e && (rc = s_scan(s)) != 0) return rc;
    if (!e && !(e = s_find(s, name))) {
        if (err && errlen) snprintf(err, errlen, "no upscaler named '%s' in %s", name, s->dirs ? s->dirs : "(no folders)");
        return LF_ENOTFOUND;
    }
    if (!s->be && !s->own_be && !(s->own_be = lf_backend_cpu_new(s->n_threads))) return LF_ENOMEM;
    lf_backend_t *be = s->be ? s->be : s->own_be;
    s_unload(s);
    char *nm = strdup(name);
    lf_pool_t *pool = nm ? lf_pool_new(be, 0) : NULL;
    lf_upscaler_t *m = NULL;
    rc = pool ? lf_upscaler_new(&m, e->path, be, pool, 0 /* f32 */, err, errlen) : LF_ENOMEM;
    if (rc) {
        lf_pool_destroy(&pool);
        free(nm);
        return rc;
    }
    s->pool = pool;
    s->model = m;
    s->model_name = nm;
    return 0;
}

int lf_upscaler_set_scale(const lf_upscaler_set_t *s)
{
    return s && s->model ? lf_upscaler_info(s->model)->scale : 0;
}

int lf_upscaler_set_run_rgb8(void *self, const uint8_t *src, int sw, int sh, uint8_t **dst, int *dw, int *dh)
{
    lf_upscaler_set_t *s = self;
    if (!s || !s->model) return LF_ESTATE;
    const int k = lf_upscaler_info(s->model)->scale;
    uint8_t *out = malloc((size_t)sw * k * (size_t)sh * k * 3);
    if (!out) return LF_ENOMEM;
    int rc = lf_upscaler_upscale_rgb8(s->model, src, sw, sh, S_TILE, S_OVERLAP, 1, out, NULL, NULL);
    if (rc) {
        free(out);
        return rc;
    }
    *dst = out;
    *dw = sw * k;
    *dh = sh * k;
    return 0;
}
