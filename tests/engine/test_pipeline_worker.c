/* The worker's Stable Diffusion backend (worker/lf_engine_runner.c) through
 * the worker's runner (lf_runner.h): model discovery in a models folder
 * (bad files skipped), backend order with lf-diagnostic last, a job on the
 * real networks with progress, previews, seeds, parameters and info_json,
 * the model staying resident and switching, cancel. Models: the tiny
 * fixture checkpoints, and one of them widened to CLIP's vocabulary
 * (lf_test_models.h) for jobs; jobs need the CLIP merges (reference data)
 * and skip with a message when they are absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lf_diagnostic.h"
#include "lf_engine.h"
#include "lf_engine_runner.h"
#include "lf_error.h"
#include "lf_image.h"
#include "lf_runner.h"
#include "lf_safetensors.h"
#include "lf_test_models.h"
#include "lf_test_util.h"

typedef struct {
    char dir[256], models[300], assets[300];
    int have_vocab; /* CLIP merges present: jobs can run */
} s_fix_t;

static void s_rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("cannot remove %s\n", dir);
}

static int s_setup(void **state)
{
    char vb[1024], model[1024];
    const char *vocab = lf_test_refdata(vb, sizeof vb, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz");
    s_fix_t *f = calloc(1, sizeof *f);
    f->have_vocab = vocab != NULL;
    snprintf(f->dir, sizeof f->dir, "/tmp/lf_worker_engine_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->models, sizeof f->models, "%s/models", f->dir);
    snprintf(f->assets, sizeof f->assets, "%s/assets", f->dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/clip' '%s/not-a-model' && ln -s '%s/models/tiny_a.safetensors' '%s/tiny-a.safetensors' && "
             "ln -s '%s/models/tiny_b_diffusers' '%s/tiny-b' && printf junk > '%s/broken.safetensors' && "
             "cp '%s/tiny.pt' '%s/not-sd.ckpt' && printf x > '%s/notes.txt'",
             f->assets, f->models, LF_FIXTURE_DIR, f->models, LF_FIXTURE_DIR, f->models, f->models,
             LF_FIXTURE_DIR, f->models, f->models);
    assert_int_equal(system(cmd), 0);
    if (vocab) {
        snprintf(cmd, sizeof cmd, "ln -s '%s' '%s/clip/'", vocab, f->assets);
        assert_int_equal(system(cmd), 0);
    }
    snprintf(model, sizeof model, "%s/tiny-clip.safetensors", f->models);
    assert_int_equal(lf_test_write_clip_model(LF_FIXTURE_DIR, model), 0);

    setenv("LF_ASSETS_DIR", f->assets, 1);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    if (!f) return 0;
    s_rm_rf(f->dir);
    unsetenv("LF_ASSETS_DIR");
    free(f);
    return 0;
}

typedef struct {
    int calls, previews;
    uint32_t last, steps;
    uint32_t pw, ph; /* the last preview's size */
} s_prog_t;

static void s_progress(void *ud, uint32_t step, uint32_t steps, const uint8_t *preview, size_t len)
{
    s_prog_t *p = ud;
    p->calls++;
    p->last = step;
    p->steps = steps;
    if (preview) {
        lf_image_info_t info;
        assert_int_equal(lf_image_probe(preview, len, &info), 0);
        p->previews++;
        p->pw = info.width, p->ph = info.height;
    }
}

static void test_discovery_and_job(void **state)
{
    s_fix_t *f = *state;
    lf_runner_env_t env = {.device = "cpu", .models_dir = f->models, .preview_every = 2};
    static const lf_runner_backend_t *const backends[] = {&lf_engine_runner_backend, &lf_diagnostic_backend};
    /* A Flux model in ComfyUI's split layout (removed again below): assembled, but not served: no T5 tokenizer is found
     * (ComfyUI's folders carry none; test_flux_parts serves one that has it). */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/diffusion_models' '%s/clip' '%s/vae' && "
             "ln -s '%s/flux/flux_schnell_bfl.safetensors' '%s/diffusion_models/flux-tiny.safetensors' && "
             "ln -s '%s/flux/flux_clip_l.safetensors' '%s/clip/clip_l.safetensors' && "
             "ln -s '%s/flux/flux_vae.safetensors' '%s/vae/ae.safetensors'",
             f->models, f->models, f->models, LF_FIXTURE_DIR, f->models, LF_FIXTURE_DIR, f->models,
             LF_FIXTURE_DIR, f->models);
    assert_int_equal(system(cmd), 0);
    lf_runner_t *r = lf_runner_new(&env, backends, 2);
    assert_non_null(r);
    size_t n = 0;
    const lf_model_info_t *m = lf_runner_models(r, &n);
    /* Sorted engine models, the broken and non-SD files and the Flux model (no T5 tokenizer) skipped, diagnostic last. */
    size_t k = 0;
    assert_int_equal(n, 4);
    assert_string_equal(m[k].name, "tiny-a");
    assert_string_equal(m[k++].kind, "sd15");
    assert_string_equal(m[k++].name, "tiny-b");
    assert_string_equal(m[k++].name, "tiny-clip");
    assert_string_equal(m[k].name, LF_DIAGNOSTIC_MODEL);
    assert_string_equal(lf_runner_model_kind(r, "tiny-b"), "sd15");
    snprintf(cmd, sizeof cmd, "rm -r '%s/diffusion_models' '%s/clip' '%s/vae'", f->models, f->models, f->models);
    assert_int_equal(system(cmd), 0);
    /* A fixture loads and stays resident; the job below switches models. */
    if (f->have_vocab) {
        assert_int_equal(lf_runner_load(r, "tiny-a"), 0);
        assert_string_equal(lf_runner_resident(r), "tiny-a");
    }
    assert_int_equal(lf_runner_load(r, "no-such-model"), LF_ENOTFOUND);
    if (!f->have_vocab) {
        lf_runner_destroy(&r);
        skip();
    }

    lf_job_params_t p = {.model = "tiny-clip", .prompt = "a red circle", .negative_prompt = "blue",
                         .sampler = "euler_a", .scheduler = "karras", .width = 64, .height = 64,
                         .steps = 4, .batch_size = 2, .cfg_scale = 5.0, .seed = 11};
    s_prog_t pr = {0};
    atomic_bool cancel = false;
    lf_runner_job_t job = {.params = &p, .progress = s_progress, .progress_ud = &pr, .cancel = &cancel};
    lf_runner_output_t out = {0};
    char err[256] = "";
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run: %s", err);
    assert_int_equal(pr.calls, 4);
    assert_int_equal(pr.previews, 1); /* step 2; none with the last */
    /* No TAESD file in the models folder: the engine's approx preview, the
     * fixture's 32x32 latent (vae_scale 2) shown x2. */
    assert_int_equal(pr.pw, 64);
    assert_int_equal(pr.ph, 64);
    assert_int_equal(out.n_images, 2);
    assert_int_equal(out.images[1].seed, 12);
    char *text = NULL;
    assert_int_equal(lf_image_png_text_get(out.images[1].png.data, out.images[1].png.len, "parameters", &text), 0);
    assert_non_null(strstr(text, "Sampler: Euler a, Schedule type: Karras, CFG scale: 5, Seed: 12"));
    assert_non_null(strstr(text, "Model: tiny-clip"));
    free(text);
    json_t *info = json_loads(out.info_json, 0, NULL);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(info, "all_seeds"), 1)), 12);
    assert_string_equal(json_string_value(json_object_get(info, "sd_model_name")), "tiny-clip");
    assert_int_equal(json_array_size(json_object_get(info, "infotexts")), 2);
    json_decref(info);
    lf_runner_output_clear(&out);
    assert_string_equal(lf_runner_resident(r), "tiny-clip");

    /* Few-step rows reach the engine: tcd's gamma and explicit timesteps
     * (Hyper-SD 1-step), written in the infotext; timesteps the schedule
     * cannot take are refused. */
    lf_job_params_t fp = p;
    fp.sampler = "tcd", fp.scheduler = "trailing", fp.steps = 1, fp.batch_size = 1, fp.cfg_scale = 1;
    fp.tcd_gamma = 1.0, fp.timesteps = "800";
    lf_runner_job_t fjob = {.params = &fp, .cancel = &cancel};
    if (lf_runner_run(r, &fjob, &out, err, sizeof err) != 0) fail_msg("run: %s", err);
    assert_int_equal(lf_image_png_text_get(out.images[0].png.data, out.images[0].png.len, "parameters", &text), 0);
    if (!strstr(text, "Sampler: TCD") || !strstr(text, "Eta: 1") || !strstr(text, "Timesteps: 800"))
        fail_msg("infotext: %s", text);
    free(text);
    info = json_loads(out.info_json, 0, NULL);
    assert_true(json_real_value(json_object_get(info, "eta")) == 1.0); /* A1111's info key */
    json_decref(info);
    lf_runner_output_clear(&out);
    fp.timesteps = "500,800", fp.steps = 2;
    assert_int_equal(lf_runner_run(r, &fjob, &out, err, sizeof err), LF_EINVAL);
    assert_null(out.images);

    /* Cancel raised: the job stops with LF_ECANCELED, the model stays. */
    atomic_store(&cancel, true);
    assert_int_equal(lf_runner_run(r, &job, &out, err, sizeof err), LF_ECANCELED);
    assert_string_equal(lf_runner_resident(r), "tiny-clip");
    atomic_store(&cancel, false);

    /* img2img without an init image is refused; a bad size is refused. */
    p.mode = "img2img";
    p.denoise = 0.5;
    assert_int_equal(lf_runner_run(r, &job, &out, err, sizeof err), LF_EINVAL);
    p.mode = NULL;
    p.width = 60;
    assert_true(lf_runner_run(r, &job, &out, err, sizeof err) < 0);
    assert_null(out.images);
    lf_runner_destroy(&r);
}

/* Batched jobs (lf_runner_run_batch): jobs of one batch key run as one
 * batch (their steps interleave) and each job's images are the bytes it
 * makes alone, its previews its own image's as alone; a job that fails its checks fails alone; jobs of different
 * keys run one by one; a raised batch cancel stops them all. */
typedef struct {
    char order[64]; /* the job letter of each progress call, in order */
    size_t n;
    char letter;
    uint8_t *preview[4]; /* each job's last preview (by letter) */
    size_t preview_len[4];
} s_seq_t;
static s_seq_t s_seq;
static void s_seq_progress(void *ud, uint32_t step, uint32_t steps, const uint8_t *preview, size_t len)
{
    (void)step, (void)steps;
    const char c = *(const char *)ud;
    if (s_seq.n + 1 < sizeof s_seq.order) s_seq.order[s_seq.n++] = c;
    if (preview && len && c >= 'a' && c <= 'd') {
        free(s_seq.preview[c - 'a']);
        s_seq.preview[c - 'a'] = malloc(len);
        assert_non_null(s_seq.preview[c - 'a']);
        memcpy(s_seq.preview[c - 'a'], preview, len);
        s_seq.preview_len[c - 'a'] = len;
    }
}

static void s_seq_clear(void)
{
    for (int i = 0; i < 4; i++) free(s_seq.preview[i]);
    memset(&s_seq, 0, sizeof s_seq);
}

static void test_batch(void **state)
{
    s_fix_t *f = *state;
    if (!f->have_vocab) skip();
    /* A preview at step 1 of 2: each job's own image's, batched as alone. */
    lf_runner_env_t env = {.device = "cpu", .models_dir = f->models, .preview_every = 1};
    static const lf_runner_backend_t *const backends[] = {&lf_engine_runner_backend};
    lf_runner_t *r = lf_runner_new(&env, backends, 1);
    assert_non_null(r);
    lf_job_params_t p[4] = {
        {.model = "tiny-clip", .prompt = "a red circle", .negative_prompt = "blue", .sampler = "euler_a",
         .scheduler = "karras", .width = 64, .height = 64, .steps = 2, .batch_size = 1, .cfg_scale = 5.0, .seed = 11},
    };
    p[1] = p[0], p[1].prompt = "a green square", p[1].negative_prompt = "", p[1].seed = 3, p[1].batch_size = 2;
    p[2] = p[0], p[2].width = 60;                 /* refused by the checks */
    p[3] = p[0], p[3].sampler = "dpmpp_2m";       /* another batch key */
    static const char letters[4] = {'a', 'b', 'c', 'd'};
    lf_runner_job_t jobs[4];
    lf_runner_output_t alone[4] = {{0}}, outs[4];
    int codes[4];
    char errs[4][256], err[256];
    uint8_t *prev_alone[2] = {NULL, NULL};
    size_t prev_alone_len[2] = {0, 0};
    s_seq_clear();
    for (int j = 0; j < 4; j++) {
        jobs[j] = (lf_runner_job_t){.params = &p[j], .progress = s_seq_progress, .progress_ud = (void *)&letters[j]};
        if (j != 2 && lf_runner_run(r, &jobs[j], &alone[j], err, sizeof err)) fail_msg("%s", err);
    }
    for (int j = 0; j < 2; j++) {
        prev_alone[j] = s_seq.preview[j], prev_alone_len[j] = s_seq.preview_len[j];
        s_seq.preview[j] = NULL;
        assert_non_null(prev_alone[j]);
    }
    assert_true(prev_alone_len[0] != prev_alone_len[1] || memcmp(prev_alone[0], prev_alone[1], prev_alone_len[0]));
    s_seq_clear();
    atomic_bool cancel = false;
    assert_int_equal(lf_runner_run_batch(r, jobs, 3, &cancel, outs, codes, errs[0], sizeof errs[0]), 0);
    assert_string_equal(s_seq.order, "abab"); /* one batch: every step is both jobs' */
    for (int j = 0; j < 2; j++) { /* each job's preview is its own image's (was: the batch's first) */
        assert_int_equal(s_seq.preview_len[j], prev_alone_len[j]);
        assert_memory_equal(s_seq.preview[j], prev_alone[j], prev_alone_len[j]);
        free(prev_alone[j]);
    }
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 0);
    assert_true(codes[2] < 0);
    assert_non_null(strstr(errs[2], "size"));
    for (int j = 0; j < 2; j++) {
        assert_int_equal(outs[j].n_images, alone[j].n_images);
        for (size_t i = 0; i < outs[j].n_images; i++) {
            assert_int_equal(outs[j].images[i].png.len, alone[j].images[i].png.len);
            assert_memory_equal(outs[j].images[i].png.data, alone[j].images[i].png.data, alone[j].images[i].png.len);
        }
        lf_runner_output_clear(&outs[j]);
    }
    /* Another key: one by one, each as alone. */
    s_seq_clear();
    lf_runner_job_t two[2] = {jobs[0], jobs[3]};
    assert_int_equal(lf_runner_run_batch(r, two, 2, &cancel, outs, codes, errs[0], sizeof errs[0]), 0);
    assert_string_equal(s_seq.order, "aadd");
    assert_int_equal(codes[1], 0);
    assert_memory_equal(outs[1].images[0].png.data, alone[3].images[0].png.data, alone[3].images[0].png.len);
    lf_runner_output_clear(&outs[0]);
    lf_runner_output_clear(&outs[1]);
    /* The batch's cancel stops every job. */
    atomic_store(&cancel, true);
    assert_int_equal(lf_runner_run_batch(r, jobs, 2, &cancel, outs, codes, errs[0], sizeof errs[0]), 0);
    assert_int_equal(codes[0], LF_ECANCELED);
    assert_int_equal(codes[1], LF_ECANCELED);
    assert_int_equal(lf_runner_run_batch(r, jobs, 0, &cancel, outs, codes, errs[0], sizeof errs[0]), LF_EINVAL);
    for (int j = 0; j < 4; j++) lf_runner_output_clear(&alone[j]);
    s_seq_clear();
    lf_runner_destroy(&r);
}

/* A one-tensor safetensors file whose name makes the probe say `family`. */
static void s_probe_file(const char *path, const char *tensor)
{
    static const float v = 1.0f;
    lf_tensor_info_t t = {.name = tensor, .dtype = LF_DTYPE_F32, .ndim = 1, .shape = {1}, .strides = {1},
                          .data = &v, .nbytes = sizeof v};
    assert_int_equal(lf_safetensors_write(path, &t, 1, NULL, 0), 0);
}

/* SDXL in the models folder: an SDXL checkpoint (by tensor names) is
 * listed with its family, 1024 px and its preview kind; models/vae/ files
 * are the VAEs jobs may name; a job's refiner is loaded next to the base
 * and reported resident (a tiny SD1.5 fixture stands in for the refiner:
 * the plumbing, not SDXL's networks); unknown refiner / VAE names are
 * refused naming the field. */
static void test_sdxl_refiner_vae(void **state)
{
    s_fix_t *f = *state;
    char path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/xl-base.safetensors", f->models);
    s_probe_file(path, "conditioner.embedders.1.model.ln_final.weight");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/vae' '%s/taesd' && ln -s '%s/models/tiny_a.safetensors' '%s/vae/fixed.safetensors' && "
             "printf x > '%s/vae/readme.txt' && printf x > '%s/taesd/taesdxl_decoder.safetensors'",
             f->models, f->models, LF_FIXTURE_DIR, f->models, f->models, f->models);
    assert_int_equal(system(cmd), 0);
    /* The refiner: a second copy of the base (same vocabulary and networks). */
    snprintf(path, sizeof path, "%s/tiny-clip-refiner.safetensors", f->models);
    assert_int_equal(lf_test_write_clip_model(LF_FIXTURE_DIR, path), 0);
    lf_runner_env_t env = {.device = "cpu", .models_dir = f->models};
    static const lf_runner_backend_t *const backends[] = {&lf_engine_runner_backend};
    lf_runner_t *r = lf_runner_new(&env, backends, 1);
    assert_non_null(r);
    size_t n = 0;
    const lf_model_info_t *m = lf_runner_models(r, &n);
    const lf_model_info_t *xl = NULL, *a = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].name, "xl-base")) xl = &m[i];
        if (!strcmp(m[i].name, "tiny-a")) a = &m[i];
    }
    assert_non_null(xl);
    assert_string_equal(xl->kind, "sdxl");
    assert_int_equal(xl->resolution, 1024);
    assert_string_equal(xl->preview, "taesd"); /* taesdxl_decoder.* is installed */
    assert_non_null(a);
    assert_string_equal(a->preview, "approx"); /* no SD1.x TAESD file */
    const char *const *vaes = lf_runner_vaes(r, &n);
    assert_int_equal(n, 1);
    assert_string_equal(vaes[0], "fixed");
    /* Its family from the header: 4 latent channels, an SD1.x checkpoint's
     * keys (or none told: "sd"). */
    const lf_vae_info_t *vi = lf_runner_vae_info(r, &n);
    assert_int_equal(n, 1);
    printf("  VAE fixed: %s, %u latent channels\n", vi[0].kind ? vi[0].kind : "?", vi[0].latent);
    assert_string_equal(vi[0].name, "fixed");
    assert_int_equal(vi[0].latent, 4);
    assert_non_null(vi[0].kind);
    assert_true(!strcmp(vi[0].kind, "sd15") || !strcmp(vi[0].kind, "sd"));
    if (!f->have_vocab) {
        lf_runner_destroy(&r);
        skip();
    }
    lf_job_params_t p = {.model = "tiny-clip", .prompt = "a red circle", .width = 64, .height = 64, .steps = 2,
                         .batch_size = 1, .cfg_scale = 5.0, .seed = 3, .refiner_checkpoint = "tiny-clip-refiner",
                         /* 1 = no hand-off: residency here; the refiner's steps are the pipeline's tests */
                         .refiner_switch_at = 1.0, .aesthetic_score = 6, .negative_aesthetic_score = 2.5};
    lf_runner_job_t job = {.params = &p};
    lf_runner_output_t out = {0};
    char err[256] = "";
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run: %s", err);
    assert_string_equal(lf_runner_resident(r), "tiny-clip");
    assert_string_equal(lf_runner_refiner(r), "tiny-clip-refiner"); /* kept next to the base */
    json_t *info = json_loads(out.info_json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(info, "refiner_checkpoint")), "tiny-clip-refiner");
    json_decref(info);
    lf_runner_output_clear(&out);
    /* A separate VAE (a tiny fixture's) reloads the base with it; unset goes back. */
    p.refiner_checkpoint = NULL;
    p.vae = "fixed";
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run with vae: %s", err);
    info = json_loads(out.info_json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(info, "sd_vae_name")), "fixed");
    json_decref(info);
    char *text = NULL;
    assert_int_equal(lf_image_png_text_get(out.images[0].png.data, out.images[0].png.len, "parameters", &text), 0);
    assert_non_null(strstr(text, "Model: tiny-clip"));
    free(text);
    lf_runner_output_clear(&out);
    p.vae = NULL;
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run without vae: %s", err);
    lf_runner_output_clear(&out);
    p.refiner_checkpoint = "no-such-refiner";
    assert_int_equal(lf_runner_run(r, &job, &out, err, sizeof err), LF_ENOTFOUND);
    assert_non_null(strstr(err, "refiner_checkpoint"));
    p.refiner_checkpoint = NULL;
    p.vae = "no-such-vae";
    assert_int_equal(lf_runner_run(r, &job, &out, err, sizeof err), LF_ENOTFOUND);
    assert_non_null(strstr(err, "vae"));
    lf_runner_destroy(&r);
}

/* Previews per family: with models/taesd/taesdxl_decoder.* installed (a
 * tiny TAESD fixture stands in for TAESDXL: the same architecture and 4
 * latent channels) an SDXL model's previews come from it — the decoder's
 * full-size image: the 8x8 latent x8 = 64x64 (the SDXL fixture takes
 * lf-tiny-shapes' 8x VAE here, as real SDXL's; with its own 2x VAE the x8
 * TAESD image would be larger than the image and dropped) — while an SD1.5
 * model, with no taesd_decoder.* installed, keeps the approx preview (its
 * 32x32 latent shown at the image's 64x64). A TAESD larger than the image
 * is dropped, not written past the buffer. */
static void test_sdxl_taesdxl_preview(void **state)
{
    s_fix_t *f = *state;
    char path[1024], cmd[2048];
    char shapes[1024];
    snprintf(shapes, sizeof shapes, "%s/models/lf-tiny-shapes.safetensors", LF_SOURCE_DIR);
    if (access(shapes, R_OK) != 0) {
        printf("SKIP: no %s (its 8x VAE)\n", shapes);
        skip();
    }
    snprintf(path, sizeof path, "%s/xl-base.safetensors", f->models);
    assert_int_equal(lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", shapes, path), 0);
    snprintf(path, sizeof path, "%s/xl-2x.safetensors", f->models);
    assert_int_equal(lf_test_write_clip_sdxl(LF_FIXTURE_DIR, "base", NULL, path), 0);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/taesd' && cp '%s/models/taesd_tiny_sd.safetensors' '%s/taesd/taesdxl_decoder.safetensors'",
             f->models, LF_FIXTURE_DIR, f->models);
    assert_int_equal(system(cmd), 0);
    lf_runner_env_t env = {.device = "cpu", .models_dir = f->models, .preview_every = 1};
    static const lf_runner_backend_t *const backends[] = {&lf_engine_runner_backend};
    lf_runner_t *r = lf_runner_new(&env, backends, 1);
    assert_non_null(r);
    size_t n = 0;
    const lf_model_info_t *m = lf_runner_models(r, &n);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].name, "xl-base")) seen++, assert_string_equal(m[i].preview, "taesd");
        if (!strcmp(m[i].name, "tiny-clip")) seen++, assert_string_equal(m[i].preview, "approx");
    }
    assert_int_equal(seen, 2);
    if (!f->have_vocab) {
        lf_runner_destroy(&r);
        skip();
    }
    lf_job_params_t p = {.model = "xl-base", .prompt = "a red circle", .width = 64, .height = 64, .steps = 2,
                         .batch_size = 1, .cfg_scale = 5.0, .seed = 3};
    s_prog_t pr = {0};
    lf_runner_job_t job = {.params = &p, .progress = s_progress, .progress_ud = &pr};
    lf_runner_output_t out = {0};
    char err[256] = "";
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run sdxl: %s", err);
    lf_runner_output_clear(&out);
    assert_int_equal(pr.previews, 1);
    assert_int_equal(pr.pw, 64); /* TAESD(XL): the 8x8 latent x8 (approx would show it x4: 32x32) */
    assert_int_equal(pr.ph, 64);
    /* The 2x-VAE fixture with the x8 TAESD: 256x256 for a 64x64 image, dropped. */
    p.model = "xl-2x";
    pr = (s_prog_t){0};
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run sdxl 2x: %s", err);
    lf_runner_output_clear(&out);
    assert_int_equal(pr.calls, 2);
    assert_int_equal(pr.previews, 0);
    p.model = "tiny-clip";
    pr = (s_prog_t){0};
    if (lf_runner_run(r, &job, &out, err, sizeof err) != 0) fail_msg("run sd15: %s", err);
    lf_runner_output_clear(&out);
    assert_int_equal(pr.previews, 1);
    assert_int_equal(pr.pw, 64); /* approx */
    lf_runner_destroy(&r);
}

/* Flux from ComfyUI's folders: kept off the list (with a log line) while no
 * T5 tokenizer is found — ComfyUI's t5xxl files carry none —, listed as
 * family flux, 1024 px, once a spiece.model lies beside the T5 file; its
 * previews "taesd" from a TAEF1 file picked by its 16 latent channels
 * under any name, which an SD1.5 model does not take (approx). The
 * 16-channel ae named as an SD1.5 job's VAE fails the job naming vae and
 * both channel counts. */
static void test_flux_parts(void **state)
{
    s_fix_t *f = *state;
    char cmd[4096], sp[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir -p unet clip vae taesd && cp '%s/flux/flux_dev_bfl.safetensors' unet/flux-dev.safetensors && "
             "cp '%s/flux/flux_prompt_clip_l.safetensors' clip/clip_l.safetensors && "
             "cp '%s/flux/flux_prompt_t5.safetensors' clip/t5xxl_tiny.safetensors && "
             "cp '%s/flux/flux_vae.safetensors' vae/ae.safetensors && "
             "cp '%s/flux/taef1_tiny.safetensors' taesd/preview_a.safetensors",
             f->models, LF_FIXTURE_DIR, LF_FIXTURE_DIR, LF_FIXTURE_DIR, LF_FIXTURE_DIR, LF_FIXTURE_DIR);
    assert_int_equal(system(cmd), 0);
    lf_runner_env_t env = {.device = "cpu", .models_dir = f->models, .preview_every = 1};
    static const lf_runner_backend_t *const backends[] = {&lf_engine_runner_backend};
    lf_runner_t *r = lf_runner_new(&env, backends, 1);
    assert_non_null(r);
    size_t n = 0;
    const lf_model_info_t *m = lf_runner_models(r, &n);
    for (size_t i = 0; i < n; i++) assert_string_not_equal(m[i].name, "flux-dev");
    lf_runner_destroy(&r);
    if (!lf_test_refdata(sp, sizeof sp, "tokenizers/t5/spiece.model")) {
        printf("SKIP: no T5 spiece.model (reference data)\n");
        skip();
    }
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/clip/spiece.model'", sp, f->models);
    assert_int_equal(system(cmd), 0);
    r = lf_runner_new(&env, backends, 1);
    assert_non_null(r);
    m = lf_runner_models(r, &n);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].name, "flux-dev")) {
            seen++;
            assert_string_equal(m[i].kind, "flux");
            assert_int_equal(m[i].resolution, 1024);
            assert_string_equal(m[i].preview, "taesd");
        }
        if (!strcmp(m[i].name, "tiny-clip")) seen++, assert_string_equal(m[i].preview, "approx");
    }
    assert_int_equal(seen, 2);
    /* The ae says Flux (16 latent channels) in the caps the worker sends. */
    const lf_vae_info_t *vi = lf_runner_vae_info(r, &n);
    assert_int_equal(n, 1);
    assert_string_equal(vi[0].name, "ae");
    assert_string_equal(vi[0].kind, "flux");
    assert_int_equal(vi[0].latent, 16);

    /* LF_MODEL_MEMORY_MB: the ComfyUI-folder model is offered only when the
     * bytes its parts will hold resident fit (its transformer file's size,
     * a tenth of them, is not the figure; the f16 VAE is held in f32). */
    char up[1200], cp[1200], tp[1200], vp[1200];
    snprintf(up, sizeof up, "%s/unet/flux-dev.safetensors", f->models);
    snprintf(cp, sizeof cp, "%s/clip/clip_l.safetensors", f->models);
    snprintf(tp, sizeof tp, "%s/clip/t5xxl_tiny.safetensors", f->models);
    snprintf(vp, sizeof vp, "%s/vae/ae.safetensors", f->models);
    const char *texts[2] = {cp, tp};
    lf_engine_load_opts_t lo = {.text_paths = texts, .n_text_paths = 2, .parts_vae_path = vp};
    const uint64_t need = lf_engine_model_bytes(up, &lo, NULL);
    struct stat sb;
    assert_int_equal(stat(up, &sb), 0);
    printf("  flux-dev: %llu bytes resident, transformer file %lld\n", (unsigned long long)need,
           (long long)sb.st_size);
    assert_true(need > (uint64_t)sb.st_size);
    for (int fit = 0; fit <= 1; fit++) {
        lf_runner_env_t benv = env;
        benv.memory_budget = need - !fit;
        lf_runner_t *rb = lf_runner_new(&benv, backends, 1);
        assert_non_null(rb);
        const lf_model_info_t *mb = lf_runner_models(rb, &n);
        int offered = 0;
        for (size_t i = 0; i < n; i++) offered |= !strcmp(mb[i].name, "flux-dev");
        assert_int_equal(offered, fit);
        lf_runner_destroy(&rb);
    }
    if (!f->have_vocab) {
        lf_runner_destroy(&r);
        skip();
    }
    lf_job_params_t p = {.model = "tiny-clip", .prompt = "a red circle", .width = 64, .height = 64, .steps = 1,
                         .batch_size = 1, .cfg_scale = 5.0, .seed = 3, .vae = "ae"};
    lf_runner_job_t job = {.params = &p};
    lf_runner_output_t out = {0};
    char err[256] = "";
    assert_int_not_equal(lf_runner_run(r, &job, &out, err, sizeof err), 0);
    printf("  sd15 job with the Flux ae: %s\n", err);
    assert_non_null(strstr(err, "vae 'ae' has 16 latent channels"));
    assert_non_null(strstr(err, "takes 4"));
    lf_runner_output_clear(&out);
    lf_runner_destroy(&r);
}

static void test_info_json(void **state)
{
    (void)state;
    lf_job_params_t p = {.prompt = "p", .seed = 5, .steps = 3, .width = 64, .height = 64, .cfg_scale = 7};
    const char *texts[] = {"a", "b"};
    char *s = lf_engine_runner_info_json(&p, "m", "sd15", 2, texts, NULL);
    assert_non_null(s);
    json_t *o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "all_prompts"), 1)), "p");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o, "all_seeds"), 1)), 6);
    assert_string_equal(json_string_value(json_object_get(o, "mode")), "txt2img");
    assert_null(json_object_get(o, "denoising_strength"));
    json_decref(o);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_discovery_and_job, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sdxl_refiner_vae, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sdxl_taesdxl_preview, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_flux_parts, s_setup, s_teardown),
        cmocka_unit_test(test_info_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
