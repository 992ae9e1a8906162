/**
 * Times the page: seconds per image of one Generate, as the page measures it
 * in its worker (generate + reading the images back), on each backend, in
 * Debian's headless Chromium; times the same job in this Node process on the
 * wasm backend (1 thread); and checks, for every shipped design, that the
 * page's grid equals Node's. Writes one JSON file (atomically: a temp file,
 * then a rename) that the README and BENCHMARKS.md quote.
 *
 *   npx tsx src/web/timing.ts --out docs/web-timing.json [--pipeline mnist-latent] [--backends wasm,webgl] [--steps 20] [--n 8] [--repeats 3]
 *
 * The job: --pipeline's manifest first prompt (class pipelines: label 0), n
 * images, --steps, the manifest's default sampler and guidance (else the page
 * form's: dpm-solver++, 2), set explicitly in the page's form and passed to
 * Node's generate alike. Each runtime/backend first runs one warm-up Generate
 * (seed 0: wasm instantiation, WebGL shader compilation), reported apart; the
 * figure is the median of the `repeats` that follow (seeds 1..repeats).
 *
 * Order, so nothing overlaps: the wasm backend is initialised once in Node;
 * Node times the job and makes the four designs' grids; only then is the page
 * built and served and Chromium launched, which times each backend and draws
 * the four designs' grids.
 *
 * webgl here is SwiftShader, a software renderer on the CPU: the rows say so,
 * and they are no measure of a GPU.
 *
 * The file (every row and every equality entry has all its fields, in this order):
 *   command      the command line, exactly: `npx tsx src/web/timing.ts <flags as given>`
 *   rows[]       the Node row first, then one per page backend in --backends order
 *     runtime                'node' | 'chromium'
 *     backend                'wasm' | 'webgl' | 'webgpu' (the node row: 'wasm')
 *     device                 what ran it: 'Node vX.Y.Z, 1 thread (...)', 'CPU (...)', 'SwiftShader: ...'
 *     pipeline, design       the checkpoints/ folder and its design
 *     sampler, steps, guidance
 *     n                      images per Generate (one prompt / label)
 *     seeds                  the Generates' seeds: [warm-up, repeat 1, ...]
 *     secondsPerImage        median over the repeats (4 decimals)
 *     warmupSecondsPerImage  the warm-up Generate (4 decimals)
 *     ratioToNode            secondsPerImage / the node row's (2 decimals; the node row: 1)
 *     repeats
 *     date                   ISO time the row finished
 *     chromium               e.g. 'Chromium 156.0.8078.114'; null on the node row
 *     cpu                    os.cpus()[0].model x count
 *   equality[]   one per shipped design (mnist-latent, colored-mnist-cascade, colored-mnist-unclip, mnist-pixel),
 *                the page's wasm grid vs Node's wasm grid (tensorToImageBytes + makeGrid with the page's options)
 *     pipeline, design, steps, n (images), seed, sampler, guidance
 *     maxAbsDiff             max |page - Node| over the uint8 R, G, B values of the grid
 *     pixels                 grid pixels compared (width x height)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../backend/backend';
import { loadPipeline } from '../node/loadPipeline';
import { DecodedImage, tensorToImageBytes } from '../io/image';
import { writeFileAtomic } from '../io/atomicWrite';
import type { Pipeline } from '../pipelines/loadPipeline';
import { startWebServer } from './serve';
import {
  DESIGN_CASES, generateInPage, gridDifference, lastRun, launchChromium, loadedPipeline, loadPipelineInPage, openPage,
  nodeGrid, PageBackendName, pageGenerateOptions, readGrid, SampleSettings, settingsFields,
} from './browser';

interface TimingOptions {
  readonly out: string;
  readonly pipeline: string;
  readonly steps: number;
  /** Images per Generate (one prompt, n images). */
  readonly n: number;
  readonly repeats: number;
  readonly backends: readonly PageBackendName[];
}

interface TimingRow {
  readonly runtime: 'node' | 'chromium';
  readonly backend: string;
  /** What ran the backend: webgl in headless Chromium here is SwiftShader on the CPU. */
  readonly device: string;
  readonly pipeline: string;
  readonly design: string;
  readonly sampler: string;
  readonly steps: number;
  readonly guidance: number;
  readonly n: number;
  /** [warm-up, repeat 1, ...]. */
  readonly seeds: readonly number[];
  /** Median over `repeats` Generates after the warm-up. */
  readonly secondsPerImage: number;
  readonly warmupSecondsPerImage: number;
  /** secondsPerImage / the node row's; 1 on the node row. */
  readonly ratioToNode: number;
  readonly repeats: number;
  readonly date: string;
  readonly chromium: string | null;
  readonly cpu: string;
}

interface EqualityRow {
  readonly pipeline: string;
  readonly design: string;
  readonly steps: number;
  /** Images in the grid. */
  readonly n: number;
  readonly seed: number;
  readonly sampler: string;
  readonly guidance: number;
  /** Max |page - Node| over the grid's uint8 R, G, B values. */
  readonly maxAbsDiff: number;
  /** Grid pixels compared. */
  readonly pixels: number;
}

const REPO = path.resolve(__dirname, '..', '..');
const DEFAULTS: TimingOptions = { out: 'docs/web-timing.json', pipeline: 'mnist-latent', steps: 20, n: 8, repeats: 3, backends: ['wasm', 'webgl'] };
const TIMEOUT_MS = 1_800_000;
/** The page form's values (index.html) when a manifest has no default. */
const FORM_SAMPLER = 'dpm-solver++';
const FORM_GUIDANCE = 2;
/** page.test.ts's tolerance: a larger difference is reported on stderr (and still recorded). */
const PIXEL_TOLERANCE = 1;

function parseFlags(argv: readonly string[]): TimingOptions {
  const o: { -readonly [K in keyof TimingOptions]: TimingOptions[K] } = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--out') o.out = v;
    else if (flag === '--pipeline') o.pipeline = v;
    else if (flag === '--backends') {
      const list = v.split(',');
      for (const b of list) if (b !== 'wasm' && b !== 'webgl' && b !== 'webgpu') throw new Error(`--backends: expected wasm, webgl, webgpu, received '${b}'`);
      o.backends = list as PageBackendName[];
    } else if (flag === '--steps' || flag === '--n' || flag === '--repeats') {
      const x = /^\d+$/.test(v) ? Number(v) : NaN;
      if (!(x >= 1)) throw new Error(`${flag}: expected a whole number >= 1, received '${v}'`);
      o[flag.slice(2) as 'steps' | 'n' | 'repeats'] = x;
    } else throw new Error(`unknown flag '${flag}': expected --out, --pipeline, --backends, --steps, --n, --repeats`);
  }
  return o;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function round(x: number, decimals: number): number {
  return Number(x.toFixed(decimals));
}

const CPU = `${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}`;

/** The timed job, from the pipeline's manifest: first prompt (class: label 0), default sampler and guidance. */
function timingJob(p: Pipeline, o: TimingOptions, seed: number): SampleSettings {
  const sampler = p.defaults.sampler ?? FORM_SAMPLER;
  const guidance = p.defaults.guidance ?? FORM_GUIDANCE;
  const common = { n: o.n, sampler, steps: o.steps, guidance, seed };
  if (p.conditioning === 'text') {
    const prompts = p.defaults.prompts;
    if (prompts === undefined || prompts.length === 0) throw new Error(`${o.pipeline}'s pipeline.json has no defaults.prompts to time with`);
    return { prompts: [prompts[0]], ...common };
  }
  if (p.conditioning === 'class') return { labels: [0], ...common };
  return common;
}

/** One Generate in Node, measured as the page's worker measures it: generate + reading the images back. */
async function nodeGenerate(p: Pipeline, s: SampleSettings): Promise<{ seconds: number; images: number; bytes: Uint8Array }> {
  const controller = new AbortController();
  const t0 = performance.now();
  const images = await p.generate({ ...pageGenerateOptions(s), signal: controller.signal, onStep: () => undefined });
  let bytes: Uint8Array;
  try {
    bytes = await tensorToImageBytes(images);
  } finally {
    images.dispose();
  }
  return { seconds: (performance.now() - t0) / 1000, images: pageGenerateOptions(s).n, bytes };
}

/** Warm-up (seed 0) then `repeats` Generates (seeds 1..repeats); seconds per image of each. */
async function timeNode(p: Pipeline, o: TimingOptions): Promise<number[]> {
  const perImage: number[] = [];
  for (let r = 0; r <= o.repeats; r++) {
    const run = await nodeGenerate(p, timingJob(p, o, r));
    perImage.push(run.seconds / run.images);
    process.stdout.write(`node wasm ${r === 0 ? 'warm-up' : `run ${r}`}: ${(run.seconds / run.images).toFixed(3)} s per image\n`);
  }
  return perImage;
}


async function main(): Promise<void> {
  const o = parseFlags(process.argv.slice(2));
  const command = `npx tsx src/web/timing.ts ${process.argv.slice(2).join(' ')}`.trim();
  const seeds = Array.from({ length: o.repeats + 1 }, (_, r) => r);

  // ---- Node, before anything of the browser exists: the wasm backend once, for both parts.
  const info = await initBackend('wasm', { threads: 1 });
  if (info.tfBackend !== 'wasm' || info.threads !== 1) throw new Error(`Node backend: expected wasm with 1 thread, got ${info.tfBackend} (${info.threads} threads)`);
  const timed = await loadPipeline(path.join(REPO, 'checkpoints', o.pipeline));
  let nodeRow: TimingRow;
  let job: SampleSettings;
  try {
    job = timingJob(timed, o, 0);
    const perImage = await timeNode(timed, o);
    nodeRow = {
      runtime: 'node',
      backend: 'wasm',
      device: `Node ${process.version}, 1 thread (${info.reason})`,
      pipeline: o.pipeline,
      design: timed.design,
      sampler: job.sampler,
      steps: o.steps,
      guidance: job.guidance,
      n: o.n,
      seeds,
      secondsPerImage: round(median(perImage.slice(1)), 4),
      warmupSecondsPerImage: round(perImage[0], 4),
      ratioToNode: 1,
      repeats: o.repeats,
      date: new Date().toISOString(),
      chromium: null,
      cpu: CPU,
    };
  } finally {
    timed.dispose();
  }
  const nodeGrids: DecodedImage[] = [];
  for (const c of DESIGN_CASES) {
    nodeGrids.push(await nodeGrid(path.join(REPO, 'checkpoints', c.pipeline), c.settings));
    process.stdout.write(`node wasm grid: ${c.pipeline}\n`);
  }

  // ---- The page in Chromium.
  const built = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-web-'));
  const server = await startWebServer({ port: 0, outDir: built });
  const chromium = await launchChromium();
  const rows: TimingRow[] = [nodeRow];
  const equality: EqualityRow[] = [];
  try {
    const page = await openPage(chromium.browser, server.url, (line) => process.stderr.write(`${line}\n`));
    for (const backend of o.backends) {
      const loaded = await loadPipelineInPage(page, { pipeline: o.pipeline, backend, timeoutMs: TIMEOUT_MS });
      if (loaded.error !== null) throw new Error(`loading ${o.pipeline} on ${backend}: ${loaded.error}`);
      const summary = await loadedPipeline(page);
      if (summary === null) throw new Error(`the page loaded no pipeline from ${o.pipeline}`);
      if (summary.design !== nodeRow.design) throw new Error(`the page loaded a ${summary.design} pipeline, Node a ${nodeRow.design}`);
      if ((summary.conditioning === 'text') !== (job.prompts !== undefined)) throw new Error(`the page loaded a ${summary.conditioning}-conditional pipeline, unlike Node's`);
      const perImage: number[] = [];
      for (const seed of seeds) {
        // Node's job, seed for seed.
        const out = await generateInPage(page, settingsFields({ ...job, seed }), TIMEOUT_MS);
        if (out.error !== null) throw new Error(`generating on ${backend}: ${out.error}`);
        const run = await lastRun(page);
        if (run === null || run.backend !== backend) throw new Error(`the page ran on ${run?.backend ?? 'nothing'}, asked for ${backend}`);
        if (run.sampler !== job.sampler || run.steps !== job.steps || run.images !== o.n) {
          throw new Error(`the page ran ${run.images} images, ${run.sampler}, ${run.steps} steps; asked for ${o.n}, ${job.sampler}, ${job.steps}`);
        }
        perImage.push(run.seconds / run.images);
        process.stdout.write(`${backend} ${seed === 0 ? 'warm-up' : `run ${seed}`}: ${(run.seconds / run.images).toFixed(3)} s per image\n`);
      }
      const reason = ((await page.textContent('#backend-reason')) ?? '').replace(/^\((.*)\)$/, '$1');
      const secondsPerImage = round(median(perImage.slice(1)), 4);
      rows.push({
        runtime: 'chromium',
        backend,
        device:
          backend === 'webgl' ? `SwiftShader: software WebGL on the CPU in headless Chromium, not a GPU (${reason})`
          : backend === 'webgpu' ? `WebGPU (${reason})`
          : `CPU (${reason})`,
        pipeline: o.pipeline,
        design: summary.design,
        sampler: nodeRow.sampler,
        steps: o.steps,
        guidance: nodeRow.guidance,
        n: o.n,
        seeds,
        secondsPerImage,
        warmupSecondsPerImage: round(perImage[0], 4),
        ratioToNode: round(secondsPerImage / nodeRow.secondsPerImage, 2),
        repeats: o.repeats,
        date: new Date().toISOString(),
        chromium: chromium.version,
        cpu: CPU,
      });
    }

    for (const [i, c] of DESIGN_CASES.entries()) {
      const loaded = await loadPipelineInPage(page, { pipeline: c.pipeline, backend: 'wasm', timeoutMs: TIMEOUT_MS });
      if (loaded.error !== null) throw new Error(`loading ${c.pipeline} on wasm: ${loaded.error}`);
      const out = await generateInPage(page, settingsFields(c.settings), TIMEOUT_MS);
      if (out.error !== null) throw new Error(`generating ${c.pipeline} on wasm: ${out.error}`);
      if (out.backendUsed !== 'wasm') throw new Error(`the page ran ${c.pipeline} on ${out.backendUsed}, asked for wasm`);
      const d = gridDifference(await readGrid(page), nodeGrids[i]);
      const s = c.settings;
      equality.push({
        pipeline: c.pipeline, design: c.design, steps: s.steps, n: pageGenerateOptions(s).n, seed: s.seed, sampler: s.sampler, guidance: s.guidance,
        maxAbsDiff: d.maxAbsDiff, pixels: d.pixels,
      });
      process.stdout.write(`page vs Node, ${c.pipeline}: max |difference| ${d.maxAbsDiff} levels over ${d.pixels} pixels\n`);
      if (d.maxAbsDiff > PIXEL_TOLERANCE) process.stderr.write(`timing: ${c.pipeline}: the page's grid differs from Node's by ${d.maxAbsDiff} levels (> ${PIXEL_TOLERANCE})\n`);
    }
  } finally {
    await chromium.close();
    await server.close();
    fs.rmSync(built, { recursive: true, force: true });
  }
  const target = path.resolve(o.out);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  await writeFileAtomic(target, `${JSON.stringify({ command, rows, equality }, null, 2)}\n`);
  process.stdout.write(`wrote ${o.out}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`timing: ${e.message}\n`);
  process.exit(1);
});
