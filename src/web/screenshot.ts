/**
 * Writes the README's screenshot of the page: serves it, opens it in Debian's
 * headless Chromium, loads a shipped pipeline, generates with the manifest's
 * defaults (the page pre-fills them) and saves the page as a PNG.
 *
 *   npx tsx src/web/screenshot.ts --out docs/web-page.png [--pipeline colored-mnist-latent] [--backend wasm] [--n 4] [--seed 0]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startWebServer } from './serve';
import { generateInPage, launchChromium, loadPipelineInPage, openPage, PageBackendName } from './browser';

interface ScreenshotOptions {
  readonly out: string;
  readonly pipeline: string;
  readonly backend: PageBackendName;
  /** Images per prompt. */
  readonly n: number;
  readonly seed: number;
}

const DEFAULTS: ScreenshotOptions = { out: 'docs/web-page.png', pipeline: 'colored-mnist-latent', backend: 'wasm', n: 4, seed: 0 };
const TIMEOUT_MS = 600_000;

function parseFlags(argv: readonly string[]): ScreenshotOptions {
  const o: { -readonly [K in keyof ScreenshotOptions]: ScreenshotOptions[K] } = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--out') o.out = v;
    else if (flag === '--pipeline') o.pipeline = v;
    else if (flag === '--backend') {
      if (v !== 'wasm' && v !== 'webgl' && v !== 'webgpu') throw new Error(`--backend: expected wasm, webgl or webgpu, received '${v}'`);
      o.backend = v;
    } else if (flag === '--n' || flag === '--seed') {
      if (!/^\d+$/.test(v)) throw new Error(`${flag}: expected a whole number, received '${v}'`);
      o[flag === '--n' ? 'n' : 'seed'] = Number(v);
    } else throw new Error(`unknown flag '${flag}': expected --out, --pipeline, --backend, --n, --seed`);
  }
  return o;
}

async function main(): Promise<void> {
  const o = parseFlags(process.argv.slice(2));
  const built = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-web-'));
  const server = await startWebServer({ port: 0, outDir: built });
  const chromium = await launchChromium();
  try {
    const page = await openPage(chromium.browser, server.url, (line) => process.stderr.write(`${line}\n`));
    const loaded = await loadPipelineInPage(page, { pipeline: o.pipeline, backend: o.backend, timeoutMs: TIMEOUT_MS });
    if (loaded.error !== null) throw new Error(`loading ${o.pipeline} in the page: ${loaded.error}`);
    const out = await generateInPage(page, { n: String(o.n), seed: String(o.seed) }, TIMEOUT_MS);
    if (out.error !== null) throw new Error(`generating in the page: ${out.error}`);
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    await page.setViewportSize({ width: 1100, height: 400 }); // fullPage then grows to the content: no blank band below
    await page.screenshot({ path: o.out, fullPage: true });
    process.stdout.write(`wrote ${o.out} (${chromium.version}; ${out.status})\n`);
  } finally {
    await chromium.close();
    await server.close();
    fs.rmSync(built, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`screenshot: ${e.message}\n`);
  process.exit(1);
});
