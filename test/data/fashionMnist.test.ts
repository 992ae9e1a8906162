import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadFashionMnist, FASHION_MNIST_DIR, FASHION_MNIST_CLASS_NAMES } from '../../src/data/fashionMnist';
import { loadDataset } from '../../src/data/load';

const installed = fs.existsSync(path.join(FASHION_MNIST_DIR, 'train-labels-idx1-ubyte.gz'));
const describeIfInstalled = installed ? describe : describe.skip;
const suffix = installed ? '' : ` (SKIPPED: ${FASHION_MNIST_DIR} missing; apt-get install dataset-fashion-mnist)`;

describeIfInstalled(`Fashion-MNIST from ${FASHION_MNIST_DIR}${suffix}`, () => {
  it('loads 60000 train images; the first is an ankle boot', () => {
    const d = loadFashionMnist('train');
    expect([d.name, d.count, d.height, d.width, d.channels]).toEqual(['fashion-mnist', 60000, 28, 28, 1]);
    expect(d.labels![0]).toBe(9);
    expect(d.classNames![d.labels![0]]).toBe('Ankle boot');
    // Fashion-MNIST is balanced: 6000 train images per class.
    const hist = new Array<number>(10).fill(0);
    for (const l of d.labels!) hist[l]++;
    expect(hist).toEqual(new Array<number>(10).fill(6000));
  });

  it('class names match the pictures: sneakers are wide and low, bags tall', () => {
    // Mean fraction of rows (of 28) holding any pixel > 64, over the first 200 train images of each class.
    // Sneakers (a side view of a low shoe) fill well under half the rows; bags fill most of them.
    const d = loadFashionMnist('train', { limit: 2000 });
    const rowsFilled = (i: number): number => {
      let rows = 0;
      for (let y = 0; y < 28; y++) {
        let any = false;
        for (let x = 0; x < 28; x++) any = any || d.images[i * 784 + y * 28 + x] > 64;
        if (any) rows++;
      }
      return rows / 28;
    };
    const meanFill = (name: string): number => {
      const k = d.classNames!.indexOf(name);
      const idx = Array.from(d.labels!.keys()).filter((i) => d.labels![i] === k).slice(0, 200);
      return idx.reduce((s, i) => s + rowsFilled(i), 0) / idx.length;
    };
    expect(meanFill('Sneaker')).toBeLessThan(0.6);
    expect(meanFill('Bag')).toBeGreaterThan(0.75);
    expect(meanFill('Trouser')).toBeGreaterThan(0.9);
  });

  it('loads 10000 test images with a limit option', () => {
    expect(loadFashionMnist('test').count).toBe(10000);
    const d = loadDataset('fashion-mnist', 'test', { limit: 5 });
    expect(d.count).toBe(5);
    expect(d.images.length).toBe(5 * 784);
  });
});

describe('Fashion-MNIST errors', () => {
  it('tells how to install the data when files are missing', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'fmnist-'));
    try {
      expect(() => loadFashionMnist('train', { dir: empty })).toThrow(/train-images-idx3-ubyte\.gz not found; .*apt-get install dataset-fashion-mnist/);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('has the 10 class names in label order (Fashion-MNIST README: 7 Sneaker, 8 Bag)', () => {
    expect(FASHION_MNIST_CLASS_NAMES).toEqual([
      'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
    ]);
  });
});
