/**
 * Colored MNIST: each MNIST digit painted in a digit colour on a background
 * colour, 32x32 RGB, with captions such as "a red 3 on a blue background".
 * Generated deterministically from MNIST and a seed; nothing is stored.
 *
 * Pixels: the 28x28 digit is centred in 32x32 (2-pixel border) and its
 * intensity a = p / 255 blends the two colours:
 *   rgb = round(a * DIGIT_COLORS[c] + (1 - a) * BACKGROUND_COLORS[b])
 * Digit colours are bright, backgrounds dark: every pair has a WCAG contrast
 * ratio >= 3 (checked in the tests), so the digit stays readable.
 *
 * Compositional split: COLORED_MNIST_HELD_OUT lists 20 (digit, colour,
 * background) triples, two per digit,
 *   (d, 3d mod 8, d mod 6)   and   (d, (3d + 5) mod 8, (d + 3) mod 6),
 * that never occur in the 'train' split. Each held-out digit, colour,
 * background and (colour, background) pair does occur in training in other
 * combinations, so a model that composes them can still get them right.
 * The 'test' split draws from all 480 triples by default (about 4% held-out);
 * `combinations: 'held-out'` gives only held-out ones, 'seen' only the others.
 *
 * Randomness: image i of a split draws its colours from
 * keyedRng(seed, 'colored-mnist', split, i) (train: redrawn while the triple is
 * held out) and its caption from keyedRng(seed, 'caption', split, i).
 */
import { keyedRng, Rng } from '../backend/random';
import { DatasetSplit, ImageDataset, validateDataset } from './dataset';
import { loadMnist, MNIST_CLASS_NAMES } from './mnist';
import { fillTemplate, NUMBER_WORDS } from './captions';

// ---------------------------------------------------------------- palette

export interface NamedColor {
  readonly name: string;
  readonly rgb: readonly [number, number, number];
}

export const DIGIT_COLORS: readonly NamedColor[] = [
  { name: 'red', rgb: [255, 50, 50] },
  { name: 'green', rgb: [40, 210, 60] },
  { name: 'blue', rgb: [70, 130, 255] },
  { name: 'yellow', rgb: [255, 230, 40] },
  { name: 'magenta', rgb: [240, 60, 240] },
  { name: 'cyan', rgb: [40, 230, 240] },
  { name: 'white', rgb: [255, 255, 255] },
  { name: 'orange', rgb: [255, 150, 20] },
];

export const BACKGROUND_COLORS: readonly NamedColor[] = [
  { name: 'black', rgb: [0, 0, 0] },
  { name: 'navy', rgb: [15, 15, 90] },
  { name: 'dark green', rgb: [10, 65, 20] },
  { name: 'maroon', rgb: [90, 10, 20] },
  { name: 'purple', rgb: [70, 15, 90] },
  { name: 'brown', rgb: [80, 45, 10] },
];

export const COLORED_MNIST_SIZE = 32;

// ---------------------------------------------------------------- held-out combinations

export interface ColorCombination {
  readonly digit: number;
  /** Index into DIGIT_COLORS. */
  readonly color: number;
  /** Index into BACKGROUND_COLORS. */
  readonly background: number;
}

export const COLORED_MNIST_HELD_OUT: readonly ColorCombination[] = Array.from({ length: 10 }, (_, d) => [
  { digit: d, color: (3 * d) % 8, background: d % 6 },
  { digit: d, color: (3 * d + 5) % 8, background: (d + 3) % 6 },
]).flat();

export function isHeldOut(digit: number, color: number, background: number): boolean {
  return COLORED_MNIST_HELD_OUT.some((h) => h.digit === digit && h.color === color && h.background === background);
}

// ---------------------------------------------------------------- captions

/** {c} digit colour, {b} background, {n} numeral or word, {a} agreeing article. */
export const COLORED_MNIST_TEMPLATES: readonly string[] = [
  '{a} {c} {n} on {a} {b} background',
  '{a} {c} {n} on {b}',
  'the digit {n} in {c} on {a} {b} background',
  '{a} handwritten {c} {n} over {a} {b} background',
  '{c} {n}, {b} background',
  '{a} {b} background with {a} {c} {n}',
  'the number {n} written in {c} on {b}',
];

/** The canonical prompt used by evaluation: "a red 3 on a navy background". */
export function coloredMnistPrompt(digit: number, color: number, background: number): string {
  return fillTemplate(COLORED_MNIST_TEMPLATES[0], { c: colorName(DIGIT_COLORS, color), n: String(digit), b: colorName(BACKGROUND_COLORS, background) });
}

function colorName(palette: readonly NamedColor[], index: number): string {
  const c = palette[index];
  if (c === undefined) throw new Error(`colour index ${index} outside [0, ${palette.length})`);
  return c.name;
}

/** A varied caption (template, numeral or word) for one image. */
export function coloredMnistCaption(digit: number, color: number, background: number, rng: Rng): string {
  const template = COLORED_MNIST_TEMPLATES[rng.int(COLORED_MNIST_TEMPLATES.length)];
  const n = rng.uniform() < 0.5 ? String(digit) : NUMBER_WORDS[digit];
  return fillTemplate(template, { c: colorName(DIGIT_COLORS, color), n, b: colorName(BACKGROUND_COLORS, background) });
}

// ---------------------------------------------------------------- the dataset

export interface ColoredMnistOptions {
  /** Seed of colours and captions. */
  readonly seed: number;
  /** Use the first `limit` MNIST images of the split (default all). */
  readonly limit?: number;
  /** Which triples to draw: 'train' allows only 'seen' (the default there); 'test' defaults to 'all'. */
  readonly combinations?: 'seen' | 'held-out' | 'all';
}

export interface ColoredMnist {
  /** name 'colored-mnist', [N, 32, 32, 3] uint8, labels = digit, classNames '0'..'9', captions. */
  readonly dataset: ImageDataset;
  /** Per image: index into DIGIT_COLORS. */
  readonly digitColor: Int32Array;
  /** Per image: index into BACKGROUND_COLORS. */
  readonly background: Int32Array;
}

/** Draws (colour, background) for one digit under the split's combination rule. */
function drawCombination(digit: number, rule: 'seen' | 'held-out' | 'all', rng: Rng): [number, number] {
  if (rule === 'held-out') {
    const options = COLORED_MNIST_HELD_OUT.filter((h) => h.digit === digit);
    const h = options[rng.int(options.length)];
    return [h.color, h.background];
  }
  for (;;) {
    const c = rng.int(DIGIT_COLORS.length);
    const b = rng.int(BACKGROUND_COLORS.length);
    if (rule === 'all' || !isHeldOut(digit, c, b)) return [c, b];
  }
}

export function loadColoredMnist(split: DatasetSplit, options: ColoredMnistOptions): ColoredMnist {
  const { seed, limit } = options;
  const rule = options.combinations ?? (split === 'train' ? 'seen' : 'all');
  if (split === 'train' && rule !== 'seen') {
    throw new Error(`loadColoredMnist: the train split never contains held-out combinations; combinations must be 'seen' there, got '${rule}'`);
  }
  const mnist = loadMnist(split, { limit });
  const labels = mnist.labels as Int32Array;
  const n = mnist.count;
  const S = COLORED_MNIST_SIZE;
  const pad = (S - mnist.height) / 2; // 2
  const images = new Uint8Array(n * S * S * 3);
  const digitColor = new Int32Array(n);
  const background = new Int32Array(n);
  const captions: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = labels[i];
    const [c, b] = drawCombination(d, rule, keyedRng(seed, 'colored-mnist', split, i));
    digitColor[i] = c;
    background[i] = b;
    captions.push(coloredMnistCaption(d, c, b, keyedRng(seed, 'caption', split, i)));
    const fg = DIGIT_COLORS[c].rgb;
    const bg = BACKGROUND_COLORS[b].rgb;
    const out = i * S * S * 3;
    const src = i * mnist.height * mnist.width;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const my = y - pad;
        const mx = x - pad;
        const inside = my >= 0 && mx >= 0 && my < mnist.height && mx < mnist.width;
        const a = inside ? mnist.images[src + my * mnist.width + mx] / 255 : 0;
        const o = out + (y * S + x) * 3;
        for (let k = 0; k < 3; k++) images[o + k] = Math.round(a * fg[k] + (1 - a) * bg[k]);
      }
    }
  }
  const dataset = validateDataset({
    name: 'colored-mnist',
    split,
    images,
    count: n,
    height: S,
    width: S,
    channels: 3,
    labels: Int32Array.from(labels),
    classNames: MNIST_CLASS_NAMES,
    captions,
  });
  return { dataset, digitColor, background };
}
