// Inpainting mask brush on the img2img image: paint the part to repaint, erase, brush size,
// clear, invert. The mask has the init image's own pixel size (the engine resizes it as A1111
// does); the view shows the image with the mask over it in translucent red. On submit the mask
// is uploaded as a PNG (white = repaint, black = keep) and sent as `mask` with A1111's
// inpainting fields; with nothing painted no mask is sent (plain img2img).
import { api } from './api.js';
import { $ } from './util.js';

let img = null;     // the init image (HTMLImageElement), or null
let paint = null;   // canvas at the image's size: alpha = how much to repaint
let drawing = false;
let last = null;

const view = () => $('#mask-canvas');

function redraw() {
  const c = view();
  if (!c || !img || !paint) return;
  const g = c.getContext('2d');
  g.globalAlpha = 1;
  g.clearRect(0, 0, c.width, c.height);
  g.drawImage(img, 0, 0);
  g.globalAlpha = 0.55;
  g.drawImage(paint, 0, 0);
  g.globalAlpha = 1;
}

function painted() {
  if (!paint) return false;
  const d = paint.getContext('2d').getImageData(0, 0, paint.width, paint.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
  return false;
}

function updateInfo() {
  const has = painted();
  $('#mask-info').textContent = !img ? 'Upload an init image to paint a mask.'
    : has ? 'Mask painted: the red part is repainted, the rest is kept byte for byte.'
      : 'Nothing painted: plain img2img. Paint over the part to repaint.';
  $('#mask-options').hidden = !has;
  view().dataset.painted = has ? '1' : '0';
}

/* Canvas coordinates of a pointer event (the view is scaled to fit). */
function at(e) {
  const c = view(), r = c.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * c.width) / r.width, y: ((e.clientY - r.top) * c.height) / r.height };
}

function stroke(from, to) {
  const g = paint.getContext('2d');
  const erase = $('#mask-erase').checked;
  g.globalCompositeOperation = erase ? 'destination-out' : 'source-over';
  g.strokeStyle = g.fillStyle = 'rgb(255,0,0)';
  g.lineWidth = Number($('#mask-size').value);
  g.lineCap = g.lineJoin = 'round';
  g.beginPath();
  g.moveTo(from.x, from.y);
  g.lineTo(to.x + 0.01, to.y);
  g.stroke();
  g.globalCompositeOperation = 'source-over';
  redraw();
}

/* Loads the init image (object URL) into the brush, or clears it (null). */
export function setMaskImage(url) {
  const c = view();
  if (!c) return;
  img = null;
  paint = null;
  $('#mask-block').hidden = !url;
  if (!url) { updateInfo(); return; }
  const im = new Image();
  im.onload = () => {
    img = im;
    c.width = im.naturalWidth;
    c.height = im.naturalHeight;
    paint = document.createElement('canvas');
    paint.width = c.width;
    paint.height = c.height;
    const side = Math.max(c.width, c.height);
    $('#mask-size').max = String(Math.max(8, Math.round(side / 3)));
    $('#mask-size').value = String(Math.max(2, Math.round(side / 16)));
    $('#mask-size-out').value = $('#mask-size').value;
    redraw();
    updateInfo();
  };
  im.src = url;
}

export function clearMask() {
  if (!paint) return;
  paint.getContext('2d').clearRect(0, 0, paint.width, paint.height);
  redraw();
  updateInfo();
}

export function invertMask() {
  if (!paint) return;
  const g = paint.getContext('2d');
  const id = g.getImageData(0, 0, paint.width, paint.height);
  const d = id.data;
  for (let i = 0; i < d.length; i += 4) {
    d[i] = 255; d[i + 1] = 0; d[i + 2] = 0;
    d[i + 3] = 255 - d[i + 3];
  }
  g.putImageData(id, 0, 0);
  redraw();
  updateInfo();
}

/* The mask as a PNG blob (white = repaint), or null when nothing is painted. */
async function maskPng() {
  if (!painted()) return null;
  const out = document.createElement('canvas');
  out.width = paint.width;
  out.height = paint.height;
  const src = paint.getContext('2d').getImageData(0, 0, paint.width, paint.height).data;
  const g = out.getContext('2d');
  const id = g.createImageData(out.width, out.height);
  for (let i = 0; i < src.length; i += 4) {
    id.data[i] = id.data[i + 1] = id.data[i + 2] = src[i + 3];
    id.data[i + 3] = 255;
  }
  g.putImageData(id, 0, 0);
  return new Promise((res) => out.toBlob(res, 'image/png'));
}

/* Adds the mask (uploaded now) and the inpainting fields to img2img params. Throws the
 * upload's error (its field is `mask`). */
export async function addMaskParams(p) {
  if (p.mode !== 'img2img') return p;
  const blob = await maskPng();
  if (!blob) return p;
  const r = await api.upload(new File([blob], 'mask.png', { type: 'image/png' }));
  p.mask = r.id;
  p.inpainting_fill = Number($('#inpainting_fill').value);
  p.mask_blur = Number($('#mask_blur').value);
  p.inpaint_full_res = $('#inpaint_full_res').checked;
  p.inpaint_full_res_padding = Number($('#inpaint_full_res_padding').value);
  return p;
}

export function initMaskBrush() {
  const c = view();
  if (!c) return;
  c.addEventListener('pointerdown', (e) => {
    if (!paint) return;
    e.preventDefault();
    c.setPointerCapture(e.pointerId);
    drawing = true;
    last = at(e);
    stroke(last, last);
  });
  c.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    const p = at(e);
    stroke(last, p);
    last = p;
  });
  const end = () => { if (drawing) { drawing = false; updateInfo(); } };
  c.addEventListener('pointerup', end);
  c.addEventListener('pointercancel', end);
  $('#mask-size').addEventListener('input', () => { $('#mask-size-out').value = $('#mask-size').value; });
  $('#mask-clear').addEventListener('click', clearMask);
  $('#mask-invert').addEventListener('click', invertMask);
  $('#inpaint_full_res').addEventListener('change', () => {
    $('#padding-field').hidden = !$('#inpaint_full_res').checked;
  });
  updateInfo();
}
