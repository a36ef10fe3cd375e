/* lf_cpu_packstore: where the CPU backend's pre-packed weight copies live
 * (lf_backend_set_pack).
 *
 * LF_PACK_MEMORY: each copy is an anonymous mapping of its own (not the
 * heap: copies come and go by the gigabyte, and freed heap memory below
 * glibc's grown mmap threshold would stay in RSS). The copies stay resident
 * for the network's life.
 *
 * LF_PACK_FILE: each copy is a page-aligned range of one unlinked file in a
 * directory on disk, mapped shared. Like a mapped weight's own file pages,
 * its pages can be given back once its layer has run (MADV_DONTNEED:
 * lf__cpu_pack_drop) and are read again at the next use from the page
 * cache, or from the disk when the kernel needed the memory: so the copies
 * are reclaimable page cache, not anonymous memory the kernel could only
 * swap. The range's blocks are reserved (fallocate) before it is mapped, so
 * a full disk refuses the copy instead of faulting a write. A tmpfs
 * directory is refused: its pages are memory that cannot be reclaimed, and
 * giving them back would only hide them from RSS. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

static size_t s_page(void) {
    long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? (size_t)pg : 4096;
}

static size_t s_round(size_t bytes) {
    const size_t pg = s_page();
    return ((bytes ? bytes : 1) + pg - 1) & ~(pg - 1);
}

/* An unlinked file in dir, or -1: O_TMPFILE where the file system has it,
 * else a named file removed at once. */
static int s_open(const char *dir) {
    struct statfs fs;
    if (!dir || !*dir || statfs(dir, &fs) || fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) return -1;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/lf-packed-XXXXXX", dir) >= (int)sizeof path) return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) unlink(path);
    return fd;
}

void lf__cpu_pack_init(lf__cpu_pack_t *s, lf_pack_t mode) {
    *s = (lf__cpu_pack_t){.mode = mode, .fd = -1};
}

lf_pack_t lf__cpu_pack_set(lf__cpu_pack_t *s, lf_pack_t mode, const char *dir) {
    LF_ASSERT(s->live == 0); /* the caller dropped every copy first */
    if (s->fd >= 0) close(s->fd);
    s->fd = -1, s->end = 0;
    if (mode == LF_PACK_FILE && (s->fd = s_open(dir)) < 0) mode = LF_PACK_OFF;
    s->mode = mode;
    return mode;
}

void lf__cpu_pack_close(lf__cpu_pack_t *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

void *lf__cpu_pack_alloc(lf__cpu_pack_t *s, size_t bytes, int64_t *off) {
    const size_t len = s_round(bytes);
    *off = -1;
    if (s->mode == LF_PACK_MEMORY) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        s->live++;
        return p;
    }
    if (s->mode != LF_PACK_FILE || s->fd < 0) return NULL;
    /* Ranges are handed out at the end; freed ones become holes, and the
     * file starts again from empty once no copy is left. */
    if (fallocate(s->fd, 0, (off_t)s->end, (off_t)len)) return NULL;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, (off_t)s->end);
    if (p == MAP_FAILED) {
        (void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)s->end, (off_t)len);
        return NULL;
    }
    *off = s->end;
    s->end += (int64_t)len;
    s->live++;
    return p;
}

void lf__cpu_pack_free(lf__cpu_pack_t *s, void *p, size_t bytes, int64_t off) {
    if (!p) return;
    const size_t len = s_round(bytes);
    munmap(p, len);
    /* The range's blocks and page-cache pages go with it (dirty ones are
     * never written). */
    if (off >= 0 && s->fd >= 0)
        (void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    if (--s->live == 0 && s->fd >= 0 && ftruncate(s->fd, 0) == 0) s->end = 0;
}

size_t lf__cpu_pack_drop(const lf__cpu_pack_t *s, void *p, size_t bytes, int64_t off) {
    if (!p || off < 0 || s->fd < 0) return 0; /* anonymous copies cannot be read back */
    const size_t len = s_round(bytes);
    return madvise(p, len, MADV_DONTNEED) == 0 ? len : 0;
}
