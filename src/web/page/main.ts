/**
 * The page's UI thread: the form, validation, progress and the grid. All of
 * TF.js (loading, sampling) runs in worker.ts; this file only posts requests
 * and draws what comes back.
 *
 * A worker holds one backend. Changing the backend select, or a Stop the
 * worker does not answer in time, replaces the worker; the next Generate then
 * reloads the last pipeline source into the new one.
 */
import { FromWorker, GenerateRequest, PageBackend, PageProbe, PageRun, PageSampler, PAGE_SAMPLERS, PipelineSummary, ToWorker } from './protocol';

// ---------------------------------------------------------------- limits

/** The core's bounds (validated again there); checked here so the message names the form field. */
const STEPS_RANGE = [1, 1000] as const;
const GUIDANCE_RANGE = [0, 50] as const;
/** Images per prompt: a grid row; more is slow on a CPU backend, not wrong. */
const PER_ROW_RANGE = [1, 16] as const;
/** How long Stop waits for the worker to answer before replacing it. */
const STOP_GRACE_MS = 3000;
const WASM_PATHS = new URL('wasm/', location.href).href;

// ---------------------------------------------------------------- elements

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`page: #${id} is missing from index.html`);
  return e as T;
}

const ui = {
  pipelineSelect: el<HTMLSelectElement>('pipeline-select'),
  pipelineUrl: el<HTMLInputElement>('pipeline-url'),
  folder: el<HTMLInputElement>('folder'),
  backend: el<HTMLSelectElement>('backend'),
  load: el<HTMLButtonElement>('load'),
  loadProgress: el<HTMLProgressElement>('load-progress'),
  loadStatus: el<HTMLSpanElement>('load-status'),
  pipelineInfo: el<HTMLDivElement>('pipeline-info'),
  promptsRow: el<HTMLLabelElement>('prompts-row'),
  prompts: el<HTMLTextAreaElement>('prompts'),
  labelsRow: el<HTMLLabelElement>('labels-row'),
  labels: el<HTMLSelectElement>('labels'),
  n: el<HTMLInputElement>('n'),
  sampler: el<HTMLSelectElement>('sampler'),
  steps: el<HTMLInputElement>('steps'),
  guidance: el<HTMLInputElement>('guidance'),
  seed: el<HTMLInputElement>('seed'),
  generate: el<HTMLButtonElement>('generate'),
  stop: el<HTMLButtonElement>('stop'),
  progress: el<HTMLProgressElement>('progress'),
  progressStatus: el<HTMLSpanElement>('progress-status'),
  error: el<HTMLDivElement>('error'),
  grid: el<HTMLCanvasElement>('grid'),
  status: el<HTMLParagraphElement>('status'),
  backendUsed: el<HTMLElement>('backend-used'),
  backendReason: el<HTMLSpanElement>('backend-reason'),
};

// ---------------------------------------------------------------- state

type Source = { readonly kind: 'url'; readonly url: string } | { readonly kind: 'folder'; readonly name: string; readonly files: Record<string, Uint8Array> };

interface WorkerHandle {
  readonly worker: Worker;
  readonly backend: PageBackend;
  /** The source loaded into this worker, once it has loaded. */
  loaded: Source | null;
  /** Settles the request in flight (load or generate) with the worker's answer. */
  pending: ((m: FromWorker) => void) | null;
}

let current: WorkerHandle | null = null;
/** What Load loads: the URL field, or the folder picked last. */
let source: Source | null = null;
/** What Generate samples from: the source loaded last (reloaded into a new worker when needed). */
let loadedSource: Source | null = null;
let summary: PipelineSummary | null = null;
/** Finished actions, for PageProbe. */
let actions = 0;
let listReady = false;
let workersStarted = 0;
let lastRun: PageRun | null = null;

// ---------------------------------------------------------------- messages

class FieldError extends Error {}

function showError(message: string): void {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError(): void {
  ui.error.textContent = '';
  ui.error.hidden = true;
}

function setBusy(b: boolean): void {
  ui.load.disabled = b;
  ui.generate.disabled = b || summary === null;
  ui.stop.disabled = !b;
}

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / 1024).toFixed(0)} kB`;
}

// ---------------------------------------------------------------- the worker

function onWorkerMessage(h: WorkerHandle, m: FromWorker): void {
  switch (m.type) {
    case 'backend':
      ui.backendUsed.textContent = m.backend;
      ui.backendReason.textContent = `(${m.reason}${m.threads !== null && m.threads > 1 ? `, ${m.threads} threads` : ''})`;
      return;
    case 'load-progress':
      ui.loadProgress.max = m.total ?? Math.max(m.loaded, 1);
      ui.loadProgress.value = m.loaded;
      ui.loadStatus.textContent = `${m.file}: ${formatBytes(m.loaded)}${m.total !== null ? ` of ${formatBytes(m.total)}` : ''}`;
      return;
    case 'step':
      ui.progress.max = m.total;
      ui.progress.value = m.step;
      ui.progressStatus.textContent = `${m.stage}: step ${m.step} of ${m.total}`;
      return;
    case 'error':
      if (m.phase === 'backend') {
        ui.backendUsed.textContent = 'none';
        showError(m.message);
      }
      break;
    default:
      break;
  }
  // What is left ends the request in flight: 'loaded', 'result', 'aborted', 'error'.
  const settle = h.pending;
  if (settle !== null) {
    h.pending = null;
    settle(m);
  }
}

function startWorker(backend: PageBackend): WorkerHandle {
  const worker = new Worker('worker.js');
  workersStarted += 1;
  const h: WorkerHandle = { worker, backend, loaded: null, pending: null };
  worker.onmessage = (e: MessageEvent<FromWorker>) => onWorkerMessage(h, e.data);
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    onWorkerMessage(h, { type: 'error', phase: 'generate', message: `the sampling worker crashed: ${e.message}` });
  };
  ui.backendUsed.textContent = `${backend} (starting)`;
  ui.backendReason.textContent = '';
  post(h, { type: 'init', backend, wasmPaths: WASM_PATHS });
  return h;
}

function stopWorker(): void {
  if (current === null) return;
  const h = current;
  current = null;
  h.worker.terminate();
  h.pending?.({ type: 'aborted' });
  h.pending = null;
}

function post(h: WorkerHandle, m: ToWorker, transfer: Transferable[] = []): void {
  h.worker.postMessage(m, transfer);
}

/** Posts a request and resolves with the worker's final answer to it ('loaded', 'result', 'aborted' or 'error'). */
function request(h: WorkerHandle, m: ToWorker): Promise<FromWorker> {
  return new Promise((resolve) => {
    h.pending = resolve;
    post(h, m);
  });
}

/** The worker for the selected backend, with `wanted` loaded into it. */
async function ready(wanted: Source): Promise<WorkerHandle> {
  const backend = ui.backend.value as PageBackend;
  if (current === null || current.backend !== backend) {
    stopWorker();
    current = startWorker(backend);
  }
  const h = current;
  if (h.loaded !== wanted) {
    summary = null;
    ui.loadProgress.value = 0;
    ui.loadStatus.textContent = `loading ${describeSource(wanted)}`;
    // A folder's bytes are copied (not transferred): a later worker may need them again.
    const answer = await request(h, { type: 'load', source: wanted.kind === 'url' ? wanted.url : wanted.files });
    if (answer.type === 'aborted') throw new Error('Load: stopped');
    if (answer.type === 'error') throw new Error(`Load ${describeSource(wanted)}: ${answer.message}`);
    if (answer.type !== 'loaded') throw new Error(`Load: unexpected answer '${answer.type}' from the worker`);
    h.loaded = wanted;
    summary = answer.summary;
    ui.loadStatus.textContent = `loaded ${describeSource(wanted)}`;
    ui.loadProgress.value = ui.loadProgress.max;
    ui.pipelineInfo.textContent = answer.summary.description;
  }
  return h;
}

function describeSource(s: Source): string {
  return s.kind === 'url' ? s.url : `folder ${s.name}/`;
}

// ---------------------------------------------------------------- the form

function fillForm(s: PipelineSummary): void {
  const text = s.conditioning === 'text';
  ui.promptsRow.hidden = !text;
  ui.labelsRow.hidden = s.conditioning !== 'class';
  if (text) {
    ui.prompts.value = (s.defaults.prompts ?? []).join('\n');
  } else if (s.conditioning === 'class') {
    const names = s.classNames ?? [];
    ui.labels.replaceChildren(
      ...names.map((name, i) => {
        const o = document.createElement('option');
        o.value = String(i);
        o.textContent = name === String(i) ? name : `${i}: ${name}`;
        o.selected = true;
        return o;
      }),
    );
    ui.labels.size = Math.min(Math.max(names.length, 2), 10);
  }
  ui.n.labels?.[0]?.firstChild?.replaceWith(perRowField(s) + ' ');
  if (s.defaults.sampler !== undefined) ui.sampler.value = s.defaults.sampler;
  if (s.defaults.steps !== undefined) ui.steps.value = String(s.defaults.steps);
  if (s.defaults.guidance !== undefined) ui.guidance.value = String(s.defaults.guidance);
}

function parseInteger(field: string, raw: string, lo: number, hi: number): number {
  const t = raw.trim();
  const v = /^-?\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(v) || v < lo || v > hi) {
    throw new FieldError(`${field}: expected a whole number in ${lo}..${hi}, received '${raw}'.`);
  }
  return v;
}

function parseNumber(field: string, raw: string, lo: number, hi: number): number {
  const t = raw.trim();
  const v = t === '' ? NaN : Number(t);
  if (!Number.isFinite(v) || v < lo || v > hi) throw new FieldError(`${field}: expected a number in [${lo}, ${hi}], received '${raw}'.`);
  return v;
}

/** The name of the #n field: what one grid row holds. */
function perRowField(s: PipelineSummary): string {
  return s.conditioning === 'text' ? 'Images per prompt' : s.conditioning === 'class' ? 'Images per class' : 'Images';
}

/** Reads and checks the sampling fields; throws a FieldError naming the first bad one. */
function readRequest(s: PipelineSummary): GenerateRequest {
  const perRow = parseInteger(perRowField(s), ui.n.value, ...PER_ROW_RANGE);
  let rows: { prompts: string[] | null; labels: number[] | null; count: number };
  if (s.conditioning === 'text') {
    const lines = ui.prompts.value.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (lines.length === 0) throw new FieldError('Prompts: write at least one prompt (one per line).');
    rows = { prompts: lines, labels: null, count: lines.length };
  } else if (s.conditioning === 'class') {
    const picked = Array.from(ui.labels.selectedOptions, (o) => Number(o.value));
    if (picked.length === 0) throw new FieldError('Classes: pick at least one class.');
    rows = { prompts: null, labels: picked, count: picked.length };
  } else {
    rows = { prompts: null, labels: null, count: 1 };
  }
  const sampler = ui.sampler.value as PageSampler;
  if (!PAGE_SAMPLERS.includes(sampler)) throw new FieldError(`Sampler: expected one of ${PAGE_SAMPLERS.join(', ')}, received '${ui.sampler.value}'.`);
  const steps = parseInteger('Steps', ui.steps.value, ...STEPS_RANGE);
  const guidance = parseNumber('Guidance', ui.guidance.value, ...GUIDANCE_RANGE);
  const seed = parseInteger('Seed', ui.seed.value, 0, Number.MAX_SAFE_INTEGER);
  const repeat = <T>(xs: readonly T[]): T[] => xs.flatMap((x) => Array.from({ length: perRow }, () => x));
  return {
    n: rows.count * perRow,
    prompts: rows.prompts === null ? null : repeat(rows.prompts),
    labels: rows.labels === null ? null : repeat(rows.labels),
    perRow, seed, sampler, steps, guidance,
  };
}

function sourceFromForm(): Source {
  if (source !== null && source.kind === 'folder') return source;
  const url = ui.pipelineUrl.value.trim();
  if (url === '') throw new FieldError('Pipeline URL: pick a shipped pipeline, type a URL, or choose a folder.');
  return { kind: 'url', url: url.endsWith('/') ? url : `${url}/` };
}

function draw(m: Extract<FromWorker, { type: 'result' }>): void {
  ui.grid.width = m.width;
  ui.grid.height = m.height;
  // Scale up by a whole factor so each pixel stays square (CSS image-rendering: pixelated).
  const zoom = Math.max(1, Math.floor(512 / Math.max(m.width, m.height)));
  ui.grid.style.width = `${m.width * zoom}px`; // height follows (CSS height: auto), and max-width keeps it in its column
  const ctx = ui.grid.getContext('2d');
  if (ctx === null) throw new Error('Grid: this browser gives no 2d canvas context');
  ctx.putImageData(new ImageData(new Uint8ClampedArray(m.rgba), m.width, m.height), 0, 0);
}

// ---------------------------------------------------------------- actions

async function onLoad(): Promise<void> {
  clearError();
  setBusy(true);
  try {
    const wanted = sourceFromForm();
    if (current !== null) current.loaded = null; // Load always (re)loads
    loadedSource = null;
    await ready(wanted);
    loadedSource = wanted;
    if (summary !== null) fillForm(summary);
    ui.status.textContent = 'Loaded. Write prompts (or pick classes) and press Generate.';
  } catch (e) {
    showError((e as Error).message);
    ui.loadStatus.textContent = 'load failed';
  } finally {
    setBusy(false);
  }
}

async function onGenerate(): Promise<void> {
  clearError();
  const wanted = loadedSource;
  if (summary === null || wanted === null) {
    showError('Pipeline: press Load first.');
    return;
  }
  let req: GenerateRequest;
  try {
    req = readRequest(summary);
  } catch (e) {
    showError((e as Error).message);
    return;
  }
  setBusy(true);
  ui.progress.value = 0;
  ui.progressStatus.textContent = 'starting';
  try {
    const h = await ready(wanted);
    const answer = await request(h, { type: 'generate', request: req });
    if (answer.type === 'result') {
      draw(answer);
      lastRun = { images: answer.images, seconds: answer.seconds, backend: answer.backend, sampler: req.sampler, steps: req.steps, numTensors: answer.numTensors };
      const per = answer.seconds / answer.images;
      ui.status.textContent =
        `${answer.images} image${answer.images === 1 ? '' : 's'} in ${answer.seconds.toFixed(2)} s: ` +
        `${per.toFixed(2)} s per image on ${answer.backend} (${req.sampler}, ${req.steps} steps, guidance ${req.guidance}, seed ${req.seed}).`;
      ui.progressStatus.textContent = 'done';
    } else if (answer.type === 'aborted') {
      ui.status.textContent = 'Stopped.';
      ui.progressStatus.textContent = 'stopped';
    } else if (answer.type === 'error') {
      showError(`Generate: ${answer.message}`);
      ui.progressStatus.textContent = 'failed';
    }
  } catch (e) {
    showError((e as Error).message);
  } finally {
    setBusy(false);
  }
}

function onStop(): void {
  const h = current;
  const stopping = h?.pending ?? null;
  if (h === null || stopping === null) return;
  post(h, { type: 'abort' });
  ui.progressStatus.textContent = 'stopping';
  setTimeout(() => {
    // The same request is still unanswered (the worker is inside one long step): replace the worker.
    if (current === h && h.pending === stopping) stopWorker();
  }, STOP_GRACE_MS);
}

async function onFolder(): Promise<void> {
  clearError();
  const list = Array.from(ui.folder.files ?? []);
  if (list.length === 0) return;
  // webkitRelativePath is "<picked folder>/<sub>/<file>": keep the part below the picked folder.
  const top = list[0].webkitRelativePath.split('/')[0];
  const files: Record<string, Uint8Array> = {};
  for (const f of list) {
    const rel = f.webkitRelativePath.split('/').slice(1).join('/') || f.name;
    files[rel] = new Uint8Array(await f.arrayBuffer());
  }
  if (!('pipeline.json' in files)) {
    const nested = Object.keys(files).filter((k) => k.endsWith('/pipeline.json'));
    const hint = nested.length > 0 ? ` It is in ${nested.map((k) => `${top}/${k.slice(0, -'/pipeline.json'.length)}/`).join(', ')}: pick that folder.` : '';
    source = null;
    showError(`Folder: ${top}/ has no pipeline.json (pick the folder a pipeline was saved to).${hint}`);
    return;
  }
  source = { kind: 'folder', name: top, files };
  ui.pipelineSelect.value = '';
  ui.pipelineUrl.value = '';
  ui.pipelineUrl.placeholder = `(folder ${top}/, ${list.length} files)`;
  await onLoad();
}

function onPickShipped(): void {
  const name = ui.pipelineSelect.value;
  if (name === '') return;
  ui.pipelineUrl.value = `/checkpoints/${name}/`;
  ui.folder.value = '';
  source = { kind: 'url', url: ui.pipelineUrl.value };
}

async function fillShippedList(): Promise<void> {
  try {
    const res = await fetch('pipelines.json');
    if (!res.ok) return; // served elsewhere: the URL field and the folder still work
    const names = (await res.json()) as string[];
    for (const name of names) {
      const o = document.createElement('option');
      o.value = name;
      o.textContent = name;
      ui.pipelineSelect.append(o);
    }
    if (names.includes('mnist-latent')) {
      ui.pipelineSelect.value = 'mnist-latent';
      onPickShipped();
    }
  } catch {
    // as above
  }
}

/** Offers webgpu where the browser has it and gives an adapter (headless Chromium has navigator.gpu but no adapter). */
async function offerWebgpu(): Promise<void> {
  if (!('gpu' in navigator) || navigator.gpu === undefined) return;
  try {
    if ((await navigator.gpu.requestAdapter()) === null) return;
  } catch {
    return;
  }
  const o = document.createElement('option');
  o.value = 'webgpu';
  o.textContent = 'webgpu';
  ui.backend.append(o);
}

function init(): void {
  ui.pipelineSelect.addEventListener('change', onPickShipped);
  ui.pipelineUrl.addEventListener('input', () => {
    source = ui.pipelineUrl.value.trim() === '' ? null : { kind: 'url', url: ui.pipelineUrl.value.trim() };
    ui.folder.value = '';
    ui.pipelineSelect.value = '';
  });
  // Each user action counts once when it has finished, however it ended (PageProbe.actions).
  const counted = (action: () => Promise<void>) => () =>
    void action().finally(() => {
      actions += 1;
    });
  ui.folder.addEventListener('change', counted(onFolder));
  ui.load.addEventListener('click', counted(onLoad));
  ui.generate.addEventListener('click', counted(onGenerate));
  ui.stop.addEventListener('click', onStop);
  window.addEventListener('error', (e) => showError(`page error: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => showError(`page error: ${String((e.reason as Error)?.message ?? e.reason)}`));
  void Promise.all([fillShippedList(), offerWebgpu()]).then(() => {
    listReady = true;
  });
  const probe: PageProbe = {
    get ready() {
      return listReady;
    },
    get actions() {
      return actions;
    },
    get workersStarted() {
      return workersStarted;
    },
    outcome: () => ({ error: ui.error.hidden ? null : ui.error.textContent ?? '', status: ui.status.textContent ?? '', backendUsed: ui.backendUsed.textContent ?? '' }),
    pipeline: () => summary,
    lastRun: () => lastRun,
    grid: () => {
      const ctx = ui.grid.getContext('2d');
      if (ctx === null || ui.grid.width === 0) return { width: 0, height: 0, rgba: [] };
      return { width: ui.grid.width, height: ui.grid.height, rgba: Array.from(ctx.getImageData(0, 0, ui.grid.width, ui.grid.height).data) };
    },
  };
  (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage = probe;
}

init();
