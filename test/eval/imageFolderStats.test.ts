/**
 * Image sources and streamed feature statistics (src/eval/imageFolderStats.ts):
 * PNG header sizes, mixed sizes / channels rejected naming the file, streaming in
 * small batches equals the all-at-once computation, kept features, no leaks.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { datasetSource, extractSourceFeatures, imageFolderSource, pngSize, tensorSource } from '../../src/eval/imageFolderStats';
import { gaussianFromFeatures } from '../../src/eval/featureStats';
import { pixelExtractor } from '../../src/eval/features';
import { savePng } from '../../src/io/png';
import { ImageDataset } from '../../src/data/dataset';
import { Rng } from '../../src/backend/random';
import { relativeError, useBackend } from '../helpers';

let dir: string;

beforeAll(async () => {
  await useBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'folderstats-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function writeFolder(name: string, count: number, h: number, w: number, c: number, seed: string): { folder: string; bytes: Uint8Array } {
  const folder = path.join(dir, name);
  fs.mkdirSync(folder, { recursive: true });
  const rng = new Rng(seed);
  const bytes = Uint8Array.from({ length: count * h * w * c }, () => rng.int(256));
  for (let i = 0; i < count; i++) savePng(path.join(folder, `img_${String(i).padStart(3, '0')}.png`), bytes.subarray(i * h * w * c, (i + 1) * h * w * c), h, w, c);
  return { folder, bytes };
}

describe('image sources', () => {
  it('pngSize reads the header; a folder lists *.png in name order; other files are ignored', () => {
    const { folder } = writeFolder('a', 3, 5, 7, 3, 'a');
    fs.writeFileSync(path.join(folder, 'notes.txt'), 'x');
    expect(pngSize(path.join(folder, 'img_000.png'))).toEqual({ height: 5, width: 7, channels: 3 });
    const src = imageFolderSource(folder);
    expect(src.count).toBe(3);
    expect(src.size).toEqual({ height: 5, width: 7, channels: 3 });
    expect(imageFolderSource(folder, { limit: 2 }).count).toBe(2);
    expect(() => pngSize(path.join(folder, 'notes.txt'))).toThrow('not a PNG file');
  });

  it('mixed sizes or channels in one folder are an error naming the file', () => {
    const { folder } = writeFolder('mixed', 2, 8, 8, 1, 'm');
    savePng(path.join(folder, 'z_big.png'), new Uint8Array(16 * 16), 16, 16, 1);
    expect(() => imageFolderSource(folder)).toThrow(
      `image folder ${folder}: z_big.png is 16x16x1 (HxWxC), expected 8x8x1 like img_000.png; all images in a folder must share size and channels`,
    );
    const { folder: f2 } = writeFolder('mixedc', 2, 8, 8, 1, 'c');
    savePng(path.join(f2, 'rgb.png'), new Uint8Array(8 * 8 * 3), 8, 8, 3);
    expect(() => imageFolderSource(f2)).toThrow('rgb.png is 8x8x3 (HxWxC), expected 8x8x1 like img_000.png');
    fs.mkdirSync(path.join(dir, 'empty'));
    expect(() => imageFolderSource(path.join(dir, 'empty'))).toThrow('no *.png files');
  });

  it('streaming in batches of 3 equals statistics of all pixels at once; features kept; no leaks', async () => {
    const n = 10;
    const { folder, bytes } = writeFolder('stream', n, 4, 4, 1, 's');
    const ex = pixelExtractor({ height: 4, width: 4, channels: 1 });
    const before = tf.memory().numTensors;
    const progress: number[] = [];
    const out = await extractSourceFeatures(imageFolderSource(folder), ex, { batchSize: 3, keepFeatures: true, onProgress: (d) => progress.push(d) });
    expect(tf.memory().numTensors).toBe(before);
    expect(progress).toEqual([3, 6, 9, 10]);
    expect(out.count).toBe(n);
    expect(out.preparation).toBe('4x4x1, used as is');
    const all = Float64Array.from(bytes, (b) => b / 127.5 - 1);
    const ref = gaussianFromFeatures(all, n, 16);
    expect(relativeError(out.stats.mean(), ref.mean)).toBeLessThan(1e-6);
    expect(relativeError(out.stats.covariance(), ref.cov)).toBeLessThan(1e-5);
    expect(out.features?.count).toBe(n);
    expect(relativeError(out.features?.data ?? [], Float32Array.from(all))).toBe(0);
  });

  it('dataset and tensor sources give the same statistics as the folder', async () => {
    const n = 6;
    const { folder, bytes } = writeFolder('same', n, 4, 4, 1, 'd');
    const data: ImageDataset = { name: 'toy', split: 'test', images: bytes, count: n, height: 4, width: 4, channels: 1, labels: null, classNames: null, captions: null };
    const ex = pixelExtractor({ height: 4, width: 4, channels: 1 });
    const a = await extractSourceFeatures(imageFolderSource(folder), ex, { batchSize: 4 });
    const b = await extractSourceFeatures(datasetSource(data), ex, { batchSize: 5 });
    const t = tf.tensor4d(Float32Array.from(bytes, (v) => v / 127.5 - 1), [n, 4, 4, 1]);
    const c = await extractSourceFeatures(tensorSource(t, 'samples'), ex, { batchSize: 2 });
    t.dispose();
    expect(b.source).toBe('toy (test)');
    expect(relativeError(b.stats.covariance(), a.stats.covariance())).toBeLessThan(1e-12);
    expect(relativeError(c.stats.covariance(), a.stats.covariance())).toBeLessThan(1e-12);
  });

  it('datasetSource: first N, or a seeded random N (distinct, in index order, reproducible)', async () => {
    const n = 50;
    const images = Uint8Array.from({ length: n * 4 }, (_, k) => Math.floor(k / 4)); // image i is constant i
    const data: ImageDataset = { name: 'idx', split: 'train', images, count: n, height: 2, width: 2, channels: 1, labels: null, classNames: null, captions: null };
    const ex = pixelExtractor({ height: 2, width: 2, channels: 1 });
    const ids = async (src: ReturnType<typeof datasetSource>): Promise<number[]> => {
      const out = await extractSourceFeatures(src, ex, { batchSize: 7, keepFeatures: true });
      const f = out.features?.data ?? new Float32Array();
      return Array.from({ length: out.count }, (_, i) => Math.round((f[i * 4] + 1) * 127.5));
    };
    expect(await ids(datasetSource(data, { limit: 5 }))).toEqual([0, 1, 2, 3, 4]);
    const src = datasetSource(data, { limit: 10, randomSubset: 3 });
    expect(src.name).toBe('idx (train), random 10 of 50 (seed 3)');
    const picked = await ids(src);
    expect(new Set(picked).size).toBe(10);
    expect([...picked].sort((a, b) => a - b)).toEqual(picked);
    expect(picked).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await ids(datasetSource(data, { limit: 10, randomSubset: 3 }))).toEqual(picked);
    expect(await ids(datasetSource(data, { limit: 10, randomSubset: 4 }))).not.toEqual(picked);
  });
});
