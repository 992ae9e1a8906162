/**
 * Evaluates a text-to-image pipeline (pixel, latent or cascade design; loadPipeline.ts) the way
 * evaluatePixel.ts evaluates a class-conditional one: generate n images from
 * one prompt per class (image i gets the prompt of class i mod K), and stream
 * them, batch by batch, through
 *
 *   - a feature extractor, against the dataset's test split     -> FID (and KID)
 *   - the dataset's classifier, when one exists                 -> conditional accuracy
 *   - an evaluation CLIP (optional, --eval-clip)                -> CLIPScore, mean and std over images
 *
 * Prompts: 'a handwritten {n}' for the digit datasets (mnist, colored-mnist;
 * digits 0..9), 'a photo of {class}' for fashion-mnist and cifar10 ({class} is
 * the class's first noun phrase with its article, data/captions.ts: "a photo
 * of an ankle boot").
 *
 * Attribute agreement (MNIST text pipelines trained with attribute captions):
 * does asking for 'a thick 3' give a thick 3? Images generated from
 * 'a {word} {d}' are measured with the caption measurements (data/captions.ts:
 * stroke width, bounding-box area; the digit asked for selects the size
 * thresholds) and the fraction whose bucket is the word asked for is compared
 * with the same fraction for 'a handwritten {d}' (what you get without asking).
 * The noise is paired: image j of digit d uses noise index d * perPrompt + j
 * under every prompt, so a difference comes from the words, not the draws.
 *
 * Colour agreement (Colored MNIST text pipelines): does 'a red 3 on a navy
 * background' give a red 3 on navy? For 20 (digit, colour, background) triples,
 * either seen in training (eval/colorAgreement.ts COLOR_AGREEMENT_SEEN) or the
 * dataset's 20 held-out ones (COLORED_MNIST_HELD_OUT), images generated from
 * coloredMnistPrompt(d, c, b) are measured (measureColors: background from the
 * frame, digit colour from the ink) and classified (the colored-mnist
 * classifier); reported are the fractions with the digit, the colour, the
 * background and all three as asked. Image j of triple t uses noise index
 * t * perPrompt + j in both sets, so seen vs held-out differ by prompt only.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { loadDataset } from '../data/load';
import { ImageDataset } from '../data/dataset';
import { ColorCombination, coloredMnistPrompt, loadColoredMnist } from '../data/coloredMnist';
import { CIFAR10_SYNONYMS, digitAttributes, FASHION_MNIST_SYNONYMS, measureDigit, MnistCaptionThresholds, MNIST_CAPTION_THRESHOLDS } from '../data/captions';
import { loadCaptionedDataset } from '../data/captioned';
import { loadFeatureExtractor, FeatureExtractor, CLASSIFIER_FEATURE_NAMES, shippedClassifiersDir, prepareImages } from './features';
import { datasetSource, extractSourceFeatures, ImageSource } from './imageFolderStats';
import { frechetDistance } from './frechet';
import { kernelInceptionDistance } from './kid';
import { loadClassifier, Classifier } from './classifier';
import { classify } from './conditionalAccuracy';
import { ColorCombinationSet, colorAgreementTriples, measureColors } from './colorAgreement';
import { clipScore, digitPrompts, toClipInput } from './clipScore';
import { Clip } from '../models/clip';
import { loadClip } from '../node/pipelineParts';
import { saveImageGrid } from '../io/png';
import { readPipelineManifest } from '../io/pipeline';
import { PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { SamplerName } from '../sample/types';
import { PixelEvalResult } from './evaluatePixel';
import { TextToImagePipeline } from '../pipelines/textToImage';
import { TextPipeline, TextPipelineDesign, textToImageAsTextPipeline } from '../pipelines/loadPipeline';
import { loadTextPipeline } from '../node/loadPipeline';

// ---------------------------------------------------------------- datasets and prompts

/** Reference datasets of text pipelines (test splits; colored-mnist is generated with seed 0). */
export const TEXT_EVAL_DATASETS = ['mnist', 'fashion-mnist', 'cifar10', 'colored-mnist'] as const;
export type TextEvalDataset = (typeof TEXT_EVAL_DATASETS)[number];

export function isTextEvalDataset(s: string): s is TextEvalDataset {
  return (TEXT_EVAL_DATASETS as readonly string[]).includes(s);
}

/** Default template of the digit datasets ({n} = 0..9). */
export const DIGIT_PROMPT_TEMPLATE = 'a handwritten {n}';
/** Default template of the class datasets ({class} = "a t-shirt", "an airplane", ...). */
export const CLASS_PROMPT_TEMPLATE = 'a photo of {class}';

/** One prompt per class of `dataset` from `template` (default DIGIT_ or CLASS_PROMPT_TEMPLATE). */
export function evalPrompts(dataset: TextEvalDataset, template?: string): { template: string; prompts: string[] } {
  if (dataset === 'mnist' || dataset === 'colored-mnist') {
    const t = template ?? DIGIT_PROMPT_TEMPLATE;
    return { template: t, prompts: digitPrompts(t) };
  }
  const t = template ?? CLASS_PROMPT_TEMPLATE;
  if (!t.includes('{class}')) throw new Error(`eval: the prompt template for '${dataset}' must contain {class}, got "${t}"`);
  const synonyms = dataset === 'fashion-mnist' ? FASHION_MNIST_SYNONYMS : CIFAR10_SYNONYMS;
  return { template: t, prompts: synonyms.map((names) => t.split('{class}').join(names[0])) };
}

function loadReference(dataset: TextEvalDataset, dataDir: string | undefined): ImageDataset {
  if (dataset === 'colored-mnist') return loadColoredMnist('test', { seed: 0 }).dataset;
  return loadDataset(dataset, 'test', { dataDir });
}

/** True when `p` is a pipeline folder whose manifest has a 'text_encoder' part. */
export async function isTextPipelineFolder(p: string): Promise<boolean> {
  if (!fs.existsSync(p) || !fs.statSync(p).isDirectory() || !fs.existsSync(path.join(p, PIPELINE_MANIFEST_FILE))) return false;
  const manifest = await readPipelineManifest(p);
  return manifest.design === 'unclip' || Object.prototype.hasOwnProperty.call(manifest.parts, 'text_encoder');
}

// ---------------------------------------------------------------- FID / KID / accuracy / CLIP score

export interface TextEvalOptions {
  /** Pipeline folder with a 'text_encoder' part. */
  readonly pipeline: string;
  /** The reference data (its test split); default the dataset the pipeline was trained on. */
  readonly dataset?: TextEvalDataset;
  readonly dataDir?: string;
  /** Images to generate. */
  readonly n: number;
  /** Reference images (a seeded random subset of the test split); default all. */
  readonly referenceLimit?: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
  /** Feature extractor spec (see loadFeatureExtractor); default the dataset's classifier, which must exist. */
  readonly features?: string;
  /** Also compute KID (keeps the features: n x F floats). */
  readonly kid: boolean;
  /** Images per generation batch. */
  readonly batchSize: number;
  /** Write a grid of the first batch here (optional). */
  readonly gridFile?: string;
  /** Prompt template: {n} (digit datasets) or {class} (class datasets). */
  readonly promptTemplate?: string;
  /**
   * 'class-prompts' (default): image i is asked for class i mod K with the template's prompt.
   * 'test-captions': image i is asked for the caption of test image i mod count (captions, and Colored
   * MNIST colours, drawn with seed 0: the seed every recipe here trains with), so the prompts follow the
   * test split's distribution (COCO-style FID); accuracy is then against that test image's label.
   */
  readonly promptSource?: 'class-prompts' | 'test-captions';
  /** A CLIP checkpoint (kind 'clip') scoring each image against its prompt. */
  readonly evalClip?: string;
  /** Classifier .safetensors for conditional accuracy (must exist); default <classifiersDir>/<dataset>.safetensors if it exists, else no accuracy. */
  readonly classifier?: string;
  /** Where classifier names are looked up (default shippedClassifiersDir()). */
  readonly classifiersDir?: string;
  readonly onLog?: (line: string) => void;
}

export interface TextEvalResult extends PixelEvalResult {
  /** The pipeline's design ('pixel' | 'latent': the space its UNet works in; 'cascade'). */
  readonly space: TextPipelineDesign;
  readonly promptTemplate: string;
  /** Class prompts: the prompt of class k, image i used prompts[i % K]; test captions: the prompt of image i (i < test count). */
  readonly prompts: readonly string[];
  /** CLIPScore (100 * max(cos, 0)) over the n images: mean and population std. */
  readonly clipScore: { mean: number; std: number; clip: string } | null;
  /** The classifier file behind `accuracy`, or null when none was available. */
  readonly classifier: string | null;
  /** What was skipped or approximated, for the report. */
  readonly notes: readonly string[];
}

export async function evaluateTextPipeline(opts: TextEvalOptions): Promise<TextEvalResult> {
  const log = opts.onLog ?? (() => undefined);
  if (!Number.isInteger(opts.n) || opts.n < 2) throw new Error(`eval: n must be an integer >= 2 (FID needs a covariance), got ${opts.n}`);
  if (opts.dataset !== undefined && !isTextEvalDataset(opts.dataset)) {
    throw new Error(`eval: unknown dataset '${String(opts.dataset)}' for a text pipeline, expected one of ${TEXT_EVAL_DATASETS.join(', ')}`);
  }
  if (!(await isTextPipelineFolder(opts.pipeline))) {
    throw new Error(`eval: ${opts.pipeline} is not a text-to-image pipeline folder (no ${PIPELINE_MANIFEST_FILE} with a 'text_encoder' part); use evaluatePixelPipeline`);
  }
  if (opts.classifier !== undefined && !fs.existsSync(opts.classifier)) throw new Error(`eval: classifier ${opts.classifier} does not exist`);
  const classifiersDir = opts.classifiersDir ?? shippedClassifiersDir();
  const notes: string[] = [];
  const pipeline = await loadTextPipeline(opts.pipeline);
  let extractor: FeatureExtractor | null = null;
  let classifier: Classifier | null = null;
  let clip: Clip | null = null;
  try {
    const trainedOn = pipeline.dataset;
    if (opts.dataset === undefined && !isTextEvalDataset(trainedOn)) {
      throw new Error(`eval: the pipeline was trained on '${trainedOn}'; give the reference dataset (one of ${TEXT_EVAL_DATASETS.join(', ')})`);
    }
    const dataset = opts.dataset ?? (trainedOn as TextEvalDataset);
    if (dataset !== trainedOn) notes.push(`the pipeline was trained on '${trainedOn}', evaluated against '${dataset}'`);
    const byCaption = (opts.promptSource ?? 'class-prompts') === 'test-captions';
    if (byCaption && opts.promptTemplate !== undefined) throw new Error(`eval: a prompt template and promptSource 'test-captions' exclude each other`);
    const classPrompts = evalPrompts(dataset, opts.promptTemplate);
    const numClasses = classPrompts.prompts.length;
    const size = { height: pipeline.imageSize, width: pipeline.imageSize, channels: pipeline.imageChannels };
    const test = byCaption ? loadCaptionedDataset(dataset, 'test', { seed: 0, dataDir: opts.dataDir }) : loadReference(dataset, opts.dataDir);
    // image i: its prompt and the label the classifier should find
    let promptOf: (i: number) => string;
    let labelOf: (i: number) => number;
    let template: string;
    let prompts: readonly string[];
    if (byCaption) {
      const captions = test.captions;
      const testLabels = test.labels;
      if (captions === null || testLabels === null) throw new Error(`eval: the '${dataset}' test split has no captions or labels`);
      promptOf = (i) => captions[i % test.count];
      labelOf = (i) => testLabels[i % test.count];
      template = 'test captions';
      prompts = Array.from({ length: Math.min(opts.n, test.count) }, (_, i) => captions[i]);
    } else {
      promptOf = (i) => classPrompts.prompts[i % numClasses];
      labelOf = (i) => i % numClasses;
      ({ template, prompts } = classPrompts);
    }
    if (test.height !== size.height || test.width !== size.width || test.channels !== size.channels) {
      throw new Error(`eval: the pipeline generates ${size.height}x${size.width}x${size.channels} images, the '${dataset}' test split has ${test.height}x${test.width}x${test.channels}`);
    }

    // feature extractor: default the dataset's classifier, which must be there
    let featureSpec = opts.features;
    if (featureSpec === undefined) {
      const file = path.join(classifiersDir, `${dataset}.safetensors`);
      if (!(CLASSIFIER_FEATURE_NAMES as readonly string[]).includes(dataset) || !fs.existsSync(file)) {
        throw new Error(`eval: no '${dataset}' classifier at ${file} to take FID features from; choose features (--features pixels | inception:<path> | <classifier>.safetensors)`);
      }
      featureSpec = dataset;
    }
    extractor = await loadFeatureExtractor(featureSpec, { pixelSize: size, classifiersDir });

    // conditional accuracy: the dataset's classifier when it exists
    const classifierFile = opts.classifier ?? path.join(classifiersDir, `${dataset}.safetensors`);
    if (fs.existsSync(classifierFile)) {
      classifier = await loadClassifier(classifierFile);
      if (classifier.config.numClasses !== numClasses) {
        throw new Error(`eval: classifier ${classifierFile} has ${classifier.config.numClasses} classes, '${dataset}' has ${numClasses}`);
      }
    } else {
      notes.push(`no classifier at ${classifierFile}: conditional accuracy not measured`);
      log(`note: ${notes[notes.length - 1]}`);
    }

    // CLIP score: the CLIP must see images like its training data
    if (opts.evalClip !== undefined) {
      clip = await loadClip(opts.evalClip);
      const c = clip.config.image;
      if (c.inChannels !== size.channels || c.imageSize < size.height || c.imageSize < size.width) {
        throw new Error(`eval: the CLIP ${opts.evalClip} takes ${c.imageSize}x${c.imageSize}x${c.inChannels} images, the pipeline generates ${size.height}x${size.width}x${size.channels}`);
      }
    }

    const reference = await extractSourceFeatures(datasetSource(test, { limit: opts.referenceLimit, randomSubset: 0 }), extractor, { keepFeatures: opts.kid });
    log(`reference: ${reference.source}, ${reference.count} images; prompts: ` +
      (byCaption ? `the captions of the first ${Math.min(opts.n, test.count)} test images` : prompts.map((p) => `"${p}"`).join(', ')));

    let correct = 0;
    const perClassHits = new Float64Array(numClasses);
    const perClassTotal = new Float64Array(numClasses);
    let clipSum = 0;
    let clipSumSq = 0;
    let sampleSeconds = 0;
    const cls = classifier;
    const evalClip = clip;
    const generated: ImageSource = {
      name: `generated by ${pipeline.source}`,
      count: opts.n,
      size,
      async *batches(batchSize: number): AsyncGenerator<tf.Tensor4D> {
        for (let start = 0; start < opts.n; start += batchSize) {
          const b = Math.min(batchSize, opts.n - start);
          const labels = Array.from({ length: b }, (_, i) => labelOf(start + i));
          const batchPrompts = Array.from({ length: b }, (_, i) => promptOf(start + i));
          const t0 = Date.now();
          const images = await pipeline.generate({
            prompts: batchPrompts, n: b, sampler: opts.sampler, steps: opts.steps, guidance: opts.guidance, seed: opts.seed,
            firstIndex: start, batchSize: opts.batchSize, onWarn: (m) => log(`warning: ${m}`),
          });
          sampleSeconds += (Date.now() - t0) / 1000;
          try {
            if (start === 0 && opts.gridFile !== undefined) await saveImageGrid(opts.gridFile, images, { cols: numClasses });
            if (cls !== null) {
              const predicted = await classify(cls, images);
              predicted.forEach((p, i) => {
                perClassTotal[labels[i]] += 1;
                if (p === labels[i]) {
                  perClassHits[labels[i]] += 1;
                  correct += 1;
                }
              });
            }
            if (evalClip !== null) {
              const x = toClipInput(evalClip, images);
              try {
                const { scores } = await clipScore(evalClip, x, batchPrompts, { batchSize: b });
                for (const s of scores) {
                  clipSum += s;
                  clipSumSq += s * s;
                }
              } finally {
                x.dispose();
              }
            }
          } catch (e) {
            images.dispose();
            throw e;
          }
          log(`generated ${start + b}/${opts.n}`);
          yield images; // disposed by extractSourceFeatures
        }
      },
    };
    const gen = await extractSourceFeatures(generated, extractor, { keepFeatures: opts.kid, batchSize: opts.batchSize });
    const fd = frechetDistance(gen.stats.gaussian(), reference.stats.gaussian());
    const kid = opts.kid && gen.features !== null && reference.features !== null ? await kernelInceptionDistance(gen.features, reference.features) : null;
    const step = pipeline.trainingStep;
    const clipMean = clipSum / opts.n;
    return {
      pipeline: pipeline.source,
      step,
      dataset,
      n: opts.n,
      referenceCount: reference.count,
      sampler: opts.sampler,
      steps: opts.steps,
      guidance: opts.guidance,
      seed: opts.seed,
      features: extractor.name,
      fid: fd.distance,
      fidNotes: fd.notes,
      kid: kid === null ? null : { mean: kid.mean, std: kid.std, numSubsets: kid.numSubsets, subsetSize: kid.subsetSize },
      accuracy: cls === null ? null : correct / opts.n,
      perClassAccuracy: cls === null ? null : Array.from(perClassHits, (h, c) => h / Math.max(1, perClassTotal[c])),
      secondsPerImage: sampleSeconds / opts.n,
      space: pipeline.design,
      promptTemplate: template,
      prompts,
      clipScore: evalClip === null ? null : { mean: clipMean, std: Math.sqrt(Math.max(0, clipSumSq / opts.n - clipMean * clipMean)), clip: opts.evalClip as string },
      classifier: cls === null ? null : classifierFile,
      notes,
    };
  } finally {
    extractor?.dispose();
    classifier?.dispose();
    clip?.dispose();
    pipeline.dispose();
  }
}

/** Columns of textEvalMarkdownRow. */
export const TEXT_EVAL_TABLE_HEADER =
  '| model | step | n | sampler | guidance | FID | KID | cond. accuracy | CLIP score | s/image | command |\n|---|---|---|---|---|---|---|---|---|---|---|';

/** The result as one Markdown table row (see TEXT_EVAL_TABLE_HEADER). */
export function textEvalMarkdownRow(r: TextEvalResult, command: string): string {
  const kid = r.kid === null ? '-' : `${r.kid.mean.toPrecision(3)} +- ${r.kid.std.toPrecision(2)}`;
  const acc = r.accuracy === null ? '-' : `${(100 * r.accuracy).toFixed(1)}%`;
  const cs = r.clipScore === null ? '-' : `${r.clipScore.mean.toFixed(2)} +- ${r.clipScore.std.toFixed(2)}`;
  return `| ${r.pipeline} | ${r.step ?? '-'} | ${r.n} | ${r.sampler} ${r.steps} | ${r.guidance} | ${r.fid.toFixed(2)} | ${kid} | ${acc} | ${cs} | ${r.secondsPerImage.toFixed(3)} | \`${command}\` |`;
}

// ---------------------------------------------------------------- attribute agreement (MNIST)

export const ATTRIBUTE_WORDS = ['thick', 'thin', 'small', 'large'] as const;
export type AttributeWord = (typeof ATTRIBUTE_WORDS)[number];
const ATTRIBUTE_OF: Readonly<Record<AttributeWord, 'thickness' | 'size'>> = { thick: 'thickness', thin: 'thickness', small: 'size', large: 'size' };
/** The prompt without attribute words (the baseline). */
export const ATTRIBUTE_BASELINE_TEMPLATE = 'a handwritten {n}';

/** The prompt asking for `word` on digit d: 'a thick 3'. */
export function attributePrompt(word: AttributeWord, digit: number): string {
  return `a ${word} ${digit}`;
}

export interface AttributeAgreementOptions {
  /** Images per prompt (per word and digit). */
  readonly perPrompt: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
  /** Images per generation batch. */
  readonly batchSize: number;
  /** MNIST classifier for the digit accuracy (default the shipped one). */
  readonly classifier?: string;
  /** Bucket edges (default MNIST_CAPTION_THRESHOLDS, the ones the captions were made with). */
  readonly thresholds?: MnistCaptionThresholds;
  readonly onLog?: (line: string) => void;
}

export interface AttributeWordAgreement {
  readonly word: AttributeWord;
  readonly attribute: 'thickness' | 'size';
  /** Fraction of images prompted 'a {word} {d}' whose measured bucket is `word`. */
  readonly asked: number;
  /** The same fraction for images prompted 'a handwritten {d}' (same noise). */
  readonly baseline: number;
  /** Mean of the measured quantity over the 'a {word} {d}' images: strokeWidth (px) for thickness, boxArea (px^2) for size. */
  readonly askedMean: number;
  /** The same mean over the baseline images. */
  readonly baselineMean: number;
  /** `asked` per digit d = 0..9. */
  readonly askedPerDigit: number[];
  readonly baselinePerDigit: number[];
}

export interface AttributeAgreementResult {
  readonly perPrompt: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
  readonly words: AttributeWordAgreement[];
  /** Fraction of the attribute-prompted images the classifier labels as the digit asked for. */
  readonly digitAccuracy: number;
  /** The same for the baseline images. */
  readonly baselineDigitAccuracy: number;
  readonly classifier: string;
}

/** Per image of one prompt group: measurements, buckets and the classifier's digit. */
interface GroupMeasurements {
  readonly thickness: string[];
  readonly size: string[];
  readonly strokeWidth: number[];
  readonly boxArea: number[];
  readonly predicted: Int32Array;
}

/** attributeAgreementOf for a loaded pixel / latent pipeline. */
export async function attributeAgreement(pipeline: TextToImagePipeline, opts: AttributeAgreementOptions): Promise<AttributeAgreementResult> {
  return attributeAgreementOf(textToImageAsTextPipeline(pipeline, null), opts);
}

/** Attribute agreement of any text pipeline (see the header). Does not dispose the pipeline. */
export async function attributeAgreementOf(pipeline: TextPipeline, opts: AttributeAgreementOptions): Promise<AttributeAgreementResult> {
  const log = opts.onLog ?? (() => undefined);
  const { perPrompt } = opts;
  if (!Number.isInteger(perPrompt) || perPrompt < 1) throw new Error(`attributeAgreement: perPrompt must be a positive integer, got ${perPrompt}`);
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`attributeAgreement: batchSize must be a positive integer, got ${opts.batchSize}`);
  if (pipeline.dataset !== 'mnist' || pipeline.imageChannels !== 1 || pipeline.imageSize !== 28) {
    throw new Error(`attributeAgreement: needs an MNIST text pipeline (28x28x1, the caption thresholds' data), got dataset '${pipeline.dataset}', ` +
      `${pipeline.imageSize}x${pipeline.imageSize}x${pipeline.imageChannels}`);
  }
  const thresholds = opts.thresholds ?? MNIST_CAPTION_THRESHOLDS;
  const classifierFile = opts.classifier ?? path.join(shippedClassifiersDir(), 'mnist.safetensors');
  const classifier = await loadClassifier(classifierFile);
  try {
    const cc = classifier.config;
    if (cc.numClasses !== 10) throw new Error(`attributeAgreement: classifier ${classifierFile} has ${cc.numClasses} classes, expected the 10 digits`);
    const spec = { height: cc.imageSize, width: cc.imageSize, channels: cc.channels, padFrom: cc.padFrom };
    const count = 10 * perPrompt; // image k of a group: digit floor(k / perPrompt), noise index k
    const side = pipeline.imageSize;
    const pixels = side * side;

    /** Generates and measures one group (one prompt per digit), reading each batch back once. */
    const measureGroup = async (promptOf: (digit: number) => string, name: string): Promise<GroupMeasurements> => {
      const out: GroupMeasurements = { thickness: [], size: [], strokeWidth: [], boxArea: [], predicted: new Int32Array(count) };
      for (let start = 0; start < count; start += opts.batchSize) {
        const b = Math.min(opts.batchSize, count - start);
        const digits = Array.from({ length: b }, (_, i) => Math.floor((start + i) / perPrompt));
        const images = await pipeline.generate({
          prompts: digits.map(promptOf), n: b, sampler: opts.sampler, steps: opts.steps, guidance: opts.guidance, seed: opts.seed,
          firstIndex: start, batchSize: opts.batchSize, onWarn: (m) => log(`warning: ${m}`),
        });
        // One read per batch: [b, H*W pixels | predicted digit].
        const packed = tf.tidy(() => {
          const predicted = tf.reshape(tf.cast(tf.argMax(classifier.apply(prepareImages(images, spec, 'classifier')), 1), 'float32'), [b, 1]);
          return tf.concat([tf.reshape(images, [b, pixels]), predicted], 1);
        });
        let values: Float32Array;
        try {
          values = (await packed.data()) as Float32Array;
        } finally {
          tf.dispose([images, packed]);
        }
        const row = pixels + 1;
        for (let i = 0; i < b; i++) {
          const px = new Uint8Array(pixels);
          for (let p = 0; p < pixels; p++) px[p] = Math.min(255, Math.max(0, Math.round((values[i * row + p] + 1) * 127.5)));
          const m = measureDigit(px, side, side);
          const a = digitAttributes(m, digits[i], thresholds);
          out.thickness.push(a.thickness);
          out.size.push(a.size);
          out.strokeWidth.push(m.strokeWidth);
          out.boxArea.push(m.boxArea);
          out.predicted[start + i] = values[i * row + pixels];
        }
      }
      log(`attributes: measured ${count} images of '${name}'`);
      return out;
    };

    /** Fraction of the group's images (all, and per digit) whose bucket is `word`, and the mean measurement. */
    const agreement = (g: GroupMeasurements, word: AttributeWord): { all: number; perDigit: number[]; mean: number } => {
      const thickness = ATTRIBUTE_OF[word] === 'thickness';
      const buckets = thickness ? g.thickness : g.size;
      const values = thickness ? g.strokeWidth : g.boxArea;
      const perDigit = Array.from({ length: 10 }, (_, d) => {
        let hits = 0;
        for (let j = 0; j < perPrompt; j++) if (buckets[d * perPrompt + j] === word) hits++;
        return hits / perPrompt;
      });
      return { all: perDigit.reduce((s, v) => s + v, 0) / 10, perDigit, mean: values.reduce((s, v) => s + v, 0) / count };
    };
    const digitHits = (g: GroupMeasurements): number => g.predicted.reduce((s, p, k) => s + (p === Math.floor(k / perPrompt) ? 1 : 0), 0);

    const baseline = await measureGroup((d) => ATTRIBUTE_BASELINE_TEMPLATE.split('{n}').join(String(d)), ATTRIBUTE_BASELINE_TEMPLATE);
    const words: AttributeWordAgreement[] = [];
    let hits = 0;
    for (const word of ATTRIBUTE_WORDS) {
      const g = await measureGroup((d) => attributePrompt(word, d), attributePrompt(word, 0).replace(/0$/, '{n}'));
      const asked = agreement(g, word);
      const base = agreement(baseline, word);
      words.push({
        word, attribute: ATTRIBUTE_OF[word], asked: asked.all, baseline: base.all, askedMean: asked.mean, baselineMean: base.mean,
        askedPerDigit: asked.perDigit, baselinePerDigit: base.perDigit,
      });
      hits += digitHits(g);
    }
    return {
      perPrompt,
      sampler: opts.sampler,
      steps: opts.steps,
      guidance: opts.guidance,
      seed: opts.seed,
      words,
      digitAccuracy: hits / (ATTRIBUTE_WORDS.length * count),
      baselineDigitAccuracy: digitHits(baseline) / count,
      classifier: classifierFile,
    };
  } finally {
    classifier.dispose();
  }
}

/** The agreement as a Markdown table (one row per word, then the digit accuracy). */
export function attributeAgreementTable(r: AttributeAgreementResult): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  const quantity = (w: AttributeWordAgreement): string => (w.attribute === 'thickness' ? 'stroke width' : 'box area');
  const lines = [
    `| word | measured as asked ('a {word} {n}') | without asking ('${ATTRIBUTE_BASELINE_TEMPLATE}') | mean measurement: asked vs without |`,
    '|---|---|---|---|',
    ...r.words.map((w) => `| ${w.word} | ${pct(w.asked)} | ${pct(w.baseline)} | ${quantity(w)} ${w.askedMean.toFixed(2)} vs ${w.baselineMean.toFixed(2)} |`),
    `| (digit accuracy, classifier) | ${pct(r.digitAccuracy)} | ${pct(r.baselineDigitAccuracy)} | |`,
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------- colour agreement (Colored MNIST)

/** Images per generation batch (and read-back) of colorAgreement by default. */
export const COLOR_AGREEMENT_BATCH_SIZE = 100;

export interface ColorAgreementOptions {
  /** Images per prompt (per triple). */
  readonly perPrompt: number;
  /** The 20 triples asked for: 'seen' (COLOR_AGREEMENT_SEEN) or 'held-out' (COLORED_MNIST_HELD_OUT). */
  readonly combinations: ColorCombinationSet;
  /** Default: the pipeline's (its manifest's, then its design's). */
  readonly sampler?: SamplerName;
  readonly steps?: number;
  readonly guidance?: number;
  readonly seed: number;
  /** Images per generation batch and read-back (default COLOR_AGREEMENT_BATCH_SIZE). */
  readonly batchSize?: number;
  /** Colored MNIST digit classifier .safetensors (default the shipped colored-mnist.safetensors). */
  readonly classifier?: string;
  readonly onLog?: (line: string) => void;
}

/** Fractions over the perPrompt images of one triple (or over all images: ColorAgreementResult). */
export interface ColorFractions {
  /** The classifier's digit is the digit asked for. */
  readonly digit: number;
  /** The measured digit colour is the colour asked for (no ink counts as wrong). */
  readonly color: number;
  /** The measured background is the background asked for. */
  readonly background: number;
  /** All three as asked. */
  readonly all: number;
}

export interface ColorTripleAgreement extends ColorFractions {
  readonly triple: ColorCombination;
  readonly prompt: string;
}

export interface ColorAgreementResult extends ColorFractions {
  readonly combinations: ColorCombinationSet;
  readonly perPrompt: number;
  /** Images measured: 20 * perPrompt. */
  readonly count: number;
  /** As given; null = the pipeline's default. */
  readonly sampler: SamplerName | null;
  readonly steps: number | null;
  readonly guidance: number | null;
  readonly seed: number;
  /** Fraction of the images in which no ink was found (no digit colour measured). */
  readonly noInk: number;
  /** Per triple, in the order of colorAgreementTriples(combinations). */
  readonly perTriple: ColorTripleAgreement[];
  readonly classifier: string;
}

/** Colour agreement of a Colored MNIST text pipeline on one combination set (see the header). Does not dispose the pipeline. */
export async function colorAgreement(pipeline: TextPipeline, opts: ColorAgreementOptions): Promise<ColorAgreementResult> {
  const log = opts.onLog ?? (() => undefined);
  const { perPrompt } = opts;
  const batchSize = opts.batchSize ?? COLOR_AGREEMENT_BATCH_SIZE;
  if (!Number.isInteger(perPrompt) || perPrompt < 1) throw new Error(`colorAgreement: perPrompt must be a positive integer, got ${perPrompt}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`colorAgreement: batchSize must be a positive integer, got ${batchSize}`);
  if (pipeline.dataset !== 'colored-mnist' || pipeline.imageChannels !== 3 || pipeline.imageSize !== 32) {
    throw new Error(`colorAgreement: needs a Colored MNIST text pipeline (dataset 'colored-mnist', 32x32x3 images), got dataset '${pipeline.dataset}', ` +
      `${pipeline.imageSize}x${pipeline.imageSize}x${pipeline.imageChannels}`);
  }
  const triples = colorAgreementTriples(opts.combinations);
  const prompts = triples.map((t) => coloredMnistPrompt(t.digit, t.color, t.background));
  const classifierFile = opts.classifier ?? path.join(shippedClassifiersDir(), 'colored-mnist.safetensors');
  const classifier = await loadClassifier(classifierFile);
  try {
    const cc = classifier.config;
    if (cc.numClasses !== 10) throw new Error(`colorAgreement: classifier ${classifierFile} has ${cc.numClasses} classes, expected the 10 digits`);
    const spec = { height: cc.imageSize, width: cc.imageSize, channels: cc.channels, padFrom: cc.padFrom };
    const count = triples.length * perPrompt; // image k: triple floor(k / perPrompt), noise index k
    const values = pipeline.imageSize * pipeline.imageSize * 3;
    // hits[t] = [digit, colour, background, all] counts over the triple's images
    const hits = triples.map(() => [0, 0, 0, 0]);
    let noInk = 0;
    for (let start = 0; start < count; start += batchSize) {
      const b = Math.min(batchSize, count - start);
      const owner = Array.from({ length: b }, (_, i) => Math.floor((start + i) / perPrompt));
      const images = await pipeline.generate({
        prompts: owner.map((t) => prompts[t]), n: b, sampler: opts.sampler, steps: opts.steps, guidance: opts.guidance, seed: opts.seed,
        firstIndex: start, batchSize, onWarn: (m) => log(`warning: ${m}`),
      });
      // One read per batch: [b, H*W*3 values | predicted digit].
      const packed = tf.tidy(() => {
        const predicted = tf.reshape(tf.cast(tf.argMax(classifier.apply(prepareImages(images, spec, 'classifier')), 1), 'float32'), [b, 1]);
        return tf.concat([tf.reshape(images, [b, values]), predicted], 1);
      });
      let data: Float32Array;
      try {
        data = (await packed.data()) as Float32Array;
      } finally {
        tf.dispose([images, packed]);
      }
      const row = values + 1;
      for (let i = 0; i < b; i++) {
        const px = new Uint8Array(values);
        for (let p = 0; p < values; p++) px[p] = Math.min(255, Math.max(0, Math.round((data[i * row + p] + 1) * 127.5)));
        const m = measureColors(px);
        const t = triples[owner[i]];
        const ok = [data[i * row + values] === t.digit, m.digitColor === t.color, m.background === t.background];
        const h = hits[owner[i]];
        ok.forEach((v, j) => {
          if (v) h[j] += 1;
        });
        if (ok.every((v) => v)) h[3] += 1;
        if (m.inkPixels === 0) noInk += 1;
      }
      log(`colours (${opts.combinations}): measured ${start + b}/${count} images`);
    }
    const fractions = (h: readonly number[], n: number): ColorFractions => ({ digit: h[0] / n, color: h[1] / n, background: h[2] / n, all: h[3] / n });
    const total = [0, 1, 2, 3].map((j) => hits.reduce((s, h) => s + h[j], 0));
    return {
      combinations: opts.combinations,
      perPrompt,
      count,
      sampler: opts.sampler ?? null,
      steps: opts.steps ?? null,
      guidance: opts.guidance ?? null,
      seed: opts.seed,
      ...fractions(total, count),
      noInk: noInk / count,
      perTriple: triples.map((triple, t) => ({ triple, prompt: prompts[t], ...fractions(hits[t], perPrompt) })),
      classifier: classifierFile,
    };
  } finally {
    classifier.dispose();
  }
}

/** Colour agreement results (e.g. seen and held-out) as a Markdown table, one row per combination set. */
export function colorAgreementTable(results: readonly ColorAgreementResult[]): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  return [
    '| combinations | images | digit (classifier) | digit colour | background | all three | no ink |',
    '|---|---|---|---|---|---|---|',
    ...results.map((r) => `| ${r.combinations} | ${r.count} | ${pct(r.digit)} | ${pct(r.color)} | ${pct(r.background)} | ${pct(r.all)} | ${pct(r.noInk)} |`),
  ].join('\n');
}
