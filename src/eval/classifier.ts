/**
 * A small CNN image classifier, trained per dataset by the library
 * (`train-classifier`), used to judge generated images:
 *   - FID features: its penultimate layer (`features()`, 128-d), in place of
 *     Inception for 28x28 digits;
 *   - conditional accuracy: does a sample generated for label y look like a y?
 *
 * Network (each conv: 3x3, bias, GroupNorm, SiLU; stride-2 convs halve the size):
 *
 *   x [B, S, S, C] -> convs.0 .. convs.k -> flatten -> fc, SiLU -> features [B, F] -> head -> logits [B, K]
 *
 * The flatten keeps where things are (a global average pool over the last 4x4
 * map trained markedly worse on digits).
 *
 * Input size: MNIST-like data (28x28) is fed centre-padded to `imageSize` = 32
 * with -1 (black), exactly as the diffusion pipeline pads it (BatchIterator
 * padTo), so generated 32x32 samples go in unchanged. `padFrom` records this:
 * features.ts pads images of that size and resizes any other size.
 * Data already at imageSize (Colored MNIST, 32x32x3) goes in as is (padFrom null).
 * `channels` (1 or 3) comes from the training data; it shapes only the first
 * conv's weight [3, 3, channels, C0].
 *
 * Parameter names (PyTorch-style): convs.{i}.conv.weight/bias, convs.{i}.norm.weight/bias,
 * fc.weight/bias, head.weight/bias.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Conv2d } from '../nn/conv2d';
import { GroupNorm } from '../nn/groupNorm';
import { Linear } from '../nn/linear';
import { silu } from '../nn/activations';
import { keyedRng } from '../backend/random';
import { loadModelWeights, readModelConfig } from '../io/checkpointFile';

/** The checkpoint `kind` of classifier files. */
export const CLASSIFIER_KIND = 'classifier';

export interface ClassifierConv {
  /** Output channels (must be divisible by the GroupNorm groups). */
  readonly channels: number;
  /** 1 keeps the size, 2 halves it. */
  readonly stride: 1 | 2;
}

export interface ClassifierConfig {
  /** Input height = width. */
  readonly imageSize: number;
  /** Input channels: 1 (grayscale) or 3 (RGB). */
  readonly channels: number;
  /** Number of classes K. */
  readonly numClasses: number;
  /** The conv stack, in order. */
  readonly convs: readonly ClassifierConv[];
  /** F: width of the fully connected layer after the flattened conv output (the features). */
  readonly featureDim: number;
  /** GroupNorm groups in every conv block. */
  readonly groups: number;
  /** Native data size that was centre-padded (with -1) to imageSize in training, or null. */
  readonly padFrom: number | null;
  /** Dataset the weights were trained on (informational), or null. */
  readonly dataset: string | null;
  /** Names of the classes (index = label), or null. */
  readonly classNames: readonly string[] | null;
}

export const CLASSIFIER_DEFAULTS: ClassifierConfig = {
  imageSize: 32, // MNIST 28x28 padded by 2 on each side, like the diffusion models' input
  channels: 1,
  numClasses: 10,
  // 32 -> 16 -> 8 -> 4; ~1.8M multiply-adds per image, so it trains in minutes on wasm.
  convs: [
    { channels: 32, stride: 2 },
    { channels: 64, stride: 2 },
    { channels: 64, stride: 2 },
  ],
  featureDim: 128, // fc: 4*4*64 = 1024 -> 128
  groups: 8, // GroupNorm groups (32 channels -> 4 per group)
  padFrom: 28, // MNIST / Fashion-MNIST native size
  dataset: null,
  classNames: null,
};

/** Merges `partial` over the defaults and validates. */
export function classifierConfig(partial: Partial<ClassifierConfig> = {}): ClassifierConfig {
  const c: ClassifierConfig = { ...CLASSIFIER_DEFAULTS, ...partial };
  const positive = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`classifier config: ${name} must be a positive integer, received ${v}`);
  };
  positive('imageSize', c.imageSize);
  positive('numClasses', c.numClasses);
  positive('groups', c.groups);
  positive('featureDim', c.featureDim);
  if (c.channels !== 1 && c.channels !== 3) throw new Error(`classifier config: channels must be 1 or 3, received ${c.channels}`);
  if (c.convs.length === 0) throw new Error('classifier config: convs must list at least one conv');
  let size = c.imageSize;
  c.convs.forEach((conv, i) => {
    positive(`convs[${i}].channels`, conv.channels);
    if (conv.stride !== 1 && conv.stride !== 2) throw new Error(`classifier config: convs[${i}].stride must be 1 or 2, received ${String(conv.stride)}`);
    if (conv.channels % c.groups !== 0) {
      throw new Error(`classifier config: convs[${i}].channels = ${conv.channels} is not divisible by groups = ${c.groups}`);
    }
    size = Math.ceil(size / conv.stride);
  });
  if (c.padFrom !== null && (!Number.isInteger(c.padFrom) || c.padFrom <= 0 || c.padFrom > c.imageSize)) {
    throw new Error(`classifier config: padFrom must be null or an integer in [1, imageSize = ${c.imageSize}], received ${c.padFrom}`);
  }
  if (c.classNames !== null && c.classNames.length !== c.numClasses) {
    throw new Error(`classifier config: ${c.classNames.length} classNames for numClasses = ${c.numClasses}`);
  }
  return c;
}

// model

class ConvBlock extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm;

  constructor(inChannels: number, spec: ClassifierConv, groups: number, seed: number) {
    super();
    const rng = keyedRng(seed, 'conv');
    this.conv = this.addChild('conv', new Conv2d({ inChannels, outChannels: spec.channels, kernelSize: 3, stride: spec.stride, padding: 1, rng }));
    this.norm = this.addChild('norm', new GroupNorm({ numGroups: groups, numChannels: spec.channels }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return this.norm.applySilu(this.conv.apply(x)) as tf.Tensor4D;
  }
}

/** The conv blocks, named '0', '1', ... (torch.nn.ModuleList). */
class ConvStack extends Module {
  readonly blocks: ConvBlock[] = [];

  push(block: ConvBlock): void {
    this.addChild(String(this.blocks.length), block);
    this.blocks.push(block);
  }
}

export class Classifier extends Module {
  readonly config: ClassifierConfig;
  private readonly convs: ConvStack;
  private readonly fc: Linear;
  private readonly head: Linear;

  /** Builds a classifier with seeded PyTorch-default initialisation. */
  constructor(config: Partial<ClassifierConfig> = {}, seed = 0) {
    super();
    this.config = classifierConfig(config);
    this.convs = this.addChild('convs', new ConvStack());
    let inChannels = this.config.channels;
    let size = this.config.imageSize;
    this.config.convs.forEach((spec, i) => {
      this.convs.push(new ConvBlock(inChannels, spec, this.config.groups, keyedRng(seed, 'classifier', i).int(2 ** 31)));
      inChannels = spec.channels;
      size = Math.ceil(size / spec.stride); // 3x3, padding 1
    });
    const flat = size * size * inChannels;
    this.fc = this.addChild('fc', new Linear({ inFeatures: flat, outFeatures: this.config.featureDim, rng: keyedRng(seed, 'fc') }));
    this.head = this.addChild('head', new Linear({ inFeatures: this.config.featureDim, outFeatures: this.config.numClasses, rng: keyedRng(seed, 'head') }));
  }

  /** Feature dimension F. */
  get featureDim(): number {
    return this.config.featureDim;
  }

  private checkInput(x: tf.Tensor4D): void {
    const { imageSize: s, channels: c } = this.config;
    if (x.rank !== 4 || x.shape[1] !== s || x.shape[2] !== s || x.shape[3] !== c) {
      throw new Error(`Classifier: expected images [B, ${s}, ${s}, ${c}] in [-1, 1], received [${x.shape}] ` +
        '(features.ts prepareImages pads or resizes other sizes)');
    }
  }

  /** Penultimate features: x [B, S, S, C] in [-1, 1] -> silu(fc(flatten(convs(x)))) [B, F]. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    this.checkInput(x);
    return tf.tidy(() => {
      let h = x;
      for (const block of this.convs.blocks) h = block.apply(h);
      const flat = tf.reshape(h, [x.shape[0], h.shape[1] * h.shape[2] * h.shape[3]]); // [B, s*s*C]
      return silu(this.fc.apply(flat)) as tf.Tensor2D;
    });
  }

  /** Class logits [B, K]. */
  apply(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => this.head.apply(this.features(x)) as tf.Tensor2D);
  }

  /** Features [B, F] and logits [B, K] from one forward pass. */
  featuresAndLogits(x: tf.Tensor4D): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const features = this.features(x);
    const logits = tf.tidy(() => this.head.apply(features) as tf.Tensor2D);
    return { features, logits };
  }
}

/** Builds a classifier from a checkpoint's config and loads its weights (kind 'classifier'). */
export async function loadClassifier(file: string): Promise<Classifier> {
  const info = await readModelConfig(file);
  if (info.kind !== CLASSIFIER_KIND) throw new Error(`${file}: expected a '${CLASSIFIER_KIND}' checkpoint, got kind '${info.kind}'`);
  let model: Classifier;
  try {
    model = new Classifier(info.config as Partial<ClassifierConfig>);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  try {
    await loadModelWeights(file, model, { expectKind: CLASSIFIER_KIND });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
