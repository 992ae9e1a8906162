/**
 * Drives the page in Debian's headless Chromium (playwright-core, never a
 * downloaded browser): the browser test, the README screenshot and the page
 * timing all go through these helpers, so they click the same buttons a user
 * does. Node only.
 */
import * as fs from 'fs';
import { chromium, Browser, Page } from 'playwright-core';
import type { PageOutcome, PageProbe, PageRun, PipelineSummary } from './page/protocol';
import { loadPipeline } from '../node/loadPipeline';
import { DecodedImage, makeGrid, tensorToImageBytes } from '../io/image';

export type { PageOutcome, PageRun, PipelineSummary };

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * --enable-unsafe-swiftshader: recent headless Chromium refuses WebGL on the
 * software renderer without it; the rest keep the browser off the network.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--enable-unsafe-swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export interface LaunchedBrowser {
  readonly browser: Browser;
  /** e.g. "Chromium 156.0.8078.114" */
  readonly version: string;
  close(): Promise<void>;
}

/** Launches headless Chromium; playwright gives every launch a fresh temporary profile (user-data-dir) and removes it on close. */
export async function launchChromium(): Promise<LaunchedBrowser> {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's (apt-get install -y chromium) or set CHROMIUM_PATH; this project never downloads a browser`);
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS] });
  return { browser, version: `Chromium ${browser.version()}`, close: () => browser.close() };
}

// ---------------------------------------------------------------- the page

export type PageBackendName = 'webgl' | 'wasm' | 'webgpu';

export interface SampleSettings {
  /** Text pipelines: one per grid row. */
  readonly prompts?: readonly string[];
  /** Class pipelines: class indices, one per grid row. */
  readonly labels?: readonly number[];
  /** Images per prompt / label. */
  readonly n: number;
  readonly sampler: 'ddpm' | 'ddim' | 'dpm-solver++';
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
}

export interface GridPixels {
  readonly width: number;
  readonly height: number;
  /** RGBA, as getImageData returns it. */
  readonly rgba: Uint8Array;
}

// page.evaluate serialises these functions' source, so each reaches the probe through the global by itself.
const PROBE_READY = (): boolean => (globalThis as unknown as { tfjsDiffusionPage?: PageProbe }).tfjsDiffusionPage?.ready === true;
const PROBE_ACTIONS = (): number => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.actions;
const PROBE_OUTCOME = (): PageOutcome => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.outcome();

/** Opens the page and waits until its pipeline list is filled. Page errors and console errors go to `log`. */
export async function openPage(browser: Browser, url: string, log: (line: string) => void = () => undefined): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`console ${m.type()}: ${m.text()}`);
  });
  await page.goto(url);
  await page.waitForFunction(PROBE_READY, undefined, { polling: 100 });
  return page;
}

/** Clicks `selector` and waits until the page finishes the action it starts (PageProbe.actions counts them). */
async function clickAndSettle(page: Page, selector: string, timeoutMs: number): Promise<PageOutcome> {
  const before = await page.evaluate(PROBE_ACTIONS);
  await page.click(selector);
  await page.waitForFunction((n) => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.actions > n, before, { timeout: timeoutMs, polling: 100 });
  return page.evaluate(PROBE_OUTCOME);
}

export async function pageOutcome(page: Page): Promise<PageOutcome> {
  return page.evaluate(PROBE_OUTCOME);
}

/** Picks the backend and a shipped pipeline (or types `url`) and presses Load. */
export async function loadPipelineInPage(
  page: Page, options: { readonly pipeline?: string; readonly url?: string; readonly backend: PageBackendName; readonly timeoutMs: number },
): Promise<PageOutcome> {
  await page.selectOption('#backend', options.backend);
  if (options.pipeline !== undefined) await page.selectOption('#pipeline-select', options.pipeline);
  if (options.url !== undefined) await page.fill('#pipeline-url', options.url);
  return clickAndSettle(page, '#load', options.timeoutMs);
}

/** The sampling fields as typed (raw strings, to try bad input too); a field left out keeps what the page shows. */
export interface FormFields {
  readonly prompts?: string;
  readonly labels?: readonly number[];
  readonly n?: string;
  readonly sampler?: string;
  readonly steps?: string;
  readonly guidance?: string;
  readonly seed?: string;
}

/** Fills the sampling fields and presses Generate. */
export async function generateInPage(page: Page, s: FormFields, timeoutMs: number): Promise<PageOutcome> {
  if (s.prompts !== undefined) await page.fill('#prompts', s.prompts);
  if (s.labels !== undefined) await page.selectOption('#labels', s.labels.map(String));
  if (s.n !== undefined) await page.fill('#n', s.n);
  if (s.sampler !== undefined) await page.selectOption('#sampler', s.sampler);
  if (s.steps !== undefined) await page.fill('#steps', s.steps);
  if (s.guidance !== undefined) await page.fill('#guidance', s.guidance);
  if (s.seed !== undefined) await page.fill('#seed', s.seed);
  return clickAndSettle(page, '#generate', timeoutMs);
}

/** Sampling workers the page has started (PageProbe.workersStarted). */
export async function workersStarted(page: Page): Promise<number> {
  return page.evaluate(() => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.workersStarted);
}

/** The pipeline the page has loaded (PageProbe.pipeline). */
export async function loadedPipeline(page: Page): Promise<PipelineSummary | null> {
  return page.evaluate(() => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.pipeline());
}

/** The page's last drawn Generate (PageProbe.lastRun). */
export async function lastRun(page: Page): Promise<PageRun | null> {
  return page.evaluate(() => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.lastRun());
}

export function settingsFields(s: SampleSettings): FormFields {
  return {
    ...(s.prompts !== undefined ? { prompts: s.prompts.join('\n') } : {}),
    ...(s.labels !== undefined ? { labels: s.labels } : {}),
    n: String(s.n),
    sampler: s.sampler,
    steps: String(s.steps),
    guidance: String(s.guidance),
    seed: String(s.seed),
  };
}

/** The pixels of <canvas id="grid"> as drawn. */
export async function readGrid(page: Page): Promise<GridPixels> {
  const g = await page.evaluate(() => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.grid());
  return { width: g.width, height: g.height, rgba: Uint8Array.from(g.rgba) };
}

/** Picks a folder from disk in the #folder input (the page loads it at once). */
export async function pickFolderInPage(page: Page, dir: string, timeoutMs: number): Promise<PageOutcome> {
  const before = await page.evaluate(PROBE_ACTIONS);
  await page.setInputFiles('#folder', dir);
  await page.waitForFunction((n) => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.actions > n, before, { timeout: timeoutMs, polling: 100 });
  return page.evaluate(PROBE_OUTCOME);
}

/** Presses Generate, waits for the first denoising step, presses Stop and waits until the page has stopped. */
export async function generateThenStop(page: Page, s: FormFields, timeoutMs: number): Promise<PageOutcome> {
  const before = await page.evaluate(PROBE_ACTIONS);
  if (s.steps !== undefined) await page.fill('#steps', s.steps);
  await page.click('#generate');
  await page.locator('#progress-status').filter({ hasText: /step [1-9]/ }).waitFor({ timeout: timeoutMs });
  await page.click('#stop');
  await page.waitForFunction((n) => (globalThis as unknown as { tfjsDiffusionPage: PageProbe }).tfjsDiffusionPage.actions > n, before, { timeout: timeoutMs, polling: 100 });
  return page.evaluate(PROBE_OUTCOME);
}

// ---------------------------------------------------------------- page vs Node

/** One shipped design sampled on the page and in Node with the same settings. */
export interface DesignCase {
  readonly pipeline: string;
  readonly design: string;
  readonly settings: SampleSettings;
}

/**
 * Every shipped design at 4 steps, 2 images, a fixed seed; the three samplers
 * between them (the same cases as test/web/page.test.ts; timing.ts records
 * their page-vs-Node difference).
 */
export const DESIGN_CASES: readonly DesignCase[] = [
  { pipeline: 'mnist-latent', design: 'latent', settings: { prompts: ['a handwritten 3', 'a handwritten 7'], n: 1, sampler: 'dpm-solver++', steps: 4, guidance: 2, seed: 7 } },
  { pipeline: 'colored-mnist-cascade', design: 'cascade', settings: { prompts: ['a red 3 on a navy background'], n: 2, sampler: 'ddim', steps: 4, guidance: 3, seed: 1 } },
  { pipeline: 'colored-mnist-unclip', design: 'unclip', settings: { prompts: ['a red 0 on a black background'], n: 2, sampler: 'dpm-solver++', steps: 4, guidance: 3, seed: 2 } },
  { pipeline: 'mnist-pixel', design: 'pixel', settings: { labels: [3, 8], n: 1, sampler: 'ddpm', steps: 4, guidance: 1.5, seed: 3 } },
];

/** Images one Generate of `s` makes: n per prompt / label (n alone when there are neither). */
export function settingsImageCount(s: SampleSettings): number {
  return (s.prompts?.length ?? s.labels?.length ?? 1) * s.n;
}

/**
 * The `generate` options the page's worker builds from `s`: each prompt / label
 * repeated n times (one grid row each), n = all images. Node code passes these
 * to Pipeline.generate to run the page's job; the grid is makeGrid(..., { cols: s.n, padding: 2 }).
 */
export function pageGenerateOptions(s: SampleSettings): {
  readonly prompts?: readonly string[]; readonly labels?: readonly number[]; readonly n: number;
  readonly seed: number; readonly sampler: SampleSettings['sampler']; readonly steps: number; readonly guidance: number;
} {
  const repeat = <T>(xs: readonly T[]): T[] => xs.flatMap((x) => Array.from({ length: s.n }, () => x));
  return {
    ...(s.prompts !== undefined ? { prompts: repeat(s.prompts) } : {}),
    ...(s.labels !== undefined ? { labels: repeat(s.labels) } : {}),
    n: settingsImageCount(s), seed: s.seed, sampler: s.sampler, steps: s.steps, guidance: s.guidance,
  };
}

/** The grid options the page draws with (src/web/page/worker.ts). */
export function pageGridOptions(s: SampleSettings): { readonly cols: number; readonly padding: number } {
  return { cols: s.n, padding: 2 };
}

/**
 * Max |canvas - Node| per 8-bit channel over R, G, B (a gray Node grid compares
 * with each of R, G, B), and the pixels compared. Throws when the sizes differ
 * or a canvas pixel is not opaque.
 */
export function gridDifference(
  canvas: GridPixels, node: { readonly data: Uint8Array; readonly width: number; readonly height: number; readonly channels: number },
): { readonly maxAbsDiff: number; readonly pixels: number } {
  if (canvas.width !== node.width || canvas.height !== node.height) {
    throw new Error(`the page's grid is ${canvas.width}x${canvas.height}, Node's ${node.width}x${node.height}`);
  }
  let worst = 0;
  for (let i = 0; i < node.width * node.height; i++) {
    for (let k = 0; k < 3; k++) {
      const d = Math.abs(canvas.rgba[4 * i + k] - node.data[i * node.channels + (node.channels === 1 ? 0 : k)]);
      if (d > worst) worst = d;
    }
    if (canvas.rgba[4 * i + 3] !== 255) throw new Error(`canvas pixel ${i} is not opaque (alpha ${canvas.rgba[4 * i + 3]})`);
  }
  return { maxAbsDiff: worst, pixels: node.width * node.height };
}

/** The grid Node makes for `s` from the pipeline folder `dir`: the page's generate options and grid layout, Node's backend. */
export async function nodeGrid(dir: string, s: SampleSettings): Promise<DecodedImage> {
  const p = await loadPipeline(dir);
  try {
    const o = pageGenerateOptions(s);
    const images = await p.generate(o);
    try {
      return makeGrid(await tensorToImageBytes(images), o.n, p.imageSize, p.imageSize, p.imageChannels, pageGridOptions(s));
    } finally {
      images.dispose();
    }
  } finally {
    p.dispose();
  }
}
