/* bench_yolo: ADetailer's YOLO detector through lf_yolo_predict (letterbox,
 * network, NMS, masks) on one image; prints the load time and the median of
 * --reps predictions after a warm-up, and the load average. The reference is
 * bench_yolo_torch.py (ultralytics' predict on the same file and image, same
 * thread count), run beside it (docs/PERFORMANCE.md).
 *
 * Usage: bench_yolo --model FILE.pt [--image PNG] [--reps N] [--conf C] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_bench_util.h"
#include "lf_image.h"
#include "lf_yolo.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *image = LF_SOURCE_DIR "/assets/images/astronaut.png";
    int reps = 10;
    double conf = 0.25;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) model = v, i++;
        else if (!strcmp(a, "--image") && v) image = v, i++;
        else if (!strcmp(a, "--reps") && v) reps = atoi(v), i++;
        else if (!strcmp(a, "--conf") && v) conf = atof(v), i++;
        else {
            fprintf(stderr, "usage: %s --model FILE.pt [--image PNG] [--reps N] [--conf C]\n", argv[0]);
            return 2;
        }
    }
    if (!model || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: %s --model FILE.pt [--image PNG] [--reps N] [--conf C]\n", argv[0]);
        return 2;
    }
    double l[3];
    if (getloadavg(l, 3) == 3) printf("load average %.2f %.2f %.2f\n", l[0], l[1], l[2]);
    FILE *f = fopen(image, "rb");
    if (!f) {
        printf("SKIP: %s absent (tools/fetch_assets.sh)\n", image);
        return 0;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *png = malloc((size_t)n);
    if (!png || fread(png, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);
    lf_image_t img;
    if (lf_image_decode(png, (size_t)n, NULL, &img, NULL, 0)) return 1;
    free(png);
    char err[512];
    double t0 = lf_bench_now();
    lf_yolo_t *y = lf_yolo_new(model, err, sizeof err);
    if (!y) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("load %.1f ms (%s, %s, %d classes)\n", (lf_bench_now() - t0) * 1e3, model,
           lf_yolo_is_seg(y) ? "segment" : "detect", lf_yolo_n_classes(y));
    double *ms = malloc((size_t)reps * sizeof *ms);
    lf_yolo_det_t det[300];
    int found = 0;
    for (int r = -1; r < reps; r++) {
        uint8_t *masks = NULL;
        t0 = lf_bench_now();
        found = lf_yolo_predict(y, img.pixels, (int)img.width, (int)img.height, conf, det, 300, &masks);
        if (r >= 0) ms[r] = (lf_bench_now() - t0) * 1e3;
        free(masks);
        if (found < 0) return 1;
    }
    qsort(ms, (size_t)reps, sizeof *ms, s_cmp);
    printf("lf_yolo predict %ux%u: median %.1f ms (min %.1f) over %d, %d boxes\n", img.width, img.height,
           ms[reps / 2], ms[0], reps, found);
    free(ms);
    lf_yolo_destroy(&y);
    lf_image_clear(&img);
    return 0;
}
