/**
 * Captioned datasets by name, as the text-conditional trainers use them: MNIST
 * (templates, optionally measured attribute words), Colored MNIST (its own
 * colour captions), Fashion-MNIST and CIFAR-10 (class-name templates). One
 * caption per image, deterministic for a seed.
 */
import { ImageDataset, DatasetSplit } from './dataset';
import { loadDataset } from './load';
import { captionDataset, MNIST_CAPTION_THRESHOLDS } from './captions';
import { loadColoredMnist } from './coloredMnist';

export const CAPTIONED_DATASETS = ['mnist', 'colored-mnist', 'fashion-mnist', 'cifar10'] as const;
export type CaptionedDatasetName = (typeof CAPTIONED_DATASETS)[number];

export interface CaptionedDatasetOptions {
  /** Seed of the captions (and of Colored MNIST's colours). */
  readonly seed: number;
  /** MNIST: add measured thickness / size / slant words (thresholds from the 60k training digits). */
  readonly attributes?: boolean;
  /** First N images only. */
  readonly limit?: number;
  /** Folder of cifar10 (required) or fashion-mnist (optional). */
  readonly dataDir?: string;
  /** Colored MNIST: which (digit, colour, background) triples (default: 'seen' for train, 'all' for test). */
  readonly combinations?: 'seen' | 'held-out' | 'all';
}

export function isCaptionedDatasetName(s: string): s is CaptionedDatasetName {
  return (CAPTIONED_DATASETS as readonly string[]).includes(s);
}

/** The split of `name`, one caption per image. */
export function loadCaptionedDataset(name: CaptionedDatasetName, split: DatasetSplit, options: CaptionedDatasetOptions): ImageDataset {
  if (!isCaptionedDatasetName(name)) throw new Error(`unknown captioned dataset '${String(name)}' (known: ${CAPTIONED_DATASETS.join(', ')})`);
  const attributes = options.attributes ?? false;
  if (attributes && name !== 'mnist') throw new Error(`attribute words are measured for MNIST digits only, not '${name}'`);
  if (name === 'colored-mnist') {
    return loadColoredMnist(split, { seed: options.seed, limit: options.limit, combinations: options.combinations }).dataset;
  }
  const raw = loadDataset(name, split, { dataDir: options.dataDir, limit: options.limit });
  // Thresholds from all 60k training digits, also with a limit or on the test split (so captions do not depend on either).
  return captionDataset(raw, { seed: options.seed, attributes, thresholds: attributes ? MNIST_CAPTION_THRESHOLDS : undefined });
}
