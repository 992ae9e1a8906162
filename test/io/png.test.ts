import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { useBackend } from '../helpers';
import { savePng, loadPng, encodePng, decodePng, loadPngTensor, saveImageGrid, saveImages } from '../../src/io/png';
import { tensorToImageBytes, makeGrid } from '../../src/io/image';

/** PNG colour type, byte 25 of the file (IHDR: signature 8 + length 4 + 'IHDR' 4 + w 4 + h 4 + depth 1). */
const colorTypeOf = (bytes: Uint8Array): number => bytes[25];

describe('png', () => {
  let dir: string;
  beforeAll(async () => {
    await useBackend();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'png-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips grayscale and RGB pixels exactly', () => {
    const gray = Uint8Array.from({ length: 3 * 5 }, (_, i) => (i * 17) % 256);
    const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (i * 37 + 3) % 256);
    savePng(path.join(dir, 'g.png'), gray, 3, 5, 1);
    savePng(path.join(dir, 'c.png'), rgb, 4, 2, 3);
    const g = loadPng(path.join(dir, 'g.png'));
    expect([g.height, g.width, g.channels]).toEqual([3, 5, 1]);
    expect(Array.from(g.data)).toEqual(Array.from(gray));
    const c = loadPng(path.join(dir, 'c.png'));
    expect([c.height, c.width, c.channels]).toEqual([4, 2, 3]);
    expect(Array.from(c.data)).toEqual(Array.from(rgb));
    expect(colorTypeOf(fs.readFileSync(path.join(dir, 'g.png')))).toBe(0); // grayscale
    expect(colorTypeOf(fs.readFileSync(path.join(dir, 'c.png')))).toBe(2); // RGB
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]); // atomic write cleaned up
  });

  it('drops alpha: RGBA gives 3 channels, gray+alpha gives 1', () => {
    const rgba = new PNG({ width: 2, height: 1 });
    rgba.data = Buffer.from([10, 20, 30, 0, 40, 50, 60, 255]);
    const rgbaBytes = PNG.sync.write(rgba, { colorType: 6 });
    const a = decodePng(rgbaBytes);
    expect([a.channels, ...a.data]).toEqual([3, 10, 20, 30, 40, 50, 60]);
    const ga = new PNG({ width: 2, height: 1 });
    ga.data = Buffer.from([7, 7, 7, 100, 9, 9, 9, 200]);
    const b = decodePng(PNG.sync.write(ga, { colorType: 4 }));
    expect([b.channels, ...b.data]).toEqual([1, 7, 9]);
  });

  it('rejects bad sizes and undecodable bytes', () => {
    expect(() => encodePng(new Uint8Array(5), 2, 2, 1)).toThrow(/5 bytes for 2x2x1, expected 4/);
    expect(() => encodePng(new Uint8Array(8), 2, 2, 2)).toThrow(/channels must be 1 or 3, received 2/);
    expect(() => decodePng(Uint8Array.from([1, 2, 3]), 'junk.png')).toThrow(/PNG junk\.png: cannot decode/);
  });

  it('converts [-1, 1] tensors to bytes with rounding and clipping', async () => {
    const before = tf.memory().numTensors;
    // (x + 1) * 127.5: -1 -> 0, -0.999 -> 0.1275 -> 0, 0 -> 127.5 -> 128 (half to even), 0.5 -> 191.25 -> 191,
    // 0.99 -> 253.725 -> 254, 1 -> 255, 2 -> 382.5 clipped 255, -3 -> -255 clipped 0
    const x = tf.tensor3d([-1, -0.999, 0, 0.5, 0.99, 1, 2, -3], [2, 4, 1]);
    expect(Array.from(await tensorToImageBytes(x))).toEqual([0, 0, 128, 191, 254, 255, 255, 0]);
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loads a PNG as a tensor in [-1, 1]', async () => {
    savePng(path.join(dir, 't.png'), Uint8Array.from([0, 51, 255, 127.5 * 2 - 1]), 2, 2, 1);
    const before = tf.memory().numTensors;
    const t = loadPngTensor(path.join(dir, 't.png'));
    expect(t.shape).toEqual([2, 2, 1]);
    const v = await t.data();
    [-1, 51 / 127.5 - 1, 1, 254 / 127.5 - 1].forEach((e, i) => expect(v[i]).toBeCloseTo(e, 6));
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lays out a grid row-major with padding around every cell', () => {
    // 3 images of 2x2x1 with values 10, 20, 30; cols 2, padding 1 -> 2 rows, grid 7x7.
    const px = Uint8Array.from([10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30]);
    const g = makeGrid(px, 3, 2, 2, 1, { cols: 2, padding: 1, padValue: 255 });
    expect([g.height, g.width, g.channels]).toEqual([7, 7, 1]);
    const rows: string[] = [];
    for (let y = 0; y < 7; y++) rows.push(Array.from(g.data.subarray(y * 7, y * 7 + 7), (v) => ({ 10: 'a', 20: 'b', 30: 'c', 255: '.' })[v] ?? '?').join(''));
    expect(rows).toEqual([
      '.......',
      '.aa.bb.',
      '.aa.bb.',
      '.......',
      '.cc....',
      '.cc....',
      '.......',
    ]);
    expect(makeGrid(px, 3, 2, 2, 1).width).toBe(2 * 4 + 2); // default cols ceil(sqrt(3)) = 2, padding 2
  });

  it('saves a grid and individual images from a [-1, 1] batch without leaking', async () => {
    const before = tf.memory().numTensors;
    const images = tf.tidy(() => tf.linspace(-1, 1, 4 * 3 * 2 * 3).reshape([4, 3, 2, 3]) as tf.Tensor4D);
    const gray = tf.zeros([2, 3, 3, 1]) as tf.Tensor4D;
    const grid = await saveImageGrid(path.join(dir, 'grid.png'), images, { cols: 3, padding: 1 });
    const loaded = loadPng(path.join(dir, 'grid.png'));
    expect([loaded.height, loaded.width, loaded.channels]).toEqual([2 * 4 + 1, 3 * 3 + 1, 3]);
    expect(Array.from(loaded.data)).toEqual(Array.from(grid.data));
    const bytes = await tensorToImageBytes(images);
    // Image 3 (row 1, col 0) starts at (y, x) = (1 + 4, 1): its first pixel.
    const off = ((5 * 10) + 1) * 3;
    expect(Array.from(loaded.data.subarray(off, off + 3))).toEqual(Array.from(bytes.subarray(3 * 18, 3 * 18 + 3)));
    await saveImageGrid(path.join(dir, 'gray.png'), gray);
    expect(colorTypeOf(fs.readFileSync(path.join(dir, 'gray.png')))).toBe(0);
    expect(loadPng(path.join(dir, 'gray.png')).channels).toBe(1);
    const paths = await saveImages(path.join(dir, 'each'), images, 'sample_');
    expect(paths.map((p) => path.basename(p))).toEqual(['sample_0000.png', 'sample_0001.png', 'sample_0002.png', 'sample_0003.png']);
    expect(Array.from(loadPng(paths[2]).data)).toEqual(Array.from(bytes.subarray(2 * 18, 3 * 18)));
    images.dispose();
    gray.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
