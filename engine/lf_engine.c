/* lf_engine: the public facade — owns the compute backend, the loaded model
 * and the CLIP tokenizer, turns string-valued requests into pipeline
 * requests and keeps the last error for humans. */
#include "lf_engine.h"
#include "lf_device.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>

#include <jansson.h>

#include "lf_backend.h"
#include "lf_adetailer.h"
#include "lf_blazeface.h"
#include "lf_yolo.h"
#include "lf_detailer.h"
#include "lf_clip_tokenizer.h"
#include "lf_t5_tokenizer.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_lora_dir.h"
#include "lf_manifest.h"
#include "lf_model.h"
#include "lf_pipeline.h"
#include "lf_prompt.h"
#include "lf_quant.h"
#include "lf_safetensors.h"
#include "lf_torchzip.h"
#include "lf_upscaler.h"
#include "lf_upscaler_set.h"
#include "lf_resize.h"
#include "lf_hires.h"
#include "lf_image.h"

#ifndef LF_ASSETS_DEFAULT
#define LF_ASSETS_DEFAULT "assets"
#endif
#define S_VOCAB_NAME "bpe_simple_vocab_16e6.txt.gz"

#ifdef LF_HAVE_MODEL
/* The real networks (engine/models/lf_model.c). */
static const lf_model_ops_t s_real_ops = {
    .name = "lf_model",
    .load = lf_model_load,
    .destroy = lf_model_destroy,
    .desc = lf_model_desc,
    .encode_text = lf_model_encode_text,
    .encode_t5 = lf_model_encode_t5,
    .denoise = lf_model_denoise,
    .vae_decode = lf_model_vae_decode,
    .denoise_cached = lf_model_denoise_cached,
    .vae_encode = lf_model_vae_encode,
    .preview = lf_model_preview,
    .set_loras = lf_model_set_loras,
    .lora_fits = lf_model_lora_fits,
    .set_precision = lf_model_set_precision,
    .weight_bytes = lf_model_weight_bytes,
    .set_pack = lf_model_set_pack,
};
#endif

struct lf_engine {
    const lf_model_ops_t *ops;
    lf_backend_t *backend; /* owned; NULL = the model's default CPU backend */
    lf_precision_t precision; /* requests' default (opts.precision) */
    int pack_req;             /* opts.pack: an lf_pack_t, or -1 for auto */
    char *pack_dir;           /* the file mode's directory */
    lf_pack_t pack;           /* in effect for the loaded model */
    lf_model_t *model;
    char *model_name;
    /* How the base was loaded, for a reload with another VAE. */
    char *model_path, *vae_path, *vae_name, *taesd_path;
    int prediction_v;
    /* Parts given with the load (not by a manifest), for reloads. */
    char **text_paths, *parts_vae;
    size_t n_text_paths;
    uint64_t model_bytes;
    /* The resident refiner (see lf_engine.h, "Refiner residency"). */
    lf_model_t *refiner;
    char *refiner_path, *refiner_name;
    uint64_t refiner_bytes, memory_budget;
    int weight_quant; /* lf_model_opts_t.weight_quant for every load (0: none) */
    lf_engine_stats_t stats;
    lf_clip_tokenizer_t *tok;
    char *tok_path;
    lf_t5_tokenizer_t *t5tok; /* a Flux model's T5 tokenizer (t5tok_path), else NULL */
    char *t5tok_path;
    char *vocab_path, *assets_dir;
    int vae_tile;
    char *lora_dirs;            /* ':'-separated, or NULL */
    lf_lora_file_t *lora_files; /* the last scan of lora_dirs (hashes cached in it) */
    size_t n_lora_files;
    lf_upscaler_set_t *upscalers; /* Hires-Fix's upscaler models (opts.upscaler_dirs) */
    /* ADetailer's face detectors, loaded on first use (s_detailer_detect). */
    lf_blazeface_t *blazeface[2]; /* short, full range */
    /* ... and the YOLO models of adetailer_dir, the last S_YOLO_KEEP used. */
    char *adetailer_dir;
    struct { char *name; lf_yolo_t *net; } yolo[4];
    uint8_t *yolo_masks;  /* the last detection's masks (lf_detailer_box_t.mask) */
    char **ad_names;      /* lf_engine_adetailer_models' last listing */
    int n_ad_names;
    char err[512];
};

static void s_ad_names_free(lf_engine_t *e)
{
    for (int i = 0; i < e->n_ad_names; i++) free(e->ad_names[i]);
    free(e->ad_names);
    e->ad_names = NULL;
    e->n_ad_names = 0;
}

static int s_err(lf_engine_t *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, sizeof e->err, fmt, ap);
    va_end(ap);
    return code;
}

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

lf_engine_request_t lf_engine_request_defaults(void)
{
    return (lf_engine_request_t){.steps = 20, .cfg = 7.0, .width = 512, .height = 512, .batch = 1,
                                 .clip_skip = 1, .denoise = 0.75, .refiner_switch_at = 0.8,
                                 .mask_blur_x = 4, .mask_blur_y = 4, .inpaint_full_res = 1,
                                 .initial_noise_multiplier = 1, .inpainting_mask_weight = 1, .hr_scale = 2.0};
}

int lf_engine_device_info(const char *device, char *name, size_t namelen, uint64_t *memory_bytes)
{
    lf_device_t d;
    int rc = lf_device_parse(device, &d, name, namelen);
    if (rc) return rc;
    if (d.kind == LF_DEVICE_CPU) {
        if (name && namelen) snprintf(name, namelen, "the CPU (described by the caller)");
        return LF_EUNSUPPORTED;
    }
    int n = 0;
    char why[200];
    if ((rc = lf_backend_cuda_devices(&n, why, sizeof why)) != 0) {
        if (name && namelen) snprintf(name, namelen, "device '%s': %s", device, why);
        return rc;
    }
    if (d.index >= n) {
        if (name && namelen)
            snprintf(name, namelen, "device '%s': no such GPU, this machine shows %d CUDA device(s)%s", device, n,
                     n ? " (ordinals start at 0)" : "");
        return LF_ENOTFOUND;
    }
    return lf_backend_cuda_device_props(d.index, name, namelen, memory_bytes);
}

/* A quantize-on-load name (lf_engine_opts_t.weights, a manifest's
 * "weights") to lf_model_opts_t.weight_quant: 0 for NULL, "" and "none". */
static int s_weights_parse(const char *name, int *out, char *err, size_t errlen)
{
    *out = 0;
    if (!name || !*name || !strcmp(name, "none")) return 0;
    int t = lf_type_parse(name);
    if (t < 0 || !lf_type_is_quant((lf_type_t)t) || t == LF_TYPE_Q8_K ||
        !lf_quant_can_quantize((lf_quant_type_t)(t - LF_TYPE_Q4_0))) {
        if (err && errlen)
            snprintf(err, errlen, "weights '%s': quantize-on-load takes q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0 or none "
                     "(GGUF files in any block type load as stored)", name);
        return LF_EINVAL;
    }
    *out = t;
    return 0;
}

int lf_engine_new(const lf_engine_opts_t *opts, lf_engine_t **out, char *err, size_t errlen)
{
    lf_engine_opts_t o = opts ? *opts : (lf_engine_opts_t){0};
    const lf_model_ops_t *ops = o.model_ops;
#ifdef LF_HAVE_MODEL
    if (!ops) ops = &s_real_ops;
#endif
    if (!ops) {
        if (err && errlen) snprintf(err, errlen, "this build has no model networks (engine/models/lf_model.c)");
        return LF_EUNSUPPORTED;
    }
    int wq = 0;
    int wrc = s_weights_parse(o.weights, &wq, err, errlen);
    if (wrc) return wrc;
    lf_backend_t *be = NULL;
    const char *dev = o.device && *o.device ? o.device : "cpu";
    lf_device_t d;
    int drc = lf_device_parse(dev, &d, err, errlen);
    if (drc) return drc;
    if (ops == o.model_ops) {
        /* A test double computes on the host itself. */
    } else if (d.kind == LF_DEVICE_CPU) {
        if (o.n_threads > 0 && !(be = lf_backend_cpu_new(o.n_threads))) {
            if (err && errlen) snprintf(err, errlen, "cannot start the CPU backend");
            return LF_ENOMEM;
        }
    } else {
        char why[200] = "";
        int n = 0;
        int rc = lf_backend_cuda_devices(&n, why, sizeof why);
        if (!rc && d.index >= n) {
            snprintf(why, sizeof why, "this machine shows %d CUDA device(s)", n);
            rc = LF_ENOTFOUND;
        }
        if (rc || !(be = lf_backend_cuda_new(d.index, 0))) {
            if (err && errlen)
                snprintf(err, errlen, "device '%s': %s", dev, why[0] ? why : "the CUDA backend did not start (see the log)");
            return rc == LF_ENOTFOUND || rc == LF_EUNSUPPORTED ? rc : LF_ECUDA;
        }
    }
    lf_engine_t *e = calloc(1, sizeof *e);
    if (!e || (o.vocab_path && !(e->vocab_path = strdup(o.vocab_path))) ||
        (o.assets_dir && !(e->assets_dir = strdup(o.assets_dir))) ||
        (o.lora_dirs && !(e->lora_dirs = strdup(o.lora_dirs))) ||
        (o.adetailer_dir && !(e->adetailer_dir = strdup(o.adetailer_dir))) ||
        !(e->upscalers = lf_upscaler_set_new(o.upscaler_dirs, be, o.n_threads))) {
        if (e) free(e->vocab_path), free(e->assets_dir), free(e->lora_dirs), free(e->adetailer_dir);
        free(e);
        lf_backend_destroy(&be);
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return LF_ENOMEM;
    }
    e->ops = ops;
    e->backend = be;
    e->vae_tile = o.vae_tile;
    if (o.precision && lf_precision_parse(o.precision, &e->precision)) {
        if (err && errlen) snprintf(err, errlen, "precision '%s': f32, bf16 or auto", o.precision);
        lf_engine_destroy(&e);
        return LF_EINVAL;
    }
    e->memory_budget = o.memory_budget;
    e->weight_quant = wq;
    const char *pack = o.pack ? o.pack : getenv("LF_WEIGHT_PACK");
    lf_pack_t pk = LF_PACK_OFF;
    e->pack_req = !pack || !*pack || !strcmp(pack, "auto") ? -1 : lf_pack_parse(pack, &pk) ? -2 : (int)pk;
    if (e->pack_req == -2) {
        if (err && errlen) snprintf(err, errlen, "weight pack '%s': file, memory, off or auto", pack);
        lf_engine_destroy(&e);
        return LF_EINVAL;
    }
    const char *dir = o.pack_dir && *o.pack_dir ? o.pack_dir : getenv("LF_PACK_DIR");
    if (!dir || !*dir) dir = getenv("TMPDIR");
    if (!(e->pack_dir = strdup(dir && *dir ? dir : "/var/tmp"))) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        lf_engine_destroy(&e);
        return LF_ENOMEM;
    }
    *out = e;
    return 0;
}

/* Where the model's backend keeps its pre-packed weights (lf_engine.h,
 * opts.pack): as asked, or for auto a file where pack_dir can hold one,
 * else memory where the weights (bytes) fit the budget twice, else none. */
static void s_set_pack(lf_engine_t *e, lf_model_t *m, const char *name, uint64_t bytes)
{
    if (!e->ops->set_pack) return;
    lf_pack_t want = e->pack_req >= 0 ? (lf_pack_t)e->pack_req : LF_PACK_FILE;
    lf_pack_t got = e->ops->set_pack(m, want, e->pack_dir);
    if (e->pack_req < 0 && got == LF_PACK_OFF)
        got = e->ops->set_pack(m, !e->memory_budget || bytes * 2 <= e->memory_budget ? LF_PACK_MEMORY : LF_PACK_OFF,
                               NULL);
    if (got != want && e->pack_req >= 0)
        lf_warn("engine: %s: pre-packed weights %s, not %s: this backend packs nothing (a GPU, no oneDNN)%s%s", name,
                lf_pack_name(got), lf_pack_name(want), want == LF_PACK_FILE ? " or this folder cannot hold the file "
                                                                             "(missing, not writable, tmpfs): " : "",
                want == LF_PACK_FILE ? e->pack_dir : "");
    lf_info("engine: %s: pre-packed weights: %s%s%s", name, lf_pack_name(got), got == LF_PACK_FILE ? " in " : "",
            got == LF_PACK_FILE ? e->pack_dir : "");
    e->pack = got;
}

static void s_unload(lf_engine_t *e)
{
    if (e->model) e->ops->destroy(&e->model);
    e->model = NULL;
    free(e->model_name), free(e->model_path), free(e->vae_path), free(e->vae_name), free(e->taesd_path);
    e->model_name = e->model_path = e->vae_path = e->vae_name = e->taesd_path = NULL;
    for (size_t i = 0; i < e->n_text_paths; i++) free(e->text_paths[i]);
    free(e->text_paths), free(e->parts_vae);
    e->text_paths = NULL, e->parts_vae = NULL, e->n_text_paths = 0;
    e->model_bytes = 0;
}

void lf_engine_unload_refiner(lf_engine_t *e)
{
    if (!e) return;
    if (e->refiner) e->ops->destroy(&e->refiner);
    e->refiner = NULL;
    free(e->refiner_path), free(e->refiner_name);
    e->refiner_path = e->refiner_name = NULL;
    e->refiner_bytes = 0;
}

/* The bytes a model's weights take, as its files' sizes: a file, or a
 * folder's files one level of subfolders deep (a diffusers folder). */
static uint64_t s_bytes(const char *path, int depth)
{
    struct stat sb;
    if (!path || stat(path, &sb) != 0) return 0;
    if (S_ISREG(sb.st_mode)) return (uint64_t)sb.st_size;
    if (!S_ISDIR(sb.st_mode) || depth > 1) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *de;
    char sub[4096];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        total += s_bytes(sub, depth + 1);
    }
    closedir(d);
    return total;
}

/* The weights' resident bytes of a model at unet with its parts (texts,
 * vae) and quantize-on-load type wq, from the files' headers
 * (lf_model_estimate_bytes); *estimated 0 when some file is not a weights
 * file lf_model reads (or this build has no model networks): then the
 * files' sizes. */
static uint64_t s_resident(const char *unet, const char *const *texts, size_t n, const char *vae, int wq,
                           int *estimated)
{
    *estimated = 0;
#ifdef LF_HAVE_MODEL
    lf_model_opts_t mo = {.weight_type = -1, .weight_quant = wq, .text_paths = texts, .n_text_paths = n,
                          .vae_path = vae};
    uint64_t est = 0;
    if (lf_model_estimate_bytes(unet, &mo, &est) == 0) {
        *estimated = 1;
        return est;
    }
#else
    (void)wq;
#endif
    uint64_t b = s_bytes(unet, 0) + s_bytes(vae, 0);
    for (size_t i = 0; i < n; i++) b += strcmp(texts[i], unet) ? s_bytes(texts[i], 0) : 0;
    return b;
}

uint64_t lf_engine_model_bytes(const char *path, const lf_engine_load_opts_t *opts, const char *weights)
{
    if (!path) return 0;
    const char *const *texts = opts ? opts->text_paths : NULL;
    size_t n = texts ? opts->n_text_paths : 0;
    const char *vae = opts ? (opts->vae_path ? opts->vae_path : opts->parts_vae_path) : NULL, *unet = path;
    lf_manifest_t *man = NULL;
    if (lf_manifest_is_path(path)) {
        char why[256];
        if (lf_manifest_load(path, &man, why, sizeof why)) return s_bytes(path, 0);
        unet = man->unet, texts = (const char *const *)man->text, n = man->n_text;
        if (!vae) vae = man->vae;
        if (man->weights[0]) weights = man->weights;
    }
    int wq = 0, estimated;
    if (s_weights_parse(weights, &wq, NULL, 0)) wq = 0;
    uint64_t b = s_resident(unet, texts, n, vae, wq, &estimated);
    lf_manifest_destroy(&man);
    return b;
}

/* Do the base and the refiner fit the memory budget together? */
static int s_fits(const lf_engine_t *e, uint64_t base, uint64_t refiner)
{
    return !e->memory_budget || base + refiner <= e->memory_budget;
}

void lf_engine_destroy(lf_engine_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_engine_t *e = *self_p;
    lf_engine_unload_refiner(e);
    s_unload(e);
    lf_clip_tokenizer_destroy(&e->tok);
    free(e->tok_path);
    lf_t5_tokenizer_destroy(&e->t5tok);
    free(e->t5tok_path);
    free(e->vocab_path);
    free(e->assets_dir);
    free(e->lora_dirs);
    lf_blazeface_destroy(&e->blazeface[0]);
    lf_blazeface_destroy(&e->blazeface[1]);
    for (int i = 0; i < 4; i++) free(e->yolo[i].name), lf_yolo_destroy(&e->yolo[i].net);
    free(e->yolo_masks);
    free(e->adetailer_dir);
    s_ad_names_free(e);
    lf_lora_dir_free(&e->lora_files, e->n_lora_files);
    lf_upscaler_set_destroy(&e->upscalers); /* before the backend it may borrow */
    lf_backend_destroy(&e->backend);
    free(e->pack_dir);
    free(e);
    *self_p = NULL;
}

static int s_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The CLIP merges file for a model at model_path (see lf_engine.h for the
 * order), into buf; returns buf or NULL. */
static const char *s_find_vocab(lf_engine_t *e, const char *model_path, const lf_model_desc_t *d,
                                char *buf, size_t len)
{
    if (e->vocab_path) return snprintf(buf, len, "%s", e->vocab_path), buf;
    if (d->tokenizer_dir) {
        snprintf(buf, len, "%s/merges.txt", d->tokenizer_dir);
        if (s_exists(buf)) return snprintf(buf, len, "%s", d->tokenizer_dir), buf;
    }
    struct stat sb;
    if (stat(model_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, len, "%s/tokenizer/merges.txt", model_path);
        if (s_exists(buf)) return snprintf(buf, len, "%s/tokenizer", model_path), buf;
    } else {
        const char *slash = strrchr(model_path, '/');
        int dl = slash ? (int)(slash - model_path) : 1;
        const char *dir = slash ? model_path : ".";
        snprintf(buf, len, "%.*s/tokenizer/merges.txt", dl, dir);
        if (s_exists(buf)) return snprintf(buf, len, "%.*s/tokenizer", dl, dir), buf;
    }
    const char *env = getenv("LF_ASSETS_DIR");
    if (env && *env) {
        snprintf(buf, len, "%s/clip/" S_VOCAB_NAME, env);
        if (s_exists(buf)) return buf;
    }
    snprintf(buf, len, "%s/clip/" S_VOCAB_NAME, e->assets_dir ? e->assets_dir : LF_ASSETS_DEFAULT);
    return s_exists(buf) ? buf : NULL;
}

/* Does a T5 tokenizer load from path? */
static int s_t5tok_ok(const char *path)
{
    lf_t5_tokenizer_t *t = NULL;
    char why[256];
    if (!s_exists(path) || lf_t5_tokenizer_new(&t, path, why, sizeof why) != 0) return 0;
    lf_t5_tokenizer_destroy(&t);
    return 1;
}

/* The first T5 tokenizer file in dir (lf_engine.h's names), into buf. */
static const char *s_t5tok_in(const char *dir, char *buf, size_t len)
{
    static const char *const names[] = {"t5_tokenizer.json", "spiece.model", "tokenizer.json",
                                        "t5/tokenizer.json", "t5/spiece.model"};
    for (size_t i = 0; dir && *dir && i < sizeof names / sizeof names[0]; i++) {
        snprintf(buf, len, "%s/%s", dir, names[i]);
        if (s_t5tok_ok(buf)) return buf;
    }
    return NULL;
}

/* path's folder into dir ("." for a bare name). */
static void s_dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, len, "%.*s", (int)(slash - path), path);
    else snprintf(dir, len, ".");
}

const char *lf_engine_find_t5_tokenizer(const char *model_path, const char *const *texts, size_t n,
                                        const char *assets_dir, char *buf, size_t len)
{
    char dir[4096], sub[4200];
    for (size_t i = 0; texts && i < n; i++) {
        if (!texts[i]) continue;
        s_dir_of(texts[i], dir, sizeof dir);
        if (s_t5tok_in(dir, buf, len)) return buf;
    }
    if (model_path) {
        s_dir_of(model_path, dir, sizeof dir);
        if (s_t5tok_in(dir, buf, len)) return buf;
        /* models/<name>.safetensors or a ComfyUI models/unet/<name>: the
         * models folder's text_encoders/ and clip/. */
        static const char *const subs[] = {"%s/text_encoders", "%s/clip", "%s/../text_encoders", "%s/../clip"};
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
            snprintf(sub, sizeof sub, subs[i], dir);
            if (s_t5tok_in(sub, buf, len)) return buf;
        }
    }
    const char *env = getenv("LF_ASSETS_DIR");
    if (env && *env) {
        snprintf(sub, sizeof sub, "%s/t5", env);
        if (s_t5tok_in(sub, buf, len)) return buf;
    }
    snprintf(sub, sizeof sub, "%s/t5", assets_dir ? assets_dir : LF_ASSETS_DEFAULT);
    return s_t5tok_in(sub, buf, len);
}

/* Makes e->t5tok the tokenizer file tp of the Flux model just loaded from
 * path (its own, a diffusers folder's tokenizer_2/, or one found beside
 * its parts); LF_ENOTFOUND naming where it looked when tp is NULL. */
static int s_load_t5tok(lf_engine_t *e, const char *path, const char *tp)
{
    if (!tp)
        return s_err(e, LF_ENOTFOUND,
                     "%s: no T5 tokenizer (tokenizer.json or spiece.model) beside the T5 file, in "
                     "models/text_encoders/ or models/clip/, or in $LF_ASSETS_DIR/t5/",
                     path);
    if (e->t5tok && e->t5tok_path && !strcmp(e->t5tok_path, tp)) return 0;
    lf_t5_tokenizer_t *t = NULL;
    char why[400];
    int rc = lf_t5_tokenizer_new(&t, tp, why, sizeof why);
    if (rc) return s_err(e, rc, "%s", why);
    char *cp = strdup(tp);
    if (!cp) {
        lf_t5_tokenizer_destroy(&t);
        return s_err(e, LF_ENOMEM, "out of memory");
    }
    lf_t5_tokenizer_destroy(&e->t5tok);
    free(e->t5tok_path);
    e->t5tok = t, e->t5tok_path = cp;
    return 0;
}

static char *s_name_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *b = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/') b = path + i + 1;
    size_t bl = (size_t)(path + n - b);
    const char *dot = NULL;
    for (const char *p = b; p < path + n; p++)
        if (*p == '.') dot = p;
    if (dot && dot > b) bl = (size_t)(dot - b);
    return strndup(b, bl);
}

int lf_engine_load(lf_engine_t *e, const char *path, const lf_engine_load_opts_t *opts)
{
    if (!e || !path || !*path) return e ? s_err(e, LF_EINVAL, "no model path") : LF_EINVAL;
    e->err[0] = '\0';
    /* The parts: from a manifest, or as given (copied first: opts may
     * point into the engine's own copies, which the unload frees). */
    lf_manifest_t *man = NULL;
    char why[400] = "";
    const char *const *texts = opts ? opts->text_paths : NULL;
    size_t ntp = opts && opts->text_paths ? opts->n_text_paths : 0;
    const char *pvae = opts ? opts->parts_vae_path : NULL;
    lf_prediction_t pred = opts && opts->prediction_v ? LF_PRED_V : LF_PRED_EPS;
    int rc = 0, wq = e->weight_quant; /* a manifest's "weights" overrides the engine's */
    if (lf_manifest_is_path(path)) {
        rc = lf_manifest_load(path, &man, why, sizeof why);
        if (!rc) rc = lf_manifest_check(man, why, sizeof why);
        if (!rc && (rc = lf_manifest_prediction(man, &pred)))
            snprintf(why, sizeof why, "manifest %s: bad prediction", path);
        if (!rc && man->weights[0] && (rc = s_weights_parse(man->weights, &wq, NULL, 0)))
            snprintf(why, sizeof why, "manifest %s: weights '%s' is not q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0 or none",
                     path, man->weights);
        if (rc) {
            lf_manifest_destroy(&man);
            s_unload(e); /* a failed load leaves no model loaded */
            return s_err(e, rc, "%s", why);
        }
        texts = (const char *const *)man->text, ntp = man->n_text, pvae = man->vae;
    }
    char **tcopy = ntp && !man ? calloc(ntp, sizeof *tcopy) : NULL;
    char *pcopy = pvae && !man ? strdup(pvae) : NULL;
    for (size_t i = 0; tcopy && i < ntp; i++)
        if (!(tcopy[i] = strdup(texts[i]))) rc = LF_ENOMEM;
    if (rc || (ntp && !man && !tcopy) || (pvae && !man && !pcopy)) {
        for (size_t i = 0; tcopy && i < ntp; i++) free(tcopy[i]);
        free(tcopy), free(pcopy);
        lf_manifest_destroy(&man);
        s_unload(e);
        return s_err(e, LF_ENOMEM, "out of memory");
    }
    if (tcopy) texts = (const char *const *)tcopy;
    if (pcopy) pvae = pcopy;
    s_unload(e);
    const char *unet = man ? man->unet : path;
    /* The new base needs the room: a refiner it would not fit next to goes first. */
    int estimated = 0;
    uint64_t bytes = e->memory_budget ? s_resident(unet, texts, ntp, opts && opts->vae_path ? opts->vae_path : pvae,
                                                   wq, &estimated)
                                      : 0;
    /* A base whose weights alone exceed the budget is refused before any
     * of it is read, rather than loaded past the limit the operator set: by
     * the bytes its files' headers say it will hold resident (GGUF blocks
     * kept, quantize-on-load applied), or by its files' sizes when they
     * cannot tell (quantized on load, it takes less than its files: then
     * checked once loaded). */
    if (e->memory_budget && (!wq || estimated) && bytes > e->memory_budget)
        return s_err(e, LF_ELIMIT, "%s: %.0f MiB of weights, more than this engine's memory budget of %.0f MiB",
                     path, bytes / 1048576.0, e->memory_budget / 1048576.0);
    if (e->refiner && !s_fits(e, bytes, e->refiner_bytes)) lf_engine_unload_refiner(e);
    lf_model_opts_t mo = {.backend = e->backend,
                          .vae_path = opts && opts->vae_path ? opts->vae_path : pvae,
                          .taesd_path = opts ? opts->taesd_path : NULL,
                          .weight_type = -1,
                          .weight_quant = wq,
                          .prediction = pred,
                          .text_paths = texts,
                          .n_text_paths = ntp};
    lf_model_t *m = NULL;
    rc = e->ops->load(unet, &mo, &m, why, sizeof why);
    /* Flux's T5 tokenizer, found while the parts' names are at hand. */
    char t5buf[4200];
    const char *t5tok = NULL;
    if (rc == 0 && e->ops->desc(m)->family == LF_FAMILY_FLUX)
        t5tok = man && man->t5_tokenizer    ? man->t5_tokenizer
                : e->ops->desc(m)->t5_tokenizer ? e->ops->desc(m)->t5_tokenizer
                                              : lf_engine_find_t5_tokenizer(path, texts, ntp, e->assets_dir, t5buf,
                                                                            sizeof t5buf);
    if (t5tok && t5tok != t5buf) t5tok = snprintf(t5buf, sizeof t5buf, "%s", t5tok) < (int)sizeof t5buf ? t5buf : NULL;
    char *man_name = man ? man->name : NULL; /* the manifest's name (taken) */
    if (man) man->name = NULL;
    lf_manifest_destroy(&man);
    if (rc == 0) {
        e->text_paths = tcopy, e->n_text_paths = tcopy ? ntp : 0, e->parts_vae = pcopy;
        tcopy = NULL, pcopy = NULL;
    }
    for (size_t i = 0; tcopy && i < ntp; i++) free(tcopy[i]);
    free(tcopy), free(pcopy);
    /* Below, mo.vae_path is the override only (the parts' VAE is the model's own). */
    mo.vae_path = opts ? opts->vae_path : NULL;
    if (rc != 0) {
        /* A manifest's load names it (lf_model's reason names the part's file). */
        free(man_name);
        return s_err(e, rc, "%s%s%s", lf_manifest_is_path(path) ? path : "",
                     lf_manifest_is_path(path) ? ": " : "", why[0] ? why : lf_strerror(rc));
    }
    /* The budget counts what the weights take resident (GGUF blocks kept,
     * quantize-on-load), when the model says. */
    if (e->ops->weight_bytes) bytes = e->ops->weight_bytes(m);
    if (e->memory_budget && bytes > e->memory_budget) {
        free(man_name), e->ops->destroy(&m);
        return s_err(e, LF_ELIMIT, "%s: %.0f MiB of weights resident, more than this engine's memory budget of %.0f MiB",
                     path, bytes / 1048576.0, e->memory_budget / 1048576.0);
    }
    const lf_model_desc_t *d = e->ops->desc(m);
    if (d->family != LF_FAMILY_SD15 && d->family != LF_FAMILY_SDXL && d->family != LF_FAMILY_FLUX) {
        free(man_name), e->ops->destroy(&m);
        return s_err(e, LF_EUNSUPPORTED, "%s: model family is not SD1.x, SDXL or Flux", path);
    }
    if (d->family == LF_FAMILY_FLUX && (rc = s_load_t5tok(e, path, t5tok)) != 0) {
        free(man_name), e->ops->destroy(&m);
        return rc;
    }
    char vbuf[1024];
    const char *vocab = s_find_vocab(e, path, d, vbuf, sizeof vbuf);
    if (!vocab) {
        free(man_name), e->ops->destroy(&m);
        return s_err(e, LF_ENOTFOUND,
                     "no CLIP merges file: set LF_ASSETS_DIR or run tools/fetch_assets.sh (looked for "
                     "%s/clip/" S_VOCAB_NAME ")",
                     e->assets_dir ? e->assets_dir : LF_ASSETS_DEFAULT);
    }
    if (!e->tok || !e->tok_path || strcmp(e->tok_path, vocab) != 0) {
        lf_clip_tokenizer_t *tok = NULL;
        rc = lf_clip_tokenizer_load(&tok, vocab, why, sizeof why);
        char *tp = rc == 0 ? strdup(vocab) : NULL;
        if (rc != 0 || !tp) {
            lf_clip_tokenizer_destroy(&tok);
            free(man_name), e->ops->destroy(&m);
            return rc ? s_err(e, rc, "%s", why) : s_err(e, LF_ENOMEM, "out of memory");
        }
        lf_clip_tokenizer_destroy(&e->tok);
        free(e->tok_path);
        e->tok = tok;
        e->tok_path = tp;
    }
    char *name = opts && opts->name ? s_dup(opts->name) : man_name ? strdup(man_name) : s_name_of(path);
    free(man_name);
    char *mp = strdup(path), *vp = s_dup(mo.vae_path), *tp = s_dup(mo.taesd_path);
    char *vn = !mo.vae_path                           ? NULL
               : opts->vae_name && *opts->vae_name ? strdup(opts->vae_name)
                                                   : s_name_of(mo.vae_path);
    if (!name || !mp || (mo.vae_path && (!vp || !vn)) || (mo.taesd_path && !tp)) {
        free(name), free(mp), free(vp), free(vn), free(tp);
        e->ops->destroy(&m);
        return s_err(e, LF_ENOMEM, "out of memory");
    }
    s_set_pack(e, m, name, bytes);
    e->model = m;
    e->model_name = name;
    e->model_path = mp;
    e->vae_path = vp;
    e->vae_name = vn;
    e->taesd_path = tp;
    e->prediction_v = opts ? opts->prediction_v : 0;
    e->model_bytes = bytes + (e->ops->weight_bytes ? 0 : s_bytes(mo.vae_path, 0));
    e->stats.model_loads++;
    return 0;
}

const char *lf_engine_pack(const lf_engine_t *e)
{
    return e && e->model ? lf_pack_name(e->pack) : NULL;
}

const char *lf_engine_refiner_name(const lf_engine_t *e)
{
    return e && e->refiner ? e->refiner_name : NULL;
}

const char *lf_engine_vae_path(const lf_engine_t *e)
{
    return e && e->model ? e->vae_path : NULL;
}

void lf_engine_stats(const lf_engine_t *e, lf_engine_stats_t *out)
{
    if (out) *out = e ? e->stats : (lf_engine_stats_t){0};
}

/* Reloads the base with the VAE a request names, when it differs from the
 * loaded one (vae: NULL = keep, "" = the checkpoint's). */
static int s_ensure_vae(lf_engine_t *e, const char *vae, const char *vae_name)
{
    if (!vae) return 0;
    const char *want = *vae ? vae : NULL;
    if ((!want && !e->vae_path) || (want && e->vae_path && !strcmp(want, e->vae_path))) return 0;
    if (want && !s_exists(want)) return s_err(e, LF_EIO, "%s: VAE file not found", want);
    char *path = strdup(e->model_path), *name = strdup(e->model_name), *taesd = s_dup(e->taesd_path);
    int rc = LF_ENOMEM;
    if (path && name && (taesd || !e->taesd_path)) {
        lf_engine_load_opts_t lo = {.name = name, .vae_path = want, .vae_name = vae_name, .taesd_path = taesd,
                                    .prediction_v = e->prediction_v,
                                    .text_paths = (const char *const *)e->text_paths,
                                    .n_text_paths = e->n_text_paths, .parts_vae_path = e->parts_vae};
        rc = lf_engine_load(e, path, &lo);
        if (rc == 0) {
            free(path), free(name), free(taesd);
            return 0;
        }
        /* The VAE did not load: the base goes back to its own, the job fails naming the file. */
        char why[sizeof e->err];
        snprintf(why, sizeof why, "%s", e->err);
        lo.vae_path = NULL;
        if (lf_engine_load(e, path, &lo) != 0) lf_engine_unload_refiner(e);
        s_err(e, rc, "VAE %s: %s", want, why);
    } else {
        s_err(e, rc, "out of memory");
    }
    free(path), free(name), free(taesd);
    return rc;
}

/* The family's name: the models' own list where the networks are built in
 * (so families added there are named), else the ones this file knows. */
static const char *s_family_str(lf_family_t f)
{
#ifdef LF_HAVE_MODEL
    return lf_family_name(f);
#else
    switch (f) {
    case LF_FAMILY_SD15: return "sd15";
    case LF_FAMILY_SDXL: return "sdxl";
    case LF_FAMILY_FLUX: return "flux";
    default: return "unknown";
    }
#endif
}

/* Makes the refiner a request names resident (loading it on first use);
 * NULL or "" releases none and loads none. */
static int s_ensure_refiner(lf_engine_t *e, const char *path, const char *name)
{
    if (!path || !*path) return 0;
    if (e->refiner && !strcmp(e->refiner_path, path)) return 0;
    lf_engine_unload_refiner(e); /* one refiner at most */
    if (!strcmp(path, e->model_path)) return 0; /* the base refining itself: A1111 runs no refiner */
    lf_model_opts_t mo = {.backend = e->backend, .weight_type = -1, .weight_quant = e->weight_quant,
                          .prediction = LF_PRED_EPS};
    char why[400] = "";
    lf_model_t *m = NULL;
    int rc = e->ops->load(path, &mo, &m, why, sizeof why);
    if (rc != 0) return s_err(e, rc, "refiner: %s", why[0] ? why : lf_strerror(rc));
    /* Same family, or both SDXL kinds (a refiner may get a family of its own). */
    lf_family_t fr = e->ops->desc(m)->family, fb = e->ops->desc(e->model)->family;
    if (fr != fb && (strncmp(s_family_str(fr), "sdxl", 4) != 0 || strncmp(s_family_str(fb), "sdxl", 4) != 0)) {
        e->ops->destroy(&m);
        return s_err(e, LF_EINVAL, "refiner %s is a %s model; the base %s is %s", path, s_family_str(fr), e->model_name,
                     s_family_str(fb));
    }
    char *rp = strdup(path), *rn = name && *name ? strdup(name) : s_name_of(path);
    if (!rp || !rn) {
        free(rp), free(rn);
        e->ops->destroy(&m);
        return s_err(e, LF_ENOMEM, "out of memory");
    }
    e->refiner = m;
    e->refiner_path = rp;
    e->refiner_name = rn;
    e->refiner_bytes = e->ops->weight_bytes ? e->ops->weight_bytes(m) : s_bytes(path, 0);
    e->stats.refiner_loads++;
    return 0;
}

const char *lf_engine_model_name(const lf_engine_t *e)
{
    return e && e->model ? e->model_name : NULL;
}

const char *lf_engine_model_family(const lf_engine_t *e)
{
    return e && e->model ? s_family_str(e->ops->desc(e->model)->family) : NULL;
}

const char *lf_engine_preview_kind(const lf_engine_t *e)
{
    if (!e || !e->model) return NULL;
    const lf_model_desc_t *d = e->ops->desc(e->model);
    return lf_preview_kind_name(d->has_preview ? d->preview : LF_PREVIEW_NONE);
}

static const char *s_family(const char *const *names, size_t n)
{
#ifdef LF_HAVE_MODEL
    return lf_family_name(lf_model_detect_family(names, n));
#else
    (void)names, (void)n;
    return "unknown";
#endif
}

/* A JSON object's positive integer member times scale (at most 65536), or 0. */
static uint32_t s_json_side(json_t *o, const char *key, uint32_t scale)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 && v <= 65536 / (json_int_t)scale ? (uint32_t)v * scale : 0;
}

static uint32_t s_family_side(const char *family)
{
    if (!strcmp(family, "sd15")) return 512;
    if (!strcmp(family, "sdxl") || !strcmp(family, "flux")) return 1024;
    return 0;
}

int lf_engine_probe(const char *path, const char **family, uint32_t *resolution, char *err, size_t errlen)
{
    uint32_t side = 0;
    char file[4096], e1[512] = "", e2[512] = "";
    struct stat sb;
    if (!path || stat(path, &sb) != 0) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path ? path : "(null)", strerror(errno));
        return LF_EIO;
    }
    snprintf(file, sizeof file, "%s", path);
    if (lf_manifest_is_path(path)) {
        lf_manifest_t *m = NULL;
        int rc = lf_manifest_load(path, &m, err, errlen);
        if (!rc) rc = lf_manifest_check(m, err, errlen);
        if (!rc) {
            *family = s_family_str(m->family);
            if (resolution) *resolution = m->resolution ? m->resolution : s_family_side(*family);
        }
        lf_manifest_destroy(&m);
        return rc;
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(file, sizeof file, "%s/transformer/diffusion_pytorch_model.safetensors", path);
        char sharded[4200];
        snprintf(sharded, sizeof sharded, "%s.index.json", file);
        if (s_exists(file) || s_exists(sharded)) { /* a diffusers Flux folder (lf_model_load takes transformer/ first) */
            *family = s_family_str(LF_FAMILY_FLUX);
            if (resolution) *resolution = s_family_side(*family);
            return 0;
        }
        snprintf(file, sizeof file, "%s/unet/config.json", path);
        json_t *cfg = json_load_file(file, 0, NULL);
        side = s_json_side(cfg, "sample_size", 8);
        json_decref(cfg);
        snprintf(file, sizeof file, "%s/unet/diffusion_pytorch_model.safetensors", path);
        if (!s_exists(file)) {
            if (err && errlen) snprintf(err, errlen, "%s: not a diffusers folder (no %s)", path, file);
            return LF_EFORMAT;
        }
    }
    lf_safetensors_t *st = NULL;
    lf_torchzip_t *tz = NULL;
    if (lf_safetensors_open(&st, file, e1, sizeof e1) != 0 && lf_torchzip_open(&tz, file, e2, sizeof e2) != 0) {
        /* The loaders' reasons start with the file name: keep only the reasons. */
        size_t fl = strlen(file);
        const char *r1 = strncmp(e1, file, fl) == 0 && e1[fl] == ':' ? e1 + fl + 2 : e1;
        const char *r2 = strncmp(e2, file, fl) == 0 && e2[fl] == ':' ? e2 + fl + 2 : e2;
        if (err && errlen) snprintf(err, errlen, "%s: not a weights file (safetensors: %s; torch zip: %s)", file, r1, r2);
        return LF_EFORMAT;
    }
    size_t n = st ? lf_safetensors_count(st) : lf_torchzip_count(tz);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) {
        lf_safetensors_destroy(&st);
        lf_torchzip_destroy(&tz);
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return LF_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) names[i] = (st ? lf_safetensors_at(st, i) : lf_torchzip_at(tz, i))->name;
    *family = s_family(names, n);
    free(names);
    const char *meta = st ? lf_safetensors_metadata(st, "lf.config") : NULL;
    if (meta && !side) {
        json_t *cfg = json_loads(meta, 0, NULL);
        side = s_json_side(cfg, "resolution", 1);
        json_decref(cfg);
    }
    if (resolution) *resolution = side ? side : s_family_side(*family);
    lf_safetensors_destroy(&st);
    lf_torchzip_destroy(&tz);
    return 0;
}

int lf_engine_probe_unet_inputs(const char *path)
{
    char file[4096], e[512];
    struct stat sb;
    if (!path || stat(path, &sb) != 0) return 0;
    if (S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s/unet/diffusion_pytorch_model.safetensors", path);
    else snprintf(file, sizeof file, "%s", path);
    lf_safetensors_t *st = NULL;
    lf_torchzip_t *tz = NULL;
    if (lf_safetensors_open(&st, file, e, sizeof e) != 0 && lf_torchzip_open(&tz, file, e, sizeof e) != 0) return 0;
    /* The first conv: original SD / SGM layout, or diffusers' unet/. */
    static const char *const names[] = {"model.diffusion_model.input_blocks.0.0.weight", "conv_in.weight"};
    int in = 0;
    const size_t n = st ? lf_safetensors_count(st) : lf_torchzip_count(tz);
    for (size_t i = 0; i < n && !in; i++) {
        const lf_tensor_info_t *t = st ? lf_safetensors_at(st, i) : lf_torchzip_at(tz, i);
        for (size_t k = 0; k < 2; k++)
            if (!strcmp(t->name, names[k]) && t->ndim == 4) in = (int)t->shape[1];
    }
    lf_safetensors_destroy(&st);
    lf_torchzip_destroy(&tz);
    return in;
}

typedef struct {
    lf_engine_progress_fn fn;
    void *ud;
} s_prog_t;

static void s_progress(void *ud, int step, int steps, const uint8_t *preview, size_t len)
{
    s_prog_t *p = ud;
    p->fn(p->ud, step, steps, preview, len);
}

/* ---- LoRAs ------------------------------------------------------------- */

/* Scans the LoRA folders again, keeping the hashes of unchanged files. */
static int s_lora_rescan(lf_engine_t *e)
{
    const char *roots[16];
    size_t nr = 0;
    char *dirs = e->lora_dirs ? strdup(e->lora_dirs) : NULL;
    if (e->lora_dirs && !dirs) return LF_ENOMEM;
    for (char *save = NULL, *t = dirs ? strtok_r(dirs, ":", &save) : NULL; t && nr < 16;
         t = strtok_r(NULL, ":", &save))
        roots[nr++] = t;
    lf_lora_file_t *files = NULL;
    size_t n = 0;
    int rc = lf_lora_dir_scan(roots, nr, 0, &files, &n);
    free(dirs);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < e->n_lora_files; j++) {
            const lf_lora_file_t *o = &e->lora_files[j];
            if (!strcmp(o->path, files[i].path) && o->size == files[i].size &&
                o->mtime_ns == files[i].mtime_ns)
                memcpy(files[i].hash, o->hash, sizeof o->hash);
        }
    lf_lora_dir_free(&e->lora_files, e->n_lora_files);
    e->lora_files = files;
    e->n_lora_files = n;
    return 0;
}

/* What a request's LoRAs make of a job. */
typedef struct {
    char *prompt;      /* the prompt without its extra-network tags */
    char *info_prompt; /* the prompt as given + the list's tags; NULL = as given */
    char *hashes;      /* "name: hash12, ..." (A1111's "Lora hashes"), NULL when none */
    char *warnings;
    lf_lora_use_t *uses;
    size_t n;
} s_loras_t;

static void s_loras_clear(s_loras_t *l)
{
    free(l->prompt), free(l->info_prompt), free(l->hashes), free(l->warnings), free(l->uses);
    memset(l, 0, sizeof *l);
}

/* Appends printf text to the growing string *s. */
__attribute__((format(printf, 2, 3))) static int s_cat(char **s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int add = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t have = *s ? strlen(*s) : 0;
    char *n = add < 0 ? NULL : realloc(*s, have + (size_t)add + 1);
    if (!n) return LF_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(n + have, (size_t)add + 1, fmt, ap);
    va_end(ap);
    *s = n;
    return 0;
}

/* The LoRA file of a name (borrowed from e->lora_files), scanning the
 * folders again when it is not in the last scan. */
static lf_lora_file_t *s_lora_file(lf_engine_t *e, const char *name, int *rescanned, int *rc)
{
    const lf_lora_file_t *f = lf_lora_dir_find(e->lora_files, e->n_lora_files, name);
    if (!f && !*rescanned) {
        *rescanned = 1;
        if ((*rc = s_lora_rescan(e)) != 0) return NULL;
        f = lf_lora_dir_find(e->lora_files, e->n_lora_files, name);
    }
    return (lf_lora_file_t *)f;
}

/* Cuts the tags out of the prompt, resolves every LoRA of the request to
 * its file and makes the infotext's prompt and hashes. */
static int s_loras_prepare(lf_engine_t *e, const lf_engine_request_t *req, s_loras_t *l)
{
    lf_prompt_extra_t *ex = NULL;
    size_t nx = 0;
    int rc = lf_prompt_extract(req->prompt ? req->prompt : "", &l->prompt, &ex, &nx, e->err,
                               sizeof e->err);
    if (rc) return rc;
    size_t cap = nx + req->n_loras;
    l->uses = calloc(cap ? cap : 1, sizeof *l->uses);
    if (!l->uses) rc = s_err(e, LF_ENOMEM, "out of memory");
    int rescanned = 0;
    for (size_t i = 0; !rc && i < cap; i++) {
        const char *name;
        double unet, te;
        if (i < nx) {
            if (!ex[i].is_lora) {
                rc = s_cat(&l->warnings, "%s<%s:%s> skipped (no %s networks here)",
                           l->warnings ? "; " : "", ex[i].kind, ex[i].args, ex[i].kind);
                continue;
            }
            name = ex[i].name, unet = ex[i].unet_weight, te = ex[i].te_weight;
        } else {
            const lf_engine_lora_t *r = &req->loras[i - nx];
            name = r->name, unet = r->weight, te = isnan(r->te_weight) ? r->weight : r->te_weight;
            if (!name || !*name) {
                rc = s_err(e, LF_EINVAL, "loras[%zu] has no name", i - nx);
                break;
            }
        }
        if (!isfinite(unet) || !isfinite(te)) {
            rc = s_err(e, LF_EINVAL, "LoRA '%s': the weight is not a finite number", name);
            break;
        }
        lf_lora_file_t *f = s_lora_file(e, name, &rescanned, &rc);
        if (rc) break;
        if (!f) {
            rc = s_err(e, LF_ENOTFOUND, "unknown LoRA '%s' (no such file in %s)", name,
                       e->lora_dirs ? e->lora_dirs : "the worker's LoRA folders: none set");
            break;
        }
        l->uses[l->n++] = (lf_lora_use_t){.path = f->path, .name = f->name, .unet_weight = unet,
                                          .te_weight = te};
        char why[512];
        if (lf_lora_dir_hash(f, why, sizeof why) != 0) {
            lf_warn("engine: LoRA %s has no hash: %s", f->path, why);
            continue;
        }
        /* A1111 writes the name as mentioned, without ':' and ','. */
        char alias[256];
        size_t k = 0;
        for (const char *c = name; *c && k + 1 < sizeof alias; c++)
            if (*c != ':' && *c != ',') alias[k++] = *c;
        alias[k] = '\0';
        rc = s_cat(&l->hashes, "%s%s: %.12s", l->hashes ? ", " : "", alias, f->hash);
        if (!rc && i >= nx)
            rc = unet == te ? s_cat(&l->info_prompt, " <lora:%s:%g>", name, unet)
                            : s_cat(&l->info_prompt, " <lora:%s:%g:%g>", name, te, unet);
    }
    lf_prompt_extras_free(&ex, nx);
    if (!rc && l->info_prompt) {
        char *p = NULL;
        rc = s_cat(&p, "%s%s", req->prompt ? req->prompt : "", l->info_prompt);
        free(l->info_prompt);
        l->info_prompt = p;
    }
    if (rc == LF_ENOMEM) s_err(e, rc, "out of memory");
    return rc;
}

/* Whether two requests' LoRAs make the same set (batched rows). */
static int s_loras_same(const s_loras_t *a, const s_loras_t *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->uses[i].path, b->uses[i].path) || a->uses[i].unet_weight != b->uses[i].unet_weight ||
            a->uses[i].te_weight != b->uses[i].te_weight)
            return 0;
    return 1;
}

/* Batched rows: each row's prompt without its tags (its LoRAs must be row
 * 0's, which lo holds) into prow; lr[j] keeps row j's strings. */
static int s_rows_prepare(lf_engine_t *e, const lf_engine_request_t *req, const s_loras_t *lo,
                          s_loras_t *lr, lf_pipeline_row_t *prow)
{
    for (size_t j = 0; j < req->n_rows; j++) {
        const lf_engine_row_t *row = &req->rows[j];
        lf_engine_request_t rj = *req;
        rj.prompt = row->prompt;
        int rc = s_loras_prepare(e, &rj, &lr[j]);
        if (rc) return rc;
        if (!s_loras_same(lo, &lr[j]))
            return s_err(e, LF_EUNSUPPORTED, "batched jobs: row %zu's LoRA set is not row 0's", j);
        prow[j] = (lf_pipeline_row_t){.prompt = lr[j].prompt, .negative = row->negative,
                                      .infotext_prompt = lr[j].info_prompt ? lr[j].info_prompt : row->prompt,
                                      .seed = row->seed, .batch = row->batch,
                                      .progress = row->progress, .progress_ud = row->progress_ud};
    }
    return 0;
}

/* Makes the model's weights the request's LoRA set (none: the plain
 * model). */
static int s_loras_apply(lf_engine_t *e, s_loras_t *l)
{
    if (!e->ops->set_loras) {
        if (!l->n) return 0;
        return s_err(e, LF_EUNSUPPORTED, "this model (%s) cannot take LoRAs", e->ops->name);
    }
    lf_lora_patch_info_t info = {0};
    char why[512] = "";
    int rc = e->ops->set_loras(e->model, l->uses, l->n, &info, why, sizeof why);
    if (rc) {
        lf_warn("engine: LoRAs not applied, the model runs without them: %s", why);
        return s_err(e, rc, "%s", why[0] ? why : lf_strerror(rc));
    }
    if (l->n && !info.reused)
        lf_info("engine: %zu LoRA(s) merged into %zu tensors (%.1f MB kept for the restore)", l->n,
                info.layers, info.saved_bytes / 1e6);
    if (info.warnings) {
        lf_warn("engine: LoRA tensors not applied: %s", info.warnings);
        rc = s_cat(&l->warnings, "%sLoRA tensors not applied: %s", l->warnings ? "; " : "",
                   info.warnings);
        free(info.warnings);
        if (rc) return s_err(e, rc, "out of memory");
    }
    return 0;
}

int lf_engine_list_upscalers(const char *dirs, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    char *copy = dirs ? strdup(dirs) : NULL;
    if (dirs && !copy) return LF_ENOMEM;
    const char *d[8];
    size_t nd = 0;
    for (char *save = NULL, *t = copy ? strtok_r(copy, ":", &save) : NULL; t && nd < 8; t = strtok_r(NULL, ":", &save))
        d[nd++] = t;
    lf_upscaler_entry_t *e = NULL;
    size_t ne = 0;
    int rc = lf_upscaler_scan(d, nd, &e, &ne, NULL, NULL);
    free(copy);
    if (rc) return rc;
    char **out = ne ? calloc(ne, sizeof *out) : NULL;
    for (size_t i = 0; out && i < ne; i++)
        if (!(out[i] = strdup(e[i].name))) {
            for (size_t k = 0; k < i; k++) free(out[k]);
            free(out);
            out = NULL;
        }
    lf_upscaler_entries_free(e, ne);
    if (ne && !out) return LF_ENOMEM;
    *names = out;
    *n = ne;
    return 0;
}

/* The request's Hires-Fix fields into the pipeline's, and the upscaler
 * model it names made resident (a name that is not a built-in one). */
static int s_hires_request(lf_engine_t *e, const lf_engine_request_t *req, lf_pipeline_request_t *pr)
{
    lf_pipeline_hires_t *h = &pr->hires;
    *h = (lf_pipeline_hires_t){.sampler = -1, .scheduler = -1};
    if (!req->enable_hr) return 0;
    h->enable = 1;
    h->scale = req->hr_scale;
    h->resize_x = req->hr_resize_x;
    h->resize_y = req->hr_resize_y;
    h->upscaler = req->hr_upscaler && *req->hr_upscaler ? req->hr_upscaler : "Latent";
    h->steps = req->hr_steps;
    h->prompt = req->hr_prompt;
    h->negative = req->hr_negative;
    h->cfg = req->hr_cfg;
    if (req->hr_steps < 0 || req->hr_resize_x < 0 || req->hr_resize_y < 0 || req->hr_cfg < 0)
        return s_err(e, LF_EINVAL, "Hires-Fix values must be >= 0");
    lf_sampler_kind_t sk;
    lf_scheduler_t sc;
    if (req->hr_sampler && *req->hr_sampler) {
        if (lf_sampler_parse(req->hr_sampler, &sk)) return s_err(e, LF_EINVAL, "unknown hr_sampler '%s'", req->hr_sampler);
        h->sampler = (int)sk;
    }
    if (req->hr_scheduler && *req->hr_scheduler) {
        if (lf_scheduler_parse(req->hr_scheduler, &sc))
            return s_err(e, LF_EINVAL, "unknown hr_scheduler '%s'", req->hr_scheduler);
        h->scheduler = (int)sc;
    }
    if (lf_resize_builtin_find(h->upscaler)) return 0;
    int rc = lf_upscaler_set_use(e->upscalers, h->upscaler, e->err, sizeof e->err);
    if (rc == LF_ENOTFOUND) return s_err(e, LF_EINVAL, "unknown hr_upscaler '%s'", h->upscaler);
    return rc;
}

int lf_engine_upscale(lf_engine_t *e, const lf_engine_upscale_request_t *req, lf_engine_progress_fn progress,
                      void *ud, const atomic_bool *cancel, lf_engine_result_t *out)
{
    if (!e || !req || !out) return e ? s_err(e, LF_EINVAL, "no request") : LF_EINVAL;
    e->err[0] = '\0';
    const char *name = req->upscaler && *req->upscaler ? req->upscaler : "Lanczos";
    const double scale = req->scale > 0 ? req->scale : 4.0;
    if (!req->image || !req->image_len) return s_err(e, LF_EINVAL, "no image to upscale");
    if (req->width < 0 || req->height < 0 || req->width > 8192 || req->height > 8192 || scale > 16.0)
        return s_err(e, LF_EINVAL, "upscale size out of range");
    const lf_resize_builtin_t *b = lf_resize_builtin_find(name);
    if (b && b->latent) return s_err(e, LF_EINVAL, "upscaler '%s' resizes latents, not images", name);
    int rc = 0;
    if (!b && (rc = lf_upscaler_set_use(e->upscalers, name, e->err, sizeof e->err)) != 0)
        return rc == LF_ENOTFOUND ? s_err(e, LF_EINVAL, "unknown upscaler '%s'", name) : rc;
    lf_image_t im = {0};
    char why[160] = "";
    if ((rc = lf_image_decode(req->image, req->image_len, NULL, &im, why, sizeof why)) != 0)
        return s_err(e, rc, "cannot decode the image: %s", why[0] ? why : lf_strerror(rc));
    if (im.channels != 3) {
        lf_image_clear(&im);
        return s_err(e, LF_EUNSUPPORTED, "the image is not RGB");
    }
    const int to = req->width > 0 && req->height > 0;
    const double by = to ? fmax((double)req->width / im.width, (double)req->height / im.height) : scale;
    uint8_t *up = NULL;
    int uw = 0, uh = 0;
    rc = cancel && atomic_load(cancel) ? LF_ECANCELED
                                       : lf_hires_upscale_by(b, lf_upscaler_set_run_rgb8, e->upscalers, im.pixels,
                                                             (int)im.width, (int)im.height, by, &up, &uw, &uh);
    lf_image_clear(&im);
    if (rc) return s_err(e, rc, "upscaler '%s' failed: %s", name, lf_strerror(rc));
    if (to) { /* A1111: Image.new("RGB", (w, h)).paste(image, centred) */
        uint8_t *c = calloc((size_t)req->width * (size_t)req->height, 3);
        if (!c) {
            free(up);
            return s_err(e, LF_ENOMEM, "out of memory");
        }
        const int ox = req->width / 2 - uw / 2, oy = req->height / 2 - uh / 2;
        for (int y = 0; y < req->height; y++)
            for (int x = 0; x < req->width; x++) {
                int sx = x - ox, sy = y - oy;
                if (sx >= 0 && sy >= 0 && sx < uw && sy < uh)
                    memcpy(c + ((size_t)y * req->width + x) * 3, up + ((size_t)sy * uw + sx) * 3, 3);
            }
        free(up);
        up = c, uw = req->width, uh = req->height;
    }
    char info[512];
    if (to)
        snprintf(info, sizeof info, "Postprocess upscale to: %dx%d, Postprocess crop to: %dx%d, Postprocess upscaler: %s",
                 req->width, req->height, uw, uh, name);
    else
        snprintf(info, sizeof info, "Postprocess upscale by: %g, Postprocess upscaler: %s", scale, name);
    lf_engine_image_t *img = calloc(1, sizeof *img);
    char *text = strdup(info);
    lf_image_t oim = {.pixels = up, .width = (uint32_t)uw, .height = (uint32_t)uh, .channels = 3};
    lf_image_text_t t = {.key = "postprocessing", .value = info};
    rc = img && text ? lf_image_png_encode(&oim, &t, 1, -1, &img->png, &img->png_len, why, sizeof why) : LF_ENOMEM;
    free(up);
    if (rc) {
        free(img);
        free(text);
        return s_err(e, rc, "cannot encode the PNG: %s", why[0] ? why : lf_strerror(rc));
    }
    img->infotext = text;
    img->width = uw;
    img->height = uh;
    if (progress) progress(ud, 1, 1, NULL, 0);
    out->images = img;
    out->n_images = 1;
    out->steps_run = 0;
    out->warnings = NULL;
    return 0;
}

/* ---- ADetailer's detectors --------------------------------------------- */

static const char *const s_ad_models[2] = {"mediapipe_face_short", "mediapipe_face_full"};
static const char *const s_ad_files[2] = {"face_detection_short_range.tflite",
                                          "face_detection_full_range.tflite"};

static void s_ad_path_in(const char *assets_dir, int i, char *buf, size_t len)
{
    const char *env = getenv("LF_ASSETS_DIR");
    if (env && *env) {
        snprintf(buf, len, "%s/blazeface/%s", env, s_ad_files[i]);
        if (s_exists(buf)) return;
    }
    snprintf(buf, len, "%s/blazeface/%s", assets_dir ? assets_dir : LF_ASSETS_DEFAULT, s_ad_files[i]);
}

static void s_ad_path(const lf_engine_t *e, int i, char *buf, size_t len)
{
    s_ad_path_in(e->assets_dir, i, buf, len);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends a copy of name to (*v, *k). 0 or LF_ENOMEM. */
static int s_names_push(char ***v, size_t *k, const char *name)
{
    char **nv = realloc(*v, (*k + 1) * sizeof *nv);
    if (!nv) return LF_ENOMEM;
    *v = nv;
    if (!(nv[*k] = strdup(name))) return LF_ENOMEM;
    (*k)++;
    return 0;
}

int lf_engine_list_adetailer(const char *assets_dir, const char *adetailer_dir, char ***names, size_t *n)
{
    char **v = NULL, path[1024];
    size_t k = 0, yolo0;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        s_ad_path_in(assets_dir, i, path, sizeof path);
        if (s_exists(path)) rc = s_names_push(&v, &k, s_ad_models[i]);
    }
    yolo0 = k;
    DIR *d = adetailer_dir && !rc ? opendir(adetailer_dir) : NULL;
    struct dirent *de;
    while (d && !rc && (de = readdir(d))) {
        if (!lf_adetailer_yolo_file(de->d_name) || strstr(de->d_name, "-world")) continue;
        snprintf(path, sizeof path, "%s/%s", adetailer_dir, de->d_name);
        if (s_exists(path)) rc = s_names_push(&v, &k, de->d_name);
    }
    if (d) closedir(d);
    if (rc) {
        for (size_t i = 0; i < k; i++) free(v[i]);
        free(v);
        return rc;
    }
    if (k > yolo0) qsort(v + yolo0, k - yolo0, sizeof *v, s_cmp_str);
    *names = v;
    *n = k;
    return 0;
}

int lf_engine_adetailer_models(lf_engine_t *e, const char **names, int max)
{
    if (!e) return 0;
    s_ad_names_free(e);
    size_t n = 0;
    if (lf_engine_list_adetailer(e->assets_dir, e->adetailer_dir, &e->ad_names, &n) != 0) return 0;
    e->n_ad_names = (int)n;
    for (int i = 0; i < e->n_ad_names && i < max; i++) names[i] = e->ad_names[i];
    return e->n_ad_names;
}

/* lf_detailer_detect_fn for a YOLO file of adetailer_dir: ultralytics'
 * predict(image, conf=confidence) as ADetailer's ultralytics_predict calls
 * it; boxes in NMS order, seg masks through mask_to_pil. */
static int s_yolo_detect(lf_engine_t *e, const char *model, const uint8_t *rgb, int w, int h, double confidence,
                         lf_detailer_box_t *out, int max)
{
    if (!lf_adetailer_yolo_file(model))
        return s_err(e, LF_ENOTFOUND, "ad_model '%s' is not available (mediapipe_face_short / _full, or a .pt / "
                     ".safetensors file name of models/adetailer)", model);
    if (strstr(model, "-world"))
        return s_err(e, LF_EUNSUPPORTED, "ad_model '%s': YOLO-World models are not supported", model);
    int slot = -1;
    for (int i = 0; i < 4; i++)
        if (e->yolo[i].name && !strcmp(e->yolo[i].name, model)) slot = i;
    if (slot < 0) {
        char path[1024], msg[512] = "";
        snprintf(path, sizeof path, "%s/%s", e->adetailer_dir ? e->adetailer_dir : "", model);
        if (!e->adetailer_dir || !s_exists(path))
            return s_err(e, LF_ENOTFOUND, "ad_model '%s' is not available (not in %s)", model,
                         e->adetailer_dir ? e->adetailer_dir : "this worker's models/adetailer: none set");
        lf_yolo_t *net = lf_yolo_new(path, msg, sizeof msg);
        if (!net) return s_err(e, LF_EUNSUPPORTED, "ad_model '%s': %s", model, msg);
        free(e->yolo[3].name), lf_yolo_destroy(&e->yolo[3].net); /* the least recently loaded out */
        memmove(&e->yolo[1], &e->yolo[0], 3 * sizeof e->yolo[0]);
        slot = 0;
        e->yolo[0].net = net;
        if (!(e->yolo[0].name = strdup(model))) return s_err(e, LF_ENOMEM, "out of memory");
    }
    lf_yolo_det_t dets[LF_DETAILER_MAX_DETECTIONS];
    free(e->yolo_masks);
    e->yolo_masks = NULL;
    int n = lf_yolo_predict(e->yolo[slot].net, rgb, w, h, confidence, dets, LF_DETAILER_MAX_DETECTIONS,
                            &e->yolo_masks);
    if (n < 0) return s_err(e, n, "ad_model '%s': detection failed (%s)", model, lf_strerror(n));
    if (n > LF_DETAILER_MAX_DETECTIONS) n = LF_DETAILER_MAX_DETECTIONS;
    for (int k = 0; k < n && k < max; k++)
        out[k] = (lf_detailer_box_t){dets[k].score, dets[k].x1, dets[k].y1, dets[k].x2, dets[k].y2,
                                     e->yolo_masks ? e->yolo_masks + (size_t)k * w * h : NULL};
    return n;
}

/* lf_detailer_detect_fn over the engine's BlazeFace detectors: MediaPipe's
 * detections as ADetailer's mediapipe_predict takes them (the relative box
 * times the image size), score >= confidence. */
static int s_detailer_detect(void *ud, const char *model, const uint8_t *rgb, int w, int h,
                             double confidence, lf_detailer_box_t *out, int max)
{
    lf_engine_t *e = ud;
    int i = -1;
    for (int k = 0; k < 2; k++)
        if (!strcmp(model, s_ad_models[k])) i = k;
    if (i < 0) return s_yolo_detect(e, model, rgb, w, h, confidence, out, max);
    if (!e->blazeface[i]) {
        char path[1024], msg[256] = "";
        s_ad_path(e, i, path, sizeof path);
        e->blazeface[i] = lf_blazeface_new(path, msg, sizeof msg);
        if (!e->blazeface[i])
            return s_err(e, LF_ENOTFOUND, "ad_model '%s': %s (run tools/fetch_assets.sh)", model, msg);
    }
    lf_blazeface_det_t dets[LF_DETAILER_MAX_DETECTIONS];
    /* min_score must be < 1; a confidence of 1 keeps nothing anyway. */
    float min = confidence >= 1.0 ? 0.999999f : (float)confidence;
    int n = lf_blazeface_detect(e->blazeface[i], rgb, w, h, min > 0 ? nextafterf(min, 0.0f) : 0.0f, dets,
                                LF_DETAILER_MAX_DETECTIONS);
    if (n < 0) return s_err(e, n, "ad_model '%s': detection failed (%s)", model, lf_strerror(n));
    if (n > LF_DETAILER_MAX_DETECTIONS) n = LF_DETAILER_MAX_DETECTIONS;
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (dets[k].score < confidence) continue;
        if (m < max) out[m] = (lf_detailer_box_t){dets[k].score, dets[k].xmin, dets[k].ymin, dets[k].xmax, dets[k].ymax, NULL};
        m++;
    }
    return m;
}

/* The VAE tile for a request (lf_engine_opts_t.vae_tile): the engine's,
 * whole images when negative, or, by default (0), tiles of 64 latent pixels
 * (512 px, overlap 1/4) for images over 768x768 — a 1024x1024 SDXL decode
 * whole adds ~3 GB of activations (10.0 GB peak with the f16 base resident),
 * tiled ~1 GB (8.1 GB; docs/PERFORMANCE.md). */
static int s_vae_tile(const lf_engine_t *e, const lf_engine_request_t *req)
{
    if (e->vae_tile) return e->vae_tile < 0 ? 0 : e->vae_tile;
    return (int64_t)req->width * req->height > 768 * 768 ? 64 : 0;
}

/* The refiner of a refined job gets the request's LoRAs that match it
 * entirely (a LoRA made for it); a LoRA made for the base — an SDXL base
 * LoRA names UNet layers the refiner has in other shapes or not at all — is
 * never applied to it, in whole or in part. The job's warnings say which
 * model each LoRA went to. A1111 applies extra networks to whichever model
 * runs, and fails or skips layers whose shapes differ; merging only what fits
 * entirely keeps a base LoRA's text-encoder half off the refiner. */
static int s_loras_refiner(lf_engine_t *e, s_loras_t *l)
{
    if (!e->ops->set_loras) return 0;
    lf_lora_use_t *ru = calloc(l->n ? l->n : 1, sizeof *ru);
    if (!ru) return s_err(e, LF_ENOMEM, "out of memory");
    size_t rn = 0;
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        int fits = e->ops->lora_fits && e->ops->lora_fits(e->refiner, l->uses[i].path);
        if (fits) ru[rn++] = l->uses[i];
        rc = fits ? s_cat(&l->warnings, "%sLoRA %s applied to the base and to the refiner %s",
                          l->warnings ? "; " : "", l->uses[i].name, e->refiner_name)
                  : s_cat(&l->warnings,
                          "%sLoRA %s applied to the base only (its layers are not those of the "
                          "refiner %s)",
                          l->warnings ? "; " : "", l->uses[i].name, e->refiner_name);
    }
    char why[512] = "";
    lf_lora_patch_info_t info = {0};
    if (!rc) rc = e->ops->set_loras(e->refiner, ru, rn, &info, why, sizeof why);
    if (rc && why[0]) s_err(e, rc, "refiner: %s", why);
    else if (rc) s_err(e, rc, "%s", lf_strerror(rc));
    free(info.warnings);
    free(ru);
    return rc;
}

int lf_engine_generate(lf_engine_t *e, const lf_engine_request_t *req, lf_engine_progress_fn progress,
                       void *ud, const atomic_bool *cancel, lf_engine_result_t *out)
{
    if (!e || !req || !out) return e ? s_err(e, LF_EINVAL, "no request") : LF_EINVAL;
    e->err[0] = '\0';
    if (!e->model) return s_err(e, LF_ESTATE, "no model is loaded");
    lf_pipeline_request_t pr = {
        .prompt = req->prompt,
        .negative = req->negative,
        .steps = req->steps,
        .cfg = req->cfg,
        .seed = req->seed,
        .width = req->width,
        .height = req->height,
        .batch = req->batch,
        .clip_skip = req->clip_skip,
        .init_image = req->init_image,
        .init_image_len = req->init_image_len,
        .denoise = req->denoise,
        .preview_every = req->preview_every,
        .vae_tile = s_vae_tile(e, req),
        .orig_width = req->orig_width,
        .orig_height = req->orig_height,
        .crop_top = req->crop_top,
        .crop_left = req->crop_left,
        .target_width = req->target_width,
        .target_height = req->target_height,
        .aesthetic_score = req->aesthetic_score,
        .negative_aesthetic_score = req->negative_aesthetic_score,
        .refiner_switch_at = req->refiner_switch_at,
        .mask = req->mask,
        .mask_len = req->mask_len,
        .mask_blur_x = req->mask_blur_x,
        .mask_blur_y = req->mask_blur_y,
        .inpainting_fill = req->inpainting_fill,
        .inpaint_full_res = req->inpaint_full_res,
        .inpaint_full_res_padding = req->inpaint_full_res_padding,
        .inpainting_mask_invert = req->inpainting_mask_invert,
        .initial_noise_multiplier = req->initial_noise_multiplier,
        .inpainting_mask_weight = req->inpainting_mask_weight,
        .cache = req->cache,
        .has_tcd_gamma = req->has_tcd_gamma,
        .tcd_gamma = req->tcd_gamma,
        .timesteps = req->timesteps,
        .n_timesteps = req->n_timesteps,
        .guidance = req->guidance,
    };
    if (req->cache.kind != LF_STEPCACHE_NONE) {
        const char *field = NULL;
        if (lf_stepcache_opts_check(&req->cache, &field))
            return s_err(e, LF_EINVAL, "cache.%s is out of range", field);
    }
    if (req->has_tcd_gamma && !(req->tcd_gamma >= 0.0 && req->tcd_gamma <= 1.0))
        return s_err(e, LF_EINVAL, "tcd_gamma must be 0..1");
    if (req->timesteps && req->n_timesteps != req->steps)
        return s_err(e, LF_EINVAL, "%d timesteps for %d steps", req->n_timesteps, req->steps);
    if (req->init_image && !req->init_image_len) return s_err(e, LF_EINVAL, "the init image is empty");
    if (req->mask && !req->mask_len) return s_err(e, LF_EINVAL, "the mask is empty");
    if (lf_sampler_parse(req->sampler && *req->sampler ? req->sampler : "euler", &pr.sampler))
        return s_err(e, LF_EINVAL, "unknown sampler '%s'", req->sampler);
    if (lf_scheduler_parse(req->scheduler && *req->scheduler ? req->scheduler : "normal", &pr.scheduler))
        return s_err(e, LF_EINVAL, "unknown scheduler '%s'", req->scheduler);
    if (!req->rng || !*req->rng || !strcasecmp(req->rng, "cpu"))
        pr.rng = LF_RNG_TORCH_CPU;
    else if (!strcasecmp(req->rng, "philox") || !strcasecmp(req->rng, "nv"))
        pr.rng = LF_RNG_PHILOX;
    else
        return s_err(e, LF_EINVAL, "unknown rng '%s' (cpu or philox)", req->rng);

    int rc = s_hires_request(e, req, &pr);
    if (rc != 0) return rc;
    if (req->orig_width < 0 || req->orig_height < 0 || req->crop_top < 0 || req->crop_left < 0 ||
        req->target_width < 0 || req->target_height < 0)
        return s_err(e, LF_EINVAL, "size conditioning values must be >= 0");
    lf_precision_t prec = e->precision;
    if (req->precision && *req->precision && lf_precision_parse(req->precision, &prec))
        return s_err(e, LF_EINVAL, "precision '%s': f32, bf16 or auto", req->precision);
    bool refine = req->refiner_path && *req->refiner_path;
    if (refine && !(req->refiner_switch_at > 0.0 && req->refiner_switch_at <= 1.0))
        return s_err(e, LF_EINVAL, "refiner_switch_at %g is not in (0, 1]", req->refiner_switch_at);
    if (req->n_loras && !req->loras) return s_err(e, LF_EINVAL, "n_loras without loras");
    if (req->n_adetailer && !req->adetailer) return s_err(e, LF_EINVAL, "n_adetailer without adetailer");
    if (req->n_rows && !req->rows) return s_err(e, LF_EINVAL, "n_rows without rows");
    if (req->n_rows > LF_PIPELINE_MAX_BATCH) return s_err(e, LF_EINVAL, "at most %d batched rows", LF_PIPELINE_MAX_BATCH);
    if (req->n_rows && (req->n_adetailer || refine))
        return s_err(e, LF_EUNSUPPORTED, "batched jobs run without ADetailer or a refiner");
    /* The VAE first: a VAE change reloads the base, and the LoRA set is then
     * merged into the reloaded weights. */
    rc = s_ensure_vae(e, req->vae_path, req->vae_name);
    if (rc != 0) return rc;
    /* A job without the refiner leaves it resident only while both fit. */
    if (!refine && e->refiner && !s_fits(e, e->model_bytes, e->refiner_bytes)) lf_engine_unload_refiner(e);
    if (refine && (rc = s_ensure_refiner(e, req->refiner_path, req->refiner_name)) != 0) return rc;

    /* LoRAs go into the base, and into a refiner only where they match it
     * entirely (s_loras_refiner). */
    s_loras_t lo = {0};
    lf_engine_request_t req0 = *req; /* batched: row 0's prompt makes the LoRA set */
    if (req->n_rows) req0.prompt = req->rows[0].prompt;
    rc = s_loras_prepare(e, &req0, &lo);
    if (!rc) rc = s_loras_apply(e, &lo);
    if (!rc && refine && e->refiner) rc = s_loras_refiner(e, &lo);
    if (rc) {
        s_loras_clear(&lo);
        return rc;
    }
    pr.prompt = lo.prompt;
    pr.infotext_prompt = lo.info_prompt ? lo.info_prompt : req->prompt;
    pr.lora_hashes = lo.hashes;
    s_loras_t *lr = req->n_rows ? calloc(req->n_rows, sizeof *lr) : NULL;
    lf_pipeline_row_t *prow = req->n_rows ? calloc(req->n_rows, sizeof *prow) : NULL;
    if (req->n_rows && (!lr || !prow)) rc = s_err(e, LF_ENOMEM, "out of memory");
    else if (req->n_rows) rc = s_rows_prepare(e, req, &lo, lr, prow);
    pr.rows = prow, pr.n_rows = (int)req->n_rows;
    /* The UNets' precision for this job (base and refiner; lf_model.h). */
    lf_precision_t ran = e->ops->set_precision ? e->ops->set_precision(e->model, prec) : LF_PRECISION_F32;
    if (refine && e->refiner && e->ops->set_precision) e->ops->set_precision(e->refiner, prec);
    pr.precision = ran != LF_PRECISION_F32 ? lf_precision_name(ran) : NULL; /* bf16, or f16 on sm_70/75 */

    lf_pipeline_ctx_t ctx = {.ops = e->ops, .model = e->model, .tokenizer = e->tok, .t5_tokenizer = e->t5tok,
                             .model_name = e->model_name, .vae_name = e->vae_name,
                             .upscale = lf_upscaler_set_run_rgb8, .upscale_ud = e->upscalers};
    if (refine && e->refiner) {
        ctx.refiner = e->refiner;
        ctx.refiner_name = e->refiner_name;
    }
    s_prog_t p = {progress, ud};
    lf_pipeline_hooks_t hooks = {.progress = progress ? s_progress : NULL, .progress_ud = &p,
                                 .cancel = cancel};
    lf_pipeline_result_t res = {0};
    if (!rc) rc = lf_pipeline_run(&ctx, &pr, &hooks, &res, e->err, sizeof e->err);
    for (size_t j = 0; lr && j < req->n_rows; j++) s_loras_clear(&lr[j]);
    free(lr), free(prow);
    /* Kept for the next refined job only while base and refiner fit together. */
    if (e->refiner && !s_fits(e, e->model_bytes, e->refiner_bytes)) lf_engine_unload_refiner(e);
    if (rc != 0) {
        s_loras_clear(&lo);
        if (!e->err[0]) s_err(e, rc, "%s", lf_strerror(rc));
        return rc;
    }
    /* ADetailer: the units on each image, its steps counted on. */
    if (req->n_adetailer) {
        lf_detailer_t det = {.units = req->adetailer, .n_units = req->n_adetailer,
                             .detect = s_detailer_detect, .detect_ud = e};
        int done = res.steps_run;
        for (size_t i = 0; i < res.n_images && !rc; i++) {
            e->err[0] = '\0';
            char msg[sizeof e->err] = "";
            rc = lf_detailer_run(&det, &ctx, &pr, (int)i, &hooks, &res.images[i], &done, msg, sizeof msg);
            if (rc && !e->err[0]) s_err(e, rc, "adetailer: %s", msg[0] ? msg : lf_strerror(rc));
        }
        if (rc) {
            s_loras_clear(&lo);
            lf_pipeline_result_clear(&res);
            return rc;
        }
        res.steps_run = done;
    }
    lf_engine_image_t *imgs = calloc(res.n_images, sizeof *imgs);
    if (!imgs) {
        s_loras_clear(&lo);
        lf_pipeline_result_clear(&res);
        return s_err(e, LF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < res.n_images; i++) {
        imgs[i] = (lf_engine_image_t){.png = res.images[i].png, .png_len = res.images[i].png_len,
                                      .infotext = res.images[i].infotext, .seed = res.images[i].seed,
                                      .width = res.images[i].width, .height = res.images[i].height};
        res.images[i].png = NULL;
        res.images[i].infotext = NULL;
    }
    out->images = imgs;
    out->n_images = res.n_images;
    out->steps_run = res.steps_run;
    out->model_calls_full = res.model_calls_full;
    out->model_calls_cached = res.model_calls_cached;
    out->precision = lf_precision_name(ran);
    out->warnings = lo.warnings;
    lo.warnings = NULL;
    s_loras_clear(&lo);
    lf_pipeline_result_clear(&res);
    return 0;
}

void lf_engine_result_clear(lf_engine_result_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_images; i++) {
        free(r->images[i].png);
        free(r->images[i].infotext);
    }
    free(r->images);
    free(r->warnings);
    memset(r, 0, sizeof *r);
}

const char *lf_engine_errstr(const lf_engine_t *e)
{
    return e ? e->err : "no engine";
}
