/* lightfarm-worker: settings from the environment and --flags, signals, and
 * the worker's main loop (lf_worker.h). Each setting is an LF_* variable and
 * the matching --flag; a flag wins over the variable. */
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_diagnostic.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_worker.h"

/* The one signal flag the house rules allow: how many SIGTERM/SIGINT came. */
static volatile sig_atomic_t s_signals;

static void s_on_signal(int sig) {
    (void)sig;
    if (s_signals < 100) s_signals++;
}

typedef enum {
    O_BACKEND,
    O_ID,
    O_DEVICE,
    O_MAX_PIXELS,
    O_MODELS_DIR,
    O_HB_MS,
    O_HB_LIVENESS,
    O_RECONNECT_MIN,
    O_RECONNECT_MAX,
    O_DRAIN_MS,
    O_LOG_LEVEL,
    O__COUNT
} s_opt_t;

static const struct {
    const char *flag, *env, *def, *help;
} s_opts[O__COUNT] = {
    [O_BACKEND] = {"broker-backend", "LF_BROKER_BACKEND", "tcp://127.0.0.1:5556",
                   "broker endpoint(s) for workers, comma-separated"},
    [O_ID] = {"worker-id", "LF_WORKER_ID", NULL, "worker id (default host-pid-random)"},
    [O_DEVICE] = {"worker-device", "LF_WORKER_DEVICE", "cpu", "compute device: cpu"},
    [O_MAX_PIXELS] = {"max-pixels", "LF_MAX_PIXELS", "4194304",
                      "largest width*height accepted (0 = no limit)"},
    [O_MODELS_DIR] = {"models-dir", "LF_MODELS_DIR", NULL, "model files (engine backends)"},
    [O_HB_MS] = {"heartbeat-ms", "LF_HEARTBEAT_MS", "1000", "heartbeat interval, ms"},
    [O_HB_LIVENESS] = {"heartbeat-liveness", "LF_HEARTBEAT_LIVENESS", "3",
                       "missed heartbeats before a broker counts as dead"},
    [O_RECONNECT_MIN] = {"reconnect-min-ms", "LF_RECONNECT_MIN_MS", "250",
                         "first reconnect delay, ms (doubles up to the max)"},
    [O_RECONNECT_MAX] = {"reconnect-max-ms", "LF_RECONNECT_MAX_MS", "8000",
                         "longest reconnect delay, ms"},
    [O_DRAIN_MS] = {"drain-ms", "LF_WORKER_DRAIN_MS", "5000",
                    "on stop, how long to wait for a broker to take the last result, ms"},
    [O_LOG_LEVEL] = {"log-level", "LF_LOG_LEVEL", "info", "debug | info | warn | error"},
};

static void s_usage(FILE *f) {
    fprintf(f, "usage: lightfarm-worker [--flag value | --flag=value]...\n\n");
    for (int i = 0; i < O__COUNT; i++)
        fprintf(f, "  --%-20s %-22s %s%s%s%s\n", s_opts[i].flag, s_opts[i].env, s_opts[i].help,
                s_opts[i].def ? " [" : "", s_opts[i].def ? s_opts[i].def : "",
                s_opts[i].def ? "]" : "");
}

/* Non-negative integer within max; false with a message otherwise. */
static bool s_num(s_opt_t o, const char *s, uint64_t max, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = s && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || errno || !end || *end || v > max) {
        fprintf(stderr, "lightfarm-worker: --%s / %s: '%s' is not a number in 0..%llu\n",
                s_opts[o].flag, s_opts[o].env, s ? s : "", (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv) {
    const char *val[O__COUNT];
    for (int i = 0; i < O__COUNT; i++) {
        const char *e = getenv(s_opts[i].env);
        val[i] = e && *e ? e : s_opts[i].def;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            s_usage(stdout);
            return 0;
        }
        int found = -1;
        const char *v = NULL;
        if (!strncmp(arg, "--", 2)) {
            for (int i = 0; i < O__COUNT; i++) {
                size_t n = strlen(s_opts[i].flag);
                if (strncmp(arg + 2, s_opts[i].flag, n)) continue;
                if (arg[2 + n] == '=') {
                    found = i, v = arg + 3 + n;
                } else if (!arg[2 + n]) {
                    found = i, v = a + 1 < argc ? argv[++a] : NULL;
                }
                if (found >= 0) break;
            }
        }
        if (found < 0 || !v) {
            fprintf(stderr, "lightfarm-worker: %s '%s'\n", found < 0 ? "unknown option" : "no value for",
                    arg);
            s_usage(stderr);
            return 2;
        }
        val[found] = v;
    }

    uint64_t max_pixels, hb_ms, hb_live, rmin, rmax, drain;
    if (!s_num(O_MAX_PIXELS, val[O_MAX_PIXELS], UINT64_MAX, &max_pixels) ||
        !s_num(O_HB_MS, val[O_HB_MS], 3600000, &hb_ms) ||
        !s_num(O_HB_LIVENESS, val[O_HB_LIVENESS], 1000, &hb_live) ||
        !s_num(O_RECONNECT_MIN, val[O_RECONNECT_MIN], 3600000, &rmin) ||
        !s_num(O_RECONNECT_MAX, val[O_RECONNECT_MAX], 3600000, &rmax) ||
        !s_num(O_DRAIN_MS, val[O_DRAIN_MS], 3600000, &drain))
        return 2;
    if (hb_ms < 10 || hb_live < 1 || rmin < 1 || rmax < rmin) {
        fprintf(stderr, "lightfarm-worker: heartbeat-ms >= 10, heartbeat-liveness >= 1 and "
                        "1 <= reconnect-min-ms <= reconnect-max-ms are required\n");
        return 2;
    }
    lf_log_init("worker", lf_log_level_parse(val[O_LOG_LEVEL]));

    /* czmq would turn SIGINT/SIGTERM into "interrupted" and stop every
     * socket call; the worker wants them as a request to finish and leave. */
    zsys_handler_set(NULL);
    zsys_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Backends in preference order; the diagnostic model comes last so it is
     * never anyone's first choice once a real model is installed. */
    static const lf_runner_backend_t *const backends[] = {&lf_diagnostic_backend};
    lf_worker_opts_t opts = {
        .worker_id = val[O_ID],
        .endpoints = val[O_BACKEND],
        .device = val[O_DEVICE],
        .models_dir = val[O_MODELS_DIR],
        .max_pixels = max_pixels,
        .heartbeat = {(int64_t)hb_ms, (int64_t)hb_live, (int64_t)rmin, (int64_t)rmax},
        .drain_ms = (int64_t)drain,
        .backends = backends,
        .n_backends = sizeof backends / sizeof backends[0],
    };
    lf_worker_t *w = lf_worker_new(&opts);
    if (!w) {
        lf_error("cannot start the worker");
        return 1;
    }
    int rc = lf_worker_run(w, &s_signals);
    lf_worker_destroy(&w);
    return rc ? 1 : 0;
}
