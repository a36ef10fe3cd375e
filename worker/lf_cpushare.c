/* lf_cpushare: a worker's slice of the machine's cores. See lf_cpushare.h. */
#include "lf_cpushare.h"

#include <dirent.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_error.h"

int lf_cpushare_split(int cores, int workers, int index, lf_cpushare_t *out) {
    if (!out || cores < 1 || workers < 1 || index < 0 || index >= workers) return LF_EINVAL;
    if (workers >= cores) {
        out->first = index % cores, out->count = 1;
        return 0;
    }
    int base = cores / workers, extra = cores % workers;
    out->count = base + (index < extra);
    out->first = index * base + (index < extra ? index : extra);
    return 0;
}

int lf_cpushare_threads(const lf_cpushare_t *share, int threads) {
    return threads > 0 ? threads : share->count;
}

int lf_cpushare_quota_cores(const char *cpu_max) {
    if (!cpu_max) return 0;
    char *end;
    long long quota = strtoll(cpu_max, &end, 10);
    if (end == cpu_max || quota <= 0) return 0; /* "max", -1, or not a number */
    long long period = strtoll(end, &end, 10);
    if (period <= 0) return 0;
    long long n = quota / period;
    return n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
}

/* The first line of a small file into buf; false when it cannot be read. */
static bool s_read_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    return ok;
}

/* The quota of directory dir: v2's cpu.max, else v1's two files. */
static int s_dir_quota(const char *dir, bool v2) {
    char path[PATH_MAX], a[64], b[64], both[130];
    if (v2) {
        if (snprintf(path, sizeof path, "%s/cpu.max", dir) >= (int)sizeof path) return 0;
        return s_read_line(path, a, sizeof a) ? lf_cpushare_quota_cores(a) : 0;
    }
    if (snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir) >= (int)sizeof path) return 0;
    if (!s_read_line(path, a, sizeof a)) return 0;
    if (snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir) >= (int)sizeof path) return 0;
    if (!s_read_line(path, b, sizeof b)) return 0;
    a[strcspn(a, "\n")] = 0;
    snprintf(both, sizeof both, "%s %s", a, b);
    return lf_cpushare_quota_cores(both);
}

int lf_cpushare_cgroup_cores(const char *root, const char *self_cgroup) {
    if (!root || !self_cgroup) return 0;
    /* The line naming our cgroup: v1's "N:...cpu...:/path" (the cpu
     * controller is there when such a line exists), else v2's "0::/path". */
    char rel[PATH_MAX] = "", base[PATH_MAX];
    bool v2 = false, v1 = false;
    for (const char *line = self_cgroup; *line && !v1;) {
        const char *nl = strchr(line, '\n'), *eol = nl ? nl : line + strlen(line);
        const char *c1 = memchr(line, ':', (size_t)(eol - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        const char *start = line;
        line = nl ? nl + 1 : eol;
        if (!c2 || (size_t)(eol - c2 - 1) >= sizeof rel) continue;
        bool is_v2 = c1 - start == 1 && start[0] == '0' && c2 == c1 + 1;
        bool is_cpu = false;
        for (const char *t = c1 + 1; t < c2;) {
            const char *comma = memchr(t, ',', (size_t)(c2 - t)), *te = comma ? comma : c2;
            if (te - t == 3 && !memcmp(t, "cpu", 3)) is_cpu = true;
            t = te + 1;
        }
        if (!is_cpu && !is_v2) continue;
        memcpy(rel, c2 + 1, (size_t)(eol - c2 - 1));
        rel[eol - c2 - 1] = 0;
        v1 = is_cpu, v2 = is_v2;
    }
    if (!*rel) return 0;
    if (snprintf(base, sizeof base, v2 ? "%s" : "%s/cpu", root) >= (int)sizeof base) return 0;
    /* From our cgroup up to the root: each level's quota binds. A cgroup
     * namespace shows "/" for ours, so the root's files are ours then. */
    char dir[PATH_MAX];
    int best = 0;
    for (size_t len = strlen(rel);;) {
        while (len > 1 && rel[len - 1] == '/') len--;
        int q = snprintf(dir, sizeof dir, "%s%.*s", base, (int)(len == 1 ? 0 : len), rel) < (int)sizeof dir
                    ? s_dir_quota(dir, v2)
                    : 0;
        if (q && (!best || q < best)) best = q;
        if (len <= 1) break;
        while (len > 1 && rel[len - 1] != '/') len--;
    }
    return best;
}

int lf_cpushare_cores(void) {
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) ? 1 : CPU_COUNT(&set);
    if (n < 1) n = 1;
    char text[4096] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        size_t got = fread(text, 1, sizeof text - 1, f);
        text[got] = 0;
        fclose(f);
    }
    int quota = lf_cpushare_cgroup_cores("/sys/fs/cgroup", text);
    return quota && quota < n ? quota : n;
}

char *lf_cpushare_list(const lf_cpushare_t *share, char *out, size_t size) {
    if (!size) return out;
    out[0] = 0;
    cpu_set_t all;
    if (sched_getaffinity(0, sizeof all, &all)) return out;
    int cpus[CPU_SETSIZE], n = 0;
    for (int cpu = 0, pos = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &all)) continue;
        if (pos >= share->first && pos < share->first + share->count) cpus[n++] = cpu;
        pos++;
    }
    size_t len = 0;
    for (int i = 0, j; i < n && len < size; i = j) {
        for (j = i + 1; j < n && cpus[j] == cpus[j - 1] + 1;) j++;
        int w = j - i > 1 ? snprintf(out + len, size - len, "%s%d-%d", i ? "," : "", cpus[i], cpus[j - 1])
                          : snprintf(out + len, size - len, "%s%d", i ? "," : "", cpus[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    return out;
}

int lf_cpushare_pin(const lf_cpushare_t *share) {
    cpu_set_t all, mine;
    if (sched_getaffinity(0, sizeof all, &all)) return LF_EIO;
    CPU_ZERO(&mine);
    for (int cpu = 0, pos = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &all)) continue;
        if (pos >= share->first && pos < share->first + share->count) CPU_SET(cpu, &mine);
        pos++;
    }
    if (!CPU_COUNT(&mine)) return LF_EINVAL;
    /* Every thread: OpenBLAS starts its own before main. */
    DIR *d = opendir("/proc/self/task");
    if (!d) return sched_setaffinity(0, sizeof mine, &mine) ? LF_EIO : 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid > 0 && sched_setaffinity(tid, sizeof mine, &mine)) rc = LF_EIO;
    }
    closedir(d);
    return rc;
}
