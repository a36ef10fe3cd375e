/* bench_blazeface: MediaPipe BlazeFace (short and full range, the real
 * .tflite files from assets/blazeface/, tools/fetch_assets.sh) through
 * lf_blazeface_run on one thread, beside TFLite's own interpreter
 * (bench_blazeface_tflite.py: tflite-runtime with XNNPACK, one thread) run
 * as a child in the same run on the same file and input. Prints the median
 * of --reps runs after a warm-up, the ratio, and the load average.
 *
 * Python: --tflite PYTHON (or "none"), else /work/venv-face/bin/python
 * (tests/reference/requirements-face.txt). Without the model files it prints
 * SKIP and exits 0.
 *
 * Usage: bench_blazeface [--assets DIR] [--reps N] [--tflite PYTHON|none] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lf_blazeface.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void s_load(void)
{
    double l[3];
    if (getloadavg(l, 3) == 3) printf("load average %.2f %.2f %.2f\n", l[0], l[1], l[2]);
}

int main(int argc, char **argv)
{
    const char *assets = LF_SOURCE_DIR "/assets", *py = "/work/venv-face/bin/python";
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--assets") && v) assets = v, i++;
        else if (!strcmp(a, "--reps") && v) reps = atoi(v), i++;
        else if (!strcmp(a, "--tflite") && v) py = v, i++;
        else {
            fprintf(stderr, "usage: %s [--assets DIR] [--reps N] [--tflite PYTHON|none]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 10000) reps = 20;
    s_load();
    static const char *models[] = {"short", "full"};
    for (int m = 0; m < 2; m++) {
        char path[4096], err[512];
        snprintf(path, sizeof path, "%s/blazeface/face_detection_%s_range.tflite", assets, models[m]);
        if (access(path, R_OK) != 0) {
            printf("SKIP: %s absent (tools/fetch_assets.sh)\n", path);
            continue;
        }
        lf_blazeface_t *b = lf_blazeface_new(path, err, sizeof err);
        if (!b) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        int S = lf_blazeface_input_size(b), A = lf_blazeface_anchor_count(b);
        float *x = calloc((size_t)S * S * 3, sizeof *x), *r = malloc((size_t)A * 16 * sizeof *r),
              *c = malloc((size_t)A * sizeof *c);
        double *t = malloc((size_t)reps * sizeof *t);
        if (!x || !r || !c || !t) return 1;
        lf_blazeface_run(b, x, r, c);
        for (int k = 0; k < reps; k++) {
            double t0 = s_now();
            lf_blazeface_run(b, x, r, c);
            t[k] = s_now() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, s_cmp);
        double ours = t[reps / 2] * 1e3, ref = -1;
        if (strcmp(py, "none") != 0) {
            char cmd[9000];
            snprintf(cmd, sizeof cmd, "'%s' '%s/bench/bench_blazeface_tflite.py' '%s' %d 2>/dev/null",
                     py, LF_SOURCE_DIR, path, reps);
            FILE *p = popen(cmd, "r");
            char line[256];
            while (p && fgets(line, sizeof line, p))
                if (sscanf(line, "tflite_ms %lf", &ref) == 1) break;
            if (p) pclose(p);
        }
        printf("%-5s %dx%d, %d anchors: lightfarm %.2f ms", models[m], S, S, A, ours);
        if (ref > 0) printf(", TFLite (XNNPACK, 1 thread) %.2f ms, ratio %.1fx", ref, ours / ref);
        printf(" (median of %d)\n", reps);
        free(x);
        free(r);
        free(c);
        free(t);
        lf_blazeface_destroy(&b);
    }
    s_load();
    return 0;
}
