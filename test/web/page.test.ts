/**
 * The page in a real browser: Debian's headless Chromium (/usr/bin/chromium,
 * driven by playwright-core; never a downloaded browser) against the page
 * `npm run web` serves.
 *
 * For every design (latent, cascade, unclip, and mnist-pixel by label) on the
 * wasm backend at 4 steps, the grid the page draws equals the grid Node makes
 * from the same pipeline folder, prompts / labels, n, seed, sampler, steps and
 * guidance (Node wasm backend, tensorToImageBytes + makeGrid with the page's
 * options), to PIXEL_TOLERANCE levels. One design also runs on webgl
 * (SwiftShader): not blank, and the page says webgl ran. Then bad input: each
 * shows a message naming the field in #error.
 *
 * The screenshot of the last wasm grid goes to artifacts/web-page.png (ignored by git).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { Page } from 'playwright-core';
import { initBackend } from '../../src/backend/backend';
import { startWebServer, WebServer } from '../../src/web/serve';
import {
  CHROMIUM_PATH, DESIGN_CASES as CASES, generateInPage, generateThenStop, gridDifference, GridPixels, lastRun, launchChromium, LaunchedBrowser,
  loadPipelineInPage, nodeGrid, openPage, pickFolderInPage, readGrid, settingsFields, settingsImageCount as imageCount, workersStarted,
} from '../../src/web/browser';

const REPO = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(REPO, 'artifacts');

/**
 * Max |page - Node| per 8-bit channel over the whole grid. Measured 2026-12-03
 * (Chromium 156, tfjs 4.22, single-thread SIMD wasm in both): 0 on every design.
 * Same wasm binary, same float32 kernels, seeded noise drawn in JS (float64 Alea):
 * the page and Node run the same arithmetic. 1 level leaves room for a libm
 * difference in Math.exp/Math.log between V8 builds without hiding a real bug
 * (a wrong seed, prompt order or layout moves pixels by tens of levels).
 */
const PIXEL_TOLERANCE = 1;

/** Each image must use at least this much of the 0..255 range: a blank (or constant) image fails. */
const MIN_IMAGE_RANGE = 32;

/** Waits: the machine may be loaded (idle: load ~1 s, generate 1-5 s on wasm, webgl shader compilation ~10-20 s). */
const LOAD_TIMEOUT = 60_000;
const GENERATE_TIMEOUT = 180_000;

/** max - min of each grid cell's pixels (cells laid out as makeGrid does: padding 2, cols = n, square images). */
function cellRanges(g: GridPixels, count: number, cols: number): number[] {
  const size = (g.width - 2) / cols - 2;
  const ranges: number[] = [];
  for (let b = 0; b < count; b++) {
    const y0 = 2 + Math.floor(b / cols) * (size + 2);
    const x0 = 2 + (b % cols) * (size + 2);
    let lo = 255;
    let hi = 0;
    for (let y = y0; y < y0 + size; y++) {
      for (let x = x0; x < x0 + size; x++) {
        for (let k = 0; k < 3; k++) {
          const v = g.rgba[4 * (y * g.width + x) + k];
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    ranges.push(hi - lo);
  }
  return ranges;
}


// ---------------------------------------------------------------- the test

describe('the page in headless Chromium', () => {
  let server: WebServer | null = null;
  const built = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-web-'));
  let chromium: LaunchedBrowser | null = null;
  let page: Page;
  const pageLog: string[] = [];
  /** Node's grid per pipeline, for the folder test. */
  const nodeGrids = new Map<string, Awaited<ReturnType<typeof nodeGrid>>>();

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM_PATH)) {
      throw new Error(`test/web needs Debian's chromium at ${CHROMIUM_PATH} (apt-get install -y chromium; .ci/run installs it)`);
    }
    await initBackend('wasm'); // the Node reference: single-thread SIMD wasm, as the page's worker
    server = await startWebServer({ port: 0, outDir: built });
    chromium = await launchChromium();
    page = await openPage(chromium.browser, server.url, (line) => pageLog.push(line));
  }, 120_000);

  afterAll(async () => {
    await chromium?.close();
    await server?.close();
    fs.rmSync(built, { recursive: true, force: true });
  });

  for (const c of CASES) {
    test(`${c.design} (${c.pipeline}) on wasm: the page's grid equals Node's`, async () => {
      const before = tf.memory().numTensors;
      const expected = await nodeGrid(path.join(REPO, 'checkpoints', c.pipeline), c.settings);
      expect(tf.memory().numTensors).toBe(before);
      nodeGrids.set(c.pipeline, expected);

      const loaded = await loadPipelineInPage(page, { pipeline: c.pipeline, backend: 'wasm', timeoutMs: LOAD_TIMEOUT });
      expect(loaded.error).toBeNull();
      const out = await generateInPage(page, settingsFields(c.settings), GENERATE_TIMEOUT);
      expect(out.error).toBeNull();
      expect(out.backendUsed).toBe('wasm');
      expect(out.status).toMatch(/s per image on wasm/);

      const grid = await readGrid(page);
      for (const r of cellRanges(grid, imageCount(c.settings), c.settings.n)) expect(r).toBeGreaterThanOrEqual(MIN_IMAGE_RANGE);
      const diff = gridDifference(grid, expected).maxAbsDiff;
      process.stdout.write(`web page vs Node, ${c.pipeline}: max |difference| ${diff} levels\n`);
      expect(diff).toBeLessThanOrEqual(PIXEL_TOLERANCE);
      expect(pageLog.filter((l) => l.startsWith('page error'))).toEqual([]);
      if (c === CASES[CASES.length - 1]) {
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, 'web-page.png'), fullPage: true });
      }
    }, GENERATE_TIMEOUT + LOAD_TIMEOUT + 60_000);
  }

  test('a folder picked from disk samples as its URL does', async () => {
    const c = CASES[CASES.length - 1];
    const expected = nodeGrids.get(c.pipeline);
    if (expected === undefined) throw new Error(`needs the ${c.pipeline} test's Node grid (it runs first)`);
    await page.selectOption('#backend', 'wasm');
    const loaded = await pickFolderInPage(page, path.join(REPO, 'checkpoints', c.pipeline), LOAD_TIMEOUT);
    expect(loaded.error).toBeNull();
    const out = await generateInPage(page, settingsFields(c.settings), GENERATE_TIMEOUT);
    expect(out.error).toBeNull();
    expect(gridDifference(await readGrid(page), expected).maxAbsDiff).toBeLessThanOrEqual(PIXEL_TOLERANCE);
  }, GENERATE_TIMEOUT + LOAD_TIMEOUT);

  test('webgl (SwiftShader): switching the backend reloads the pipeline; the grid is drawn and the page says webgl ran', async () => {
    const c = CASES[0];
    const loaded = await loadPipelineInPage(page, { pipeline: c.pipeline, backend: 'wasm', timeoutMs: LOAD_TIMEOUT });
    expect(loaded.error).toBeNull();
    await page.selectOption('#backend', 'webgl'); // no Load: Generate starts a webgl worker and reloads the pipeline into it
    const out = await generateInPage(page, settingsFields(c.settings), GENERATE_TIMEOUT);
    expect(out.error).toBeNull();
    expect(out.backendUsed).toBe('webgl');
    const grid = await readGrid(page);
    for (const r of cellRanges(grid, imageCount(c.settings), c.settings.n)) expect(r).toBeGreaterThanOrEqual(MIN_IMAGE_RANGE);
  }, GENERATE_TIMEOUT + LOAD_TIMEOUT);

  test('Stop aborts a long run through the AbortSignal, leaking no tensor; the next Generate still works', async () => {
    const c = CASES[0];
    const loaded = await loadPipelineInPage(page, { pipeline: c.pipeline, backend: 'wasm', timeoutMs: LOAD_TIMEOUT });
    expect(loaded.error).toBeNull();
    expect((await generateInPage(page, settingsFields(c.settings), GENERATE_TIMEOUT)).error).toBeNull();
    const tensorsBefore = (await lastRun(page))?.numTensors;
    const workers = await workersStarted(page);
    const stopped = await generateThenStop(page, { ...settingsFields(c.settings), steps: '1000' }, GENERATE_TIMEOUT);
    expect(stopped.error).toBeNull();
    expect(stopped.status).toBe('Stopped.');
    // generate saw the AbortSignal between steps: the page did not have to replace the worker.
    expect(await workersStarted(page)).toBe(workers);
    const again = await generateInPage(page, settingsFields(c.settings), GENERATE_TIMEOUT);
    expect(again.error).toBeNull();
    expect(again.status).toMatch(/s per image on wasm/);
    expect((await lastRun(page))?.numTensors).toBe(tensorsBefore);
  }, 2 * GENERATE_TIMEOUT + LOAD_TIMEOUT);

  test('bad input shows a message naming the field in #error', async () => {
    const c = CASES[0];
    const good = settingsFields(c.settings);
    const loaded = await loadPipelineInPage(page, { pipeline: c.pipeline, backend: 'wasm', timeoutMs: LOAD_TIMEOUT });
    expect(loaded.error).toBeNull();

    const tries: Array<[string, Partial<typeof good>, RegExp]> = [
      ['empty prompt', { prompts: ' \n  \n' }, /^Prompts: /],
      ['steps 0', { steps: '0' }, /^Steps: .*'0'/],
      ['steps 1001', { steps: '1001' }, /^Steps: .*1\.\.1000/],
      ['steps 2.5', { steps: '2.5' }, /^Steps: /],
      ['seed abc', { seed: 'abc' }, /^Seed: .*'abc'/],
      ['guidance 51', { guidance: '51' }, /^Guidance: .*\[0, 50\]/],
      ['guidance NaN', { guidance: 'lots' }, /^Guidance: /],
      ['images per prompt 0', { n: '0' }, /^Images per prompt: /],
    ];
    for (const [what, change, message] of tries) {
      const out = await generateInPage(page, { ...good, ...change }, GENERATE_TIMEOUT);
      expect({ what, error: out.error }).toEqual({ what, error: expect.stringMatching(message) });
    }

    const missing = await loadPipelineInPage(page, { url: '/checkpoints/no-such-pipeline/', backend: 'wasm', timeoutMs: LOAD_TIMEOUT });
    expect(missing.error).toMatch(/^Load \/checkpoints\/no-such-pipeline\/: .*404/);

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-web-bad-'));
    try {
      const noManifest = path.join(tmp, 'not-a-pipeline');
      fs.mkdirSync(noManifest);
      fs.writeFileSync(path.join(noManifest, 'notes.txt'), 'no pipeline.json here\n');
      expect((await pickFolderInPage(page, noManifest, LOAD_TIMEOUT)).error).toMatch(/^Folder: not-a-pipeline\/ has no pipeline\.json/);

      const corrupt = path.join(tmp, 'corrupt-pipeline');
      fs.mkdirSync(corrupt);
      fs.copyFileSync(path.join(REPO, 'checkpoints', 'mnist-pixel', 'pipeline.json'), path.join(corrupt, 'pipeline.json'));
      fs.writeFileSync(path.join(corrupt, 'unet.safetensors'), Buffer.from('this is not a safetensors file'));
      expect((await pickFolderInPage(page, corrupt, LOAD_TIMEOUT)).error).toMatch(/^Load folder corrupt-pipeline\/: .*unet\.safetensors/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    expect(pageLog.filter((l) => l.startsWith('page error'))).toEqual([]);
  }, 5 * LOAD_TIMEOUT + GENERATE_TIMEOUT);
});
