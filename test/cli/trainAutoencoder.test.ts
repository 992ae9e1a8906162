/**
 * End to end through the CLI: `train-autoencoder --dataset colored-mnist` on 64
 * images trains a 32x32x3 -> 8x8x4 autoencoder, measures the latent scale factor
 * at the end, and the weight file reloads through the library with a 3-channel
 * architecture, the Colored MNIST metadata and the scale factor the CLI printed,
 * which an independent recomputation on the same training images reproduces.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { loadColoredMnist } from '../../src/data/coloredMnist';
import { WEIGHTS_FILE } from '../../src/train/autoencoderTraining';
import { loadAutoencoder } from '../../src/node/pipelineParts';
import { computeLatentScale } from '../../src/train/latentScale';
import { useBackend } from '../helpers';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');

beforeAll(async () => {
  await useBackend('cpu');
});

describe('train-autoencoder CLI', () => {
  it('--dataset colored-mnist trains a 3-channel autoencoder whose file reloads with the measured scale factor', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-autoencoder-'));
    try {
      const out = path.join(tmp, 'ae');
      const r = spawnSync(process.execPath, [CLI, 'train-autoencoder', '--dataset', 'colored-mnist', '--backend', 'wasm', '--limit', '64',
        '--steps', '3', '--batch', '4', '--warmup', '1', '--base-channels', '8', '--log-every', '1', '--val-every', '0', '--sample-every', '0',
        '--checkpoint-every', '3', '--eval-images', '16', '--seed', '3', '--out', out], { encoding: 'utf8' });
      expect(r.stderr).not.toMatch(/^error/m);
      expect(r.status).toBe(0);
      expect(r.stderr).toContain('32x32x3 -> 8x8x4; data: colored-mnist 64 images 32x32x3');
      const printed = /trained steps 0\.\.3; weights: .*; latent scale factor ([\d.]+)/.exec(r.stdout);
      expect(printed).not.toBeNull();
      expect(r.stdout).toMatch(/test \(16 images\): L1 [\d.]+, MSE [\d.]+, PSNR [\d.]+ dB/);

      const before = tf.memory().numTensors;
      const { model, config } = await loadAutoencoder(path.join(out, WEIGHTS_FILE));
      try {
        expect(config).toMatchObject({ dataset: 'colored-mnist', imageHeight: 32, imageWidth: 32 });
        expect(config.autoencoder).toMatchObject({ inChannels: 3, sampleSize: 32, latentChannels: 4, baseChannels: 8 });
        expect(model.latentShape(2)).toEqual([2, 8, 8, 4]);
        const scale = config.scaleFactor as number;
        expect(scale).toBeGreaterThan(0);
        expect(Number(scale.toPrecision(5))).toBeCloseTo(Number((printed as RegExpExecArray)[1]), 10);
        // The factor is 1 / std of the latents of the 64 training images (seed 0 colours, seen triples):
        // recomputed on the cpu backend from the saved weights, it agrees to float32 accuracy.
        const train = loadColoredMnist('train', { seed: 0, limit: 64 }).dataset;
        const again = await computeLatentScale(model, train, { count: 1024, seed: 3 });
        expect(again.images).toBe(64);
        expect(Math.abs(again.scaleFactor - scale) / scale).toBeLessThan(1e-3);
        // Other colours give other latents: the factor is specific to this data.
        const recoloured = loadColoredMnist('train', { seed: 1, limit: 64 }).dataset;
        const other = await computeLatentScale(model, recoloured, { count: 1024, seed: 3 });
        expect(Math.abs(other.scaleFactor - scale) / scale).toBeGreaterThan(1e-3);
      } finally {
        model.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 120000);
});
