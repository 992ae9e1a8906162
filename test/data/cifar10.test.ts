import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { keyedRng } from '../../src/backend/random';
import { loadCifar10, CIFAR10_CLASS_NAMES } from '../../src/data/cifar10';
import { loadDataset } from '../../src/data/load';

/**
 * Writes CIFAR-10 binary batches of `perBatch` records each. Images are made
 * in NHWC first and encoded to the file's label + R plane + G plane + B plane
 * layout here, so the loader's CHW -> NHWC conversion is checked against an
 * independent encoder.
 */
function writeCifar(dir: string, perBatch: number): { train: Uint8Array; trainLabels: number[]; test: Uint8Array; testLabels: number[] } {
  const rng = keyedRng(0, 'cifar-fixture');
  const make = (n: number): { nhwc: Uint8Array; labels: number[] } => {
    const nhwc = new Uint8Array(n * 32 * 32 * 3);
    for (let i = 0; i < nhwc.length; i++) nhwc[i] = rng.int(256);
    return { nhwc, labels: Array.from({ length: n }, () => rng.int(10)) };
  };
  const encode = (nhwc: Uint8Array, labels: number[], from: number, n: number): Uint8Array => {
    const out = new Uint8Array(n * 3073);
    for (let r = 0; r < n; r++) {
      out[r * 3073] = labels[from + r];
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            out[r * 3073 + 1 + c * 1024 + y * 32 + x] = nhwc[(((from + r) * 32 + y) * 32 + x) * 3 + c];
          }
        }
      }
    }
    return out;
  };
  const train = make(5 * perBatch);
  const test = make(perBatch);
  for (let b = 0; b < 5; b++) {
    fs.writeFileSync(path.join(dir, `data_batch_${b + 1}.bin`), encode(train.nhwc, train.labels, b * perBatch, perBatch));
  }
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), encode(test.nhwc, test.labels, 0, perBatch));
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), CIFAR10_CLASS_NAMES.join('\n') + '\n\n');
  return { train: train.nhwc, trainLabels: train.labels, test: test.nhwc, testLabels: test.labels };
}

describe('CIFAR-10 binary loader', () => {
  let root: string;
  let dir: string;
  let ref: ReturnType<typeof writeCifar>;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'cifar-'));
    dir = path.join(root, 'cifar-10-batches-bin');
    fs.mkdirSync(dir);
    ref = writeCifar(dir, 5);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('round-trips train and test records to NHWC', () => {
    const train = loadCifar10('train', { dataDir: dir });
    expect([train.name, train.split, train.count, train.height, train.width, train.channels]).toEqual(['cifar10', 'train', 25, 32, 32, 3]);
    expect(Buffer.from(train.images).equals(Buffer.from(ref.train))).toBe(true);
    expect(Array.from(train.labels!)).toEqual(ref.trainLabels);
    expect(train.classNames).toEqual(CIFAR10_CLASS_NAMES);
    const test = loadCifar10('test', { dataDir: dir });
    expect(test.count).toBe(5);
    expect(Buffer.from(test.images).equals(Buffer.from(ref.test))).toBe(true);
    expect(Array.from(test.labels!)).toEqual(ref.testLabels);
  });

  it('accepts the parent folder and a limit spanning batches', () => {
    const d = loadDataset('cifar10', 'train', { dataDir: root, limit: 7 });
    expect(d.count).toBe(7);
    expect(Buffer.from(d.images).equals(Buffer.from(ref.train.subarray(0, 7 * 3072)))).toBe(true);
    expect(Array.from(d.labels!)).toEqual(ref.trainLabels.slice(0, 7));
  });

  it('explains how to download when the folder is missing', () => {
    expect(() => loadCifar10('train', { dataDir: path.join(root, 'nope') }))
      .toThrow(/cifar-10-binary\.tar\.gz.*--data-dir/);
    expect(() => loadDataset('cifar10', 'train')).toThrow(/needs a data folder; download https:\/\/www\.cs\.toronto\.edu/);
  });

  it('rejects a file whose size is not a multiple of 3073, naming it', () => {
    const bad = path.join(root, 'bad-size');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'test_batch.bin'), new Uint8Array(3073 * 2 + 5));
    expect(() => loadCifar10('test', { dataDir: bad })).toThrow(/test_batch\.bin is 6151 bytes, not a multiple of the 3073-byte record/);
    expect(() => loadCifar10('train', { dataDir: bad })).toThrow(/missing .*data_batch_1\.bin/);
  });

  it('rejects a label above 9, naming the file and record', () => {
    const bad = path.join(root, 'bad-label');
    fs.mkdirSync(bad);
    const bytes = new Uint8Array(3073 * 3);
    bytes[3073 * 2] = 10;
    fs.writeFileSync(path.join(bad, 'test_batch.bin'), bytes);
    expect(() => loadCifar10('test', { dataDir: bad })).toThrow(/test_batch\.bin record 2 has label 10, expected 0\.\.9/);
  });

  it('rejects a batches.meta.txt without 10 names', () => {
    const bad = path.join(root, 'bad-meta');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'test_batch.bin'), new Uint8Array(3073));
    fs.writeFileSync(path.join(bad, 'batches.meta.txt'), 'cat\ndog\n');
    expect(() => loadCifar10('test', { dataDir: bad })).toThrow(/lists 2 class names, expected 10/);
  });
});
