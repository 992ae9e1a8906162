/**
 * End to end through the CLI: `sample --image` on the shipped Colored MNIST
 * unclip pipeline writes one grid row per input image, the input itself in the
 * first cell and --n variations after it; it refuses non-unclip pipelines and
 * a caption-reading decoder without --prompt. (Two sampler steps: the wiring is
 * under test, not the images.)
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadColoredMnist } from '../../src/data/coloredMnist';
import { loadPng, savePng } from '../../src/io/png';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');
const UNCLIP = path.join(ROOT, 'checkpoints', 'colored-mnist-unclip');

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, 'sample', '--backend', 'wasm', ...args], { encoding: 'utf8', cwd: ROOT });
}

describe('sample --image (image variations)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-variations-'));
  const test = loadColoredMnist('test', { seed: 0, limit: 2 }).dataset;
  const side = test.height * test.width * 3;
  const inputs = [0, 1].map((i) => {
    const file = path.join(tmp, `input${i}.png`);
    savePng(file, (test.images as Uint8Array).slice(i * side, (i + 1) * side), test.height, test.width, 3);
    return file;
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes one row per image: the input, then --n variations', () => {
    const out = path.join(tmp, 'grid.png');
    const caption = (test.captions as readonly string[])[0];
    const r = cli(['--pipeline', UNCLIP, '--image', inputs[0], '--image', inputs[1], '--prompt', caption, '--n', '2', '--steps', '2', '--out', out]);
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/2 image\(s\) and 2 variations each \(unclip decoder\), dpm-solver\+\+ 2 steps/);
    const grid = loadPng(out);
    // 3 columns x 2 rows of 32x32 cells, 2-pixel padding: 3 * 34 + 2 by 2 * 34 + 2.
    expect([grid.width, grid.height, grid.channels]).toEqual([104, 70, 3]);
    for (const row of [0, 1]) {
      const src = (test.images as Uint8Array).subarray(row * side, (row + 1) * side);
      let maxDiff = 0;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          for (let c = 0; c < 3; c++) {
            const g = grid.data[((2 + row * 34 + y) * grid.width + (2 + x)) * 3 + c];
            maxDiff = Math.max(maxDiff, Math.abs(g - src[(y * 32 + x) * 3 + c]));
          }
        }
      }
      expect(maxDiff).toBeLessThanOrEqual(1); // the input in the first cell (x / 127.5 - 1 and back)
    }
  });

  it('refuses a caption-reading decoder without --prompt, and pipelines that are not unclip', () => {
    const noPrompt = cli(['--pipeline', UNCLIP, '--image', inputs[0], '--n', '1', '--steps', '2', '--out', path.join(tmp, 'x.png')]);
    expect(noPrompt.status).not.toBe(0);
    expect(noPrompt.stderr).toMatch(/this decoder also reads captions: give --prompt once/);
    const latent = cli(['--pipeline', path.join(ROOT, 'checkpoints', 'mnist-latent'), '--image', inputs[0], '--out', path.join(tmp, 'y.png')]);
    expect(latent.status).not.toBe(0);
    expect(latent.stderr).toMatch(/--image \(image variations\) needs an unclip pipeline; .*mnist-latent is 'latent'/);
    const missing = cli(['--pipeline', UNCLIP, '--image', path.join(tmp, 'nope.png'), '--prompt', 'a red 3 on a navy background', '--out', path.join(tmp, 'z.png')]);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/--image .*nope\.png does not exist/);
  });
});
