/**
 * Drives the page in Debian's headless Chromium (playwright-core, never a
 * downloaded browser): the browser test, the README screenshot and the page
 * timing all go through these helpers, so they click the same buttons a user
 * does. Node only.
 */
import * as fs from 'fs';
import { chromium, Browser, Page } from 'playwright-core';
import type { PageOutcome, PageProbe, PageRun, PipelineSummary } from './page/protocol';

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
