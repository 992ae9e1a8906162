/**
 * Evaluates a pixel pipeline the way the mission judges generation: generate
 * n images (labels cycling through the classes), stream them through a
 * feature extractor against the dataset's test split (FID, optional KID) and,
 * for class-conditional models, through the dataset's classifier (conditional
 * accuracy). Images are generated, measured and dropped batch by batch.
 */
import * as tf from '@tensorflow/tfjs';
import { loadDataset, DatasetName } from '../data/load';
import { loadFeatureExtractor, FeatureExtractor, CLASSIFIER_FEATURE_NAMES, shippedClassifiersDir } from './features';
import { datasetSource, extractSourceFeatures, ImageSource } from './imageFolderStats';
import { frechetDistance } from './frechet';
import { kernelInceptionDistance, KidResult } from './kid';
import { loadClassifier, Classifier } from './classifier';
import { classify } from './conditionalAccuracy';
import { clipScore, toClipInput } from './clipScore';
import { Clip } from '../models/clip';
import { loadClip } from '../node/pipelineParts';
import { saveImageGrid } from '../io/png';
import { SamplerName } from '../sample/types';
import { generate } from '../pipelines/pixelDiffusion';
import { loadPixelPipeline } from '../node/loadPipeline';
import * as path from 'path';

export interface PixelEvalOptions {
  /** Pipeline folder or UNet .safetensors. */
  readonly pipeline: string;
  /** The reference data: its test split. */
  readonly dataset: DatasetName;
  readonly dataDir?: string;
  /** Images to generate. */
  readonly n: number;
  /** Reference images (a seeded random subset of the test split); default all. */
  readonly referenceLimit?: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
  /** Feature extractor spec (see loadFeatureExtractor); default the dataset's classifier. */
  readonly features?: string;
  /** Also compute KID (keeps the features: n x F floats). */
  readonly kid: boolean;
  /** Images per generation batch. */
  readonly batchSize: number;
  /** Write a grid of the first images here (optional). */
  readonly gridFile?: string;
  /** A CLIP checkpoint scoring each image against the prompt of its label (class-conditional models). */
  readonly evalClip?: string;
  /** The prompt of each class for the CLIP score (index = label), e.g. "a handwritten 7". */
  readonly classPrompts?: readonly string[];
  readonly onLog?: (line: string) => void;
}

export interface PixelEvalResult {
  readonly pipeline: string;
  readonly step: number | null;
  readonly dataset: string;
  readonly n: number;
  readonly referenceCount: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
  readonly features: string;
  readonly fid: number;
  readonly fidNotes: readonly string[];
  readonly kid: Pick<KidResult, 'mean' | 'std' | 'numSubsets' | 'subsetSize'> | null;
  /** Mean and std of the CLIP score of each image against its label's prompt, or null. */
  readonly clipScore: { mean: number; std: number; clip: string } | null;
  /** Fraction of images the dataset's classifier labels as requested (class-conditional models). */
  readonly accuracy: number | null;
  readonly perClassAccuracy: number[] | null;
  readonly secondsPerImage: number;
}

export async function evaluatePixelPipeline(opts: PixelEvalOptions): Promise<PixelEvalResult> {
  const log = opts.onLog ?? (() => undefined);
  if (!Number.isInteger(opts.n) || opts.n < 2) throw new Error(`eval: n must be an integer >= 2 (FID needs a covariance), got ${opts.n}`);
  const pipeline = await loadPixelPipeline(opts.pipeline);
  const featureSpec = opts.features ?? opts.dataset;
  let extractor: FeatureExtractor | null = null;
  let classifier: Classifier | null = null;
  let clip: Clip | null = null;
  try {
    const { unet, config } = pipeline;
    const numClasses = unet.config.numClasses;
    if (opts.evalClip !== undefined) {
      if (numClasses === null) throw new Error('eval: --eval-clip needs a class-conditional model (the prompt of each image is its label\'s)');
      if (opts.classPrompts === undefined || opts.classPrompts.length !== numClasses) {
        throw new Error(`eval: the CLIP score needs one prompt per class (${numClasses}), got ${opts.classPrompts?.length ?? 0}`);
      }
      clip = await loadClip(opts.evalClip);
    }
    extractor = await loadFeatureExtractor(featureSpec, { pixelSize: { height: config.imageSize, width: config.imageSize, channels: unet.config.inChannels } });
    if (numClasses !== null) {
      if (!(CLASSIFIER_FEATURE_NAMES as readonly string[]).includes(opts.dataset)) throw new Error(`eval: no classifier for dataset '${opts.dataset}' to measure conditional accuracy`);
      classifier = await loadClassifier(path.join(shippedClassifiersDir(), `${opts.dataset}.safetensors`));
    }
    const test = loadDataset(opts.dataset, 'test', { dataDir: opts.dataDir });
    const reference = await extractSourceFeatures(datasetSource(test, { limit: opts.referenceLimit, randomSubset: 0 }), extractor, { keepFeatures: opts.kid });
    log(`reference: ${reference.source}, ${reference.count} images`);

    const labelOf = (i: number): number => (numClasses === null ? -1 : i % numClasses);
    let correct = 0;
    const perClassHits = new Float64Array(numClasses ?? 0);
    const perClassTotal = new Float64Array(numClasses ?? 0);
    let sampleSeconds = 0;
    let clipSum = 0;
    let clipSumSq = 0;
    const cls = classifier;
    const generated: ImageSource = {
      name: `generated by ${pipeline.source}`,
      count: opts.n,
      size: { height: config.imageSize, width: config.imageSize, channels: unet.config.inChannels },
      async *batches(batchSize: number): AsyncGenerator<tf.Tensor4D> {
        for (let start = 0; start < opts.n; start += batchSize) {
          const b = Math.min(batchSize, opts.n - start);
          const labels = numClasses === null ? null : Array.from({ length: b }, (_, i) => labelOf(start + i));
          const t0 = Date.now();
          const images = await generate(pipeline, { n: b, labels, sampler: opts.sampler, steps: opts.steps, guidance: opts.guidance, seed: opts.seed, firstIndex: start });
          sampleSeconds += (Date.now() - t0) / 1000;
          if (start === 0 && opts.gridFile !== undefined) await saveImageGrid(opts.gridFile, images, { cols: numClasses ?? 8 });
          if (clip !== null && labels !== null) {
            const x = toClipInput(clip, images);
            try {
              const { scores } = await clipScore(clip, x, labels.map((l) => (opts.classPrompts as readonly string[])[l]));
              for (const s of scores) {
                clipSum += s;
                clipSumSq += s * s;
              }
            } finally {
              x.dispose();
            }
          }
          if (cls !== null && labels !== null) {
            const predicted = await classify(cls, images);
            predicted.forEach((p, i) => {
              perClassTotal[labels[i]] += 1;
              if (p === labels[i]) {
                perClassHits[labels[i]] += 1;
                correct += 1;
              }
            });
          }
          log(`generated ${start + b}/${opts.n}`);
          yield images;
        }
      },
    };
    const gen = await extractSourceFeatures(generated, extractor, { keepFeatures: opts.kid, batchSize: opts.batchSize });
    const fd = frechetDistance(gen.stats.gaussian(), reference.stats.gaussian());
    const kid = opts.kid && gen.features !== null && reference.features !== null ? await kernelInceptionDistance(gen.features, reference.features) : null;
    return {
      pipeline: pipeline.source,
      step: pipeline.trainingStep,
      dataset: opts.dataset,
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
      clipScore: clip === null ? null : { mean: clipSum / opts.n, std: Math.sqrt(Math.max(0, clipSumSq / opts.n - (clipSum / opts.n) ** 2)), clip: opts.evalClip as string },
      accuracy: numClasses === null ? null : correct / opts.n,
      perClassAccuracy: numClasses === null ? null : Array.from(perClassHits, (h, c) => h / Math.max(1, perClassTotal[c])),
      secondsPerImage: sampleSeconds / opts.n,
    };
  } finally {
    extractor?.dispose();
    classifier?.dispose();
    clip?.dispose();
    pipeline.dispose();
  }
}

/** The result as one Markdown table row (see EVAL_TABLE_HEADER). */
export function evalMarkdownRow(r: PixelEvalResult, command: string): string {
  const kid = r.kid === null ? '-' : `${r.kid.mean.toPrecision(3)} +- ${r.kid.std.toPrecision(2)}`;
  const acc = r.accuracy === null ? '-' : `${(100 * r.accuracy).toFixed(1)}%`;
  const cs = r.clipScore === null ? '-' : `${r.clipScore.mean.toFixed(2)} +- ${r.clipScore.std.toFixed(2)}`;
  return `| ${r.pipeline} | ${r.step ?? '-'} | ${r.n} | ${r.sampler} ${r.steps} | ${r.guidance} | ${r.fid.toFixed(2)} | ${kid} | ${acc} | ${cs} | ${r.secondsPerImage.toFixed(3)} | \`${command}\` |`;
}

export const EVAL_TABLE_HEADER =
  '| model | step | n | sampler | guidance | FID (vs test split) | KID | conditional accuracy | CLIP score | s / image | command |\n|---|---|---|---|---|---|---|---|---|---|---|';
