/* Pre-packed weights through the lf_engine facade (lf_engine_opts_t.pack)
 * on the built-in model (models/lf-tiny-shapes.safetensors), bf16:
 *   - file, memory and auto give byte-identical images (the same packed
 *     bytes wherever they live), in f32 too (f16 weights widened once);
 *   - auto picks file where pack_dir is on a disk; where it is not (tmpfs),
 *     memory without a budget, and no packed copies under a memory budget
 *     too small for the weights twice (the model still loads and runs);
 *   - a word other than file, memory, off or auto is refused.
 * Skips without the model, the CLIP merges file (assets/) or bf16 compute. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_engine.h"
#include "lf_error.h"

#define S_MODEL LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors"
#define S_ASSETS LF_SOURCE_DIR "/assets"
#define S_TMPFS_MAGIC 0x01021994

static int s_absent(void)
{
    if (access(S_MODEL, R_OK) || access(S_ASSETS "/clip/bpe_simple_vocab_16e6.txt.gz", R_OK)) {
        printf("  skipped: the built-in model or assets/ (tools/fetch_assets.sh) is absent\n");
        return 1;
    }
    return 0;
}

static int s_is_tmpfs(const char *dir)
{
    struct statfs fs;
    return statfs(dir, &fs) != 0 || fs.f_type == S_TMPFS_MAGIC;
}

/* One image in precision prec with pack / pack_dir / budget; its PNG
 * (caller frees) and the pack in effect; NULL png when the CPU has no bf16
 * (prec "bf16"). */
static uint8_t *s_image_p(const char *prec, const char *pack, const char *dir, uint64_t budget, size_t *len,
                          char *in_effect)
{
    char err[256] = "";
    lf_engine_opts_t o = {.assets_dir = S_ASSETS, .n_threads = 2, .pack = pack, .pack_dir = dir,
                          .memory_budget = budget};
    lf_engine_t *e = NULL;
    if (lf_engine_new(&o, &e, err, sizeof err)) fail_msg("%s", err);
    if (lf_engine_load(e, S_MODEL, NULL)) fail_msg("%s", lf_engine_errstr(e));
    snprintf(in_effect, 8, "%s", lf_engine_pack(e));
    lf_engine_request_t req = lf_engine_request_defaults();
    req.width = req.height = 128;
    req.steps = 3;
    req.prompt = "a red circle";
    req.negative = "blue";
    req.seed = 7;
    req.precision = prec;
    lf_engine_result_t res = {0};
    if (lf_engine_generate(e, &req, NULL, NULL, NULL, &res)) fail_msg("%s", lf_engine_errstr(e));
    uint8_t *png = NULL;
    if (!strcmp(res.precision, prec)) {
        assert_int_equal(res.n_images, 1);
        png = malloc(res.images[0].png_len);
        assert_non_null(png);
        memcpy(png, res.images[0].png, res.images[0].png_len);
        *len = res.images[0].png_len;
    }
    lf_engine_result_clear(&res);
    lf_engine_destroy(&e);
    return png;
}

static uint8_t *s_image(const char *pack, const char *dir, uint64_t budget, size_t *len, char *in_effect)
{
    return s_image_p("bf16", pack, dir, budget, len, in_effect);
}

/* The working directory as the pack file's folder (cwd, n bytes), with
 * LF_WEIGHT_PACK unset; skips where the model is absent or the directory
 * is on tmpfs (no file mode there). */
static void s_file_mode_dir(char *cwd, size_t n)
{
    if (s_absent()) skip();
    assert_non_null(getcwd(cwd, n));
    if (s_is_tmpfs(cwd)) {
        printf("  skipped: the working directory is on tmpfs (no file mode)\n");
        skip();
    }
    unsetenv("LF_WEIGHT_PACK");
}

static void test_pack_modes_same_image(void **state)
{
    (void)state;
    char cwd[4096];
    s_file_mode_dir(cwd, sizeof cwd);
    char got[8];
    size_t lf = 0, lm = 0, la = 0;
    uint8_t *file = s_image("file", cwd, 0, &lf, got);
    if (!file) {
        printf("  skipped: no bf16 compute on this CPU\n");
        skip();
    }
    assert_string_equal(got, "file");
    uint8_t *mem = s_image("memory", cwd, 0, &lm, got);
    assert_string_equal(got, "memory");
    uint8_t *aut = s_image(NULL, cwd, 0, &la, got);
    assert_string_equal(got, "file"); /* auto: a directory on a disk */
    assert_int_equal(lf, lm);
    assert_memory_equal(file, mem, lf);
    assert_int_equal(lf, la);
    assert_memory_equal(file, aut, lf);
    free(file), free(mem), free(aut);
}

/* f32: the f16 weights widened once into f32 copies (in the primitive's
 * layout) wherever they live give the same image. */
static void test_pack_modes_same_image_f32(void **state)
{
    (void)state;
    char cwd[4096];
    s_file_mode_dir(cwd, sizeof cwd);
    char got[8];
    size_t lf = 0, lm = 0;
    uint8_t *file = s_image_p("f32", "file", cwd, 0, &lf, got);
    assert_non_null(file);
    assert_string_equal(got, "file");
    uint8_t *mem = s_image_p("f32", "memory", cwd, 0, &lm, got);
    assert_string_equal(got, "memory");
    assert_int_equal(lf, lm);
    assert_memory_equal(file, mem, lf);
    free(file), free(mem);
}

static void test_pack_auto_budget(void **state)
{
    (void)state;
    if (s_absent()) skip();
    if (s_is_tmpfs("/dev/shm") == 0 || access("/dev/shm", W_OK)) {
        printf("  skipped: no tmpfs at /dev/shm\n");
        skip();
    }
    unsetenv("LF_WEIGHT_PACK");
    const uint64_t w = lf_engine_model_bytes(S_MODEL, NULL, NULL);
    assert_true(w > 0);
    char got[8];
    size_t l1 = 0, l2 = 0;
    /* No disk for the file: in memory without a budget ... */
    uint8_t *a = s_image("auto", "/dev/shm", 0, &l1, got);
    if (!a) skip();
    assert_string_equal(got, "memory");
    /* ... and none under a budget that holds the weights but not twice. */
    uint8_t *b = s_image("auto", "/dev/shm", w + w / 2, &l2, got);
    assert_string_equal(got, "off");
    assert_non_null(b);
    /* A budget with room for the copies: memory. */
    free(s_image("auto", "/dev/shm", 2 * w + 1, &l2, got));
    assert_string_equal(got, "memory");
    free(a), free(b);
}

static void test_pack_bad_word(void **state)
{
    (void)state;
    char err[256] = "";
    lf_engine_opts_t o = {.pack = "disk"};
    lf_engine_t *e = NULL;
    assert_int_equal(lf_engine_new(&o, &e, err, sizeof err), LF_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err, "disk"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_modes_same_image),
        cmocka_unit_test(test_pack_modes_same_image_f32),
        cmocka_unit_test(test_pack_auto_budget),
        cmocka_unit_test(test_pack_bad_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
