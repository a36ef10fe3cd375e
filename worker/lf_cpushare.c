/* lf_cpushare: a worker's slice of the machine's cores. See lf_cpushare.h. */
#include "lf_cpushare.h"

#include <dirent.h>
#include <sched.h>
#include <stdlib.h>
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

int lf_cpushare_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set)) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
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
