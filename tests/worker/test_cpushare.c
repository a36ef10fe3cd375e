/* test_cpushare: the split of a machine's cores between local workers
 * (pure), the cgroup CPU quota that caps them (a fake cgroup tree), and
 * pinning this process to a slice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lf_cpushare.h"
#include "lf_error.h"

/* Every worker's slice on (cores, workers): slices cover the cores once, in
 * order, sizes differ by at most one. */
static void s_check_cover(int cores, int workers) {
    int next = 0, lo = cores, hi = 0;
    for (int i = 0; i < workers; i++) {
        lf_cpushare_t s;
        assert_int_equal(lf_cpushare_split(cores, workers, i, &s), 0);
        assert_int_equal(s.first, next);
        next += s.count;
        if (s.count < lo) lo = s.count;
        if (s.count > hi) hi = s.count;
    }
    assert_int_equal(next, cores);
    assert_true(hi - lo <= 1 && lo >= 1);
}

static void test_split(void **st) {
    (void)st;
    lf_cpushare_t s;
    assert_int_equal(lf_cpushare_split(16, 1, 0, &s), 0);
    assert_int_equal(s.first, 0);
    assert_int_equal(s.count, 16);
    /* 10 cores, 3 workers: 4 + 3 + 3. */
    assert_int_equal(lf_cpushare_split(10, 3, 0, &s), 0);
    assert_int_equal(s.first, 0);
    assert_int_equal(s.count, 4);
    assert_int_equal(lf_cpushare_split(10, 3, 1, &s), 0);
    assert_int_equal(s.first, 4);
    assert_int_equal(s.count, 3);
    assert_int_equal(lf_cpushare_split(10, 3, 2, &s), 0);
    assert_int_equal(s.first, 7);
    assert_int_equal(s.count, 3);
    for (int cores = 1; cores <= 33; cores++)
        for (int workers = 1; workers <= cores; workers++) s_check_cover(cores, workers);
    /* More workers than cores: one core each, round robin. */
    assert_int_equal(lf_cpushare_split(2, 5, 3, &s), 0);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.count, 1);
    assert_int_equal(lf_cpushare_split(0, 1, 0, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 0, 0, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 2, 2, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 2, -1, &s), LF_EINVAL);
    assert_int_equal(lf_cpushare_split(4, 2, 0, NULL), LF_EINVAL);
}

static void test_threads(void **st) {
    (void)st;
    lf_cpushare_t s = {.first = 4, .count = 3};
    assert_int_equal(lf_cpushare_threads(&s, 0), 3);
    assert_int_equal(lf_cpushare_threads(&s, 8), 8);
}

/* Pinning to the last core of the mask leaves this process on that core only
 * (the mask is restored after). */
static void test_pin(void **st) {
    (void)st;
    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    int cores = lf_cpushare_cores();
    assert_int_equal(cores, CPU_COUNT(&before));
    lf_cpushare_t s = {.first = cores - 1, .count = 1};
    assert_int_equal(lf_cpushare_pin(&s), 0);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_int_equal(CPU_COUNT(&after), 1);
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &before)) last = c;
    assert_true(CPU_ISSET(last, &after));
    assert_int_equal(sched_setaffinity(0, sizeof before, &before), 0);
    lf_cpushare_t none = {.first = cores, .count = 1};
    assert_int_equal(lf_cpushare_pin(&none), LF_EINVAL);
}

static void test_quota(void **st) {
    (void)st;
    assert_int_equal(lf_cpushare_quota_cores("max 100000\n"), 0);
    assert_int_equal(lf_cpushare_quota_cores("400000 100000\n"), 4);
    assert_int_equal(lf_cpushare_quota_cores("150000 100000"), 1); /* 1.5 cores: 1 thread */
    assert_int_equal(lf_cpushare_quota_cores("50000 100000"), 1);  /* half a core: still 1 */
    assert_int_equal(lf_cpushare_quota_cores("-1 100000"), 0);     /* v1: no quota */
    assert_int_equal(lf_cpushare_quota_cores("100000"), 0);        /* no period */
    assert_int_equal(lf_cpushare_quota_cores(""), 0);
    assert_int_equal(lf_cpushare_quota_cores(NULL), 0);
}

static void s_write(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fake cgroup tree: the tightest quota from the process's cgroup up to the
 * root binds, v1's cpu controller is found among joined controllers, and a
 * process in no quota'd cgroup gets 0. */
static void test_cgroup(void **st) {
    (void)st;
    char root[] = "/tmp/lf_cpushare_XXXXXX", dir[512];
    assert_non_null(mkdtemp(root));
    /* v2: /sys/fs/cgroup/a/b with 8 cores at a and 2.5 at a/b. */
    snprintf(dir, sizeof dir, "%s/a", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    s_write(dir, "cpu.max", "800000 100000\n");
    snprintf(dir, sizeof dir, "%s/a/b", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    s_write(dir, "cpu.max", "250000 100000\n");
    assert_int_equal(lf_cpushare_cgroup_cores(root, "0::/a/b\n"), 2);
    assert_int_equal(lf_cpushare_cgroup_cores(root, "0::/a\n"), 8);
    s_write(dir, "cpu.max", "max 100000\n");
    assert_int_equal(lf_cpushare_cgroup_cores(root, "0::/a/b\n"), 8); /* the parent's binds */
    assert_int_equal(lf_cpushare_cgroup_cores(root, "0::/\n"), 0);
    assert_int_equal(lf_cpushare_cgroup_cores(root, "0::/elsewhere\n"), 0);
    /* v1 (hybrid: a v2 line too; the cpu controller is v1's): root/cpu/k8s. */
    snprintf(dir, sizeof dir, "%s/cpu", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(dir, sizeof dir, "%s/cpu/k8s", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    s_write(dir, "cpu.cfs_quota_us", "300000\n");
    s_write(dir, "cpu.cfs_period_us", "100000\n");
    assert_int_equal(lf_cpushare_cgroup_cores(root, "0::/a/b\n4:memory:/x\n3:cpu,cpuacct:/k8s\n"), 3);
    assert_int_equal(lf_cpushare_cgroup_cores(root, "2:cpuacct:/k8s\n1:cpu:/k8s\n0::/\n"), 3);
    assert_int_equal(lf_cpushare_cgroup_cores(root, "2:cpuacct:/k8s\n"), 0); /* cpuacct is not cpu */
    s_write(dir, "cpu.cfs_quota_us", "-1\n");
    assert_int_equal(lf_cpushare_cgroup_cores(root, "1:cpu:/k8s\n"), 0);
    /* This process: at least one core, never more than its mask. */
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    assert_true(lf_cpushare_cores() >= 1 && lf_cpushare_cores() <= CPU_COUNT(&set));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* The slice's cores as a list: runs of consecutive cores as ranges. */
static void test_list(void **st) {
    (void)st;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    int first = -1, n = CPU_COUNT(&set);
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &set)) first = c;
    char out[64], want[64];
    lf_cpushare_t one = {0, 1};
    snprintf(want, sizeof want, "%d", first);
    assert_string_equal(lf_cpushare_list(&one, out, sizeof out), want);
    bool contiguous = true; /* the whole mask as one range when it is one */
    for (int c = first; c < first + n; c++) contiguous &= CPU_ISSET(c, &set) != 0;
    if (n > 1 && contiguous) {
        lf_cpushare_t all = {0, n};
        snprintf(want, sizeof want, "%d-%d", first, first + n - 1);
        assert_string_equal(lf_cpushare_list(&all, out, sizeof out), want);
    }
    lf_cpushare_t none = {n, 1};
    assert_string_equal(lf_cpushare_list(&none, out, sizeof out), "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_pin),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_cgroup),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
