/* Tests for lf_torchzip: torch-made fixtures (stored and deflated), the real
 * TAESD checkpoints, and hostile pickles that must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lf_error.h"
#include "lf_test_util.h"
#include "lf_torchzip.h"

/* Checks the tensors of one "file" block of torchzip.txt against z. */
static void s_check_block(lf_torchzip_t *z, FILE *f, const char *label)
{
    char line[8192];
    size_t seen = 0;
    long pos = ftell(f);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "file ", 5)) {
            fseek(f, pos, SEEK_SET);
            break;
        }
        pos = ftell(f);
        char name[256], dt[16], shape[128];
        if (sscanf(line, "tensor %255s %15s %127s", name, dt, shape) != 3) continue;
        const lf_tensor_info_t *t = lf_torchzip_find(z, name);
        if (!t) fail_msg("%s: tensor '%s' missing", label, name);
        assert_string_equal(lf_dtype_name(t->dtype), dt);
        char got_shape[128] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(got_shape + strlen(got_shape), sizeof got_shape - strlen(got_shape), "%s%lld",
                     d ? "," : "", (long long)t->shape[d]);
        if (t->ndim == 0) strcpy(got_shape, "-");
        assert_string_equal(got_shape, shape);
        seen++;
        assert_non_null(fgets(line, sizeof line, f));
        pos = ftell(f);
        assert_int_equal(strncmp(line, "values ", 7), 0);
        char *p = line + 7;
        long long idx;
        double want;
        int k;
        while (sscanf(p, "%lld:%lf%n", &idx, &want, &k) == 2) {
            p += k;
            float got = lf_tensorinfo_get_f32(t, idx);
            if (fabs(got - want) > 1e-7 * fmax(1.0, fabs(want)))
                fail_msg("%s: %s[%lld] got %.9g want %.9g", label, name, idx, got, want);
        }
    }
    assert_int_equal(lf_torchzip_count(z), seen);
}

static void test_fixtures(void **state)
{
    char fx[1024], path[1024], line[512];
    FILE *f = fopen(lf_test_fixture(fx, sizeof fx, "torchzip.txt"), "r");
    assert_non_null(f);
    int files = 0;
    while (fgets(line, sizeof line, f)) {
        char label[256];
        if (sscanf(line, "file %255s", label) != 1) continue;
        const char *paths[2] = {NULL, NULL};
        char p2[1024];
        if (!strcmp(label, "tiny")) {
            paths[0] = lf_test_fixture(path, sizeof path, "tiny.pt");
            paths[1] = lf_test_fixture(p2, sizeof p2, "tiny_deflate.pt");
        } else {
            paths[0] = lf_test_refdata(path, sizeof path, label);
        }
        long pos = ftell(f);
        for (int k = 0; k < 2; k++) {
            if (!paths[k]) continue;
            lf_torchzip_t *z = NULL;
            char err[512];
            int rc = lf_torchzip_open(&z, paths[k], err, sizeof err);
            if (rc != 0) fail_msg("%s: %s", paths[k], err);
            fseek(f, pos, SEEK_SET);
            s_check_block(z, f, paths[k]);
            if (!strcmp(label, "tiny")) {
                /* Strided view shares w's storage; the row has an offset. */
                const lf_tensor_info_t *w = lf_torchzip_find(z, "w"), *wt = lf_torchzip_find(z, "wt"),
                                       *row = lf_torchzip_find(z, "row");
                assert_int_equal(wt->strides[0], 1);
                assert_int_equal(wt->strides[1], 6);
                assert_ptr_equal(wt->data, w->data);
                assert_ptr_equal(row->data, (const char *)w->data + 12 * 4);
                assert_string_equal(lf_torchzip_at(z, 0)->name, "w"); /* pickle order */
                assert_null(lf_torchzip_find(z, "step"));
            }
            lf_torchzip_destroy(&z);
            assert_null(z);
            files++;
        }
    }
    fclose(f);
    assert_true(files >= 2);
}

/* A stored zip with the given entries (name, bytes, length). */
typedef struct {
    const char *name;
    const void *data;
    size_t len;
} entry_t;

static void s_put(unsigned char **p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) *(*p)++ = (unsigned char)(v >> (8 * i));
}

static unsigned char *s_zip(const entry_t *e, int n, size_t *len)
{
    unsigned char *b = calloc(1, 65536), *p = b;
    uint32_t offs[16];
    for (int i = 0; i < n; i++) {
        offs[i] = (uint32_t)(p - b);
        uint32_t crc = (uint32_t)crc32(0, e[i].data, (uInt)e[i].len);
        memcpy(p, "PK\3\4", 4);
        p += 4;
        s_put(&p, 20, 2), s_put(&p, 0, 2), s_put(&p, 0, 2), s_put(&p, 0, 4), s_put(&p, crc, 4);
        s_put(&p, e[i].len, 4), s_put(&p, e[i].len, 4), s_put(&p, strlen(e[i].name), 2), s_put(&p, 0, 2);
        memcpy(p, e[i].name, strlen(e[i].name));
        p += strlen(e[i].name);
        if (e[i].len) memcpy(p, e[i].data, e[i].len);
        p += e[i].len;
    }
    uint32_t cd = (uint32_t)(p - b);
    for (int i = 0; i < n; i++) {
        memcpy(p, "PK\1\2", 4);
        p += 4;
        s_put(&p, 20, 2), s_put(&p, 20, 2), s_put(&p, 0, 2), s_put(&p, 0, 2), s_put(&p, 0, 4);
        s_put(&p, crc32(0, e[i].data, (uInt)e[i].len), 4), s_put(&p, e[i].len, 4), s_put(&p, e[i].len, 4);
        s_put(&p, strlen(e[i].name), 2), s_put(&p, 0, 2), s_put(&p, 0, 2), s_put(&p, 0, 2), s_put(&p, 0, 2);
        s_put(&p, 0, 4), s_put(&p, offs[i], 4);
        memcpy(p, e[i].name, strlen(e[i].name));
        p += strlen(e[i].name);
    }
    uint32_t cds = (uint32_t)(p - b) - cd;
    memcpy(p, "PK\5\6", 4);
    p += 4;
    s_put(&p, 0, 2), s_put(&p, 0, 2), s_put(&p, (uint64_t)n, 2), s_put(&p, (uint64_t)n, 2), s_put(&p, cds, 4);
    s_put(&p, cd, 4), s_put(&p, 0, 2);
    *len = (size_t)(p - b);
    return b;
}

static int s_try(const char *pickle, size_t plen, const char *storage, size_t slen, char *err, size_t errlen)
{
    entry_t e[2] = {{"a/data.pkl", pickle, plen}, {"a/data/0", storage, slen}};
    size_t len;
    unsigned char *b = s_zip(e, 2, &len);
    lf_torchzip_t *z = NULL;
    int rc = lf_torchzip_parse(&z, b, len, "evil.pt", err, errlen);
    if (rc == 0) {
        assert_non_null(z);
        lf_torchzip_destroy(&z);
    }
    free(b);
    return rc;
}

#define P(s) s, sizeof(s) - 1

static void test_hostile(void **state)
{
    char err[256];
    float four[4] = {1, 2, 3, 4};
    /* A minimal good pickle: {'t': _rebuild_tensor_v2(storage('0', 4 floats), 0, (4,), (1,), False, {})} */
    const char good[] = "\x80\x02}q\x00X\x01\x00\x00\x00tctorch._utils\n_rebuild_tensor_v2\n"
                        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04tQ"
                        "K\x00K\x04\x85K\x01\x85\x89}tRs.";
    assert_int_equal(s_try(P(good), (const char *)four, 16, err, sizeof err), 0);
    /* Storage smaller than declared. */
    assert_int_equal(s_try(P(good), (const char *)four, 12, err, sizeof err), LF_EFORMAT);
    assert_non_null(strstr(err, "tensor 't'"));
    /* Forbidden globals and opcodes. */
    assert_int_equal(s_try(P("\x80\x02\x63os\nsystem\nX\x02\x00\x00\x00lsR."), NULL, 0, err, sizeof err),
                     LF_EUNSUPPORTED);
    assert_non_null(strstr(err, "os.system"));
    assert_non_null(strstr(err, "evil.pt"));
    assert_int_equal(s_try(P("\x80\x02X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93."), NULL, 0, err, sizeof err),
                     LF_EUNSUPPORTED);
    assert_int_equal(s_try(P("\x80\x02(i__builtin__\neval\n."), NULL, 0, err, sizeof err), LF_EUNSUPPORTED);
    assert_int_equal(s_try(P("\x80\x02}}\x81."), NULL, 0, err, sizeof err), LF_EUNSUPPORTED); /* NEWOBJ of a dict */
    /* Other classes are opaque objects (never called): an object at the top is no state dict. */
    assert_int_equal(s_try(P("\x80\x02\x63mod\nKlass\n)\x81}b."), NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_int_equal(s_try(P("\x80\x02\x63subprocess\nPopen\n)\x81."), NULL, 0, err, sizeof err), LF_EUNSUPPORTED);
    /* Malformed pickles. */
    assert_int_equal(s_try(P("\x80\x02}"), NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_int_equal(s_try(P("\x80\x02s."), NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_int_equal(s_try(P("\x80\x02h\x05."), NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_int_equal(s_try(P("\x80\x02X\xff\xff\xff\x00."), NULL, 0, err, sizeof err), LF_EFORMAT);
    assert_int_equal(s_try(P("\x80\x02]."), NULL, 0, err, sizeof err), LF_EFORMAT); /* not a dict */
    /* Not a zip at all. */
    lf_torchzip_t *z = NULL;
    assert_int_equal(lf_torchzip_parse(&z, "hello world, this is not a zip", 30, NULL, err, sizeof err), LF_EFORMAT);
    assert_null(z);
    assert_int_equal(lf_torchzip_open(&z, "/nonexistent.pt", err, sizeof err), LF_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
