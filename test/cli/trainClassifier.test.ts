/**
 * End to end through the CLI: `train-classifier --dataset colored-mnist` on a
 * few hundred images trains a 3-channel classifier, saves it, and the file
 * reloads through the library with the config of the data (32x32x3, 10 digit
 * classes) and reproduces the test count the CLI reported.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { loadClassifier } from '../../src/eval/classifier';
import { datasetAccuracy, loadClassifierSplit } from '../../src/eval/trainClassifier';
import { useBackend } from '../helpers';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');

beforeAll(async () => {
  await useBackend('cpu');
});

describe('train-classifier CLI', () => {
  it('--dataset colored-mnist trains and saves a 3-channel digit classifier that reloads with the reported accuracy', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-classifier-'));
    try {
      const out = path.join(tmp, 'colored.safetensors');
      const r = spawnSync(process.execPath, [CLI, 'train-classifier', '--dataset', 'colored-mnist', '--backend', 'wasm', '--limit', '256',
        '--test-limit', '200', '--epochs', '1', '--batch', '64', '--warmup', '2', '--storage', 'float32', '--out', out], { encoding: 'utf8' });
      expect(r.stderr).not.toMatch(/^error/m);
      expect(r.status).toBe(0);
      expect(r.stderr).toContain('input 32x32x3; 1 epochs x 4 steps of 64');
      const m = /test accuracy: [\d.]+% \((\d+)\/200\)/.exec(r.stderr);
      expect(m).not.toBeNull();
      expect(r.stdout).toMatch(new RegExp(`4 steps in \\d+ s; saved ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ bytes\\)`));

      const before = tf.memory().numTensors;
      const model = await loadClassifier(out);
      expect(model.config).toMatchObject({
        imageSize: 32, channels: 3, numClasses: 10, padFrom: null, dataset: 'colored-mnist', classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      });
      expect(model.namedParameters().find(([n]) => n === 'convs.0.conv.weight')?.[1].shape).toEqual([3, 3, 3, 32]);
      // Same 200 test images (seed 0, all colour combinations), float32 weights: the same count on the cpu backend.
      const acc = await datasetAccuracy(model, loadClassifierSplit('colored-mnist', 'test', { limit: 200 }));
      expect(acc.correct).toBe(Number((m as RegExpExecArray)[1]));
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 120000);
});
