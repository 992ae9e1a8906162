/**
 * downsampleDataset (src/data/resize.ts): centre-pad with black, f x f block
 * means rounded to uint8, labels / captions kept; checked against hand
 * computations and against tf.avgPool of the padded batches the SR stage sees.
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend, tinyTwoClassDataset } from '../helpers';
import { downsampleDataset } from '../../src/data/resize';
import { ImageDataset } from '../../src/data/dataset';
import { fixedBatch } from '../../src/data/batches';

beforeAll(async () => useBackend('cpu'));

function dataset(images: number[], h: number, w: number, c: number, count: number): ImageDataset {
  return {
    name: 'toy', split: 'train', images: Uint8Array.from(images), count, height: h, width: w, channels: c,
    labels: Int32Array.from({ length: count }, (_, i) => i % 2), classNames: ['a', 'b'], captions: Array.from({ length: count }, (_, i) => `caption ${i}`),
  };
}

describe('downsampleDataset', () => {
  it('pads 3x3 to 4x4 (the odd pixel of padding goes bottom / right) and averages 2x2 blocks, rounding half up', () => {
    // padded: [[10 20 30 0] [40 50 61 0] [70 80 91 0] [0 0 0 0]]
    // blocks: (10+20+40+50)/4 = 30, (30+61)/4 = 22.75 -> 23, (70+80)/4 = 37.5 -> 38, 91/4 = 22.75 -> 23
    const d = dataset([10, 20, 30, 40, 50, 61, 70, 80, 91], 3, 3, 1, 1);
    const s = downsampleDataset(d, { padTo: 4, factor: 2 });
    expect([s.name, s.height, s.width, s.channels, s.count]).toEqual(['toy-2x2', 2, 2, 1, 1]);
    expect(Array.from(s.images)).toEqual([30, 23, 38, 23]);
  });

  it('centres a 2x2 image in 4x4: each block holds one pixel (value / 4); channels are averaged separately', () => {
    // RGB 2x2 image: pixel (y, x) = [100 + 10y + x, 4, 255]
    const px = [100, 4, 255, 101, 4, 255, 110, 4, 255, 111, 4, 255];
    const s = downsampleDataset(dataset(px, 2, 2, 3, 1), { padTo: 4, factor: 2 });
    expect(Array.from(s.images)).toEqual([25, 1, 64, 25, 1, 64, 28, 1, 64, 28, 1, 64]); // 100/4 = 25, 101/4 = 25.25, 110/4 = 27.5 -> 28, 111/4 = 27.75, 255/4 = 63.75
  });

  it('without padTo averages the image as it is; keeps labels and captions; images are independent', () => {
    const a = [0, 4, 8, 12];
    const b = [255, 255, 254, 254];
    const s = downsampleDataset(dataset([...a, ...b], 2, 2, 1, 2), { factor: 2 });
    expect(Array.from(s.images)).toEqual([6, 255]); // 24/4; 1018/4 = 254.5 -> 255
    expect(Array.from(s.labels as Int32Array)).toEqual([0, 1]);
    expect(s.captions).toEqual(['caption 0', 'caption 1']);
    expect(s.classNames).toEqual(['a', 'b']);
  });

  it('equals avgPool of the padded [-1, 1] batches (what the SR stage is conditioned on) to the uint8 rounding', () => {
    const d = { ...tinyTwoClassDataset(3, 5), height: 8, width: 8 };
    const s = downsampleDataset(d, { padTo: 12, factor: 3 });
    expect([s.height, s.width]).toEqual([4, 4]);
    const big = fixedBatch(d, [0, 1, 2], { padTo: 12 });
    const small = fixedBatch(s, [0, 1, 2]);
    const pooled = tf.avgPool(big.x, 3, 3, 'valid');
    const diff = tf.max(tf.abs(tf.sub(pooled, small.x))).dataSync()[0];
    expect(diff).toBeLessThanOrEqual(0.5 / 127.5 + 1e-6);
    expect(diff).toBeGreaterThan(0); // rounding happened somewhere: the comparison is not vacuous
    tf.dispose([big.x, small.x, pooled, ...(big.labels ? [big.labels] : []), ...(small.labels ? [small.labels] : [])]);
  });

  it('refuses latents, a factor that does not divide the (padded) size, padTo below the image size', () => {
    const d = dataset(new Array(9).fill(1), 3, 3, 1, 1);
    expect(() => downsampleDataset({ ...d, images: new Float32Array(9) }, { factor: 3 })).toThrow(/holds float32 values/);
    expect(() => downsampleDataset(d, { factor: 2 })).toThrow(/the size 3x3 is not divisible by factor 2/);
    expect(() => downsampleDataset(d, { padTo: 5, factor: 2 })).toThrow(/the padded size 5x5 is not divisible by factor 2/);
    expect(() => downsampleDataset(d, { padTo: 2, factor: 2 })).toThrow(/padTo must be an integer >= the image size 3x3, got 2/);
    expect(() => downsampleDataset(d, { factor: 0 })).toThrow(/factor must be an integer >= 1, got 0/);
  });
});
