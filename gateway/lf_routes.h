/* lf_routes: the gateway's route table, path matching, and the rules for
 * serving static files safely.
 *
 * The table is the single list of API routes: the dispatcher switches on
 * lf_route_id_t, and a test checks that openapi.json documents exactly these
 * (method, path) pairs. A name's prefix picks the handler file: A_ the
 * A1111 subset (lf_a1111.c), O_ the OpenAI images API (lf_openai.c), none
 * the native API (lf_api.c). Paths use OpenAPI templates ("/v1/jobs/{id}", a
 * segment may carry a suffix: "/v1/images/{id}.png").
 *
 * Pure (the static-file resolver alone touches the file system, through
 * realpath); thread-safe; everything returned is borrowed static data. */
#ifndef LF_ROUTES_H
#define LF_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#define LF_ROUTE_LIST(X)                                                                 \
    X(HEALTHZ, "GET", "/healthz", false)                                                 \
    X(READYZ, "GET", "/readyz", false)                                                   \
    X(METRICS, "GET", "/metrics", false)                                                 \
    X(OPENAPI, "GET", "/openapi.json", false)                                            \
    X(JOB_SUBMIT, "POST", "/v1/jobs", true)                                              \
    X(JOB_LIST, "GET", "/v1/jobs", true)                                                 \
    X(JOB_GET, "GET", "/v1/jobs/{id}", true)                                             \
    X(JOB_CANCEL, "DELETE", "/v1/jobs/{id}", true)                                       \
    X(JOB_EVENTS, "GET", "/v1/jobs/{id}/events", true)                                   \
    X(JOB_PREVIEW, "GET", "/v1/jobs/{id}/preview", true)                                 \
    X(HISTORY, "GET", "/v1/history", true)                                               \
    X(IMAGE, "GET", "/v1/images/{id}.png", true)                                         \
    X(UPLOAD, "POST", "/v1/uploads", true)                                               \
    X(MODELS, "GET", "/v1/models", true)                                                 \
    X(SAMPLERS, "GET", "/v1/samplers", true)                                             \
    X(SCHEDULERS, "GET", "/v1/schedulers", true)                                         \
    X(PARAMS, "GET", "/v1/params", true)                                                 \
    X(WORKERS, "GET", "/v1/workers", true)                                               \
    X(LORAS, "GET", "/v1/loras", true)                                                   \
    X(UPSCALERS, "GET", "/v1/upscalers", true)                                           \
    X(PRESET_LIST, "GET", "/v1/presets", true)                                           \
    X(PRESET_CREATE, "POST", "/v1/presets", true)                                        \
    X(PRESET_GET, "GET", "/v1/presets/{name}", true)                                     \
    X(PRESET_PUT, "PUT", "/v1/presets/{name}", true)                                     \
    X(PRESET_DELETE, "DELETE", "/v1/presets/{name}", true)                               \
    X(A_TXT2IMG, "POST", "/sdapi/v1/txt2img", true)                                      \
    X(A_IMG2IMG, "POST", "/sdapi/v1/img2img", true)                                      \
    X(A_PROGRESS, "GET", "/sdapi/v1/progress", true)                                     \
    X(A_INTERRUPT, "POST", "/sdapi/v1/interrupt", true)                                  \
    X(A_MODELS, "GET", "/sdapi/v1/sd-models", true)                                      \
    X(A_VAES, "GET", "/sdapi/v1/sd-vae", true)                                           \
    X(A_SAMPLERS, "GET", "/sdapi/v1/samplers", true)                                     \
    X(A_AD_MODEL, "GET", "/adetailer/v1/ad_model", true)                                 \
    X(A_SCHEDULERS, "GET", "/sdapi/v1/schedulers", true)                                 \
    X(A_OPTIONS_GET, "GET", "/sdapi/v1/options", true)                                   \
    X(A_OPTIONS_SET, "POST", "/sdapi/v1/options", true)                                  \
    X(A_SKIP, "POST", "/sdapi/v1/skip", true)                                            \
    X(A_REFRESH_CKPT, "POST", "/sdapi/v1/refresh-checkpoints", true)                     \
    X(A_REFRESH_LORAS, "POST", "/sdapi/v1/refresh-loras", true)                          \
    X(A_LORAS, "GET", "/sdapi/v1/loras", true)                                           \
    X(A_MEMORY, "GET", "/sdapi/v1/memory", true)                                         \
    X(A_CMD_FLAGS, "GET", "/sdapi/v1/cmd-flags", true)                                   \
    X(A_EMBEDDINGS, "GET", "/sdapi/v1/embeddings", true)                                 \
    X(A_FACE_RESTORERS, "GET", "/sdapi/v1/face-restorers", true)                         \
    X(A_REALESRGAN, "GET", "/sdapi/v1/realesrgan-models", true)                          \
    X(A_UPSCALERS, "GET", "/sdapi/v1/upscalers", true)                                   \
    X(A_LATENT_MODES, "GET", "/sdapi/v1/latent-upscale-modes", true)                     \
    X(A_EXTRA_SINGLE, "POST", "/sdapi/v1/extra-single-image", true)                      \
    X(A_PROMPT_STYLES, "GET", "/sdapi/v1/prompt-styles", true)                           \
    X(A_SCRIPT_INFO, "GET", "/sdapi/v1/script-info", true)                               \
    X(A_SCRIPTS, "GET", "/sdapi/v1/scripts", true)                                       \
    X(A_EXTENSIONS, "GET", "/sdapi/v1/extensions", true)                                 \
    X(A_INTERROGATE, "POST", "/sdapi/v1/interrogate", true)                              \
    X(A_PNG_INFO, "POST", "/sdapi/v1/png-info", true)                                    \
    X(O_GENERATE, "POST", "/v1/images/generations", true)                                \
    X(O_EDIT, "POST", "/v1/images/edits", true)                                          \
    X(O_MODEL, "GET", "/v1/models/{id}", true)

typedef enum {
    LF_ROUTE_NONE = 0,
#define LF__ROUTE_ENUM(name, method, path, auth) LF_ROUTE_##name,
    LF_ROUTE_LIST(LF__ROUTE_ENUM)
#undef LF__ROUTE_ENUM
    LF_ROUTE__COUNT
} lf_route_id_t;

typedef struct {
    lf_route_id_t id;
    const char *method;  /* "GET", ... */
    const char *path;    /* OpenAPI template */
    const char *name;    /* "JOB_GET" (metrics label) */
    bool auth;           /* needs an API key when keys are configured */
} lf_route_t;

#define LF_ROUTE_MAX_PARAMS 2
#define LF_ROUTE_PARAM_MAX 160

typedef struct {
    const lf_route_t *route;   /* NULL when nothing matched */
    int n_params;
    char params[LF_ROUTE_MAX_PARAMS][LF_ROUTE_PARAM_MAX];
    bool method_mismatch;      /* the path exists with another method */
    char allow[64];            /* "GET, DELETE" when method_mismatch */
} lf_route_match_t;

/* The table (borrowed, static) and its length. */
const lf_route_t *lf_routes_table(size_t *n);

/* Match method + path (already URL-decoded, no query). HEAD matches GET.
 * Returns true and fills *m when a route matched. When false, *m says
 * whether the path exists under another method. */
bool lf_routes_match(const char *method, const char *path, lf_route_match_t *m);

/* Is this path under an API prefix (/v1/, /sdapi/)? Those never fall back
 * to static files. */
bool lf_routes_is_api(const char *path);

/* Static files: is the (URL-decoded) request path acceptable at all? Refuses
 * "..", "%", backslashes, NUL and control characters, and paths not starting
 * with '/'. Pure. */
bool lf_routes_static_path_ok(const char *path);

/* Resolve a request path under web_root (an absolute, realpath'd directory)
 * to a regular file inside it: "/" -> index.html. Writes the file's real
 * path to out. Returns 0, LF_EINVAL (refused), LF_ENOTFOUND. */
int lf_routes_static_resolve(const char *web_root, const char *path, char *out, size_t outlen);

/* MIME type for a file name by extension; "application/octet-stream" when
 * unknown. Borrowed, static. */
const char *lf_routes_mime(const char *filename);

#endif
