/* lf_manifest: a model assembled from parts, and a model's recommended
 * settings.
 *
 * Few-step models ship as a UNet alone (SDXL-Lightning's
 * sdxl_lightning_4step_unet.safetensors: diffusers names; ComfyUI's
 * models/unet saves: original names), to be run with the text encoders and
 * VAE of a base checkpoint, and only work with their own settings (4 steps,
 * CFG 1, Euler, trailing spacing). A manifest says both, as a small JSON file
 * in models/ named <name>.model.json:
 *
 *   {"name": "sdxl-lightning-4step",          optional: else the file's stem
 *    "family": "sdxl",                         "sd15" | "sdxl" | "flux"
 *    "parts": {"unet": "unet/sdxl_lightning_4step_unet.safetensors",
 *              "checkpoint": "sd_xl_base_1.0.safetensors",
 *              "text_encoders": ["clip/clip_l.safetensors", "clip/clip_g.safetensors"],
 *              "vae": "vae/sdxl_vae.safetensors"},
 *    "prediction": "epsilon",                  | "v_prediction" | "sample"
 *    "resolution": 1024,
 *    "defaults": {"steps": 4, "cfg": 1, "sampler": "euler",
 *                 "scheduler": "sgm_uniform", "width": 1024, "height": 1024}}
 *   (and "timesteps": [800], explicit training timesteps, one per step:
 *   Hyper-SD's 1-step UNet with "sampler": "tcd"; a LoRA's lf.defaults
 *   may say its "weight")
 *
 * parts.unet is required. "checkpoint" is where the text encoders and the
 * VAE come from unless "text_encoders" (a path or a list of paths: encoder
 * files, checkpoints, diffusers folders) or "vae" (a VAE file, checkpoint or
 * diffusers folder) say otherwise; one of checkpoint / text_encoders and one
 * of checkpoint / vae must be there. "t5_tokenizer" (Flux) names T5's
 * tokenizer.json or spiece.model when the T5 file carries none (ComfyUI's
 * t5xxl_*.safetensors). Relative paths are relative to the
 * manifest's folder. Unknown keys are refused (a typo must not be silently
 * ignored); errors name the manifest file and the field.
 *
 * ComfyUI's folders give models without a manifest (lf_manifest_scan): each
 * UNet-only file of models/unet or models/diffusion_models is a model named
 * by its stem, with the text encoders of models/clip or models/text_encoders
 * whose widths fit its cross-attention (SDXL: a CLIP ViT-L and an OpenCLIP
 * ViT-bigG file; the first fitting ones in name order) and a VAE of
 * models/vae with its latent channels (the one whose modelspec.architecture
 * names the family, else the first in name order; a manifest pins another).
 * A Flux transformer there (BFL or diffusers names; models/diffusion_models
 * is where ComfyUI puts them) takes the CLIP-L whose width its vector_in
 * takes and the T5 (t5xxl_*: T5 encoder names) whose width its txt_in takes,
 * and a VAE of 16 latent channels (ae.safetensors).
 *
 * Parts are recognised from tensor names and shapes, never file names.
 * lf_manifest_check opens each part's header and refuses what cannot work:
 * a part that holds no such network, a UNet of another family than
 * declared, text encoders whose widths do not add up to the UNet's
 * cross-attention width (an SD1.5 text encoder with an SDXL UNet), a VAE
 * whose latent channels differ from the UNet's, a VAE whose modelspec
 * architecture names another family. (SD1.x and SDXL VAEs have the same
 * tensors; without that metadata they cannot be told apart.)
 *
 * Recommended settings ("defaults"): the manifest's, else a weights file's
 * safetensors metadata (lf_manifest_defaults_from_metadata). No common key
 * carries steps or CFG (SDXL-Lightning, Turbo, LCM, Hyper-SD and DMD2 files
 * carry none); read are ModelSpec's modelspec.resolution ("1024x1024": the
 * size) and modelspec.prediction_type ("epsilon", "v"), and lightfarm's own
 * "lf.defaults" (the manifest's "defaults" object as JSON text).
 *
 * Threading: no shared state. Ownership: a manifest and its strings belong
 * to its caller (lf_manifest_destroy, lf_manifest_list_free). */
#ifndef LF_MANIFEST_H
#define LF_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "lf_model.h"
#include "lf_weights.h"

#define LF_MANIFEST_SUFFIX ".model.json"
#define LF_MANIFEST_MAX_TEXT 4

/* A model's recommended settings; each field unset unless said. */
typedef struct {
    int steps;          /* 0 = unset */
    double cfg;         /* NAN = unset */
    char sampler[32];   /* "" = unset; names as the API takes them ("euler", "lcm", ...) */
    char scheduler[32]; /* "" = unset ("normal", "karras", "sgm_uniform", ...) */
    int width, height;  /* 0 = unset */
    char timesteps[256]; /* "" = unset; explicit timesteps as the API's timesteps row holds
                            them ("800": Hyper-SD 1-step), from a JSON array of integers */
    double weight;       /* NAN = unset; a LoRA's recommended weight (A1111's "preferred weight") */
} lf_manifest_defaults_t;

/* All unset. */
lf_manifest_defaults_t lf_manifest_defaults_none(void);

typedef struct {
    char *name;          /* the model's name (what a worker advertises) */
    char *path;          /* the manifest file; NULL for a ComfyUI-folder model */
    lf_family_t family;  /* declared (manifest) or the UNet's (folders) */
    char *unet;          /* the UNet file */
    char *checkpoint;    /* parts.checkpoint, or NULL (text / VAE source when not given apart) */
    char *text[LF_MANIFEST_MAX_TEXT]; /* text encoder sources, n_text of them */
    size_t n_text;
    char *vae;           /* the VAE source */
    char *t5_tokenizer;  /* parts.t5_tokenizer (Flux): T5's tokenizer file, or NULL */
    int has_prediction;  /* 1: prediction was said (manifest or metadata) */
    lf_prediction_t prediction;
    int prediction_sample; /* 1: "sample" (x0) was said; see lf_manifest_prediction */
    uint32_t resolution; /* trained side in px; 0 = the family's */
    lf_manifest_defaults_t defaults;
    char weights[16];    /* "weights": quantize-on-load type ("q8_0", ...; lf_engine_opts_t.weights
                            checks it at load); "" = unset: the engine's setting */
} lf_manifest_t;

/* Parses a manifest's JSON text (len bytes). path names it in errors, and
 * relative part paths are resolved against its folder. 0 and *out (caller
 * owns), or LF_EFORMAT (bad JSON, a missing, unknown or mistyped field:
 * err names the file and the field) / LF_ENOMEM. Pure: opens no part. */
int lf_manifest_parse(const char *json, size_t len, const char *path, lf_manifest_t **out,
                      char *err, size_t errlen);
/* Reads and parses the manifest file at path. LF_EIO (cannot read) or
 * lf_manifest_parse's codes. */
int lf_manifest_load(const char *path, lf_manifest_t **out, char *err, size_t errlen);
void lf_manifest_destroy(lf_manifest_t **self_p);

/* True when path names a manifest (ends in LF_MANIFEST_SUFFIX). */
int lf_manifest_is_path(const char *path);

/* Opens every part's header (no weights are read) and checks that they fit
 * together (see above). Fills a metadata default the manifest left unset
 * (the UNet file's resolution, prediction, lf.defaults). 0, or LF_EIO /
 * LF_EFORMAT / LF_ENOTFOUND / LF_EINVAL with err naming the manifest (or the
 * UNet file for a folder model), the part and the file. */
int lf_manifest_check(lf_manifest_t *m, char *err, size_t errlen);

/* The models of models_dir that need assembling: every *.model.json in it,
 * then ComfyUI's folders (see above). Each is checked; one that fails is
 * skipped with a warning naming it and why (a worker keeps serving the
 * others). *out: caller owns (lf_manifest_list_free); sorted by name, a
 * name given twice kept once (manifests first). 0 or LF_ENOMEM. */
int lf_manifest_scan(const char *models_dir, lf_manifest_t ***out, size_t *n);
void lf_manifest_list_free(lf_manifest_t ***list, size_t n);

/* The recommended settings a weights file's metadata carries (see above),
 * merged into *d where *d leaves a field unset; *prediction /
 * *has_prediction likewise (either may be NULL). Returns how many fields it
 * set. */
int lf_manifest_defaults_from_metadata(const lf_weights_t *w, lf_manifest_defaults_t *d,
                                       lf_prediction_t *prediction, int *has_prediction);

/* The prediction a manifest asks the model to be loaded with into *out: its
 * "prediction", else (and for a NULL m) LF_PRED_EPS; "sample" (x0,
 * SDXL-Lightning's 1-step UNet) is LF_PRED_SAMPLE. Returns 0. */
int lf_manifest_prediction(const lf_manifest_t *m, lf_prediction_t *out);

#endif
