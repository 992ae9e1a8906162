/**
 * Times the page: seconds per image of one Generate, as the page measures it
 * in its worker (generate + reading the images back), on each backend, in
 * Debian's headless Chromium. Writes a JSON file the benchmark table reads.
 *
 *   npx tsx src/web/timing.ts --out docs/web-timing.json [--pipeline mnist-latent] [--steps 20] [--n 8] [--repeats 3]
 *
 * webgl here is SwiftShader, a software renderer on the CPU: the rows say so,
 * and they are no measure of a GPU. Each backend first runs one warm-up
 * Generate (wasm instantiation, WebGL shader compilation), reported apart; the
 * figure is the median of the repeats that follow.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startWebServer } from './serve';
import { FormFields, generateInPage, lastRun, launchChromium, loadedPipeline, loadPipelineInPage, openPage, PageBackendName } from './browser';

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
  readonly backend: string;
  /** What ran the backend: webgl in headless Chromium here is SwiftShader on the CPU. */
  readonly device: string;
  readonly pipeline: string;
  readonly design: string;
  readonly sampler: string;
  readonly steps: number;
  readonly n: number;
  /** Median over `repeats` Generates after the warm-up. */
  readonly secondsPerImage: number;
  readonly warmupSecondsPerImage: number;
  readonly repeats: number;
  readonly date: string;
  readonly chromium: string;
  readonly cpu: string;
}

const DEFAULTS: TimingOptions = { out: 'docs/web-timing.json', pipeline: 'mnist-latent', steps: 20, n: 8, repeats: 3, backends: ['wasm', 'webgl'] };
const TIMEOUT_MS = 1_800_000;

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

function firstPrompt(prompts: readonly string[] | undefined, pipeline: string): string {
  if (prompts === undefined || prompts.length === 0) throw new Error(`${pipeline}'s pipeline.json has no defaults.prompts to time with`);
  return prompts[0];
}

async function main(): Promise<void> {
  const o = parseFlags(process.argv.slice(2));
  const built = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-web-'));
  const server = await startWebServer({ port: 0, outDir: built });
  const chromium = await launchChromium();
  const rows: TimingRow[] = [];
  try {
    const page = await openPage(chromium.browser, server.url, (line) => process.stderr.write(`${line}\n`));
    for (const backend of o.backends) {
      const loaded = await loadPipelineInPage(page, { pipeline: o.pipeline, backend, timeoutMs: TIMEOUT_MS });
      if (loaded.error !== null) throw new Error(`loading ${o.pipeline} on ${backend}: ${loaded.error}`);
      const summary = await loadedPipeline(page);
      if (summary === null) throw new Error(`the page loaded no pipeline from ${o.pipeline}`);
      // One grid row: the manifest's first prompt, or class 0.
      const row: FormFields = summary.conditioning === 'text' ? { prompts: firstPrompt(summary.defaults.prompts, o.pipeline) } : { labels: [0] };
      const perImage: number[] = [];
      for (let r = 0; r <= o.repeats; r++) {
        const out = await generateInPage(page, { ...row, n: String(o.n), steps: String(o.steps), seed: String(r) }, TIMEOUT_MS);
        if (out.error !== null) throw new Error(`generating on ${backend}: ${out.error}`);
        const run = await lastRun(page);
        if (run === null || run.backend !== backend) throw new Error(`the page ran on ${run?.backend ?? 'nothing'}, asked for ${backend}`);
        perImage.push(run.seconds / run.images);
        process.stdout.write(`${backend} ${r === 0 ? 'warm-up' : `run ${r}`}: ${(run.seconds / run.images).toFixed(3)} s per image\n`);
      }
      const run = await lastRun(page);
      const reason = ((await page.textContent('#backend-reason')) ?? '').replace(/^\((.*)\)$/, '$1');
      rows.push({
        backend,
        device:
          backend === 'webgl' ? `SwiftShader: software WebGL on the CPU in headless Chromium, not a GPU (${reason})`
          : backend === 'webgpu' ? `WebGPU (${reason})`
          : `CPU (${reason})`,
        pipeline: o.pipeline,
        design: summary.design,
        sampler: run?.sampler ?? '',
        steps: o.steps,
        n: o.n,
        secondsPerImage: Number(median(perImage.slice(1)).toFixed(4)),
        warmupSecondsPerImage: Number(perImage[0].toFixed(4)),
        repeats: o.repeats,
        date: new Date().toISOString(),
        chromium: chromium.version,
        cpu: `${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}`,
      });
    }
  } finally {
    await chromium.close();
    await server.close();
    fs.rmSync(built, { recursive: true, force: true });
  }
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  fs.writeFileSync(o.out, `${JSON.stringify({ command: `npx tsx src/web/timing.ts ${process.argv.slice(2).join(' ')}`.trim(), rows }, null, 2)}\n`);
  process.stdout.write(`wrote ${o.out}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`timing: ${e.message}\n`);
  process.exit(1);
});
