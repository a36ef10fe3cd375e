/* LoRAs through the whole farm (HTTP -> gateway -> broker -> worker ->
 * engine) with the built-in model lf-tiny-shapes and a kohya LoRA made for
 * it (tests/reference/make_lora_model_fixtures.py):
 *   - GET /v1/loras and A1111's GET /sdapi/v1/loras list the worker's files
 *     (models/lora/ with subfolders, models/Lora/) with A1111's hash;
 *   - the restore property: a plain job, the same job with the LoRA (a
 *     prompt tag, then the loras list), the plain job again: the third PNG
 *     is the first one byte for byte, and the LoRA changed the pixels;
 *   - the infotext carries the tag and "Lora hashes"; unmatched tensors are
 *     a warning in the job's info; /v1/workers shows the worker's set;
 *   - an unknown LoRA is a 400 naming it (list entry or prompt tag);
 *   - a truncated LoRA file fails its job with a message naming the file,
 *     and the worker keeps serving (the next plain job is the first one);
 *   - POST /sdapi/v1/refresh-loras makes the worker list its folders again:
 *     a file added after its start becomes listed and usable, a removed one
 *     leaves the lists.
 *   - a LoRA's recommended settings (lora/fast_tiny.safetensors: the same
 *     tensors with lf.defaults metadata) are listed, and a job that uses it
 *     without saying steps / CFG / scheduler runs with them.
 * Needs models/lf-tiny-shapes.safetensors and the CLIP merges (<repo>/assets
 * or the reference data); exits 77 (skipped) when either is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lf_image.h"
#include "lf_safetensors.h"
#include "lf_testfarm.h"

#define S_HASH12 "6fa18feaf2f6" /* hashlib: sha256 of the fixture's data after its header */

static lf_testfarm_folder_t s_f; /* models/ and assets/ */
static const char *s_dir = s_f.dir;

/* <tmp>/models: the built-in model, lora/styles/<the LoRA>, Lora/bad
 * (truncated); <tmp>/assets/clip: the CLIP merges. 0, or 77 to skip. */
static int s_prepare(void)
{
    char lora[1200], why[1400];
    snprintf(lora, sizeof lora, "%s/tests/engine/fixtures/lora/lf_tiny_shapes_kohya.safetensors", LF_SOURCE_DIR);
    if (!lf_testfarm_folder_new(&s_f, LF_SOURCE_DIR, "lora-farm", why, sizeof why)) {
        fprintf(stderr, "skipped: %s\n", why);
        return s_dir[0] ? -1 : 77;
    }
    if (lf_testfarm_sh("mkdir -p '%s/models/lora/styles' '%s/models/Lora' && "
                       "ln -s \"$(realpath '%s')\" '%s/models/' && cp '%s' '%s/models/lora/styles/' && "
                       "head -c 4000 '%s' > '%s/models/Lora/bad.safetensors'",
                       s_dir, s_dir, s_f.shapes, s_dir, lora, s_dir, lora, s_dir))
        return -1;
    /* The LoRA again, saying how it wants to be run (lf.defaults), no alias. */
    char dst[300], err[256];
    snprintf(dst, sizeof dst, "%s/models/lora/fast_tiny.safetensors", s_dir);
    lf_safetensors_t *st = NULL;
    if (lf_safetensors_open(&st, lora, err, sizeof err) != 0) return -1;
    size_t n = lf_safetensors_count(st);
    lf_tensor_info_t *t = calloc(n, sizeof *t);
    for (size_t i = 0; t && i < n; i++) t[i] = *lf_safetensors_at(st, i);
    static const char *const meta[] = {"lf.defaults", "{\"steps\": 5, \"cfg\": 2.5, \"scheduler\": \"karras\"}"};
    int rc = t ? lf_safetensors_write(dst, t, n, meta, 1) : -1;
    free(t);
    lf_safetensors_destroy(&st);
    if (rc) return -1;
    return 0;
}

static int s_setup(void **state)
{
    lf_testfarm_opts_t o = {.n_workers = 1, .extra_env = {s_f.env_models, s_f.env_assets}};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return -1;
    *state = farm;
    return 0;
}

/* Submits body (JSON text); returns the HTTP status, *id the job id. */
static int s_submit(lf_testfarm_t *farm, const char *body, char **id, json_t **answer)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    int code = lf_http_json("POST", url, body, &j);
    if (id) *id = code == 202 ? strdup(lf_json_str(j, "id")) : NULL;
    if (answer) *answer = j;
    else json_decref(j);
    return code;
}

/* Runs a job to its end; returns the job JSON, *png its first image (NULL
 * when it failed). */
static json_t *s_run(lf_testfarm_t *farm, const char *prompt, const char *loras_json, uint8_t **png, size_t *len)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"model\":\"lf-tiny-shapes\",\"prompt\":\"%s\",\"seed\":21,\"width\":128,\"height\":128,"
             "\"steps\":6,\"cfg_scale\":5,\"sampler\":\"euler\"%s%s}",
             prompt, loras_json ? ",\"loras\":" : "", loras_json ? loras_json : "");
    char *id = NULL;
    json_t *ans = NULL;
    int code = s_submit(farm, body, &id, &ans);
    if (code != 202) {
        char *d = json_dumps(ans, JSON_COMPACT);
        fail_msg("submit %s answered %d: %s", body, code, d);
    }
    json_decref(ans);
    json_t *j = lf_testfarm_wait(farm, id, 300000);
    if (!j) fail_msg("job %s did not finish", id);
    *png = NULL;
    if (!strcmp(lf_json_str(j, "status"), "done")) {
        char url[512];
        snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
        char *b = NULL;
        if (lf_http_request("GET", url, NULL, NULL, 0, &b, len) != 200) fail_msg("GET %s", url);
        *png = (uint8_t *)b;
    }
    free(id);
    return j;
}

/* Standard base64 of n bytes (caller frees). */
static char *s_b64(const uint8_t *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = t[v >> 18 & 63], *q++ = t[v >> 12 & 63];
        *q++ = i + 1 < n ? t[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? t[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

static int s_same_pixels(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    lf_image_t x = {0}, y = {0};
    assert_int_equal(lf_image_decode(a, al, NULL, &x, NULL, 0), 0);
    assert_int_equal(lf_image_decode(b, bl, NULL, &y, NULL, 0), 0);
    int same = x.width == y.width && !memcmp(x.pixels, y.pixels, (size_t)x.width * x.height * x.channels);
    lf_image_clear(&x);
    lf_image_clear(&y);
    return same;
}

static void test_lora_lists(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    json_t *j = NULL;
    snprintf(url, sizeof url, "%s/v1/loras", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "GET /v1/loras: %s\n", d);
    free(d);
    json_t *l = NULL, *bad = NULL, *e;
    size_t i;
    json_array_foreach(json_object_get(j, "loras"), i, e) {
        if (!strcmp(lf_json_str(e, "name"), "lf_tiny_shapes_kohya")) l = e;
        if (!strcmp(lf_json_str(e, "name"), "bad")) bad = e;
    }
    assert_non_null(l);
    assert_non_null(bad);
    assert_string_equal(lf_json_str(l, "alias"), "shapes_style");
    assert_string_equal(lf_json_str(l, "path"), "styles/lf_tiny_shapes_kohya.safetensors");
    assert_string_equal(lf_json_str(l, "shorthash"), S_HASH12);
    assert_int_equal(strncmp(lf_json_str(l, "hash"), S_HASH12, 12), 0);
    json_decref(j);
    snprintf(url, sizeof url, "%s/sdapi/v1/loras", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    assert_true(json_is_array(j));
    l = NULL;
    json_array_foreach(j, i, e) if (!strcmp(lf_json_str(e, "name"), "lf_tiny_shapes_kohya")) l = e;
    assert_non_null(l);
    assert_string_equal(lf_json_str(l, "alias"), "shapes_style");
    assert_true(json_is_object(json_object_get(l, "metadata")));
    json_decref(j);
}

/* A LoRA's recommended settings: listed; a job using it that does not say
 * gets them (the infotext shows what ran); one that says keeps its own. */
static void test_lora_defaults(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    json_t *j = NULL, *e, *l = NULL;
    size_t i;
    snprintf(url, sizeof url, "%s/v1/loras", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    json_array_foreach(json_object_get(j, "loras"), i, e) if (!strcmp(lf_json_str(e, "name"), "fast_tiny")) l = e;
    assert_non_null(l);
    json_t *d = json_object_get(l, "defaults");
    assert_int_equal(json_integer_value(json_object_get(d, "steps")), 5);
    assert_true(json_number_value(json_object_get(d, "cfg_scale")) == 2.5);
    assert_string_equal(lf_json_str(d, "scheduler"), "karras");
    json_decref(j);
    static const struct {
        const char *body, *want[3];
    } cases[] = {
        {"{\"model\":\"lf-tiny-shapes\",\"prompt\":\"a red circle <lora:fast_tiny:0.5>\",\"seed\":2,\"width\":128,"
         "\"height\":128}",
         {"Steps: 5, ", "CFG scale: 2.5, ", "Karras"}},
        {"{\"model\":\"lf-tiny-shapes\",\"prompt\":\"a red circle\",\"seed\":2,\"width\":128,\"height\":128,"
         "\"steps\":3,\"loras\":[{\"name\":\"fast_tiny\",\"weight\":0.5}]}",
         {"Steps: 3, ", "CFG scale: 2.5, ", "Karras"}},
    };
    for (size_t k = 0; k < 2; k++) {
        char *id = NULL;
        assert_int_equal(s_submit(farm, cases[k].body, &id, NULL), 202);
        j = lf_testfarm_wait(farm, id, 300000);
        assert_non_null(j);
        assert_string_equal(lf_json_str(j, "status"), "done");
        json_decref(j);
        snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
        char *png = NULL, *text = NULL;
        size_t len = 0;
        assert_int_equal(lf_http_request("GET", url, NULL, NULL, 0, &png, &len), 200);
        assert_int_equal(lf_image_png_text_get((const uint8_t *)png, len, "parameters", &text), 0);
        fprintf(stderr, "LoRA defaults job %zu: %s\n", k, text);
        for (int w = 0; w < 3; w++) assert_non_null(strstr(text, cases[k].want[w]));
        free(text), free(png), free(id);
    }
}

static void test_lora_restore_through_the_farm(void **state)
{
    lf_testfarm_t *farm = *state;
    uint8_t *a = NULL, *b = NULL, *c = NULL, *a2 = NULL, *a3 = NULL;
    size_t al = 0, bl = 0, cl = 0, a2l = 0, a3l = 0;
    json_t *ja = s_run(farm, "a red circle on a blue background", NULL, &a, &al);
    assert_non_null(a);
    json_t *jb = s_run(farm, "a red circle on a blue background <lora:lf_tiny_shapes_kohya:1>", NULL, &b, &bl);
    assert_non_null(b);
    assert_false(s_same_pixels(a, al, b, bl));
    /* The infotext: the tag kept, A1111's "Lora hashes"; the warning about
     * the fixture's module that no model has. */
    char *text = NULL;
    assert_int_equal(lf_image_png_text_get(b, bl, "parameters", &text), 0);
    fprintf(stderr, "infotext: %s\n", text);
    assert_non_null(strstr(text, "<lora:lf_tiny_shapes_kohya:1>"));
    assert_non_null(strstr(text, "Lora hashes: \"lf_tiny_shapes_kohya: " S_HASH12 "\""));
    free(text);
    char *info = json_dumps(jb, JSON_COMPACT);
    assert_non_null(strstr(info, "lora_unet_no_such_layer"));
    free(info);
    /* A1111's png-info reads "Lora hashes" back. */
    char pi[256];
    snprintf(pi, sizeof pi, "%s/sdapi/v1/png-info", lf_testfarm_url(farm));
    char *b64 = s_b64(b, bl);
    json_t *req = json_pack("{s:s}", "image", b64), *pj = NULL;
    char *reqs = json_dumps(req, JSON_COMPACT);
    assert_int_equal(lf_http_json("POST", pi, reqs, &pj), 200);
    assert_string_equal(lf_json_str(json_object_get(pj, "parameters"), "Lora hashes"), "lf_tiny_shapes_kohya: " S_HASH12);
    json_decref(pj), json_decref(req), free(reqs), free(b64);
    /* /v1/workers: the worker's set (its heartbeat carries it). */
    char url[256];
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    int seen = 0;
    for (int k = 0; k < 60 && !seen; k++) {
        json_t *w = NULL;
        if (lf_http_json("GET", url, NULL, &w) == 200)
            seen = !strcmp(lf_json_str(json_array_get(json_object_get(w, "workers"), 0), "lora_set"),
                           "lf_tiny_shapes_kohya:1:1");
        json_decref(w);
        if (!seen) usleep(100000);
    }
    assert_true(seen);
    /* The same LoRA by the list, by alias: the same pixels. */
    json_t *jc = s_run(farm, "a red circle on a blue background", "[{\"name\":\"shapes_style\",\"weight\":1}]", &c, &cl);
    assert_non_null(c);
    assert_true(s_same_pixels(b, bl, c, cl));
    /* The restore: the plain job again is the first, byte for byte. */
    json_t *ja2 = s_run(farm, "a red circle on a blue background", NULL, &a2, &a2l);
    assert_int_equal(al, a2l);
    assert_memory_equal(a, a2, al);

    /* Unknown names: 400 naming them, nothing queued. */
    json_t *ans = NULL;
    assert_int_equal(s_submit(farm, "{\"model\":\"lf-tiny-shapes\",\"prompt\":\"x <lora:nope:1>\"}", NULL, &ans), 400);
    assert_string_equal(lf_json_str(json_object_get(ans, "error"), "code"), "unknown_lora");
    assert_string_equal(lf_json_str(json_object_get(ans, "error"), "field"), "prompt");
    assert_non_null(strstr(lf_json_str(json_object_get(ans, "error"), "message"), "'nope'"));
    json_decref(ans);
    assert_int_equal(s_submit(farm, "{\"model\":\"lf-tiny-shapes\",\"loras\":[{\"name\":\"nope2\"}]}", NULL, &ans), 400);
    assert_string_equal(lf_json_str(json_object_get(ans, "error"), "field"), "loras[0].name");
    json_decref(ans);

    /* A truncated file: the job fails naming it; the worker keeps serving. */
    uint8_t *none = NULL;
    size_t nl = 0;
    json_t *jbad = s_run(farm, "a red circle on a blue background <lora:bad:1>", NULL, &none, &nl);
    char *dbad = json_dumps(jbad, JSON_COMPACT);
    fprintf(stderr, "bad LoRA job: %s\n", dbad);
    assert_string_equal(lf_json_str(jbad, "status"), "failed");
    assert_non_null(strstr(dbad, "bad.safetensors"));
    free(dbad);
    json_t *ja3 = s_run(farm, "a red circle on a blue background", NULL, &a3, &a3l);
    assert_int_equal(al, a3l);
    assert_memory_equal(a, a3, al);

    free(a), free(b), free(c), free(a2), free(a3);
    json_decref(ja), json_decref(jb), json_decref(jc), json_decref(ja2), json_decref(ja3), json_decref(jbad);
}

/* Is a LoRA named name in GET url's list (the native answer's "loras", or
 * A1111's array)? */
static int s_listed(const char *url, const char *name)
{
    json_t *j = NULL, *e;
    size_t i;
    int found = 0;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    json_t *arr = json_is_array(j) ? j : json_object_get(j, "loras");
    json_array_foreach(arr, i, e) found |= !strcmp(lf_json_str(e, "name"), name);
    json_decref(j);
    return found;
}

/* A1111's refresh-loras: a file dropped into models/lora after the worker
 * started is refused until the refresh, then listed (native and A1111) and
 * usable (its pixels are those of the same bytes under their first name);
 * removed, it leaves both lists at the next refresh and is refused again. */
static void test_refresh_loras(void **state)
{
    lf_testfarm_t *farm = *state;
    char native[256], a1111[256], refresh[256];
    snprintf(native, sizeof native, "%s/v1/loras", lf_testfarm_url(farm));
    snprintf(a1111, sizeof a1111, "%s/sdapi/v1/loras", lf_testfarm_url(farm));
    snprintf(refresh, sizeof refresh, "%s/sdapi/v1/refresh-loras", lf_testfarm_url(farm));
    const char *job = "{\"model\":\"lf-tiny-shapes\",\"prompt\":\"x <lora:fresh_drop:1>\",\"steps\":2}";
    assert_false(s_listed(native, "fresh_drop"));
    json_t *ans = NULL;
    assert_int_equal(s_submit(farm, job, NULL, &ans), 400);
    assert_string_equal(lf_json_str(json_object_get(ans, "error"), "code"), "unknown_lora");
    json_decref(ans);
    assert_int_equal(lf_testfarm_sh("cp '%s/models/lora/styles/lf_tiny_shapes_kohya.safetensors' '%s/models/lora/fresh_drop.safetensors'",
                          s_dir, s_dir), 0);
    json_t *r = NULL;
    assert_int_equal(lf_http_json("POST", refresh, NULL, &r), 200);
    assert_true(!r || json_is_null(r)); /* the body is `null` */
    json_decref(r);
    /* Listed the moment the refresh has answered. */
    assert_true(s_listed(native, "fresh_drop"));
    assert_true(s_listed(a1111, "fresh_drop"));
    uint8_t *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    json_t *ja = s_run(farm, "a red circle on a blue background <lora:fresh_drop:1>", NULL, &a, &al);
    assert_non_null(a);
    json_t *jb = s_run(farm, "a red circle on a blue background <lora:lf_tiny_shapes_kohya:1>", NULL, &b, &bl);
    assert_non_null(b);
    assert_true(s_same_pixels(a, al, b, bl));
    free(a), free(b), json_decref(ja), json_decref(jb);
    /* Removed: gone from both lists after the next refresh, refused again. */
    assert_int_equal(lf_testfarm_sh("rm '%s/models/lora/fresh_drop.safetensors'", s_dir), 0);
    assert_int_equal(lf_http_json("POST", refresh, NULL, &r), 200);
    json_decref(r);
    assert_false(s_listed(native, "fresh_drop"));
    assert_false(s_listed(a1111, "fresh_drop"));
    assert_true(s_listed(native, "lf_tiny_shapes_kohya"));
    assert_int_equal(s_submit(farm, job, NULL, &ans), 400);
    json_decref(ans);
}

int main(void)
{
    int rc = s_prepare();
    if (rc) return rc == 77 ? 77 : 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_lists),
        cmocka_unit_test(test_lora_defaults),
        cmocka_unit_test(test_lora_restore_through_the_farm),
        cmocka_unit_test(test_refresh_loras),
    };
    rc = cmocka_run_group_tests(tests, s_setup, lf_testfarm_teardown);
    lf_testfarm_folder_remove(&s_f);
    return rc;
}
