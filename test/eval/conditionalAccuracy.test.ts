/**
 * conditionalAccuracy (src/eval/conditionalAccuracy.ts): the bookkeeping on a
 * classifier whose weights are set so it always answers class 2, and the shipped
 * MNIST classifier on real test digits (requested = true labels -> high accuracy;
 * requested = shifted labels -> low).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { conditionalAccuracy } from '../../src/eval/conditionalAccuracy';
import { Classifier, loadClassifier } from '../../src/eval/classifier';
import { loadDataset } from '../../src/data/load';
import { fixedBatch } from '../../src/data/batches';
import { useBackend } from '../helpers';

const SHIPPED = path.join(__dirname, '..', '..', 'checkpoints', 'classifiers', 'mnist.safetensors');

beforeAll(async () => {
  await useBackend('wasm');
});

describe('conditionalAccuracy', () => {
  it('counts per requested class (a classifier that always says 2)', async () => {
    const m = new Classifier({ convs: [{ channels: 8, stride: 2 }], groups: 4, featureDim: 4, numClasses: 4 });
    const weights = new Map(m.namedParameters().map(([n, v]) => [n, n === 'head.bias' ? tf.tensor1d([0, 0, 10, 0]) : tf.zerosLike(v)]));
    m.loadStateDict(weights);
    tf.dispose([...weights.values()]);
    const images = tf.zeros([6, 28, 28, 1]) as tf.Tensor4D; // 28x28: padded to 32 like the data
    const before = tf.memory().numTensors;
    const r = await conditionalAccuracy(images, [2, 0, 2, 3, 2, 0], m, { batchSize: 4 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.overall).toBeCloseTo(3 / 6, 12);
    expect(r.perClass).toEqual([
      { label: 0, n: 2, correct: 0, accuracy: 0 },
      { label: 2, n: 3, correct: 3, accuracy: 1 },
      { label: 3, n: 1, correct: 0, accuracy: 0 },
    ]);
    expect(Array.from(r.predicted)).toEqual([2, 2, 2, 2, 2, 2]);
    await expect(conditionalAccuracy(images, [0, 1], m)).rejects.toThrow('2 labels for 6 images');
    await expect(conditionalAccuracy(images, [0, 1, 2, 3, 4, 0], m)).rejects.toThrow('label 4 at index 4 is not an integer in [0, 4)');
    images.dispose();
    m.dispose();
  });

  const shipped = fs.existsSync(SHIPPED) ? it : it.skip;
  shipped('shipped MNIST classifier: true labels ~99%, shifted labels ~0%', async () => {
    const clf = await loadClassifier(SHIPPED);
    const data = loadDataset('mnist', 'test', { limit: 300 });
    const batch = fixedBatch(data, Array.from({ length: 300 }, (_, i) => i)); // 28x28, padded inside
    const labels = Array.from(data.labels ?? []);
    const right = await conditionalAccuracy(batch.x, labels, clf);
    const wrong = await conditionalAccuracy(batch.x, labels.map((l) => (l + 1) % 10), clf);
    expect(right.overall).toBeGreaterThan(0.97);
    expect(wrong.overall).toBeLessThan(0.03);
    expect(right.perClass.map((c) => c.label)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(right.perClass.reduce((s, c) => s + c.n, 0)).toBe(300);
    tf.dispose([batch.x, batch.labels as tf.Tensor]);
    clf.dispose();
  });
});
