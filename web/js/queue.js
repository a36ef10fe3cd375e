// Queue: my jobs (remembered in this browser) and the farm's queue with positions; cancel any
// of mine. Fed by the farm poller ('queue' events) and by submit/finish events.

import { api, progressOf } from './api.js';
import { $, el, emit, load, on, save, shortId, toast } from './util.js';
import { currentJobId } from './stage.js';

const MAX_MINE = 30;
const TERMINAL = new Set(['done', 'failed', 'cancelled']);
let mine = load('lf.myJobs', []).filter((j) => j && j.id); // [{id, prompt, priority, status, position, step, steps, created}]
let farmJobs = [];
let farmTotal = 0;
const checking = new Set();

const isMine = (id) => mine.some((j) => j.id === id);
const persist = () => save('lf.myJobs', mine.slice(0, MAX_MINE));

async function cancel(id, btn) {
  if (btn) btn.disabled = true;
  try {
    await api.cancel(id);
    toast(`Cancelling job ${shortId(id)}`);
    const j = mine.find((x) => x.id === id);
    if (j && j.status === 'queued') j.status = 'cancelled';
    render();
  } catch (e) {
    if (btn) btn.disabled = false;
    toast(`Cannot cancel ${shortId(id)}: ${e.message}`, { error: true });
  }
}

function jobItem(j, { position, mineFlag, showCancel }) {
  const p = progressOf(j);
  const status = j.status || 'queued';
  const prompt = j.prompt ?? j.params?.prompt ?? '';
  const prio = j.priority || j.params?.priority || 'normal';
  const li = el('li', { class: `job${mineFlag ? ' mine' : ''}`, dataset: { id: j.id, status } },
    el('span.pos', { text: status === 'queued' && position !== undefined && position !== null ? `#${position + 1}` : (status === 'running' ? '▶' : '·'), title: status === 'queued' ? 'position in the farm queue' : status }),
    el('div.what', {},
      el('div.prompt', { text: prompt || '(no prompt)', title: prompt }),
      el('div.meta', {},
        el('span', { class: `st ${status}`, text: status === 'running' && p.steps ? `running ${p.step}/${p.steps}` : (status === 'enhancing' ? 'enhancing prompt…' : status) }),
        el('span', { class: `prio ${prio}`, text: prio }),
        el('span', { text: shortId(j.id), title: j.id }),
        (j.worker || j.worker_id) ? el('span', { text: `on ${j.worker || j.worker_id}` }) : null,
        mineFlag ? el('span', { text: 'mine' }) : null)),
    showCancel && !TERMINAL.has(status)
      ? el('button.btn.small.btn-danger', { type: 'button', text: 'Cancel', 'aria-label': `Cancel job ${shortId(j.id)}${prompt ? `: ${prompt.slice(0, 40)}` : ''}`, onclick: (e) => cancel(j.id, e.currentTarget) })
      : (status === 'done' ? el('button.btn.small', { type: 'button', text: 'Show', 'aria-label': `Show job ${shortId(j.id)}`, onclick: () => emit('show-job', j.id) }) : el('span')));
  if (status === 'running' && p.steps) {
    li.append(el('div.mini', { 'aria-hidden': 'true' }, el('i', { style: `width:${(100 * p.step) / p.steps}%` })));
  }
  return li;
}

function render() {
  const active = mine.filter((j) => !TERMINAL.has(j.status)).length;
  $('#queue-count').textContent = active ? String(active) : '';
  const my = $('#my-jobs');
  my.replaceChildren(...(mine.length
    ? mine.slice(0, MAX_MINE).map((j) => jobItem(j, { position: j.position, mineFlag: false, showCancel: true }))
    : [el('li.empty', { text: 'No jobs yet.' })]));
  const fq = $('#farm-queue');
  $('#farm-queue-total').textContent = farmTotal ? `(${farmTotal})` : '';
  let qpos = 0;
  fq.replaceChildren(...(farmJobs.length
    ? farmJobs.map((j) => {
      const position = j.status === 'queued' ? (j.position ?? qpos) : undefined;
      if (j.status === 'queued') qpos++;
      return jobItem(j, { position, mineFlag: isMine(j.id), showCancel: isMine(j.id) });
    })
    : [el('li.empty', { text: 'The queue is empty.' })]));
}

async function checkFinished(j) {
  if (checking.has(j.id)) return;
  checking.add(j.id);
  try {
    const v = await api.job(j.id);
    Object.assign(j, { status: v.status, step: progressOf(v).step, steps: progressOf(v).steps, position: v.position });
  } catch (e) {
    if (e.status === 404) j.status = 'failed';
  } finally {
    checking.delete(j.id);
    persist();
    render();
  }
}

export function initQueue() {
  on('job-submitted', (d) => {
    mine.unshift({ id: d.id, prompt: d.params.prompt, priority: d.params.priority, status: d.status || 'queued', position: d.position, steps: d.params.steps, step: 0, created: Date.now() });
    mine = mine.slice(0, MAX_MINE);
    persist();
    render();
  });
  on('job-status', (d) => {
    const j = mine.find((x) => x.id === d.id);
    if (!j || TERMINAL.has(j.status)) return;
    const before = `${j.status}|${j.step}|${j.position}`;
    j.status = d.status;
    if (d.step !== undefined) j.step = d.step;
    if (d.steps) j.steps = d.steps;
    if (d.position !== undefined) j.position = d.position;
    if (d.worker) j.worker = d.worker;
    if (`${j.status}|${j.step}|${j.position}` !== before) render();
  });
  on('job-finished', (d) => {
    const j = mine.find((x) => x.id === d.id);
    if (j) { j.status = d.status; if (d.status === 'done') j.step = j.steps; persist(); render(); }
  });
  on('queue', ({ jobs, total }) => {
    farmJobs = jobs;
    farmTotal = total;
    const byId = new Map(jobs.map((j) => [j.id, j]));
    for (const j of mine) {
      const f = byId.get(j.id);
      if (f) {
        const p = progressOf(f);
        Object.assign(j, { status: f.status || 'queued', position: f.position, step: p.step, steps: p.steps || j.steps });
      } else if (!TERMINAL.has(j.status) && j.id !== currentJobId()) {
        checkFinished(j);
      }
    }
    persist();
    render();
  });
  render();
}
