/**
 * Feature extractors for FID / KID: images [B, H, W, C] in [-1, 1] -> features [B, F].
 *
 *   pixels               the raw pixels, flattened (F = H*W*C): a baseline with no learned features
 *   classifier           penultimate features of a library-trained classifier (classifier.ts),
 *                        e.g. checkpoints/classifiers/mnist.safetensors (128-d, input 32x32x1),
 *                        colored-mnist.safetensors (128-d, input 32x32x3, trained on the digit)
 *   inception:<path>     a user's local TF.js model (layers or graph model.json + weight
 *                        shards, e.g. a converted InceptionV3), read from disk by
 *                        `fileModelHandler`; a rank-4 output is averaged over H, W
 *
 * Bringing images to an extractor's input size (`prepareImages`, stated in the
 * report by `describePreparation`):
 *   - channels: equal -> kept; 1-channel images for a 3-channel extractor -> gray
 *     replicated to RGB; 3-channel images for a 1-channel extractor -> an error
 *     (convert them to grayscale yourself: no silent colour mixing);
 *   - size: equal -> kept; exactly the extractor's `padFrom` size (28x28 for the
 *     MNIST classifier, whose training data was padded 28 -> 32) -> centre-padded
 *     with -1 as in training; any other size -> bilinear resize
 *     (tf.image.resizeBilinear, half-pixel centres, no antialiasing: shrinking by
 *     more than 2x aliases; clean-fid discusses the effect of resizing on FID).
 */
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Classifier, loadClassifier } from './classifier';

export interface ImageSize {
  readonly height: number;
  readonly width: number;
  /** 1 (grayscale) or 3 (RGB). */
  readonly channels: number;
}

/** What an extractor takes: its input size and the native size it pads from (or null). */
export interface InputSpec extends ImageSize {
  /** Images of exactly padFrom x padFrom are centre-padded with -1 instead of resized. */
  readonly padFrom: number | null;
}

export interface FeatureExtractor {
  /** e.g. 'pixels', 'mnist', 'inception:/models/inception/model.json'. */
  readonly name: string;
  /** One line on what the extractor is (for reports). */
  readonly description: string;
  readonly inputSize: InputSpec;
  /** F, the feature dimension. */
  readonly featureDim: number;
  /** images [B, H, W, C] in [-1, 1], any H and W -> [B, F] (prepared by prepareImages). */
  extract(images: tf.Tensor4D): tf.Tensor2D;
  /** Releases the model's weights. */
  dispose(): void;
}

/** Names `--features` accepts for the library's classifiers (checkpoints/classifiers/<name>.safetensors). */
export const CLASSIFIER_FEATURE_NAMES = ['mnist', 'fashion-mnist', 'colored-mnist', 'cifar10'] as const;

// preparation

function formatSize(s: ImageSize): string {
  return `${s.height}x${s.width}x${s.channels}`;
}

/** Throws when images of `size` cannot be fed to `spec` (3-channel images, 1-channel extractor). */
function checkChannels(size: ImageSize, spec: InputSpec, extractorName: string): void {
  if (size.channels === spec.channels || (size.channels === 1 && spec.channels === 3)) return;
  if (size.channels === 3 && spec.channels === 1) {
    throw new Error(`features '${extractorName}' take 1-channel (grayscale) images; received 3-channel (RGB) images ` +
      `${formatSize(size)}: convert them to grayscale first, or use a 3-channel extractor`);
  }
  throw new Error(`features '${extractorName}': images must have 1 or 3 channels, received ${size.channels}`);
}

/** How images of `size` are brought to `spec` (one phrase, for reports). Throws on a channel mismatch. */
export function describePreparation(size: ImageSize, spec: InputSpec, extractorName = 'extractor'): string {
  checkChannels(size, spec, extractorName);
  const steps: string[] = [];
  if (size.channels === 1 && spec.channels === 3) steps.push('gray replicated to RGB');
  if (size.height !== spec.height || size.width !== spec.width) {
    if (spec.padFrom !== null && size.height === spec.padFrom && size.width === spec.padFrom) {
      steps.push(`centre-padded with -1 to ${spec.height}x${spec.width} (as in the classifier's training)`);
    } else {
      steps.push(`bilinear resize to ${spec.height}x${spec.width}`);
    }
  }
  const target = formatSize(spec);
  return steps.length === 0 ? `${formatSize(size)}, used as is` : `${formatSize(size)} -> ${target}: ${steps.join(', ')}`;
}

/** Brings images [B, H, W, C] in [-1, 1] to `spec` as `describePreparation` says. Returns a new tensor. */
export function prepareImages(images: tf.Tensor4D, spec: InputSpec, extractorName = 'extractor'): tf.Tensor4D {
  if (images.rank !== 4) throw new Error(`prepareImages: expected images [B, H, W, C], received shape [${images.shape}]`);
  const [, h, w, c] = images.shape;
  checkChannels({ height: h, width: w, channels: c }, spec, extractorName);
  return tf.tidy(() => {
    let x = images;
    if (c === 1 && spec.channels === 3) x = tf.tile(x, [1, 1, 1, 3]);
    if (h !== spec.height || w !== spec.width) {
      if (spec.padFrom !== null && h === spec.padFrom && w === spec.padFrom) {
        // Same placement as data/batches.ts padTo: top = floor((S - h) / 2).
        const top = Math.floor((spec.height - h) / 2);
        const left = Math.floor((spec.width - w) / 2);
        x = tf.pad(x, [[0, 0], [top, spec.height - h - top], [left, spec.width - w - left], [0, 0]], -1);
      } else {
        x = tf.image.resizeBilinear(x, [spec.height, spec.width], false, true);
      }
    }
    return x === images ? tf.clone(x) : x;
  });
}

// extractors

/** Raw pixels of images brought to `size` (bilinear), flattened: F = H*W*C. */
export function pixelExtractor(size: ImageSize): FeatureExtractor {
  const spec: InputSpec = { ...size, padFrom: null };
  const featureDim = size.height * size.width * size.channels;
  return {
    name: 'pixels',
    description: `pixels: raw values in [-1, 1] at ${formatSize(size)}, ${featureDim}-d`,
    inputSize: spec,
    featureDim,
    extract: (images) => tf.tidy(() => tf.reshape(prepareImages(images, spec, 'pixels'), [images.shape[0], featureDim]) as tf.Tensor2D),
    dispose: () => undefined,
  };
}

/** Penultimate features of a library classifier; takes ownership of `model` (dispose() frees it). */
export function classifierExtractor(model: Classifier, name: string, source = ''): FeatureExtractor {
  const cfg = model.config;
  const spec: InputSpec = { height: cfg.imageSize, width: cfg.imageSize, channels: cfg.channels, padFrom: cfg.padFrom };
  return {
    name,
    description: `classifier ${source || name}: penultimate features (${model.featureDim}-d), input ${formatSize(spec)}` +
      `${cfg.dataset !== null ? `, trained on ${cfg.dataset}` : ''}`,
    inputSize: spec,
    featureDim: model.featureDim,
    extract: (images) => tf.tidy(() => model.features(prepareImages(images, spec, name))),
    dispose: () => model.dispose(),
  };
}

// TF.js models from local files

/**
 * A TF.js IOHandler that loads model.json and its weight shards from disk
 * (tfjs-node's file:// handler is not available with the wasm backend). The
 * shards listed in weightsManifest are read relative to model.json's folder and
 * concatenated in manifest order.
 */
export function fileModelHandler(modelJsonPath: string): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(await fsp.readFile(modelJsonPath, 'utf8')) as tf.io.ModelJSON;
      } catch (e) {
        throw new Error(`${modelJsonPath}: cannot read a TF.js model.json (${(e as Error).message})`);
      }
      if (typeof json !== 'object' || json === null || json.modelTopology === undefined) {
        throw new Error(`${modelJsonPath}: not a TF.js model.json (no modelTopology)`);
      }
      const dir = path.dirname(modelJsonPath);
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          for (const shard of group.paths) {
            const file = path.join(dir, shard);
            let bytes: Buffer;
            try {
              bytes = await fsp.readFile(file);
            } catch (e) {
              throw new Error(`${modelJsonPath}: weight shard '${shard}' cannot be read (${(e as Error).message})`);
            }
            buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
          }
        }
        return [tf.io.getWeightSpecs(manifest), tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}

export interface TfjsModelExtractorOptions {
  /** Value range the model expects (default '[-1,1]', Keras InceptionV3's; '[0,1]' maps x -> (x + 1) / 2). */
  readonly inputRange?: '[-1,1]' | '[0,1]';
  /** Input size when model.json does not fix it (default 299x299x3, Inception's). */
  readonly defaultSize?: ImageSize;
}

/** Loads a TF.js layers or graph model from `<path>` (model.json, or a folder holding one) as an extractor. */
export async function loadTfjsModelExtractor(modelPath: string, options: TfjsModelExtractorOptions = {}): Promise<FeatureExtractor> {
  let jsonPath = modelPath;
  if (fs.existsSync(modelPath) && fs.statSync(modelPath).isDirectory()) jsonPath = path.join(modelPath, 'model.json');
  if (!fs.existsSync(jsonPath)) throw new Error(`TF.js model: ${jsonPath} does not exist (give model.json or its folder)`);
  const raw = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as { format?: string; modelTopology?: { node?: unknown } };
  const isGraph = raw.format === 'graph-model' || (raw.modelTopology !== undefined && raw.modelTopology.node !== undefined);
  const handler = fileModelHandler(jsonPath);
  const model: tf.LayersModel | tf.GraphModel = isGraph ? await tf.loadGraphModel(handler) : await tf.loadLayersModel(handler);
  const inShape = model.inputs[0]?.shape ?? [];
  const fallback = options.defaultSize ?? { height: 299, width: 299, channels: 3 };
  const dimOr = (v: number | null | undefined, d: number): number => (typeof v === 'number' && v > 0 ? v : d);
  const spec: InputSpec = {
    height: dimOr(inShape[1], fallback.height),
    width: dimOr(inShape[2], fallback.width),
    channels: dimOr(inShape[3], fallback.channels),
    padFrom: null,
  };
  const zeroOne = options.inputRange === '[0,1]';
  const name = `inception:${modelPath}`;
  const run = (images: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      let x = prepareImages(images, spec, name);
      if (zeroOne) x = tf.div(tf.add(x, 1), 2);
      const out = model.predict(x);
      const first = out instanceof tf.Tensor ? out : Array.isArray(out) ? out[0] : Object.values(out)[0];
      if (first === undefined) throw new Error(`${name}: the model returned no output`);
      if (first.rank === 4) return tf.mean(first, [1, 2]) as tf.Tensor2D; // [B, h, w, F] -> [B, F]
      if (first.rank === 2) return first as tf.Tensor2D;
      throw new Error(`${name}: expected a [B, F] or [B, h, w, F] output, received shape [${first.shape}]`);
    });
  // Probe one image for the feature dimension.
  const probe = tf.zeros([1, spec.height, spec.width, spec.channels]) as tf.Tensor4D;
  const probeOut = run(probe);
  const featureDim = probeOut.shape[1];
  tf.dispose([probe, probeOut]);
  return {
    name,
    description: `TF.js ${isGraph ? 'graph' : 'layers'} model ${jsonPath}: ${featureDim}-d features, input ${formatSize(spec)} in ${zeroOne ? '[0, 1]' : '[-1, 1]'}`,
    inputSize: spec,
    featureDim,
    extract: run,
    dispose: () => model.dispose(),
  };
}

// by name

/** The folder of the shipped classifiers: the nearest checkpoints/classifiers above this file, else ./checkpoints/classifiers. */
export function shippedClassifiersDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'checkpoints', 'classifiers');
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return path.resolve('checkpoints', 'classifiers');
}

export interface LoadExtractorOptions {
  /** Size for 'pixels' (required for it). */
  readonly pixelSize?: ImageSize;
  /** Where classifier names are looked up (default shippedClassifiersDir()). */
  readonly classifiersDir?: string;
  /** For inception:<path>. */
  readonly tfjsModel?: TfjsModelExtractorOptions;
}

/**
 * `--features` values: 'pixels', 'inception:<path>', a classifier name
 * (mnist | fashion-mnist | colored-mnist | cifar10 -> <classifiersDir>/<name>.safetensors),
 * or a path to a classifier .safetensors.
 */
export async function loadFeatureExtractor(spec: string, options: LoadExtractorOptions = {}): Promise<FeatureExtractor> {
  if (spec === 'pixels') {
    if (options.pixelSize === undefined) throw new Error("features 'pixels' need a size (pixelSize)");
    return pixelExtractor(options.pixelSize);
  }
  if (spec.startsWith('inception:')) {
    const p = spec.slice('inception:'.length);
    if (p.length === 0) throw new Error("features 'inception:<path>' need the path of a TF.js model.json (or its folder)");
    return loadTfjsModelExtractor(p, options.tfjsModel);
  }
  let file: string;
  let name: string;
  if (spec.endsWith('.safetensors')) {
    file = spec;
    name = path.basename(spec, '.safetensors');
  } else if ((CLASSIFIER_FEATURE_NAMES as readonly string[]).includes(spec)) {
    file = path.join(options.classifiersDir ?? shippedClassifiersDir(), `${spec}.safetensors`);
    name = spec;
    if (!fs.existsSync(file)) {
      throw new Error(`features '${spec}': no classifier at ${file}; train one with ` +
        `\`tfjs-diffusion train-classifier --dataset ${spec} --out ${file}\``);
    }
  } else {
    throw new Error(`unknown features '${spec}': expected ${CLASSIFIER_FEATURE_NAMES.join(' | ')} | pixels | inception:<path> | <classifier>.safetensors`);
  }
  return classifierExtractor(await loadClassifier(file), name, file);
}
