/**
 * A small line plot rendered to an RGB PNG, for loss curves without any
 * plotting dependency: white background, axes with tick labels (5x7 bitmap
 * font, upper-case letters, digits and a few symbols), grid lines, one
 * coloured polyline per series (matplotlib's tab10 colours) and a legend.
 *
 * Non-finite y values (and y <= 0 with logY) are skipped and break the line.
 */
import { savePng } from './png';

export interface PlotSeries {
  readonly name: string;
  readonly xs: readonly number[];
  readonly ys: readonly number[];
}

export interface PlotOptions {
  readonly width: number;
  readonly height: number;
  /** Plot log10(y) with ticks at powers of ten (default false). */
  readonly logY?: boolean;
  readonly title?: string;
}

export interface RgbImage {
  /** H*W*3 uint8. */
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
}

type Rgb = readonly [number, number, number];

/** matplotlib tab10. */
export const PLOT_COLORS: readonly Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];
const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];

// 5x7 font: 7 rows per glyph, 5 bits per row, most significant bit on the left.
const FONT: Record<string, readonly number[]> = {
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e], '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f], '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02], '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e], '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e], '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  'A': [0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11], 'B': [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  'C': [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e], 'D': [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  'E': [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f], 'F': [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  'G': [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f], 'H': [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  'I': [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e], 'J': [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  'K': [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], 'L': [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  'M': [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11], 'N': [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  'O': [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e], 'P': [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  'Q': [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d], 'R': [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  'S': [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e], 'T': [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  'U': [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e], 'V': [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  'W': [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a], 'X': [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  'Y': [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04], 'Z': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  '.': [0, 0, 0, 0, 0, 0x0c, 0x0c], ',': [0, 0, 0, 0, 0x0c, 0x04, 0x08], '-': [0, 0, 0, 0x1f, 0, 0, 0],
  '+': [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0], ':': [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0], '=': [0, 0, 0x1f, 0, 0x1f, 0, 0],
  '/': [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0], '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], '_': [0, 0, 0, 0, 0, 0, 0x1f],
  '%': [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], ' ': [0, 0, 0, 0, 0, 0, 0],
  '?': [0x0e, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
};
const CHAR_W = 6; // 5 pixels + 1 spacing
const CHAR_H = 7;

// canvas

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }

  set(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
  }

  /** Bresenham line between integer points. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      this.set(x0, y0, c);
      if (x0 === x1 && y0 === y1) return;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }

  /** Text with its top-left corner at (x, y); lower case is drawn as upper case. */
  text(s: string, x: number, y: number, c: Rgb): void {
    const chars = s.toUpperCase();
    for (let k = 0; k < chars.length; k++) {
      const glyph = FONT[chars[k]] ?? FONT['?'];
      for (let row = 0; row < CHAR_H; row++) {
        for (let col = 0; col < 5; col++) {
          if ((glyph[row] >> (4 - col)) & 1) this.set(x + k * CHAR_W + col, y + row, c);
        }
      }
    }
  }
}

// ticks

/** About `target` evenly spaced round values (1, 2, 5 x 10^k steps) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  const raw = (hi - lo) / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

// plot

/** Renders the plot to RGB pixels (see saveLinePlot). */
export function renderLinePlot(series: readonly PlotSeries[], options: PlotOptions): RgbImage {
  const { width, height, logY = false, title } = options;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 80 || height < 60) {
    throw new Error(`renderLinePlot: width and height must be integers of at least 80x60, received ${width}x${height}`);
  }
  for (const s of series) {
    if (s.xs.length !== s.ys.length) throw new Error(`renderLinePlot: series '${s.name}' has ${s.xs.length} xs but ${s.ys.length} ys`);
  }
  const ty = (y: number): number => (logY ? (y > 0 ? Math.log10(y) : NaN) : y);

  // Data ranges (in plotted, i.e. possibly log10, coordinates).
  let xMin = Infinity, xMax = -Infinity, yMin = Infinity, yMax = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.xs.length; i++) {
      const x = s.xs[i];
      const y = ty(s.ys[i]);
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      xMin = Math.min(xMin, x); xMax = Math.max(xMax, x);
      yMin = Math.min(yMin, y); yMax = Math.max(yMax, y);
    }
  }
  if (!Number.isFinite(xMin)) { xMin = 0; xMax = 1; yMin = 0; yMax = 1; }
  if (xMax === xMin) { xMin -= 0.5; xMax += 0.5; }
  if (yMax === yMin) { const d = yMin === 0 ? 1 : Math.abs(yMin) * 0.1; yMin -= d; yMax += d; }

  // Ticks: nice values in plotted coordinates; with logY, whole powers of ten when the range spans >= 2 decades.
  let yTicks = niceTicks(yMin, yMax, Math.max(2, Math.floor(height / 50)));
  if (logY && yMax - yMin >= 2) yTicks = yTicks.filter((t) => Number.isInteger(t));
  if (logY && yTicks.length < 2) yTicks = niceTicks(yMin, yMax, 4);
  const yLabels = yTicks.map((t) => formatTick(logY ? Math.pow(10, t) : t));
  const xTicks = niceTicks(xMin, xMax, Math.max(2, Math.floor(width / 80)));

  // Layout.
  const labelChars = Math.max(...yLabels.map((l) => l.length), 1);
  const left = labelChars * CHAR_W + 8;
  const top = title !== undefined ? CHAR_H + 10 : 8;
  const right = width - 10;
  const bottom = height - (CHAR_H + 10);
  if (right - left < 10 || bottom - top < 10) throw new Error(`renderLinePlot: ${width}x${height} is too small for the labels`);
  const px = (x: number): number => Math.round(left + ((x - xMin) / (xMax - xMin)) * (right - left));
  const py = (y: number): number => Math.round(bottom - ((y - yMin) / (yMax - yMin)) * (bottom - top));

  const c = new Canvas(width, height);
  if (title !== undefined) c.text(title, Math.max(0, Math.round((width - title.length * CHAR_W) / 2)), 4, BLACK);
  for (let i = 0; i < yTicks.length; i++) {
    const y = py(yTicks[i]);
    if (y < top || y > bottom) continue;
    c.line(left + 1, y, right, y, GRID);
    c.line(left - 3, y, left, y, BLACK);
    c.text(yLabels[i], left - 5 - yLabels[i].length * CHAR_W, y - 3, BLACK);
  }
  for (const t of xTicks) {
    const x = px(t);
    if (x < left || x > right) continue;
    c.line(x, top, x, bottom - 1, GRID);
    c.line(x, bottom, x, bottom + 3, BLACK);
    const label = formatTick(t);
    c.text(label, Math.min(width - label.length * CHAR_W, Math.max(0, x - Math.floor((label.length * CHAR_W) / 2))), bottom + 5, BLACK);
  }
  c.line(left, top, left, bottom, BLACK);
  c.line(left, bottom, right, bottom, BLACK);

  const legendChars = Math.max(0, ...series.map((s) => s.name.length));
  series.forEach((s, k) => {
    const color = PLOT_COLORS[k % PLOT_COLORS.length];
    let prev: [number, number] | null = null;
    for (let i = 0; i < s.xs.length; i++) {
      const y = ty(s.ys[i]);
      if (!Number.isFinite(s.xs[i]) || !Number.isFinite(y)) { prev = null; continue; }
      const p: [number, number] = [px(s.xs[i]), py(y)];
      if (prev !== null) c.line(prev[0], prev[1], p[0], p[1], color);
      else c.set(p[0], p[1], color);
      prev = p;
    }
    // Legend, top right of the plot area.
    const ly = top + 4 + k * (CHAR_H + 4);
    const lx = right - 4 - legendChars * CHAR_W - 16;
    c.line(lx, ly + 3, lx + 10, ly + 3, color);
    c.line(lx, ly + 4, lx + 10, ly + 4, color);
    c.text(s.name, lx + 14, ly, color);
  });
  return { data: c.data, height, width };
}

/** Renders series as lines and saves an RGB PNG. */
export function saveLinePlot(filePath: string, series: readonly PlotSeries[], options: PlotOptions): void {
  const img = renderLinePlot(series, options);
  savePng(filePath, img.data, img.height, img.width, 3);
}
