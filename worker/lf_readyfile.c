/* lf_readyfile: readiness as an atomically replaced file. See lf_readyfile.h. */
#include "lf_readyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_log.h"

struct lf_readyfile {
    char *path;
    char *tmp;   /* path + ".tmp": same folder, so rename is atomic */
    bool ready;  /* the file was last written, not removed */
    bool failing; /* the last write failed and was logged */
};

lf_readyfile_t *lf_readyfile_new(const char *path) {
    if (!path || !*path) return NULL;
    lf_readyfile_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    size_t n = strlen(path);
    self->path = strdup(path);
    self->tmp = malloc(n + 5);
    if (!self->path || !self->tmp) {
        lf_readyfile_destroy(&self);
        return NULL;
    }
    memcpy(self->tmp, path, n);
    memcpy(self->tmp + n, ".tmp", 5);
    /* The folder must exist and be writable now: finding out at the first
     * write would leave a worker that runs but can never be ready. */
    char *dir = strdup(path);
    if (!dir) {
        lf_readyfile_destroy(&self);
        return NULL;
    }
    char *slash = strrchr(dir, '/');
    const char *folder = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    if (access(folder, W_OK | X_OK)) {
        lf_error("ready file %s (LF_WORKER_READY_FILE): folder %s is not writable: %s", path,
                 folder, strerror(errno));
        free(dir);
        lf_readyfile_destroy(&self);
        return NULL;
    }
    free(dir);
    /* A file left by an earlier run of this worker says nothing about this one. */
    unlink(self->path);
    unlink(self->tmp);
    return self;
}

void lf_readyfile_destroy(lf_readyfile_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_readyfile_t *self = *self_p;
    if (self->path) unlink(self->path);
    if (self->tmp) unlink(self->tmp);
    free(self->path);
    free(self->tmp);
    free(self);
    *self_p = NULL;
}

static int s_write(lf_readyfile_t *self, const char *text) {
    FILE *f = fopen(self->tmp, "w");
    if (!f) return LF_EIO;
    bool ok = fprintf(f, "%s\n", text) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(self->tmp, self->path)) {
        int e = errno; /* for the caller's message, past the clean-up */
        unlink(self->tmp);
        errno = e;
        return LF_EIO;
    }
    return 0;
}

int lf_readyfile_set(lf_readyfile_t *self, const char *text) {
    if (!text) {
        if (self->ready) lf_info("not ready: ready file %s removed", self->path);
        self->ready = false;
        if (unlink(self->path) && errno != ENOENT) return LF_EIO;
        return 0;
    }
    if (s_write(self, text)) {
        if (!self->failing)
            lf_error("cannot write the ready file %s: %s", self->path, strerror(errno));
        self->failing = true;
        unlink(self->path);
        self->ready = false;
        return LF_EIO;
    }
    if (!self->ready) lf_info("ready: wrote %s", self->path);
    self->ready = true;
    self->failing = false;
    return 0;
}

bool lf_readyfile_ready(const lf_readyfile_t *self) { return self->ready; }
