/* replay_main: runs a libFuzzer target without libFuzzer.
 *
 * Usage: <replay> PATH...   (files, or folders whose regular files are read)
 * Each input is given to LLVMFuzzerTestOneInput in an exact-size heap copy
 * (so ASan sees any over-read), then every prefix of it (up to 4 KiB), then
 * 64 deterministic byte mutations. Exits 0 when all ran; a bug in the target
 * aborts. Shared by every fuzz target's *_replay ctest. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t s_runs;

static void s_one(const uint8_t *src, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    if (!p) abort();
    if (n) memcpy(p, src, n);
    LLVMFuzzerTestOneInput(p, n);
    free(p);
    s_runs++;
}

static void s_input(const uint8_t *d, size_t n) {
    s_one(d, n);
    size_t max_cut = n < 4096 ? n : 4096;
    for (size_t cut = 0; cut < max_cut; cut++) s_one(d, cut);
    if (!n) return;
    uint8_t *m = malloc(n);
    if (!m) abort();
    uint64_t x = 0x2545f4914f6cdd1dull ^ n;
    for (int i = 0; i < 64; i++) {
        memcpy(m, d, n);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t at = (size_t)(x % n);
        static const uint8_t interesting[] = {0x00, 0xff, 0x7f, 0x80, 0xc0, 0xc1, 0xdb, 0xdd, 0xdf};
        m[at] = (i & 1) ? interesting[(x >> 32) % sizeof interesting] : (uint8_t)(m[at] ^ (1u << (i % 8)));
        s_one(m, n);
    }
    free(m);
}

static int s_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) abort();
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    s_input(buf, len);
    free(buf);
    return 0;
}

static int s_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_path(const char *path, int *files) {
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*files)++;
        return s_file(path);
    }
    DIR *dir = opendir(path);
    if (!dir) {
        perror(path);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (!names || asprintf(&names[n], "%s/%s", path, e->d_name) < 0) abort();
        n++;
    }
    closedir(dir);
    qsort(names, n, sizeof *names, s_cmp); /* a stable order for reproducible runs */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fs;
        if (stat(names[i], &fs) == 0 && S_ISREG(fs.st_mode)) {
            (*files)++;
            rc |= s_file(names[i]);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    int rc = 0, files = 0;
    for (int i = 1; i < argc; i++) rc |= s_path(argv[i], &files);
    printf("%s: %d inputs, %zu runs\n", argv[0], files, s_runs);
    if (files == 0) {
        fprintf(stderr, "no inputs found\n");
        return 1;
    }
    return rc;
}
