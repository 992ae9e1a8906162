/** Captions: measurements (closed forms), thresholds, templates, determinism, files. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  captionDataset,
  classCaption,
  computeMnistCaptionThresholds,
  digitAttributes,
  fillTemplate,
  indefiniteArticle,
  measureDataset,
  measureDigit,
  MNIST_CAPTION_THRESHOLDS,
  NUMBER_WORDS,
  quantile,
  readCaptionsFile,
  readCaptionThresholdsFile,
  writeCaptionsFile,
  writeCaptionThresholdsFile,
  FASHION_MNIST_SYNONYMS,
  CIFAR10_SYNONYMS,
} from '../../src/data/captions';
import { ImageDataset, takeFirst } from '../../src/data/dataset';
import { loadMnist } from '../../src/data/mnist';
import { Rng } from '../../src/backend/random';

/** A 28x28 image with the listed (x, y) pixels set to 255. */
function image(points: Array<[number, number]>): Uint8Array {
  const img = new Uint8Array(28 * 28);
  for (const [x, y] of points) img[y * 28 + x] = 255;
  return img;
}

function fakeDataset(name: string, labels: number[]): ImageDataset {
  return {
    name,
    split: 'train',
    images: new Uint8Array(labels.length * 4),
    count: labels.length,
    height: 2,
    width: 2,
    channels: 1,
    labels: Int32Array.from(labels),
    classNames: Array.from({ length: 10 }, (_, i) => String(i)),
    captions: null,
  };
}

const mnist = loadMnist('train', { limit: 2000 });

describe('digit measurements', () => {
  it('a vertical bar 3 wide, 20 tall: strokeWidth 2A/P = 120/46, box 3x20, no slant', () => {
    const pts: Array<[number, number]> = [];
    for (let y = 4; y < 24; y++) for (let x = 12; x < 15; x++) pts.push([x, y]);
    const m = measureDigit(image(pts), 28, 28);
    expect(m.inkMass).toBeCloseTo(60, 10);
    expect(m.strokeWidth).toBeCloseTo(120 / 46, 12); // A = 60, P = 2*20 + 2*3
    expect([m.boxWidth, m.boxHeight, m.boxArea]).toEqual([3, 20, 60]);
    expect(m.slant).toBeCloseTo(0, 12);
  });

  it("slant = -mu11/mu02: '/' (top right) is +1, '\\' is -1, a 2:1 shear is +0.5", () => {
    const line = (f: (y: number) => number): Array<[number, number]> => Array.from({ length: 20 }, (_, i) => [f(i + 4), i + 4] as [number, number]);
    expect(measureDigit(image(line((y) => 27 - y)), 28, 28).slant).toBeCloseTo(1, 12);
    expect(measureDigit(image(line((y) => y)), 28, 28).slant).toBeCloseTo(-1, 12);
    // x = 20 - y/2 on even rows only, so the shear is exactly 1/2 pixel per row.
    const even = Array.from({ length: 10 }, (_, i) => [20 - (2 * i + 4) / 2, 2 * i + 4] as [number, number]);
    expect(measureDigit(image(even), 28, 28).slant).toBeCloseTo(0.5, 12);
  });

  it('an empty image measures zero without NaN', () => {
    const m = measureDigit(new Uint8Array(784), 28, 28);
    expect(Object.values(m).every((v) => v === 0)).toBe(true);
  });

  it('quantile is numpy linear interpolation (np.quantile([1, 2, 3, 4, 10], 2/3) = 3.6666666666666665)', () => {
    expect(quantile([10, 2, 4, 1, 3], 2 / 3)).toBeCloseTo(3.6666666666666665, 12);
    expect(quantile([1, 2, 3, 4], 1 / 3)).toBeCloseTo(2, 12);
  });

  it('MNIST_CAPTION_THRESHOLDS are the terciles of all 60k training digits', () => {
    const t = computeMnistCaptionThresholds(loadMnist('train'));
    const flat = (x: typeof t): number[] => [...x.strokeWidth, ...x.slant, ...x.boxArea.flat()];
    const got = flat(t);
    flat(MNIST_CAPTION_THRESHOLDS).forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThan(1e-4));
    // Terciles split the training set into thirds (up to ties).
    const m = measureDataset(mnist);
    const thick = m.filter((x) => x.strokeWidth >= t.strokeWidth[1]).length / m.length;
    expect(thick).toBeGreaterThan(0.28);
    expect(thick).toBeLessThan(0.39);
  });

  it('buckets: below edge 0 low, below edge 1 middle, else high (size per digit)', () => {
    const base = { inkMass: 0, boxWidth: 0, boxHeight: 0 };
    const t = MNIST_CAPTION_THRESHOLDS;
    expect(digitAttributes({ ...base, strokeWidth: 1.0, boxArea: 100, slant: -0.3 }, 1, t)).toEqual({ thickness: 'thin', size: 'small', slant: 'left' });
    expect(digitAttributes({ ...base, strokeWidth: t.strokeWidth[0], boxArea: t.boxArea[1][0], slant: 0.1 }, 1, t)).toEqual({ thickness: 'medium', size: 'medium', slant: 'upright' });
    expect(digitAttributes({ ...base, strokeWidth: 3, boxArea: 180, slant: 0.5 }, 0, t)).toEqual({ thickness: 'thick', size: 'small', slant: 'right' });
    expect(digitAttributes({ ...base, strokeWidth: 3, boxArea: 180, slant: 0.5 }, 1, t).size).toBe('medium');
  });
});

describe('MNIST captions', () => {
  const plain = captionDataset(mnist, { seed: 0, attributes: false });
  const withAttrs = captionDataset(mnist, { seed: 0, attributes: true });
  const digitWords = (c: string): string[] => (c.match(/\b([0-9]|zero|one|two|three|four|five|six|seven|eight|nine)\b/g) ?? []);

  it('name the right digit (numeral or word), and only it, in varied templates', () => {
    const caps = plain.captions as string[];
    const labels = plain.labels as Int32Array;
    caps.forEach((c, i) => expect(digitWords(c)).toEqual([expect.stringMatching(new RegExp(`^(${labels[i]}|${NUMBER_WORDS[labels[i]]})$`))]));
    expect(caps.some((c) => /\b[0-9]\b/.test(c))).toBe(true);
    expect(caps.some((c) => /\bseven\b/.test(c))).toBe(true);
    for (const form of ['a handwritten 7', 'the digit seven', 'seven', 'a drawing of the number 7']) expect(caps).toContain(form);
    expect(new Set(caps.map((c) => c.replace(/\b([0-9]|zero|one|two|three|four|five|six|seven|eight|nine)\b/, 'N'))).size).toBeGreaterThanOrEqual(10);
    expect(caps.some((c) => /thick|thin|small|large|slant|upright|lean/.test(c))).toBe(false);
  });

  it('use agreeing articles ("an 8", "an eight", "a one")', () => {
    const all = [...(plain.captions as string[]), ...(withAttrs.captions as string[])];
    expect(all.some((c) => /\ban (8|eight)\b/.test(c))).toBe(true);
    expect(all.filter((c) => /\ba (8|eight|upright)\b|\ban (one|[0-79]\b|[b-df-hj-np-tv-z])/.test(c))).toEqual([]);
    expect(indefiniteArticle('one')).toBe('a');
    expect(indefiniteArticle('11')).toBe('an');
    expect(fillTemplate('{a} {c} {n} on {a} {b} background', { c: 'orange', n: '3', b: 'navy' })).toBe('an orange 3 on a navy background');
  });

  it('mention attribute words that agree with the measurements', () => {
    const caps = withAttrs.captions as string[];
    const labels = withAttrs.labels as Int32Array;
    const m = measureDataset(mnist);
    let mentions = 0;
    caps.forEach((c, i) => {
      const a = digitAttributes(m[i], labels[i], MNIST_CAPTION_THRESHOLDS);
      if (/\bthick\b/.test(c)) expect(a.thickness).toBe('thick');
      if (/\bthin\b/.test(c)) expect(a.thickness).toBe('thin');
      if (/\bsmall\b/.test(c)) expect(a.size).toBe('small');
      if (/\blarge\b/.test(c)) expect(a.size).toBe('large');
      if (/\bleft\b/.test(c)) expect(a.slant).toBe('left');
      if (/\bright\b/.test(c)) expect(a.slant).toBe('right');
      if (/\bupright\b/.test(c)) expect(a.slant).toBe('upright');
      if (/thick|thin|small|large|left|right|upright/.test(c)) mentions++;
      expect(digitWords(c)).toHaveLength(1);
    });
    expect(mentions / caps.length).toBeGreaterThan(0.4);
    expect(mentions / caps.length).toBeLessThan(0.95);
  });

  it('are deterministic for a seed, depend only on the index, and change with the seed', () => {
    const again = captionDataset(takeFirst(mnist, 300), { seed: 0, attributes: true });
    expect(again.captions).toEqual((withAttrs.captions as string[]).slice(0, 300));
    const other = captionDataset(mnist, { seed: 1, attributes: true }).captions as string[];
    const same = other.filter((c, i) => c === (withAttrs.captions as string[])[i]).length;
    expect(same / other.length).toBeLessThan(0.5);
    expect(withAttrs.images).toBe(mnist.images); // shared, not copied
  });
});

describe('class-name captions', () => {
  it('Fashion-MNIST and CIFAR-10 captions name a synonym of the class', () => {
    const labels = Array.from({ length: 400 }, (_, i) => i % 10);
    for (const [name, synonyms] of [['fashion-mnist', FASHION_MNIST_SYNONYMS], ['cifar10', CIFAR10_SYNONYMS]] as const) {
      const caps = captionDataset(fakeDataset(name, labels), { seed: 5 }).captions as string[];
      caps.forEach((c, i) => expect(synonyms[labels[i]].some((s) => c.includes(s))).toBe(true));
      expect(new Set(caps).size).toBeGreaterThan(40);
    }
    const fashion = captionDataset(fakeDataset('fashion-mnist', labels), { seed: 5 }).captions as string[];
    expect(fashion.some((c) => c.includes('an ankle boot'))).toBe(true);
    expect(fashion.some((c) => /a photo of a (sneaker|trainer|running shoe)/.test(c))).toBe(true);
    expect(classCaption('cifar10', 0, new Rng('x'))).toMatch(/airplane|plane|jet/);
  });

  it('refuse what they cannot caption', () => {
    expect(() => captionDataset({ ...fakeDataset('mnist', [1]), labels: null }, { seed: 0 })).toThrow(/has no labels/);
    expect(() => captionDataset(fakeDataset('image-folder', [1]), { seed: 0 })).toThrow(/no caption generator for dataset 'image-folder'/);
    expect(() => captionDataset(fakeDataset('cifar10', [1]), { seed: 0, attributes: true })).toThrow(/MNIST digits only/);
  });
});

describe('caption files', () => {
  it('round-trip captions (one per line, same order) and thresholds', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'captions-'));
    const caps = ['a 7', 'the digit seven', 'é ✓', ''];
    writeCaptionsFile(path.join(dir, 'c.txt'), caps);
    expect(fs.readFileSync(path.join(dir, 'c.txt'), 'utf8')).toBe('a 7\nthe digit seven\né ✓\n\n');
    expect(readCaptionsFile(path.join(dir, 'c.txt'))).toEqual(caps);
    expect(() => writeCaptionsFile(path.join(dir, 'bad.txt'), ['two\nlines'])).toThrow(/caption 0 contains a line break/);
    writeCaptionThresholdsFile(path.join(dir, 't.json'), MNIST_CAPTION_THRESHOLDS);
    expect(readCaptionThresholdsFile(path.join(dir, 't.json'))).toEqual(MNIST_CAPTION_THRESHOLDS);
    fs.rmSync(dir, { recursive: true });
  });
});
