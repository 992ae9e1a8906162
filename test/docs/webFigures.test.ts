/**
 * The web page's figures in README.md and BENCHMARKS.md are read from the file the
 * command beside them wrote (docs/web-timing.json, `npx tsx src/web/timing.ts`):
 * this test recomputes each quoted cell from the file, rounded as the text rounds it.
 */
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const read = (f: string): string => fs.readFileSync(path.join(ROOT, f), 'utf8');

interface Row { runtime: string; backend: string; secondsPerImage: number; warmupSecondsPerImage: number; ratioToNode: number; guidance: number; n: number; repeats: number }
interface Equality { pipeline: string; design: string; maxAbsDiff: number }
const timing = JSON.parse(read('docs/web-timing.json')) as { command: string; rows: Row[]; equality: Equality[] };

const row = (runtime: string, backend: string): Row => {
  const r = timing.rows.find((x) => x.runtime === runtime && x.backend === backend);
  if (r === undefined) throw new Error(`docs/web-timing.json has no ${runtime} ${backend} row`);
  return r;
};
const f2 = (x: number): string => x.toFixed(2);

describe('web page figures', () => {
  const node = row('node', 'wasm');
  const wasm = row('chromium', 'wasm');
  const webgl = row('chromium', 'webgl');

  it('the file holds the page-vs-Node equality of every design, within the browser test tolerance', () => {
    expect(timing.equality.map((e) => e.design).sort()).toEqual(['cascade', 'latent', 'pixel', 'unclip']);
    for (const e of timing.equality) expect(e.maxAbsDiff).toBeLessThanOrEqual(1);
  });

  it('README quotes the file: command, worst difference, time per image and ratios', () => {
    const readme = read('README.md');
    expect(readme).toContain(`one run of \`${timing.command}\``);
    expect(readme).toContain(`the largest\ndifference measured was ${Math.max(...timing.equality.map((e) => e.maxAbsDiff))} levels of 255`);
    expect(readme).toContain(`| Node (library, 1 thread) | wasm | ${f2(node.secondsPerImage)} | 1 |`);
    expect(readme).toContain(`| Chromium page (Web Worker) | wasm (SIMD, 1 thread) | ${f2(wasm.secondsPerImage)} | ${f2(wasm.ratioToNode)} |`);
    expect(readme).toContain(`| Chromium page (Web Worker) | webgl: SwiftShader, software on the CPU, not a GPU | ${f2(webgl.secondsPerImage)} | ${f2(webgl.ratioToNode)} |`);
    expect(readme).toContain(`median of ${node.repeats} after a warm-up`);
    expect(fs.existsSync(path.join(ROOT, 'docs', 'web-page.png'))).toBe(true);
  });

  it('BENCHMARKS.md quotes the file, warm-ups included', () => {
    const bench = read('BENCHMARKS.md');
    expect(bench).toContain(`\`${timing.command}\``);
    expect(bench).toContain(`| Node, 1 thread | wasm | ${f2(node.secondsPerImage)} | ${f2(node.warmupSecondsPerImage)} | 1 |`);
    expect(bench).toContain(`| Chromium page | wasm (SIMD, 1 thread) | ${f2(wasm.secondsPerImage)} | ${f2(wasm.warmupSecondsPerImage)} | ${f2(wasm.ratioToNode)} |`);
    expect(bench).toContain(`| Chromium page | webgl (SwiftShader) | ${f2(webgl.secondsPerImage)} | ${f2(webgl.warmupSecondsPerImage)} | ${f2(webgl.ratioToNode)} |`);
  });
});
