/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 60,000 train
 * + 10,000 test grayscale 28x28 images of clothing in 10 classes, in MNIST's
 * IDX format.
 *
 * Read from Debian's package `dataset-fashion-mnist`, which installs
 * /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
 * (`apt-get install dataset-fashion-mnist`); another folder with the same file
 * names (gzipped or not) can be given as `dir`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DatasetSplit, ImageDataset } from './dataset';
import { loadIdxDataset } from './idx';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Label order from the dataset's README (/usr/share/doc/dataset-fashion-mnist/README.md.gz): 7 Sneaker, 8 Bag. */
export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export interface FashionMnistOptions {
  /** Folder with the IDX files (default FASHION_MNIST_DIR). */
  readonly dir?: string;
  /** Keep only the first `limit` images of the split (default: all). */
  readonly limit?: number;
}

function findFile(dir: string, base: string): string {
  for (const name of [`${base}.gz`, base]) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`Fashion-MNIST: ${path.join(dir, base)}.gz not found; install the Debian package with ` +
    '`apt-get install dataset-fashion-mnist` (files go to ' + FASHION_MNIST_DIR + '), or pass the folder holding the IDX files');
}

/** Loads a Fashion-MNIST split as a uint8 NHWC dataset [N, 28, 28, 1]. */
export function loadFashionMnist(split: DatasetSplit, options: FashionMnistOptions = {}): ImageDataset {
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const prefix = split === 'train' ? 'train' : 't10k';
  return loadIdxDataset({
    name: 'fashion-mnist',
    split,
    imagesPath: findFile(dir, `${prefix}-images-idx3-ubyte`),
    labelsPath: findFile(dir, `${prefix}-labels-idx1-ubyte`),
    classNames: FASHION_MNIST_CLASS_NAMES,
    limit: options.limit,
  });
}
