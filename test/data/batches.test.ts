import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { BatchIterator, fixedBatch, Batch } from '../../src/data/batches';
import { ImageDataset, validateDataset } from '../../src/data/dataset';

/** N images of 2x3x1 where image i has pixels 10*i + (0..5); labels i % 3; captions 'img i'. */
function tinyDataset(n: number): ImageDataset {
  return validateDataset({
    name: 'tiny', split: 'train', count: n, height: 2, width: 3, channels: 1,
    images: Uint8Array.from({ length: n * 6 }, (_, k) => 10 * Math.floor(k / 6) + (k % 6)),
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
    classNames: ['a', 'b', 'c'],
    captions: Array.from({ length: n }, (_, i) => `img ${i}`),
  });
}

/** Runs `k` batches, returning their indices and disposing the tensors. */
function take(it: BatchIterator, k: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < k; i++) {
    const b = it.next();
    out.push(Array.from(b.indices));
    b.x.dispose();
    b.labels?.dispose();
  }
  return out;
}

const dispose = (b: Batch): void => {
  b.x.dispose();
  b.labels?.dispose();
};

describe('BatchIterator', () => {
  beforeAll(async () => {
    await useBackend();
  });

  it('same seed gives the same order, another seed another order', () => {
    const d = tinyDataset(20);
    const a = take(new BatchIterator(d, { batchSize: 4, seed: 7 }), 12);
    const b = take(new BatchIterator(d, { batchSize: 4, seed: 7 }), 12);
    const c = take(new BatchIterator(d, { batchSize: 4, seed: 8 }), 12);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('each epoch is a permutation; epochs differ; dropLast skips the remainder', () => {
    const d = tinyDataset(10);
    const it = new BatchIterator(d, { batchSize: 3, seed: 1 });
    expect(it.batchesPerEpoch).toBe(3);
    const epochs: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const batches: Batch[] = [0, 1, 2].map(() => it.next());
      expect(batches.map((b) => b.epoch)).toEqual([e, e, e]);
      const idx = batches.flatMap((b) => Array.from(b.indices));
      batches.forEach(dispose);
      expect(new Set(idx).size).toBe(9);
      // The 9 indices are the first 9 entries of the epoch's permutation; the 10th is dropped.
      const order = Array.from(it.epochOrder(e));
      expect([...order].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(idx).toEqual(order.slice(0, 9));
      epochs.push(order);
    }
    expect(epochs[0]).not.toEqual(epochs[1]);
    expect(epochs[1]).not.toEqual(epochs[2]);
  });

  it('dropLast false yields a short last batch; shuffle false visits 0..N-1', () => {
    const it = new BatchIterator(tinyDataset(5), { batchSize: 2, seed: 0, shuffle: false, dropLast: false });
    expect(it.batchesPerEpoch).toBe(3);
    expect(take(it, 4)).toEqual([[0, 1], [2, 3], [4], [0, 1]]);
    expect(it.state()).toEqual({ epoch: 1, position: 2 });
  });

  it('resuming from state() reproduces the continuation across epoch boundaries', () => {
    const d = tinyDataset(11);
    for (const dropLast of [true, false]) {
      const full = take(new BatchIterator(d, { batchSize: 3, seed: 'resume', dropLast }), 15);
      for (const k of [0, 1, 3, 4, 7]) {
        const first = new BatchIterator(d, { batchSize: 3, seed: 'resume', dropLast });
        take(first, k);
        const state = JSON.parse(JSON.stringify(first.state())) as ReturnType<BatchIterator['state']>;
        const resumed = new BatchIterator(d, { batchSize: 3, seed: 'resume', dropLast, state });
        expect(take(resumed, 15 - k)).toEqual(full.slice(k));
      }
    }
  });

  it('scales pixels to [-1, 1] and returns labels and captions of the chosen images', async () => {
    const d = tinyDataset(6);
    const it = new BatchIterator(d, { batchSize: 4, seed: 3 });
    const b = it.next();
    expect(b.x.shape).toEqual([4, 2, 3, 1]);
    expect(b.x.dtype).toBe('float32');
    const x = await b.x.data();
    const idx = Array.from(b.indices);
    const expected = idx.flatMap((i) => [0, 1, 2, 3, 4, 5].map((k) => (10 * i + k) / 127.5 - 1));
    expected.forEach((e, j) => expect(x[j]).toBeCloseTo(e, 6));
    expect(b.labels!.dtype).toBe('int32');
    expect(Array.from(await b.labels!.data())).toEqual(idx.map((i) => i % 3));
    expect(b.captions).toEqual(idx.map((i) => `img ${i}`));
    dispose(b);
  });

  it('centre-pads with -1 (28 -> 32 puts 2 pixels on each side)', async () => {
    const d = validateDataset({
      name: 'ones', split: 'test', count: 2, height: 28, width: 28, channels: 1,
      images: new Uint8Array(2 * 28 * 28).fill(255), labels: null, classNames: null, captions: null,
    });
    const b = fixedBatch(d, [1, 0], { padTo: 32 });
    expect(b.x.shape).toEqual([2, 32, 32, 1]);
    expect(b.labels).toBeNull();
    expect(b.captions).toBeNull();
    expect(b.epoch).toBe(-1);
    const x = await b.x.data();
    for (let n = 0; n < 2; n++) {
      for (let y = 0; y < 32; y++) {
        for (let xx = 0; xx < 32; xx++) {
          const inside = y >= 2 && y < 30 && xx >= 2 && xx < 30;
          if (x[(n * 32 + y) * 32 + xx] !== (inside ? 1 : -1)) throw new Error(`pixel (${n}, ${y}, ${xx}) wrong`);
        }
      }
    }
    dispose(b);
    // Odd padding puts the extra row/column at the bottom/right: 2x3 -> 5 gives top 1, left 1.
    const t = fixedBatch(tinyDataset(2), [1], { padTo: 5 }); // pixels 10..15
    const rows = (await t.x.array())[0].map((r) => r.map((v) => (v[0] === -1 ? '.' : String(Math.round((v[0] + 1) * 127.5)))).join(' '));
    expect(rows).toEqual(['. . . . .', '. 10 11 12 .', '. 13 14 15 .', '. . . . .', '. . . . .']);
    dispose(t);
  });

  it('creates exactly x and labels per batch and leaks nothing', () => {
    const before = tf.memory().numTensors;
    const it = new BatchIterator(tinyDataset(9), { batchSize: 4, seed: 0, padTo: 4 });
    for (let i = 0; i < 5; i++) {
      const b = it.next();
      expect(tf.memory().numTensors).toBe(before + 2);
      dispose(b);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('validates its options', () => {
    const d = tinyDataset(4);
    expect(() => new BatchIterator(d, { batchSize: 5, seed: 0 })).toThrow(/batchSize 5 exceeds the 4 images/);
    expect(() => new BatchIterator(d, { batchSize: 0, seed: 0 })).toThrow(/positive integer, received 0/);
    expect(() => new BatchIterator(d, { batchSize: 2, seed: 0, padTo: 2 })).toThrow(/padTo must be an integer >= the image size 2x3, received 2/);
    expect(() => new BatchIterator(d, { batchSize: 2, seed: 0, state: { epoch: 0, position: 9 } })).toThrow(/invalid iterator state/);
    expect(() => fixedBatch(d, [4])).toThrow(/batch index 4 is outside \[0, 4\)/);
    expect(() => fixedBatch(d, [0.5])).toThrow(/not an integer/);
  });
});
