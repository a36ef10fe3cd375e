/* lightfarm-engine CLI tests: runs the built binary and checks its output
 * against reference data (sigmas, CLIP ids), the committed torch noise
 * fixture, inspect listings, and the exit codes and messages for bad input.
 * Reference-data checks skip, with a message, when ../shared/refdata is
 * absent. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lf_image.h"
#include "lf_safetensors.h"
#include "lf_test_models.h"
#include "lf_test_util.h"

extern char **environ;

typedef struct {
    int status; /* exit code, or -1 for a signal */
    char *out, *err;
} s_run_t;

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

/* Runs lightfarm-engine with the NULL-terminated arguments. */
static s_run_t s_run(const char *first, ...)
{
    const char *argv[64] = {LF_ENGINE_CLI, first};
    int n = 2;
    va_list ap;
    va_start(ap, first);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 62) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char outp[] = "/tmp/lf_cli_out_XXXXXX", errp[] = "/tmp/lf_cli_err_XXXXXX";
    int fo = mkstemp(outp), fe = mkstemp(errp);
    assert_true(fo >= 0 && fe >= 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fo, 1);
    posix_spawn_file_actions_adddup2(&fa, fe, 2);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, LF_ENGINE_CLI, &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    waitpid(pid, &st, 0);
    close(fo);
    close(fe);
    s_run_t r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1, .out = s_slurp(outp), .err = s_slurp(errp)};
    unlink(outp);
    unlink(errp);
    return r;
}

static void s_free(s_run_t *r)
{
    free(r->out);
    free(r->err);
}

/* Parses whitespace-separated numbers into v[0..cap); returns the count. */
static size_t s_numbers(const char *s, double *v, size_t cap)
{
    size_t n = 0;
    char *end;
    while (*s && n < cap) {
        double x = strtod(s, &end);
        if (end == s) {
            s++;
            continue;
        }
        v[n++] = x;
        s = end;
    }
    return n;
}

/* The value list after "<key> " on a line of the reference file. */
static size_t s_ref_line(const char *path, const char *key, double *v, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[65536];
    size_t n = 0, kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ' ') {
            n = s_numbers(line + kl, v, cap);
            break;
        }
    fclose(f);
    return n;
}

static void s_check_sigmas(const char *sched, const char *key)
{
    char buf[1024];
    const char *ref = lf_test_refdata(buf, sizeof buf, "schedules/sd15_sigmas.txt");
    if (!ref) skip();
    double want[64], got[64];
    size_t nw = s_ref_line(ref, key, want, 64);
    assert_int_equal(nw, 21);
    s_run_t r = s_run("sigmas", "--scheduler", sched, "--steps", "20", NULL);
    assert_int_equal(r.status, 0);
    size_t ng = s_numbers(r.out, got, 64);
    assert_int_equal(ng, nw);
    for (size_t i = 0; i < nw; i++)
        if (fabs(got[i] - want[i]) > 1e-5) fail_msg("%s[%zu]: %.9g vs %.9g", sched, i, got[i], want[i]);
    s_free(&r);
}

static void test_sigmas_normal(void **state)
{
    (void)state;
    s_check_sigmas("normal", "discrete_20");
}

static void test_sigmas_karras(void **state)
{
    (void)state;
    s_check_sigmas("karras", "karras_20");
}

static void test_tokenize(void **state)
{
    (void)state;
    char vb[1024], ib[1024];
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    const char *ids = lf_test_refdata(ib, sizeof ib, "tokenizers/clip/ids.txt");
    if (!vocab || !ids) skip();
    FILE *f = fopen(ids, "r");
    assert_non_null(f);
    char prompt[4096], want[4096];
    int checked = 0;
    while (fgets(prompt, sizeof prompt, f)) {
        if (prompt[0] == '#' || prompt[0] == '\n') continue;
        assert_non_null(fgets(want, sizeof want, f));
        prompt[strcspn(prompt, "\n")] = '\0';
        s_run_t r = s_run("tokenize", "--vocab", vocab, prompt, NULL);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.out, want);
        s_free(&r);
        checked++;
    }
    fclose(f);
    assert_int_equal(checked, 3);
}

/* The committed torch fixture: one fresh generator per "seed" line. */
static void s_check_noise(const char *kind, const char *seed)
{
    char fb[1024], key[64];
    const char *path = lf_test_fixture(fb, sizeof fb, "randn.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[1 << 16];
    snprintf(key, sizeof key, "seed %s %s\n", kind, seed);
    double want[256];
    size_t nw = 0;
    while (fgets(line, sizeof line, f))
        if (!strcmp(line, key) && fgets(line, sizeof line, f)) {
            assert_true(!strncmp(line, "randn 256 ", 10));
            nw = s_numbers(line + 10, want, 256);
            break;
        }
    fclose(f);
    assert_int_equal(nw, 256);
    s_run_t r = s_run("noise", "--seed", seed, "--shape", "1,4,8,8", "--rng",
                      !strcmp(kind, "cpu") ? "cpu" : "philox", NULL);
    assert_int_equal(r.status, 0);
    static double got[300];
    assert_int_equal(s_numbers(r.out, got, 300), 256);
    for (size_t i = 0; i < 256; i++)
        if (fabs(got[i] - want[i]) > 1e-5 * (1 + fabs(want[i])))
            fail_msg("%s %s [%zu]: %.9g vs %.9g", kind, seed, i, got[i], want[i]);
    s_free(&r);
}

static void test_noise_cpu(void **state)
{
    (void)state;
    s_check_noise("cpu", "42");
}

static void test_noise_philox(void **state)
{
    (void)state;
    s_check_noise("philox", "42");
}

static void test_inspect_taesd(void **state)
{
    (void)state;
    char buf[1024];
    const char *p = lf_test_refdata(buf, sizeof buf, "taesd/taef2_decoder.pth");
    if (!p) skip();
    s_run_t r = s_run("inspect", p, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "pytorch zip"));
    assert_non_null(strstr(r.out, "\n19.weight F16 [3, 64, 3, 3]\n"));
    assert_non_null(strstr(r.out, "family: taesd\n"));
    s_free(&r);
}

static void test_inspect_fixture(void **state)
{
    (void)state;
    char buf[1024];
    s_run_t r = s_run("inspect", lf_test_fixture(buf, sizeof buf, "tiny.pt"), NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\nw F32 [4, 6]\n"));
    assert_non_null(strstr(r.out, "family: unknown\n"));
    s_free(&r);
}

/* inspect names the family of a full checkpoint once the networks are in. */
static void test_inspect_checkpoint(void **state)
{
    (void)state;
    char buf[1024];
    s_run_t r = s_run("inspect", lf_test_fixture(buf, sizeof buf, "models/tiny_a.safetensors"), NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\nmodel.diffusion_model.input_blocks.0.0.weight "));
#ifdef LF_HAVE_MODEL
    assert_non_null(strstr(r.out, "family: sd15\n"));
#endif
    s_free(&r);
}

static void s_write_latent(const char *path, int C, int h, int w)
{
    size_t n = (size_t)C * h * w;
    float *z = malloc(n * sizeof *z);
    for (size_t i = 0; i < n; i++) z[i] = (float)((int)(i % 17) - 8) / 8.0f;
    lf_tensor_info_t t = {.name = "latent", .dtype = LF_DTYPE_F32, .ndim = 4, .shape = {1, C, h, w},
                          .data = z, .nbytes = n * sizeof *z};
    assert_int_equal(lf_safetensors_write(path, &t, 1, NULL, 0), 0);
    free(z);
}

static void s_check_png(const char *path, uint32_t w, uint32_t h)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    lf_image_info_t info;
    assert_int_equal(lf_image_probe(buf, len, &info), 0);
    assert_int_equal(info.width, w);
    assert_int_equal(info.height, h);
}

static void test_decode(void **state)
{
    (void)state;
#ifndef LF_HAVE_MODEL
    skip();
#else
    char buf[1024], lat[] = "/tmp/lf_cli_latent_XXXXXX", out[64];
    int fd = mkstemp(lat);
    close(fd);
    snprintf(out, sizeof out, "%s.png", lat);
    /* The VAE inside a full checkpoint (first_stage_model.*): scale 2 in the tiny fixture. */
    s_write_latent(lat, 4, 8, 8);
    s_run_t r = s_run("decode", "--vae", lf_test_fixture(buf, sizeof buf, "models/tiny_a.safetensors"), "--latent", lat,
                      "-o", out, NULL);
    if (r.status != 0) fail_msg("decode: %s", r.err);
    s_check_png(out, 16, 16);
    s_free(&r);
    /* A TAESD-family decoder (FLUX.2 variant: 32 channels, x8). */
    const char *taesd = lf_test_refdata(buf, sizeof buf, "taesd/taef2_decoder.pth");
    if (taesd) {
        r = s_run("decode", "--vae", taesd, "--latent", lat, "-o", out, NULL);
        assert_int_equal(r.status, 1); /* 4 channels: refused with a reason */
        assert_non_null(strstr(r.err, "latent channels"));
        s_free(&r);
        s_write_latent(lat, 32, 4, 4);
        r = s_run("decode", "--vae", taesd, "--latent", lat, "-o", out, NULL);
        if (r.status != 0) fail_msg("decode taesd: %s", r.err);
        s_check_png(out, 32, 32);
        s_free(&r);
    }
    unlink(lat);
    unlink(out);
#endif
}

/* generate through the real networks (a tiny checkpoint that takes CLIP
 * ids): files, progress lines, seeds. */
static void test_generate(void **state)
{
    (void)state;
#ifndef LF_HAVE_MODEL
    skip();
#else
    char vb[1024], model[1024];
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) skip();
    char out[] = "/tmp/lf_cli_gen_XXXXXX", png0[64], png1[64];
    assert_non_null(mkdtemp(out));
    snprintf(model, sizeof model, "%s/tiny-clip.safetensors", out);
    assert_int_equal(lf_test_write_clip_model(LF_FIXTURE_DIR, model), 0);
    snprintf(png0, sizeof png0, "%s/o.png", out);
    snprintf(png1, sizeof png1, "%s/o-1.png", out);
    s_run_t r = s_run("generate", "-m", model, "--vocab", vocab, "-p", "a red circle", "-n", "blue", "-W", "64",
                      "-H", "64", "--steps", "2", "--batch", "2", "--seed", "5", "--sampler", "dpmpp_2m",
                      "--scheduler", "karras", "-o", png0, NULL);
    if (r.status != 0) fail_msg("generate: %s", r.err);
    assert_non_null(strstr(r.err, "step 2/2\n")); /* not a terminal: plain lines */
    assert_non_null(strstr(r.out, "(seed 6)"));
    s_check_png(png0, 64, 64);
    s_check_png(png1, 64, 64);
    s_free(&r);
    /* A separate VAE (here the VAE inside a checkpoint) and img2img from the result. */
    char fix[1024];
    r = s_run("generate", "-m", model, "--vocab", vocab, "-p", "a red circle", "-W", "64", "-H", "64", "--steps", "4",
              "--vae", lf_test_fixture(fix, sizeof fix, "models/tiny_a.safetensors"), "--init-image", png0,
              "--denoise", "0.5", "-o", png1, NULL);
    if (r.status != 0) fail_msg("generate --vae --init-image: %s", r.err);
    assert_non_null(strstr(r.err, "step 3/3\n")); /* t_enc = 2: three steps */
    s_check_png(png1, 64, 64);
    s_free(&r);
    /* A refiner (a copy of the tiny model stands in: the flags' plumbing, not SDXL; switch at 1 = no
     * hand-off) and size conditioning. */
    char refiner[1100];
    snprintf(refiner, sizeof refiner, "%s/tiny-clip-refiner.safetensors", out);
    assert_int_equal(lf_test_write_clip_model(LF_FIXTURE_DIR, refiner), 0);
    r = s_run("generate", "-m", model, "--vocab", vocab, "-p", "a red circle", "-W", "64", "-H", "64", "--steps", "2",
              "--refiner", refiner, "--refiner-switch-at", "1", "--original-size", "128x96", "--crop-top", "8",
              "--target-size", "64x64", "-o", png1, NULL);
    if (r.status != 0) fail_msg("generate --refiner: %s", r.err);
    s_check_png(png1, 64, 64);
    s_free(&r);
    r = s_run("generate", "-m", model, "--vocab", vocab, "-p", "x", "--refiner", "/nonexistent/refiner", "-o", png1, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent/refiner"));
    s_free(&r);
    r = s_run("generate", "-m", model, "--vocab", vocab, "-p", "x", "--init-image", "/nonexistent/init.png", "-o",
              png0, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent/init.png"));
    s_free(&r);
    unlink(png0);
    unlink(png1);
    unlink(model);
    unlink(refiner);
    rmdir(out);
#endif
}

/* The PNG's "parameters" text (caller frees). */
static char *s_png_params(const char *path)
{
    char *png = s_slurp(path), *text = NULL;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    if (lf_image_png_text_get((const uint8_t *)png, (size_t)n, "parameters", &text) != 0)
        fail_msg("%s: no parameters", path);
    free(png);
    return text;
}

/* generate on the tiny SDXL base and refiner (both text encoders widened to
 * CLIP's vocabulary, lf_test_models.h): txt2img, img2img, the refiner
 * hand-off, a separate VAE; the PNG's parameters name the model, the
 * refiner and its switch point, and the VAE. */
static void test_generate_sdxl(void **state)
{
    (void)state;
#ifndef LF_HAVE_MODEL
    skip();
#else
    char vb[1024];
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) skip();
    char dir[] = "/tmp/lf_cli_sdxl_XXXXXX", base[64], refiner[64], png0[64], png1[64];
    assert_non_null(mkdtemp(dir));
    snprintf(base, sizeof base, "%s/xl-base.safetensors", dir);
    snprintf(refiner, sizeof refiner, "%s/xl-refiner.safetensors", dir);
    snprintf(png0, sizeof png0, "%s/a.png", dir);
    snprintf(png1, sizeof png1, "%s/b.png", dir);
    assert_int_equal(lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", NULL, base), 0);
    assert_int_equal(lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "refiner", NULL, refiner), 0);
    s_run_t r = s_run("generate", "-m", base, "--vocab", vocab, "-p", "a red circle", "-n", "blurry", "-W", "64", "-H",
                      "48", "--steps", "3", "--seed", "7", "--cfg", "5", "-o", png0, NULL);
    if (r.status != 0) fail_msg("generate sdxl: %s", r.err);
    assert_non_null(strstr(r.err, "step 3/3\n"));
    s_check_png(png0, 64, 48);
    char *text = s_png_params(png0);
    assert_non_null(strstr(text, "a red circle\nNegative prompt: blurry\nSteps: 3, "));
    assert_non_null(strstr(text, "Seed: 7, Size: 64x48, Model: xl-base, "));
    assert_null(strstr(text, "Refiner"));
    assert_null(strstr(text, "VAE:"));
    free(text);
    s_free(&r);
    /* img2img from it, with the refiner for the second half. */
    r = s_run("generate", "-m", base, "--vocab", vocab, "-p", "a red circle", "-W", "64", "-H", "48", "--steps", "4",
              "--init-image", png0, "--denoise", "0.75", "--refiner", refiner, "--refiner-switch-at", "0.5", "-o",
              png1, NULL);
    if (r.status != 0) fail_msg("generate sdxl img2img --refiner: %s", r.err);
    s_check_png(png1, 64, 48);
    text = s_png_params(png1);
    assert_non_null(strstr(text, "Model: xl-base, "));
    assert_non_null(strstr(text, "Denoising strength: 0.75"));
    assert_non_null(strstr(text, "Refiner: xl-refiner, Refiner switch at: 0.5"));
    free(text);
    s_free(&r);
    /* txt2img with the refiner, and the VAE of another checkpoint (here the refiner's: the base's VAE). */
    r = s_run("generate", "-m", base, "--vocab", vocab, "-p", "a red circle", "-W", "32", "-H", "32", "--steps", "3",
              "--refiner", refiner, "--refiner-switch-at", "0.8", "--vae", refiner, "-o", png1, NULL);
    if (r.status != 0) fail_msg("generate sdxl --refiner --vae: %s", r.err);
    s_check_png(png1, 32, 32);
    text = s_png_params(png1);
    assert_non_null(strstr(text, "Model: xl-base, VAE: xl-refiner, "));
    assert_non_null(strstr(text, "Refiner: xl-refiner, Refiner switch at: 0.8"));
    free(text);
    s_free(&r);
    unlink(png0), unlink(png1), unlink(base), unlink(refiner);
    rmdir(dir);
#endif
}

static void test_usage_errors(void **state)
{
    (void)state;
    static const char *cases[][8] = {
        {"bogus", NULL},
        {"sigmas", "--steps", "x", "--scheduler", "karras", NULL},
        {"sigmas", "--steps", "20", "--scheduler", "nope", NULL},
        {"sigmas", "--steps", NULL},
        {"noise", "--seed", "1", "--shape", "1,4,x,8", NULL},
        {"noise", "--seed", "-3", "--shape", "1,4,8,8", NULL},
        {"generate", "-p", "cat", "-o", "/tmp/x.png", NULL},
        {"generate", "-m", "m.safetensors", "-p", "cat", "-o", "x.png", "--frobnicate"},
        {"generate", "-m", "m", "-p", "c", "-o", "x.png", "-W"},
        {"tokenize", NULL},
        {"inspect", NULL},
        {"decode", "--vae", "v", NULL},
        {"generate", "--refiner-switch-at", "0.5", NULL}, /* without --refiner */
        {"generate", "--refiner-switch-at", "0", "--refiner", "r", NULL},
        {"generate", "--original-size", "10y", NULL},
        {"generate", "--crop-top", "-8", NULL},
        {"generate", "--timesteps", "500,800", NULL}, /* not descending */
        {"generate", "--timesteps", "1000", NULL},
        {"generate", "--timesteps", "999,500", "--steps", "4", NULL}, /* one per step */
        {"generate", "--tcd-gamma", "1.5", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *c = cases[i];
        s_run_t r = s_run(c[0], c[1], c[1] ? c[2] : NULL, c[1] && c[2] ? c[3] : NULL,
                          c[1] && c[2] && c[3] ? c[4] : NULL, c[1] && c[2] && c[3] && c[4] ? c[5] : NULL,
                          c[1] && c[2] && c[3] && c[4] && c[5] ? c[6] : NULL,
                          c[1] && c[2] && c[3] && c[4] && c[5] && c[6] ? c[7] : NULL, NULL);
        if (r.status != 2) fail_msg("case %zu (%s): exit %d, stderr %s", i, c[0], r.status, r.err);
        assert_non_null(strstr(r.err, "lightfarm-engine: "));
        s_free(&r);
    }
    s_run_t r = s_run("--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage:"));
    s_free(&r);
}

static void test_runtime_errors(void **state)
{
    (void)state;
    s_run_t r = s_run("inspect", "/nonexistent/model.safetensors", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent/model.safetensors"));
    s_free(&r);
    r = s_run("generate", "-m", "/nonexistent/m.safetensors", "-p", "cat", "-o", "/tmp/lf_cli.png", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent/m.safetensors"));
    s_free(&r);
    r = s_run("tokenize", "--vocab", "/nonexistent/vocab.txt.gz", "cat", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent/vocab.txt.gz"));
    s_free(&r);
    /* A file that is neither format: both reasons, and the file's name. */
    char buf[1024];
    const char *txt = lf_test_fixture(buf, sizeof buf, "randn.txt");
    r = s_run("inspect", txt, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, txt));
    s_free(&r);
    r = s_run("decode", "--vae", "v.safetensors", "--latent", "/nonexistent/l.safetensors", "-o", "/tmp/o.png",
              NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent/l.safetensors"));
    s_free(&r);
    /* A model that is no checkpoint at all: what would do, not a zip error. */
    r = s_run("generate", "-m", txt, "-p", "cat", "-o", "/tmp/lf_cli.png", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, txt));
    assert_non_null(strstr(r.err, "not a checkpoint (safetensors / .gguf / .ckpt / diffusers folder)"));
    assert_null(strstr(r.err, "zip"));
    s_free(&r);
}

/* An -o that cannot be written fails at once, naming the file and the
 * reason, before the model is loaded or a step sampled. */
static void test_unwritable_output(void **state)
{
    (void)state;
    char buf[1024], dir[] = "/tmp/lf_cli_outdir_XXXXXX";
    const char *model = lf_test_fixture(buf, sizeof buf, "models/tiny_a.safetensors");
    assert_non_null(mkdtemp(dir));
    s_run_t r = s_run("generate", "-m", model, "-p", "cat", "-W", "64", "-H", "64", "--steps", "2", "-o",
                      "/nonexistent-lf-dir/o.png", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "/nonexistent-lf-dir/o.png: cannot write the image"));
    assert_non_null(strstr(r.err, "No such file or directory"));
    assert_null(strstr(r.err, "step "));
    s_free(&r);
    r = s_run("generate", "-m", model, "-p", "cat", "-W", "64", "-H", "64", "--steps", "2", "-o", dir, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, dir));
    assert_non_null(strstr(r.err, "Is a directory"));
    assert_null(strstr(r.err, "step "));
    s_free(&r);
    rmdir(dir);
}

/* argv[1], when given, runs only the tests whose names match it (a glob). */
int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmas_normal), cmocka_unit_test(test_sigmas_karras),
        cmocka_unit_test(test_tokenize),      cmocka_unit_test(test_noise_cpu),
        cmocka_unit_test(test_noise_philox),  cmocka_unit_test(test_inspect_taesd),
        cmocka_unit_test(test_inspect_fixture), cmocka_unit_test(test_inspect_checkpoint),
        cmocka_unit_test(test_decode),        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_generate_sdxl),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_unwritable_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
