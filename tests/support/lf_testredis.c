/* lf_testredis: see lf_testredis.h. */
#include "lf_testredis.h"

#include <stdbool.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct lf_testredis {
    char dir[128];
    int port;
    pid_t pid;
    lf_testredis_opts_t opts;
    char fsync[16];
};

static long long s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A free port, bound and released. Taken at random below the kernel's ephemeral range (a port the kernel
 * hands out for bind(0) may be handed out again by the next call, or become the client side of a
 * connection, before the server meant to bind it starts), and never one this process already returned:
 * a test farm asks for a dozen at once. The list of returned ports is this helper's only state. */
int lf_testredis_free_port(void) {
    static int given[256];
    static unsigned n_given;
    static unsigned seed;
    if (!seed) seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1) lo = 32768;
        fclose(f);
    }
    if (lo <= 11000) lo = 32768;
    for (int tries = 0; tries < 1000; tries++) {
        int port = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
        bool seen = false;
        for (unsigned i = 0; i < n_given && i < 256; i++) seen |= given[i] == port;
        if (seen) continue;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) {
            given[n_given++ % 256] = port;
            return port;
        }
    }
    return -1;
}

static bool s_ping(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "PING\r\n", 6) == 6) {
        char buf[64];
        ssize_t r = read(fd, buf, sizeof buf - 1);
        ok = r >= 5 && !strncmp(buf, "+PONG", 5);
    }
    close(fd);
    return ok;
}

static int s_wait(int pid, int timeout_ms) {
    long long end = s_now_ms() + timeout_ms;
    while (s_now_ms() < end) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return 0;
        s_sleep_ms(10);
    }
    return -1;
}

static int s_spawn(lf_testredis_t *self) {
    char port[16], logf[200];
    snprintf(port, sizeof port, "%d", self->port);
    snprintf(logf, sizeof logf, "%s/redis.log", self->dir);
    const char *bin = getenv("LF_REDIS_SERVER");
    if (!bin || !*bin) bin = "/usr/bin/redis-server";
    char *argv[] = {(char *)bin, "--port", port, "--bind", "127.0.0.1", "--dir", self->dir,
                    "--save", "", "--appendonly", self->opts.aof ? "yes" : "no",
                    "--appendfsync", self->fsync, "--daemonize", "no", "--logfile", logf,
                    "--protected-mode", "no", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&self->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "testredis: cannot start %s: %s\n", bin, strerror(rc));
        self->pid = 0;
        return -1;
    }
    long long end = s_now_ms() + 10000;
    while (s_now_ms() < end) {
        if (s_ping(self->port)) return 0;
        int st;
        if (waitpid(self->pid, &st, WNOHANG) == self->pid) { /* exited: port taken? */
            self->pid = 0;
            return -1;
        }
        s_sleep_ms(10);
    }
    fprintf(stderr, "testredis: redis-server on port %d did not answer PING\n", self->port);
    kill(self->pid, SIGKILL);
    s_wait(self->pid, 5000);
    self->pid = 0;
    return -1;
}

lf_testredis_t *lf_testredis_start(const lf_testredis_opts_t *opts) {
    lf_testredis_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    if (opts) self->opts = *opts;
    snprintf(self->fsync, sizeof self->fsync, "%s",
             self->opts.appendfsync ? self->opts.appendfsync : "always");
    snprintf(self->dir, sizeof self->dir, "/tmp/lf-testredis-XXXXXX");
    if (!mkdtemp(self->dir)) {
        fprintf(stderr, "testredis: mkdtemp: %s\n", strerror(errno));
        free(self);
        return NULL;
    }
    /* Another process may grab the free port first: try a few. */
    for (int i = 0; i < 5; i++) {
        self->port = lf_testredis_free_port();
        if (self->port > 0 && s_spawn(self) == 0) return self;
    }
    fprintf(stderr, "testredis: could not start redis-server (see %s/redis.log)\n", self->dir);
    lf_testredis_destroy(&self);
    return NULL;
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void lf_testredis_destroy(lf_testredis_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_testredis_t *self = *self_p;
    if (self->pid > 0) lf_testredis_kill(self);
    if (self->dir[0] && !getenv("LF_KEEP_TESTREDIS")) nftw(self->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(self);
    *self_p = NULL;
}

void lf_testredis_release(lf_testredis_t **self_p) {
    if (!self_p || !*self_p) return;
    if (getenv("LF_KEEP_TEST")) fprintf(stderr, "logs kept in %s\n", (*self_p)->dir);
    else lf_testredis_destroy(self_p);
}

int lf_testredis_port(const lf_testredis_t *self) { return self->port; }
const char *lf_testredis_dir(const lf_testredis_t *self) { return self->dir; }
pid_t lf_testredis_pid(const lf_testredis_t *self) { return self->pid; }

static int s_signal(lf_testredis_t *self, int sig) {
    if (self->pid <= 0) return 0;
    kill(self->pid, sig);
    int rc = s_wait(self->pid, 10000);
    if (rc) {
        kill(self->pid, SIGKILL);
        rc = s_wait(self->pid, 5000);
    }
    self->pid = 0;
    return rc;
}

int lf_testredis_stop(lf_testredis_t *self) { return s_signal(self, SIGTERM); }
int lf_testredis_kill(lf_testredis_t *self) { return s_signal(self, SIGKILL); }

int lf_testredis_restart(lf_testredis_t *self) {
    if (self->pid > 0) return 0;
    /* The old socket may linger a moment; retry on the same port. */
    for (int i = 0; i < 50; i++) {
        if (s_spawn(self) == 0) return 0;
        s_sleep_ms(100);
    }
    return -1;
}
