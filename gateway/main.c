/* lightfarm-gateway: settings (lf_config: environment, then --flags), the
 * gateway (lf_gateway.h), and a clean stop on SIGTERM/SIGINT. */
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

int main(int argc, char **argv) {
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
