/**
 * FID sanity rows with the shipped MNIST classifier's features (small n, so the
 * absolute values are inflated by the small-sample bias; the n = 2000 numbers are
 * in checkpoints/classifiers/README.md): real vs real (train vs test digits) is
 * small, real vs uniform noise is large, and KID agrees in sign and order.
 */
import * as fs from 'fs';
import * as path from 'path';
import { runFid } from '../../src/cli/fid';
import { useBackend } from '../helpers';

const SHIPPED = path.join(__dirname, '..', '..', 'checkpoints', 'classifiers', 'mnist.safetensors');
const shipped = fs.existsSync(SHIPPED) ? it : it.skip;

beforeAll(async () => {
  await useBackend('wasm');
});

describe('FID sanity (mnist classifier features, n = 300)', () => {
  shipped('train vs test is small; test vs uniform noise is large', async () => {
    const common = { features: SHIPPED, kid: true, batchSize: 100, limit: 300, kidSubsets: 10, kidSubsetSize: 200, seed: 0 };
    const real = await runFid({ ...common, a: 'dataset:mnist:train', b: 'dataset:mnist:test' });
    const noise = await runFid({ ...common, a: 'dataset:mnist:test', b: 'noise:28x28x1' });
    expect(real.sides[0].preparation).toBe("28x28x1 -> 32x32x1: centre-padded with -1 to 32x32 (as in the classifier's training)");
    expect(real.frechet.distance).toBeGreaterThan(0);
    expect(noise.frechet.distance).toBeGreaterThan(10 * real.frechet.distance); // measured: 26.2 vs 549 (KID 2.1 +- 1.4 vs 42.7 +- 1.2)
    expect(Math.abs(real.kid?.mean ?? Infinity)).toBeLessThan(3 * (real.kid?.std ?? 0) + 0.01 * (noise.kid?.mean ?? 0));
    expect(noise.kid?.mean ?? 0).toBeGreaterThan(10 * (noise.kid?.std ?? Infinity));
  });
});
