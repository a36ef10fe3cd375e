// The centre panel: follows the job you submitted last — status, progress with step and ETA,
// previews as they arrive, the result images, cancel, full view, reuse parameters.

import { api, imageSrc, imagesOf, setImg } from './api.js';
import { JobWatcher } from './sse/live.js';
import { $, el, emit, fmtSeconds, on, shortId, toast } from './util.js';
import { openViewer } from './viewer.js';

let current = null; // {id, params, watcher, t0, s0, steps, job, images, index}

function setStatus(status, text) {
  const b = $('#live-status');
  b.dataset.status = status;
  b.textContent = text || status;
}

function setProgress(step, steps, { indeterminate = false } = {}) {
  const bar = $('#progress');
  bar.classList.toggle('indeterminate', indeterminate);
  const pct = steps > 0 ? Math.min(100, (100 * step) / steps) : 0;
  $('#progress-fill').style.width = `${pct}%`;
  bar.setAttribute('aria-valuenow', String(Math.round(pct)));
  bar.setAttribute('aria-valuetext', steps ? `step ${step} of ${steps}` : 'waiting');
  $('#progress-steps').textContent = steps ? `Step ${step} / ${steps}` : '—';
}

function setEta(text) { $('#progress-eta').textContent = text || ''; }
function setWhere(text) { $('#progress-where').textContent = text || ''; }

function showPreview(src) {
  const img = $('#preview-img');
  const reveal = () => {
    if (!current || !$('#result-btn').hidden) return; // the result came first
    $('#canvas-empty').hidden = true;
    img.hidden = false;
  };
  if (src.startsWith('/')) {
    // A URL may not have a preview yet: swap only once it has loaded.
    imageSrc(src).then((u) => {
      const probe = new Image();
      probe.onload = () => { img.src = u; reveal(); };
      probe.src = u;
    }).catch(() => {});
  } else {
    img.src = src;
    reveal();
  }
}

function showResult(index) {
  if (!current || !current.images.length) return;
  current.index = index;
  const im = current.images[index];
  $('#preview-img').hidden = true;
  $('#canvas-empty').hidden = true;
  $('#result-btn').hidden = false;
  const img = $('#result-img');
  img.alt = `Generated image ${index + 1} of ${current.images.length}, seed ${im.seed ?? '?'}: ${current.params.prompt || ''}`.slice(0, 200);
  setImg(img, im.url);
  for (const b of $('#batch-strip').children) b.setAttribute('aria-current', String(Number(b.dataset.i) === index));
}

function renderBatch() {
  const strip = $('#batch-strip');
  strip.replaceChildren();
  if (current.images.length < 2) return;
  current.images.forEach((im, i) => {
    const img = el('img', { alt: `Image ${i + 1}, seed ${im.seed ?? '?'}` });
    setImg(img, im.url);
    strip.append(el('button', {
      type: 'button', role: 'listitem', dataset: { i: String(i) }, 'aria-label': `Show image ${i + 1} (seed ${im.seed ?? '?'})`,
      onclick: () => showResult(i),
    }, img));
  });
}

function resetView(params) {
  $('#cancel-btn').hidden = false;
  $('#cancel-btn').disabled = false;
  $('#stage-open').disabled = true;
  $('#stage-reuse').disabled = true;
  $('#result-btn').hidden = true;
  $('#preview-img').hidden = true;
  $('#preview-img').removeAttribute('src');
  $('#canvas-empty').hidden = false;
  $('#canvas-msg').textContent = 'Waiting for a worker…';
  $('#canvas-hint').hidden = true;
  // One column (phones): bring the output into view.
  if (matchMedia('(max-width: 760px)').matches) $('.stage').scrollIntoView({ behavior: 'smooth', block: 'start' });
  $('#batch-strip').replaceChildren();
  $('#info-box').hidden = true;
  $('#enhanced-box').hidden = true;
  $('#enhance-note').hidden = true;
  setProgress(0, params.steps || 0, { indeterminate: true });
  $('#progress-steps').textContent = 'Queued';
  setEta('');
  setWhere('');
}

/** Prompt enhancement's outcome: the LLM's prompt (with "Use it") or why the original was kept. */
function showEnhancement(p) {
  const enhanced = typeof p.prompt_original === 'string';
  $('#enhanced-box').hidden = !enhanced;
  if (enhanced) {
    $('#enhanced-text').textContent = p.prompt || '';
    $('#enhanced-original').textContent = p.prompt_original;
  }
  const note = $('#enhance-note');
  note.hidden = !p.enhance_error;
  note.textContent = p.enhance_error ? `Prompt not enhanced (the original was used): ${p.enhance_error}` : '';
}

/** After the enhancing stage: the job's prompt as the LLM left it (or why not), from its view. */
async function showSettledPrompt(c) {
  try {
    const v = await api.job(c.id);
    if (current !== c || !v.params) return;
    c.params = { ...c.params, ...v.params };
    showEnhancement(c.params);
  } catch { /* shown with the result */ }
}

function onEvent(name, d) {
  const c = current;
  if (!c) return;
  if (name === 'enhancing' || name === 'queued' || name === 'started' || name === 'progress') {
    emit('job-status', {
      id: c.id, status: name === 'queued' || name === 'enhancing' ? name : 'running', position: d.position,
      step: d.step, steps: d.steps || c.steps, worker: d.worker,
    });
  }
  switch (name) {
    case 'enhancing':
      c.enhancing = true;
      setStatus('enhancing', 'enhancing');
      setWhere('');
      $('#progress-steps').textContent = 'Enhancing prompt…';
      $('#canvas-msg').textContent = 'Enhancing prompt…';
      break;
    case 'queued':
      if (c.enhancing) { // the prompt is settled: show it now (the event does not carry it)
        c.enhancing = false;
        $('#progress-steps').textContent = 'Queued';
        $('#canvas-msg').textContent = 'Waiting for a worker…';
        showSettledPrompt(c);
      }
      setStatus('queued', 'queued');
      setWhere(d.position !== undefined && d.position !== null ? `Position ${Number(d.position) + 1} in queue` : 'In queue');
      break;
    case 'started':
      setStatus('running', 'running');
      setWhere(d.worker ? `on ${d.worker}` : 'running');
      setProgress(0, c.steps);
      $('#canvas-msg').textContent = 'Generating…';
      break;
    case 'progress': {
      if ($('#live-status').dataset.status !== 'running') setStatus('running', 'running');
      if (d.worker) setWhere(`on ${d.worker}`);
      c.steps = d.steps || c.steps;
      const now = performance.now();
      if (c.t0 === null || d.step < c.s0) { c.t0 = now; c.s0 = d.step; }
      setProgress(d.step, c.steps);
      if (d.step > c.s0) {
        const per = (now - c.t0) / (d.step - c.s0);
        const left = Math.max(0, c.steps - d.step);
        setEta(`${(1000 / per).toFixed(1)} it/s · ETA ${fmtSeconds((left * per) / 1000) || '0 s'}`);
      }
      break;
    }
    case 'preview':
      showPreview(d.src);
      break;
    case 'done': {
      c.job = d;
      c.images = imagesOf(d);
      c.params = { ...c.params, ...(d.params || {}) };
      setStatus('done', 'done');
      setProgress(c.steps || 1, c.steps || 1);
      const el2 = d.finished_ms && d.started_ms ? ` in ${fmtSeconds((d.finished_ms - d.started_ms) / 1000)}` : '';
      setEta(`finished${el2}`);
      $('#cancel-btn').hidden = true;
      if (c.images.length) {
        renderBatch();
        showResult(0);
        $('#stage-open').disabled = false;
      } else {
        $('#canvas-msg').textContent = 'Done, but the job returned no image.';
      }
      $('#stage-reuse').disabled = false;
      const info = d.result?.info ?? d.info;
      $('#info-text').textContent = typeof info === 'string' ? info
        : (info?.infotexts?.[0]) || JSON.stringify(info ?? c.params, null, 2); // the worker's own text (the PNG's)
      $('#info-box').hidden = false;
      showEnhancement(c.params);
      emit('job-finished', { id: c.id, status: 'done', images: c.images, params: c.params });
      break;
    }
    case 'failed':
      setStatus('failed', 'failed');
      setEta('');
      $('#cancel-btn').hidden = true;
      $('#stage-reuse').disabled = false;
      $('#canvas-empty').hidden = false;
      $('#preview-img').hidden = true;
      $('#canvas-msg').textContent = `Failed: ${d.message || 'unknown error'}${d.code ? ` (${d.code})` : ''}`;
      $('#progress').classList.remove('indeterminate');
      emit('job-finished', { id: c.id, status: 'failed' });
      break;
    case 'cancelled':
      setStatus('cancelled', 'cancelled');
      setEta('');
      $('#cancel-btn').hidden = true;
      $('#stage-reuse').disabled = false;
      $('#progress').classList.remove('indeterminate');
      if ($('#preview-img').hidden) {
        $('#canvas-empty').hidden = false;
        $('#canvas-msg').textContent = 'Cancelled.';
      }
      emit('job-finished', { id: c.id, status: 'cancelled' });
      break;
    default:
  }
}

export function follow(id, params = {}, position, status) {
  if (current && current.watcher) current.watcher.stop();
  current = { id, params, t0: null, s0: 0, steps: params.steps || 0, images: [], index: 0, job: null };
  resetView(params);
  setStatus('queued', 'queued');
  $('#stage-h').textContent = `Output · job ${shortId(id)}`;
  if (position !== undefined && position !== null) setWhere(`Position ${Number(position) + 1} in queue`);
  if (status === 'enhancing') onEvent('enhancing', {});
  current.watcher = new JobWatcher(id, { onEvent: (n, d) => { if (current && current.id === id) onEvent(n, d); } }).start();
}

export function currentJobId() { return current && current.id; }

async function cancelCurrent() {
  if (!current) return;
  $('#cancel-btn').disabled = true;
  try {
    await api.cancel(current.id);
    setWhere('cancelling…');
  } catch (e) {
    $('#cancel-btn').disabled = false;
    toast(`Cancel failed: ${e.message}`, { error: true });
  }
}

export function initStage() {
  on('job-submitted', (d) => follow(d.id, d.params, d.position, d.status));
  $('#cancel-btn').addEventListener('click', cancelCurrent);
  const open = () => {
    if (current && current.images.length) {
      openViewer([{ job: { ...(current.job || {}), id: current.id, params: current.params }, images: current.images }], 0, current.index);
    }
  };
  $('#stage-open').addEventListener('click', open);
  $('#result-btn').addEventListener('click', open);
  // The enhanced prompt into the form, enhancement off (it is already enhanced).
  $('#enhanced-use').addEventListener('click', () => {
    if (!current || typeof current.params.prompt !== 'string') return;
    $('#prompt').value = current.params.prompt;
    $('#enhance_prompt').checked = false;
    $('#enhance_instruction').hidden = true;
    $('#prompt').focus();
    toast('Enhanced prompt in the form');
  });
  $('#stage-reuse').addEventListener('click', () => {
    if (!current) return;
    const seed = current.images[current.index]?.seed;
    emit('apply-params', { params: { ...current.params, ...(seed !== undefined ? { seed } : {}) }, source: `job ${shortId(current.id)}` });
  });
}
