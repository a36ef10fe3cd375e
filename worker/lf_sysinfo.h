/* lf_sysinfo: what a worker tells the brokers about its machine — host name,
 * pid, CPU model name, memory size.
 *
 * The parsers take the text of /proc files so tests feed them strings; only
 * lf_sysinfo_probe() reads the system. Thread-safe; no state. */
#ifndef LF_SYSINFO_H
#define LF_SYSINFO_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char host[256];
    int32_t pid;
    char cpu_name[256];    /* "model name" of /proc/cpuinfo, or "cpu" */
    uint64_t memory_bytes; /* MemTotal, or sysinfo() total RAM */
} lf_sysinfo_t;

/* First "model name" (or "Model"/"Hardware" on ARM) value of a
 * /proc/cpuinfo text into out (NUL-terminated, truncated to n). LF_ENOTFOUND
 * when absent; LF_EINVAL on NULL/zero-size. */
int lf_sysinfo_cpu_name(const char *cpuinfo, char *out, size_t n);

/* MemTotal of a /proc/meminfo text, in bytes; 0 when absent or malformed. */
uint64_t lf_sysinfo_mem_total(const char *meminfo);

/* Fill *out from the running system; never fails (falls back to
 * "localhost", "cpu", sysinfo()). */
void lf_sysinfo_probe(lf_sysinfo_t *out);

#endif
