import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng } from '../../src/backend/random';
import { evaluateReconstruction, imagePsnr, psnrFromMse } from '../../src/eval/reconstruction';
import { tensorSource } from '../../src/eval/imageFolderStats';
import { pixelExtractor } from '../../src/eval/features';

beforeAll(async () => useBackend('wasm'));

/** n images 4x4x1 with values uniform in [-0.5, 0.5] (so +-0.2 shifts stay inside [-1, 1]). */
function smallImages(n: number, seed: string): tf.Tensor4D {
  const data = new Float32Array(n * 16);
  new Rng(seed).fillUniform(data);
  return tf.tensor4d(data.map((v) => v - 0.5), [n, 4, 4, 1]);
}

describe('psnrFromMse', () => {
  it('is 10 log10(1 / mse) on [0, 1], +Infinity for identical images', () => {
    expect(psnrFromMse(0)).toBe(Infinity);
    expect(psnrFromMse(0.01)).toBeCloseTo(20, 12);
    expect(psnrFromMse(1e-4)).toBeCloseTo(40, 12);
    expect(psnrFromMse(1)).toBeCloseTo(0, 12);
    expect(() => psnrFromMse(-1)).toThrow(/mse must be >= 0, got -1/);
    expect(() => psnrFromMse(NaN)).toThrow(/mse must be >= 0/);
  });
});

describe('imagePsnr', () => {
  it('maps [-1, 1] to [0, 1]: an offset of 0.2 is 0.1 on [0, 1], i.e. 20 dB; identical is +Infinity', async () => {
    const a = smallImages(3, 'a');
    const b = tf.tidy(() => tf.concat([a.slice([0], [1]), tf.add(a.slice([1], [2]), tf.tensor4d([0.2, -0.2], [2, 1, 1, 1]))]) as tf.Tensor4D);
    const before = tf.memory().numTensors;
    const p = await imagePsnr(a, b);
    expect(tf.memory().numTensors).toBe(before);
    expect(p[0]).toBe(Infinity);
    expect(p[1]).toBeCloseTo(20, 4);
    expect(p[2]).toBeCloseTo(20, 4);
    tf.dispose([a, b]);
  });

  it('clips the reconstruction to [-1, 1] first', async () => {
    const a = tf.fill([1, 2, 2, 1], 1) as tf.Tensor4D;
    const b = tf.fill([1, 2, 2, 1], 3) as tf.Tensor4D; // clipped to 1: identical
    expect((await imagePsnr(a, b))[0]).toBe(Infinity);
    tf.dispose([a, b]);
  });
});

describe('evaluateReconstruction', () => {
  it('identity: zero error, infinite PSNR, FID 0', async () => {
    const x = smallImages(40, 'x');
    const extractor = pixelExtractor({ height: 4, width: 4, channels: 1 });
    const before = tf.memory().numTensors;
    const m = await evaluateReconstruction((imgs) => tf.clone(imgs), tensorSource(x, 'x'), { extractor, batchSize: 16 });
    expect(tf.memory().numTensors).toBe(before);
    expect(m.count).toBe(40);
    expect(m.l1).toBe(0);
    expect(m.mse).toBe(0);
    expect(m.psnr).toBe(Infinity);
    expect(m.meanPsnr).toBe(Infinity);
    expect(m.fid?.distance ?? NaN).toBeCloseTo(0, 6);
    expect(m.features).toBe('pixels');
    x.dispose();
  });

  it('known per-image offsets: L1, MSE, PSNR of the mean MSE, mean of per-image PSNRs, and FID = |mean shift|^2 (pixel features)', async () => {
    const n = 40;
    const x = smallImages(n, 'x');
    // Image i is shifted by c_i = 0.1 or 0.3 (alternating): every pixel of it has |error| c_i.
    const c = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 0.1 : 0.3));
    const shifts = tf.tensor4d(c, [n, 1, 1, 1]);
    let seen = 0;
    const reconstruct = (imgs: tf.Tensor4D): tf.Tensor4D => {
      const b = imgs.shape[0];
      const out = tf.tidy(() => tf.add(imgs, shifts.slice([seen], [b])) as tf.Tensor4D);
      seen += b;
      return out;
    };
    const m = await evaluateReconstruction(reconstruct, tensorSource(x, 'x'), { extractor: pixelExtractor({ height: 4, width: 4, channels: 1 }), batchSize: 16 });
    // Closed forms (float64): l1 = mean c, mse = mean c^2, psnr = -10 log10(mse / 4), meanPsnr = mean of -10 log10(c^2 / 4).
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    expect(m.l1).toBeCloseTo(mean(c), 6);
    expect(m.mse).toBeCloseTo(mean(c.map((v) => v * v)), 6);
    expect(m.psnr).toBeCloseTo(-10 * Math.log10(mean(c.map((v) => v * v)) / 4), 4); // 0.05 -> 19.03 dB
    expect(m.meanPsnr).toBeCloseTo(mean(c.map((v) => -10 * Math.log10((v * v) / 4))), 4); // (26.02 + 16.48) / 2
    expect(m.psnr).not.toBeCloseTo(m.meanPsnr, 1);
    // Pixel features shifted by c_i per image: the mean moves by mean(c) = 0.2 in each of 16 dims -> 16 * 0.04.
    // (The varying shift changes the covariance too; the next test has a closed form for the whole distance.)
    expect(m.fid?.meanTerm ?? NaN).toBeCloseTo(16 * 0.04, 5);
    expect(m.fid !== null && m.fid.distance > m.fid.meanTerm - 1e-9).toBe(true);
    tf.dispose([x, shifts]);
  });

  it('a uniform shift of every image by 0.2: FID is exactly the mean term 16 * 0.04', async () => {
    const x = smallImages(40, 'y');
    const m = await evaluateReconstruction((imgs) => tf.add(imgs, 0.2) as tf.Tensor4D, tensorSource(x, 'y'), {
      extractor: pixelExtractor({ height: 4, width: 4, channels: 1 }),
      batchSize: 7,
    });
    expect(m.psnr).toBeCloseTo(20, 4);
    expect(m.meanPsnr).toBeCloseTo(20, 4);
    expect(m.fid?.distance ?? NaN).toBeCloseTo(0.64, 4);
    expect(m.fid?.covarianceTerm ?? NaN).toBeCloseTo(0, 4);
    x.dispose();
  });

  it('without an extractor reports no FID, and refuses reconstructions of another shape', async () => {
    const x = smallImages(4, 'z');
    const m = await evaluateReconstruction((imgs) => tf.clone(imgs), tensorSource(x, 'z'));
    expect(m.fid).toBeNull();
    expect(m.features).toBeNull();
    const before = tf.memory().numTensors;
    await expect(evaluateReconstruction((imgs) => tf.slice(imgs, [0, 0, 0, 0], [-1, 2, 2, 1]) as tf.Tensor4D, tensorSource(x, 'z')))
      .rejects.toThrow(/shapes differ, originals \[4,4,4,1\] vs reconstructions \[4,2,2,1\]/);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});
