/**
 * CIFAR-10 (Krizhevsky 2009): 50,000 train + 10,000 test 32x32 RGB images in
 * 10 classes, read from the standard "binary version"
 * (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), which the user
 * downloads and extracts; nothing is downloaded here.
 *
 * Folder `cifar-10-batches-bin/`:
 *   data_batch_1.bin .. data_batch_5.bin   train, 10,000 records each
 *   test_batch.bin                         test, 10,000 records
 *   batches.meta.txt                       class names, one per line
 * Each record is 3073 bytes: 1 label byte (0..9), then 1024 bytes of red,
 * 1024 of green, 1024 of blue, each plane 32x32 row-major (CHW). We convert to
 * NHWC: out[n, y, x, c] = record[1 + c*1024 + y*32 + x].
 */
import * as fs from 'fs';
import * as path from 'path';
import { DatasetSplit, ImageDataset, validateDataset } from './dataset';

export const CIFAR10_CLASS_NAMES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

const SIDE = 32;
const PLANE = SIDE * SIDE; // 1024
const RECORD = 1 + 3 * PLANE; // 3073

export const CIFAR10_DOWNLOAD_HINT =
  'download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, extract it ' +
  '(tar xzf cifar-10-binary.tar.gz creates cifar-10-batches-bin/) and pass that folder (or its parent) as --data-dir';

export interface Cifar10Options {
  /** Folder `cifar-10-batches-bin/`, or a folder containing it. Required. */
  readonly dataDir: string;
  /** Keep only the first `limit` images of the split (default: all). */
  readonly limit?: number;
}

/** File names of a split, in order. */
export function cifar10Files(split: DatasetSplit): string[] {
  return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
}

/** Resolves `dataDir` to the folder holding the .bin files, or throws with download instructions. */
export function resolveCifar10Dir(dataDir: string): string {
  for (const dir of [dataDir, path.join(dataDir, 'cifar-10-batches-bin')]) {
    if (fs.existsSync(path.join(dir, 'test_batch.bin')) || fs.existsSync(path.join(dir, 'data_batch_1.bin'))) return dir;
  }
  throw new Error(`CIFAR-10: no data_batch_1.bin or test_batch.bin in ${dataDir} or ${path.join(dataDir, 'cifar-10-batches-bin')}; ${CIFAR10_DOWNLOAD_HINT}`);
}

/** Class names from batches.meta.txt (non-empty lines), or the standard names when the file is absent. */
function readClassNames(dir: string): readonly string[] {
  const metaPath = path.join(dir, 'batches.meta.txt');
  if (!fs.existsSync(metaPath)) return CIFAR10_CLASS_NAMES;
  const names = fs.readFileSync(metaPath, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length !== 10) throw new Error(`CIFAR-10: ${metaPath} lists ${names.length} class names, expected 10`);
  return names;
}

/** Converts CIFAR records (label + CHW planes) into NHWC pixels and labels, validating each label. */
function decodeRecords(bytes: Uint8Array, file: string, count: number, pixelsOut: Uint8Array, labelsOut: Int32Array, offset: number): void {
  for (let n = 0; n < count; n++) {
    const rec = n * RECORD;
    const label = bytes[rec];
    if (label > 9) throw new Error(`CIFAR-10: ${file} record ${n} has label ${label}, expected 0..9`);
    labelsOut[offset + n] = label;
    const out = (offset + n) * PLANE * 3;
    for (let p = 0; p < PLANE; p++) {
      pixelsOut[out + 3 * p] = bytes[rec + 1 + p];
      pixelsOut[out + 3 * p + 1] = bytes[rec + 1 + PLANE + p];
      pixelsOut[out + 3 * p + 2] = bytes[rec + 1 + 2 * PLANE + p];
    }
  }
}

/** Loads a CIFAR-10 split as a uint8 NHWC dataset [N, 32, 32, 3]. */
export function loadCifar10(split: DatasetSplit, options: Cifar10Options): ImageDataset {
  const { limit } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new Error(`CIFAR-10: limit must be a non-negative integer, received ${limit}`);
  }
  const dir = resolveCifar10Dir(options.dataDir);
  const files = cifar10Files(split).map((f) => path.join(dir, f));
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length > 0) throw new Error(`CIFAR-10 ${split}: missing ${missing.join(', ')}; ${CIFAR10_DOWNLOAD_HINT}`);

  // Sizes first, so the output is allocated once and only needed files are read.
  const counts: number[] = [];
  let total = 0;
  for (const f of files) {
    if (limit !== undefined && total >= limit) break;
    const size = fs.statSync(f).size;
    if (size % RECORD !== 0) {
      throw new Error(`CIFAR-10: ${f} is ${size} bytes, not a multiple of the ${RECORD}-byte record (1 label + 3*32*32 pixels)`);
    }
    const n = size / RECORD;
    const take = limit === undefined ? n : Math.min(n, limit - total);
    counts.push(take);
    total += take;
  }
  const images = new Uint8Array(total * PLANE * 3);
  const labels = new Int32Array(total);
  let offset = 0;
  for (let i = 0; i < counts.length; i++) {
    const bytes = fs.readFileSync(files[i]);
    decodeRecords(bytes, files[i], counts[i], images, labels, offset);
    offset += counts[i];
  }
  return validateDataset({
    name: 'cifar10',
    split,
    images,
    count: total,
    height: SIDE,
    width: SIDE,
    channels: 3,
    labels,
    classNames: readClassNames(dir),
    captions: null,
  });
}
