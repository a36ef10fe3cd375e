/* lf_lora_dir: walks LoRA folders (see the header). */
#include "lf_lora_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lf_error.h"
#include "lf_log.h"
#include "lf_safetensors.h"
#include "lf_sha256.h"

#define S_MAX_DEPTH 8

typedef struct {
    lf_lora_file_t *v;
    size_t n, cap;
} s_list_t;

static const char *s_ext(const char *file)
{
    static const char *const exts[] = {".safetensors", ".pt", ".ckpt"};
    size_t n = strlen(file);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        size_t m = strlen(exts[i]);
        if (n > m && strcasecmp(file + n - m, exts[i]) == 0) return file + n - m;
    }
    return NULL;
}

static int s_cmp_name(const void *a, const void *b)
{
    return strcmp(((const lf_lora_file_t *)a)->name, ((const lf_lora_file_t *)b)->name);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *s_alias(const char *path, const char *name)
{
    lf_safetensors_t *st = NULL;
    char err[256];
    const char *a = NULL;
    if (strcasecmp(s_ext(path), ".safetensors") == 0 &&
        lf_safetensors_open(&st, path, err, sizeof err) == 0)
        a = lf_safetensors_metadata(st, "ss_output_name");
    char *r = strdup(a && *a ? a : name);
    lf_safetensors_destroy(&st);
    return r;
}

/* Adds the files under root/rel (rel "" for the root), depth-first in name
 * order. */
static int s_walk(s_list_t *l, const char *root, const char *rel, int depth)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(names, cap * sizeof *nv);
            if (!nv) rc = LF_ENOMEM;
            else names = nv;
        }
        if (!rc && !(names[nn++] = strdup(de->d_name))) rc = LF_ENOMEM;
    }
    closedir(d);
    if (!rc && nn) qsort(names, nn, sizeof *names, s_cmp_str);
    for (size_t i = 0; i < nn && !rc; i++) {
        char sub[4096], path[8192];
        int k = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        if (k < 0 || (size_t)k >= sizeof sub) continue;
        snprintf(path, sizeof path, "%s/%s", root, sub);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth < S_MAX_DEPTH) rc = s_walk(l, root, sub, depth + 1);
            continue;
        }
        const char *ext = s_ext(names[i]);
        if (!S_ISREG(sb.st_mode) || !ext) continue;
        if (l->n == l->cap) {
            size_t nc = l->cap ? l->cap * 2 : 16;
            lf_lora_file_t *nv = realloc(l->v, nc * sizeof *nv);
            if (!nv) {
                rc = LF_ENOMEM;
                break;
            }
            l->v = nv, l->cap = nc;
        }
        lf_lora_file_t *f = &l->v[l->n];
        memset(f, 0, sizeof *f);
        f->name = strndup(names[i], (size_t)(ext - names[i]));
        f->rel = strdup(sub);
        f->path = strdup(path);
        f->alias = f->name ? s_alias(path, f->name) : NULL;
        f->size = (int64_t)sb.st_size;
        f->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        l->n++;
        if (!f->name || !f->rel || !f->path || !f->alias) rc = LF_ENOMEM;
    }
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    return rc;
}

void lf_lora_dir_free(lf_lora_file_t **files, size_t n)
{
    if (!files || !*files) return;
    for (size_t i = 0; i < n; i++) {
        free((*files)[i].name), free((*files)[i].alias), free((*files)[i].rel),
            free((*files)[i].path);
    }
    free(*files);
    *files = NULL;
}

int lf_lora_dir_scan(const char *const *roots, size_t n_roots, int with_hash,
                     lf_lora_file_t **out, size_t *n)
{
    s_list_t l = {0};
    int rc = 0;
    for (size_t r = 0; r < n_roots && !rc; r++) {
        size_t before = l.n;
        rc = s_walk(&l, roots[r], "", 0);
        /* The same folder under two spellings (models/lora and models/Lora on
         * a case-insensitive file system) is one folder. */
        for (size_t i = before; !rc && i < l.n; i++) {
            struct stat a;
            if (stat(l.v[i].path, &a) != 0) continue;
            for (size_t j = 0; j < before; j++) {
                struct stat b;
                if (stat(l.v[j].path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
                    free(l.v[i].name), free(l.v[i].alias), free(l.v[i].rel), free(l.v[i].path);
                    l.v[i--] = l.v[--l.n];
                    break;
                }
            }
        }
    }
    /* One file per name: the first found wins (stable over roots/paths). */
    for (size_t i = 0; !rc && i < l.n; i++)
        for (size_t j = i + 1; j < l.n; j++)
            if (strcmp(l.v[i].name, l.v[j].name) == 0) {
                lf_warn("lora: skipping %s: %s already gives the name '%s'", l.v[j].path,
                        l.v[i].path, l.v[i].name);
                free(l.v[j].name), free(l.v[j].alias), free(l.v[j].rel), free(l.v[j].path);
                memmove(&l.v[j], &l.v[j + 1], (l.n - j - 1) * sizeof *l.v);
                l.n--, j--;
            }
    for (size_t i = 0; !rc && with_hash && i < l.n; i++) {
        char err[512];
        if (lf_lora_dir_hash(&l.v[i], err, sizeof err) != 0) lf_warn("lora: no hash: %s", err);
    }
    if (rc) {
        lf_lora_dir_free(&l.v, l.n);
        return rc;
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, s_cmp_name);
    *out = l.v;
    *n = l.n;
    return 0;
}

const lf_lora_file_t *lf_lora_dir_find(const lf_lora_file_t *files, size_t n, const char *name)
{
    if (!name || !*name) return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i].name, name) == 0) return &files[i];
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i].alias, name) == 0) return &files[i];
    size_t ln = strlen(name);
    for (size_t i = 0; i < n; i++) {
        const char *ext = s_ext(files[i].rel);
        if (ext && (size_t)(ext - files[i].rel) == ln && strncmp(files[i].rel, name, ln) == 0)
            return &files[i];
    }
    return NULL;
}

int lf_lora_dir_hash(lf_lora_file_t *f, char *err, size_t errlen)
{
    if (f->hash[0]) return 0;
    return lf_sha256_file(f->path, strcasecmp(s_ext(f->path), ".safetensors") == 0, f->hash, err,
                          errlen);
}
