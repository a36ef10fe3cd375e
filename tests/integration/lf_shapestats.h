/* lf_shapestats: simple image statistics for the built-in model lf-tiny-shapes
 * (one shape of a named colour on a plain background) — background colour,
 * foreground mask, dominant foreground colour, shape class, position.
 *
 * A C mirror of tools/train/eval_shapes.py (analyse()), so that the farm's
 * end-to-end test and the trainer's python evaluation score an image alike:
 *   background  per-channel median of the 3-pixel border (numpy's median: the
 *               mean of the two middle values), named by the nearest palette
 *               colour (squared RGB distance; first on ties)
 *   foreground  pixels whose RGB distance from that median is > 60
 *   colour      the most frequent nearest-palette name among the "core"
 *               foreground pixels (all of the 3x3 neighbourhood foreground,
 *               not on the image edge; all foreground pixels when fewer than
 *               6 are core), leaving out the background's name; ties go to
 *               the alphabetically first name (numpy.unique order)
 *   shape       nearest prototype (circle, square, triangle, star) in (fill,
 *               2 * yoff): fill = foreground pixels in the bounding box /
 *               box area, the box from the 1st..99th percentile (numpy linear
 *               interpolation) of the foreground coordinates; yoff = the
 *               centroid's vertical offset from the box centre / box height
 *   position    the centroid's cell of a 3x3 grid cut at 40 % / 60 %
 * Fewer than 12 foreground pixels: no colour, shape or position.
 *
 * Also reported (not used for the class): the normalised second moment
 * (mu20 + mu02) / m00^2 of the foreground — 1/(2*pi) = 0.159 for a disc, 1/6 =
 * 0.167 for a square, 0.192 for an equilateral triangle, larger for a star.
 *
 * Pure: no I/O, no allocation beyond the call, reentrant. */
#ifndef LF_SHAPESTATS_H
#define LF_SHAPESTATS_H

#include <stddef.h>
#include <stdint.h>

#define LF_SHAPES_N_COLOURS 12
#define LF_SHAPES_N_SHAPES 4
#define LF_SHAPES_FG_DIST 60.0

typedef struct {
    const char *name;
    uint8_t rgb[3];
} lf_shapes_colour_t;

/* The model's palette (tools/train/lf_shapes.py COLOURS, same order). */
extern const lf_shapes_colour_t lf_shapes_palette[LF_SHAPES_N_COLOURS];
/* "circle", "square", "triangle", "star" (eval_shapes.py PROTOTYPES order). */
extern const char *const lf_shapes_shape_names[LF_SHAPES_N_SHAPES];

typedef struct {
    const char *bg;          /* palette name of the background */
    double bg_rgb[3];        /* the border median */
    long fg_pixels;          /* foreground count */
    const char *colour;      /* dominant foreground palette name, or NULL */
    const char *shape;       /* shape class, or NULL */
    const char *position;    /* "center", "top left", ... or NULL */
    double fill;             /* fill ratio of the percentile box (0 when no shape) */
    double yoff;             /* centroid y offset / box height */
    double compactness;      /* (mu20 + mu02) / m00^2 */
    double cx, cy;           /* centroid as a fraction of width/height */
} lf_shapestats_t;

/* Index of the palette colour nearest to rgb (squared distance, first on ties). */
int lf_shapes_nearest(const double rgb[3]);

/* Analyses RGB8 pixels (stride = 3 * width). 0, or LF_EINVAL for NULL
 * arguments or an image smaller than 8x8, LF_ENOMEM. */
int lf_shapestats_analyse(const uint8_t *rgb, int width, int height, lf_shapestats_t *out);

#endif
