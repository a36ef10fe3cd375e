/* lf_testproc: see lf_testproc.h. */
#include "lf_testproc.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long lf_testproc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pid_t lf_testproc_spawn(const char *bin, const char *dir, const char *name, char *const env[]) {
    char log[512];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(log, "w");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        for (int i = 0; env[i]; i++) putenv(env[i]);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int lf_testproc_stop(pid_t *pid, int sig) {
    if (*pid <= 0) return 0;
    kill(*pid, sig);
    int status = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
    return -1;
}

int lf_testproc_stop_all(int sig, pid_t *first, ...) {
    int rc = lf_testproc_stop(first, sig);
    va_list ap;
    va_start(ap, first);
    for (pid_t *p; (p = va_arg(ap, pid_t *));) lf_testproc_stop(p, sig);
    va_end(ap);
    return rc;
}

bool lf_testproc_alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0 && waitpid(pid, NULL, WNOHANG) == 0; }

int lf_testproc_log_count(const char *dir, const char *name, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.log", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}
