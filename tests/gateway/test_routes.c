/* test_routes: route matching (params, 405 with Allow, HEAD), static path
 * safety (traversal in every spelling refused, symlinks out of the root
 * refused), MIME types, and that openapi.json documents exactly the routes
 * the router has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_routes.h"

static void test_match(void **state) {
    static const struct {
        const char *method, *path;
        lf_route_id_t id;
        const char *p0;
    } cases[] = {
        {"GET", "/healthz", LF_ROUTE_HEALTHZ, NULL},
        {"HEAD", "/healthz", LF_ROUTE_HEALTHZ, NULL},
        {"POST", "/v1/jobs", LF_ROUTE_JOB_SUBMIT, NULL},
        {"GET", "/v1/jobs", LF_ROUTE_JOB_LIST, NULL},
        {"GET", "/v1/jobs/abc-123", LF_ROUTE_JOB_GET, "abc-123"},
        {"DELETE", "/v1/jobs/abc-123", LF_ROUTE_JOB_CANCEL, "abc-123"},
        {"GET", "/v1/jobs/abc/events", LF_ROUTE_JOB_EVENTS, "abc"},
        {"GET", "/v1/images/job1-0.png", LF_ROUTE_IMAGE, "job1-0"},
        {"GET", "/v1/presets/portrait", LF_ROUTE_PRESET_GET, "portrait"},
        {"PUT", "/v1/presets/portrait", LF_ROUTE_PRESET_PUT, "portrait"},
        {"POST", "/sdapi/v1/txt2img", LF_ROUTE_A_TXT2IMG, NULL},
        {"GET", "/sdapi/v1/sd-models", LF_ROUTE_A_MODELS, NULL},
        {"POST", "/sdapi/v1/options", LF_ROUTE_A_OPTIONS_SET, NULL},
        {"POST", "/v1/images/generations", LF_ROUTE_O_GENERATE, NULL},
        {"POST", "/v1/images/edits", LF_ROUTE_O_EDIT, NULL},
        {"GET", "/v1/models/lf-diagnostic", LF_ROUTE_O_MODEL, "lf-diagnostic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_route_match_t m;
        if (!lf_routes_match(cases[i].method, cases[i].path, &m))
            fail_msg("%s %s did not match", cases[i].method, cases[i].path);
        assert_int_equal(m.route->id, cases[i].id);
        if (cases[i].p0) {
            assert_int_equal(m.n_params, 1);
            assert_string_equal(m.params[0], cases[i].p0);
        }
    }
    static const char *const none[] = {"/v1/jobs/", "/v1/jobs/a/b", "/v1/jobs/a b", "/v1/images/.png",
                                       "/v1/images/x.jpg", "/v1/jobs/a%2f", "/v1/jobs/../x", "/healthz/",
                                       "", "/v1/presets/x/y"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        lf_route_match_t m;
        if (lf_routes_match("GET", none[i], &m)) fail_msg("GET %s matched", none[i]);
    }
    lf_route_match_t m;
    assert_false(lf_routes_match("PATCH", "/v1/jobs/abc", &m));
    assert_true(m.method_mismatch);
    assert_string_equal(m.allow, "GET, DELETE");
    /* The OpenAI routes share /v1/images/ with result images, which end in .png. */
    assert_false(lf_routes_match("GET", "/v1/images/generations", &m));
    assert_true(m.method_mismatch);
    assert_string_equal(m.allow, "POST");
    assert_false(lf_routes_match("GET", "/nope", &m));
    assert_false(m.method_mismatch);
    assert_true(lf_routes_is_api("/v1/nope"));
    assert_true(lf_routes_is_api("/sdapi/v1/x"));
    assert_false(lf_routes_is_api("/index.html"));
}

static void test_static_paths(void **state) {
    static const char *const bad[] = {"/../etc/passwd", "/a/../../etc/passwd", "/..", "/%2e%2e/etc/passwd",
                                      "/%252e%252e/x", "etc/passwd", "/a\\..\\b", "//etc/passwd",
                                      "/a\x01", "/x/..", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (lf_routes_static_path_ok(bad[i])) fail_msg("accepted %s", bad[i]);
    assert_true(lf_routes_static_path_ok("/"));
    assert_true(lf_routes_static_path_ok("/app.js"));
    assert_true(lf_routes_static_path_ok("/assets/x.y.css"));

    /* A real web root with a symlink pointing out of it. */
    char tmpl[] = "/tmp/lf_routes_XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char root[PATH_MAX], p[PATH_MAX + 64], out[PATH_MAX];
    assert_non_null(realpath(dir, root));
    snprintf(p, sizeof p, "%s/index.html", root);
    FILE *f = fopen(p, "w");
    fputs("<html></html>", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/sub", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/index.html", root);
    f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/escape", root);
    assert_int_equal(symlink("/etc/passwd", p), 0);

    assert_int_equal(lf_routes_static_resolve(root, "/", out, sizeof out), 0);
    snprintf(p, sizeof p, "%s/index.html", root);
    assert_string_equal(out, p);
    assert_int_equal(lf_routes_static_resolve(root, "/sub", out, sizeof out), 0);
    assert_int_equal(lf_routes_static_resolve(root, "/sub/", out, sizeof out), 0);
    assert_int_equal(lf_routes_static_resolve(root, "/escape", out, sizeof out), LF_EINVAL);
    assert_int_equal(lf_routes_static_resolve(root, "/../etc/passwd", out, sizeof out), LF_EINVAL);
    assert_int_equal(lf_routes_static_resolve(root, "/missing.js", out, sizeof out), LF_ENOTFOUND);
    assert_int_equal(lf_routes_static_resolve("relative", "/", out, sizeof out), LF_EINVAL);

    snprintf(p, sizeof p, "%s/escape", root);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub/index.html", root);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub", root);
    rmdir(p);
    snprintf(p, sizeof p, "%s/index.html", root);
    unlink(p);
    rmdir(root);
}

static void test_mime(void **state) {
    assert_string_equal(lf_routes_mime("/x/index.html"), "text/html; charset=utf-8");
    assert_string_equal(lf_routes_mime("app.JS"), "text/javascript; charset=utf-8");
    assert_string_equal(lf_routes_mime("a.css"), "text/css; charset=utf-8");
    assert_string_equal(lf_routes_mime("i.svg"), "image/svg+xml");
    assert_string_equal(lf_routes_mime("i.webp"), "image/webp");
    assert_string_equal(lf_routes_mime("dir.d/noext"), "application/octet-stream");
}

/* Every router route is in openapi.json and every documented operation is
 * a route: the document cannot drift from the code. */
static void test_openapi_matches_router(void **state) {
    json_error_t e;
    json_t *doc = json_load_file(LF_OPENAPI_FILE, 0, &e);
    if (!doc) fail_msg("openapi.json: %s at line %d", e.text, e.line);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_is_object(paths));
    size_t n;
    const lf_route_t *t = lf_routes_table(&n);
    assert_int_equal(n, LF_ROUTE__COUNT - 1);
    for (size_t i = 0; i < n; i++) {
        char meth[16];
        snprintf(meth, sizeof meth, "%s", t[i].method);
        for (char *c = meth; *c; c++) *c = (char)(*c - 'A' + 'a');
        json_t *op = json_object_get(json_object_get(paths, t[i].path), meth);
        if (!json_is_object(op)) fail_msg("openapi.json lacks %s %s", t[i].method, t[i].path);
        assert_non_null(json_object_get(op, "responses"));
    }
    static const char *const verbs[] = {"get", "put", "post", "delete", "patch", "head", "options", "trace"};
    const char *path;
    json_t *item;
    size_t ops = 0;
    json_object_foreach(paths, path, item) {
        for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
            if (!json_object_get(item, verbs[v])) continue;
            ops++;
            bool found = false;
            for (size_t i = 0; i < n; i++)
                if (!strcmp(t[i].path, path) && !strcasecmp(t[i].method, verbs[v])) found = true;
            if (!found) fail_msg("openapi.json documents %s %s, which the router lacks", verbs[v], path);
        }
    }
    assert_int_equal(ops, n);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_static_paths),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_openapi_matches_router),
    };
    return cmocka_run_group_tests_name("gateway_routes", tests, NULL, NULL);
}
