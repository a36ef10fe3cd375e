/* lf_origin: a table tensor -> (file, tensor name), the files opened lazily
 * through lf_weights and their identity checked by stat. */
#include "lf_origin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lf_error.h"
#include "lf_weights.h"

typedef struct {
    char *path;
    struct stat sb;  /* at the load */
    lf_weights_t *w; /* open while reads go on; NULL when released */
} s_file_t;

typedef struct {
    const lf_tensor_t *t;
    size_t file;
    char *name;
} s_rec_t;

struct lf_origin {
    s_file_t *files;
    size_t n_files;
    s_rec_t *recs;
    size_t n_recs, cap_recs;
    /* The last read, whose pages go at the next one; conversion scratch. */
    const lf_weights_t *last_w;
    const lf_tensor_info_t *last_t;
    void *buf;
    size_t bufsize;
};

lf_origin_t *lf_origin_new(void) { return calloc(1, sizeof(lf_origin_t)); }

void lf_origin_destroy(lf_origin_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_origin_t *o = *self_p;
    lf_origin_release(o);
    for (size_t i = 0; i < o->n_files; i++) {
        lf_weights_destroy(&o->files[i].w);
        free(o->files[i].path);
    }
    for (size_t i = 0; i < o->n_recs; i++) free(o->recs[i].name);
    free(o->files), free(o->recs), free(o->buf), free(o);
    *self_p = NULL;
}

size_t lf_origin_count(const lf_origin_t *self) { return self ? self->n_recs : 0; }

int lf_origin_add(lf_origin_t *self, const lf_tensor_t *t, const char *path, const char *name) {
    if (!self || !t || !path || !name) return LF_EINVAL;
    size_t f = 0;
    while (f < self->n_files && strcmp(self->files[f].path, path) != 0) f++;
    if (f == self->n_files) {
        struct stat sb;
        if (stat(path, &sb) != 0) return LF_EIO;
        s_file_t *nf = realloc(self->files, (f + 1) * sizeof *nf);
        if (!nf) return LF_ENOMEM;
        self->files = nf;
        nf[f] = (s_file_t){.path = strdup(path), .sb = sb};
        if (!nf[f].path) return LF_ENOMEM;
        self->n_files++;
    }
    if (self->n_recs == self->cap_recs) {
        size_t cap = self->cap_recs ? 2 * self->cap_recs : 256;
        s_rec_t *r = realloc(self->recs, cap * sizeof *r);
        if (!r) return LF_ENOMEM;
        self->recs = r, self->cap_recs = cap;
    }
    char *n = strdup(name);
    if (!n) return LF_ENOMEM;
    self->recs[self->n_recs++] = (s_rec_t){.t = t, .file = f, .name = n};
    return 0;
}

static const s_rec_t *s_find(const lf_origin_t *self, const lf_tensor_t *t) {
    for (size_t i = self ? self->n_recs : 0; i-- > 0;)
        if (self->recs[i].t == t) return &self->recs[i];
    return NULL;
}

int lf_origin_has(const lf_origin_t *self, const lf_tensor_t *t) { return s_find(self, t) != NULL; }

/* Drops the pages of the previous read. */
static void s_drop_last(lf_origin_t *self) {
    if (self->last_w) lf_weights_drop_pages(self->last_w, self->last_t);
    self->last_w = NULL, self->last_t = NULL;
}

/* Opens file f, checking it is the one loaded. */
static int s_open(s_file_t *f, char *err, size_t errlen) {
    if (f->w) return 0;
    struct stat sb;
    if (stat(f->path, &sb) != 0 || sb.st_dev != f->sb.st_dev || sb.st_ino != f->sb.st_ino ||
        sb.st_size != f->sb.st_size || sb.st_mtim.tv_sec != f->sb.st_mtim.tv_sec ||
        sb.st_mtim.tv_nsec != f->sb.st_mtim.tv_nsec) {
        if (err && errlen)
            snprintf(err, errlen, "%s: the model's file is gone or changed since it was loaded",
                     f->path);
        return LF_EIO;
    }
    return lf_weights_open(&f->w, f->path, err, errlen);
}

int lf_origin_open(lf_origin_t *self, char *err, size_t errlen) {
    if (!self) return LF_EINVAL;
    for (size_t i = 0; i < self->n_files; i++) {
        int rc = s_open(&self->files[i], err, errlen);
        if (rc) return rc;
    }
    return 0;
}

int lf_origin_read(lf_origin_t *self, const lf_tensor_t *t, const void **bytes, char *err,
                   size_t errlen) {
    const s_rec_t *r = s_find(self, t);
    if (!r) return LF_ENOTFOUND;
    s_drop_last(self);
    s_file_t *f = &self->files[r->file];
    int rc = s_open(f, err, errlen);
    if (rc) return rc;
    const lf_tensor_info_t *ti = lf_weights_find(f->w, r->name);
    if (!ti || lf_tensorinfo_numel(ti) != lf_tensor_nelements(t)) {
        if (err && errlen)
            snprintf(err, errlen, "%s: tensor %s is not the one loaded", f->path, r->name);
        return LF_EFORMAT;
    }
    rc = lf_weights_bytes_as(ti, t->type, bytes, &self->buf, &self->bufsize);
    if (rc) return rc;
    self->last_w = f->w, self->last_t = ti;
    return 0;
}

void lf_origin_release(lf_origin_t *self) {
    if (!self) return;
    s_drop_last(self);
    free(self->buf);
    self->buf = NULL, self->bufsize = 0;
}
