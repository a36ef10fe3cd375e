/* lf_bench_util: what every benchmark in bench/ measures with — a monotonic
 * clock and this process's memory figures from /proc/self/status. Header
 * only; each bench is one translation unit. */
#ifndef LF_BENCH_UTIL_H
#define LF_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double lf_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A "Field:   N kB" line of /proc/self/status (VmRSS, VmHWM), or -1. */
static inline long lf_bench_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS, so a later VmHWM is the peak of what ran
 * in between. 0 on success. */
static inline int lf_bench_reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
