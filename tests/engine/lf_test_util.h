/* Helpers shared by the engine tests: locating reference data and fixtures. */
#ifndef LF_TEST_UTIL_H
#define LF_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
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

#endif
