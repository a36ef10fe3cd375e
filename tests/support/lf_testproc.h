/* lf_testproc: child processes for integration tests — the real binaries
 * started with a few environment variables added and their output in a log
 * file, stopped with a signal (SIGKILL after 5 s), and their logs searched.
 *
 * Plain functions on pids and paths, no state: a test keeps its pids. The
 * environment strings are handed to putenv in the child, so they must stay
 * valid until the child has exec'd (static or test-lifetime storage). */
#ifndef LF_TESTPROC_H
#define LF_TESTPROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Monotonic milliseconds. */
long long lf_testproc_now_ms(void);

/* fork + exec bin (no arguments) with env (a NULL-terminated "K=V" list)
 * added to this process's environment, stdout and stderr to dir/<name>.log.
 * The child's pid, or -1 when fork failed (an exec failure is exit 127). */
pid_t lf_testproc_spawn(const char *bin, const char *dir, const char *name, char *const env[]);

/* Sends sig to *pid and waits up to 5 s for it to exit, then SIGKILLs it;
 * sets *pid = 0. Its exit status, or -1 when a signal ended it; 0 when
 * *pid <= 0 (nothing to stop). */
int lf_testproc_stop(pid_t *pid, int sig);

/* lf_testproc_stop(pid, sig) for each of a NULL-terminated list, in order
 * (a teardown). The exit status of the first. */
int lf_testproc_stop_all(int sig, pid_t *first, ...);

/* Is the child pid still running (not exited, not a zombie)? */
bool lf_testproc_alive(pid_t pid);

/* How many lines of dir/<name>.log contain needle; -1 when the log cannot
 * be read. */
int lf_testproc_log_count(const char *dir, const char *name, const char *needle);

#endif
