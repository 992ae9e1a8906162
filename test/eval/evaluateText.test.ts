import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng } from '../../src/backend/random';
import { UNet, unetConfig } from '../../src/models/unet';
import { Clip } from '../../src/models/clip';
import { scheduleConfig } from '../../src/schedule/betas';
import { saveModelWeights } from '../../src/io/checkpointFile';
import { loadClip } from '../../src/node/pipelineParts';
import { folderFiles, writePipelineManifest } from '../../src/io/pipeline';
import { loadTextEncoder, saveTextEncoder } from '../../src/node/pipelineParts';
import { generateFromText, loadTextToImagePipeline, TextUNetCheckpointConfig } from '../../src/pipelines/textToImage';
import { loadClassifier } from '../../src/eval/classifier';
import { classify } from '../../src/eval/conditionalAccuracy';
import { clipScore } from '../../src/eval/clipScore';
import { shippedClassifiersDir } from '../../src/eval/features';
import { digitAttributes, measureDigit, MNIST_CAPTION_THRESHOLDS } from '../../src/data/captions';
import { coloredMnistPrompt, COLORED_MNIST_HELD_OUT } from '../../src/data/coloredMnist';
import { loadCaptionedDataset } from '../../src/data/captioned';
import { measureColors } from '../../src/eval/colorAgreement';
import { textToImageAsTextPipeline } from '../../src/pipelines/loadPipeline';
import { loadTextPipeline } from '../../src/node/loadPipeline';
import {
  attributeAgreement, attributeAgreementTable, colorAgreement, colorAgreementTable, evalPrompts, evaluateTextPipeline, TextEvalOptions, textEvalMarkdownRow,
  TEXT_EVAL_TABLE_HEADER,
} from '../../src/eval/evaluateText';

// A hand-built text pipeline: an untrained tiny UNet (random, non-zero output conv, so samples are noise)
// cross-attending to a tiny CLIP's text tower. Everything checked here is plumbing: counts, bounds, and
// agreement with the same images regenerated and measured directly.
let root: string;
let pipelineDir: string;
let clipFile: string;
const MNIST_CLASSIFIER = path.join(shippedClassifiersDir(), 'mnist.safetensors');

beforeAll(async () => {
  await useBackend('wasm');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-text-'));
  pipelineDir = path.join(root, 'pipeline');
  fs.mkdirSync(pipelineDir);
  const clip = new Clip({
    image: { inChannels: 1, imageSize: 32, channels: [8], groups: 4, embedDim: 16 },
    text: { maxLength: 24, dim: 16, layers: 1, heads: 2, mlpRatio: 2, embedDim: 16, seed: 12 },
    seed: 11, // seeds whose untrained towers give positive cosines (CLIPScore clamps negatives to 0)
  });
  clipFile = path.join(root, 'clip.safetensors');
  await saveModelWeights(clipFile, clip, { kind: 'clip', config: { clip: clip.config } });
  clip.dispose();
  const text = await loadTextEncoder(clipFile);
  await saveTextEncoder(path.join(pipelineDir, 'text_encoder.safetensors'), text);
  const ucfg = unetConfig({
    inChannels: 1, sampleSize: 32, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [16], heads: 2,
    timeEmbeddingDim: 32, contextDim: 16, zeroInitOutput: false,
  });
  const unet = new UNet(ucfg, new Rng(3));
  const config: TextUNetCheckpointConfig = {
    unet: ucfg, schedule: scheduleConfig({ kind: 'cosine', timesteps: 100 }), dataset: 'mnist', imageSize: 28, imageChannels: 1,
    space: 'pixel', latentScaleFactor: null, textEncoder: text.config,
  };
  await saveModelWeights(path.join(pipelineDir, 'unet.safetensors'), unet, { kind: 'unet', config: { ...config }, step: 42 });
  unet.dispose();
  text.dispose();
  await writePipelineManifest(pipelineDir, {
    design: 'pixel',
    parts: { unet: { file: 'unet.safetensors', kind: 'unet' }, text_encoder: { file: 'text_encoder.safetensors', kind: 'text-encoder' } },
  });
});

const BASE: TextEvalOptions = { pipeline: '', dataset: 'mnist', n: 8, referenceLimit: 40, sampler: 'ddim', steps: 2, guidance: 2, seed: 1, kid: false, batchSize: 4 };

describe('evalPrompts', () => {
  it('gives one prompt per class from the template', () => {
    expect(evalPrompts('mnist').prompts).toEqual(Array.from({ length: 10 }, (_, d) => `a handwritten ${d}`));
    expect(evalPrompts('colored-mnist', 'a red {n} on black').prompts[3]).toBe('a red 3 on black');
    const f = evalPrompts('fashion-mnist');
    expect(f.template).toBe('a photo of {class}');
    expect(f.prompts[0]).toBe('a photo of a t-shirt');
    expect(f.prompts[9]).toBe('a photo of an ankle boot');
    expect(evalPrompts('cifar10').prompts[0]).toBe('a photo of an airplane');
    expect(() => evalPrompts('cifar10', 'a {n}')).toThrow(/must contain \{class\}/);
    expect(() => evalPrompts('mnist', 'a digit')).toThrow(/must contain \{n\}/);
  });
});

describe('evaluateTextPipeline', () => {
  it('streams FID, KID, classifier accuracy and CLIP score; both agree with the regenerated images', async () => {
    const before = tf.memory().numTensors;
    const grid = path.join(root, 'grid.png');
    // n = 10 in batches of 5: every digit is asked for once, so whichever digit the classifier sees in noise scores a hit.
    const r = await evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, n: 10, batchSize: 5, kid: true, evalClip: clipFile, gridFile: grid });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.n).toBe(10);
    expect(r.referenceCount).toBe(40);
    expect(r.step).toBe(42);
    expect(r.space).toBe('pixel');
    expect(r.features).toBe('mnist'); // the default: the dataset's shipped classifier
    expect(r.promptTemplate).toBe('a handwritten {n}');
    expect(Number.isFinite(r.fid) && r.fid > 0).toBe(true);
    expect(r.kid?.subsetSize).toBe(10);
    expect(r.classifier).toBe(MNIST_CLASSIFIER);
    expect(fs.existsSync(grid)).toBe(true);

    // Regenerate the same two batches (same prompts, seed, firstIndex) and measure them directly.
    const pipeline = await loadTextToImagePipeline(folderFiles(pipelineDir));
    const classifier = await loadClassifier(MNIST_CLASSIFIER);
    const clip = await loadClip(clipFile);
    let correct = 0;
    const scores: number[] = [];
    const perClass = new Array<number>(10).fill(0);
    try {
      for (const start of [0, 5]) {
        const labels = [0, 1, 2, 3, 4].map((i) => start + i);
        const prompts = labels.map((d) => `a handwritten ${d}`);
        const images = await generateFromText(pipeline, { prompts, n: 5, sampler: 'ddim', steps: 2, guidance: 2, seed: 1, firstIndex: start, batchSize: 5 });
        expect(images.shape).toEqual([5, 28, 28, 1]);
        const padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], -1) as tf.Tensor4D; // 28 -> 32 as the CLIP was trained
        const predicted = await classify(classifier, images);
        predicted.forEach((p, i) => {
          if (p === labels[i]) {
            correct++;
            perClass[labels[i]]++;
          }
        });
        scores.push(...(await clipScore(clip, padded, prompts)).scores);
        tf.dispose([images, padded]);
      }
    } finally {
      pipeline.dispose();
      classifier.dispose();
      clip.dispose();
    }
    expect(correct).toBeGreaterThan(0); // so the comparison below can fail
    expect(r.accuracy).toBe(correct / 10);
    // Labels 0..9 once each: per-class accuracy is 0 or 1.
    expect(r.perClassAccuracy).toEqual(perClass);
    const mean = scores.reduce((a, b) => a + b, 0) / 10;
    const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / 10);
    expect(r.clipScore?.clip).toBe(clipFile);
    expect(r.clipScore?.mean).toBeCloseTo(mean, 4);
    expect(r.clipScore?.std).toBeCloseTo(std, 4);
    expect(r.clipScore?.std as number).toBeGreaterThan(0); // different prompts and noise: scores differ

    expect(TEXT_EVAL_TABLE_HEADER.split('\n')[0].split('|').length).toBe(13);
    expect(textEvalMarkdownRow(r, 'cmd')).toMatch(/^\| .*pipeline \| 42 \| 10 \| ddim 2 \| 2 \| \d+\.\d\d \| .* \| \d+\.\d% \| \d+\.\d\d \+- \d+\.\d\d \| \d+\.\d{3} \| `cmd` \|$/);
  });

  it("asks for the test split's captions with promptSource 'test-captions', accuracy against their labels", async () => {
    const before = tf.memory().numTensors;
    const r = await evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, n: 6, batchSize: 3, promptSource: 'test-captions' });
    expect(tf.memory().numTensors).toBe(before);
    const test = loadCaptionedDataset('mnist', 'test', { seed: 0, limit: 6 });
    const captions = test.captions as readonly string[];
    expect(r.promptTemplate).toBe('test captions');
    expect(r.prompts).toEqual(captions);
    expect(new Set(captions).size).toBeGreaterThan(1); // varied templates, so a mix-up of images and prompts shows
    // Regenerate both batches with those captions and classify against the test labels.
    const pipeline = await loadTextToImagePipeline(folderFiles(pipelineDir));
    const classifier = await loadClassifier(MNIST_CLASSIFIER);
    let correct = 0;
    const hits = new Array<number>(10).fill(0);
    const totals = new Array<number>(10).fill(0);
    const labels = test.labels as Int32Array;
    try {
      for (const start of [0, 3]) {
        const images = await generateFromText(pipeline, { prompts: captions.slice(start, start + 3), n: 3, sampler: 'ddim', steps: 2, guidance: 2, seed: 1, firstIndex: start, batchSize: 3 });
        const predicted = await classify(classifier, images);
        predicted.forEach((p, i) => {
          totals[labels[start + i]]++;
          if (p === labels[start + i]) {
            correct++;
            hits[labels[start + i]]++;
          }
        });
        images.dispose();
      }
    } finally {
      pipeline.dispose();
      classifier.dispose();
    }
    expect(r.accuracy).toBe(correct / 6);
    // Per class over the test labels (7, 2, 1, 0, 4, 1): classes never asked for score 0 of 0, so labels i mod 10 would differ.
    expect(r.perClassAccuracy).toEqual(hits.map((h, c) => h / Math.max(1, totals[c])));
    expect(totals.filter((t) => t > 0).length).toBe(5);
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, promptSource: 'test-captions', promptTemplate: 'a {n}' })).rejects.toThrow(/exclude each other/);
  });

  it('skips accuracy (with a note) when the dataset has no classifier, given features', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'no-classifiers-'));
    const before = tf.memory().numTensors;
    const r = await evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, n: 2, referenceLimit: 10, features: 'pixels', classifiersDir: empty });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.accuracy).toBeNull();
    expect(r.perClassAccuracy).toBeNull();
    expect(r.classifier).toBeNull();
    expect(r.clipScore).toBeNull();
    expect(r.features).toBe('pixels');
    expect(r.notes.join('\n')).toMatch(/no classifier at .*mnist\.safetensors: conditional accuracy not measured/);
    expect(textEvalMarkdownRow(r, 'c')).toContain('| - | - |'); // accuracy and CLIP score
  });

  it('refuses what it cannot evaluate', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'no-classifiers-'));
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, n: 1 })).rejects.toThrow(/n must be an integer >= 2/);
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, dataset: 'svhn' as never })).rejects.toThrow(/unknown dataset 'svhn'/);
    // default features need the dataset's classifier
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, classifiersDir: empty })).rejects.toThrow(/no 'mnist' classifier at .*--features pixels/);
    // an accuracy classifier that was asked for must exist
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, classifier: path.join(empty, 'x.safetensors') })).rejects.toThrow(/classifier .*x\.safetensors does not exist/);
    // a class-conditional pipeline (no text_encoder part), and a bare UNet file
    const classDir = path.join(root, 'class-pipeline');
    fs.mkdirSync(classDir, { recursive: true });
    fs.copyFileSync(path.join(pipelineDir, 'unet.safetensors'), path.join(classDir, 'unet.safetensors'));
    await writePipelineManifest(classDir, { design: 'pixel', parts: { unet: { file: 'unet.safetensors', kind: 'unet' } } });
    await expect(evaluateTextPipeline({ ...BASE, pipeline: classDir })).rejects.toThrow(/not a text-to-image pipeline folder/);
    await expect(evaluateTextPipeline({ ...BASE, pipeline: path.join(pipelineDir, 'unet.safetensors') })).rejects.toThrow(/not a text-to-image pipeline folder/);
    // the pipeline's 28x28x1 images against 32x32x3 references, and a bad template
    const before = tf.memory().numTensors;
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, dataset: 'colored-mnist', features: 'pixels' })).rejects.toThrow(/generates 28x28x1 images, the 'colored-mnist' test split has 32x32x3/);
    await expect(evaluateTextPipeline({ ...BASE, pipeline: pipelineDir, promptTemplate: 'a digit' })).rejects.toThrow(/must contain \{n\}/);
    expect(tf.memory().numTensors).toBe(before); // the loaded pipeline is released on refusal
  });
});

describe('attributeAgreement', () => {
  it('measures attribute buckets and digits of the generated images, as a direct measurement does', async () => {
    const pipeline = await loadTextToImagePipeline(folderFiles(pipelineDir));
    try {
      const before = tf.memory().numTensors;
      const opts = { perPrompt: 1, sampler: 'ddim' as const, steps: 2, guidance: 2, seed: 4, batchSize: 5 };
      const r = await attributeAgreement(pipeline, opts);
      expect(tf.memory().numTensors).toBe(before);
      expect(r.words.map((w) => w.word)).toEqual(['thick', 'thin', 'small', 'large']);
      expect(r.words.map((w) => w.attribute)).toEqual(['thickness', 'thickness', 'size', 'size']);
      for (const w of r.words) {
        for (const v of [w.asked, w.baseline, ...w.askedPerDigit, ...w.baselinePerDigit]) {
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThanOrEqual(1);
        }
        expect(w.asked).toBeCloseTo(w.askedPerDigit.reduce((a, b) => a + b, 0) / 10, 12);
      }
      expect(Math.abs(r.digitAccuracy * 40 - Math.round(r.digitAccuracy * 40))).toBeLessThan(1e-9); // 40 attribute images
      expect(r.classifier).toBe(MNIST_CLASSIFIER);
      expect(attributeAgreementTable(r).split('\n')).toHaveLength(7);

      // Regenerate the 'a thick {d}' and baseline groups batch by batch (image k: digit k, noise index k) and measure them here.
      const classifier = await loadClassifier(MNIST_CLASSIFIER);
      try {
        const measure = async (promptOf: (d: number) => string): Promise<{ thick: number[]; strokeWidth: number; hits: number }> => {
          const thick: number[] = [];
          let strokeWidth = 0;
          let hits = 0;
          for (const start of [0, 5]) {
            const digits = [0, 1, 2, 3, 4].map((i) => start + i);
            const images = await generateFromText(pipeline, { prompts: digits.map(promptOf), n: 5, ...opts, firstIndex: start });
            const values = await images.data();
            const predicted = await classify(classifier, images);
            images.dispose();
            digits.forEach((d, i) => {
              const px = Uint8Array.from({ length: 784 }, (_, p) => Math.round((values[i * 784 + p] + 1) * 127.5));
              const m = measureDigit(px, 28, 28);
              thick.push(digitAttributes(m, d, MNIST_CAPTION_THRESHOLDS).thickness === 'thick' ? 1 : 0);
              strokeWidth += m.strokeWidth / 10;
              if (predicted[i] === d) hits++;
            });
          }
          return { thick, strokeWidth, hits };
        };
        const asked = await measure((d) => `a thick ${d}`);
        const base = await measure((d) => `a handwritten ${d}`);
        const thickRow = r.words[0];
        expect(thickRow.askedPerDigit).toEqual(asked.thick);
        expect(thickRow.baselinePerDigit).toEqual(base.thick);
        // Untrained-model noise measures 'thin' throughout, so the buckets alone could not catch a mix-up; the mean widths can.
        expect(thickRow.askedMean).toBeCloseTo(asked.strokeWidth, 10);
        expect(thickRow.baselineMean).toBeCloseTo(base.strokeWidth, 10);
        expect(thickRow.askedMean).not.toBeCloseTo(thickRow.baselineMean, 6); // different prompts, different images
        expect(base.hits).toBeGreaterThan(0);
        expect(r.baselineDigitAccuracy).toBe(base.hits / 10);
      } finally {
        classifier.dispose();
      }
    } finally {
      pipeline.dispose();
    }
  });

  it('refuses a pipeline that does not make MNIST digits', async () => {
    const pipeline = await loadTextToImagePipeline(folderFiles(pipelineDir));
    try {
      const other = { ...pipeline, config: { ...pipeline.config, dataset: 'fashion-mnist' } };
      await expect(attributeAgreement(other, { perPrompt: 1, sampler: 'ddim', steps: 2, guidance: 1, seed: 0, batchSize: 5 })).rejects.toThrow(/needs an MNIST text pipeline/);
      await expect(attributeAgreement(pipeline, { perPrompt: 0, sampler: 'ddim', steps: 2, guidance: 1, seed: 0, batchSize: 5 })).rejects.toThrow(/perPrompt must be a positive integer/);
    } finally {
      pipeline.dispose();
    }
  });
});

describe('colorAgreement', () => {
  // The same tiny design, 3-channel at 32x32 and recorded as a Colored MNIST pipeline.
  let colorDir: string;
  const COLORED_MNIST_CLASSIFIER = path.join(shippedClassifiersDir(), 'colored-mnist.safetensors');
  beforeAll(async () => {
    colorDir = path.join(root, 'color-pipeline');
    fs.mkdirSync(colorDir);
    fs.copyFileSync(path.join(pipelineDir, 'text_encoder.safetensors'), path.join(colorDir, 'text_encoder.safetensors'));
    const text = await loadTextEncoder(path.join(colorDir, 'text_encoder.safetensors'));
    const ucfg = unetConfig({
      inChannels: 3, sampleSize: 32, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [16], heads: 2,
      timeEmbeddingDim: 32, contextDim: 16, zeroInitOutput: false,
    });
    const unet = new UNet(ucfg, new Rng(5));
    const config: TextUNetCheckpointConfig = {
      unet: ucfg, schedule: scheduleConfig({ kind: 'cosine', timesteps: 100 }), dataset: 'colored-mnist', imageSize: 32, imageChannels: 3,
      space: 'pixel', latentScaleFactor: null, textEncoder: text.config,
    };
    await saveModelWeights(path.join(colorDir, 'unet.safetensors'), unet, { kind: 'unet', config: { ...config }, step: 7 });
    unet.dispose();
    text.dispose();
    await writePipelineManifest(colorDir, {
      design: 'pixel',
      parts: { unet: { file: 'unet.safetensors', kind: 'unet' }, text_encoder: { file: 'text_encoder.safetensors', kind: 'text-encoder' } },
    });
  });

  it('measures digit, colour and background of the generated images, as a direct measurement does', async () => {
    const pipeline = await loadTextPipeline(colorDir);
    try {
      const before = tf.memory().numTensors;
      // perPrompt 2 in batches of 3: batches straddle prompts. Guidance 1 (no CFG) halves the cost; CFG is not under test.
      const opts = { perPrompt: 2, sampler: 'ddim' as const, steps: 2, guidance: 1, seed: 5, batchSize: 3 };
      const r = await colorAgreement(pipeline, { ...opts, combinations: 'held-out' });
      expect(tf.memory().numTensors).toBe(before);
      expect(r.count).toBe(40);
      expect(r.classifier).toBe(COLORED_MNIST_CLASSIFIER);
      expect([r.sampler, r.steps, r.guidance, r.seed]).toEqual(['ddim', 2, 1, 5]);
      expect(r.perTriple.map((t) => t.triple)).toEqual(COLORED_MNIST_HELD_OUT);
      expect(r.perTriple[0].prompt).toBe(coloredMnistPrompt(0, 0, 0));
      expect(r.perTriple[0].prompt).toBe('a red 0 on a black background');
      for (const v of [r.digit, r.color, r.background, r.all, r.noInk, ...r.perTriple.flatMap((t) => [t.digit, t.color, t.background, t.all])]) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
      expect(r.all).toBeLessThanOrEqual(Math.min(r.digit, r.color, r.background));
      for (const key of ['digit', 'color', 'background', 'all'] as const) expect(r[key]).toBeCloseTo(r.perTriple.reduce((s, t) => s + t[key], 0) / 20, 12);
      const table = colorAgreementTable([{ ...r, combinations: 'seen' }, r]).split('\n');
      expect(table).toHaveLength(4);
      expect(table[2]).toMatch(/^\| seen \| 40 \| \d+\.\d% \| \d+\.\d% \| \d+\.\d% \| \d+\.\d% \| \d+\.\d% \|$/);
      expect(table[3]).toMatch(/^\| held-out \| 40 \| /);

      // Regenerate the first four held-out batches (images 0..11 = triples 0..5; image k: triple floor(k / 2), noise index k)
      // and measure them here.
      const classifier = await loadClassifier(COLORED_MNIST_CLASSIFIER);
      const hits = COLORED_MNIST_HELD_OUT.slice(0, 6).map(() => [0, 0, 0, 0]);
      try {
        for (let start = 0; start < 12; start += 3) {
          const b = 3;
          const owners = Array.from({ length: b }, (_, i) => Math.floor((start + i) / 2));
          const prompts = owners.map((t) => coloredMnistPrompt(COLORED_MNIST_HELD_OUT[t].digit, COLORED_MNIST_HELD_OUT[t].color, COLORED_MNIST_HELD_OUT[t].background));
          const images = await pipeline.generate({ prompts, n: b, sampler: 'ddim', steps: 2, guidance: 1, seed: 5, firstIndex: start, batchSize: 3 });
          expect(images.shape).toEqual([b, 32, 32, 3]);
          const values = await images.data();
          const predicted = await classify(classifier, images);
          images.dispose();
          owners.forEach((t, i) => {
            const px = Uint8Array.from({ length: 3072 }, (_, p) => Math.min(255, Math.max(0, Math.round((values[i * 3072 + p] + 1) * 127.5))));
            const m = measureColors(px);
            const want = COLORED_MNIST_HELD_OUT[t];
            const ok = [predicted[i] === want.digit, m.digitColor === want.color, m.background === want.background];
            ok.forEach((v, j) => (hits[t][j] += v ? 1 : 0));
            hits[t][3] += ok.every((v) => v) ? 1 : 0;
          });
        }
      } finally {
        classifier.dispose();
      }
      expect(r.perTriple.slice(0, 6).map((t) => [t.digit, t.color, t.background, t.all])).toEqual(hits.map((h) => h.map((v) => v / 2)));
      // So the comparison can fail: untrained noise still hits some digits or backgrounds.
      expect(hits.some((h) => h[0] > 0 || h[2] > 0)).toBe(true);
    } finally {
      pipeline.dispose();
    }
  });

  it('refuses pipelines that do not make 32x32 RGB Colored MNIST images, and bad counts', async () => {
    const mnist = textToImageAsTextPipeline(await loadTextToImagePipeline(folderFiles(pipelineDir)), 42);
    const color = await loadTextPipeline(colorDir);
    try {
      const before = tf.memory().numTensors;
      const opts = { perPrompt: 1, combinations: 'seen' as const, steps: 2, seed: 0 };
      await expect(colorAgreement(mnist, opts)).rejects.toThrow(/needs a Colored MNIST text pipeline \(dataset 'colored-mnist', 32x32x3 images\), got dataset 'mnist', 28x28x1/);
      await expect(colorAgreement({ ...color, dataset: 'cifar10' }, opts)).rejects.toThrow(/got dataset 'cifar10', 32x32x3/);
      await expect(colorAgreement(color, { ...opts, perPrompt: 0 })).rejects.toThrow(/perPrompt must be a positive integer, got 0/);
      await expect(colorAgreement(color, { ...opts, batchSize: 1.5 })).rejects.toThrow(/batchSize must be a positive integer, got 1.5/);
      await expect(colorAgreement(color, { ...opts, combinations: 'all' as never })).rejects.toThrow(/must be 'seen' or 'held-out', got 'all'/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      mnist.dispose();
      color.dispose();
    }
  });
});
