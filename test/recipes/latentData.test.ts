/**
 * Latent diffusion's data (src/recipes/latentData.ts): every image encoded
 * once to scaleFactor * posterior mean, labels and captions carried, padding to
 * the autoencoder's sampleSize; float32 datasets batched as they are; the disk
 * cache reused, invalidated by another autoencoder file or scale factor, and
 * recovered from when corrupt.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, tinyTwoClassDataset, relativeError } from '../helpers';
import { Rng } from '../../src/backend/random';
import { ImageDataset, validateDataset } from '../../src/data/dataset';
import { BatchIterator, fixedBatch } from '../../src/data/batches';
import { Autoencoder, autoencoderConfig } from '../../src/models/autoencoder';
import { saveModelWeights } from '../../src/io/checkpointFile';
import { cachedLatentDataset, encodeLatentDataset } from '../../src/recipes/latentData';

beforeAll(async () => useBackend('cpu'));

const AE = autoencoderConfig({ inChannels: 1, sampleSize: 8, channelMults: [1, 2], baseChannels: 8, latentChannels: 2, groups: 4, heads: 2 });
const SCALE = 0.7;

/** tinyTwoClassDataset with a caption per image. */
function captioned(count: number, seed: number): ImageDataset {
  const d = tinyTwoClassDataset(count, seed);
  return { ...d, captions: Array.from({ length: count }, (_, i) => `image ${i}`) };
}

/** The centre 6x6 of each 8x8 image of `d`. */
function crop6(d: ImageDataset): ImageDataset {
  const images = new Uint8Array(d.count * 36);
  for (let i = 0; i < d.count; i++) {
    for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) images[i * 36 + y * 6 + x] = d.images[i * 64 + (y + 1) * 8 + (x + 1)];
  }
  return { ...d, name: 'tiny6', images, height: 6, width: 6 };
}

/** Each 6x6 image of `d` placed in the centre of an 8x8 black (0) image: the padding, written out by hand. */
function blackBorder8(d: ImageDataset): ImageDataset {
  const images = new Uint8Array(d.count * 64);
  for (let i = 0; i < d.count; i++) {
    for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) images[i * 64 + (y + 1) * 8 + (x + 1)] = d.images[i * 36 + y * 6 + x];
  }
  return { ...d, images, height: 8, width: 8 };
}

/** scale * encode(x).mean of all images of an 8x8 uint8 dataset, in one forward pass (the reference). */
function directLatents(ae: Autoencoder, d: ImageDataset, scale: number): Float32Array {
  const batch = fixedBatch(d, Array.from({ length: d.count }, (_, i) => i));
  try {
    return tf.tidy(() => {
      const { mean, logvar } = ae.encode(batch.x);
      logvar.dispose();
      return tf.mul(mean, scale).dataSync() as Float32Array;
    });
  } finally {
    tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
  }
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-latents-'));
}

describe('encodeLatentDataset', () => {
  let ae: Autoencoder;
  beforeAll(() => {
    ae = new Autoencoder(AE, new Rng(1));
  });
  afterAll(() => ae.dispose());

  it('gives scaleFactor * the posterior mean of every image (in batches), with labels and captions carried over', async () => {
    const data = captioned(5, 1);
    const progress: Array<[number, number]> = [];
    const before = tf.memory().numTensors;
    const latents = await encodeLatentDataset(ae, data, { scaleFactor: SCALE, batchSize: 2, onProgress: (done, total) => progress.push([done, total]) });
    expect(tf.memory().numTensors).toBe(before);
    expect(progress).toEqual([[2, 5], [4, 5], [5, 5]]);
    expect(latents.images).toBeInstanceOf(Float32Array);
    expect([latents.count, latents.height, latents.width, latents.channels]).toEqual([5, 4, 4, 2]);
    expect(latents.name).toBe('tiny-latents');
    expect(latents.split).toBe('train');
    expect(latents.labels).toEqual(data.labels);
    expect(latents.captions).toEqual(data.captions);
    expect(latents.classNames).toEqual(data.classNames);
    const ref = directLatents(ae, data, SCALE);
    expect(relativeError(latents.images, ref)).toBeLessThan(1e-5);
    // The scale factor is applied (not 1): half the factor, half the values.
    const half = await encodeLatentDataset(ae, data, { scaleFactor: SCALE / 2 });
    expect(relativeError(half.images, Float32Array.from(ref, (v) => v / 2))).toBeLessThan(1e-5);
  });

  it('centre-pads images smaller than sampleSize with black, as a hand-padded 8x8 dataset', async () => {
    const small = crop6(captioned(3, 2));
    const latents = await encodeLatentDataset(ae, small, { scaleFactor: SCALE });
    expect([latents.height, latents.width, latents.channels]).toEqual([4, 4, 2]);
    expect(relativeError(latents.images, directLatents(ae, blackBorder8(small), SCALE))).toBeLessThan(1e-5);
  });

  it('refuses float input, the wrong channel count, images larger than sampleSize, a bad scaleFactor or batchSize', async () => {
    const data = captioned(2, 1);
    const before = tf.memory().numTensors;
    const floats: ImageDataset = { ...data, images: new Float32Array(2 * 64) };
    await expect(encodeLatentDataset(ae, floats, { scaleFactor: SCALE })).rejects.toThrow(/dataset 'tiny' already holds float values \(latents\?\), expected uint8 pixels/);
    const rgb: ImageDataset = { ...data, images: new Uint8Array(2 * 64 * 3), channels: 3 };
    await expect(encodeLatentDataset(ae, rgb, { scaleFactor: SCALE })).rejects.toThrow(/has 3 channel\(s\), the autoencoder expects 1/);
    const big: ImageDataset = { ...data, images: new Uint8Array(2 * 16 * 16), height: 16, width: 16 };
    await expect(encodeLatentDataset(ae, big, { scaleFactor: SCALE })).rejects.toThrow(/images 16x16 are larger than the autoencoder's sampleSize 8/);
    for (const bad of [0, -1, NaN, Infinity]) {
      await expect(encodeLatentDataset(ae, data, { scaleFactor: bad })).rejects.toThrow(new RegExp(`scaleFactor must be a positive number, got ${bad}`));
    }
    await expect(encodeLatentDataset(ae, data, { scaleFactor: SCALE, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer, got 0/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('float32 datasets', () => {
  // 3 "latents" 2x2x4 with distinct values (4 channels: only float datasets allow it).
  const values = Float32Array.from({ length: 3 * 16 }, (_, i) => (i - 20) / 7);
  const floats: ImageDataset = {
    name: 'lat', split: 'train', images: values, count: 3, height: 2, width: 2, channels: 4, labels: Int32Array.from([1, 0, 1]), classNames: null, captions: ['a', 'b', 'c'],
  };

  it('validateDataset accepts float values with 4 channels; refuses uint8 with 4 and float with 0', () => {
    expect(validateDataset(floats)).toBe(floats);
    expect(() => validateDataset({ ...floats, images: new Uint8Array(48) })).toThrow(/channels must be 1 or 3, received 4/);
    expect(() => validateDataset({ ...floats, images: new Float32Array(0), channels: 0 })).toThrow(/channels must be positive, received 0/);
    expect(() => validateDataset({ ...floats, images: values.subarray(1) })).toThrow(/images has 47 values, expected/);
  });

  it('fixedBatch and BatchIterator return the values unchanged (no [-1, 1] scaling); padding is 0', () => {
    const before = tf.memory().numTensors;
    const b = fixedBatch(floats, [2, 0]);
    expect(b.x.shape).toEqual([2, 2, 2, 4]);
    expect(b.x.dataSync()).toEqual(Float32Array.from([...values.subarray(32, 48), ...values.subarray(0, 16)]));
    expect(b.captions).toEqual(['c', 'a']);
    expect(Array.from((b.labels as tf.Tensor).dataSync())).toEqual([1, 1]);
    const padded = fixedBatch(floats, [1], { padTo: 4 });
    const expected = new Float32Array(4 * 4 * 4); // zeros around the centre 2x2
    for (let y = 0; y < 2; y++) expected.set(values.subarray(16 + y * 8, 16 + y * 8 + 8), ((y + 1) * 4 + 1) * 4);
    expect(padded.x.dataSync()).toEqual(expected);
    const it = new BatchIterator(floats, { batchSize: 2, seed: 0, shuffle: false });
    const first = it.next();
    expect(first.x.dataSync()).toEqual(values.subarray(0, 32));
    tf.dispose([b.x, b.labels as tf.Tensor, padded.x, padded.labels as tf.Tensor, first.x, first.labels as tf.Tensor]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('cachedLatentDataset', () => {
  it('writes the cache, reuses it, re-encodes for a changed autoencoder file or scale factor, and recovers from a corrupt file', async () => {
    const dir = tmpDir();
    const aeFile = path.join(dir, 'autoencoder.safetensors');
    const cacheFile = path.join(dir, 'latents.safetensors');
    const ae = new Autoencoder(AE, new Rng(2));
    const data = captioned(4, 3);
    const logs: string[] = [];
    const encodeSpy = jest.spyOn(ae, 'encode');
    const run = (d: ImageDataset, scaleFactor = SCALE): Promise<ImageDataset> =>
      cachedLatentDataset(cacheFile, aeFile, ae, d, { scaleFactor, batchSize: 3, onLog: (l) => logs.push(l) });
    try {
      await saveModelWeights(aeFile, ae, { kind: 'autoencoder', config: { autoencoder: ae.config } });
      const before = tf.memory().numTensors;

      // 1. no cache: encode and write it.
      const first = await run(data);
      expect(fs.existsSync(cacheFile)).toBe(true);
      expect(logs.pop()).toBe(`latents: encoded 4 images to [4, 4, 2], cached in ${cacheFile}`);
      expect(encodeSpy).toHaveBeenCalledTimes(2); // batches of 3 + 1
      const ref = directLatents(ae, data, SCALE);
      expect(relativeError(first.images, ref)).toBeLessThan(1e-5);

      // 2. same autoencoder file, dataset and scale: read back, no encoder call; labels and captions from the dataset given.
      encodeSpy.mockClear();
      const recaptioned = { ...data, captions: ['w', 'x', 'y', 'z'] };
      const second = await run(recaptioned);
      expect(encodeSpy).not.toHaveBeenCalled();
      expect(logs.pop()).toBe(`latents: 4 cached in ${cacheFile}`);
      expect(second.images).toEqual(first.images);
      expect([second.height, second.width, second.channels, second.count]).toEqual([4, 4, 2, 4]);
      expect(second.captions).toEqual(['w', 'x', 'y', 'z']);
      expect(second.labels).toEqual(data.labels);
      expect(second.name).toBe('tiny-latents');

      // 3. the autoencoder FILE changes (one weight moved, saved again): encoded again with the new weights.
      const [, w] = ae.namedParameters()[0];
      tf.tidy(() => w.assign(tf.add(w, 0.05)));
      await saveModelWeights(aeFile, ae, { kind: 'autoencoder', config: { autoencoder: ae.config } });
      encodeSpy.mockClear();
      const third = await run(data);
      expect(encodeSpy).toHaveBeenCalled();
      expect(logs).toContain(`latents: ${cacheFile} was made from another autoencoder, dataset or scale factor: encoding again`);
      const ref2 = directLatents(ae, data, SCALE);
      expect(relativeError(ref2, ref)).toBeGreaterThan(1e-4);
      expect(relativeError(third.images, ref2)).toBeLessThan(1e-5);
      logs.length = 0;

      // 4. another scale factor: encoded again.
      encodeSpy.mockClear();
      const fourth = await run(data, 2 * SCALE);
      expect(encodeSpy).toHaveBeenCalled();
      expect(logs[0]).toMatch(/was made from another autoencoder, dataset or scale factor/);
      expect(relativeError(fourth.images, Float32Array.from(ref2, (v) => 2 * v))).toBeLessThan(1e-5);
      logs.length = 0;

      // 5. a truncated cache file: unreadable, encoded again, and the rewritten cache is then reused.
      const bytes = fs.readFileSync(cacheFile);
      fs.writeFileSync(cacheFile, bytes.subarray(0, Math.floor(bytes.length / 2)));
      encodeSpy.mockClear();
      const fifth = await run(data, 2 * SCALE);
      expect(encodeSpy).toHaveBeenCalled();
      expect(logs[0]).toMatch(new RegExp(`^latents: ${cacheFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is unreadable \\(.+\\): encoding again$`));
      expect(fifth.images).toEqual(fourth.images);
      encodeSpy.mockClear();
      const sixth = await run(data, 2 * SCALE);
      expect(encodeSpy).not.toHaveBeenCalled();
      expect(sixth.images).toEqual(fourth.images);

      // 6. another dataset of the same name but another count: encoded again.
      encodeSpy.mockClear();
      const fewer = await run(captioned(3, 3), 2 * SCALE);
      expect(encodeSpy).toHaveBeenCalled();
      expect(fewer.count).toBe(3);

      expect(tf.memory().numTensors).toBe(before);
    } finally {
      encodeSpy.mockRestore();
      ae.dispose();
    }
  });
});
