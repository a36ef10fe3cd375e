/* test_config: defaults, environment, flags, precedence, lists, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_config.h"
#include "lf_error.h"

#define ARGV(...) ((char *const[]){"prog", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *const[]){"prog", __VA_ARGS__}) / sizeof(char *)))
#define ENV(...) ((char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void **state) {
    (void)state;
    lf_config_t c = {0};
    char err[256];
    assert_int_equal(lf_config_load(&c, NULL, 0, NULL, err, sizeof err), 0);
    assert_int_equal(c.log_level, LF_LOG_INFO);
    assert_false(c.help);
    assert_int_equal(c.frontend.n, 1);
    assert_string_equal(c.frontend.items[0], "tcp://127.0.0.1:5555");
    assert_string_equal(c.backend.items[0], "tcp://127.0.0.1:5556");
    assert_string_equal(c.events.items[0], "tcp://127.0.0.1:5557");
    assert_string_equal(c.redis_host, "127.0.0.1");
    assert_int_equal(c.redis_port, 6379);
    assert_string_equal(c.redis_prefix, "lf:");
    assert_int_equal(c.http_port, 7860);
    assert_string_equal(c.http_host, "127.0.0.1");
    assert_int_equal(c.heartbeat_ms, 1000);
    assert_int_equal(c.heartbeat_liveness, 3);
    assert_int_equal(c.reconnect_min_ms, 250);
    assert_int_equal(c.reconnect_max_ms, 8000);
    assert_int_equal(c.max_attempts, 3);
    assert_int_equal(c.max_pixels, 4194304);
    assert_int_equal(c.api_keys.n, 0);
    assert_null(c.worker_id);
    assert_null(c.broker_id);
    assert_null(c.web_root);
    assert_null(c.curve_cert);
    assert_string_equal(c.worker_device, "cpu");
    assert_string_equal(c.default_model, "lf-diagnostic");
    assert_int_equal(c.n_args, 0);
    lf_config_clear(&c);
    assert_null(c.redis_host);
    lf_config_clear(NULL);
}

static void test_env_then_flags(void **state) {
    (void)state;
    lf_config_t c = {0};
    char err[256];
    char *const env[] = {"PATH=/usr/bin",
                         "LF_HTTP_PORT=8000",
                         "LF_REDIS_HOST=redis.local",
                         "LF_BROKER_BACKEND= tcp://a:1 , tcp://b:2 ",
                         "LF_API_KEYS=k1,k2",
                         "LF_LOG_LEVEL=DEBUG",
                         "LF_WEB_ROOT=",            /* empty = unset */
                         "LF_HTTP_PORTX=1",         /* a longer name is another variable */
                         "LF_REDIS_HOST=second",    /* first one wins, as getenv */
                         NULL};
    char *const argv[] = {"prog",          "--http-port", "9000", "--redis-prefix=farm2:",
                          "--broker-backend", "tcp://c:3", "--help", "job.json",
                          "--",            "--not-a-flag", NULL};
    assert_int_equal(lf_config_load(&c, env, 10, argv, err, sizeof err), 0);
    assert_int_equal(c.http_port, 9000);                /* flag beats env */
    assert_string_equal(c.redis_host, "redis.local");   /* env beats default */
    assert_string_equal(c.redis_prefix, "farm2:");
    assert_int_equal(c.backend.n, 1);                   /* flag list replaces env list */
    assert_string_equal(c.backend.items[0], "tcp://c:3");
    assert_int_equal(c.api_keys.n, 2);
    assert_string_equal(c.api_keys.items[1], "k2");
    assert_int_equal(c.log_level, LF_LOG_DEBUG);
    assert_null(c.web_root);
    assert_true(c.help);
    assert_int_equal(c.n_args, 2);
    assert_string_equal(c.args[0], "job.json");
    assert_string_equal(c.args[1], "--not-a-flag");
    lf_config_clear(&c);

    assert_int_equal(lf_config_load(&c, env, 0, NULL, err, sizeof err), 0);
    assert_int_equal(c.backend.n, 2);
    assert_string_equal(c.backend.items[0], "tcp://a:1");
    assert_string_equal(c.backend.items[1], "tcp://b:2");
    assert_int_equal(c.http_port, 8000);
    lf_config_clear(&c);

    /* LF_DEVICE is the short name of LF_WORKER_DEVICE; the table's name wins
     * when both are set; --device beats both. */
    char *const dev1[] = {"LF_DEVICE=cuda:1", NULL};
    assert_int_equal(lf_config_load(&c, dev1, 0, NULL, err, sizeof err), 0);
    assert_string_equal(c.worker_device, "cuda:1");
    lf_config_clear(&c);
    char *const dev2[] = {"LF_DEVICE=cuda:1", "LF_WORKER_DEVICE=cuda:2", NULL};
    assert_int_equal(lf_config_load(&c, dev2, 0, NULL, err, sizeof err), 0);
    assert_string_equal(c.worker_device, "cuda:2");
    lf_config_clear(&c);
    char *const argv2[] = {"prog", "--device", "cuda:3", NULL};
    assert_int_equal(lf_config_load(&c, dev2, 3, argv2, err, sizeof err), 0);
    assert_string_equal(c.worker_device, "cuda:3");
    lf_config_clear(&c);
}

static void test_flag_forms(void **state) {
    (void)state;
    const struct { /* not static: the compound literals live on the stack */
        int argc;
        char *const *argv;
        size_t offset;
        int64_t want;
    } cases[] = {
        {ARGC("--http-port", "1"), ARGV("--http-port", "1"), offsetof(lf_config_t, http_port), 1},
        {ARGC("--http-port=65535"), ARGV("--http-port=65535"), offsetof(lf_config_t, http_port), 65535},
        {ARGC("--port", "8080"), ARGV("--port", "8080"), offsetof(lf_config_t, http_port), 8080},
        {ARGC("--drain-ms", "0"), ARGV("--drain-ms", "0"), offsetof(lf_config_t, worker_drain_ms), 0},
        {ARGC("--worker-drain-ms=7"), ARGV("--worker-drain-ms=7"), offsetof(lf_config_t, worker_drain_ms), 7},
        {ARGC("--lease-ms", "2500"), ARGV("--lease-ms", "2500"), offsetof(lf_config_t, lease_ms), 2500},
        {ARGC("--max-pixels", "0"), ARGV("--max-pixels", "0"), offsetof(lf_config_t, max_pixels), 0},
        {ARGC("--rate-limit", "60", "--rate-limit", "120"), ARGV("--rate-limit", "60", "--rate-limit", "120"),
         offsetof(lf_config_t, rate_limit), 120}, /* last flag wins */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_config_t c = {0};
        char err[256] = "";
        int r = lf_config_load(&c, NULL, cases[i].argc, cases[i].argv, err, sizeof err);
        if (r) fail_msg("case %zu: %s", i, err);
        assert_int_equal(*(int64_t *)((char *)&c + cases[i].offset), cases[i].want);
        lf_config_clear(&c);
    }
    /* Booleans: bare, explicit; and -h. */
    lf_config_t c = {0};
    assert_int_equal(lf_config_load(&c, NULL, ARGC("--version=no", "-h"), ARGV("--version=no", "-h"), NULL, 0), 0);
    assert_false(c.version);
    assert_true(c.help);
    lf_config_clear(&c);
    assert_int_equal(lf_config_load(&c, NULL, ARGC("--version"), ARGV("--version"), NULL, 0), 0);
    assert_true(c.version);
    lf_config_clear(&c);
    /* "-" alone is positional (stdin in CLI conventions). */
    assert_int_equal(lf_config_load(&c, NULL, ARGC("-"), ARGV("-"), NULL, 0), 0);
    assert_int_equal(c.n_args, 1);
    lf_config_clear(&c);
}

static void test_errors(void **state) {
    (void)state;
    const struct {
        int argc;
        char *const *argv;
        char *const *env;
        const char *needle; /* must appear in the message */
    } cases[] = {
        {ARGC("--bogus"), ARGV("--bogus"), NULL, "--bogus"},
        {ARGC("--bogus=1"), ARGV("--bogus=1"), NULL, "--bogus"},
        {ARGC("-x"), ARGV("-x"), NULL, "-x"},
        {ARGC("--http-port"), ARGV("--http-port"), NULL, "needs a value"},
        {ARGC("--http-port", "0"), ARGV("--http-port", "0"), NULL, "1..65535"},
        {ARGC("--http-port", "70000"), ARGV("--http-port", "70000"), NULL, "--http-port"},
        {ARGC("--http-port", "12ab"), ARGV("--http-port", "12ab"), NULL, "12ab"},
        {ARGC("--http-port", " 5"), ARGV("--http-port", " 5"), NULL, "--http-port"},
        {ARGC("--http-port="), ARGV("--http-port="), NULL, "--http-port"},
        {ARGC("--redis-port", "99999999999999999999"), ARGV("--redis-port", "99999999999999999999"), NULL,
         "--redis-port"},
        {ARGC("--lease-ms", "-5"), ARGV("--lease-ms", "-5"), NULL, "--lease-ms"},
        {ARGC("--log-level", "loud"), ARGV("--log-level", "loud"), NULL, "loud"},
        {ARGC("--help=maybe"), ARGV("--help=maybe"), NULL, "maybe"},
        {ARGC("--backend", "localhost:5556"), ARGV("--backend", "localhost:5556"), NULL, "localhost:5556"},
        {ARGC("--backend", "tcp://a:1,,tcp://b:2"), ARGV("--backend", "tcp://a:1,,tcp://b:2"), NULL,
         "empty item"},
        {ARGC("--frontend", "tcp://"), ARGV("--frontend", "tcp://"), NULL, "tcp://"},
        {ARGC("--reconnect-min-ms", "9000"), ARGV("--reconnect-min-ms", "9000"), NULL, "reconnect-max-ms"},
        {0, NULL, ENV("LF_HTTP_PORT=abc"), "LF_HTTP_PORT"},
        {0, NULL, ENV("LF_BROKER_EVENTS=tcp://a:1,"), "LF_BROKER_EVENTS"},
        {0, NULL, ENV("LF_LOG_LEVEL=verbose"), "LF_LOG_LEVEL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_config_t c = {0};
        char err[256] = "";
        int r = lf_config_load(&c, cases[i].env, cases[i].argc, cases[i].argv, err, sizeof err);
        if (r != LF_EINVAL) fail_msg("case %zu: got %s", i, lf_err_name(r));
        if (!strstr(err, cases[i].needle)) fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].needle);
        /* A failed load leaves the output as it was (zero). */
        lf_config_t zero = {0};
        assert_memory_equal(&c, &zero, sizeof c);
    }
    assert_int_equal(lf_config_load(NULL, NULL, 0, NULL, NULL, 0), LF_EINVAL);
    lf_config_t c = {0};
    assert_int_equal(lf_config_load(&c, NULL, 2, NULL, NULL, 0), LF_EINVAL);
}

static void test_split_list(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        size_t n;
        const char *items[3];
    } cases[] = {
        {"", 0, 0, {NULL}},
        {"   ", 0, 0, {NULL}},
        {"a", 0, 1, {"a"}},
        {"a,b", 0, 2, {"a", "b"}},
        {" a ,\tb , c ", 0, 3, {"a", "b", "c"}},
        {"tcp://h:1,ipc:///tmp/x", 0, 2, {"tcp://h:1", "ipc:///tmp/x"}},
        {"a,,b", LF_EINVAL, 0, {NULL}},
        {"a,", LF_EINVAL, 0, {NULL}},
        {",a", LF_EINVAL, 0, {NULL}},
        {"a, ,b", LF_EINVAL, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_strlist_t l = {0};
        int r = lf_config_split_list(cases[i].in, &l);
        if (r != cases[i].rc) fail_msg("case %zu '%s': rc %d", i, cases[i].in, r);
        assert_int_equal(l.n, cases[i].n);
        for (size_t k = 0; k < l.n; k++) assert_string_equal(l.items[k], cases[i].items[k]);
        lf_strlist_clear(&l);
    }
    lf_strlist_t l = {0};
    assert_int_equal(lf_config_split_list(NULL, &l), LF_EINVAL);
    lf_strlist_clear(NULL);
}

static void test_table_sane(void **state) {
    (void)state;
    size_t n = 0;
    const lf_config_opt_t *t = lf_config_options(&n);
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i].flag);
        assert_non_null(t[i].help);
        assert_true(t[i].programs != 0);
        if (t[i].env) assert_memory_equal(t[i].env, "LF_", 3);
        if (t[i].type == LF_CFG_INT) assert_true(t[i].min <= t[i].max);
        for (size_t k = 0; k < i; k++) {
            assert_string_not_equal(t[i].flag, t[k].flag);
            if (t[i].env && t[k].env) assert_string_not_equal(t[i].env, t[k].env);
            if (t[k].alias) assert_string_not_equal(t[i].flag, t[k].alias);
            if (t[i].alias) assert_string_not_equal(t[i].alias, t[k].flag);
            assert_true(t[i].offset != t[k].offset);
        }
        assert_true(t[i].offset < sizeof(lf_config_t));
    }
}

static void test_usage(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    lf_config_usage(f, "lightfarm-worker", LF_CFG_WORKER);
    fclose(f);
    assert_non_null(strstr(text, "usage: lightfarm-worker"));
    assert_non_null(strstr(text, "--backend"));
    assert_non_null(strstr(text, "LF_WORKER_ID"));
    assert_non_null(strstr(text, "[250]"));
    assert_null(strstr(text, "--http-port")); /* a gateway setting */
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_flag_forms), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_split_list), cmocka_unit_test(test_table_sane),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
