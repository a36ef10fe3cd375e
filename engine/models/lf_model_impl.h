/* lf_model_impl: what the files of the model assembly share (lf_model.c
 * for SD1.x / SDXL and the common calls, lf_model_flux.c for Flux): the
 * model's struct, the part openers and the text sources. Internal to
 * engine/models/; callers use lf_model.h. */
#ifndef LF_MODEL_IMPL_H
#define LF_MODEL_IMPL_H

#include <jansson.h>
#include <stddef.h>

#include "lf_clip.h"
#include "lf_flux.h"
#include "lf_keymap.h"
#include "lf_lora.h"
#include "lf_lora_targets.h"
#include "lf_model.h"
#include "lf_origin.h"
#include "lf_pool.h"
#include "lf_preview.h"
#include "lf_t5.h"
#include "lf_taesd.h"
#include "lf_unet.h"
#include "lf_vae.h"
#include "lf_weights.h"

struct lf_model {
    lf_model_desc_t desc;
    lf_backend_t *be, *own_be;
    lf_precision_t precision; /* the UNet's (lf_model_set_precision); f32 by default */
    lf_pool_t *pool;
    lf_clip_t *clip;         /* SD1.x's encoder, SDXL's CLIP ViT-L (NULL in a refiner) */
    lf_clip_t *clip2;        /* SDXL's OpenCLIP ViT-bigG, or NULL */
    lf_pool_t *clip2_pool;   /* its weights (pool names would clash with clip's) */
    lf_unet_t *unet;         /* SD1.x / SDXL */
    lf_flux_t *flux;         /* Flux */
    lf_t5_t *t5;             /* Flux's T5 encoder, or NULL when no T5 part was given */
    char *t5_tokenizer;      /* a diffusers folder's tokenizer_2/ file, or NULL */
    float *flux_buf;         /* Flux denoise: packed in / out, ids, pooled, guidance */
    size_t flux_buf_n;
    lf_vae_t *vae;
    lf_taesd_t *taesd;
    lf_preview_map_t approx; /* valid when approx_rc == 1 */
    int approx_rc;           /* 0: not fitted yet, 1: fitted, < 0: the fit's error */
    char *tokenizer_dir;
    lf_lora_targets_t *lora_targets; /* built on the first set_loras */
    lf_lora_patch_t *lora;
    lf_origin_t *origin; /* the file and tensor of every UNet and text encoder weight */
    float *tmp;
    size_t tmp_n;
    float *text_tmp;  /* SDXL encode: one encoder's output, then the other's ids */
    size_t text_tmp_n;
    int active;       /* lf__model_net_t: the network whose planned graphs are resident (lf__model_use) */
    int stream;       /* LF_WEIGHTS_STREAM: UNet and VAE weight pages given back per layer (s_weight_release) */
};

/* The networks of a generation's phases. */
typedef enum { LF__NET_NONE = 0, LF__NET_TEXT, LF__NET_DENOISER, LF__NET_VAE } lf__model_net_t;
/* Makes net the one network holding memory beyond its weights' file
 * (lf_model.c: the previous one's graphs released, its mapped weight pages
 * dropped). */
void lf__model_use(lf_model_t *m, lf__model_net_t net);
/* The family a set of weights' tensor names says (lf_model_detect_family). */
lf_family_t lf__model_family_of(const lf_weights_t *w);

/* The text encoders' sources when assembled from parts: every file and
 * config opened for them, kept until the networks are built. */
#define LF_MODEL_TEXT_MAX 8
typedef struct {
    lf_weights_t *w[LF_MODEL_TEXT_MAX];
    json_t *cfg[LF_MODEL_TEXT_MAX];
    size_t nw, ncfg;
} lf_model_text_src_t;

/* One encoder candidate: its key map, config and width. */
typedef struct {
    lf_keymap_t km;
    const json_t *cfg;
    int width;
    const char *path;
} lf_model_enc_t;

/* Files: a folder, any file; a JSON file (NULL when absent or not JSON). */
int lf__model_is_dir(const char *p);
int lf__model_exists(const char *p);
json_t *lf__model_json_file(const char *path);
/* Formats err (when errlen) and returns rc. */
__attribute__((format(printf, 4, 5))) int lf__model_err(char *err, size_t errlen, int rc,
                                                        const char *fmt, ...);
/* 0 when o asks for no quantize-on-load or for a storage block type it can
 * quantize to (Q8_K, ggml's activation type, is not one); else
 * LF_EUNSUPPORTED with err naming the type. */
int lf__model_quant_ok(const lf_model_opts_t *o, char *err, size_t errlen);
/* Opens the first of a diffusers folder's candidate files for one part
 * (<dir>/<sub>/<base>[.fp16].safetensors). 0 with *w NULL when absent and optional. */
int lf__model_open_part(const char *dir, const char *sub, const char *base, int optional,
                        lf_weights_t **w, char *err, size_t errlen);
/* A separate VAE file or folder: its weights, key map and config (*meta to free). */
int lf__model_vae_part(const char *path, lf_weights_t **w, lf_keymap_t *kv, json_t **meta,
                       const json_t **jv, char *err, size_t errlen);
/* Text sources: frees what t holds; keeps j (taken) until then, returns it. */
void lf__model_text_src_free(lf_model_text_src_t *t);
json_t *lf__model_keep_cfg(lf_model_text_src_t *t, json_t *j);
/* A bare CLIP / OpenCLIP encoder file's map into *e; 0 when there is none. */
int lf__model_enc_of_file(const lf_weights_t *w, lf_model_enc_t *e);

/* Flux (lf_model_flux.c): assembles m's networks from the transformer file
 * wt (meta its lf.config) or the diffusers folder at path (wt NULL); runs
 * one denoise; CLIP-L's pooled output per chunk. */
int lf__model_load_flux(lf_model_t *m, const char *path, lf_weights_t *wt, const json_t *meta,
                        const lf_model_opts_t *o, char *err, size_t errlen);
int lf__model_denoise_flux(lf_model_t *m, const float *x, int batch, int h, int w, const float *t,
                           const float *cond, int cond_len, const float *vec, float *out);
int lf__model_encode_flux_pooled(lf_model_t *m, const int32_t *ids, int n, float *pooled);

#endif
