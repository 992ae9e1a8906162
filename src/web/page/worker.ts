/**
 * The page's sampling worker: all of TF.js runs here, so the page stays
 * responsive while a pipeline loads or samples. It uses the platform-free
 * core (src/core.ts), the same code the Node CLI samples with.
 *
 * One backend per worker (chosen by the first 'init'); the page starts a new
 * worker to change backend, or when an abort does not arrive in time.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadPipeline, makeGrid, tensorToImageBytes, toRgba } from '../../core';
import type { Pipeline } from '../../core';
import type { FromWorker, GenerateRequest, PageBackend, PipelineSummary, ToWorker } from './protocol';

declare const self: DedicatedWorkerGlobalScope;

let backendReady: Promise<string> | null = null;
let pipeline: Pipeline | null = null;
let running: AbortController | null = null;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** webgl falls back to wasm (and says why); wasm and webgpu are taken as asked. */
async function startBackend(choice: PageBackend, wasmPaths: string): Promise<string> {
  try {
    const info = await initBackend(choice, { wasmPaths });
    post({ type: 'backend', backend: info.tfBackend, reason: info.reason, threads: info.threads });
    return info.tfBackend;
  } catch (e) {
    if (choice !== 'webgl') throw e;
    const info = await initBackend('wasm', { wasmPaths });
    const reason = `webgl failed (${messageOf(e)}); fell back to ${info.reason}`;
    post({ type: 'backend', backend: info.tfBackend, reason, threads: info.threads });
    return info.tfBackend;
  }
}

function summarize(p: Pipeline): PipelineSummary {
  return {
    design: p.design,
    conditioning: p.conditioning,
    classNames: p.classNames,
    imageSize: p.imageSize,
    imageChannels: p.imageChannels,
    defaults: { ...p.defaults },
    description: p.describe(),
  };
}

async function load(source: string | Record<string, Uint8Array>): Promise<void> {
  if (backendReady === null) throw new Error('the worker got "load" before "init"');
  await backendReady;
  pipeline?.dispose();
  pipeline = null;
  pipeline = await loadPipeline(source, {
    onProgress: (p) => post({ type: 'load-progress', loaded: p.loaded, total: p.total, file: p.file }),
  });
  post({ type: 'loaded', summary: summarize(pipeline) });
}

async function generate(r: GenerateRequest): Promise<void> {
  if (pipeline === null) throw new Error('no pipeline loaded: press Load first');
  const p = pipeline;
  running = new AbortController();
  const t0 = performance.now();
  const images = await p.generate({
    ...(r.prompts !== null ? { prompts: r.prompts } : {}),
    ...(r.labels !== null ? { labels: r.labels } : {}),
    n: r.n,
    seed: r.seed,
    sampler: r.sampler,
    steps: r.steps,
    guidance: r.guidance,
    signal: running.signal,
    onStep: (s) => post({ type: 'step', step: s.step, total: s.total, stage: s.stage }),
  });
  let bytes: Uint8Array;
  try {
    bytes = await tensorToImageBytes(images); // reads the tensor back: the end of the GPU work
  } finally {
    images.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  const grid = makeGrid(bytes, r.n, p.imageSize, p.imageSize, p.imageChannels, { cols: r.perRow, padding: 2 });
  const rgba = toRgba(grid.data, grid.height, grid.width, grid.channels);
  post({ type: 'result', rgba, width: grid.width, height: grid.height, images: r.n, seconds, backend: tf.getBackend(), numTensors: tf.memory().numTensors }, [rgba.buffer]);
}

function isAbort(e: unknown): boolean {
  return (e instanceof Error && e.name === 'AbortError') || (running?.signal.aborted ?? false);
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  switch (m.type) {
    case 'init':
      backendReady = startBackend(m.backend, m.wasmPaths);
      backendReady.catch((e) => post({ type: 'error', phase: 'backend', message: `Backend ${m.backend}: ${messageOf(e)}` }));
      break;
    case 'load':
      load(m.source).catch((e) => post({ type: 'error', phase: 'load', message: messageOf(e) }));
      break;
    case 'generate':
      generate(m.request)
        .catch((e) => post(isAbort(e) ? { type: 'aborted' } : { type: 'error', phase: 'generate', message: messageOf(e) }))
        .finally(() => {
          running = null;
        });
      break;
    case 'abort':
      running?.abort();
      break;
  }
};
