/* lf_sysinfo: machine facts for READY. See lf_sysinfo.h. */
#include "lf_sysinfo.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "lf_error.h"

/* Value of the first line "key<spaces/tabs>: value" (key matched exactly). */
static const char *s_value(const char *text, const char *key, size_t *len) {
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol ? (size_t)(eol - line) : strlen(line);
        if (llen > klen && !strncmp(line, key, klen)) {
            const char *p = line + klen, *end = line + llen;
            while (p < end && (*p == ' ' || *p == '\t')) p++;
            if (p < end && *p == ':') {
                p++;
                while (p < end && isspace((unsigned char)*p)) p++;
                while (end > p && isspace((unsigned char)end[-1])) end--;
                *len = (size_t)(end - p);
                return p;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return NULL;
}

int lf_sysinfo_cpu_name(const char *cpuinfo, char *out, size_t n) {
    if (!cpuinfo || !out || !n) return LF_EINVAL;
    static const char *const keys[] = {"model name", "Model", "Hardware", "cpu model"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t len = 0;
        const char *v = s_value(cpuinfo, keys[i], &len);
        if (v && len) {
            if (len >= n) len = n - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 0;
        }
    }
    return LF_ENOTFOUND;
}

uint64_t lf_sysinfo_mem_total(const char *meminfo) {
    size_t len = 0;
    const char *v = meminfo ? s_value(meminfo, "MemTotal", &len) : NULL;
    if (!v || !isdigit((unsigned char)*v)) return 0;
    char *end = NULL;
    unsigned long long kb = strtoull(v, &end, 10);
    while (end && *end == ' ') end++;
    if (!end || (strncmp(end, "kB", 2) && strncmp(end, "KB", 2))) return 0;
    return (uint64_t)kb * 1024u;
}

static char *s_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (buf) {
        /* /proc files report size 0: read what fits in 64 KiB (the first CPU
         * block and MemTotal come first). */
        len = fread(buf, 1, cap, f);
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

void lf_sysinfo_probe(lf_sysinfo_t *out) {
    memset(out, 0, sizeof *out);
    if (gethostname(out->host, sizeof out->host - 1) || !out->host[0])
        snprintf(out->host, sizeof out->host, "localhost");
    out->pid = (int32_t)getpid();
    char *text = s_slurp("/proc/cpuinfo");
    if (!text || lf_sysinfo_cpu_name(text, out->cpu_name, sizeof out->cpu_name))
        snprintf(out->cpu_name, sizeof out->cpu_name, "cpu");
    free(text);
    text = s_slurp("/proc/meminfo");
    out->memory_bytes = lf_sysinfo_mem_total(text);
    free(text);
    if (!out->memory_bytes) {
        struct sysinfo si;
        if (!sysinfo(&si)) out->memory_bytes = (uint64_t)si.totalram * si.mem_unit;
    }
}
