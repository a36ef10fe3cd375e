/* lightfarm-gateway: settings (lf_config: environment, then --flags), the
 * gateway (lf_gateway.h), and a clean stop on SIGTERM/SIGINT.
 *
 * `lightfarm-gateway --make-cert PATH` only writes a new CURVE certificate
 * (for any lightfarm program; see docs/protocol.md, "CURVE") and exits. */
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_config.h"
#include "lf_error.h"
#include "lf_gateway.h"
#include "lf_log.h"

extern char **environ;

/* The one signal flag the house rules allow. */
static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig) {
    (void)sig;
    s_stop = 1;
}

/* A new key pair, saved the czmq way: PATH holds the public key (for the
 * broker's LF_CURVE_CLIENTS_DIR, or for clients' LF_CURVE_SERVER_CERT),
 * PATH_secret both keys, readable by its owner only (LF_CURVE_CERT=PATH). */
static int s_make_cert(const char *path) {
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(path, F_OK) == 0 || access(secret, F_OK) == 0) {
        fprintf(stderr, "lightfarm-gateway: %s or %s already exists; not overwriting it\n", path, secret);
        return 1;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        fprintf(stderr, "lightfarm-gateway: cannot make a CURVE key pair\n");
        return 1;
    }
    zcert_set_meta(cert, "created-by", "lightfarm-gateway --make-cert");
    int rc = zcert_save(cert, path);
    if (rc == 0)
        printf("CURVE certificate, public key %s\n  %s         public: copy into the broker's "
               "LF_CURVE_CLIENTS_DIR (or, for a broker, give it to clients as LF_CURVE_SERVER_CERT)\n"
               "  %s  secret: keep private; this program's LF_CURVE_CERT=%s\n",
               zcert_public_txt(cert), path, secret, path);
    else
        fprintf(stderr, "lightfarm-gateway: cannot write %s: %s\n", path, strerror(errno));
    zcert_destroy(&cert);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--make-cert")) {
        if (argc != 3 || !*argv[2]) {
            fprintf(stderr, "usage: lightfarm-gateway --make-cert PATH   (writes PATH and PATH_secret)\n");
            return 2;
        }
        return s_make_cert(argv[2]);
    }
    lf_config_t cfg = {0};
    char err[512] = "";
    if (lf_config_load(&cfg, environ, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "lightfarm-gateway: %s\n", err);
        lf_config_usage(stderr, "lightfarm-gateway", LF_CFG_GATEWAY);
        return 2;
    }
    if (cfg.help) {
        lf_config_usage(stdout, "lightfarm-gateway", LF_CFG_GATEWAY);
        lf_config_clear(&cfg);
        return 0;
    }
    if (cfg.version) {
        printf("lightfarm-gateway 0.1.0\n");
        lf_config_clear(&cfg);
        return 0;
    }
    lf_log_init("gateway", cfg.log_level);
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lf_gateway_t *gw = lf_gateway_new(&cfg, err, sizeof err);
    if (!gw) {
        lf_error("cannot start: %s", err);
        lf_config_clear(&cfg);
        return 1;
    }
    lf_info("listening on http://%s:%d (%lld threads, %zu broker(s), web root %s)", cfg.http_host,
            lf_gateway_port(gw), (long long)cfg.http_threads, cfg.frontend.n,
            cfg.web_root ? cfg.web_root : "(none)");
    while (!s_stop) pause();
    lf_info("stopping");
    lf_gateway_destroy(&gw);
    lf_config_clear(&cfg);
    return 0;
}
