/**
 * Captions for labelled datasets, so a text encoder, CLIP and a text-to-image
 * model can train on them.
 *
 * MNIST: one caption per image from varied templates, the digit as a numeral or
 * a word ("a handwritten 7", "the digit seven", "seven", "a drawing of the
 * number 7"), optionally with attribute words MEASURED from the image:
 *
 *   thickness  strokeWidth = 2 A / P: A = ink pixels (>= INK_THRESHOLD), P = ink/background
 *              pixel edges. A stroke of length l and width w has A = l w, P ~ 2 l,
 *              so 2A/P ~ w. Raw ink mass is not used: it grows with the digit's length
 *              (a 0 has ~2.3x the ink of a 1) rather than with its stroke width.
 *   size       boxArea = bounding-box width x height of the ink pixels.
 *   slant      -mu11 / mu02 of the intensity distribution (second central moments,
 *              x right, y down): the shear x ~ slant * (y - y_c) that would make the
 *              digit upright (the "deskewing" slope). > 0 leans right ("/"), < 0 left.
 *
 * Thresholds cut each measurement into three buckets at TERCILES of the training
 * set (numpy's linear quantile at 1/3 and 2/3):
 *   thin | (no word) | thick          strokeWidth, global terciles
 *   small | (no word) | large         boxArea, terciles PER DIGIT: MNIST digits were
 *                                     scaled to fit a 20x20 box, so box height is ~20 px
 *                                     for all and width mostly says which digit it is
 *                                     (a 1 is narrow); "small" means small for that digit
 *   slanted left | upright | slanted right   slant, global terciles
 * The constants MNIST_CAPTION_THRESHOLDS were computed with
 * computeMnistCaptionThresholds on all 60,000 training images (a test recomputes
 * them); write them next to a caption file with writeCaptionThresholdsFile.
 *
 * Each attribute is mentioned with probability ATTRIBUTE_MENTION_PROB (and never
 * for the middle bucket of thickness and size, which has no word), so captions
 * range from "a 7" to "a small thick 7 slanted to the left".
 *
 * Fashion-MNIST and CIFAR-10: templates and synonyms over the class names
 * ("a photo of a trainer", "an ankle boot").
 *
 * Every choice for image i is drawn from keyedRng(seed, 'caption', split, i), so
 * captions depend only on (seed, split, index), not on limits or batching.
 */
import * as fs from 'fs';
import { keyedRng, Rng } from '../backend/random';
import { ImageDataset, imageSize, pixelsOf } from './dataset';

// ---------------------------------------------------------------- words

export const NUMBER_WORDS: readonly string[] = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

/** 'a' or 'an' for the word that follows ("an 8", "an eight", "a one", "an orange 3"). */
export function indefiniteArticle(nextWord: string): 'a' | 'an' {
  const w = nextWord.toLowerCase();
  if (/^(one|uni|use|eu)/.test(w)) return 'a';
  if (/^[aeiou]/.test(w) || /^(8|11|18)(\D|$)/.test(w)) return 'an';
  return 'a';
}

/**
 * Fills a template: `{a}` becomes the article agreeing with the next word; other
 * `{key}`s come from `slots` (may be empty); runs of spaces collapse.
 */
export function fillTemplate(template: string, slots: Readonly<Record<string, string>>): string {
  let s = template.replace(/\{(\w+)\}/g, (m, key: string) => {
    if (key === 'a') return m;
    const v = slots[key];
    if (v === undefined) throw new Error(`fillTemplate: no value for {${key}} in "${template}"`);
    return v;
  });
  s = s.replace(/ +/g, ' ').replace(/ ,/g, ',').trim();
  return s.replace(/\{a\}\s+(\S+)/g, (_, next: string) => `${indefiniteArticle(next)} ${next}`);
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

// ---------------------------------------------------------------- MNIST measurements

/** Pixels at or above this value (of 255) count as ink for strokeWidth and the bounding box. */
export const INK_THRESHOLD = 128;

export interface DigitMeasurements {
  /** Sum of intensities / 255. */
  readonly inkMass: number;
  /** 2 A / P, ~ stroke width in pixels (0 for an empty image). */
  readonly strokeWidth: number;
  readonly boxWidth: number;
  readonly boxHeight: number;
  readonly boxArea: number;
  /** -mu11 / mu02: > 0 leans right, < 0 leans left (0 for an empty image). */
  readonly slant: number;
}

/** Measures one grayscale image (H*W uint8, row-major). */
export function measureDigit(pixels: Uint8Array, height: number, width: number): DigitMeasurements {
  if (pixels.length !== height * width) throw new Error(`measureDigit: ${pixels.length} pixels for a ${height}x${width} image (expected ${height * width})`);
  let mass = 0;
  let sx = 0;
  let sy = 0;
  let area = 0;
  let perimeter = 0;
  let x0 = width;
  let x1 = -1;
  let y0 = height;
  let y1 = -1;
  const ink = (x: number, y: number): boolean => x >= 0 && y >= 0 && x < width && y < height && pixels[y * width + x] >= INK_THRESHOLD;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = pixels[y * width + x];
      const v = p / 255;
      mass += v;
      sx += v * x;
      sy += v * y;
      if (p >= INK_THRESHOLD) {
        area++;
        if (!ink(x + 1, y)) perimeter++;
        if (!ink(x - 1, y)) perimeter++;
        if (!ink(x, y + 1)) perimeter++;
        if (!ink(x, y - 1)) perimeter++;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  let mu11 = 0;
  let mu02 = 0;
  if (mass > 0) {
    const cx = sx / mass;
    const cy = sy / mass;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = pixels[y * width + x] / 255;
        mu11 += v * (x - cx) * (y - cy);
        mu02 += v * (y - cy) * (y - cy);
      }
    }
  }
  const boxWidth = area > 0 ? x1 - x0 + 1 : 0;
  const boxHeight = area > 0 ? y1 - y0 + 1 : 0;
  return {
    inkMass: mass,
    strokeWidth: perimeter > 0 ? (2 * area) / perimeter : 0,
    boxWidth,
    boxHeight,
    boxArea: boxWidth * boxHeight,
    slant: mu02 > 0 ? -mu11 / mu02 : 0,
  };
}

/** Measures every image of a grayscale dataset. */
export function measureDataset(dataset: ImageDataset): DigitMeasurements[] {
  if (dataset.channels !== 1) throw new Error(`measureDataset: '${dataset.name}' has ${dataset.channels} channels; digit measurements need grayscale (1)`);
  const size = imageSize(dataset);
  const pixels = pixelsOf(dataset, 'measureDataset');
  return Array.from({ length: dataset.count }, (_, i) =>
    measureDigit(pixels.subarray(i * size, (i + 1) * size), dataset.height, dataset.width));
}

// ---------------------------------------------------------------- thresholds

/** Bucket edges [low|middle, middle|high]: value < edges[0] is low, < edges[1] middle, else high. */
export type Edges = readonly [number, number];

export interface MnistCaptionThresholds {
  /** strokeWidth terciles over all training digits. */
  readonly strokeWidth: Edges;
  /** slant terciles over all training digits. */
  readonly slant: Edges;
  /** boxArea terciles per digit 0..9. */
  readonly boxArea: readonly Edges[];
}

/** computeMnistCaptionThresholds(loadMnist('train')), rounded to 4 decimals. */
export const MNIST_CAPTION_THRESHOLDS: MnistCaptionThresholds = {
  strokeWidth: [1.754, 2.1905],
  slant: [-0.0101, 0.2236],
  boxArea: [
    [320, 360],
    [120, 200],
    [320, 360],
    [280, 340],
    [280, 320],
    [300, 360],
    [240, 320],
    [280, 320],
    [266, 320],
    [240, 280],
  ],
};

/** numpy.quantile(values, q) with the default linear interpolation. */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) throw new Error('quantile: no values');
  const s = Float64Array.from(values).sort();
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (pos - lo) * (s[hi] - s[lo]);
}

function terciles(values: ArrayLike<number>): Edges {
  return [quantile(values, 1 / 3), quantile(values, 2 / 3)];
}

/** Terciles of the measurements of a labelled grayscale digit dataset (use the training split). */
export function computeMnistCaptionThresholds(train: ImageDataset): MnistCaptionThresholds {
  const labels = train.labels;
  if (labels === null) throw new Error(`computeMnistCaptionThresholds: dataset '${train.name}' has no labels`);
  const m = measureDataset(train);
  const boxArea: Edges[] = [];
  for (let d = 0; d < 10; d++) {
    const areas = m.filter((_, i) => labels[i] === d).map((x) => x.boxArea);
    if (areas.length === 0) throw new Error(`computeMnistCaptionThresholds: no images of digit ${d} in '${train.name}' (${train.count} images)`);
    boxArea.push(terciles(areas));
  }
  return { strokeWidth: terciles(m.map((x) => x.strokeWidth)), slant: terciles(m.map((x) => x.slant)), boxArea };
}

// ---------------------------------------------------------------- attributes

export type Thickness = 'thin' | 'medium' | 'thick';
export type Size = 'small' | 'medium' | 'large';
export type Slant = 'left' | 'upright' | 'right';

export interface DigitAttributes {
  readonly thickness: Thickness;
  readonly size: Size;
  readonly slant: Slant;
}

function bucket(v: number, edges: Edges): 0 | 1 | 2 {
  return v < edges[0] ? 0 : v < edges[1] ? 1 : 2;
}

export function digitAttributes(m: DigitMeasurements, digit: number, thresholds: MnistCaptionThresholds): DigitAttributes {
  const areaEdges = thresholds.boxArea[digit];
  if (areaEdges === undefined) throw new Error(`digitAttributes: no boxArea thresholds for digit ${digit} (have ${thresholds.boxArea.length})`);
  return {
    thickness: (['thin', 'medium', 'thick'] as const)[bucket(m.strokeWidth, thresholds.strokeWidth)],
    size: (['small', 'medium', 'large'] as const)[bucket(m.boxArea, areaEdges)],
    slant: (['left', 'upright', 'right'] as const)[bucket(m.slant, thresholds.slant)],
  };
}

// ---------------------------------------------------------------- MNIST captions

/** Probability that a caption mentions each (nameable) attribute when attributes are on. */
export const ATTRIBUTE_MENTION_PROB = 0.5;

/** {a}: article; {adj}: adjectives with a trailing space, or ''; {n}: numeral or word; {slant}: suffix or ''. */
export const MNIST_TEMPLATES: readonly string[] = [
  '{a} {adj}handwritten {n}{slant}',
  'the {adj}digit {n}{slant}',
  '{adj}{n}{slant}',
  '{a} drawing of the {adj}number {n}{slant}',
  'the {adj}number {n}{slant}',
  '{a} {adj}{n}{slant}',
  '{a} {adj}handwritten digit {n}{slant}',
  'an image of {a} {adj}{n}{slant}',
  'a photo of the {adj}digit {n}{slant}',
  '{a} {adj}{n} written by hand{slant}',
];

const SLANT_SUFFIXES: Readonly<Record<'left' | 'right', readonly string[]>> = {
  left: [' slanted left', ' slanted to the left', ', leaning left'],
  right: [' slanted right', ' slanted to the right', ', leaning right'],
};

/** One MNIST caption for `digit`; `attributes` null gives a caption without attribute words. */
export function mnistCaption(digit: number, attributes: DigitAttributes | null, rng: Rng): string {
  if (!Number.isInteger(digit) || digit < 0 || digit > 9) throw new Error(`mnistCaption: digit must be 0..9, got ${digit}`);
  const template = pick(rng, MNIST_TEMPLATES);
  const n = rng.uniform() < 0.5 ? String(digit) : NUMBER_WORDS[digit];
  const adjectives: string[] = [];
  let slant = '';
  if (attributes !== null) {
    if (attributes.size !== 'medium' && rng.uniform() < ATTRIBUTE_MENTION_PROB) adjectives.push(attributes.size);
    if (attributes.thickness !== 'medium' && rng.uniform() < ATTRIBUTE_MENTION_PROB) adjectives.push(attributes.thickness);
    if (rng.uniform() < ATTRIBUTE_MENTION_PROB) {
      if (attributes.slant === 'upright') adjectives.push('upright');
      else slant = pick(rng, SLANT_SUFFIXES[attributes.slant]);
    }
  }
  return fillTemplate(template, { adj: adjectives.map((a) => a + ' ').join(''), n, slant });
}

// ---------------------------------------------------------------- class-name captions

/** Noun phrases (with their article) per Fashion-MNIST class, in label order. */
export const FASHION_MNIST_SYNONYMS: readonly (readonly string[])[] = [
  ['a t-shirt', 'a top', 'a tee'],
  ['a pair of trousers', 'a pair of pants', 'trousers', 'pants'],
  ['a pullover', 'a sweater', 'a jumper'],
  ['a dress'],
  ['a coat', 'a jacket'],
  ['a sandal', 'a pair of sandals'],
  ['a shirt', 'a button-up shirt'],
  ['a sneaker', 'a trainer', 'a running shoe'],
  ['a bag', 'a handbag', 'a purse'],
  ['an ankle boot', 'a boot'],
];

/** Noun phrases per CIFAR-10 class, in label order. */
export const CIFAR10_SYNONYMS: readonly (readonly string[])[] = [
  ['an airplane', 'a plane', 'an aeroplane', 'a jet'],
  ['a car', 'an automobile'],
  ['a bird'],
  ['a cat', 'a kitten'],
  ['a deer'],
  ['a dog', 'a puppy'],
  ['a frog', 'a toad'],
  ['a horse'],
  ['a ship', 'a boat'],
  ['a truck', 'a lorry'],
];

export const FASHION_MNIST_TEMPLATES: readonly string[] = ['{np}', 'a photo of {np}', 'a picture of {np}', 'a product photo of {np}', 'a grayscale photo of {np}'];
export const CIFAR10_TEMPLATES: readonly string[] = ['{np}', 'a photo of {np}', 'a picture of {np}', 'a small photo of {np}', 'a blurry photo of {np}', 'a low-resolution photo of {np}'];

/** One caption for class `label` of 'fashion-mnist' or 'cifar10'. */
export function classCaption(dataset: 'fashion-mnist' | 'cifar10', label: number, rng: Rng): string {
  const [synonyms, templates] = dataset === 'fashion-mnist' ? [FASHION_MNIST_SYNONYMS, FASHION_MNIST_TEMPLATES] : [CIFAR10_SYNONYMS, CIFAR10_TEMPLATES];
  const names = synonyms[label];
  if (names === undefined) throw new Error(`classCaption: label ${label} outside [0, ${synonyms.length}) for '${dataset}'`);
  return fillTemplate(pick(rng, templates), { np: pick(rng, names) });
}

// ---------------------------------------------------------------- datasets

export interface CaptionDatasetOptions {
  /** Seed of the template / word choices. */
  readonly seed: number;
  /** MNIST only: add measured attribute words (default false). */
  readonly attributes?: boolean;
  /** MNIST attribute thresholds (default MNIST_CAPTION_THRESHOLDS, from the training split). */
  readonly thresholds?: MnistCaptionThresholds;
}

/** The dataset with one caption per image (images and labels shared, not copied). */
export function captionDataset(dataset: ImageDataset, options: CaptionDatasetOptions): ImageDataset {
  const { seed, attributes = false, thresholds = MNIST_CAPTION_THRESHOLDS } = options;
  const labels = dataset.labels;
  if (labels === null) throw new Error(`captionDataset: dataset '${dataset.name}' has no labels to caption from`);
  const rngFor = (i: number): Rng => keyedRng(seed, 'caption', dataset.split, i);
  let captions: string[];
  switch (dataset.name) {
    case 'mnist': {
      const measured = attributes ? measureDataset(dataset) : null;
      captions = Array.from(labels, (d, i) =>
        mnistCaption(d, measured === null ? null : digitAttributes(measured[i], d, thresholds), rngFor(i)));
      break;
    }
    case 'fashion-mnist':
    case 'cifar10': {
      if (attributes) throw new Error(`captionDataset: attribute words are measured for MNIST digits only, not '${dataset.name}'`);
      const name = dataset.name;
      captions = Array.from(labels, (l, i) => classCaption(name, l, rngFor(i)));
      break;
    }
    default:
      throw new Error(`captionDataset: no caption generator for dataset '${dataset.name}' (mnist, fashion-mnist, cifar10); ` +
        'colored-mnist and image folders carry their own captions');
  }
  return { ...dataset, captions };
}

// ---------------------------------------------------------------- files

/** One caption per line, in dataset order (captions must not contain line breaks). */
export function writeCaptionsFile(file: string, captions: readonly string[]): void {
  captions.forEach((c, i) => {
    if (/[\r\n]/.test(c)) throw new Error(`writeCaptionsFile: caption ${i} contains a line break: ${JSON.stringify(c)}`);
  });
  fs.writeFileSync(file, captions.map((c) => c + '\n').join(''), 'utf8');
}

/** Reads a file written by writeCaptionsFile. */
export function readCaptionsFile(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  if (text.length === 0) return [];
  if (!text.endsWith('\n')) throw new Error(`${file}: a captions file ends with a newline (one caption per line); the last line is incomplete`);
  return text.slice(0, -1).split('\n');
}

/** Writes the thresholds (JSON) that produced a caption file's attribute words. */
export function writeCaptionThresholdsFile(file: string, thresholds: MnistCaptionThresholds): void {
  const doc = {
    description: 'MNIST caption attribute thresholds (see src/data/captions.ts): value < edges[0] -> low word, < edges[1] -> middle, else high',
    inkThreshold: INK_THRESHOLD,
    ...thresholds,
  };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n', 'utf8');
}

export function readCaptionThresholdsFile(file: string): MnistCaptionThresholds {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<MnistCaptionThresholds>;
  const isEdges = (e: unknown): e is Edges => Array.isArray(e) && e.length === 2 && e.every((v) => typeof v === 'number');
  if (!isEdges(doc.strokeWidth) || !isEdges(doc.slant) || !Array.isArray(doc.boxArea) || doc.boxArea.length !== 10 || !doc.boxArea.every(isEdges)) {
    throw new Error(`${file}: expected { strokeWidth: [a, b], slant: [a, b], boxArea: 10 x [a, b] }`);
  }
  return { strokeWidth: doc.strokeWidth, slant: doc.slant, boxArea: doc.boxArea };
}
