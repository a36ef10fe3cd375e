/* lf_log: leveled logging to stderr (or a sink set once at start-up).
 *
 * Lines look like "2026-11-23T12:00:00.123Z broker I message". The sink and
 * level are the one piece of process-wide state the style allows; set them
 * before starting threads. Logging itself is thread-safe (one fprintf/line). */
#ifndef LF_LOG_H
#define LF_LOG_H

#include <stdarg.h>

typedef enum { LF_LOG_DEBUG = 0, LF_LOG_INFO, LF_LOG_WARN, LF_LOG_ERROR } lf_log_level_t;

/* Component tag shown on each line ("broker", "worker-3", ...); copied. */
void lf_log_init(const char *component, lf_log_level_t level);
/* Parses "debug"/"info"/"warn"/"error"; returns LF_LOG_INFO for NULL/unknown. */
lf_log_level_t lf_log_level_parse(const char *s);
void lf_log(lf_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lf_debug(...) lf_log(LF_LOG_DEBUG, __VA_ARGS__)
#define lf_info(...) lf_log(LF_LOG_INFO, __VA_ARGS__)
#define lf_warn(...) lf_log(LF_LOG_WARN, __VA_ARGS__)
#define lf_error(...) lf_log(LF_LOG_ERROR, __VA_ARGS__)

#endif
