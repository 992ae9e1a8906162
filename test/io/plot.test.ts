import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { renderLinePlot, saveLinePlot, niceTicks, PLOT_COLORS } from '../../src/io/plot';
import { loadPng } from '../../src/io/png';

/** Pixels of colour `c` as [x, y] pairs. */
function pixelsOf(img: { data: Uint8Array; width: number; height: number }, c: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < img.width * img.height; i++) {
    if (img.data[3 * i] === c[0] && img.data[3 * i + 1] === c[1] && img.data[3 * i + 2] === c[2]) out.push([i % img.width, Math.floor(i / img.width)]);
  }
  return out;
}

describe('line plot', () => {
  it('picks round tick values', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 1990, 6)).toEqual([0, 500, 1000, 1500]);
    expect(niceTicks(-3.2, -1.1, 5)).toEqual([-3, -2.5, -2, -1.5]); // step 2.1/5 = 0.42 -> 0.5
    expect(niceTicks(-3.2, -1.1, 4)).toEqual([-3, -2]); // 0.525 -> 1
  });

  it('draws each series in its own colour, monotone lines mapping to monotone pixels', () => {
    const xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const img = renderLinePlot([
      { name: 'up', xs, ys: xs.map((x) => x) },
      { name: 'down', xs, ys: xs.map((x) => 9 - x) },
    ], { width: 200, height: 120, title: 'Test' });
    expect([img.width, img.height, img.data.length]).toEqual([200, 120, 200 * 120 * 3]);
    const up = pixelsOf(img, PLOT_COLORS[0]);
    const down = pixelsOf(img, PLOT_COLORS[1]);
    expect(up.length).toBeGreaterThan(50);
    expect(down.length).toBeGreaterThan(50);
    // Exclude the legend (top right, x >= 140) and check that y falls (image coordinates) as x grows for 'up'.
    const line = (pts: Array<[number, number]>): Array<[number, number]> => pts.filter(([x]) => x < 140).sort((a, b) => a[0] - b[0]);
    const u = line(up);
    const d = line(down);
    expect(u[0][0]).toBe(d[0][0]); // both start at the y axis
    expect(u[0][1]).toBeGreaterThan(u[u.length - 1][1]);
    expect(d[0][1]).toBeLessThan(d[d.length - 1][1]);
    // They cross: 'up' starts below 'down' and ends above it.
    expect(u[0][1]).toBeGreaterThan(d[0][1]);
    expect(u[u.length - 1][1]).toBeLessThan(d[d.length - 1][1]);
    expect(pixelsOf(img, [0, 0, 0]).length).toBeGreaterThan(200); // axes and labels
  });

  it('with logY skips non-positive values and plots exp decay as a straight line', () => {
    const xs = Array.from({ length: 50 }, (_, i) => i);
    const img = renderLinePlot([{ name: 'l', xs, ys: xs.map((x) => (x === 10 ? 0 : Math.exp(-x / 5))) }],
      { width: 300, height: 200, logY: true });
    const pts = pixelsOf(img, PLOT_COLORS[0]).filter(([x]) => x < 230); // drop the legend's colour swatch
    // Fit y = a + b x through the extreme points; every pixel of a straight line lies within ~1px of it.
    const sorted = [...pts].sort((p, q) => p[0] - q[0]);
    const [x0, y0] = sorted[0];
    const [x1, y1] = sorted[sorted.length - 1];
    const maxDev = Math.max(...pts.map(([x, y]) => Math.abs(y - (y0 + ((y1 - y0) * (x - x0)) / (x1 - x0)))));
    expect(maxDev).toBeLessThanOrEqual(2);
  });

  it('rejects mismatched series and tiny canvases; saves an RGB PNG', () => {
    expect(() => renderLinePlot([{ name: 'a', xs: [1, 2], ys: [1] }], { width: 100, height: 100 })).toThrow(/'a' has 2 xs but 1 ys/);
    expect(() => renderLinePlot([], { width: 10, height: 10 })).toThrow(/at least 80x60/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-'));
    try {
      const p = path.join(dir, 'loss.png');
      saveLinePlot(p, [{ name: 'loss', xs: [0, 1, 2], ys: [3, 2, 1] }], { width: 160, height: 100, title: 'loss' });
      const img = loadPng(p);
      expect([img.width, img.height, img.channels]).toEqual([160, 100, 3]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
