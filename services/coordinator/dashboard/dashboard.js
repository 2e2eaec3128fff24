// Script of the Strata operations dashboard (index.html): reads /api/v1/dashboard every two
// seconds with the user's bearer token and redraws workers, the queue and each job (progress,
// loss and eval curves, task metrics with their best, restarts, recent events, federated
// rounds). Every value from the server is written as text (textContent), never as markup: job
// names and messages come from users.
'use strict';

const REFRESH_MS = 2000;
const TOKEN_KEY = 'strata.token';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function bytes(n) {
  if (!(n > 0)) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function num(x, digits) {
  return (x === null || x === undefined || Number.isNaN(x)) ? '–' : Number(x).toFixed(digits);
}

function ago(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// Loss (and eval loss) against step as an inline SVG line chart.
function curve(points) {
  const width = 420, height = 120, pad = 26;
  const svg = svgEl('svg', {class: 'curve', width, height, viewBox: `0 0 ${width} ${height}`,
                            role: 'img', 'aria-label': 'loss curve'});
  const values = [];
  for (const p of points) {
    if (Number.isFinite(p.loss)) values.push(p.loss);
    if (Number.isFinite(p.eval_loss)) values.push(p.eval_loss);
  }
  if (points.length < 2 || values.length === 0) {
    const note = svgEl('text', {x: pad, y: height / 2});
    note.textContent = 'no curve yet';
    svg.append(note);
    return svg;
  }
  const x0 = points[0].step, x1 = points[points.length - 1].step;
  let y0 = Math.min(...values), y1 = Math.max(...values);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const sx = (s) => pad + (width - 2 * pad) * (s - x0) / Math.max(1, x1 - x0);
  const sy = (v) => height - pad + (2 * pad - height) * (v - y0) / (y1 - y0);
  for (const [key, cls] of [['loss', 'loss'], ['eval_loss', 'eval']]) {
    const coords = points.filter((p) => Number.isFinite(p[key]))
                         .map((p) => `${sx(p.step).toFixed(1)},${sy(p[key]).toFixed(1)}`);
    if (coords.length > 0) svg.append(svgEl('polyline', {class: cls, points: coords.join(' ')}));
  }
  for (const [text, x, y] of [[y1.toFixed(3), 2, pad - 4], [y0.toFixed(3), 2, height - pad + 12],
                              [`step ${x0}`, pad, height - 4], [`step ${x1}`, width - pad - 50,
                                                                 height - 4]]) {
    const label = svgEl('text', {x, y});
    label.textContent = text;
    svg.append(label);
  }
  return svg;
}

function renderWorkers(workers) {
  const body = document.querySelector('#workers tbody');
  body.replaceChildren(...workers.map((w) => el('tr', {'data-worker': w.name},
    el('td', {}, w.name),
    el('td', {class: `state state-${w.state}`}, w.state),
    el('td', {}, `${w.free_cores} / ${w.cores}`),
    el('td', {}, `${bytes(w.free_memory_bytes)} / ${bytes(w.memory_bytes)}`),
    el('td', {}, w.gpus),
    el('td', {}, w.nvme_paths ? bytes(w.nvme_free_bytes) : '–'),
    el('td', {}, w.ranks),
    el('td', {}, ago(w.heartbeat_age_s)))));
  if (workers.length === 0) body.append(el('tr', {}, el('td', {colspan: 8, class: 'muted'},
                                                        'no workers registered')));
}

function renderQueue(jobs) {
  const queued = jobs.filter((j) => j.state === 'QUEUED')
                     .sort((a, b) => a.jobs_ahead - b.jobs_ahead);
  const body = document.querySelector('#queue tbody');
  body.replaceChildren(...queued.map((j) => el('tr', {},
    el('td', {}, j.id), el('td', {}, j.name), el('td', {}, j.owner), el('td', {}, j.priority),
    el('td', {}, j.jobs_ahead), el('td', {class: 'muted'}, j.message))));
  if (queued.length === 0) body.append(el('tr', {}, el('td', {colspan: 6, class: 'muted'},
                                                       'nothing queued')));
}

function renderRounds(rounds) {
  if (!rounds || rounds.length === 0) return null;
  return el('table', {class: 'rounds'},
    el('thead', {}, el('tr', {}, ...['Round', 'State', 'Sampled', 'OK', 'Late', 'Rejected',
                                     'Mean loss', 'Up', 'Down'].map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rounds.map((r) => el('tr', {},
      el('td', {}, r.round), el('td', {}, r.state), el('td', {}, r.sampled),
      el('td', {}, r.replies_ok), el('td', {}, r.replies_late), el('td', {}, r.replies_rejected),
      el('td', {}, num(r.mean_loss, 4)), el('td', {}, bytes(r.bytes_up)),
      el('td', {}, bytes(r.bytes_down))))));
}

// The latest evaluation's task metrics, each with its best so far: "accuracy 0.8125 (best
// 0.8750 @ 400)".
function renderMetrics(j) {
  const best = new Map((j.eval_summary || []).map((s) => [s.name, s]));
  return Object.entries(j.eval_metrics || {}).map(([name, value]) => {
    const s = best.get(name);
    return el('span', {class: 'metric', 'data-metric': name}, `${name} ${num(value, 4)}`,
              s ? ` (best ${num(s.best, 4)} @ ${s.best_step})` : null);
  });
}

function renderJob(j) {
  const total = j.federated ? j.num_rounds : j.max_steps;
  const done = j.federated ? j.round : j.step;
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const bar = el('div', {class: 'bar', role: 'progressbar', 'aria-valuemin': 0,
                         'aria-valuemax': total, 'aria-valuenow': done});
  const filled = el('div', {});
  filled.style.width = `${(100 * fraction).toFixed(1)}%`;  // CSSOM: allowed by the page's CSP.
  bar.append(filled);
  const left = el('div', {},
    el('h3', {}, `${j.id} `, el('span', {class: 'muted'}, j.name), ' ',
       el('span', {class: `state state-${j.state}`}, j.state)),
    bar,
    el('div', {class: 'facts'},
      el('span', {}, j.federated ? 'round ' : 'step ', el('span', {class: 'step'}, done),
         ` / ${total}`),
      el('span', {}, `loss ${num(j.loss, 4)}`),
      el('span', {}, `eval ${num(j.eval_loss, 4)}`),
      ...renderMetrics(j),
      el('span', {}, `${num(j.tokens_per_second, 0)} tok/s`),
      el('span', {}, `restarts ${j.restarts}`),
      el('span', {}, `attempt ${j.attempt}`),
      el('span', {class: 'muted'}, `owner ${j.owner}`),
      j.workers.length ? el('span', {class: 'muted'}, `on ${j.workers.join(', ')}`) : null),
    j.message ? el('div', {class: 'muted'}, j.message) : null,
    renderRounds(j.rounds));
  const events = el('div', {class: 'events'}, ...j.events.map((e) =>
    el('div', {class: e.level}, `${e.time}  ${e.text}`)));
  return el('div', {class: 'job', 'data-job-id': j.id, 'data-state': j.state}, left,
            curve(j.curve), events);
}

function render(data) {
  document.getElementById('who').textContent =
      data.user ? `${data.user}${data.operator ? ' (operator)' : ''}` :
                  (data.operator ? 'operator view' : '');
  document.getElementById('updated').textContent =
      `updated ${new Date(data.time * 1000).toLocaleTimeString()}`;
  renderWorkers(data.workers);
  renderQueue(data.jobs);
  const jobs = document.getElementById('jobs');
  const shown = data.jobs.slice().reverse();  // Newest first.
  jobs.replaceChildren(...shown.map(renderJob));
  if (shown.length === 0) jobs.append(el('p', {class: 'muted'}, 'no jobs yet'));
}

let timer = null;

async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? {Authorization: `Bearer ${token}`} : {};
  let response;
  try {
    response = await fetch('/api/v1/dashboard', {headers, cache: 'no-store'});
  } catch (error) {
    document.getElementById('updated').textContent = 'coordinator unreachable; retrying';
    return;
  }
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('main').hidden = true;
    document.getElementById('login').hidden = false;
    document.getElementById('login-error').textContent = token ? 'unknown token' : '';
    return;
  }
  if (!response.ok) {
    document.getElementById('updated').textContent = `error ${response.status}; retrying`;
    return;
  }
  document.getElementById('login').hidden = true;
  document.getElementById('main').hidden = false;
  render(await response.json());
}

function start() {
  // A token handed over in the address (#token=...) is kept for this tab only and removed from
  // the address bar and history.
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  document.getElementById('login').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value.trim());
    refresh();
  });
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', start);
