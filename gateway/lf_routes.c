/* lf_routes: the route table and a segment-by-segment matcher. Paths are
 * short and the table has ~30 entries, so a linear scan is cheaper than any
 * index and keeps the table the only source of truth. */
#include "lf_routes.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lf_error.h"

static const lf_route_t s_routes[] = {
#define LF__ROUTE_ROW(n, m, p, a) {LF_ROUTE_##n, m, p, #n, a},
    LF_ROUTE_LIST(LF__ROUTE_ROW)
#undef LF__ROUTE_ROW
};
_Static_assert(sizeof s_routes / sizeof s_routes[0] == LF_ROUTE__COUNT - 1, "route table size");

const lf_route_t *lf_routes_table(size_t *n) {
    if (n) *n = sizeof s_routes / sizeof s_routes[0];
    return s_routes;
}

/* Characters a path parameter may hold. */
static bool s_param_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':';
}

/* Match one template against a path; fills params. */
static bool s_match_path(const char *tpl, const char *path, lf_route_match_t *m) {
    int np = 0;
    const char *t = tpl, *p = path;
    while (*t && *p) {
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (!close) return false;
            /* Suffix after the parameter, up to the next '/' of the template. */
            const char *after = close + 1;
            size_t suf = strcspn(after, "/");
            size_t seg = strcspn(p, "/");
            if (seg <= suf || strncmp(p + seg - suf, after, suf) != 0) return false;
            size_t vlen = seg - suf;
            if (vlen >= LF_ROUTE_PARAM_MAX || np >= LF_ROUTE_MAX_PARAMS) return false;
            for (size_t i = 0; i < vlen; i++)
                if (!s_param_char(p[i])) return false;
            if (m) {
                memcpy(m->params[np], p, vlen);
                m->params[np][vlen] = 0;
            }
            np++;
            t = after + suf;
            p += seg;
            continue;
        }
        if (*t != *p) return false;
        t++;
        p++;
    }
    if (*t || *p) return false;
    if (m) m->n_params = np;
    return true;
}

bool lf_routes_match(const char *method, const char *path, lf_route_match_t *m) {
    memset(m, 0, sizeof *m);
    if (!method || !path) return false;
    const char *meth = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t n = sizeof s_routes / sizeof s_routes[0];
    for (size_t i = 0; i < n; i++) {
        if (!s_match_path(s_routes[i].path, path, NULL)) continue;
        if (!strcmp(s_routes[i].method, meth)) {
            s_match_path(s_routes[i].path, path, m);
            m->route = &s_routes[i];
            m->method_mismatch = false;
            m->allow[0] = 0;
            return true;
        }
        m->method_mismatch = true;
        size_t l = strlen(m->allow);
        snprintf(m->allow + l, sizeof m->allow - l, "%s%s", l ? ", " : "", s_routes[i].method);
    }
    return false;
}

bool lf_routes_is_api(const char *path) {
    return !strncmp(path, "/v1/", 4) || !strcmp(path, "/v1") || !strncmp(path, "/sdapi/", 7) ||
           !strncmp(path, "/adetailer/", 11);
}

bool lf_routes_static_path_ok(const char *path) {
    if (!path || path[0] != '/') return false;
    if (strlen(path) > 1024) return false;
    if (strstr(path, "..")) return false;
    if (strstr(path, "//")) return false;
    for (const char *c = path; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u < 0x20 || u == 0x7f || u == '\\' || u == '%') return false;
    }
    return true;
}

int lf_routes_static_resolve(const char *web_root, const char *path, char *out, size_t outlen) {
    if (!web_root || web_root[0] != '/' || !lf_routes_static_path_ok(path)) return LF_EINVAL;
    char joined[PATH_MAX];
    const char *rel = path[1] ? path : "/index.html";
    int n = snprintf(joined, sizeof joined, "%s%s", web_root, rel);
    if (n < 0 || (size_t)n >= sizeof joined) return LF_EINVAL;
    /* A directory serves its index.html. */
    struct stat st;
    if (stat(joined, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t l = strlen(joined);
        n = snprintf(joined + l, sizeof joined - l, "%sindex.html", joined[l - 1] == '/' ? "" : "/");
        if (n < 0 || (size_t)n >= sizeof joined - l) return LF_EINVAL;
    }
    char real[PATH_MAX];
    if (!realpath(joined, real)) return LF_ENOTFOUND;
    /* Symlinks must not lead out of the root. */
    size_t rl = strlen(web_root);
    while (rl > 1 && web_root[rl - 1] == '/') rl--;
    if (strncmp(real, web_root, rl) != 0 || (real[rl] != '/' && real[rl] != 0)) return LF_EINVAL;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) return LF_ENOTFOUND;
    if (strlen(real) >= outlen) return LF_EINVAL;
    strcpy(out, real);
    return 0;
}

const char *lf_routes_mime(const char *filename) {
    static const struct {
        const char *ext, *mime;
    } t[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"webmanifest", "application/manifest+json"},
        {"txt", "text/plain; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"webp", "image/webp"},
        {"gif", "image/gif"},
        {"ico", "image/x-icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"wasm", "application/wasm"},
    };
    const char *slash = strrchr(filename, '/');
    const char *dot = strrchr(slash ? slash : filename, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (!strcasecmp(dot + 1, t[i].ext)) return t[i].mime;
    }
    return "application/octet-stream";
}
