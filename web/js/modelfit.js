// What a model can serve: the sizes it draws well (from the side it was trained at, which
// GET /v1/models reports as `resolution`), whether a preset fits it, and the parameters a
// preset gives for it. Pure functions of plain objects: no DOM, so the browser tests call them
// directly.

/** The side a kind of model was trained at when the gateway does not say (as lf_engine_probe). */
const KIND_SIDE = { sd15: 512, sd2: 768, sdxl: 1024, flux: 1024 };

/** A model's own side, or null when nothing is known (then any size is taken as served). */
export function nativeSide(model) {
  const r = Number(model && model.resolution);
  if (r >= 64) return r;
  return (model && KIND_SIDE[model.kind]) || null;
}

export function isDiagnostic(model) {
  return Boolean(model) && (model.kind === 'diagnostic' || model.name === 'lf-diagnostic');
}

/**
 * The sizes a model draws well: each side from half to one and a half times the side it was
 * trained at, and at most 1.5× its training area (SD1.5 at 512: 512×768 yes, 1024×1024 no — it
 * repeats the subject; lf-tiny-shapes at 256: 256×384 yes, 512×512 no). null: any size (the
 * diagnostic test card, or a model that does not say its resolution).
 */
export function servedSizes(model) {
  if (isDiagnostic(model)) return null;
  const side = nativeSide(model);
  if (!side) return null;
  const r8 = (v) => Math.round(v / 8) * 8;
  return { native: side, min: Math.max(64, r8(side / 2)), max: r8(side * 1.5), maxPixels: 1.5 * side * side };
}

/** null when the model draws w×h well, else the reason in words. */
export function sizeProblem(model, w, h) {
  const s = servedSizes(model);
  if (!s || !(w > 0) || !(h > 0)) return null;
  if (w < s.min || h < s.min || w > s.max || h > s.max || w * h > s.maxPixels) {
    return `${w}×${h} does not suit ${model.name} (trained at ${s.native}×${s.native}; sides ${s.min}–${s.max})`;
  }
  return null;
}

/** width:height at a model's own area (multiples of 8): "2:3" at 512 -> 416×624, at 256 -> 208×312. */
export function sizeForAspect(aspect, side) {
  const m = /^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)$/.exec(String(aspect || ''));
  if (!m || !(side > 0)) return null;
  const a = Number(m[1]), b = Number(m[2]);
  if (!(a > 0 && b > 0)) return null;
  const r8 = (v) => Math.max(64, Math.round(v / 8) * 8);
  return { width: r8(side * Math.sqrt(a / b)), height: r8(side * Math.sqrt(b / a)) };
}

/**
 * How a preset fits: {ok, reason, model, params}. `model` is the one the preset runs on (the one
 * it names, else the selected one); `params` is what applying it sets, with an `aspect` turned
 * into a size at that model's own side (or at the form's current area when the side is unknown).
 * form: {width, height} as the form holds them now.
 */
export function presetFit(preset, selected, models, form = {}) {
  const params = { ...((preset && preset.params) || {}) };
  let model = selected || null;
  if (params.model) {
    model = models.find((m) => m.name === params.model)
      || models.find((m) => Array.isArray(m.aliases) && m.aliases.includes(params.model));
    if (!model) return { ok: false, reason: `needs the model ${params.model}, which no worker serves now`, model: null, params };
  }
  // A preset for one family (the few-step ones: Lightning, Turbo) fits only that family's models.
  const fam = model && (model.family || model.kind);
  if (preset && preset.family && model && !isDiagnostic(model) && fam !== preset.family) {
    return { ok: false, reason: `for ${preset.family} models; ${model.name} is ${fam || 'of another family'}`, model, params };
  }
  if (preset && preset.aspect) {
    const formSide = Math.sqrt((form.width || 512) * (form.height || 512));
    const size = sizeForAspect(preset.aspect, (!isDiagnostic(model) && nativeSide(model)) || formSide);
    if (size) Object.assign(params, size);
  }
  const w = Number(params.width ?? form.width), h = Number(params.height ?? form.height);
  const hasSize = params.width !== undefined || params.height !== undefined;
  const reason = hasSize && model ? sizeProblem(model, w, h) : null;
  return { ok: !reason, reason, model, params };
}
