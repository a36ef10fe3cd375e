/* Helpers shared by the engine tests: locating reference data and fixtures. */
#ifndef LF_TEST_UTIL_H
#define LF_TEST_UTIL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes "<refdata>/<rel>" into buf and returns buf, or NULL (after printing
 * a skip message) when the reference data folder or file is absent. */
static inline const char *lf_test_refdata(char *buf, size_t len, const char *rel)
{
    const char *dir = getenv("LF_REFDATA_DIR");
    if (!dir || !*dir) dir = LF_REFDATA_DIR;
    snprintf(buf, len, "%s/%s", dir, rel);
    struct stat sb;
    if (stat(buf, &sb) != 0) {
        printf("SKIP: reference data %s absent\n", buf);
        return NULL;
    }
    return buf;
}

static inline const char *lf_test_fixture(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", LF_FIXTURE_DIR, rel);
    return buf;
}

/* A new empty file /tmp/<prefix>_XXXXXX; its name in path. 0, or -1. */
static inline int lf_test_tmpfile(char *path, size_t len, const char *prefix)
{
    snprintf(path, len, "/tmp/%s_XXXXXX", prefix);
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* The bytes of path (NUL-terminated, not counted in *len), malloc'd; NULL
 * when it cannot be read. */
static inline unsigned char *lf_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
        fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0, *len = (size_t)n;
    return b;
}

/* The resident KiB of this process's writable private mappings of the file
 * at path (/proc/self/smaps "rw-p" areas: a pool's copy-on-write weights,
 * lf_pool_tensor_mapped; read-only mappings of the same file are not
 * counted); -1 when smaps cannot be read. */
static inline long lf_test_mapped_rss_kb(const char *path)
{
    char real[PATH_MAX], line[PATH_MAX + 256];
    if (!realpath(path, real)) return -1;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    long kb = 0;
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8] = "";
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
            char *nl = strchr(line, '\n'), *at = strchr(line, '/');
            if (nl) *nl = '\0';
            in = !strcmp(perms, "rw-p") && at && !strcmp(at, real);
        } else if (in && !strncmp(line, "Rss:", 4)) {
            kb += atol(line + 4);
        }
    }
    fclose(f);
    return kb;
}

#endif
