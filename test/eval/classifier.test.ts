/**
 * Classifier (src/eval/classifier.ts) and its training loop (trainClassifier.ts):
 * shapes, parameter names, gradients of one step against cpu autodiff of the same
 * network written with plain tf ops, one AdamW step lowering the loss, the
 * checkpoint round trip, and a tiny end-to-end training run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Classifier, classifierConfig, CLASSIFIER_KIND, loadClassifier } from '../../src/eval/classifier';
import { crossEntropy, loadClassifierSplit, trainClassifier } from '../../src/eval/trainClassifier';
import { isHeldOut, loadColoredMnist } from '../../src/data/coloredMnist';
import { loadMnist } from '../../src/data/mnist';
import { AdamW } from '../../src/train/adamw';
import { saveModelWeights } from '../../src/io/checkpointFile';
import { ImageDataset } from '../../src/data/dataset';
import { randomUniform, Rng } from '../../src/backend/random';
import { expectClose, useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('cpu');
});

const TINY = {
  imageSize: 8,
  channels: 1,
  numClasses: 3,
  convs: [{ channels: 4, stride: 2 as const }, { channels: 4, stride: 1 as const }, { channels: 6, stride: 2 as const }],
  groups: 2,
  featureDim: 5,
  padFrom: null,
};

/** The same network with plain tf ops (tf.conv2d, moments-based GroupNorm, x*sigmoid(x), matMul). */
function referenceLogits(p: Map<string, tf.Tensor>, x: tf.Tensor4D, cfg: typeof TINY): tf.Tensor2D {
  let h: tf.Tensor4D = x;
  cfg.convs.forEach((c, i) => {
    const w = p.get(`convs.${i}.conv.weight`) as tf.Tensor4D;
    const b = p.get(`convs.${i}.conv.bias`) as tf.Tensor1D;
    // PyTorch padding=1 at stride 2: explicit symmetric pads.
    h = tf.add(tf.conv2d(h, w, c.stride, [[0, 0], [1, 1], [1, 1], [0, 0]]), b);
    const [bb, hh, ww, cc] = h.shape;
    const g = tf.reshape(h, [bb, hh * ww, cfg.groups, cc / cfg.groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const norm = tf.reshape(tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, 1e-5))), [bb, hh, ww, cc]);
    const y = tf.add(tf.mul(norm, p.get(`convs.${i}.norm.weight`) as tf.Tensor), p.get(`convs.${i}.norm.bias`) as tf.Tensor);
    h = tf.mul(y, tf.sigmoid(y)) as tf.Tensor4D;
  });
  const flat = tf.reshape(h, [x.shape[0], -1]) as tf.Tensor2D;
  const f = tf.add(tf.matMul(flat, p.get('fc.weight') as tf.Tensor2D), p.get('fc.bias') as tf.Tensor);
  const feat = tf.mul(f, tf.sigmoid(f)) as tf.Tensor2D;
  return tf.add(tf.matMul(feat, p.get('head.weight') as tf.Tensor2D), p.get('head.bias') as tf.Tensor) as tf.Tensor2D;
}

describe('Classifier', () => {
  it('shapes, parameter names, config validation', () => {
    const before = tf.memory().numTensors;
    const m = new Classifier(TINY, 1);
    expect(m.namedParameters().map(([n, v]) => `${n}:${v.shape}`)).toEqual([
      'convs.0.conv.weight:3,3,1,4', 'convs.0.conv.bias:4', 'convs.0.norm.weight:4', 'convs.0.norm.bias:4',
      'convs.1.conv.weight:3,3,4,4', 'convs.1.conv.bias:4', 'convs.1.norm.weight:4', 'convs.1.norm.bias:4',
      'convs.2.conv.weight:3,3,4,6', 'convs.2.conv.bias:6', 'convs.2.norm.weight:6', 'convs.2.norm.bias:6',
      'fc.weight:24,5', 'fc.bias:5', 'head.weight:5,3', 'head.bias:3',
    ]);
    const x = randomUniform([2, 8, 8, 1], new Rng('x'), -1, 1) as tf.Tensor4D;
    const { features, logits } = m.featuresAndLogits(x);
    expect(features.shape).toEqual([2, 5]);
    expect(logits.shape).toEqual([2, 3]);
    const wrong = tf.zeros([2, 10, 10, 1]) as tf.Tensor4D;
    expect(() => m.apply(wrong)).toThrow('expected images [B, 8, 8, 1] in [-1, 1], received [2,10,10,1]');
    tf.dispose([x, features, logits, wrong]);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => classifierConfig({ groups: 3 })).toThrow('convs[0].channels = 32 is not divisible by groups = 3');
    expect(() => classifierConfig({ padFrom: 40 })).toThrow('padFrom must be null or an integer in [1, imageSize = 32], received 40');
  });

  it('crossEntropy equals -mean log softmax[label]', async () => {
    const logits = tf.tensor2d([[1, 2, 3], [0.5, -1, 0]]);
    const labels = tf.tensor1d([2, 0], 'int32');
    const lse = (r: number[]): number => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    const expected = -((3 - lse([1, 2, 3])) + (0.5 - lse([0.5, -1, 0]))) / 2;
    const ce = crossEntropy(logits, labels);
    await expectClose(ce, [expected], 1e-6);
    tf.dispose([logits, labels, ce]);
  });

  it('gradients of one step equal cpu autodiff of the plain-op network; AdamW lowers the loss', async () => {
    const before = tf.memory().numTensors;
    const m = new Classifier(TINY, 2);
    const rng = new Rng('grad');
    const x = randomUniform([4, 8, 8, 1], rng, -1, 1) as tf.Tensor4D;
    const y = tf.tensor1d([0, 1, 2, 1], 'int32');
    const params = m.namedParameters();
    const ours = tf.variableGrads(() => crossEntropy(m.apply(x), y), params.map(([, v]) => v));
    const refGradFn = tf.grads((...ts: tf.Tensor[]) => {
      const p = new Map(params.map(([n], i) => [n, ts[i]]));
      return crossEntropy(referenceLogits(p, x, TINY), y);
    });
    const clones = params.map(([, v]) => tf.clone(v));
    const refGrads = refGradFn(clones);
    const refLoss = tf.tidy(() => crossEntropy(referenceLogits(new Map(params.map(([n, v]) => [n, v as tf.Tensor])), x, TINY), y));
    await expectClose(ours.value, refLoss, 1e-5);
    for (let i = 0; i < params.length; i++) await expectClose(ours.grads[params[i][1].name], refGrads[i], 1e-4);
    const opt = new AdamW({ weightDecay: 0 });
    const norm = opt.applyGradients(params, new Map(params.map(([n, v]) => [n, ours.grads[v.name]])), 1e-2);
    const after = tf.tidy(() => crossEntropy(m.apply(x), y));
    expect((await after.data())[0]).toBeLessThan((await ours.value.data())[0]);
    tf.dispose([x, y, ours.value, ...Object.values(ours.grads), ...refGrads, ...clones, refLoss, norm, after]);
    opt.dispose();
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('checkpoint round trip: config in metadata, identical logits', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'classifier-'));
    try {
      const m = new Classifier({ ...TINY, classNames: ['a', 'b', 'c'], dataset: 'toy' }, 3);
      const file = path.join(dir, 'c.safetensors');
      await saveModelWeights(file, m, { kind: CLASSIFIER_KIND, config: m.config });
      const loaded = await loadClassifier(file);
      expect(loaded.config).toEqual(m.config);
      const x = randomUniform([3, 8, 8, 1], new Rng('rt'), -1, 1) as tf.Tensor4D;
      const a = m.apply(x);
      const b = loaded.apply(x);
      await expectClose(b, a, 1e-6);
      tf.dispose([x, a, b]);
      m.dispose();
      loaded.dispose();
      await saveModelWeights(path.join(dir, 'u.safetensors'), new Classifier(TINY), { kind: 'unet', config: TINY });
      await expect(loadClassifier(path.join(dir, 'u.safetensors'))).rejects.toThrow("expected a 'classifier' checkpoint, got kind 'unet'");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('trainClassifier learns a toy task (bright left half vs right half) and reports test accuracy', async () => {
    const make = (n: number, seed: string): ImageDataset => {
      const rng = new Rng(seed);
      const images = new Uint8Array(n * 64);
      const labels = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        labels[i] = i % 2;
        for (let p = 0; p < 64; p++) {
          const left = p % 8 < 4;
          const bright = (labels[i] === 0) === left;
          images[i * 64 + p] = Math.round((bright ? 150 : 40) + 60 * rng.uniform());
        }
      }
      return { name: 'toy', split: 'train', images, count: n, height: 8, width: 8, channels: 1, labels, classNames: ['left', 'right'], captions: null };
    };
    const before = tf.memory().numTensors;
    const lines: string[] = [];
    const r = await trainClassifier({
      train: make(64, 'tr'), test: make(32, 'te'), epochs: 3, batchSize: 16, lr: 1e-2, warmupSteps: 2, onLog: (l) => lines.push(l),
      config: { convs: [{ channels: 4, stride: 2 }, { channels: 8, stride: 2 }], groups: 2, featureDim: 8 },
    });
    expect(r.steps).toBe(12);
    expect(r.testAccuracy).toBe(1);
    expect(r.model.config).toMatchObject({ imageSize: 8, channels: 1, numClasses: 2, padFrom: null, dataset: 'toy', classNames: ['left', 'right'] });
    expect(lines[lines.length - 1]).toBe('test accuracy: 100.00% (32/32)');
    r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("loadClassifierSplit('colored-mnist'): seed 0, train = seen triples only, test = all triples, labels = the MNIST digits", () => {
    const n = 300;
    const train = loadClassifierSplit('colored-mnist', 'train', { limit: n });
    const test = loadClassifierSplit('colored-mnist', 'test', { limit: n });
    const refTrain = loadColoredMnist('train', { seed: 0, limit: n });
    const refTest = loadColoredMnist('test', { seed: 0, limit: n, combinations: 'all' });
    expect(train).toMatchObject({ name: 'colored-mnist', count: n, height: 32, width: 32, channels: 3, classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
    expect(Buffer.from(train.images).equals(Buffer.from(refTrain.dataset.images))).toBe(true);
    expect(Buffer.from(test.images).equals(Buffer.from(refTest.dataset.images))).toBe(true);
    expect(Array.from(train.labels ?? [])).toEqual(Array.from(loadMnist('train', { limit: n }).labels ?? []));
    expect(Array.from(test.labels ?? [])).toEqual(Array.from(loadMnist('test', { limit: n }).labels ?? []));
    const heldOut = (d: typeof refTest, labels: Int32Array): number =>
      Array.from(labels).filter((digit, i) => isHeldOut(digit, d.digitColor[i], d.background[i])).length;
    expect(heldOut(refTrain, refTrain.dataset.labels as Int32Array)).toBe(0);
    expect(heldOut(refTest, refTest.dataset.labels as Int32Array)).toBeGreaterThan(0); // ~4% of 300
    expect(() => loadClassifierSplit('svhn' as 'mnist', 'train')).toThrow("unknown dataset 'svhn', expected one of mnist, fashion-mnist, cifar10, image-folder, colored-mnist");
  });
});
