/* lf_engine_runner: Stable Diffusion models as a worker backend (see the
 * header for discovery, mapping and conventions). */
#include "lf_engine_runner.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lf_detailer.h"
#include "lf_engine.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_lora_dir.h"
#include "lf_manifest.h"
#include "lf_vaefamily.h"
#include "lf_weights.h"

#ifndef LF_MODELS_DEFAULT
#define LF_MODELS_DEFAULT "models"
#endif

typedef struct {
    lf_engine_t *engine;
    char *model;
    char *models_dir;
    uint32_t preview_every;
} s_state_t;

/* The families the engine runs (lf_engine_probe's names). */
static int s_family_ok(const char *family)
{
    return !strcmp(family, "sd15") || !strcmp(family, "sdxl") || !strcmp(family, "flux");
}

/* The latent channels a family's VAE makes (Flux: 16; SD1.x, SDXL: 4). */
static int s_family_latent_ch(const char *family)
{
    return family && !strcmp(family, "flux") ? 16 : 4;
}

/* The latent channels a TAESD decoder or VAE file takes, from its tensor
 * shapes (the first decoder convolution's input channels); 0 when unknown. */
static int s_weights_latent_ch(const lf_weights_t *w)
{
    static const char *const names[] = {
        "decoder.conv_in.weight", "first_stage_model.decoder.conv_in.weight", "vae.decoder.conv_in.weight",
        "1.weight", "decoder.layers.0.weight", "taesd_decoder.1.weight"};
    int ch = 0;
    for (size_t i = 0; !ch && i < sizeof names / sizeof names[0]; i++) {
        const lf_tensor_info_t *t = lf_weights_find(w, names[i]);
        if (t && t->ndim == 4) ch = (int)t->shape[1];
    }
    return ch;
}

static int s_file_latent_ch(const char *path)
{
    lf_weights_t *w = NULL;
    char err[256];
    if (lf_weights_open(&w, path, err, sizeof err) != 0) return 0;
    int ch = s_weights_latent_ch(w);
    lf_weights_destroy(&w);
    return ch;
}

static const char *s_models_dir(const lf_runner_env_t *env)
{
    if (env && env->models_dir && *env->models_dir) return env->models_dir;
    const char *e = getenv("LF_MODELS_DIR");
    return e && *e ? e : LF_MODELS_DEFAULT;
}

static int s_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcasecmp(s + n - m, suffix) == 0;
}

/* An installed TAESD decoder for a family's previews, if any (preferred to
 * the engine's approx preview): models/taesd/taesd_decoder.* for SD1.x,
 * taesdxl_decoder.* for SDXL. */
static const char *s_taesd(const char *dir, const char *family, char *path, size_t len)
{
    static const char *const sd15[] = {"taesd_decoder.safetensors", "taesd_decoder.pth", "diffusion_pytorch_model.safetensors"};
    static const char *const sdxl[] = {"taesdxl_decoder.safetensors", "taesdxl_decoder.pth"};
    if (family && !strcmp(family, "flux")) {
        /* TAEF1 (16 latent channels): any file of models/taesd whose shapes say so. */
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/taesd", dir);
        DIR *d = opendir(sub);
        struct dirent *de;
        const char *found = NULL;
        char best[256] = "";
        while (d && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || !(s_ends(de->d_name, ".safetensors") || s_ends(de->d_name, ".pth"))) continue;
            int pn = snprintf(path, len, "%s/%s", sub, de->d_name);
            if (pn < 0 || (size_t)pn >= len) continue; /* too long to be ours */
            /* The first by name, so every worker picks the same. */
            if (s_file_latent_ch(path) == 16 && (!best[0] || strcmp(de->d_name, best) < 0))
                snprintf(best, sizeof best, "%s", de->d_name);
        }
        if (d) closedir(d);
        int pn = best[0] ? snprintf(path, len, "%s/%s", sub, best) : -1;
        if (pn >= 0 && (size_t)pn < len) found = path;
        return found;
    }
    int xl = family && !strcmp(family, "sdxl");
    const char *const *names = xl ? sdxl : sd15;
    size_t n = xl ? sizeof sdxl / sizeof sdxl[0] : sizeof sd15 / sizeof sd15[0];
    struct stat sb;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, len, "%s/taesd/%s", dir, names[i]);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && s_file_latent_ch(path) != 16) return path;
    }
    return NULL;
}

/* Model name of a directory entry, or NULL when it is not a model. */
static char *s_model_name(const char *dir, const char *entry, char *path, size_t len)
{
    if (entry[0] == '.') return NULL;
    snprintf(path, len, "%s/%s", dir, entry);
    struct stat sb;
    if (stat(path, &sb) != 0) return NULL;
    if (S_ISDIR(sb.st_mode)) { /* a diffusers folder: unet/, or Flux's transformer/ */
        char probe[4096], probe2[4096];
        int n = snprintf(probe, sizeof probe, "%s/unet/diffusion_pytorch_model.safetensors", path);
        if (n < 0 || (size_t)n >= sizeof probe) return NULL; /* path too long to be a model */
        n = snprintf(probe2, sizeof probe2, "%s/transformer/diffusion_pytorch_model.safetensors", path);
        int flux = n > 0 && (size_t)n < sizeof probe2 && stat(probe2, &sb) == 0;
        if (!flux) { /* sharded: the index and its shards */
            n = snprintf(probe2, sizeof probe2, "%s/transformer/diffusion_pytorch_model.safetensors.index.json",
                         path);
            flux = n > 0 && (size_t)n < sizeof probe2 && stat(probe2, &sb) == 0;
        }
        return stat(probe, &sb) == 0 || flux ? strdup(entry) : NULL;
    }
    if (!S_ISREG(sb.st_mode)) return NULL;
    const char *ext = s_ends(entry, ".safetensors") ? ".safetensors" : s_ends(entry, ".ckpt") ? ".ckpt" : NULL;
    return ext ? strndup(entry, strlen(entry) - strlen(ext)) : NULL;
}

/* A model's recommended settings as the worker advertises them. */
static int s_defaults_info(const lf_manifest_defaults_t *d, lf_model_defaults_t *out)
{
    *out = (lf_model_defaults_t){.steps = d->steps > 0 ? (uint32_t)d->steps : 0,
                                 .has_cfg = !isnan(d->cfg),
                                 .cfg_scale = isnan(d->cfg) ? 0 : d->cfg,
                                 .width = (uint32_t)d->width,
                                 .height = (uint32_t)d->height,
                                 .has_weight = !isnan(d->weight),
                                 .weight = isnan(d->weight) ? 0 : d->weight};
    if (*d->sampler && !(out->sampler = strdup(d->sampler))) return LF_ENOMEM;
    if (*d->scheduler && !(out->scheduler = strdup(d->scheduler))) return LF_ENOMEM;
    if (*d->timesteps && !(out->timesteps = strdup(d->timesteps))) return LF_ENOMEM;
    return 0;
}

/* The settings a checkpoint file's metadata recommends (lf_manifest.h
 * says which keys are read); nothing for folders and unreadable files. */
static int s_file_defaults(const char *path, lf_model_defaults_t *out)
{
    struct stat sb;
    *out = (lf_model_defaults_t){0};
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    lf_weights_t *w = NULL;
    char err[256];
    if (lf_weights_open(&w, path, err, sizeof err) != 0) return 0;
    lf_manifest_defaults_t d = lf_manifest_defaults_none();
    lf_manifest_defaults_from_metadata(w, &d, NULL, NULL);
    lf_weights_destroy(&w);
    return s_defaults_info(&d, out);
}

/* A Flux model's T5 tokenizer is there (its folder's tokenizer_2/, or one
 * lf_engine_find_t5_tokenizer finds beside its parts); other families need
 * none. Logs what is missing when it is not. */
static int s_t5_tokenizer_ok(const char *path, const char *family, const char *const *texts, size_t n)
{
    if (!family || strcmp(family, "flux")) return 1;
    char buf[4200];
    struct stat sb;
    snprintf(buf, sizeof buf, "%s/tokenizer_2", path);
    if ((stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode)) || lf_engine_find_t5_tokenizer(path, texts, n, NULL, buf, sizeof buf))
        return 1;
    lf_warn("engine: not serving Flux model %s: no T5 tokenizer (tokenizer.json or spiece.model beside the "
            "T5 file, in models/text_encoders/ or models/clip/, or in $LF_ASSETS_DIR/t5/)",
            path);
    return 0;
}

/* The assembled models (lf_manifest_scan: <models>/<name>.model.json and
 * ComfyUI's unet + clip + vae folders) appended to *list; a name already
 * taken by a checkpoint keeps the checkpoint. */
static int s_list_assembled(const char *dir, uint64_t budget, lf_model_info_t **list, size_t *cnt, size_t *cap)
{
    lf_manifest_t **ms = NULL;
    size_t nm = 0;
    int rc = lf_manifest_scan(dir, &ms, &nm);
    for (size_t i = 0; rc == 0 && i < nm; i++) {
        int dup = 0;
        for (size_t k = 0; k < *cnt; k++) dup |= !strcmp((*list)[k].name, ms[i]->name);
        if (dup) {
            lf_warn("engine: skipping assembled model %s: a checkpoint has the name", ms[i]->name);
            continue;
        }
        if (!s_family_ok(lf_family_name(ms[i]->family))) {
            lf_info("engine: not serving assembled model %s: the %s family is not served yet", ms[i]->name,
                    lf_family_name(ms[i]->family));
            continue;
        }
        if (!ms[i]->t5_tokenizer &&
            !s_t5_tokenizer_ok(ms[i]->path ? ms[i]->path : ms[i]->unet, lf_family_name(ms[i]->family),
                               (const char *const *)ms[i]->text, ms[i]->n_text))
            continue;
        /* Not offered when its weights would not fit LF_MODEL_MEMORY_MB: the
         * bytes its parts will hold resident (its "weights" applied). */
        lf_engine_load_opts_t lo = {.text_paths = (const char *const *)ms[i]->text, .n_text_paths = ms[i]->n_text,
                                    .parts_vae_path = ms[i]->vae};
        uint64_t bytes = !budget ? 0 : ms[i]->path ? lf_engine_model_bytes(ms[i]->path, NULL, NULL)
                                                   : lf_engine_model_bytes(ms[i]->unet, &lo, ms[i]->weights);
        if (bytes > budget) {
            lf_warn("engine: not offering assembled model %s: %.0f MiB of weights resident, more than "
                    "LF_MODEL_MEMORY_MB=%.0f", ms[i]->name, bytes / 1048576.0, budget / 1048576.0);
            continue;
        }
        if (*cnt == *cap) {
            size_t nc = *cap ? *cap * 2 : 8;
            lf_model_info_t *nl = realloc(*list, nc * sizeof *nl);
            if (!nl) {
                rc = LF_ENOMEM;
                break;
            }
            *list = nl;
            *cap = nc;
        }
        const char *family = lf_family_name(ms[i]->family);
        char tpath[4096];
        lf_model_info_t *m = &(*list)[(*cnt)++];
        *m = (lf_model_info_t){.name = strdup(ms[i]->name), .kind = strdup(family),
                               .resolution = ms[i]->resolution ? ms[i]->resolution
                                             : ms[i]->family != LF_FAMILY_SD15 ? 1024 : 512,
                               .preview = strdup(s_taesd(dir, family, tpath, sizeof tpath) ? "taesd" : "approx")};
        if (!m->name || !m->kind || !m->preview || s_defaults_info(&ms[i]->defaults, &m->defaults)) rc = LF_ENOMEM;
        lf_info("engine: assembled model %s (%s) from %s", ms[i]->name, family, ms[i]->path ? ms[i]->path : ms[i]->unet);
    }
    lf_manifest_list_free(&ms, nm);
    return rc;
}

/* The assembled model of that name, or NULL (caller owns). */
static lf_manifest_t *s_find_assembled(const char *dir, const char *model)
{
    lf_manifest_t **ms = NULL, *found = NULL;
    size_t nm = 0;
    if (lf_manifest_scan(dir, &ms, &nm) != 0) return NULL;
    for (size_t i = 0; i < nm && !found; i++)
        if (!strcmp(ms[i]->name, model)) {
            found = ms[i];
            ms[i] = NULL;
        }
    lf_manifest_list_free(&ms, nm);
    return found;
}

static int s_cmp_info(const void *a, const void *b)
{
    return strcmp(((const lf_model_info_t *)a)->name, ((const lf_model_info_t *)b)->name);
}

static int s_list_models(const lf_runner_env_t *env, lf_model_info_t **out, size_t *n)
{
    const char *dir = s_models_dir(env);
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        lf_info("engine: no models folder %s; only built-in models", dir);
        return 0;
    }
    lf_model_info_t *list = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char path[4096], err[512];
        char *name = s_model_name(dir, de->d_name, path, sizeof path);
        if (!name) continue;
        const char *family = NULL;
        uint32_t side = 0;
        struct stat sb0;
        int prc = stat(path, &sb0) != 0 ? LF_EIO : lf_engine_probe(path, &family, &side, err, sizeof err);
        if (prc != 0 || !s_family_ok(family)) {
            if (prc) lf_warn("engine: skipping %s", err);
            else lf_warn("engine: skipping %s: model family %s, not sd15, sdxl or flux", path, family);
            free(name);
            continue;
        }
        if (!strcmp(family, "flux") && !S_ISDIR(sb0.st_mode)) {
            lf_warn("engine: skipping %s: a Flux transformer file needs its parts (a %s.model.json manifest, "
                    "or ComfyUI's models/unet + models/clip + models/vae)", path, name);
            free(name);
            continue;
        }
        if (!s_t5_tokenizer_ok(path, family, NULL, 0)) {
            free(name);
            continue;
        }
        /* A model this worker may not hold (LF_MODEL_MEMORY_MB) is not
         * offered, so no job for it is ever sent here. */
        uint64_t bytes = env && env->memory_budget ? lf_engine_model_bytes(path, NULL, NULL) : 0;
        if (env && env->memory_budget && bytes > env->memory_budget) {
            lf_warn("engine: not offering %s: %.0f MiB of weights resident, more than LF_MODEL_MEMORY_MB=%.0f", path,
                    bytes / 1048576.0, env->memory_budget / 1048576.0);
            free(name);
            continue;
        }
        int dup = 0;
        for (size_t i = 0; i < cnt; i++) dup |= !strcmp(list[i].name, name);
        if (dup) {
            lf_warn("engine: skipping %s: another file already gives the model '%s'", path, name);
            free(name);
            continue;
        }
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 8;
            lf_model_info_t *nl = realloc(list, nc * sizeof *nl);
            if (!nl) {
                free(name);
                rc = LF_ENOMEM;
                break;
            }
            list = nl;
            cap = nc;
        }
        char tpath[4096];
        list[cnt].name = name;
        list[cnt].resolution = side;
        list[cnt].kind = strdup(family);
        list[cnt].preview = strdup(s_taesd(dir, family, tpath, sizeof tpath) ? "taesd" : "approx");
        list[cnt].inpainting = lf_engine_probe_unet_inputs(path) == 9;
        if (!list[cnt].kind || !list[cnt].preview) rc = LF_ENOMEM;
        if (s_file_defaults(path, &list[cnt].defaults)) rc = LF_ENOMEM;
        cnt++;
    }
    closedir(d);
    if (rc == 0) rc = s_list_assembled(dir, env ? env->memory_budget : 0, &list, &cnt, &cap);
    if (rc != 0) {
        lf_runner_models_free(list, cnt);
        return rc;
    }
    if (cnt) qsort(list, cnt, sizeof *list, s_cmp_info);
    for (size_t i = 0; i < cnt; i++)
        lf_info("engine: model %s (%s, %u px, %s previews%s) in %s", list[i].name, list[i].kind, list[i].resolution,
                list[i].preview, list[i].inpainting ? ", inpainting" : "", dir);
    *out = list;
    *n = cnt;
    return 0;
}

/* The file or folder of a model name: <dir>/<name>.safetensors, .ckpt, or
 * <dir>/<name>/. Names with a '/' or a leading '.' are refused. */
static int s_model_path(const char *dir, const char *model, char *path, size_t len)
{
    if (!model || !*model || strchr(model, '/') || model[0] == '.') return LF_ENOTFOUND;
    static const char *const ext[] = {".safetensors", ".ckpt", ""};
    struct stat sb;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        snprintf(path, len, "%s/%s%s", dir, model, ext[i]);
        if (stat(path, &sb) == 0 && (ext[i][0] ? S_ISREG(sb.st_mode) : S_ISDIR(sb.st_mode))) return 0;
    }
    return LF_ENOTFOUND;
}

static const char *const s_vae_exts[] = {".safetensors", ".pt", ".ckpt"};
static int s_vae_path(const char *dir, const char *vae, char *path, size_t len);

/* models/upscale_models and A1111's models/ESRGAN: the upscaler models. */
static int s_list_upscalers(const lf_runner_env_t *env, char ***out, size_t *n)
{
    char dirs[8300];
    snprintf(dirs, sizeof dirs, "%s/upscale_models:%s/ESRGAN", s_models_dir(env), s_models_dir(env));
    return lf_engine_list_upscalers(dirs, out, n);
}

/* ADetailer's detectors: BlazeFace when its assets exist, the files of
 * models/adetailer (as the extension's folder). */
static int s_list_ad_models(const lf_runner_env_t *env, char ***out, size_t *n)
{
    char dir[8300];
    snprintf(dir, sizeof dir, "%s/adetailer", s_models_dir(env));
    return lf_engine_list_adetailer(NULL, dir, out, n);
}

/* What a VAE file is, from its header alone (lf_weights maps the file and
 * reads its tensor table; no tensor is read): its latent channels and
 * family (lf_vaefamily_guess, hinted by the modelspec architecture metadata
 * or, for a whole checkpoint used as a VAE, its text encoders' keys). */
static void s_vae_probe(const char *path, const char *stem, lf_vae_info_t *out)
{
    lf_weights_t *w = NULL;
    char err[256];
    const char *hint = NULL;
    out->latent = 0;
    if (lf_weights_open(&w, path, err, sizeof err) == 0) {
        out->latent = (uint32_t)s_weights_latent_ch(w);
        hint = lf_weights_metadata(w, "modelspec.architecture");
        for (size_t i = 0, n = lf_weights_count(w); !hint && out->latent != 16 && i < n; i++) {
            const char *k = lf_weights_at(w, i)->name;
            if (!strncmp(k, "conditioner.embedders.1.", 24)) hint = "sdxl";
            else if (!strncmp(k, "cond_stage_model.", 17)) hint = "sd15";
        }
    } else {
        lf_warn("engine: VAE %s: %s", path, err);
    }
    const char *kind = lf_vaefamily_guess(out->latent, stem, hint);
    out->kind = kind ? strdup(kind) : NULL;
    lf_weights_destroy(&w);
}

/* models/vae/: *.safetensors, *.pt, *.ckpt, named by the file name without
 * the extension (the first extension wins a name given twice), sorted, each
 * with its family (s_vae_probe). */
static int s_cmp_vae(const void *a, const void *b)
{
    return strcmp(((const lf_vae_info_t *)a)->name, ((const lf_vae_info_t *)b)->name);
}

static int s_list_vaes(const lf_runner_env_t *env, lf_vae_info_t **out, size_t *n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vae", s_models_dir(env));
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    lf_vae_info_t *list = NULL;
    size_t cnt = 0;
    int rc = 0;
    struct dirent *de;
    /* Names first, in the order of s_vae_exts within a name. */
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *name = NULL;
        for (size_t i = 0; !name && i < sizeof s_vae_exts / sizeof s_vae_exts[0]; i++)
            if (s_ends(de->d_name, s_vae_exts[i])) name = strndup(de->d_name, strlen(de->d_name) - strlen(s_vae_exts[i]));
        if (!name) continue;
        int dup = 0;
        for (size_t i = 0; i < cnt; i++) dup |= !strcmp(list[i].name, name);
        lf_vae_info_t *nl = dup ? NULL : realloc(list, (cnt + 1) * sizeof *nl);
        if (!nl) {
            free(name);
            if (!dup) rc = LF_ENOMEM;
            continue;
        }
        list = nl;
        list[cnt++] = (lf_vae_info_t){.name = name};
    }
    closedir(d);
    if (rc) {
        lf_runner_vaes_free(list, cnt);
        return rc;
    }
    if (cnt) qsort(list, cnt, sizeof *list, s_cmp_vae);
    for (size_t i = 0; i < cnt; i++) {
        char path[4200];
        if (s_vae_path(s_models_dir(env), list[i].name, path, sizeof path) == 0) s_vae_probe(path, list[i].name, &list[i]);
        lf_info("engine: VAE %s in %s: %s, %u latent channels", list[i].name, dir,
                list[i].kind ? list[i].kind : "unknown family", list[i].latent);
    }
    *out = list;
    *n = cnt;
    return 0;
}

/* The file of a VAE name in <dir>/vae/. */
static int s_vae_path(const char *dir, const char *vae, char *path, size_t len)
{
    if (!vae || !*vae || strchr(vae, '/') || vae[0] == '.') return LF_ENOTFOUND;
    struct stat sb;
    for (size_t i = 0; i < sizeof s_vae_exts / sizeof s_vae_exts[0]; i++) {
        snprintf(path, len, "%s/vae/%s%s", dir, vae, s_vae_exts[i]);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) return 0;
    }
    return LF_ENOTFOUND;
}

static void s_unload(void **state)
{
    if (!state || !*state) return;
    s_state_t *s = *state;
    lf_engine_destroy(&s->engine);
    free(s->model);
    free(s->models_dir);
    free(s);
    *state = NULL;
}

static int s_load(const lf_runner_env_t *env, const char *model, void **state, char *why, size_t whylen)
{
    const char *dir = s_models_dir(env);
    char path[4096], tpath[4096], err[512] = "";
    /* A checkpoint, else a model assembled from parts. */
    lf_manifest_t *man = NULL;
    if (s_model_path(dir, model, path, sizeof path) != 0) {
        if (!(man = s_find_assembled(dir, model))) return LF_ENOTFOUND;
        snprintf(path, sizeof path, "%s", man->path ? man->path : man->unet);
    }
    s_state_t *s = calloc(1, sizeof *s);
    if (!s || !(s->model = strdup(model)) || !(s->models_dir = strdup(dir))) {
        if (s) free(s->model);
        free(s);
        lf_manifest_destroy(&man);
        return LF_ENOMEM;
    }
    s->preview_every = env ? env->preview_every : 0;
    /* LoRAs: <models>/lora and A1111's spelling <models>/Lora. */
    char lora_dirs[8300];
    snprintf(lora_dirs, sizeof lora_dirs, "%s/lora:%s/Lora", dir, dir);
    char up_dirs[8300];
    snprintf(up_dirs, sizeof up_dirs, "%s/upscale_models:%s/ESRGAN", dir, dir);
    /* ADetailer's YOLO models: <models>/adetailer, as the extension's models/adetailer. */
    char ad_dir[8300];
    snprintf(ad_dir, sizeof ad_dir, "%s/adetailer", dir);
    lf_engine_opts_t eo = {.device = env ? env->device : NULL,
                           .memory_budget = env ? env->memory_budget : 0, .lora_dirs = lora_dirs,
                           .upscaler_dirs = up_dirs, .adetailer_dir = ad_dir,
                           .precision = env ? env->precision : NULL,
                           .pack = env ? env->weight_pack : NULL, .pack_dir = env ? env->pack_dir : NULL,
                           .n_threads = env ? env->n_threads : 0};
    int rc = lf_engine_new(&eo, &s->engine, err, sizeof err);
    if (rc != 0) {
        lf_error("engine: %s", err);
        if (why && whylen) snprintf(why, whylen, "%s", err);
        s_unload((void **)&s);
        lf_manifest_destroy(&man);
        return rc;
    }
    const char *family = NULL;
    if (man) family = lf_family_name(man->family);
    else if (lf_engine_probe(path, &family, NULL, err, sizeof err) != 0) family = NULL;
    lf_engine_load_opts_t lo = {.name = model, .taesd_path = s_taesd(dir, family, tpath, sizeof tpath)};
    if (man && !man->path) {
        /* A ComfyUI-folder model: the UNet file, its encoders and VAE. */
        lf_prediction_t pred = LF_PRED_EPS;
        lf_manifest_prediction(man, &pred);
        lo.text_paths = (const char *const *)man->text;
        lo.n_text_paths = man->n_text;
        lo.parts_vae_path = man->vae;
        lo.prediction_v = pred == LF_PRED_V;
    }
    rc = lf_engine_load(s->engine, path, &lo);
    lf_manifest_destroy(&man);
    if (rc != 0) {
        lf_error("engine: cannot load %s: %s", model, lf_engine_errstr(s->engine));
        if (why && whylen) snprintf(why, whylen, "%s", lf_engine_errstr(s->engine));
        s_unload((void **)&s);
        return rc;
    }
    /* Without a TAESD file the engine's approx preview (fitted from the
     * model's VAE on the first job that wants previews) is used. */
    lf_info("engine: %s resident (%s), previews %s", model, path,
            s->preview_every ? lf_engine_preview_kind(s->engine) : "off");
    *state = s;
    return 0;
}

static int s_is_img2img(const lf_job_params_t *p)
{
    return p->mode && !strcmp(p->mode, "img2img");
}

static int s_is_upscale(const lf_job_params_t *p)
{
    return p->mode && !strcmp(p->mode, "upscale");
}

static int s_check(void *state, const lf_job_params_t *p, char *errbuf, size_t errlen)
{
    s_state_t *s = state;
    char path[4096];
    if (s && p->refiner_checkpoint && s_model_path(s->models_dir, p->refiner_checkpoint, path, sizeof path) != 0) {
        snprintf(errbuf, errlen, "refiner_checkpoint '%.128s' is not a model on this worker", p->refiner_checkpoint);
        return LF_ENOTFOUND;
    }
    if (s && p->vae && s_vae_path(s->models_dir, p->vae, path, sizeof path) != 0) {
        snprintf(errbuf, errlen, "vae '%.128s' is not in this worker's models/vae/", p->vae);
        return LF_ENOTFOUND;
    }
    /* A VAE of other latent channels than the model's family makes (Flux's
     * 16-channel ae with an SD model, an SD VAE with Flux), or of the other
     * SD family by its header or name (lf_vaefamily): refused by name. The
     * gateway refuses these at submit from the caps; this is for jobs that
     * reach a worker anyway (an older gateway). */
    const char *fam = s && p->vae ? lf_engine_model_family(s->engine) : NULL;
    lf_vae_info_t vi = {0};
    if (fam) s_vae_probe(path, p->vae, &vi);
    int rc = 0;
    if (fam && vi.latent && (int)vi.latent != s_family_latent_ch(fam)) {
        snprintf(errbuf, errlen, "vae '%.128s' has %u latent channels; model '%.128s' (%s) takes %d", p->vae,
                 vi.latent, s->model, fam, s_family_latent_ch(fam));
        rc = LF_EINVAL;
    } else if (fam && !lf_vaefamily_fits(vi.kind, vi.latent, fam)) {
        snprintf(errbuf, errlen, "vae '%.128s' is a %s VAE; model '%.128s' is %s", p->vae, vi.kind, s->model, fam);
        rc = LF_EINVAL;
    }
    free(vi.kind);
    if (rc) return rc;
    if (p->mode && strcmp(p->mode, "txt2img") && strcmp(p->mode, "img2img") && strcmp(p->mode, "upscale")) {
        snprintf(errbuf, errlen, "mode '%s' is not supported (txt2img, img2img, upscale)", p->mode);
        return LF_EUNSUPPORTED;
    }
    if (p->width % 8 || p->height % 8 || p->width < 64 || p->height < 64 || p->width > 4096 || p->height > 4096) {
        snprintf(errbuf, errlen, "size %ux%u: sides must be multiples of 8 in 64..4096", p->width, p->height);
        return LF_EINVAL;
    }
    if (p->steps < 1 || p->steps > 1000) {
        snprintf(errbuf, errlen, "steps must be 1..1000");
        return LF_EINVAL;
    }
    if (p->batch_size > 64) {
        snprintf(errbuf, errlen, "batch size must be 1..64");
        return LF_EINVAL;
    }
    if (s_is_img2img(p) && !(p->denoise > 0.0 && p->denoise <= 1.0)) {
        snprintf(errbuf, errlen, "denoising strength must be in (0, 1]");
        return LF_EINVAL;
    }
    return 0;
}

static json_t *s_str(const char *s)
{
    return json_string(s ? s : "");
}

char *lf_engine_runner_info_json(const lf_job_params_t *p, const char *model, const char *family,
                                 size_t n_images, const char *const *infotexts,
                                 const char *warnings)
{
    json_t *o = json_object(), *prompts = json_array(), *negs = json_array(), *seeds = json_array(),
           *infos = json_array();
    if (!o || !prompts || !negs || !seeds || !infos) {
        json_decref(o), json_decref(prompts), json_decref(negs), json_decref(seeds), json_decref(infos);
        return NULL;
    }
    for (size_t i = 0; i < n_images; i++) {
        json_array_append_new(prompts, s_str(p->prompt));
        json_array_append_new(negs, s_str(p->negative_prompt));
        json_array_append_new(seeds, json_integer((json_int_t)((uint64_t)p->seed + i)));
        json_array_append_new(infos, s_str(infotexts ? infotexts[i] : NULL));
    }
    json_object_set_new(o, "prompt", s_str(p->prompt));
    json_object_set_new(o, "all_prompts", prompts);
    json_object_set_new(o, "negative_prompt", s_str(p->negative_prompt));
    json_object_set_new(o, "all_negative_prompts", negs);
    json_object_set_new(o, "seed", json_integer((json_int_t)p->seed));
    json_object_set_new(o, "all_seeds", json_deep_copy(seeds));
    json_object_set_new(o, "seeds", seeds);
    json_object_set_new(o, "sampler_name", s_str(p->sampler && *p->sampler ? p->sampler : "euler"));
    json_object_set_new(o, "scheduler", s_str(p->scheduler && *p->scheduler ? p->scheduler : "normal"));
    json_object_set_new(o, "steps", json_integer(p->steps));
    json_object_set_new(o, "cfg_scale", json_real(p->cfg_scale));
    if (p->sampler && !strcmp(p->sampler, "tcd")) json_object_set_new(o, "eta", json_real(p->tcd_gamma)); /* A1111's */
    json_object_set_new(o, "width", json_integer(p->width));
    json_object_set_new(o, "height", json_integer(p->height));
    json_object_set_new(o, "batch_size", json_integer((json_int_t)n_images));
    json_object_set_new(o, "clip_skip", json_integer(p->clip_skip ? p->clip_skip : 1));
    json_object_set_new(o, "sd_model_name", s_str(model));
    json_object_set_new(o, "model", s_str(model));
    json_object_set_new(o, "kind", json_string(family && *family ? family : "sd15"));
    if (p->refiner_checkpoint) {
        json_object_set_new(o, "refiner_checkpoint", json_string(p->refiner_checkpoint));
        json_object_set_new(o, "refiner_switch_at", json_real(p->refiner_switch_at));
    }
    if (p->vae) json_object_set_new(o, "sd_vae_name", json_string(p->vae));
    json_object_set_new(o, "mode", json_string(s_is_upscale(p) ? "upscale" : s_is_img2img(p) ? "img2img" : "txt2img"));
    if (s_is_upscale(p)) json_object_set_new(o, "upscaler", s_str(p->upscaler ? p->upscaler : "Lanczos"));
    json_object_set_new(o, "rng", s_str(p->rng && *p->rng ? p->rng : "cpu"));
    if (s_is_img2img(p) || p->enable_hr) json_object_set_new(o, "denoising_strength", json_real(p->denoise));
    if (p->enable_hr && !s_is_img2img(p)) { /* A1111's txt2img info keys */
        json_object_set_new(o, "enable_hr", json_true());
        json_object_set_new(o, "hr_scale", json_real(p->hr_scale));
        json_object_set_new(o, "hr_resize_x", json_integer(p->hr_resize_x));
        json_object_set_new(o, "hr_resize_y", json_integer(p->hr_resize_y));
        json_object_set_new(o, "hr_upscaler", s_str(p->hr_upscaler ? p->hr_upscaler : "Latent"));
        json_object_set_new(o, "hr_second_pass_steps", json_integer(p->hr_second_pass_steps));
    }
    json_object_set_new(o, "index_of_first_image", json_integer(0));
    json_object_set_new(o, "infotexts", infos);
    if (warnings && *warnings) json_object_set_new(o, "warnings", json_string(warnings));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

/* ---- ADetailer: the job's canonical units (lf_adetailer) as engine units ---- */

/* A1111 / ADetailer sampler names ("DPM++ 2M Karras") as the engine's. */
static const char *s_ad_sampler(const char *name, const char **implied)
{
    const lf_param_def_t *t = lf_params_table();
    const lf_param_enum_t *e = lf_param_enum_lookup(&t[LF_P_sampler], name);
    if (!e) e = lf_param_sampler_with_scheduler(name, implied);
    if (!e) return name; /* the engine names it in its error */
    return !strcmp(e->name, "euler_a") ? "euler_ancestral" : e->name;
}

/* Fills units (strings borrowed from *keep, which the caller releases after
 * the run) from the row's JSON text; returns the count (0 = none). */
static size_t s_ad_units(const char *text, json_t **keep, lf_detailer_unit_t *units, size_t max)
{
    *keep = text ? json_loads(text, 0, NULL) : NULL;
    size_t n = 0, i;
    json_t *o;
    const lf_param_def_t *t = lf_params_table();
    json_array_foreach(*keep, i, o) {
        if (n == max) break;
        lf_detailer_unit_t *u = &units[n++];
        lf_detailer_unit_defaults(u);
#define S_S(k) json_string_value(json_object_get(o, k))
#define S_N(k) json_number_value(json_object_get(o, k))
#define S_B(k) json_is_true(json_object_get(o, k))
        u->model = S_B("ad_tab_enable") && S_S("ad_model") ? S_S("ad_model") : "None";
        u->prompt = S_S("ad_prompt");
        u->negative = S_S("ad_negative_prompt");
        u->confidence = S_N("ad_confidence");
        u->mask_k_largest = (int)S_N("ad_mask_k_largest");
        u->mask_min_ratio = S_N("ad_mask_min_ratio");
        u->mask_max_ratio = S_N("ad_mask_max_ratio");
        u->x_offset = (int)S_N("ad_x_offset");
        u->y_offset = (int)S_N("ad_y_offset");
        u->dilate_erode = (int)S_N("ad_dilate_erode");
        const char *mi = S_S("ad_mask_merge_invert");
        u->merge_invert = mi && !strcmp(mi, "Merge") ? LF_DETAILER_MERGE
                          : mi && !strcmp(mi, "Merge and Invert") ? LF_DETAILER_MERGE_INVERT
                                                                   : LF_DETAILER_MERGE_NONE;
        u->mask_blur = (int)S_N("ad_mask_blur");
        u->denoising_strength = S_N("ad_denoising_strength");
        u->inpaint_only_masked = S_B("ad_inpaint_only_masked");
        u->inpaint_padding = (int)S_N("ad_inpaint_only_masked_padding");
        u->use_inpaint_size = S_B("ad_use_inpaint_width_height");
        u->inpaint_width = (int)S_N("ad_inpaint_width");
        u->inpaint_height = (int)S_N("ad_inpaint_height");
        u->use_steps = S_B("ad_use_steps");
        u->steps = (int)S_N("ad_steps");
        u->use_cfg = S_B("ad_use_cfg_scale");
        u->cfg = S_N("ad_cfg_scale");
        u->use_sampler = S_B("ad_use_sampler");
        u->use_noise_multiplier = S_B("ad_use_noise_multiplier");
        u->noise_multiplier = S_N("ad_noise_multiplier");
        u->use_clip_skip = S_B("ad_use_clip_skip");
        u->clip_skip = (int)S_N("ad_clip_skip");
        const char *implied = NULL, *sch = S_S("ad_scheduler");
        u->sampler = s_ad_sampler(S_S("ad_sampler") ? S_S("ad_sampler") : "", &implied);
        if (sch && strcmp(sch, "Use same scheduler")) {
            const lf_param_enum_t *e = lf_param_enum_lookup(&t[LF_P_scheduler], sch);
            u->scheduler = e ? e->name : sch;
        } else {
            u->scheduler = implied ? implied : "Use same scheduler";
        }
#undef S_S
#undef S_N
#undef S_B
    }
    return n;
}

/* The denoiser evaluations into the info JSON: "model_calls_full" (the
 * whole network) and "model_calls_cached" (step caching reused a part). */
static int s_add_model_calls(char **info, int full, int cached)
{
    json_t *o = json_loads(*info, 0, NULL);
    if (!o) return LF_ENOMEM;
    json_object_set_new(o, "model_calls_full", json_integer(full));
    json_object_set_new(o, "model_calls_cached", json_integer(cached));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s) return LF_ENOMEM;
    free(*info);
    *info = s;
    return 0;
}

typedef struct {
    const lf_runner_job_t *jobs;
    size_t n;
} s_prog_t;

/* A job's step (a job alone, or an upscale). */
static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    const s_prog_t *pr = ud;
    for (size_t j = 0; j < pr->n; j++)
        if (pr->jobs[j].progress)
            pr->jobs[j].progress(pr->jobs[j].progress_ud, (uint32_t)step, (uint32_t)steps, preview, len);
}

/* A batched job's step, with the preview of its own image (its row's). */
static void s_row_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    const lf_runner_job_t *job = ud;
    if (job->progress) job->progress(job->progress_ud, (uint32_t)step, (uint32_t)steps, preview, len);
}

/* Job j's images (the next batch_size of res's, moved out) and its info
 * JSON into *out. */
static int s_output(const s_state_t *s, const lf_job_params_t *p, lf_engine_result_t *res, size_t first,
                    size_t count, lf_runner_output_t *out)
{
    int rc = 0;
    lf_runner_output_t o = {0};
    const char **texts = calloc(count ? count : 1, sizeof *texts);
    o.images = calloc(count ? count : 1, sizeof *o.images);
    if (!texts || !o.images) rc = LF_ENOMEM;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        lf_engine_image_t *im = &res->images[first + i];
        texts[i] = im->infotext;
        o.images[i] = (lf_image_out_t){.png = {im->png, im->png_len}, .seed = (int64_t)im->seed,
                                       .width = (uint32_t)im->width, .height = (uint32_t)im->height};
        im->png = NULL; /* moved into the output */
        o.n_images++;
    }
    if (rc == 0 && !(o.info_json = lf_engine_runner_info_json(p, s->model, lf_engine_model_family(s->engine),
                                                              count, texts, res->warnings)))
        rc = LF_ENOMEM;
    if (rc == 0) rc = s_add_model_calls(&o.info_json, res->model_calls_full, res->model_calls_cached);
    free(texts);
    if (rc != 0) {
        lf_runner_output_clear(&o);
        return rc;
    }
    *out = o;
    return 0;
}

/* n jobs with one batch key (lf_batch.h) as rows of one engine batch
 * (lf_engine_request_t.rows); n == 1 is a job alone. Everything but the
 * rows comes from jobs[0]. */
static int s_run_jobs(void *state, const lf_runner_job_t *jobs, size_t n, const atomic_bool *cancel,
                      lf_runner_output_t *outs)
{
    s_state_t *s = state;
    const lf_runner_job_t *job = &jobs[0];
    const lf_job_params_t *p = job->params;
    char err[256];
    int rc = s_check(state, p, err, sizeof err);
    if (rc != 0) {
        lf_warn("engine: job refused: %s", err);
        return rc;
    }
    if (s_is_img2img(p) && (!job->init_image || !job->init_image_len)) {
        lf_warn("engine: img2img job without an init image");
        return LF_EINVAL;
    }
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = p->prompt;
    req.negative = p->negative_prompt;
    req.sampler = p->sampler && !strcmp(p->sampler, "euler_a") ? "euler_ancestral" : p->sampler;
    req.scheduler = p->scheduler;
    req.steps = (int)p->steps;
    req.cfg = p->cfg_scale;
    req.seed = (uint64_t)p->seed;
    req.width = (int)p->width;
    req.height = (int)p->height;
    req.batch = p->batch_size ? (int)p->batch_size : 1;
    req.rng = p->rng;
    req.clip_skip = p->clip_skip ? (int)p->clip_skip : 1;
    if (s_is_img2img(p)) {
        req.init_image = job->init_image;
        req.init_image_len = job->init_image_len;
        req.denoise = p->denoise;
        req.initial_noise_multiplier = p->initial_noise_multiplier;
    }
    /* Inpainting: the mask's bytes came with the job (the store reads the
     * upload at claim); A1111's fields as the table holds them. */
    if (p->mask && *p->mask && (!job->mask || !job->mask_len)) {
        lf_warn("engine: inpainting job without its mask");
        return LF_EINVAL;
    }
    if (s_is_img2img(p) && job->mask && job->mask_len) {
        req.mask = job->mask;
        req.mask_len = job->mask_len;
        req.mask_blur_x = p->mask_blur_x >= 0 ? (double)p->mask_blur_x : (double)p->mask_blur;
        req.mask_blur_y = p->mask_blur_y >= 0 ? (double)p->mask_blur_y : (double)p->mask_blur;
        req.inpainting_fill = (int)p->inpainting_fill;
        req.inpaint_full_res = p->inpaint_full_res;
        req.inpaint_full_res_padding = (int)p->inpaint_full_res_padding;
        req.inpainting_mask_invert = (int)p->inpainting_mask_invert;
    }
    req.inpainting_mask_weight = p->inpainting_mask_weight;
    if (p->enable_hr && !s_is_img2img(p)) { /* Hires-Fix: denoise is its strength */
        req.enable_hr = 1;
        req.denoise = p->denoise;
        req.hr_scale = p->hr_scale;
        req.hr_resize_x = (int)p->hr_resize_x;
        req.hr_resize_y = (int)p->hr_resize_y;
        req.hr_upscaler = p->hr_upscaler;
        req.hr_steps = (int)p->hr_second_pass_steps;
        req.hr_sampler = p->hr_sampler && !strcmp(p->hr_sampler, "euler_a") ? "euler_ancestral" : p->hr_sampler;
        req.hr_scheduler = p->hr_scheduler;
        req.hr_prompt = p->hr_prompt;
        req.hr_negative = p->hr_negative_prompt;
        req.hr_cfg = p->hr_cfg;
    }
    req.preview_every = (int)s->preview_every;
    /* The job's LoRA list (the prompt's tags are read by the engine). */
    lf_engine_lora_t loras[16];
    const lf_param_loras_t *pl = &p->loras;
    for (uint32_t i = 0; i < pl->n && i < sizeof loras / sizeof *loras; i++)
        loras[i] = (lf_engine_lora_t){.name = pl->v[i].name, .weight = pl->v[i].weight,
                                      .te_weight = pl->v[i].te_weight};
    req.loras = loras;
    req.n_loras = pl->n < sizeof loras / sizeof *loras ? pl->n : sizeof loras / sizeof *loras;
    /* SDXL: size conditioning (0 = the image size, as A1111), aesthetic scores. */
    req.orig_width = (int)p->original_width;
    req.orig_height = (int)p->original_height;
    req.crop_top = (int)p->crop_top;
    req.crop_left = (int)p->crop_left;
    req.target_width = (int)p->target_width;
    req.target_height = (int)p->target_height;
    req.aesthetic_score = p->aesthetic_score;
    req.negative_aesthetic_score = p->negative_aesthetic_score;
    /* The refiner (kept resident next to the base, lf_engine.h) and the VAE
     * ("" = the checkpoint's: a job without one undoes an earlier job's). */
    char rpath[4096], vpath[4096];
    if (p->refiner_checkpoint && strcmp(p->refiner_checkpoint, s->model)) {
        if (s_model_path(s->models_dir, p->refiner_checkpoint, rpath, sizeof rpath) != 0) return LF_ENOTFOUND;
        req.refiner_path = rpath;
        req.refiner_name = p->refiner_checkpoint;
        req.refiner_switch_at = p->refiner_switch_at;
    }
    req.vae_path = "";
    if (p->vae) {
        if (s_vae_path(s->models_dir, p->vae, vpath, sizeof vpath) != 0) return LF_ENOTFOUND;
        req.vae_path = vpath;
        req.vae_name = p->vae;
    }
    /* Step caching (the table's cache_* rows; checked by the gateway). */
    lf_stepcache_kind_t ck = LF_STEPCACHE_NONE;
    if (p->cache_kind && lf_stepcache_kind_parse(p->cache_kind, &ck) != 0) return LF_EINVAL;
    req.cache = (lf_stepcache_opts_t){.kind = ck, .threshold = (float)p->cache_threshold,
                                      .start = (int)p->cache_start, .end = (int)p->cache_end,
                                      .interval = p->cache_interval ? (int)p->cache_interval : 1,
                                      .depth = (int)p->cache_depth};
    /* Few-step models: the tcd sampler's gamma, explicit timesteps (checked by the gateway). */
    req.has_tcd_gamma = 1;
    req.tcd_gamma = p->tcd_gamma;
    req.guidance = p->guidance;
    int tsteps[256];
    if (p->timesteps && *p->timesteps) {
        int n = lf_param_timesteps_parse(p->timesteps, tsteps, 256);
        if (n < 1) return LF_EINVAL;
        req.timesteps = tsteps;
        req.n_timesteps = n;
    }
    req.precision = p->precision; /* NULL: the worker's LF_PRECISION */
    /* ADetailer units (canonical JSON in the table's adetailer row). */
    lf_detailer_unit_t ad[LF_DETAILER_MAX_UNITS];
    json_t *ad_keep = NULL;
    req.n_adetailer = s_ad_units(p->adetailer, &ad_keep, ad, LF_DETAILER_MAX_UNITS);
    req.adetailer = req.n_adetailer ? ad : NULL;
    lf_engine_row_t rows[LF_RUNNER_BATCH_MAX];
    for (size_t j = 0; n > 1 && j < n && j < LF_RUNNER_BATCH_MAX; j++) {
        const lf_job_params_t *pj = jobs[j].params;
        rows[j] = (lf_engine_row_t){.prompt = pj->prompt, .negative = pj->negative_prompt,
                                    .seed = (uint64_t)pj->seed, .batch = pj->batch_size ? (int)pj->batch_size : 1,
                                    .progress = s_row_progress, .progress_ud = (void *)&jobs[j]};
    }
    if (n > 1) req.rows = rows, req.n_rows = n < LF_RUNNER_BATCH_MAX ? n : LF_RUNNER_BATCH_MAX;
    s_prog_t pr = {jobs, n};
    lf_engine_result_t res = {0};
    if (s_is_upscale(p)) { /* an image through an upscaler (A1111's extras) */
        if (!job->init_image || !job->init_image_len) return LF_EINVAL;
        lf_engine_upscale_request_t ur = {.image = job->init_image, .image_len = job->init_image_len,
                                          .upscaler = p->upscaler, .scale = p->upscale_by,
                                          .width = (int)p->upscale_width, .height = (int)p->upscale_height};
        rc = lf_engine_upscale(s->engine, &ur, s_progress, &pr, cancel, &res);
    } else {
        /* Batched: each job's progress is its row's (its own preview). */
        rc = lf_engine_generate(s->engine, &req, n > 1 ? NULL : s_progress, &pr, cancel, &res);
    }
    json_decref(ad_keep);
    if (rc != 0) {
        if (rc != LF_ECANCELED) lf_warn("engine: %s: %s", s->model, lf_engine_errstr(s->engine));
        if (job->errbuf && job->errlen) snprintf(job->errbuf, job->errlen, "%s", lf_engine_errstr(s->engine));
        return rc;
    }
    if (res.warnings) lf_warn("engine: job warnings: %s", res.warnings);
    /* Row j's images follow row j-1's. */
    size_t first = 0;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        size_t count = n == 1 ? res.n_images : (size_t)rows[j].batch;
        if (first + count > res.n_images) rc = LF_EPROTO;
        if (rc == 0) rc = s_output(s, jobs[j].params, &res, first, count, &outs[j]);
        first += count;
    }
    lf_engine_result_clear(&res);
    for (size_t j = 0; rc != 0 && j < n; j++) lf_runner_output_clear(&outs[j]);
    return rc;
}

static int s_run(void *state, const lf_runner_job_t *job, lf_runner_output_t *out)
{
    return s_run_jobs(state, job, 1, job->cancel, out);
}

/* Jobs of one batch key as one batch; LF_EUNSUPPORTED (the runner runs
 * them one by one) for what the engine does not batch. */
static int s_run_batch(void *state, const lf_runner_job_t *jobs, size_t n, const atomic_bool *cancel,
                       lf_runner_output_t *outs)
{
    return n > LF_RUNNER_BATCH_MAX ? LF_EUNSUPPORTED : s_run_jobs(state, jobs, n, cancel, outs);
}

/* The LoRA files under <models>/lora and <models>/Lora, hashed as A1111
 * hashes them: at start every file is read; a rescan (known != NULL) reuses
 * the hash of a file listed before at the same path and reads new ones only
 * (a file replaced in place under its old name keeps its old hash in the
 * list until the worker restarts; the infotext's hash is the engine's own,
 * of the file it opens). */
static int s_scan_loras(const lf_runner_env_t *env, const lf_lora_info_t *known, size_t n_known,
                        lf_lora_info_t **out, size_t *n)
{
    const char *dir = s_models_dir(env);
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/lora", dir);
    snprintf(b, sizeof b, "%s/Lora", dir);
    const char *roots[2] = {a, b};
    lf_lora_file_t *files = NULL;
    size_t nf = 0;
    int rc = lf_lora_dir_scan(roots, 2, known == NULL, &files, &nf);
    if (rc) return rc;
    for (size_t i = 0; known && i < nf; i++) {
        for (size_t k = 0; k < n_known && !files[i].hash[0]; k++)
            if (known[k].path && known[k].hash && !strcmp(known[k].path, files[i].rel) &&
                strlen(known[k].hash) < sizeof files[i].hash)
                strcpy(files[i].hash, known[k].hash);
        char why[512];
        if (!files[i].hash[0] && lf_lora_dir_hash(&files[i], why, sizeof why) != 0)
            lf_warn("engine: LoRA %s has no hash: %s", files[i].path, why);
    }
    lf_lora_info_t *v = calloc(nf ? nf : 1, sizeof *v);
    for (size_t i = 0; v && i < nf; i++) {
        v[i].name = strdup(files[i].name);
        v[i].alias = strdup(files[i].alias);
        v[i].path = strdup(files[i].rel);
        v[i].hash = files[i].hash[0] ? strdup(files[i].hash) : NULL;
        if (!v[i].name || !v[i].alias || !v[i].path) rc = LF_ENOMEM;
        /* A few-step LoRA (Lightning, LCM, Hyper-SD) may say how it must be run. */
        if (s_file_defaults(files[i].path, &v[i].defaults)) rc = LF_ENOMEM;
        lf_info("engine: LoRA %s (%s, sha256 %.12s)", files[i].name, files[i].path, files[i].hash);
    }
    lf_lora_dir_free(&files, nf);
    if (!v || rc) {
        lf_runner_loras_free(v, nf);
        return LF_ENOMEM;
    }
    *out = v;
    *n = nf;
    return 0;
}

static int s_list_loras(const lf_runner_env_t *env, lf_lora_info_t **out, size_t *n)
{
    return s_scan_loras(env, NULL, 0, out, n);
}

static int s_rescan_loras(const lf_runner_env_t *env, const lf_lora_info_t *known, size_t n_known,
                          lf_lora_info_t **out, size_t *n)
{
    static const lf_lora_info_t none;
    return s_scan_loras(env, known ? known : &none, n_known, out, n);
}

static const char *s_refiner(void *state)
{
    return state ? lf_engine_refiner_name(((s_state_t *)state)->engine) : NULL;
}

/* The GPU of env->device (the engine decides; reason in name on failure). */
static int s_device_info(const lf_runner_env_t *env, char *name, size_t n, uint64_t *memory_bytes)
{
    return lf_engine_device_info(env->device, name, n, memory_bytes);
}

const lf_runner_backend_t lf_engine_runner_backend = {
    .device_info = s_device_info,
    .name = "engine",
    .list_models = s_list_models,
    .load = s_load,
    .check = s_check,
    .run = s_run,
    .run_batch = s_run_batch,
    .unload = s_unload,
    .list_loras = s_list_loras,
    .rescan_loras = s_rescan_loras,
    .list_vaes = s_list_vaes,
    .list_upscalers = s_list_upscalers,
    .list_ad_models = s_list_ad_models,
    .refiner = s_refiner,
};
