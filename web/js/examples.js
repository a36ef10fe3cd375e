// Example prompts: the prompt box suggests what the selected model can draw. The built-in
// lf-tiny-shapes knows only its training captions' words (tools/train/lf_shapes.py, models/README.md):
// one shape in a colour, a size and a position, on a plain background of another colour; a
// photographic example would promise what it cannot do. Other models get generic examples.

export const TINY_SHAPES = 'lf-tiny-shapes';

/** The vocabulary lf-tiny-shapes was trained on. */
export const SHAPES_VOCAB = {
  colours: ['red', 'green', 'blue', 'yellow', 'orange', 'purple', 'pink', 'cyan', 'white', 'black', 'gray', 'brown'],
  shapes: ['circle', 'square', 'triangle', 'star'],
  sizes: ['small', 'medium', 'large'],
  positions: ['in the center', 'on the left', 'on the right', 'at the top', 'at the bottom', 'in the top left',
    'in the top right', 'in the bottom left', 'in the bottom right'],
};

// Captions of the kind it was trained on (the first ones are its training log's sample prompts).
const SHAPES_EXAMPLES = [
  'a red circle on a blue background',
  'a small blue star in the top left',
  'a large yellow square on a black background',
  'a green triangle on a white background',
  'a purple circle in the bottom right on a yellow background',
  'a large pink square in the center on a gray background',
];

const GENERIC_EXAMPLES = [
  'a lighthouse on a cliff at dusk, volumetric light',
  'a cozy reading nook by a rainy window, warm light',
  'a red fox in fresh snow, morning light, detailed fur',
];

const DIAGNOSTIC_EXAMPLE = 'any text (the test card does not draw it)';

/** {placeholder, negative, hint}: the prompt box's example ("e.g. …": an empty prompt is sent empty, so the grey
 * text must not look like a prompt already there), the negative prompt box's, and a line on what the model draws
 * ('' when nothing to say). */
export function promptHelp(model, pick = 0) {
  const name = (model && model.name) || '';
  if (name === TINY_SHAPES) {
    const v = SHAPES_VOCAB;
    return {
      placeholder: `e.g. ${SHAPES_EXAMPLES[pick % SHAPES_EXAMPLES.length]}`,
      negative: 'optional; rarely needed with this model',
      hint: `${TINY_SHAPES} draws one shape (${v.shapes.join(', ')}) in a colour (${v.colours.join(', ')}), `
        + `${v.sizes.join('/')}, at a position (e.g. ${v.positions[5]}), on a plain background of another colour.`,
    };
  }
  if (model && (model.kind === 'diagnostic' || name === 'lf-diagnostic')) {
    return { placeholder: DIAGNOSTIC_EXAMPLE, negative: 'ignored by the test card', hint: 'lf-diagnostic draws a test card from the seed and size, not the prompt: it is for trying the farm.' };
  }
  return { placeholder: `e.g. ${GENERIC_EXAMPLES[pick % GENERIC_EXAMPLES.length]}`, negative: 'e.g. blurry, low quality', hint: '' };
}
