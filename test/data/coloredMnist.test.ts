/** Colored MNIST: pixels, palette contrast, held-out split, captions, determinism. */
import {
  BACKGROUND_COLORS,
  COLORED_MNIST_HELD_OUT,
  coloredMnistPrompt,
  DIGIT_COLORS,
  isHeldOut,
  loadColoredMnist,
} from '../../src/data/coloredMnist';
import { loadMnist } from '../../src/data/mnist';
import { NUMBER_WORDS } from '../../src/data/captions';

const N = 1500;
const train = loadColoredMnist('train', { seed: 0, limit: N });
const mnist = loadMnist('train', { limit: N });

/** WCAG 2 relative luminance and contrast ratio. */
function luminance([r, g, b]: readonly number[]): number {
  const lin = (c: number): number => (c / 255 <= 0.04045 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

describe('Colored MNIST', () => {
  it('is 32x32 RGB with the MNIST labels, and pixels blend digit and background colour by intensity', () => {
    const d = train.dataset;
    expect([d.name, d.count, d.height, d.width, d.channels]).toEqual(['colored-mnist', N, 32, 32, 3]);
    expect(Array.from(d.labels as Int32Array)).toEqual(Array.from(mnist.labels as Int32Array));
    for (const i of [0, 1, 77, N - 1]) {
      const fg = DIGIT_COLORS[train.digitColor[i]].rgb;
      const bg = BACKGROUND_COLORS[train.background[i]].rgb;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
          const a = inside ? mnist.images[i * 784 + (y - 2) * 28 + (x - 2)] / 255 : 0;
          for (let k = 0; k < 3; k++) {
            expect(d.images[((i * 32 + y) * 32 + x) * 3 + k]).toBe(Math.round(a * fg[k] + (1 - a) * bg[k]));
          }
        }
      }
    }
  });

  it('every digit colour has WCAG contrast >= 3 against every background', () => {
    for (const fg of DIGIT_COLORS) {
      for (const bg of BACKGROUND_COLORS) {
        const ratio = (luminance(fg.rgb) + 0.05) / (luminance(bg.rgb) + 0.05);
        if (!(ratio >= 3)) throw new Error(`${fg.name} on ${bg.name}: contrast ${ratio.toFixed(2)}`);
      }
    }
    expect(new Set([...DIGIT_COLORS, ...BACKGROUND_COLORS].map((c) => c.name)).size).toBe(DIGIT_COLORS.length + BACKGROUND_COLORS.length);
  });

  it('holds out 20 triples (2 per digit) whose parts all occur in training, and never trains on them', () => {
    expect(COLORED_MNIST_HELD_OUT).toHaveLength(20);
    expect(new Set(COLORED_MNIST_HELD_OUT.map((h) => `${h.digit},${h.color},${h.background}`)).size).toBe(20);
    for (let d = 0; d < 10; d++) expect(COLORED_MNIST_HELD_OUT.filter((h) => h.digit === d)).toHaveLength(2);
    const labels = train.dataset.labels as Int32Array;
    const seen = { digitColor: new Set<string>(), pair: new Set<string>(), digitBg: new Set<string>() };
    for (let i = 0; i < N; i++) {
      const [d, c, b] = [labels[i], train.digitColor[i], train.background[i]];
      expect(isHeldOut(d, c, b)).toBe(false);
      seen.digitColor.add(`${d},${c}`);
      seen.digitBg.add(`${d},${b}`);
      seen.pair.add(`${c},${b}`);
    }
    for (const h of COLORED_MNIST_HELD_OUT) {
      expect(seen.digitColor.has(`${h.digit},${h.color}`)).toBe(true);
      expect(seen.digitBg.has(`${h.digit},${h.background}`)).toBe(true);
      expect(seen.pair.has(`${h.color},${h.background}`)).toBe(true);
    }
  });

  it("test split: 'all' includes held-out triples at about their share, 'held-out' only them, 'seen' none", () => {
    const all = loadColoredMnist('test', { seed: 0, limit: 2000 });
    const labels = all.dataset.labels as Int32Array;
    const share = Array.from(labels).filter((d, i) => isHeldOut(d, all.digitColor[i], all.background[i])).length / 2000;
    expect(share).toBeGreaterThan(0.02); // expected 20/480 = 0.042
    expect(share).toBeLessThan(0.07);
    const held = loadColoredMnist('test', { seed: 0, limit: 300, combinations: 'held-out' });
    const hl = held.dataset.labels as Int32Array;
    for (let i = 0; i < 300; i++) expect(isHeldOut(hl[i], held.digitColor[i], held.background[i])).toBe(true);
    const seen = loadColoredMnist('test', { seed: 0, limit: 300, combinations: 'seen' });
    const sl = seen.dataset.labels as Int32Array;
    for (let i = 0; i < 300; i++) expect(isHeldOut(sl[i], seen.digitColor[i], seen.background[i])).toBe(false);
    expect(() => loadColoredMnist('train', { seed: 0, limit: 10, combinations: 'all' })).toThrow(/combinations must be 'seen' there, got 'all'/);
  });

  it('captions name the digit, its colour and the background, in varied templates', () => {
    const caps = train.dataset.captions as string[];
    const labels = train.dataset.labels as Int32Array;
    caps.forEach((c, i) => {
      expect(c).toMatch(new RegExp(`\\b(${labels[i]}|${NUMBER_WORDS[labels[i]]})\\b`));
      expect(c).toContain(DIGIT_COLORS[train.digitColor[i]].name);
      expect(c).toContain(BACKGROUND_COLORS[train.background[i]].name);
    });
    expect(new Set(caps.map((c) => c.split(' ').slice(0, 2).join(' '))).size).toBeGreaterThan(10);
    expect(coloredMnistPrompt(3, 7, 1)).toBe('an orange 3 on a navy background');
    expect(coloredMnistPrompt(8, 0, 2)).toBe('a red 8 on a dark green background');
  });

  it('is deterministic for a seed and changes with it', () => {
    const again = loadColoredMnist('train', { seed: 0, limit: 200 });
    expect(Array.from(again.digitColor)).toEqual(Array.from(train.digitColor.subarray(0, 200)));
    expect(again.dataset.captions).toEqual((train.dataset.captions as string[]).slice(0, 200));
    const other = loadColoredMnist('train', { seed: 1, limit: 200 });
    const same = Array.from(other.digitColor).filter((c, i) => c === train.digitColor[i]).length;
    expect(same).toBeLessThan(100); // chance agreement is 1/8
  });
});
