/* lf_blobstore: the image store facade and the directory backend (see
 * lf_blobstore.h); the S3 backend is in lf_blobstore_s3.c. */
#include "lf_blobstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_blobstore_impl.h"
#include "lf_error.h"

struct lf_blobstore {
    const lf__blob_backend_t *be;
    void *st;
    char desc[512];
};

static void s_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool s_name_ok(const char *n) {
    size_t l = n ? strlen(n) : 0;
    if (!l || l > 200 || n[0] == '.') return false;
    for (size_t i = 0; i < l; i++) {
        char c = n[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------ directory backend */

typedef struct {
    char *dir;
} s_dir_t;

static int s_errno_code(int e) {
    return e == ENOENT ? LF_ENOTFOUND : (e == EACCES || e == EPERM || e == EROFS) ? LF_EAUTH : LF_EIO;
}

static int s_dir_put(void *vs, const char *name, const void *data, size_t len, const char *mime, char *err,
                     size_t errlen) {
    (void)mime;
    s_dir_t *s = vs;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)getpid();
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/.%s.%08x.tmp", s->dir, name, r);
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        s_err(err, errlen, "image store dir:%s: cannot write %s: %s", s->dir, name, strerror(e));
        return s_errno_code(e) == LF_ENOTFOUND ? LF_EIO : s_errno_code(e);
    }
    const uint8_t *p = data;
    size_t left = len;
    int e = 0;
    while (left && !e) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) e = w < 0 ? errno : ENOSPC;
        else p += w, left -= (size_t)w;
    }
    /* A rename after fdatasync: readers see the whole file or none. */
    if (!e && fdatasync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        s_err(err, errlen, "image store dir:%s: cannot write %s: %s", s->dir, name, strerror(e));
        return s_errno_code(e) == LF_ENOTFOUND ? LF_EIO : s_errno_code(e);
    }
    return 0;
}

static int s_dir_get(void *vs, const char *name, uint8_t **data, size_t *len, char *err, size_t errlen) {
    s_dir_t *s = vs;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    int e = fd < 0 ? errno : fstat(fd, &sb) != 0 ? errno : 0;
    uint8_t *buf = NULL;
    size_t got = 0;
    if (!e) {
        buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
        if (!buf) {
            close(fd);
            return LF_ENOMEM;
        }
        while (got < (size_t)sb.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                e = r < 0 ? errno : EIO;
                break;
            }
            got += (size_t)r;
        }
    }
    if (fd >= 0) close(fd);
    if (e) {
        free(buf);
        s_err(err, errlen, "image store dir:%s: cannot read %s: %s", s->dir, name, strerror(e));
        return s_errno_code(e);
    }
    *data = buf;
    *len = got;
    return 0;
}

static int s_dir_del(void *vs, const char *name, char *err, size_t errlen) {
    s_dir_t *s = vs;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    if (unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        s_err(err, errlen, "image store dir:%s: cannot delete %s: %s", s->dir, name, strerror(e));
        return s_errno_code(e);
    }
    return 0;
}

static int s_dir_check(void *vs, char *err, size_t errlen) {
    s_dir_t *s = vs;
    struct stat sb;
    errno = 0;
    if (stat(s->dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(s->dir, W_OK | X_OK) != 0) {
        int e = errno ? errno : ENOTDIR;
        s_err(err, errlen, "image store dir:%s: not a writable folder: %s", s->dir, strerror(e));
        return s_errno_code(e) == LF_ENOTFOUND ? LF_EIO : s_errno_code(e);
    }
    return 0;
}

static void s_dir_destroy(void *vs) {
    s_dir_t *s = vs;
    if (s) free(s->dir);
    free(s);
}

static const lf__blob_backend_t s_dir_backend = {
    .name = "dir", .put = s_dir_put, .get = s_dir_get, .del = s_dir_del, .check = s_dir_check,
    .destroy = s_dir_destroy};

/* mkdir -p */
static int s_mkdirs(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *c = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void *s_dir_new(const char *dir, char *desc, size_t desclen, char *err, size_t errlen) {
    size_t l = strlen(dir);
    while (l > 1 && dir[l - 1] == '/') l--;
    if (!l || dir[0] != '/' || l > 3000) {
        s_err(err, errlen, "image store dir:%s: the folder must be an absolute path", dir);
        return NULL;
    }
    s_dir_t *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strndup(dir, l))) {
        s_dir_destroy(s);
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    if (s_mkdirs(s->dir) != 0) {
        s_err(err, errlen, "image store dir:%s: cannot make the folder: %s", s->dir, strerror(errno));
        s_dir_destroy(s);
        return NULL;
    }
    snprintf(desc, desclen, "dir:%s", s->dir);
    return s;
}

/* ------------------------------------------------------------- facade */

bool lf_blobstore_spec_is_redis(const char *spec) { return !spec || !*spec || !strcmp(spec, "redis"); }

lf_blobstore_t *lf_blobstore_new(const lf_blobstore_opts_t *o, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!o || lf_blobstore_spec_is_redis(o->spec)) {
        s_err(err, errlen, "image store: no external store in \"%s\" (redis keeps the images)",
              o && o->spec ? o->spec : "");
        return NULL;
    }
    lf_blobstore_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    if (!strncmp(o->spec, "dir:", 4)) {
        self->be = &s_dir_backend;
        self->st = s_dir_new(o->spec + 4, self->desc, sizeof self->desc, err, errlen);
    } else if (!strncmp(o->spec, "s3://", 5)) {
        /* s3://bucket[/prefix] */
        const char *b = o->spec + 5, *slash = strchr(b, '/');
        size_t bl = slash ? (size_t)(slash - b) : strlen(b);
        char bucket[64];
        if (bl < 3 || bl >= sizeof bucket) {
            s_err(err, errlen, "image store %s: the bucket name must be 3 to 63 characters", o->spec);
        } else {
            memcpy(bucket, b, bl);
            bucket[bl] = '\0';
            self->be = &lf__blob_s3;
            self->st = lf__blob_s3_new(bucket, slash ? slash + 1 : "", o, self->desc, sizeof self->desc,
                                       err, errlen);
        }
    } else {
        s_err(err, errlen, "image store \"%s\": expected redis, dir:/path or s3://bucket/prefix", o->spec);
    }
    if (!self->st) {
        free(self);
        return NULL;
    }
    return self;
}

void lf_blobstore_destroy(lf_blobstore_t **self_p) {
    if (!self_p || !*self_p) return;
    (*self_p)->be->destroy((*self_p)->st);
    free(*self_p);
    *self_p = NULL;
}

const char *lf_blobstore_describe(const lf_blobstore_t *self) { return self ? self->desc : ""; }

#define S_CHECK_NAME(name)                                                                       \
    do {                                                                                         \
        if (!s_name_ok(name)) {                                                                  \
            s_err(err, errlen, "image store %s: bad object name \"%s\"", self->desc, name ? name : ""); \
            return LF_EINVAL;                                                                    \
        }                                                                                        \
    } while (0)

int lf_blobstore_put(lf_blobstore_t *self, const char *name, const void *data, size_t len,
                     const char *mime, char *err, size_t errlen) {
    if (!self || (len && !data)) return LF_EINVAL;
    S_CHECK_NAME(name);
    return self->be->put(self->st, name, data, len, mime ? mime : "application/octet-stream", err, errlen);
}

int lf_blobstore_get(lf_blobstore_t *self, const char *name, uint8_t **data, size_t *len, char *err,
                     size_t errlen) {
    if (!self || !data || !len) return LF_EINVAL;
    S_CHECK_NAME(name);
    return self->be->get(self->st, name, data, len, err, errlen);
}

int lf_blobstore_del(lf_blobstore_t *self, const char *name, char *err, size_t errlen) {
    if (!self) return LF_EINVAL;
    S_CHECK_NAME(name);
    return self->be->del(self->st, name, err, errlen);
}

int lf_blobstore_check(lf_blobstore_t *self, char *err, size_t errlen) {
    if (!self) return LF_EINVAL;
    return self->be->check(self->st, err, errlen);
}
