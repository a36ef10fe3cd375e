/* lf_extranet: A1111's extra-network tags in a prompt (see the header). */
#include "lf_extranet.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

/* A1111's \w: letters, digits, '_' (and any non-ASCII byte). */
static int s_is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}


static void s_errf(char *err, size_t errlen, const char *fmt, const char *tag, size_t taglen)
{
    if (errlen) snprintf(err, errlen, fmt, (int)(taglen > 200 ? 200 : taglen), tag);
}

/* Python float(): surrounding whitespace, decimal or inf/nan; we also refuse
 * what is not finite. 1 when s[0..len) reads as a finite number. */
static int s_num(const char *s, size_t len, double *out)
{
    char buf[64];
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (buf[i] == 'x' || buf[i] == 'X') return 0; /* strtod's hex floats */
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int s_int(const char *s, size_t len, int *out)
{
    double v;
    if (!s_num(s, len, &v) || v != (double)(int)v || memchr(s, '.', len) || memchr(s, 'e', len) ||
        memchr(s, 'E', len))
        return 0;
    *out = (int)v;
    return 1;
}

/* Reads a lora tag's arguments (A1111's ExtraNetworkParams: items split at
 * ':', an item with exactly one '=' is named) into x. 0 or LF_EINVAL. */
static int s_lora_args(lf_extranet_t *x, const char *args, size_t len)
{
    const char *pos[4] = {0}, *te = NULL, *unet = NULL, *dyn = NULL;
    size_t posl[4] = {0}, tel = 0, unetl = 0, dynl = 0;
    int np = 0;
    for (size_t a = 0; a <= len;) {
        size_t b = a;
        while (b < len && args[b] != ':') b++;
        const char *it = args + a, *eq = memchr(it, '=', b - a);
        if (eq && !memchr(eq + 1, '=', (size_t)(args + b - eq - 1))) {
            size_t kl = (size_t)(eq - it), vl = (size_t)(args + b - eq - 1);
            if (kl == 2 && memcmp(it, "te", 2) == 0) te = eq + 1, tel = vl;
            else if (kl == 4 && memcmp(it, "unet", 4) == 0) unet = eq + 1, unetl = vl;
            else if (kl == 3 && memcmp(it, "dyn", 3) == 0) dyn = eq + 1, dynl = vl;
        } else if (np < 4) {
            pos[np] = it;
            posl[np++] = b - a;
        }
        a = b + 1;
    }
    if (np == 0 || posl[0] == 0) return LF_EINVAL;
    x->name = strndup(pos[0], posl[0]);
    if (!x->name) return LF_ENOMEM;
    x->te_weight = 1.0;
    if (np > 1 && !s_num(pos[1], posl[1], &x->te_weight)) return LF_EINVAL;
    if (te && !s_num(te, tel, &x->te_weight)) return LF_EINVAL;
    x->unet_weight = x->te_weight;
    if (np > 2 && !s_num(pos[2], posl[2], &x->unet_weight)) return LF_EINVAL;
    if (unet && !s_num(unet, unetl, &x->unet_weight)) return LF_EINVAL;
    if (np > 3 && !s_int(pos[3], posl[3], &x->dyn)) return LF_EINVAL;
    if (dyn && !s_int(dyn, dynl, &x->dyn)) return LF_EINVAL;
    return 0;
}

/* Matches <(\w+):([^>]+)> at p: returns the tag's length (0: no match) and
 * the kind's length in *kl. */
static size_t s_tag(const char *p, size_t *kl)
{
    if (*p != '<') return 0;
    size_t i = 1;
    while (s_is_word(p[i])) i++;
    if (i == 1 || p[i] != ':') return 0;
    *kl = i - 1;
    size_t j = i + 1;
    while (p[j] && p[j] != '>') j++;
    if (j == i + 1 || p[j] != '>') return 0;
    return j + 1;
}

void lf_extranet_free(lf_extranet_t **extras, size_t n)
{
    if (!extras || !*extras) return;
    for (size_t i = 0; i < n; i++) {
        free((*extras)[i].kind);
        free((*extras)[i].name);
        free((*extras)[i].args);
    }
    free(*extras);
    *extras = NULL;
}

int lf_extranet_extract(const char *text, char **out_text, lf_extranet_t **extras, size_t *n,
                      char *err, size_t errlen)
{
    size_t len = strlen(text), o = 0, nx = 0, cap = 0;
    char *out = malloc(len + 1);
    lf_extranet_t *xs = NULL;
    int rc = out ? 0 : LF_ENOMEM;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t kl, tl = s_tag(text + i, &kl);
        if (!tl) {
            out[o++] = text[i++];
            continue;
        }
        if (nx == cap) {
            size_t nc = cap ? 2 * cap : 4;
            lf_extranet_t *nv = realloc(xs, nc * sizeof *nv);
            if (!nv) {
                rc = LF_ENOMEM;
                break;
            }
            xs = nv;
            cap = nc;
        }
        lf_extranet_t *x = &xs[nx++];
        *x = (lf_extranet_t){0};
        const char *args = text + i + kl + 2;
        size_t al = tl - kl - 3;
        x->kind = strndup(text + i + 1, kl);
        x->args = strndup(args, al);
        if (!x->kind || !x->args) {
            rc = LF_ENOMEM;
            break;
        }
        x->is_lora = strcmp(x->kind, "lora") == 0 || strcmp(x->kind, "lyco") == 0;
        if (x->is_lora) {
            rc = s_lora_args(x, args, al);
            if (rc == LF_EINVAL)
                s_errf(err, errlen, "prompt: extra network tag '%.*s' needs a name and numeric weights",
                       text + i, tl);
        } else {
            const char *colon = memchr(args, ':', al);
            x->name = strndup(args, colon ? (size_t)(colon - args) : al);
            if (!x->name) rc = LF_ENOMEM;
        }
        i += tl;
    }
    if (rc != 0) {
        free(out);
        lf_extranet_free(&xs, nx);
        return rc;
    }
    out[o] = '\0';
    *out_text = out;
    *extras = xs;
    *n = nx;
    return 0;
}

/* ---- a job's LoRAs ---- */

void lf_extranet_loras_free(lf_param_lora_t **loras, size_t n)
{
    if (!loras || !*loras) return;
    for (size_t i = 0; i < n; i++) free((*loras)[i].name);
    free(*loras);
    *loras = NULL;
}

int lf_extranet_loras(const lf_job_params_t *p, lf_param_lora_t **out, size_t *n)
{
    char *text = NULL, err[8];
    lf_extranet_t *x = NULL;
    size_t nx = 0, k = 0;
    if (lf_extranet_extract(p->prompt ? p->prompt : "", &text, &x, &nx, err, sizeof err) != 0)
        nx = 0, x = NULL; /* unreadable tags: the engine refuses the job */
    free(text);
    size_t cap = nx + p->loras.n;
    lf_param_lora_t *v = calloc(cap ? cap : 1, sizeof *v);
    int rc = v ? 0 : LF_ENOMEM;
    for (size_t i = 0; !rc && i < cap; i++) {
        const char *name;
        double w, te;
        if (i < nx) {
            if (!x[i].is_lora) continue;
            name = x[i].name, w = x[i].unet_weight, te = x[i].te_weight;
        } else {
            const lf_param_lora_t *l = &p->loras.v[i - nx];
            name = l->name, w = l->weight, te = isnan(l->te_weight) ? l->weight : l->te_weight;
        }
        if (!(v[k].name = strdup(name ? name : ""))) rc = LF_ENOMEM;
        v[k].weight = w, v[k].te_weight = te;
        k++;
    }
    lf_extranet_free(&x, nx);
    if (rc) {
        lf_extranet_loras_free(&v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

int lf_extranet_lora_set(const lf_job_params_t *p, char *buf, size_t len)
{
    lf_param_lora_t *v = NULL;
    size_t n = 0;
    if (!len) return 0;
    buf[0] = '\0';
    int rc = lf_extranet_loras(p, &v, &n);
    if (rc) return rc;
    size_t off = 0;
    for (size_t i = 0; i < n && off < len; i++) {
        int k = snprintf(buf + off, len - off, "%s%s:%g:%g", i ? "|" : "", v[i].name, v[i].weight,
                         v[i].te_weight);
        off += k > 0 ? (size_t)k : 0;
    }
    lf_extranet_loras_free(&v, n);
    return 0;
}
