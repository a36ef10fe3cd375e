// Full view: a modal <dialog> with the image, its parameters, download, reuse, and
// previous/next (buttons or arrow keys). Esc closes it (native dialog behaviour).

import { imageSrc, imagesOf, setImg } from './api.js';
import { $, el, emit, fmtAgo, shortId } from './util.js';

let items = []; // flattened [{job, image, i, n}]
let pos = 0;
let returnFocus = null;

function paramRows(job, image) {
  const p = job.params || {};
  const rows = [
    ['Job', job.id ? shortId(job.id) : '—'],
    ['Status', job.status || 'done'],
    ['Prompt', p.prompt || '—'],
    ['Negative', p.negative_prompt || '—'],
    ['Model', p.model],
    ['Mode', p.mode],
    ['Sampler', [p.sampler, p.scheduler].filter(Boolean).join(' · ')],
    ['Steps', p.steps],
    ['CFG', p.cfg_scale],
    ['Seed', image && image.seed !== undefined ? image.seed : p.seed],
    ['Size', image && image.width ? `${image.width}×${image.height}` : (p.width ? `${p.width}×${p.height}` : undefined)],
    ['Batch', p.batch_size],
    ['Denoise', p.mode === 'img2img' ? p.denoise : undefined],
    ['Priority', job.priority || p.priority],
    ['Worker', job.worker || job.worker_id],
    ['Finished', job.finished_ms ? fmtAgo(job.finished_ms) : undefined],
  ];
  if (job.error) rows.push(['Error', job.error.message || job.error.code]);
  return rows.filter(([, v]) => v !== undefined && v !== null && v !== '');
}

async function show() {
  const it = items[pos];
  if (!it) return;
  const { job, image } = it;
  $('#viewer-title').textContent = (job.params && job.params.prompt) ? job.params.prompt.slice(0, 80) : `Job ${shortId(job.id)}`;
  $('#viewer-sub').textContent = items.length > 1 ? `${pos + 1} / ${items.length}` : '';
  const img = $('#viewer-img');
  const dl = $('#viewer-download');
  if (image) {
    img.hidden = false;
    img.alt = `Image ${it.i + 1} of job ${shortId(job.id)}, seed ${image.seed ?? '?'}`;
    setImg(img, image.url);
    dl.hidden = false;
    dl.setAttribute('download', `lightfarm-${shortId(job.id)}-${image.seed ?? it.i}.png`);
    dl.href = image.url;
    imageSrc(image.url).then((src) => { if (items[pos] === it) dl.href = src; }).catch(() => {});
  } else {
    img.hidden = true;
    img.removeAttribute('src');
    dl.hidden = true;
  }
  const dlist = $('#viewer-params');
  dlist.replaceChildren(...paramRows(job, image).flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
  $('#viewer-prev').disabled = pos <= 0;
  $('#viewer-next').disabled = pos >= items.length - 1;
}

/**
 * entries: [{job, images?}] (images default to the job's). Opens at entries[entryIndex],
 * image imageIndex. Jobs without images are shown with their parameters only.
 */
export function openViewer(entries, entryIndex = 0, imageIndex = 0) {
  items = [];
  let start = 0;
  entries.forEach((e, ei) => {
    const imgs = e.images || imagesOf(e.job);
    if (ei === entryIndex) start = items.length + Math.min(imageIndex, Math.max(0, imgs.length - 1));
    if (!imgs.length) items.push({ job: e.job, image: null, i: 0, n: 0 });
    imgs.forEach((image, i) => items.push({ job: e.job, image, i, n: imgs.length }));
  });
  pos = start;
  const d = $('#viewer');
  returnFocus = document.activeElement;
  show();
  if (!d.open) d.showModal();
  $('#viewer-close').focus();
}

export function initViewer() {
  const d = $('#viewer');
  $('#viewer-close').addEventListener('click', () => d.close());
  $('#viewer-prev').addEventListener('click', () => { if (pos > 0) { pos--; show(); } });
  $('#viewer-next').addEventListener('click', () => { if (pos < items.length - 1) { pos++; show(); } });
  d.addEventListener('keydown', (e) => {
    if (e.target.closest && e.target.closest('input, textarea, select')) return;
    if (e.key === 'ArrowLeft' && pos > 0) { e.preventDefault(); pos--; show(); }
    if (e.key === 'ArrowRight' && pos < items.length - 1) { e.preventDefault(); pos++; show(); }
  });
  // Click on the backdrop closes.
  d.addEventListener('click', (e) => { if (e.target === d) d.close(); });
  d.addEventListener('close', () => {
    if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
  });
  $('#viewer-reuse').addEventListener('click', () => {
    const it = items[pos];
    if (!it) return;
    const params = { ...(it.job.params || {}) };
    if (it.image && it.image.seed !== undefined) params.seed = it.image.seed;
    if (!params.priority && it.job.priority) params.priority = it.job.priority;
    emit('apply-params', { params, source: `job ${shortId(it.job.id)}` });
    returnFocus = $('#prompt');
    d.close();
  });
}
