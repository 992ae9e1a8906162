import { BACKGROUND_COLORS, COLORED_MNIST_HELD_OUT, DIGIT_COLORS, isHeldOut, loadColoredMnist } from '../../src/data/coloredMnist';
import { COLOR_AGREEMENT_SEEN, colorAgreementTriples, measureColors } from '../../src/eval/colorAgreement';

const S = 32;

/** An image drawn like the dataset: rgb = round(a * fg + (1 - a) * bg), alpha(y, x) given. */
function draw(fg: readonly number[], bg: readonly number[], alpha: (y: number, x: number) => number): Uint8Array {
  const img = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const a = alpha(y, x);
      for (let k = 0; k < 3; k++) img[(y * S + x) * 3 + k] = Math.round(a * fg[k] + (1 - a) * bg[k]);
    }
  }
  return img;
}

/** A 'stroke': a 6-pixel-wide vertical bar at full alpha with half-alpha edges, inside the 28x28 area. */
const bar = (y: number, x: number): number => (y < 6 || y > 25 ? 0 : x >= 13 && x < 19 ? 1 : x === 12 || x === 19 ? 0.5 : 0);

describe('measureColors', () => {
  it('recovers the colours of real Colored MNIST test images', () => {
    for (const combinations of ['all', 'held-out'] as const) {
      const m = loadColoredMnist('test', { seed: 0, limit: 200, combinations });
      const size = S * S * 3;
      const images = m.dataset.images;
      if (!(images instanceof Uint8Array)) throw new Error('Colored MNIST images are uint8');
      let color = 0;
      let background = 0;
      for (let i = 0; i < m.dataset.count; i++) {
        const r = measureColors(images.subarray(i * size, (i + 1) * size));
        expect(r.inkPixels).toBeGreaterThan(0);
        if (r.digitColor === m.digitColor[i]) color++;
        if (r.background === m.background[i]) background++;
      }
      // Measured: 100% of both on all 10,000 test images (all and held-out combinations).
      expect(color / m.dataset.count).toBeGreaterThanOrEqual(0.98);
      expect(background / m.dataset.count).toBeGreaterThanOrEqual(0.98);
    }
  });

  it('names every (digit colour, background) pair of the palette', () => {
    DIGIT_COLORS.forEach((fg, c) => {
      BACKGROUND_COLORS.forEach((bg, b) => {
        const r = measureColors(draw(fg.rgb, bg.rgb, bar));
        expect([r.digitColor, r.background]).toEqual([c, b]);
        expect(r.inkPixels).toBeGreaterThanOrEqual(20 * 6); // the full-alpha core at least
        expect(r.backgroundRgb).toEqual(bg.rgb);
      });
    });
  });

  it('fits blends, not means: a dim yellow is yellow although its mean is nearest orange', () => {
    const yellow = DIGIT_COLORS.findIndex((c) => c.name === 'yellow');
    const orange = DIGIT_COLORS.findIndex((c) => c.name === 'orange');
    const img = draw(DIGIT_COLORS[yellow].rgb, BACKGROUND_COLORS[0].rgb, (y, x) => 0.6 * bar(y, x));
    const core = Array.from(img.subarray((10 * S + 15) * 3, (10 * S + 15) * 3 + 3)); // (153, 138, 24)
    const dist = (c: readonly number[]): number => Math.hypot(c[0] - core[0], c[1] - core[1], c[2] - core[2]);
    expect(dist(DIGIT_COLORS[orange].rgb)).toBeLessThan(dist(DIGIT_COLORS[yellow].rgb)); // what a nearest-mean rule would say
    expect(measureColors(img).digitColor).toBe(yellow);
  });

  it('reports no ink on a blank or faint image, and takes the background from the frame median', () => {
    const navy = BACKGROUND_COLORS[1].rgb;
    const blank = measureColors(draw([255, 255, 255], navy, () => 0));
    expect(blank).toEqual({ digitColor: -1, background: 1, inkPixels: 0, backgroundRgb: navy });
    // white at alpha 0.1 on navy is ~36 away: below the ink distance of 64, above it at inkDistance 30
    const faint = draw([255, 255, 255], navy, (y, x) => 0.1 * bar(y, x));
    expect(measureColors(faint).digitColor).toBe(-1);
    expect(measureColors(faint, { inkDistance: 30 }).digitColor).toBe(6);

    // 100 of the 240 frame pixels painted red: the median is still maroon, and they count as ink.
    const maroon = BACKGROUND_COLORS[3].rgb;
    const frame = (y: number, x: number): boolean => y < 2 || y >= 30 || x < 2 || x >= 30;
    let painted = 0;
    const noisy = draw([255, 50, 50], maroon, (y, x) => {
      if (frame(y, x) && painted < 100) {
        painted++;
        return 1;
      }
      return 0;
    });
    const r = measureColors(noisy);
    expect(r.background).toBe(3);
    expect(r.backgroundRgb).toEqual(maroon);
    expect(r.inkPixels).toBe(100);
    expect(r.digitColor).toBe(0);
  });

  it('refuses other shapes and a negative ink distance', () => {
    expect(() => measureColors(new Uint8Array(28 * 28 * 3))).toThrow(/expected a 32x32x3 image \(3072 values\), received 2352/);
    expect(() => measureColors(new Uint8Array(S * S * 3), { inkDistance: -1 })).toThrow(/inkDistance must be >= 0, got -1/);
  });
});

describe('colour agreement triples', () => {
  it('seen: 20 triples, two per digit, none held out, covering every digit, colour and background', () => {
    const seen = colorAgreementTriples('seen');
    expect(seen).toBe(COLOR_AGREEMENT_SEEN);
    expect(seen).toHaveLength(20);
    expect(seen.some((t) => isHeldOut(t.digit, t.color, t.background))).toBe(false);
    expect(new Set(seen.map((t) => t.digit)).size).toBe(10);
    expect(new Set(seen.map((t) => t.color)).size).toBe(DIGIT_COLORS.length);
    expect(new Set(seen.map((t) => t.background)).size).toBe(BACKGROUND_COLORS.length);
    for (let d = 0; d < 10; d++) expect(seen.filter((t) => t.digit === d)).toHaveLength(2);
    // no (digit, colour) or (digit, background) pair in common with the held-out triples
    for (const t of seen) {
      expect(COLORED_MNIST_HELD_OUT.some((h) => h.digit === t.digit && (h.color === t.color || h.background === t.background))).toBe(false);
    }
    expect(new Set(seen.map((t) => `${t.digit},${t.color},${t.background}`)).size).toBe(20);
  });

  it('held-out: the dataset\'s 20 held-out triples', () => {
    expect(colorAgreementTriples('held-out')).toBe(COLORED_MNIST_HELD_OUT);
    expect(() => colorAgreementTriples('all' as never)).toThrow(/must be 'seen' or 'held-out', got 'all'/);
  });
});
