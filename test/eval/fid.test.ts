/**
 * The `fid` command (src/cli/fid.ts) on two tiny folders of PNGs written here:
 * the printed report (counts, extractor, how each side was resized, FID, KID),
 * its FID against statistics computed here from the decoded pixels, and the
 * mixed-size folder error.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { fidCommand, formatFidReport, openImageSource, runFid } from '../../src/cli/fid';
import { gaussianFromFeatures } from '../../src/eval/featureStats';
import { frechetDistance } from '../../src/eval/frechet';
import { loadPng, savePng } from '../../src/io/png';
import { Rng } from '../../src/backend/random';
import { useBackend } from '../helpers';

let dir: string;
let dirA: string;
let dirB: string;

function writeFolder(name: string, count: number, side: number, seed: string, bias: number): string {
  const folder = path.join(dir, name);
  fs.mkdirSync(folder);
  const rng = new Rng(seed);
  for (let i = 0; i < count; i++) {
    const px = Uint8Array.from({ length: side * side }, () => Math.min(255, bias + rng.int(128)));
    savePng(path.join(folder, `${i}.png`), px, side, side, 1);
  }
  return folder;
}

beforeAll(async () => {
  await useBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fid-cli-'));
  dirA = writeFolder('a', 12, 4, 'a', 0);
  dirB = writeFolder('b', 12, 8, 'b', 100); // another size: resized to A's 4x4 for 'pixels'
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Pixels of a folder in [-1, 1], resized (bilinear, half-pixel) to 4x4, as rows. */
function folderPixels(folder: string): Float64Array {
  const files = fs.readdirSync(folder).sort();
  const rows: number[] = [];
  for (const f of files) {
    const img = loadPng(path.join(folder, f));
    const t = tf.tidy(() => tf.image.resizeBilinear(tf.tensor3d(Float32Array.from(img.data, (v) => v / 127.5 - 1), [img.height, img.width, 1]), [4, 4], false, true));
    rows.push(...t.dataSync());
    t.dispose();
  }
  return Float64Array.from(rows);
}

describe('fid command', () => {
  it('prints counts, extractor, preparation, FID and KID; FID matches statistics computed here', async () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await yargs(['fid', dirA, dirB, '--features', 'pixels', '--backend', 'cpu', '--kid', '--kid-subsets', '3']).command(fidCommand).strict().parseAsync();
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
    // Jest may route console.warn (tfjs's backend hint) through stdout too: start at the report.
    const all = out.join('').split('\n');
    const lines = all.slice(all.findIndex((l) => l.startsWith('features: ')));
    expect(lines[0]).toBe('features: pixels: raw values in [-1, 1] at 4x4x1, 16-d');
    expect(lines[1]).toBe(`A: ${dirA}: 12 images, 4x4x1, used as is`);
    expect(lines[2]).toBe(`B: ${dirB}: 12 images, 8x8x1 -> 4x4x1: bilinear resize to 4x4`);
    expect(lines[3]).toMatch(/^FID: \d+\.\d{4} {2}\(\|mu_A - mu_B\|\^2 = \d+\.\d{4}, covariance term -?\d+\.\d{4}\)$/);
    expect(lines[4]).toMatch(/^KID: \d+\.\d{4} \+- [\d.e+-]+ {2}\(3 subsets of 12, cubic polynomial kernel\)$/);
    expect(lines.some((l) => l.startsWith('note: fewer images than feature dimensions'))).toBe(true);

    const ga = gaussianFromFeatures(folderPixels(dirA), 12, 16);
    const gb = gaussianFromFeatures(folderPixels(dirB), 12, 16);
    const expected = frechetDistance(ga, gb).distance;
    const fid = Number(/^FID: ([\d.]+)/.exec(lines[3])?.[1]);
    expect(Math.abs(fid - expected)).toBeLessThan(1e-4 + 1e-6 * expected);
  });

  it('runFid with --limit; same folder twice gives FID ~0 and KID ~0', async () => {
    const before = tf.memory().numTensors;
    const r = await runFid({ a: dirA, b: dirA, features: 'pixels', kid: true, batchSize: 5, limit: 10, kidSubsets: 2, seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.sides[0].count).toBe(10);
    expect(Math.abs(r.frechet.distance)).toBeLessThan(1e-6);
    expect(formatFidReport(r)).toContain('A: ' + dirA + ': 10 images');
  });

  it('a folder with mixed sizes is an error naming the file; bad dataset sources explain the syntax', async () => {
    const mixed = writeFolder('mixed', 3, 4, 'm', 0);
    savePng(path.join(mixed, 'odd.png'), new Uint8Array(25), 5, 5, 1);
    await expect(runFid({ a: dirA, b: mixed, features: 'pixels', kid: false, batchSize: 10, kidSubsets: 1, seed: 0 })).rejects.toThrow(
      `image folder ${mixed}: odd.png is 5x5x1 (HxWxC), expected 4x4x1 like 0.png`,
    );
    expect(() => openImageSource('dataset:mnist:validation')).toThrow("bad source 'dataset:mnist:validation': expected dataset:<mnist|fashion-mnist|cifar10>[:train|test]");
    expect(openImageSource('noise:4x6x3', { limit: 5 })).toMatchObject({ count: 5, size: { height: 4, width: 6, channels: 3 } });
    expect(() => openImageSource('noise:4x4')).toThrow("bad source 'noise:4x4': expected noise:<H>x<W>x<C> with C = 1 or 3");
    expect(() => openImageSource('noise:4x4x1')).toThrow("source 'noise:4x4x1' needs --limit");
  });
});
