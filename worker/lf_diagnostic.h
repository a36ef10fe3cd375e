/* lf_diagnostic: the `lf-diagnostic` model — a test card instead of diffusion.
 *
 * The farm's smoke-test and load-test model: it takes `steps` and a per-step
 * delay (`step_delay_ms`, capped by env.step_delay_max_ms), reports real
 * progress (with a small preview PNG every env.preview_every steps, the card
 * revealed down to the step), honours cancel between and during steps, and returns
 * one PNG test card per batch item. The card is a pure function of (seed,
 * width, height): a gradient whose hue comes from the seed, a grid, a circle
 * and crosshair, colour bars, a border, and the text "LF-DIAGNOSTIC",
 * "SEED <n>", "<w>X<h>" in a built-in 5x7 font. Batch item i uses seed + i.
 * Each PNG carries an A1111-style "parameters" text chunk (prompt, steps,
 * seed, size, model), like a real generation's.
 * It is listed with kind "diagnostic" and is never anyone's default model.
 *
 * Threading: each loaded state belongs to one thread; lf_diagnostic_render()
 * is pure and reentrant. */
#ifndef LF_DIAGNOSTIC_H
#define LF_DIAGNOSTIC_H

#include <stdint.h>

#include "lf_runner.h"

#define LF_DIAGNOSTIC_MODEL "lf-diagnostic"
#define LF_DIAGNOSTIC_KIND "diagnostic"
#define LF_DIAGNOSTIC_MAX_SIDE 8192u     /* per image side, pixels */
#define LF_DIAGNOSTIC_MAX_BATCH 64u
#define LF_DIAGNOSTIC_MAX_STEPS 10000u
#define LF_DIAGNOSTIC_MAX_DELAY_MS 600000u /* when the env sets no cap */
#define LF_DIAGNOSTIC_PREVIEW_SIDE 64u   /* longest side of previews */

/* The backend table (static, borrowed). */
extern const lf_runner_backend_t lf_diagnostic_backend;

/* Draw the card for (seed, w, h) into rgb (w*h*3 bytes, caller's buffer).
 * `reveal` in 0..h is the number of rows drawn in full; rows below it are
 * drawn in grey (used for progress previews; pass h for a finished card). */
void lf_diagnostic_render(int64_t seed, uint32_t w, uint32_t h, uint32_t reveal, uint8_t *rgb);

#endif
