/**
 * Feature extractors (src/eval/features.ts): preparation (28 -> 32 centre padding
 * identical to the data pipeline's padTo, bilinear resize values, gray -> RGB,
 * the RGB-into-grayscale error), pixel and classifier extractors, and a TF.js
 * layers model written here to a temp folder in the standard model.json +
 * weights.bin format and loaded back through the file handler, resized to its
 * input size.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import {
  classifierExtractor, describePreparation, fileModelHandler, InputSpec, loadFeatureExtractor, pixelExtractor, prepareImages, shippedClassifiersDir,
} from '../../src/eval/features';
import { Classifier, loadClassifier } from '../../src/eval/classifier';
import { datasetAccuracy, loadClassifierSplit } from '../../src/eval/trainClassifier';
import { fixedBatch } from '../../src/data/batches';
import { ImageDataset } from '../../src/data/dataset';
import { randomUniform, Rng } from '../../src/backend/random';
import { expectClose, useBackend } from '../helpers';

let dir: string;

beforeAll(async () => {
  await useBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'features-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const PAD32: InputSpec = { height: 32, width: 32, channels: 1, padFrom: 28 };

/** Saves a layers model as model.json + weights.bin (the format tfjs-node's file:// handler writes). */
async function saveLayersModel(model: tf.LayersModel, folder: string): Promise<void> {
  fs.mkdirSync(folder, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData as ArrayBuffer;
    fs.writeFileSync(path.join(folder, 'weights.bin'), Buffer.from(data));
    fs.writeFileSync(path.join(folder, 'model.json'), JSON.stringify({
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

describe('prepareImages', () => {
  it('28x28 -> 32x32 pads with -1 exactly like BatchIterator padTo', async () => {
    const rng = new Rng('pad');
    const n = 3;
    const images = Uint8Array.from({ length: n * 28 * 28 }, () => rng.int(256));
    const data: ImageDataset = { name: 'd', split: 'test', images, count: n, height: 28, width: 28, channels: 1, labels: null, classNames: null, captions: null };
    const raw = fixedBatch(data, [0, 1, 2]);
    const padded = fixedBatch(data, [0, 1, 2], { padTo: 32 });
    const before = tf.memory().numTensors;
    const ours = prepareImages(raw.x, PAD32);
    await expectClose(ours, padded.x, 0);
    ours.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([raw.x, padded.x]);
    expect(describePreparation({ height: 28, width: 28, channels: 1 }, PAD32)).toBe('28x28x1 -> 32x32x1: centre-padded with -1 to 32x32 (as in the classifier\'s training)');
    expect(describePreparation({ height: 32, width: 32, channels: 1 }, PAD32)).toBe('32x32x1, used as is');
  });

  it('other sizes: bilinear with half-pixel centres (2x2 -> 4x4 by hand); gray -> RGB; RGB into gray is an error', async () => {
    const x = tf.tensor4d([0, 1, 2, 3], [1, 2, 2, 1]);
    // Half-pixel centres: output i samples input (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1.
    const w = [0, 0.25, 0.75, 1];
    const expected: number[] = [];
    for (const r of w) for (const c of w) expected.push(2 * r + c); // f(r, c) = 2 r + c is bilinear
    const spec: InputSpec = { height: 4, width: 4, channels: 3, padFrom: null };
    const y = prepareImages(x, spec);
    expect(y.shape).toEqual([1, 4, 4, 3]);
    const vals = await y.data();
    expected.forEach((e, i) => {
      for (let ch = 0; ch < 3; ch++) expect(vals[i * 3 + ch]).toBeCloseTo(e, 6);
    });
    expect(describePreparation({ height: 2, width: 2, channels: 1 }, spec)).toBe('2x2x1 -> 4x4x3: gray replicated to RGB, bilinear resize to 4x4');
    const rgb = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    expect(() => prepareImages(rgb, PAD32, 'mnist')).toThrow("features 'mnist' take 1-channel (grayscale) images; received 3-channel (RGB) images 32x32x3: convert them to grayscale first");
    tf.dispose([x, y, rgb]);
  });
});

describe('extractors', () => {
  it('pixels: flattened values at the given size', async () => {
    const ex = pixelExtractor({ height: 4, width: 4, channels: 1 });
    const x = randomUniform([2, 4, 4, 1], new Rng('px'), -1, 1) as tf.Tensor4D;
    const f = ex.extract(x);
    expect(f.shape).toEqual([2, 16]);
    expect(ex.featureDim).toBe(16);
    await expectClose(f, x.reshape([2, 16]), 0);
    tf.dispose([x, f]);
  });

  it('classifier: [B, featureDim], 28x28 input padded to the classifier input', async () => {
    const model = new Classifier({ convs: [{ channels: 8, stride: 2 }, { channels: 8, stride: 2 }], groups: 4, featureDim: 12 }, 5);
    const ex = classifierExtractor(model, 'toy');
    expect(ex.inputSize).toEqual(PAD32);
    const x28 = randomUniform([3, 28, 28, 1], new Rng('c'), -1, 1) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const f = ex.extract(x28);
    expect(f.shape).toEqual([3, 12]);
    const direct = tf.tidy(() => model.features(tf.pad(x28, [[0, 0], [2, 2], [2, 2], [0, 0]], -1) as tf.Tensor4D));
    await expectClose(f, direct, 1e-6);
    tf.dispose([f, direct]);
    expect(tf.memory().numTensors).toBe(before);
    x28.dispose();
    ex.dispose();
  });

  it('inception:<path> loads a layers model.json + weights.bin from disk, resizes to its input, pools rank-4 outputs', async () => {
    const rng = new Rng('tfjs');
    // Model 1: conv -> global average pool -> dense, input 12x12x3, [B, 5] output.
    const m1 = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 4, kernelSize: 3, activation: 'relu' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 5 }),
      ],
    });
    const folder1 = path.join(dir, 'model1');
    await saveLayersModel(m1, folder1);
    const ex = await loadFeatureExtractor(`inception:${folder1}`);
    expect(ex.inputSize).toEqual({ height: 12, width: 12, channels: 3, padFrom: null });
    expect(ex.featureDim).toBe(5);
    expect(ex.description).toMatch(/^TF\.js layers model .*model1\/model\.json: 5-d features, input 12x12x3 in \[-1, 1\]$/);
    const x = randomUniform([2, 20, 20, 1], rng, -1, 1) as tf.Tensor4D; // gray, another size
    const before = tf.memory().numTensors;
    const f = ex.extract(x);
    const ref = tf.tidy(() => m1.predict(tf.image.resizeBilinear(tf.tile(x, [1, 1, 1, 3]), [12, 12], false, true)) as tf.Tensor2D);
    expect(f.shape).toEqual([2, 5]);
    await expectClose(f, ref, 1e-5);
    tf.dispose([f, ref]);
    expect(tf.memory().numTensors).toBe(before);
    ex.dispose();

    // Model 2: a conv only, [B, h, w, 6] output -> averaged over h, w.
    const m2 = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 6, kernelSize: 3, padding: 'same' })] });
    const folder2 = path.join(dir, 'model2');
    await saveLayersModel(m2, folder2);
    const ex2 = await loadFeatureExtractor(`inception:${path.join(folder2, 'model.json')}`);
    const x8 = randomUniform([2, 8, 8, 3], rng, -1, 1) as tf.Tensor4D;
    const f2 = ex2.extract(x8);
    const ref2 = tf.tidy(() => tf.mean(m2.predict(x8) as tf.Tensor4D, [1, 2]));
    await expectClose(f2, ref2, 1e-6);
    tf.dispose([x, x8, f2, ref2]);
    ex2.dispose();
    m1.dispose();
    m2.dispose();

    // A missing shard names the file.
    fs.unlinkSync(path.join(folder2, 'weights.bin'));
    await expect(fileModelHandler(path.join(folder2, 'model.json')).load?.()).rejects.toThrow("weight shard 'weights.bin' cannot be read");
  });

  it('shipped colored-mnist: 32x32x3 input, 128-d features from the shipped file, classifies Colored MNIST test digits; mnist stays 1-channel', async () => {
    const ex = await loadFeatureExtractor('colored-mnist');
    const file = path.join(shippedClassifiersDir(), 'colored-mnist.safetensors');
    const model = await loadClassifier(file);
    try {
      expect(ex.inputSize).toEqual({ height: 32, width: 32, channels: 3, padFrom: null });
      expect(ex.featureDim).toBe(128);
      expect(model.config).toMatchObject({ channels: 3, imageSize: 32, numClasses: 10, padFrom: null, dataset: 'colored-mnist' });
      const test = loadClassifierSplit('colored-mnist', 'test', { limit: 100 });
      const batch = fixedBatch(test, Array.from({ length: 100 }, (_, i) => i));
      const before = tf.memory().numTensors;
      const f = ex.extract(batch.x);
      expect(f.shape).toEqual([100, 128]);
      const direct = model.features(batch.x);
      await expectClose(f, direct, 1e-6); // the extractor is the shipped file's penultimate layer
      tf.dispose([f, direct]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
      // The weights are trained, not random (checkpoints/classifiers/README.md: 98.98% on all 10k test images).
      expect((await datasetAccuracy(model, test)).accuracy).toBeGreaterThanOrEqual(0.95);
    } finally {
      ex.dispose();
      model.dispose();
    }
    const mnist = await loadFeatureExtractor('mnist');
    expect(mnist.inputSize).toEqual({ height: 32, width: 32, channels: 1, padFrom: 28 });
    mnist.dispose();
  });

  it('names: unknown features and missing classifiers explain themselves', async () => {
    await expect(loadFeatureExtractor('resnet')).rejects.toThrow("unknown features 'resnet': expected mnist | fashion-mnist | colored-mnist | cifar10 | pixels | inception:<path>");
    await expect(loadFeatureExtractor('cifar10', { classifiersDir: dir })).rejects.toThrow(
      `features 'cifar10': no classifier at ${path.join(dir, 'cifar10.safetensors')}; train one with \`tfjs-diffusion train-classifier --dataset cifar10`,
    );
    await expect(loadFeatureExtractor('pixels')).rejects.toThrow("features 'pixels' need a size");
  });
});
