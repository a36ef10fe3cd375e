/* lf_log: see lf_log.h. */
#include "lf_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The allowed process-wide state: the component tag and the level. */
static char s_component[32] = "lightfarm";
static lf_log_level_t s_level = LF_LOG_INFO;

void lf_log_init(const char *component, lf_log_level_t level) {
    if (component) snprintf(s_component, sizeof s_component, "%s", component);
    s_level = level;
}

lf_log_level_t lf_log_level_parse(const char *s) {
    if (!s) return LF_LOG_INFO;
    if (!strcasecmp(s, "debug")) return LF_LOG_DEBUG;
    if (!strcasecmp(s, "warn")) return LF_LOG_WARN;
    if (!strcasecmp(s, "error")) return LF_LOG_ERROR;
    return LF_LOG_INFO;
}

void lf_log(lf_log_level_t level, const char *fmt, ...) {
    if (level < s_level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    static const char tags[] = "DIWE";
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %c %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            s_component, tags[level], msg);
}
